//! The loop: gather (health board + provider observation) → plan (pure) → execute (leader
//! only, fenced, paced, concurrent across floats) → record (status, audit, metrics).
//!
//! One worker per group ([`group`]), each with its own memory and timers, so a provider
//! call that hangs in one group or region never delays a failover in another. Reads are
//! shared ([`reads`]): one read per lane (an EC2 region, Route 53, ARC) and tick covers
//! every group, so 500 groups cost the provider what one does. A worker wakes on a health
//! transition, a leadership change, a switchover request, the planner's own next-wake time
//! (failback delay, hold expiry), or a new shared read (the drift check while leading, the
//! resync as a standby). A health-driven reconcile plans from the cached observation so
//! that the first provider call leaves within microseconds of the threshold crossing; a
//! fresh read is asked for on gaining leadership and once more when the previous leader's
//! last call could have landed, shortly after every move (read-back) and after any failed
//! call. Calls wait for their provider tokens in priority order (failovers first), and a
//! worker waiting in a moving queue counts as making progress.

mod execute;
mod group;
mod reads;
mod report;
mod weights;

pub use weights::show as show_weights;
pub mod view;

pub use view::{group_view, health_view, holder_of, observed_view};

use crate::config::Spec;
use crate::faults::Faults;
use crate::leader::{EpochFloor, Leadership};
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::model::{GroupName, TargetId};
use crate::probe::HealthBoard;
use crate::provider::FloatProvider;
use crate::status::{AuditEvent, StatusStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
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

/// The engine: its group workers' shared context, the command queue, and the liveness
/// registry the workers beat into.
pub struct Engine {
    ctx: Ctx,
    commands: mpsc::Receiver<Command>,
    liveness: Arc<Liveness>,
}

/// What every group worker shares.
pub(crate) struct Ctx {
    pub spec: Arc<Spec>,
    pub provider: Arc<dyn FloatProvider>,
    pub board: Arc<HealthBoard>,
    pub leadership: Leadership,
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusStore>,
    /// Raised with every stamp epoch observed (epochs never go backwards).
    pub floor: Arc<EpochFloor>,
    pub faults: Faults,
    /// Groups not yet observed once; the floor settles when it reaches zero.
    pub unobserved: AtomicUsize,
    /// The shared reads, one lane per region and provider.
    pub reads: Arc<reads::Reads>,
}

impl Engine {
    /// An engine without fault injection, with its own liveness registry and floor.
    pub fn new(
        spec: Arc<Spec>,
        provider: Arc<dyn FloatProvider>,
        board: Arc<HealthBoard>,
        leadership: Leadership,
        metrics: Arc<Metrics>,
        status: Arc<StatusStore>,
        commands: mpsc::Receiver<Command>,
    ) -> Engine {
        let groups = spec.groups.len();
        let reads = Arc::new(reads::Reads::new(provider.as_ref(), &spec.groups));
        Engine {
            ctx: Ctx {
                spec,
                provider,
                board,
                leadership,
                metrics,
                status,
                floor: Arc::new(EpochFloor::default()),
                faults: Faults::default(),
                unobserved: AtomicUsize::new(groups),
                reads,
            },
            commands,
            liveness: Arc::new(Liveness::new()),
        }
    }

    /// Share the epoch floor with the elector (every observed stamp raises it).
    pub fn with_floor(mut self, floor: Arc<EpochFloor>) -> Self {
        self.ctx.floor = floor;
        self
    }

    /// Register the group workers' hearts here (the elector stops renewing on a stall).
    pub fn with_liveness(mut self, liveness: Arc<Liveness>) -> Self {
        self.liveness = liveness;
        self
    }

    /// Arm test faults.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.ctx.faults = faults;
        self
    }

    /// How long a group worker may go without a heartbeat: as long as the lease renewal
    /// deadline (a leader stuck longer than that must not keep its lease), never less than
    /// one provider call plus a second.
    pub fn max_gap(spec: &Spec) -> Duration {
        spec.leader
            .renew_deadline
            .max(spec.aws.call_timeout.saturating_add(Duration::from_secs(1)))
    }

    /// Run until `stop` is cancelled. Returns after in-flight calls have finished, so the
    /// caller may release the lease as soon as this returns. Returns early only if a
    /// group worker ended on its own, which the caller must treat as fatal.
    pub async fn run(mut self, stop: CancellationToken) {
        let ctx = Arc::new(self.ctx);
        ctx.status.expect_groups(ctx.spec.groups.len());
        let gap = Self::max_gap(&ctx.spec);
        let mut routes: HashMap<GroupName, mpsc::Sender<Command>> = HashMap::new();
        let mut workers = JoinSet::new();
        for lane in ctx.reads.lanes() {
            let task = reads::LaneTask {
                lane: lane.clone(),
                provider: ctx.provider.clone(),
                leadership: ctx.leadership.clone(),
                metrics: ctx.metrics.clone(),
                generation: ctx.reads.generation.clone(),
                leading_every: ctx.spec.drift_check.min(ctx.spec.resync_interval),
                standby_every: ctx.spec.resync_interval,
                slow_floor: ctx.spec.aws.call_timeout,
            };
            workers.spawn(task.run(stop.clone()));
        }
        let mut queues = tokio::time::interval(Duration::from_secs(1));
        queues.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for gi in 0..ctx.spec.groups.len() {
            let (tx, rx) = mpsc::channel(8);
            let name = ctx.spec.groups[gi].name.clone();
            let heart = self
                .liveness
                .register(format!("engine (group {name})"), gap);
            routes.insert(name, tx);
            workers.spawn(group::Worker::new(ctx.clone(), gi, rx, heart).run(stop.clone()));
        }
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = queues.tick() => {
                    let q = ctx.provider.queues();
                    ctx.metrics.set_queues(&q);
                    ctx.status.set_queues(q);
                }
                Some(c) = self.commands.recv() => {
                    let Command::Switchover { group, to, reply } = c;
                    match routes.get(&group) {
                        Some(tx) => {
                            if let Err(mpsc::error::SendError(Command::Switchover { reply, .. })) =
                                tx.send(Command::Switchover { group, to, reply }).await
                            {
                                let _ = reply.send(Err(SwitchoverError::Failed("the group's worker has stopped".into())));
                            }
                        }
                        None => {
                            let _ = reply.send(Err(SwitchoverError::UnknownGroup(group.0)));
                        }
                    }
                }
                Some(ended) = workers.join_next() => {
                    tracing::error!(outcome = ?ended.map(|_| "returned"), "a group worker or a read lane ended on its own; the engine stops so the process exits");
                    return;
                }
            }
        }
        while workers.join_next().await.is_some() {}
        tracing::info!("engine stopped");
    }
}
