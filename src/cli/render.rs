//! What the CLI prints for people: the status of a running controller, rendered from the
//! API's typed answer.

use crate::api::StatusBody;
use crate::model::{Holder, Reason};
use crate::plan::Note;

/// "1.2s", "3m 4s", "2h 5m": an age from milliseconds, for people.
fn age(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 10_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => {
            let secs = ms / 1000;
            let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
            if h > 0 {
                format!("{h}h {m}m")
            } else if m > 0 {
                format!("{m}m {s}s")
            } else {
                format!("{s}s")
            }
        }
    }
}

fn holder_text(h: &Holder) -> &str {
    match h {
        Holder::Nobody => "nobody",
        Holder::Target(t) => t.0.as_str(),
        Holder::Foreign(id) => id.as_str(),
    }
}

/// A planner note in a few words ("held", "failback pending").
fn note_kind(n: &Note) -> String {
    serde_json::to_value(n)
        .ok()
        .and_then(|v| v["note"].as_str().map(|k| k.replace('_', " ")))
        .unwrap_or_else(|| "note".into())
}

/// Human rendering of `GET /api/v1/status`.
pub(super) fn status(body: &StatusBody) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let (l, lease) = (&body.leader, &body.lease);
    let _ = writeln!(
        s,
        "replica {} - {} (epoch {}, lease holder {}{})",
        l.identity,
        if l.is_leader { "LEADER" } else { "standby" },
        l.epoch,
        l.holder.as_deref().unwrap_or("none"),
        lease
            .holder_api
            .as_deref()
            .map(|a| format!(" at {a}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "lease store: last answered {} ago{}",
        age(lease.last_ok_ms_ago),
        lease
            .last_error
            .as_deref()
            .map(|e| format!(", last error: {e}"))
            .unwrap_or_default()
    );
    for m in &lease.members {
        let _ = writeln!(
            s,
            "  member {}: {}{}, epoch {}, holder {}{}",
            m.name,
            if m.up { "up" } else { "UNREACHABLE" },
            if m.held { ", held by this replica" } else { "" },
            m.epoch,
            m.holder.as_deref().unwrap_or("none"),
            m.error
                .as_deref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
    }
    for w in &body.warnings {
        let _ = writeln!(s, "WARNING {w}");
    }
    if let Some(e) = &body.observe_error {
        let _ = writeln!(s, "provider observation failing: {e}");
    }
    // Only queues with calls waiting: a mass failover at the provider's pace.
    for q in body.queues.iter().filter(|q| q.pending > 0) {
        let _ = writeln!(
            s,
            "queue {} in {}: {} calls waiting for a token ({} failovers), drains in about {} at {} a second",
            q.api,
            q.scope,
            q.pending,
            q.failovers,
            floatover_core::human::duration(std::time::Duration::from_secs_f64(q.drain_s.max(0.0))),
            q.per_second
        );
    }
    for g in &body.groups {
        group(&mut s, g);
    }
    audit(&mut s, &body.audit);
    s
}

/// One group: owner, targets, floats, notes.
fn group(s: &mut String, g: &crate::status::GroupStatus) {
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "group {}: owner {}, desired {}",
        g.name,
        g.owner.as_ref().map_or("(none)", |t| t.0.as_str()),
        g.desired
            .as_ref()
            .map_or("(none healthy)", |t| t.0.as_str())
    );
    if g.desired != g.owner {
        let why: Vec<String> = g.notes.iter().map(note_kind).collect();
        let _ = writeln!(
            s,
            "  not on its desired owner: {}",
            if why.is_empty() {
                "a move is under way or waits for the next reconcile".to_string()
            } else {
                why.join(", ")
            }
        );
    }
    for t in &g.targets {
        let votes = t
            .votes
            .map(|v| format!("(votes: {} down, {} up of {}) ", v.down, v.up, v.views))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  target {:<16} prio {:<4} {:<8} for {:<8} {votes}{}",
            t.name.0,
            t.priority,
            t.health.as_str(),
            age(Some(t.for_ms)),
            t.last_error.as_deref().unwrap_or("")
        );
    }
    for f in &g.floats {
        if f.weights.is_empty() {
            let _ = writeln!(s, "  float  {:<40} on {}", f.id, holder_text(&f.holder));
        } else {
            let w: Vec<String> = f.weights.iter().map(|(t, n)| format!("{t}={n}")).collect();
            let sync = match &f.propagation {
                Some(p) => match p.insync_ms {
                    Some(ms) => format!(" ({} after {ms} ms)", p.state),
                    None => format!(" ({})", p.state),
                },
                None => String::new(),
            };
            let _ = writeln!(s, "  float  {:<40} weights {}{sync}", f.id, w.join(" "));
        }
    }
    for n in &g.notes {
        let _ = writeln!(
            s,
            "  note: {}",
            serde_json::to_string(n).unwrap_or_else(|_| format!("{n:?}"))
        );
    }
}

/// The last ten moves, newest first.
fn audit(s: &mut String, audit: &[crate::status::AuditEvent]) {
    use std::fmt::Write;
    let now = crate::status::unix_ms();
    for e in audit.iter().rev().take(10) {
        let ago = age(Some(now.saturating_sub(e.finished_unix_ms)));
        let from = match &e.from {
            Holder::Nobody => "-",
            h => holder_text(h),
        };
        let _ = writeln!(
            s,
            "  {} {} {} -> {} ({}, epoch {}, {:.1} ms, {} ago){}{}",
            if e.reason == Reason::Drift {
                "drift"
            } else {
                "move"
            },
            e.float,
            from,
            e.to.as_ref().map_or("(elsewhere)", |t| t.0.as_str()),
            e.reason,
            e.epoch,
            e.call_ms,
            ago,
            e.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
            if e.ok {
                String::new()
            } else {
                format!(" FAILED: {}", e.error.as_deref().unwrap_or(""))
            }
        );
    }
}
