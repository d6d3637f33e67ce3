//! The record of promotions, kept beside the lease so that it survives a leader change:
//! which site takes the traffic, the promotion in progress (one at most) with the state of
//! each step, and the last runs. Pure: the decisions about a record (start, resume, record
//! a step) are functions of it, tested without a store.

use super::spec::{SiteSpec, Step, StepKind};
use serde::{Deserialize, Serialize};

/// How many finished runs are kept in the record.
pub const HISTORY: usize = 20;

/// The whole record (one object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteRuns {
    /// Epoch of the leader that wrote it last: a leader with a lower epoch never writes.
    pub epoch: u64,
    /// Raised by every write of a record kept on a quorum of stores: among the copies a
    /// majority returns, the newest is the highest (epoch, revision).
    #[serde(default)]
    pub revision: u64,
    /// The site that takes the traffic (None: the primary).
    pub active_site: Option<String>,
    /// The promotion in progress.
    pub current: Option<RunRecord>,
    /// Finished runs, newest last.
    #[serde(default)]
    pub history: Vec<RunRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Promotion,
    Drill,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    /// Failed but optional: the plan went on.
    Skipped,
}

/// One promotion of one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub site: String,
    pub kind: RunKind,
    /// Who or what started it ("automatic: site east below quorum (0 of 2 up)",
    /// "switchover requested through the API").
    pub trigger: String,
    /// The site that had the traffic when the run started.
    pub from_site: String,
    pub state: RunState,
    pub started_unix_ms: u64,
    pub finished_unix_ms: Option<u64>,
    pub rto_ms: Option<u64>,
    pub steps: Vec<StepRecord>,
    /// Steps approved by a person (by name).
    #[serde(default)]
    pub approved: Vec<String>,
    /// For the failback that ends a drill: the drill's run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_of: Option<String>,
    /// Leader changes the run lived through.
    #[serde(default)]
    pub resumed: u32,
    pub error: Option<String>,
    /// Instances a `launch` step started (recorded before it waits for them, so that a
    /// new leader probes these instead of launching again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launched: Vec<Launched>,
    /// The site's recovery point objective when the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_ms: Option<u64>,
    /// Replication lag read right before the traffic moved: the writes this promotion
    /// may have lost (the measured RPO). None: no lag source, or it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_at_cutover_ms: Option<u64>,
}

impl RunRecord {
    /// Started by floatover itself (a failover or an automatic failback), not a person.
    pub fn automatic(&self) -> bool {
        self.trigger.starts_with("automatic")
    }
}

/// One instance launched by a run, with its addresses once known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launched {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub kind: String,
    pub state: StepState,
    pub budget_ms: u64,
    pub started_unix_ms: Option<u64>,
    pub finished_unix_ms: Option<u64>,
    /// Of which waiting on the provider or on probes (the rest is floatover's own).
    #[serde(default)]
    pub waited_ms: u64,
    pub attempts: u32,
    pub over_budget: bool,
    pub detail: Option<String>,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
}

impl StepRecord {
    pub fn took_ms(&self) -> Option<u64> {
        Some(self.finished_unix_ms?.saturating_sub(self.started_unix_ms?))
    }
}

fn pending(s: &Step) -> StepRecord {
    StepRecord {
        name: s.name.clone(),
        kind: s.kind.word().into(),
        state: StepState::Pending,
        budget_ms: u64::try_from(s.budget.as_millis()).unwrap_or(u64::MAX),
        started_unix_ms: None,
        finished_unix_ms: None,
        waited_ms: 0,
        attempts: 0,
        over_budget: false,
        detail: None,
        error: None,
        steps: match &s.kind {
            StepKind::Parallel(v) => v.iter().map(pending).collect(),
            _ => vec![],
        },
    }
}

/// Why a run cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("a promotion of site {site} is already running ({id}); one at a time")]
    Busy { site: String, id: String },
    #[error("site {0} already takes the traffic")]
    AlreadyActive(String),
}

impl SiteRuns {
    /// The site that takes the traffic.
    pub fn active<'a>(&'a self, sites: &'a [SiteSpec]) -> Option<&'a str> {
        self.active_site
            .as_deref()
            .or_else(|| sites.iter().find(|s| s.primary).map(|s| s.name.as_str()))
    }

    /// Begin a run of `site` (refused while another runs).
    pub fn start(
        &mut self,
        sites: &[SiteSpec],
        site: &SiteSpec,
        kind: RunKind,
        trigger: String,
        now_unix_ms: u64,
    ) -> Result<&RunRecord, StartError> {
        if let Some(c) = &self.current {
            return Err(StartError::Busy {
                site: c.site.clone(),
                id: c.id.clone(),
            });
        }
        let from = self.active(sites).unwrap_or_default().to_string();
        if from == site.name {
            return Err(StartError::AlreadyActive(site.name.clone()));
        }
        Ok(self.current.insert(RunRecord {
            id: format!("{}-{now_unix_ms}", site.name),
            site: site.name.clone(),
            kind,
            trigger,
            from_site: from,
            state: RunState::Running,
            started_unix_ms: now_unix_ms,
            finished_unix_ms: None,
            rto_ms: site
                .rto
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            steps: site
                .run_steps(kind == RunKind::Drill)
                .iter()
                .map(pending)
                .collect(),
            drill_of: None,
            approved: Vec::new(),
            resumed: 0,
            error: None,
            launched: Vec::new(),
            rpo_ms: site
                .data
                .as_ref()
                .and_then(|d| d.rpo)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            lag_at_cutover_ms: None,
        }))
    }

    /// End the current run: into the history; on success the site takes the traffic.
    pub fn finish(&mut self, state: RunState, error: Option<String>, now_unix_ms: u64) {
        if let Some(mut r) = self.current.take() {
            // A drill moves the traffic too (its failback moves it back).
            if state == RunState::Succeeded {
                self.active_site = Some(r.site.clone());
            }
            r.state = state;
            r.error = error;
            r.finished_unix_ms = Some(now_unix_ms);
            self.history.push(r);
            let n = self.history.len();
            if n > HISTORY {
                self.history.drain(..n - HISTORY);
            }
        }
    }
}

/// What a new leader does with a run it finds in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Go on: steps done stay done; a step that was running is run again (idempotent).
    Continue,
    /// Stop: this step was running and is not safe to run twice.
    Stop { step: String },
}

/// Decide how to resume `run` after a leader change; marks interrupted steps.
pub fn resume(run: &mut RunRecord, plan: &[Step]) -> Resume {
    run.resumed = run.resumed.saturating_add(1);
    for (rec, step) in run.steps.iter_mut().zip(plan) {
        if interrupted(rec, step) {
            rec.state = StepState::Failed;
            rec.error = Some(
                "interrupted by a leader change and not safe to run twice (idempotent: false): not repeated; check what it did, then promote again".into(),
            );
            return Resume::Stop {
                step: rec.name.clone(),
            };
        }
    }
    for rec in run.steps.iter_mut() {
        requeue(rec);
    }
    Resume::Continue
}

fn interrupted(rec: &StepRecord, step: &Step) -> bool {
    if rec.state != StepState::Running {
        return false;
    }
    match &step.kind {
        StepKind::Parallel(inner) => rec.steps.iter().zip(inner).any(|(r, s)| interrupted(r, s)),
        _ => !step.idempotent,
    }
}

/// A step that was running (idempotent) runs again from the start.
fn requeue(rec: &mut StepRecord) {
    if rec.state == StepState::Running {
        rec.state = StepState::Pending;
        for c in rec.steps.iter_mut() {
            requeue(c);
        }
    }
}
