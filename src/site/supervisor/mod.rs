//! The leader's site loop, as a thin driver around the pure [`decide`]: it gathers the
//! input (leadership, the run record, which sites are up and ready, the requests
//! waiting), carries the actions out (take the record over, start a run in a child task,
//! answer a request, abandon a run) and sleeps until something changes: a health
//! transition, a leadership change, a request, a run or pre-flight ending, or a deadline
//! the decision named (the end of the grace). One promotion at a time, executed in a
//! child task this loop supervises: a panic there fails the run, visibly.

use super::decide::{self, Input, Order, Refusal, Request, SiteAction};
use super::preflight::{self, Readiness};
use super::promote::{Approvals, Executor, RunError, SiteCx};
use super::record::{Resume, RunKind, RunRecord, RunState, SiteRuns, StartError, resume};
use super::spec::SiteSpec;
use super::store::{RunStore, StoreError, update};
use crate::model::{Health, TargetKey};
use crate::provider::sites::SiteOps;
use crate::sidecar::SidecarCtx;
use crate::status::{StatusStore, unix_ms};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod runs;
pub(crate) use runs::up_targets;
use runs::{publish, spawn, take_over};

/// Why a request to the site loop was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot read the site record: {0}")]
    Record(#[source] StoreError),
    #[error("the site loop stopped before answering")]
    Stopped,
}

/// A request to the site loop, with where to send the answer (the run's id).
pub struct SiteRequest {
    pub request: Request,
    pub reply: oneshot::Sender<Result<String, SiteError>>,
}

/// What the API holds to reach the site loop.
#[derive(Clone)]
pub struct SiteHandle {
    pub requests: mpsc::Sender<SiteRequest>,
    pub approvals: Arc<Approvals>,
}

/// One site as shown by status and `GET /api/v1/sites`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SiteStatus {
    pub name: String,
    pub tier: String,
    pub region: String,
    pub primary: bool,
    pub active: bool,
    pub targets_up: usize,
    pub targets: usize,
    pub quorum: usize,
    pub healthy: bool,
    /// Pre-flight: could its plan run now? (None: not checked yet.)
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<String>,
    pub preflight_unix_ms: Option<u64>,
    /// The site's recovery point objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_ms: Option<u64>,
    /// Its replication lag at the last pre-flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    /// Why the lag could not be read at the last pre-flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_error: Option<String>,
    /// The promotion of this site in progress, or its last one.
    pub run: Option<RunRecord>,
}

/// The site loop: what it is built with, before the controller hands it its context.
pub struct Supervisor {
    pub spec: Arc<crate::config::Spec>,
    pub store: Arc<dyn RunStore>,
    pub ops: Arc<dyn SiteOps>,
    pub approvals: Arc<Approvals>,
    pub requests: mpsc::Receiver<SiteRequest>,
}

/// How often the record is re-read for status while a run is going (ten times slower
/// when none is).
const REFRESH: Duration = Duration::from_secs(1);

type RunTask = JoinHandle<Result<RunRecord, RunError>>;

/// The driver's memory between two decisions.
struct Driver {
    cx: SiteCx,
    record: Option<SiteRuns>,
    taken_over: Option<u64>,
    running: Option<(String, RunTask)>,
    below_since: Option<Instant>,
    wake: Option<Instant>,
    readiness: BTreeMap<String, Readiness>,
    pending: Vec<SiteRequest>,
    refreshed: Instant,
}

impl Supervisor {
    /// Run until the controller stops. Pre-flight runs on every replica; everything else
    /// only while this replica leads.
    pub async fn run(mut self, sc: SidecarCtx) {
        let cx = SiteCx::new(&sc, self.spec, self.store, self.ops, self.approvals);
        let mut d = Driver {
            cx,
            record: None,
            taken_over: None,
            running: None,
            below_since: None,
            wake: None,
            readiness: BTreeMap::new(),
            pending: Vec::new(),
            refreshed: Instant::now(),
        };
        let mut board = d.cx.board.subscribe();
        let mut leadership = d.cx.leadership.clone();
        let mut preflight: Option<JoinHandle<BTreeMap<String, Readiness>>> = None;
        let mut next_preflight = Instant::now();
        let mut requests_open = true;
        d.publish();
        loop {
            if preflight.is_none() && Instant::now() >= next_preflight {
                next_preflight = Instant::now() + d.cx.spec.site_policy.preflight_interval;
                preflight = Some(spawn_preflight(&d.cx));
            }
            d.settle().await;
            let refresh = d.refreshed + d.refresh_every();
            let fence = d.cx.leadership.state().fence_deadline;
            let until = [Some(refresh), Some(next_preflight), d.wake, fence]
                .into_iter()
                .flatten()
                .filter(|t| *t > Instant::now())
                .min()
                .unwrap_or(refresh);
            tokio::select! {
                _ = sc.stop.cancelled() => {
                    if let Some((_, h)) = d.running.take() {
                        // The record keeps the run; the next leader resumes it.
                        h.abort();
                    }
                    for r in d.pending.drain(..) {
                        let _ = r.reply.send(Err(SiteError::Stopped));
                    }
                    return;
                }
                r = self.requests.recv(), if requests_open => match r {
                    Some(r) => d.pending.push(r),
                    None => requests_open = false,
                },
                _ = board.changed() => {}
                _ = leadership.changed() => {}
                r = join(&mut d.running) => d.ended(r).await,
                r = join_preflight(&mut preflight) => d.readiness(r),
                _ = tokio::time::sleep_until(until) => {}
            }
            if Instant::now() >= refresh {
                d.reload().await;
            }
        }
    }
}

