//! Running a promotion: each step of the site's plan in order (a parallel group's steps at
//! once), every transition written to the record beside the lease under the leader's
//! epoch before the next step begins, so that a new leader resumes exactly there
//! ([`super::record::resume`]). A step may overrun its budget (reported: metric, log, the
//! record) and fails at twice its budget, or at its budget with `abort_over_budget`; an
//! approval waits for its timeout exactly.

use super::hooks::HookError;
use super::ops::SiteOps;
use super::record::{RunKind, RunRecord, RunState, StepRecord, StepState};
use super::spec::{SiteSpec, Step, StepKind};
use super::store::{RunStore, StoreError, update};
use crate::config::Spec;
use crate::engine::Command;
use crate::leader::{Fence, FenceError, Leadership};
use crate::metrics::Metrics;
use crate::model::Epoch;
use crate::probe::HealthBoard;
use crate::provider::ProviderError;
use crate::sidecar::SidecarCtx;
use crate::status::unix_ms;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

mod data;
mod fleet;
mod leaf;
mod steps;

pub use fleet::{TAG_RUN, TAG_SITE, client_token};

/// Approvals given by people (API or CLI), by site, until the waiting step takes them.
#[derive(Default)]
pub struct Approvals {
    given: Mutex<BTreeSet<String>>,
    notify: Notify,
}

impl Approvals {
    pub fn approve(&self, site: &str) {
        self.given
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(site.to_string());
        self.notify.notify_waiters();
    }

    fn take(&self, site: &str) -> bool {
        self.given
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(site)
    }

    /// Forget stale approvals (a run that ended without taking its own).
    pub fn clear(&self, site: &str) {
        self.take(site);
    }
}

/// What running a promotion needs.
#[derive(Clone)]
pub struct SiteCx {
    pub spec: Arc<Spec>,
    pub store: Arc<dyn RunStore>,
    pub ops: Arc<dyn SiteOps>,
    pub board: Arc<HealthBoard>,
    pub commands: mpsc::Sender<Command>,
    pub leadership: Leadership,
    pub metrics: Arc<Metrics>,
    pub approvals: Arc<Approvals>,
    pub status: Arc<crate::status::StatusStore>,
}

impl SiteCx {
    /// The context of the site task: what the controller gives every sidecar, and the
    /// site's own store, provider operations and approvals.
    pub fn new(
        sc: &SidecarCtx,
        spec: Arc<Spec>,
        store: Arc<dyn RunStore>,
        ops: Arc<dyn SiteOps>,
        approvals: Arc<Approvals>,
    ) -> Self {
        SiteCx {
            spec,
            store,
            ops,
            board: sc.board.clone(),
            commands: sc.commands.clone(),
            leadership: sc.leadership.clone(),
            metrics: sc.metrics.clone(),
            approvals,
            status: sc.status.clone(),
        }
    }
}

