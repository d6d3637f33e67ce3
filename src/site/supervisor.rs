//! The leader's site loop: resume a promotion a previous leader left running, watch the
//! active site's health quorum and promote a DR site when it is lost for `grace`, take
//! promotion requests (API, CLI), and publish every site's state for status. One
//! promotion at a time, executed in a child task this loop supervises (a panic there fails
//! the run, visibly; it never goes unnoticed).

use super::preflight::{self, Readiness};
use super::promote::{Approvals, Executor, SiteCx};
use super::run::{Resume, RunKind, RunRecord, RunState, SiteRuns, resume};
use super::spec::SiteSpec;
use super::store::update;
use crate::model::{Health, TargetKey};
use crate::sidecar::SidecarCtx;
use crate::status::{StatusStore, unix_ms};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A request to the site loop.
pub enum SiteRequest {
    Promote {
        site: String,
        kind: RunKind,
        trigger: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
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
    /// The promotion of this site in progress, or its last one.
    pub run: Option<RunRecord>,
}

/// What to start.
pub struct Order {
    pub kind: RunKind,
    pub trigger: String,
    /// For a drill's failback: the drill's run id.
    pub drill_of: Option<String>,
}

pub struct Supervisor {
    pub cx_parts: SiteParts,
    pub requests: mpsc::Receiver<SiteRequest>,
}

/// What the supervisor needs besides the sidecar context.
pub struct SiteParts {
    pub spec: Arc<crate::config::Spec>,
    pub store: Arc<dyn super::store::RunStore>,
    pub ops: Arc<dyn super::ops::SiteOps>,
    pub approvals: Arc<Approvals>,
}

const TICK: Duration = Duration::from_millis(500);
/// How often the record is re-read for status while a run is going.
const REFRESH: Duration = Duration::from_secs(1);

impl Supervisor {
    pub async fn run(mut self, sc: SidecarCtx) {
        let parts = &self.cx_parts;
        let cx = SiteCx {
            spec: parts.spec.clone(),
            store: parts.store.clone(),
            ops: parts.ops.clone(),
            board: sc.board.clone(),
            commands: sc.commands.clone(),
            leadership: sc.leadership.clone(),
            metrics: sc.metrics.clone(),
            approvals: parts.approvals.clone(),
            status: sc.status.clone(),
        };
        let sites = parts.spec.sites.clone();
        let policy = parts.spec.site_policy.clone();
        let mut running: Option<(String, JoinHandle<Result<RunRecord, String>>)> = None;
        let mut runs: Option<SiteRuns> = None;
        let mut led_epoch: Option<u64> = None;
        let mut below_since: Option<Instant> = None;
        let mut refreshed = Instant::now();
        // Re-read the record at the next tick (a run started or ended).
        let mut reload = false;
        let mut readiness: BTreeMap<String, Readiness> = BTreeMap::new();
        let mut preflight: Option<JoinHandle<BTreeMap<String, Readiness>>> = None;
        let mut next_preflight = Instant::now();
        publish(&sc.status, &sites, &cx, &SiteRuns::default(), &readiness);
        loop {
            let req = tokio::select! {
                _ = sc.stop.cancelled() => {
                    if let Some((_, h)) = running.take() {
                        // The record keeps the run; the next leader resumes it.
                        h.abort();
                    }
                    return;
                }
                r = self.requests.recv() => r,
                _ = tokio::time::sleep(TICK) => None,
            };
            // Pre-flight runs on every replica, in a child task (slow provider calls never
            // hold this loop up).
            if preflight.as_ref().is_some_and(|h| h.is_finished())
                && let Some(h) = preflight.take()
            {
                match h.await {
                    Ok(r) => {
                        for (name, rd) in &r {
                            sc.metrics.set_site_ready(name, rd.ready);
                            if !rd.ready {
                                tracing::warn!(site = %name, problems = %rd.problems.join("; "), "pre-flight: site not ready");
                            }
                        }
                        readiness = r;
                    }
                    Err(e) => tracing::error!(error = %e, "pre-flight task failed"),
                }
                publish(
                    &sc.status,
                    &sites,
                    &cx,
                    runs.as_ref().unwrap_or(&SiteRuns::default()),
                    &readiness,
                );
            }
            if preflight.is_none() && Instant::now() >= next_preflight {
                next_preflight = Instant::now() + policy.preflight_interval;
                let (spec, ops, status) = (cx.spec.clone(), cx.ops.clone(), sc.status.clone());
                preflight = Some(tokio::spawn(async move {
                    let mut out = BTreeMap::new();
                    for s in &spec.sites {
                        let mut r = preflight::check(&spec, ops.as_ref(), s, unix_ms()).await;
                        r.problems.extend(preflight::traffic_problems(&status, s));
                        r.ready = r.problems.is_empty();
                        out.insert(s.name.clone(), r);
                    }
                    out
                }));
            }
            let st = sc.leadership.state();
            if !st.is_leader {
                if let Some((id, h)) = running.take() {
                    tracing::warn!(run = %id, "lost leadership during a promotion; the next leader resumes it");
                    h.abort();
                }
                led_epoch = None;
                below_since = None;
                if let Some(SiteRequest::Promote { reply, .. }) = req {
                    let _ = reply.send(Err("this replica does not lead; ask the leader".into()));
                }
                continue;
            }
            // Newly leading: read the record and resume what was left running.
            if led_epoch != Some(st.epoch.0) {
                match take_over(&cx, st.epoch.0).await {
                    Ok((r, resumed)) => {
                        if let Some((id, site)) = resumed {
                            running = Some((id.clone(), spawn(&cx, &site, st.epoch.0, id)));
                        }
                        runs = Some(r);
                        led_epoch = Some(st.epoch.0);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the site record; trying again");
                        if let Some(SiteRequest::Promote { reply, .. }) = req {
                            let _ = reply.send(Err(format!("cannot read the site record: {e}")));
                        }
                        continue;
                    }
                }
            }
            // A run ended: its outcome is in the record.
            if running.as_ref().is_some_and(|(_, h)| h.is_finished())
                && let Some((id, h)) = running.take()
            {
                match h.await {
                    Ok(Ok(rec))
                        if rec.kind == RunKind::Drill && rec.state == RunState::Succeeded =>
                    {
                        // The drill's last act: fail back to where the traffic was.
                        tracing::info!(run = %id, back_to = %rec.from_site, "drill succeeded; failing back");
                        let why = format!("failback that ends drill {}", rec.id);
                        if let Err(e) = self
                            .start(
                                &cx,
                                st.epoch.0,
                                &rec.from_site,
                                Order {
                                    kind: RunKind::Promotion,
                                    trigger: why,
                                    drill_of: Some(rec.id.clone()),
                                },
                                &mut running,
                            )
                            .await
                        {
                            tracing::error!(run = %id, error = %e, "drill failback not started");
                        }
                    }
                    Ok(Ok(rec)) => tracing::info!(run = %id, state = ?rec.state, "site run ended"),
                    Ok(Err(e)) => tracing::error!(run = %id, error = %e, "site run stopped"),
                    Err(e) => {
                        tracing::error!(run = %id, error = %e, "site run task failed; marking the run failed");
                        let now = unix_ms();
                        let _ = update(cx.store.as_ref(), st.epoch.0, |r| {
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
                reload = true;
            }
            // Re-read the record for status: every second during a run, else every ten.
            let due = if running.is_some() || req.is_some() {
                REFRESH
            } else {
                REFRESH * 10
            };
            if reload || refreshed.elapsed() >= due {
                if let Ok((r, _)) = cx.store.load().await {
                    runs = Some(r);
                    reload = false;
                }
                refreshed = Instant::now();
            }
            let Some(cur) = runs.clone() else { continue };
            publish(&sc.status, &sites, &cx, &cur, &readiness);
            if let Some(SiteRequest::Promote {
                site,
                kind,
                trigger,
                reply,
            }) = req
            {
                let r = self
                    .start(
                        &cx,
                        st.epoch.0,
                        &site,
                        Order {
                            kind,
                            trigger,
                            drill_of: None,
                        },
                        &mut running,
                    )
                    .await;
                if r.is_ok() {
                    reload = true;
                }
                let _ = reply.send(r);
                continue;
            }
            // Automatic failover: the active site has lost its quorum for `grace`.
            if !policy.automatic || running.is_some() || cur.current.is_some() {
                below_since = None;
                continue;
            }
            let Some(active) = cur
                .active(&sites)
                .and_then(|a| sites.iter().find(|s| s.name == a))
            else {
                continue;
            };
            let (up, need) = (up_targets(&cx, active), active.quorum_count());
            if active.targets.is_empty() || up >= need {
                below_since = None;
                if policy.automatic_failback
                    && !active.primary
                    && let Some(p) = sites.iter().find(|s| s.primary)
                    && !p.targets.is_empty()
                    && up_targets(&cx, p) >= p.quorum_count()
                {
                    let why = format!(
                        "automatic failback: primary site {} is healthy again",
                        p.name
                    );
                    let name = p.name.clone();
                    if let Err(e) = self
                        .start(
                            &cx,
                            st.epoch.0,
                            &name,
                            Order {
                                kind: RunKind::Promotion,
                                trigger: why,
                                drill_of: None,
                            },
                            &mut running,
                        )
                        .await
                    {
                        tracing::error!(error = %e, "automatic failback not started");
                    }
                }
                continue;
            }
            let since = *below_since.get_or_insert_with(Instant::now);
            if since.elapsed() < policy.grace {
                continue;
            }
            // A DR site that passed pre-flight first, then any other.
            let ready = |s: &&SiteSpec| readiness.get(&s.name).is_some_and(|r| r.ready);
            let others = || sites.iter().filter(|s| s.name != active.name);
            let Some(dr) = others().find(ready).or_else(|| others().next()) else {
                continue;
            };
            let why = format!(
                "automatic: site {} below quorum ({up} of {} target(s) up, {need} needed) for {}",
                active.name,
                active.targets.len(),
                humantime::format_duration(policy.grace)
            );
            tracing::warn!(site = %active.name, promote = %dr.name, "{why}");
            let name = dr.name.clone();
            match self
                .start(
                    &cx,
                    st.epoch.0,
                    &name,
                    Order {
                        kind: RunKind::Promotion,
                        trigger: why,
                        drill_of: None,
                    },
                    &mut running,
                )
                .await
            {
                Ok(_) => reload = true,
                Err(e) => tracing::error!(error = %e, "automatic promotion not started"),
            }
            below_since = None;
        }
    }

    async fn start(
        &self,
        cx: &SiteCx,
        epoch: u64,
        site: &str,
        order: Order,
        running: &mut Option<(String, JoinHandle<Result<RunRecord, String>>)>,
    ) -> Result<String, String> {
        let Order {
            kind,
            trigger,
            drill_of,
        } = order;
        let Some(spec) = cx.spec.sites.iter().find(|s| s.name == site) else {
            return Err(format!("no site named {site:?}"));
        };
        if let Some((id, _)) = running {
            return Err(format!(
                "a promotion is already running ({id}); one at a time"
            ));
        }
        cx.approvals.clear(site);
        let now = unix_ms();
        let (_, started) = update(cx.store.as_ref(), epoch, |r| {
            let id = r
                .start(&cx.spec.sites, spec, kind, trigger.clone(), now)
                .map(|run| run.id.clone())
                .map_err(|e| e.to_string())?;
            if let Some(c) = r.current.as_mut() {
                c.drill_of = drill_of.clone();
            }
            Ok::<String, String>(id)
        })
        .await
        .map_err(|e| e.to_string())?;
        let id = started?;
        tracing::info!(site, run = %id, trigger = %trigger, "site promotion started");
        *running = Some((id.clone(), spawn(cx, spec, epoch, id.clone())));
        Ok(id)
    }
}

fn spawn(
    cx: &SiteCx,
    site: &SiteSpec,
    epoch: u64,
    id: String,
) -> JoinHandle<Result<RunRecord, String>> {
    let ex = Executor::new(cx.clone(), site.clone(), epoch, id);
    tokio::spawn(ex.run())
}

/// A new leader's first look at the record: a run left running is resumed (or stopped,
/// when its interrupted step must not run twice).
async fn take_over(
    cx: &SiteCx,
    epoch: u64,
) -> Result<(SiteRuns, Option<(String, SiteSpec)>), String> {
    let sites = cx.spec.sites.clone();
    let now = unix_ms();
    let (runs, resumed) = update(cx.store.as_ref(), epoch, |r| {
        let run = r.current.as_mut()?;
        let Some(site) = sites.iter().find(|s| s.name == run.site) else {
            r.finish(RunState::Failed, Some("its site is no longer in the config".into()), now);
            return None;
        };
        match resume(run, &site.run_steps(run.kind == RunKind::Drill)) {
            Resume::Continue => Some((run.id.clone(), site.clone())),
            Resume::Stop { step } => {
                let msg = format!("stopped after a leader change: step {step} was interrupted and is not safe to run twice");
                r.finish(RunState::Failed, Some(msg), now);
                None
            }
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some((id, _)) = &resumed {
        tracing::warn!(run = %id, "resuming the promotion a previous leader left running");
    }
    Ok((runs, resumed))
}

fn up_targets(cx: &SiteCx, site: &SiteSpec) -> usize {
    site.targets
        .iter()
        .filter(|(g, t)| {
            cx.board.get(&TargetKey {
                group: g.clone(),
                target: t.clone(),
            }) == Health::Up
        })
        .count()
}

fn publish(
    status: &StatusStore,
    sites: &[SiteSpec],
    cx: &SiteCx,
    runs: &SiteRuns,
    readiness: &BTreeMap<String, Readiness>,
) {
    let active = runs.active(sites);
    let v: Vec<SiteStatus> = sites
        .iter()
        .map(|s| {
            let up = up_targets(cx, s);
            cx.metrics
                .set_site_active(&s.name, active == Some(s.name.as_str()));
            SiteStatus {
                name: s.name.clone(),
                tier: s.tier.as_str().into(),
                region: s.region.clone(),
                primary: s.primary,
                active: active == Some(s.name.as_str()),
                targets_up: up,
                targets: s.targets.len(),
                quorum: s.quorum_count(),
                healthy: !s.targets.is_empty() && up >= s.quorum_count(),
                ready: readiness.get(&s.name).map(|r| r.ready),
                not_ready: readiness
                    .get(&s.name)
                    .map(|r| r.problems.clone())
                    .unwrap_or_default(),
                preflight_unix_ms: readiness.get(&s.name).map(|r| r.checked_unix_ms),
                run: runs
                    .current
                    .iter()
                    .chain(runs.history.iter().rev())
                    .find(|r| r.site == s.name)
                    .cloned(),
            }
        })
        .collect();
    status.set_sites(serde_json::to_value(v).unwrap_or_default());
}