/// Wait for the run task, if there is one (pends forever otherwise).
async fn join(running: &mut Option<(String, RunTask)>) -> (String, RunOutcome) {
    match running {
        Some((id, h)) => {
            let r = h.await;
            let id = id.clone();
            *running = None;
            (id, r)
        }
        None => std::future::pending().await,
    }
}

type RunOutcome = Result<Result<RunRecord, RunError>, tokio::task::JoinError>;

async fn join_preflight(
    h: &mut Option<JoinHandle<BTreeMap<String, Readiness>>>,
) -> Result<BTreeMap<String, Readiness>, tokio::task::JoinError> {
    match h {
        Some(j) => {
            let r = j.await;
            *h = None;
            r
        }
        None => std::future::pending().await,
    }
}

/// Pre-flight in a child task (slow provider calls never hold the loop up).
fn spawn_preflight(cx: &SiteCx) -> JoinHandle<BTreeMap<String, Readiness>> {
    let (spec, ops, status) = (cx.spec.clone(), cx.ops.clone(), cx.status.clone());
    tokio::spawn(async move {
        let mut out = BTreeMap::new();
        for s in &spec.sites {
            let mut r = preflight::check(&spec, ops.as_ref(), s, unix_ms()).await;
            r.problems.extend(preflight::traffic_problems(&status, s));
            r.ready = r.problems.is_empty();
            out.insert(s.name.clone(), r);
        }
        out
    })
}

impl Driver {
    fn refresh_every(&self) -> Duration {
        if self.running.is_some() {
            REFRESH
        } else {
            REFRESH * 10
        }
    }

    /// Decide and act until the decision asks for nothing new (a take-over or a start
    /// changes the input; at most a few rounds).
    async fn settle(&mut self) {
        for _ in 0..4 {
            let up: BTreeMap<String, usize> = self
                .cx
                .spec
                .sites
                .iter()
                .map(|s| (s.name.clone(), up_targets(&self.cx, s)))
                .collect();
            let ready: BTreeMap<String, bool> = self
                .readiness
                .iter()
                .map(|(k, r)| (k.clone(), r.ready))
                .collect();
            let requests: Vec<Request> = self.pending.iter().map(|r| r.request.clone()).collect();
            let st = self.cx.leadership.state();
            let input = Input {
                sites: &self.cx.spec.sites,
                policy: &self.cx.spec.site_policy,
                leading: st.is_leader.then_some(st.epoch.0),
                taken_over: self.taken_over,
                record: self.record.as_ref(),
                running: self.running.as_ref().map(|(id, _)| id.as_str()),
                up: &up,
                ready: &ready,
                below_since: self.below_since,
                requests: &requests,
            };
            let actions = decide::decide(&input, Instant::now());
            let again = self.act(actions, st.epoch.0).await;
            if !st.is_leader {
                self.taken_over = None;
            }
            // Status shows the record as the leader holds it (a standby shows what its
            // pre-flight found, see `readiness`).
            if self.taken_over.is_some() {
                self.publish();
            }
            if !again {
                return;
            }
        }
    }

