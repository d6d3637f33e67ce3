//! The drill report: the drill's run and the failback that ended it, every step against
//! its budget, the promotion against the site's RTO and the replication lag at cut-over
//! (the measured RPO) against its RPO, as JSON (for programs), Markdown
//! (for people) and an SVG timeline (one bar per step, a tick at its budget, the RTO as a
//! line). Pure: built from the run records alone.

use super::record::{RunRecord, RunState, StepRecord, StepState};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillReport {
    pub site: String,
    pub from_site: String,
    pub drill_run: String,
    /// `passed` when the promotion, its verification and the failback all succeeded.
    pub verdict: String,
    pub started_unix_ms: u64,
    /// Drill start to the verified promotion: what a real recovery would have taken.
    pub recovery_ms: Option<u64>,
    pub rto_ms: Option<u64>,
    pub within_rto: Option<bool>,
    /// Replication lag read right before the traffic moved: the writes a real failover
    /// at that moment would have lost.
    #[serde(default)]
    pub lag_at_cutover_ms: Option<u64>,
    #[serde(default)]
    pub rpo_ms: Option<u64>,
    #[serde(default)]
    pub within_rpo: Option<bool>,
    /// Drill start to the end of the failback.
    pub total_ms: Option<u64>,
    pub steps: Vec<ReportStep>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportStep {
    /// `promote` or `failback`.
    pub phase: String,
    pub name: String,
    pub kind: String,
    pub state: String,
    /// From the drill's start.
    pub start_ms: Option<u64>,
    pub took_ms: Option<u64>,
    pub budget_ms: u64,
    pub over_budget: bool,
    pub detail: Option<String>,
    pub error: Option<String>,
}

fn state_word(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "not run",
        StepState::Running => "interrupted",
        StepState::Done => "done",
        StepState::Failed => "failed",
        StepState::Skipped => "failed (optional)",
    }
}

fn steps(phase: &str, r: &RunRecord, t0: u64, out: &mut Vec<ReportStep>) {
    fn one(phase: &str, s: &StepRecord, t0: u64, prefix: &str, out: &mut Vec<ReportStep>) {
        out.push(ReportStep {
            phase: phase.into(),
            name: format!("{prefix}{}", s.name),
            kind: s.kind.clone(),
            state: state_word(s.state).into(),
            start_ms: s.started_unix_ms.map(|x| x.saturating_sub(t0)),
            took_ms: s.took_ms(),
            budget_ms: s.budget_ms,
            over_budget: s.over_budget,
            detail: s.detail.clone(),
            error: s.error.clone(),
        });
        for c in &s.steps {
            one(phase, c, t0, &format!("{}/", s.name), out);
        }
    }
    for s in &r.steps {
        one(phase, s, t0, "", out);
    }
}

/// Build the report from the drill's run and its failback (None: none ran).
pub fn build(drill: &RunRecord, failback: Option<&RunRecord>) -> DrillReport {
    let t0 = drill.started_unix_ms;
    let mut all = Vec::new();
    steps("promote", drill, t0, &mut all);
    if let Some(f) = failback {
        steps("failback", f, t0, &mut all);
    }
    let recovery = (drill.state == RunState::Succeeded)
        .then(|| drill.finished_unix_ms.map(|f| f.saturating_sub(t0)))
        .flatten();
    let passed = drill.state == RunState::Succeeded
        && failback.is_some_and(|f| f.state == RunState::Succeeded);
    let error = match (drill.error.as_ref(), failback) {
        (Some(e), _) => Some(format!("drill: {e}")),
        (None, Some(f)) => f.error.as_ref().map(|e| format!("failback: {e}")),
        (None, None) if drill.state == RunState::Succeeded => {
            Some("the failback did not run".into())
        }
        _ => None,
    };
    DrillReport {
        site: drill.site.clone(),
        from_site: drill.from_site.clone(),
        drill_run: drill.id.clone(),
        verdict: if passed { "passed" } else { "failed" }.into(),
        started_unix_ms: t0,
        recovery_ms: recovery,
        rto_ms: drill.rto_ms,
        within_rto: match (recovery, drill.rto_ms) {
            (Some(r), Some(rto)) => Some(r <= rto),
            _ => None,
        },
        lag_at_cutover_ms: drill.lag_at_cutover_ms,
        rpo_ms: drill.rpo_ms,
        within_rpo: match (drill.lag_at_cutover_ms, drill.rpo_ms) {
            (Some(l), Some(rpo)) => Some(l <= rpo),
            _ => None,
        },
        total_ms: failback
            .and_then(|f| f.finished_unix_ms)
            .map(|f| f.saturating_sub(t0)),
        steps: all,
        error,
    }
}

