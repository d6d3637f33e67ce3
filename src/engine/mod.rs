//! The loop: gather (health board + provider observation) → plan (pure) → execute (leader
//! only, fenced, paced, concurrent across floats) → record (status, audit, metrics).
//!
//! Wakes on a health transition, a leadership change, a switchover request, the planner's
//! own next-wake time (failback delay, hold expiry) and a periodic resync. A health-driven
//! reconcile plans from the cached observation so that the first provider call leaves
//! within microseconds of the threshold crossing; the cache is re-read on every resync, on
//! gaining leadership and after any failed call, and is updated by our own successful moves.

mod execute;
mod report;

use crate::config::{GroupSpec, Spec};
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::model::{Epoch, GroupName, Holder, TargetId};
use crate::plan::{self, Action, GroupMemory, GroupPlan, HealthView, Note, ObservedFloat};
use crate::probe::{HealthBoard, TargetHealth, TargetKey};
use crate::provider::{FloatProvider, Observation};
use crate::status::{AuditEvent, StatusStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a switchover was not done.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SwitchoverError {
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    #[error("group {group:?} has no target {target:?}")]
    UnknownTarget { group: String, target: String },
    #[error("target {0:?} is not healthy (health: {1})")]
    Unhealthy(String, &'static str),
    #[error("this replica is not the leader (leader: {0})")]
    NotLeader(String),
    #[error("switchover did not complete: {0}")]
    Failed(String),
}

/// Requests to the engine.
pub enum Command {
    Switchover {
        group: GroupName,
        to: TargetId,
        reply: oneshot::Sender<Result<Vec<AuditEvent>, SwitchoverError>>,
    },
}

/// Everything the engine works with.
pub struct Engine {
    pub spec: Arc<Spec>,
    pub provider: Arc<dyn FloatProvider>,
    pub board: Arc<HealthBoard>,
    pub leadership: Leadership,
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusStore>,
    pub commands: mpsc::Receiver<Command>,
}

struct Pending {
    group: GroupName,
    to: TargetId,
    since: Instant,
    audit_from: usize,
    reply: oneshot::Sender<Result<Vec<AuditEvent>, SwitchoverError>>,
}

/// Loop-local state: none of it decides where a float goes (the provider's state does).
#[derive(Default)]
struct State {
    cache: Option<HashMap<String, Observation>>,
    memory: HashMap<GroupName, GroupMemory>,
    pending: Vec<Pending>,
    next_wake: Option<Instant>,
    leading: Option<Epoch>,
    /// Configured floats the provider does not know (logged when this changes).
    missing: Vec<String>,
}

pub fn holder_of(g: &GroupSpec, h: &Option<crate::model::ProviderHolder>) -> Holder {
    match h {
        None => Holder::Nobody,
        Some(ph) => g
            .targets
            .iter()
            .find(|t| t.binding.matches(ph))
            .map(|t| Holder::Target(t.id.clone()))
            .unwrap_or_else(|| {
                Holder::Foreign(
                    ph.instance_id
                        .clone()
                        .or(ph.eni_id.clone())
                        .unwrap_or_default(),
                )
            }),
    }
}

/// The planner's view of a group's target health, from the health board's snapshot.
/// Shared by the engine and `floatover plan`, so the dry run decides exactly as the
/// controller would.
pub fn health_view(
    g: &GroupSpec,
    snapshot: &HashMap<TargetKey, TargetHealth>,
) -> HashMap<TargetId, HealthView> {
    g.targets
        .iter()
        .filter_map(|t| {
            let key = TargetKey {
                group: g.name.clone(),
                target: t.id.clone(),
            };
            snapshot.get(&key).map(|h| {
                (
                    t.id.clone(),
                    HealthView {
                        health: h.health,
                        since: h.since,
                    },
                )
            })
        })
        .collect()
}

/// The planner's view of a group's floats, from the provider's observation.
pub fn observed_view(
    g: &GroupSpec,
    observations: &HashMap<String, Observation>,
) -> HashMap<String, ObservedFloat> {
    g.floats
        .iter()
        .filter_map(|f| {
            observations.get(&f.id).map(|o| {
                (
                    f.id.clone(),
                    ObservedFloat {
                        holder: holder_of(g, &o.holder),
                        stamp: o.stamp.clone(),
                    },
                )
            })
        })
        .collect()
}

impl Engine {
    fn floats_and_enis(&self) -> (Vec<crate::model::FloatRef>, Vec<(String, String)>) {
        let floats = self
            .spec
            .groups
            .iter()
            .flat_map(|g| g.floats.iter().cloned())
            .collect();
        let mut enis: Vec<(String, String)> = self
            .spec
            .groups
            .iter()
            .flat_map(|g| g.targets.iter())
            .filter_map(|t| t.binding.eni_id.clone().map(|e| (t.region.clone(), e)))
            .collect();
        enis.sort();
        enis.dedup();
        (floats, enis)
    }

    /// Run until `stop` is cancelled. Returns after in-flight calls have finished, so the
    /// caller may release the lease as soon as this returns.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut health_rx = self.board.subscribe();
        let mut leader_rx = self.leadership.clone();
        let mut resync = tokio::time::interval(self.spec.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut st = State::default();
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                // A closed channel disables this branch (no busy loop).
                Some(c) = self.commands.recv() => self.accept(c, &mut st),
                r = health_rx.changed() => if r.is_err() { break },
                _ = leader_rx.changed() => {},
                _ = resync.tick() => st.cache = None,
                _ = tokio::time::sleep_until(st.next_wake.unwrap_or(far)) => st.next_wake = None,
            }
            self.reconcile(&mut st).await;
        }
        for p in st.pending.drain(..) {
            let _ = p.reply.send(Err(SwitchoverError::Failed(
                "controller is shutting down".into(),
            )));
        }
        tracing::info!("engine stopped");
    }

    fn accept(&self, cmd: Command, st: &mut State) {
        let Command::Switchover { group, to, reply } = cmd;
        let leader = self.leadership.state();
        if !leader.is_leader {
            let _ = reply.send(Err(SwitchoverError::NotLeader(
                leader.holder.unwrap_or_else(|| "unknown".into()),
            )));
            return;
        }
        tracing::info!(%group, %to, "switchover requested");
        st.memory.entry(group.clone()).or_default().switchover = Some(to.clone());
        st.pending.push(Pending {
            group,
            to,
            since: Instant::now(),
            audit_from: self.status.audit().len(),
            reply,
        });
    }

    async fn observe(&self, st: &mut State) -> bool {
        if st.cache.is_some() {
            return true;
        }
        let (floats, enis) = self.floats_and_enis();
        match self.provider.observe(&floats, &enis).await {
            Ok(o) => {
                let missing: Vec<String> = floats
                    .iter()
                    .filter(|f| !o.contains_key(&f.id))
                    .map(|f| f.id.clone())
                    .collect();
                if missing != st.missing {
                    if !missing.is_empty() {
                        tracing::warn!(
                            ?missing,
                            "configured floats not found at the provider; they are left alone"
                        );
                    }
                    st.missing = missing;
                }
                st.cache = Some(o);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "observation failed; retrying in 1s");
                self.status.set_observe_error(e.to_string());
                st.next_wake = Some(Instant::now() + Duration::from_secs(1));
                false
            }
        }
    }

    async fn reconcile(&self, st: &mut State) {
        let started = Instant::now();
        let leader = self.leadership.state();
        self.metrics.set_leader(leader.is_leader, leader.epoch);
        let now_leading = leader.is_leader.then_some(leader.epoch);
        if now_leading.is_some() && now_leading != st.leading {
            tracing::info!(epoch = %leader.epoch, "leading: re-reading provider state before acting");
            st.cache = None;
        }
        st.leading = now_leading;
        if !self.observe(st).await {
            return;
        }
        let Some(cache) = st.cache.as_ref() else {
            return;
        };
        let health = self.board.snapshot();
        let now = Instant::now();

        let mut plans: Vec<(usize, GroupPlan, HashMap<String, ObservedFloat>)> = Vec::new();
        for (gi, g) in self.spec.groups.iter().enumerate() {
            let hv = health_view(g, &health);
            let observed = observed_view(g, cache);
            let memory = st.memory.entry(g.name.clone()).or_default();
            let p = plan::plan_group(&plan::Input {
                spec: g,
                health: &hv,
                observed: &observed,
                memory,
                epoch: leader.epoch,
                now,
            });
            for n in &p.notes {
                if let Note::Fenced { .. } = n {
                    tracing::error!(group = %g.name, note = ?n, "refusing to act: a newer leader has stamped this float");
                }
            }
            plans.push((gi, p, observed));
        }
        st.next_wake = plans.iter().filter_map(|(_, p, _)| p.next_wake).min();
        if leader.is_leader {
            let actions: Vec<(usize, Action)> = plans
                .iter()
                .flat_map(|(gi, p, _)| p.actions.iter().cloned().map(move |a| (*gi, a)))
                .collect();
            if !actions.is_empty() {
                self.execute(st, actions, &health, leader.epoch, &leader.identity)
                    .await;
            }
        }
        // Status and metrics after the provider calls: they must not delay a failover.
        // (After a move, the immediate follow-up reconcile publishes the new holders.)
        self.publish(&plans, &health, now);
        self.finish_switchovers(st, &plans);
        self.metrics.observe_reconcile(started.elapsed());
    }
}
