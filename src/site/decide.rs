//! The site supervisor's decision, pure: given what the leader knows right now (its
//! leadership, the run record, which sites are up and ready, since when the active site is
//! below its quorum, the requests waiting), what it should do. No clock, no I/O: the
//! driver ([`super::supervisor`]) gathers the input, carries the actions out and asks
//! again when something changes, so every rule here is tested to the millisecond with
//! paused time (`tests/site_decide.rs`) and by property tests.
//!
//! The rules, in order:
//! 1. A replica that does not lead abandons the run it executes (the record keeps it for
//!    the next leader) and refuses every request.
//! 2. A newly elected leader first takes the record over (resume or stop what was left
//!    running) before anything else.
//! 3. One run at a time: a request while a run goes is refused; the first acceptable
//!    request starts, the ones after it are refused.
//! 4. A drill that succeeded is followed by its failback to the site that had the traffic.
//! 5. Automatic failover: the active site below its quorum for `grace` promotes another
//!    site, one that passed pre-flight first; never onto the active site.
//! 6. Automatic failback (when on): a non-primary active site gives the traffic back to a
//!    primary at quorum.

use super::record::{RunKind, RunState, SiteRuns};
use super::spec::{SitePolicy, SiteSpec};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A request for a run, as a person made it (API, CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub site: String,
    pub kind: RunKind,
    pub trigger: String,
}

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub kind: RunKind,
    pub trigger: String,
    /// For a drill's failback: the drill's run id.
    pub drill_of: Option<String>,
}

/// Everything the decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub sites: &'a [SiteSpec],
    pub policy: &'a SitePolicy,
    /// This replica's epoch while it leads (None: it does not lead).
    pub leading: Option<u64>,
    /// The epoch under which this replica took the record over (None: not yet).
    pub taken_over: Option<u64>,
    /// The record as last read (None: never read).
    pub record: Option<&'a SiteRuns>,
    /// The run this replica is executing.
    pub running: Option<&'a str>,
    /// Targets up per site, as the probes see them.
    pub up: &'a BTreeMap<String, usize>,
    /// Sites that passed their last pre-flight.
    pub ready: &'a BTreeMap<String, bool>,
    /// Since when the active site has been below its quorum (None: it is not, or not seen).
    pub below_since: Option<Instant>,
    /// Requests waiting for an answer, oldest first.
    pub requests: &'a [Request],
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this replica does not lead; ask the leader")]
    NotLeader,
    #[error("no site named {0:?}")]
    NoSuchSite(String),
    #[error("a promotion is already running ({0}); one at a time")]
    Busy(String),
    #[error("site {0} already takes the traffic")]
    AlreadyActive(String),
}

/// What the driver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteAction {
    /// Stop executing this run (the record keeps it; the next leader resumes it).
    Abandon { run: String },
    /// Answer request `request` (its index in the input) with this refusal.
    Refuse { request: usize, why: Refusal },
    /// Read the record under this epoch and resume what it holds.
    TakeOver { epoch: u64 },
    /// Start a run of `site`; `request` is the index of the request it answers.
    Start {
        site: String,
        order: Order,
        request: Option<usize>,
    },
    /// Remember since when the active site is below its quorum (None: forget).
    BelowSince(Option<Instant>),
    /// Decide again at this instant at the latest (the grace ends).
    WakeAt(Instant),
}

/// Targets of `site` that are up.
fn up(input: &Input<'_>, site: &SiteSpec) -> usize {
    input.up.get(&site.name).copied().unwrap_or(0)
}

/// The site counts as healthy: it has targets and its quorum of them is up.
pub fn at_quorum(site: &SiteSpec, up: usize) -> bool {
    !site.targets.is_empty() && up >= site.quorum_count()
}

/// The decision. Pure: the same input at the same instant gives the same actions.
pub fn decide(input: &Input<'_>, now: Instant) -> Vec<SiteAction> {
    let mut out = Vec::new();
    let Some(epoch) = input.leading else {
        // Rule 1.
        if let Some(run) = input.running {
            out.push(SiteAction::Abandon { run: run.into() });
        }
        refuse_all(input, 0, Refusal::NotLeader, &mut out);
        forget_below(input, &mut out);
        return out;
    };
    if input.taken_over != Some(epoch) {
        // Rule 2 (a run executed under another epoch is not ours to go on with).
        if let Some(run) = input.running {
            out.push(SiteAction::Abandon { run: run.into() });
        }
        out.push(SiteAction::TakeOver { epoch });
        return out;
    }
    let Some(record) = input.record else {
        return out;
    };
    let busy = input
        .running
        .map(str::to_string)
        .or_else(|| record.current.as_ref().map(|c| c.id.clone()));
    if !input.requests.is_empty() {
        requests(input, record, busy, &mut out);
        return out;
    }
    if busy.is_some() {
        forget_below(input, &mut out);
        return out;
    }
    if let Some(a) = drill_failback(input, record) {
        out.push(a);
        return out;
    }
    if !input.policy.automatic {
        forget_below(input, &mut out);
        return out;
    }
    automatic(input, record, now, &mut out);
    out
}