fn secs(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn opt(ms: Option<u64>) -> String {
    ms.map(secs).unwrap_or_else(|| "-".into())
}

/// For people.
pub fn markdown(r: &DrillReport) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Drill of site {}: {}\n",
        r.site,
        r.verdict.to_uppercase()
    );
    let _ = writeln!(
        m,
        "Traffic moved from **{}** to **{}** and back. Run `{}`.\n",
        r.from_site, r.site, r.drill_run
    );
    let rto = match (r.recovery_ms, r.rto_ms, r.within_rto) {
        (Some(rec), Some(rto), Some(true)) => format!(
            "Recovery took **{}**, within the RTO of {} ({} to spare).",
            secs(rec),
            secs(rto),
            secs(rto - rec)
        ),
        (Some(rec), Some(rto), _) => format!(
            "Recovery took **{}**, OVER the RTO of {} by {}.",
            secs(rec),
            secs(rto),
            secs(rec.saturating_sub(rto))
        ),
        (Some(rec), None, _) => format!("Recovery took **{}** (no RTO set).", secs(rec)),
        (None, ..) => "The promotion did not complete: no recovery time.".into(),
    };
    let _ = writeln!(m, "{rto}");
    let rpo = match (r.lag_at_cutover_ms, r.rpo_ms) {
        (Some(l), Some(rpo)) if l <= rpo => Some(format!(
            "Replication lag at cut-over **{}**, within the RPO of {}.",
            secs(l),
            secs(rpo)
        )),
        (Some(l), Some(rpo)) => Some(format!(
            "Replication lag at cut-over **{}**, OVER the RPO of {} by {}.",
            secs(l),
            secs(rpo),
            secs(l.saturating_sub(rpo))
        )),
        (Some(l), None) => Some(format!(
            "Replication lag at cut-over **{}** (no RPO set).",
            secs(l)
        )),
        (None, Some(rpo)) => Some(format!(
            "Replication lag at cut-over unknown (RPO {}).",
            secs(rpo)
        )),
        (None, None) => None,
    };
    if let Some(line) = rpo {
        let _ = writeln!(m, "{line}");
    }
    if let Some(t) = r.total_ms {
        let _ = writeln!(m, "The whole drill, failback included, took {}.", secs(t));
    }
    if let Some(e) = &r.error {
        let _ = writeln!(m, "\n**Problem:** {e}");
    }
    let _ = writeln!(
        m,
        "\n| phase | step | kind | result | started | took | budget | |\n|---|---|---|---|---|---|---|---|"
    );
    for s in &r.steps {
        let flag = if s.over_budget { "OVER BUDGET" } else { "" };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {flag} |",
            s.phase,
            s.name,
            s.kind,
            s.state,
            s.start_ms
                .map(|x| format!("+{}", secs(x)))
                .unwrap_or_else(|| "-".into()),
            opt(s.took_ms),
            secs(s.budget_ms)
        );
    }
    let notes: Vec<String> = r
        .steps
        .iter()
        .filter_map(|s| {
            s.error
                .as_ref()
                .map(|e| format!("- {} {}: {e}", s.phase, s.name))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(m, "\nErrors:\n{}", notes.join("\n"));
    }
    let _ = writeln!(m, "\n![timeline](drill-{}.svg)", r.drill_run);
    m
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The timeline: one bar per step from its start for as long as it took (green within
/// budget, orange over, red failed), a tick where its budget ends, the RTO as a line.
/// The drawing's geometry: labels on the left, the chart scaled to the drill's end.
struct Canvas {
    end: f64,
    height: f64,
}

const LABEL: f64 = 230.0;
const CHART: f64 = 620.0;
const ROW: f64 = 26.0;
const TOP: f64 = 56.0;

impl Canvas {
    fn x(&self, ms: u64) -> f64 {
        LABEL + (ms as f64 / self.end * CHART).min(CHART)
    }
}

pub fn svg(r: &DrillReport) -> String {
    // The scale covers every step's bar and budget tick, the RTO and the whole drill.
    let end = r
        .steps
        .iter()
        .filter_map(|s| {
            s.start_ms
                .map(|st| st + s.took_ms.unwrap_or(0).max(s.budget_ms))
        })
        .chain(r.rto_ms)
        .chain(r.total_ms)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let c = Canvas {
        end,
        height: TOP + ROW * r.steps.len() as f64 + 40.0,
    };
    let height = c.height;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="sans-serif" font-size="12">"#,
        w = LABEL + CHART + 30.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    svg_title(&mut s, r);
    svg_axis(&mut s, &c);
    svg_steps(&mut s, &c, r);
    svg_marks(&mut s, &c, r);
    s.push_str("</svg>\n");
    s
}

/// The drill's headline: verdict, recovery, RTO, lag and RPO.
fn svg_title(s: &mut String, r: &DrillReport) {
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(&format!(
            "Drill of {}: {} (recovery {}{}{})",
            r.site,
            r.verdict,
            opt(r.recovery_ms),
            r.rto_ms
                .map(|x| format!(", RTO {}", secs(x)))
                .unwrap_or_default(),
            r.lag_at_cutover_ms
                .map(|l| format!(
                    "; lag at cut-over {}{}",
                    secs(l),
                    r.rpo_ms
                        .map(|x| format!(", RPO {}", secs(x)))
                        .unwrap_or_default()
                ))
                .unwrap_or_default()
        ))
    );
}

/// Five ticks along the time axis.
fn svg_axis(s: &mut String, c: &Canvas) {
    let (end, height) = (c.end, c.height);
    let x = |ms| c.x(ms);
    for i in 0..=5u64 {
        let ms = (end as u64) * i / 5;
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#ddd"/><text x="{x}" y="{ty}" text-anchor="middle" fill="#666">{t}</text>"##,
            x = x(ms),
            y1 = TOP - 8.0,
            y2 = height - 30.0,
            ty = height - 14.0,
            t = esc(&secs(ms))
        );
    }
}