    /// Carry the actions out; true when the input changed enough to decide again.
    async fn act(&mut self, actions: Vec<SiteAction>, epoch: u64) -> bool {
        self.wake = None;
        let mut answered: Vec<(usize, Result<String, SiteError>)> = Vec::new();
        let mut again = false;
        for a in actions {
            match a {
                SiteAction::Abandon { run } => {
                    tracing::warn!(run = %run, "lost leadership during a promotion; the next leader resumes it");
                    if let Some((_, h)) = self.running.take() {
                        h.abort();
                    }
                    self.taken_over = None;
                }
                SiteAction::Refuse { request, why } => answered.push((request, Err(why.into()))),
                SiteAction::TakeOver { epoch } => match take_over(&self.cx, epoch).await {
                    Ok((runs, resumed)) => {
                        if let Some((id, site)) = resumed {
                            self.running = Some((id.clone(), spawn(&self.cx, &site, epoch, id)));
                        }
                        self.record = Some(runs);
                        self.taken_over = Some(epoch);
                        again = true;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the site record; trying again");
                        for i in 0..self.pending.len() {
                            answered.push((i, Err(SiteError::Record(e.clone()))));
                        }
                        // Try again soon, not in a hot loop.
                        self.wake = Some(Instant::now() + REFRESH);
                    }
                },
                SiteAction::Start {
                    site,
                    order,
                    request,
                } => {
                    let r = self.start(epoch, &site, order).await;
                    match (&r, request) {
                        (Ok(_), _) => again = true,
                        (Err(e), None) => {
                            tracing::error!(site = %site, error = %e, "site run not started")
                        }
                        _ => {}
                    }
                    if let Some(i) = request {
                        answered.push((i, r));
                    }
                }
                SiteAction::BelowSince(t) => self.below_since = t,
                SiteAction::WakeAt(t) => self.wake = Some(t),
            }
        }
        // Answer (and forget) the requests, highest index first so the others keep theirs.
        answered.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, r) in answered {
            if i < self.pending.len() {
                let req = self.pending.remove(i);
                let _ = req.reply.send(r);
            }
        }
        again
    }

    async fn start(&mut self, epoch: u64, site: &str, order: Order) -> Result<String, SiteError> {
        let cx = &self.cx;
        let Some(spec) = cx.spec.sites.iter().find(|s| s.name == site) else {
            return Err(Refusal::NoSuchSite(site.into()).into());
        };
        let Order {
            kind,
            trigger,
            drill_of,
        } = order;
        cx.approvals.clear(site);
        let now = unix_ms();
        let (runs, started) = update(cx.store.as_ref(), epoch, |r| {
            let id = r
                .start(&cx.spec.sites, spec, kind, trigger.clone(), now)
                .map(|run| run.id.clone())?;
            if let Some(c) = r.current.as_mut() {
                c.drill_of = drill_of.clone();
            }
            Ok::<String, StartError>(id)
        })
        .await
        .map_err(SiteError::Record)?;
        let id = started?;
        tracing::info!(site, run = %id, trigger = %trigger, "site promotion started");
        self.record = Some(runs);
        self.running = Some((id.clone(), spawn(cx, spec, epoch, id.clone())));
        Ok(id)
    }

    /// A run's task ended: its outcome is in the record (a panic is written there).
    async fn ended(&mut self, (id, r): (String, RunOutcome)) {
        match r {
            Ok(Ok(rec)) => tracing::info!(run = %id, state = ?rec.state, "site run ended"),
            Ok(Err(e)) => tracing::error!(run = %id, error = %e, "site run stopped"),
            Err(e) => {
                tracing::error!(run = %id, error = %e, "site run task failed; marking the run failed");
                let now = unix_ms();
                if let Some(epoch) = self.taken_over {
                    let _ = update(self.cx.store.as_ref(), epoch, |r| {
                        if r.current.as_ref().is_some_and(|c| c.id == id) {
                            r.finish(
                                RunState::Failed,
                                Some(format!("the run's task failed: {e}")),
                                now,
                            );
                        }
                    })
                    .await;
                }
            }
        }
        self.reload().await;
    }

    fn readiness(&mut self, r: Result<BTreeMap<String, Readiness>, tokio::task::JoinError>) {
        match r {
            Ok(r) => {
                for (name, rd) in &r {
                    self.cx.metrics.set_site_ready(name, rd.ready);
                    if !rd.ready {
                        tracing::warn!(site = %name, problems = %rd.problems.join("; "), "pre-flight: site not ready");
                    }
                }
                self.readiness = r;
            }
            Err(e) => tracing::error!(error = %e, "pre-flight task failed"),
        }
        self.publish();
    }

    /// Re-read the record (for status, and to see what a run wrote).
    async fn reload(&mut self) {
        self.refreshed = Instant::now();
        if self.taken_over.is_none() {
            return;
        }
        match self.cx.store.load().await {
            Ok((r, _)) => self.record = Some(r),
            Err(e) => tracing::warn!(error = %e, "cannot re-read the site record"),
        }
    }

    fn publish(&self) {
        let empty = SiteRuns::default();
        publish(
            &self.cx,
            self.record.as_ref().unwrap_or(&empty),
            &self.readiness,
        );
    }
}