/// Rule 3: the first request that can start starts; every other one is refused.
fn requests(input: &Input<'_>, record: &SiteRuns, busy: Option<String>, out: &mut Vec<SiteAction>) {
    let mut busy = busy;
    let active = record.active(input.sites);
    for (i, r) in input.requests.iter().enumerate() {
        let why = if !input.sites.iter().any(|s| s.name == r.site) {
            Refusal::NoSuchSite(r.site.clone())
        } else if let Some(id) = &busy {
            Refusal::Busy(id.clone())
        } else if active == Some(r.site.as_str()) {
            Refusal::AlreadyActive(r.site.clone())
        } else {
            busy = Some(format!("the one just requested for site {}", r.site));
            out.push(SiteAction::Start {
                site: r.site.clone(),
                order: Order {
                    kind: r.kind,
                    trigger: r.trigger.clone(),
                    drill_of: None,
                },
                request: Some(i),
            });
            continue;
        };
        out.push(SiteAction::Refuse { request: i, why });
    }
}

/// Rule 4: the last run was a drill that succeeded: fail back to where the traffic was.
fn drill_failback(input: &Input<'_>, record: &SiteRuns) -> Option<SiteAction> {
    let last = record.history.last()?;
    if last.kind != RunKind::Drill || last.state != RunState::Succeeded {
        return None;
    }
    let back = input.sites.iter().find(|s| s.name == last.from_site)?;
    if record.active(input.sites) == Some(back.name.as_str()) {
        return None;
    }
    Some(SiteAction::Start {
        site: back.name.clone(),
        order: Order {
            kind: RunKind::Promotion,
            trigger: format!("failback that ends drill {}", last.id),
            drill_of: Some(last.id.clone()),
        },
        request: None,
    })
}

/// Rules 5 and 6.
fn automatic(input: &Input<'_>, record: &SiteRuns, now: Instant, out: &mut Vec<SiteAction>) {
    let sites = input.sites;
    let Some(active) = record
        .active(sites)
        .and_then(|a| sites.iter().find(|s| s.name == a))
    else {
        return;
    };
    let (n_up, need) = (up(input, active), active.quorum_count());
    if active.targets.is_empty() || n_up >= need {
        forget_below(input, out);
        if input.policy.automatic_failback
            && !active.primary
            && let Some(p) = sites.iter().find(|s| s.primary)
            && at_quorum(p, up(input, p))
        {
            out.push(SiteAction::Start {
                site: p.name.clone(),
                order: Order {
                    kind: RunKind::Promotion,
                    trigger: format!(
                        "automatic failback: primary site {} is healthy again",
                        p.name
                    ),
                    drill_of: None,
                },
                request: None,
            });
        }
        return;
    }
    let since = match input.below_since {
        Some(s) => s,
        None => {
            out.push(SiteAction::BelowSince(Some(now)));
            now
        }
    };
    let ends = since.checked_add(input.policy.grace).unwrap_or(since);
    if now < ends {
        out.push(SiteAction::WakeAt(ends));
        return;
    }
    // A DR site that passed pre-flight first, then any other.
    let ready = |s: &&SiteSpec| input.ready.get(&s.name).copied().unwrap_or(false);
    let others = || sites.iter().filter(|s| s.name != active.name);
    let Some(dr) = others().find(ready).or_else(|| others().next()) else {
        return;
    };
    out.push(SiteAction::Start {
        site: dr.name.clone(),
        order: Order {
            kind: RunKind::Promotion,
            trigger: format!(
                "automatic: site {} below quorum ({n_up} of {} target(s) up, {need} needed) for {}",
                active.name,
                active.targets.len(),
                floatover_core::human::duration(input.policy.grace)
            ),
            drill_of: None,
        },
        request: None,
    });
    out.push(SiteAction::BelowSince(None));
}

fn refuse_all(input: &Input<'_>, from: usize, why: Refusal, out: &mut Vec<SiteAction>) {
    for i in from..input.requests.len() {
        out.push(SiteAction::Refuse {
            request: i,
            why: why.clone(),
        });
    }
}

fn forget_below(input: &Input<'_>, out: &mut Vec<SiteAction>) {
    if input.below_since.is_some() {
        out.push(SiteAction::BelowSince(None));
    }
}

/// The grace an automatic promotion waits, for callers that show it.
pub fn grace(policy: &SitePolicy) -> Duration {
    policy.grace
}
