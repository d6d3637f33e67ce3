//! Drives a [`LeaseBackend`] on time and publishes its state.

use super::{EpochFloor, Fence, FenceError, LeaderState, LeaseBackend, RoundCtx, StoreHealth};
use crate::liveness::Liveness;
use crate::model::Epoch;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Cheap, cloneable view of leadership for the engine, the API and the providers.
#[derive(Clone)]
pub struct Leadership {
    rx: watch::Receiver<LeaderState>,
}

impl Leadership {
    /// Current state, with `is_leader` already false once the fence deadline has passed.
    pub fn state(&self) -> LeaderState {
        let mut s = self.rx.borrow().clone();
        if s.is_leader && s.fence_deadline.is_none_or(|d| Instant::now() >= d) {
            s.is_leader = false;
        }
        s
    }

    /// Resolves when the published state changes.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            // Elector gone: nothing will ever change again.
            std::future::pending::<()>().await;
        }
    }

    /// A handle that always leads under epoch 1 (benches and in-process experiments that
    /// measure the engine without an election).
    pub fn always_leader(identity: &str) -> Self {
        Self::fixed(LeaderState {
            identity: identity.to_string(),
            is_leader: true,
            epoch: Epoch(1),
            holder: Some(identity.to_string()),
            holder_api: None,
            store: StoreHealth::default(),
            fence_deadline: Some(Instant::now() + Duration::from_secs(24 * 3600)),
            members: Vec::new(),
        })
    }

    /// A handle that follows whatever the test sends on the channel (deterministic engine
    /// tests: gain, lose or change leadership at an exact virtual time).
    pub fn follow(rx: watch::Receiver<LeaderState>) -> Self {
        Leadership { rx }
    }

    /// A handle fixed to one state, for tests and benches.
    pub fn fixed(state: LeaderState) -> Self {
        let (tx, rx) = watch::channel(state);
        // Keep the sender alive for the life of the process so `changed` pends forever.
        std::mem::forget(tx);
        Leadership { rx }
    }
}

impl Fence for Leadership {
    fn permit(&self, epoch: Epoch, call_budget: Duration) -> Result<(), FenceError> {
        let s = self.rx.borrow();
        if !s.is_leader {
            return Err(FenceError::NotLeader);
        }
        if s.epoch != epoch {
            return Err(FenceError::EpochChanged {
                decided: epoch,
                now: s.epoch,
            });
        }
        let now = Instant::now();
        let deadline = s.fence_deadline.ok_or(FenceError::NotLeader)?;
        if now + call_budget > deadline {
            return Err(FenceError::LeaseTooOld {
                remaining_ms: deadline.saturating_duration_since(now).as_millis() as u64,
                needed_ms: call_budget.as_millis() as u64,
            });
        }
        Ok(())
    }
}

/// Owns the backend and runs election rounds until cancelled.
pub struct Elector {
    backend: Box<dyn LeaseBackend>,
    tx: watch::Sender<LeaderState>,
    liveness: Option<Arc<Liveness>>,
    /// The elector's own heartbeat (registered by [`Elector::guarded`]): a round stuck
    /// past its bounds shows on `/healthz` instead of leaving a replica silently unable
    /// to lead.
    heart: Option<crate::liveness::Heart>,
    floor: Arc<EpochFloor>,
    /// Take the lease even if the floor has not settled after this (a region whose API
    /// hangs must not keep every other group without a leader).
    settle_by: Instant,
}