/// One row per step: its bar (coloured by outcome) and its budget tick.
fn svg_steps(s: &mut String, c: &Canvas, r: &DrillReport) {
    let x = |ms| c.x(ms);
    for (i, st) in r.steps.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}">{}</text>"#,
            y + 15.0,
            esc(&format!(
                "{} {}",
                if st.phase == "failback" { "↩" } else { "▶" },
                st.name
            ))
        );
        if let (Some(start), Some(took)) = (st.start_ms, st.took_ms) {
            let color = match (st.state.as_str(), st.over_budget) {
                ("done", false) => "#3a9d5d",
                ("done", true) => "#e8912d",
                _ => "#d64545",
            };
            let _ = writeln!(
                s,
                r#"<rect x="{}" y="{}" width="{:.1}" height="16" fill="{color}"><title>{}</title></rect>"#,
                x(start),
                y + 3.0,
                (x(start + took) - x(start)).max(2.0),
                esc(&format!(
                    "{}: {} of {} budget, {}",
                    st.name,
                    secs(took),
                    secs(st.budget_ms),
                    st.state
                ))
            );
            let bx = x(start + st.budget_ms);
            let _ = writeln!(
                s,
                r##"<line x1="{bx}" y1="{}" x2="{bx}" y2="{}" stroke="#222" stroke-width="2"/>"##,
                y + 1.0,
                y + 21.0
            );
        }
    }
}

/// The RTO line and the moment the site recovered.
fn svg_marks(s: &mut String, c: &Canvas, r: &DrillReport) {
    let (x, height) = (|ms| c.x(ms), c.height);
    if let Some(rto) = r.rto_ms {
        let rx = x(rto);
        let _ = writeln!(
            s,
            r##"<line x1="{rx}" y1="{}" x2="{rx}" y2="{}" stroke="#d64545" stroke-dasharray="6 4" stroke-width="2"/><text x="{rx}" y="{}" fill="#d64545" text-anchor="end">RTO</text>"##,
            TOP - 12.0,
            height - 30.0,
            TOP - 16.0
        );
    }
    if let Some(rec) = r.recovery_ms {
        let rx = x(rec);
        let _ = writeln!(
            s,
            r##"<line x1="{rx}" y1="{}" x2="{rx}" y2="{}" stroke="#1f5fbf" stroke-width="2"/><text x="{}" y="{}" fill="#1f5fbf">recovered</text>"##,
            TOP - 12.0,
            height - 30.0,
            rx + 3.0,
            TOP - 16.0
        );
    }
}