/// Why a run stopped before it finished (the record keeps it for the next leader).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("this replica may no longer act ({0}); the next leader resumes the run")]
    Fenced(#[from] FenceError),
    #[error(transparent)]
    Record(#[from] StoreError),
    #[error("run {0} is no longer the current one")]
    NotCurrent(String),
}

/// Why a step failed. [`StepError::Stop`] ends the run without recording the step as
/// failed (this replica may not write any more); every other one is the step's failure.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Stop(#[from] RunError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Hook(HookError),
    #[error(transparent)]
    Probe(#[from] crate::probe::CheckerError),
    #[error(transparent)]
    Template(#[from] crate::config::site::template::TemplateError),
    /// What the step waited for did not happen, in words for the record.
    #[error("{0}")]
    Unmet(String),
}

impl From<FenceError> for StepError {
    fn from(e: FenceError) -> Self {
        StepError::Stop(RunError::Fenced(e))
    }
}

impl From<HookError> for StepError {
    fn from(e: HookError) -> Self {
        match e {
            HookError::Fenced(f) => f.into(),
            other => StepError::Hook(other),
        }
    }
}

impl From<&str> for StepError {
    fn from(s: &str) -> Self {
        StepError::Unmet(s.into())
    }
}

impl From<String> for StepError {
    fn from(s: String) -> Self {
        StepError::Unmet(s)
    }
}

/// How a step went.
struct Outcome {
    result: Result<String, StepError>,
    /// Time spent waiting on the provider or on probes.
    waited: Duration,
    attempts: u32,
}

/// One run being executed by this leader.
pub struct Executor {
    cx: SiteCx,
    site: SiteSpec,
    epoch: u64,
    run_id: String,
    /// Serialises writes of parallel steps (each is read-check-write).
    write: tokio::sync::Mutex<()>,
}

impl Executor {
    pub fn new(cx: SiteCx, site: SiteSpec, epoch: u64, run_id: String) -> Self {
        Executor {
            cx,
            site,
            epoch,
            run_id,
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// May this replica still act under the run's epoch, for one provider call (or one
    /// record write) more? Asked right before each of them, as the engine does before
    /// every float move: a deposed leader stops at its fence deadline, not at the next
    /// decision.
    pub(super) fn permit(&self) -> Result<(), FenceError> {
        self.cx
            .leadership
            .permit(Epoch(self.epoch), self.cx.spec.aws.call_timeout)
    }

    /// The run as the record holds it now (a read: no write).
    async fn current(&self) -> Result<RunRecord, RunError> {
        let (runs, _) = self.cx.store.load().await?;
        runs.current
            .filter(|c| c.id == self.run_id)
            .ok_or_else(|| RunError::NotCurrent(self.run_id.clone()))
    }

    /// Change the run in the record (only while it is still ours and we still lead).
    /// Write `detail` into the running step `name` (progress a person reads in status).
    async fn note(&self, name: &str, detail: String) -> Result<(), RunError> {
        let name = name.to_string();
        self.save(move |r| {
            if let Some(s) = named(&mut r.steps, &name) {
                s.detail = Some(detail);
            }
        })
        .await
        .map(|_| ())
    }

    async fn save(&self, f: impl FnOnce(&mut RunRecord)) -> Result<RunRecord, RunError> {
        let _w = self.write.lock().await;
        self.permit()?;
        let id = self.run_id.clone();
        let (runs, found) = update(self.cx.store.as_ref(), self.epoch, |r| {
            match r.current.as_mut().filter(|c| c.id == id) {
                Some(c) => {
                    f(c);
                    Some(c.clone())
                }
                None => None,
            }
        })
        .await?;
        drop(runs);
        found.ok_or_else(|| RunError::NotCurrent(self.run_id.clone()))
    }

    /// Run every step not done yet; then finish the run. Returns the final record.
    pub async fn run(self) -> Result<RunRecord, RunError> {
        self.permit()?;
        let first = self.current().await?;
        let steps = self.site.run_steps(first.kind == RunKind::Drill);
        for (i, step) in steps.iter().enumerate() {
            let rec = self.current().await?;
            let state = rec.steps.get(i).map(|s| s.state);
            if matches!(state, Some(StepState::Done | StepState::Skipped)) {
                continue;
            }
            let ok = self.step(&[i], step).await?;
            if !ok && !step.optional {
                let err = self
                    .current()
                    .await?
                    .steps
                    .get(i)
                    .and_then(|s| s.error.clone())
                    .unwrap_or_default();
                return self
                    .finish(
                        RunState::Failed,
                        Some(format!("step {} failed: {err}", step.name)),
                    )
                    .await;
            }
        }
        self.finish(RunState::Succeeded, None).await
    }

    async fn finish(&self, state: RunState, error: Option<String>) -> Result<RunRecord, RunError> {
        let _w = self.write.lock().await;
        self.permit()?;
        let id = self.run_id.clone();
        let now = unix_ms();
        let (runs, _) = update(self.cx.store.as_ref(), self.epoch, |r| {
            if r.current.as_ref().is_some_and(|c| c.id == id) {
                r.finish(state.clone(), error.clone(), now);
            }
        })
        .await?;
        let rec = runs
            .history
            .iter()
            .rev()
            .find(|r| r.id == self.run_id)
            .cloned()
            .ok_or_else(|| RunError::NotCurrent(self.run_id.clone()))?;
        let outcome = match rec.state {
            RunState::Succeeded => "succeeded",
            _ => "failed",
        };
        let kind = match rec.kind {
            RunKind::Promotion => "promotion",
            RunKind::Drill => "drill",
        };
        self.cx
            .metrics
            .count_site_run(&self.site.name, kind, outcome);
        let total = rec
            .finished_unix_ms
            .unwrap_or(now)
            .saturating_sub(rec.started_unix_ms);
        if rec.rto_ms.is_some_and(|rto| total > rto) {
            self.cx
                .metrics
                .count_over_budget(&self.site.name, "(total)");
            tracing::warn!(site = %self.site.name, run = %rec.id, total_ms = total, rto_ms = rec.rto_ms, "promotion took longer than the site's RTO");
        }
        for s in self.cx.spec.sites.iter() {
            self.cx.metrics.set_site_active(
                &s.name,
                runs.active(&self.cx.spec.sites) == Some(s.name.as_str()),
            );
        }
        tracing::info!(site = %self.site.name, run = %rec.id, state = outcome, total_ms = total, error = rec.error.as_deref().unwrap_or(""), "site promotion finished");
        Ok(rec)
    }

    /// Run one step (at `path`: its index, and its index inside a parallel group).
    /// Returns whether it succeeded (or was optional).
    fn step<'a>(
        &'a self,
        path: &'a [usize],
        step: &'a Step,
    ) -> futures::future::BoxFuture<'a, Result<bool, RunError>> {
        Box::pin(async move {
            let started = unix_ms();
            self.save(|r| {
                if let Some(s) = at(r, path) {
                    s.state = StepState::Running;
                    s.started_unix_ms = Some(started);
                    s.error = None;
                }
            })
            .await?;
            tracing::info!(site = %self.site.name, step = %step.name, kind = step.kind.word(), budget = %floatover_core::human::duration(step.budget), "promotion step started");
            let t0 = Instant::now();
            let out = match &step.kind {
                StepKind::Parallel(inner) => {
                    let futs = inner.iter().enumerate().map(|(j, s)| {
                        let mut p = path.to_vec();
                        p.push(j);
                        async move { self.step(&p, s).await }
                    });
                    let results = futures::future::join_all(futs).await;
                    let mut failed = Vec::new();
                    for (r, s) in results.into_iter().zip(inner) {
                        if !r? {
                            failed.push(s.name.clone());
                        }
                    }
                    Outcome {
                        result: if failed.is_empty() {
                            Ok(format!("{} steps done", inner.len()))
                        } else {
                            Err(format!("failed: {}", failed.join(", ")).into())
                        },
                        waited: t0.elapsed(),
                        attempts: 1,
                    }
                }
                _ => self.leaf(step).await,
            };
            // This replica may not act any more: stop here, the record keeps the step
            // running for the next leader.
            let out = match out.result {
                Err(StepError::Stop(e)) => return Err(e),
                result => Outcome { result, ..out },
            };
            let took = t0.elapsed();
            let over = took > step.budget;
            if over {
                self.cx
                    .metrics
                    .count_over_budget(&self.site.name, &step.name);
                tracing::warn!(site = %self.site.name, step = %step.name, took_ms = took.as_millis() as u64, budget_ms = step.budget.as_millis() as u64, "promotion step over its budget");
            }
            self.cx
                .metrics
                .set_step_seconds(&self.site.name, &step.name, took.as_secs_f64());
            let finished = unix_ms();
            let ok = out.result.is_ok();
            let state = match (ok, step.optional) {
                (true, _) => StepState::Done,
                (false, true) => StepState::Skipped,
                (false, false) => StepState::Failed,
            };
            let waited = u64::try_from(out.waited.as_millis()).unwrap_or(u64::MAX);
            self.save(|r| {
                if let Some(s) = at(r, path) {
                    s.state = state;
                    s.finished_unix_ms = Some(finished);
                    s.waited_ms = waited;
                    s.attempts = out.attempts;
                    s.over_budget = over;
                    match &out.result {
                        Ok(d) => s.detail = Some(d.clone()),
                        Err(e) => s.error = Some(e.to_string()),
                    }
                }
            })
            .await?;
            match &out.result {
                Ok(d) => {
                    tracing::info!(site = %self.site.name, step = %step.name, took_ms = took.as_millis() as u64, detail = %d, "promotion step done")
                }
                Err(e) => {
                    tracing::error!(site = %self.site.name, step = %step.name, took_ms = took.as_millis() as u64, optional = step.optional, error = %e, "promotion step failed")
                }
            }
            Ok(ok || step.optional)
        })
    }

    /// The hard limit of a step (see the module docs).
    fn limit(&self, step: &Step) -> Duration {
        match step.kind {
            StepKind::Approval | StepKind::RpoGate => step.budget,
            _ if self.site.abort_over_budget => step.budget,
            _ => step.budget.saturating_mul(2),
        }
    }
}

/// The step record at `path` (top-level index, then index inside a parallel group).
/// The step named `name` anywhere in the run (step names are unique in a plan).
fn named<'r>(steps: &'r mut [StepRecord], name: &str) -> Option<&'r mut StepRecord> {
    for s in steps {
        if s.name == name {
            return Some(s);
        }
        if let Some(found) = named(&mut s.steps, name) {
            return Some(found);
        }
    }
    None
}

fn at<'r>(r: &'r mut RunRecord, path: &[usize]) -> Option<&'r mut StepRecord> {
    let (first, rest) = path.split_first()?;
    let mut s = r.steps.get_mut(*first)?;
    for i in rest {
        s = s.steps.get_mut(*i)?;
    }
    Some(s)
}

#[cfg(test)]
mod tests;