impl Elector {
    pub fn new(backend: Box<dyn LeaseBackend>) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(LeaderState {
            identity: backend.identity().to_string(),
            is_leader: false,
            epoch: Epoch(0),
            holder: None,
            holder_api: None,
            store: StoreHealth::default(),
            fence_deadline: None,
            members: Vec::new(),
        });
        (
            Elector {
                backend,
                tx,
                liveness: None,
                heart: None,
                floor: Arc::new(EpochFloor::default()),
                settle_by: Instant::now(),
            },
            Leadership { rx },
        )
    }

    /// Tie leadership to progress and to the epochs seen on the floats: no renewal while
    /// `liveness` reports a stall; no acquisition before `floor` has settled or
    /// `settle_by` has passed; every new epoch above the floor.
    pub fn guarded(
        mut self,
        liveness: Arc<Liveness>,
        floor: Arc<EpochFloor>,
        settle_by: Instant,
    ) -> Self {
        // A round makes at most two store calls, each bounded by about a retry period,
        // and the elector sleeps at most one retry period between rounds.
        let retry = self.backend.retry_period().max(Duration::from_millis(300));
        let gap = retry
            .saturating_mul(5)
            .saturating_add(Duration::from_secs(2));
        self.heart = Some(liveness.register("elector", gap));
        self.liveness = Some(liveness);
        self.floor = floor;
        self.settle_by = settle_by;
        self
    }

    /// Publish "not leader" at once, keeping what we know about the holder.
    fn step_down(&self) {
        let mut s = self.tx.borrow().clone();
        s.is_leader = false;
        s.fence_deadline = None;
        self.tx.send_replace(s);
    }

    /// Run rounds until `stop` is cancelled. Then, if leader: `mutations_stopped` must
    /// resolve (the engine has finished or abandoned its in-flight calls) before the lease
    /// is released, so that no mutation can overlap the successor's.
    pub async fn run(
        mut self,
        stop: CancellationToken,
        mutations_stopped: impl std::future::Future<Output = ()>,
    ) {
        let mut was_leader = false;
        let mut abandoned = false;
        let mut stall_reported = false;
        let beat = |h: &Option<crate::liveness::Heart>| {
            if let Some(h) = h {
                h.beat();
            }
        };
        loop {
            beat(&self.heart);
            let stalled = self.liveness.as_ref().and_then(|l| l.check().err());
            match &stalled {
                Some(s) if !stall_reported => {
                    tracing::error!(stall = %s, leader = was_leader, "this replica is not making progress: it stops renewing its lease and will not take one");
                    stall_reported = true;
                }
                None if stall_reported => {
                    tracing::info!("progress resumed: this replica may lead again");
                    stall_reported = false;
                }
                _ => {}
            }
            if stalled.is_some() && was_leader {
                // Do not renew: the lease runs out and a healthy standby takes over.
                self.step_down();
                was_leader = false;
                tracing::warn!("stepped down: lease left to expire");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.backend.retry_period()) => {}
                }
                continue;
            }
            let ctx = RoundCtx {
                may_acquire: stalled.is_none()
                    && (self.floor.settled() || Instant::now() >= self.settle_by),
                epoch_floor: self.floor.get(),
            };
            let bound = self.backend.retry_period().saturating_mul(8);
            let round = {
                let fut = self.backend.round(ctx);
                tokio::pin!(fut);
                tokio::select! {
                    r = &mut fut => r,
                    _ = stop.cancelled() => {
                        // A round in progress is finished, not dropped: dropped, it would
                        // lose store answers that already came back (the quorum backend
                        // would then wait on calls that are over, and a release could
                        // miss a renewal it made). Rounds end within their stores'
                        // timeouts; one that does not within this bound is abandoned and
                        // the lease left to expire rather than released from an
                        // unknown state.
                        if tokio::time::timeout(bound, &mut fut).await.is_err() {
                            tracing::warn!(bound_ms = bound.as_millis() as u64, "lease round still running at shutdown; the lease is left to expire");
                            abandoned = true;
                        }
                        break;
                    }
                }
            };
            beat(&self.heart);
            let s = round.state;
            if s.is_leader != was_leader {
                if s.is_leader {
                    tracing::info!(identity = %s.identity, epoch = s.epoch.0, "became leader");
                } else {
                    tracing::warn!(identity = %s.identity, epoch = s.epoch.0, holder = s.holder.as_deref().unwrap_or(""), "lost leadership");
                }
                was_leader = s.is_leader;
            }
            let deadline = s.fence_deadline;
            let mut s = s;
            if stalled.is_some() {
                s.is_leader = false;
                s.fence_deadline = None;
            }
            self.tx.send_replace(s);
            // Sleep until the next round, but wake at the fence deadline to publish the
            // loss of leadership at once if renewals keep failing.
            let wake = match deadline {
                Some(d) if was_leader && d < round.next => d,
                _ => round.next,
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        // Shutdown: stop claiming leadership first, wait for mutations to stop, release.
        let mut last = self.tx.borrow().clone();
        let held = last.is_leader;
        last.is_leader = false;
        self.tx.send_replace(last);
        if held && !abandoned {
            mutations_stopped.await;
            match self.backend.release().await {
                Ok(()) => tracing::info!("lease released"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not release the lease; standbys take over after it expires")
                }
            }
        }
    }

    /// Run the elector in the background.
    pub fn spawn(
        self,
        stop: CancellationToken,
        mutations_stopped: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop, mutations_stopped))
    }
}
