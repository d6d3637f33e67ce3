//! [`CasLease`]: the claim of this module's protocol over one compare-and-set store, as
//! a [`LeaseBackend`] (an S3 object, a Kubernetes Lease, the in-memory store of tests).

use super::{Claim, EpochRule, LeaseStore, LeaseTiming, Want};
use crate::leader::{LeaderError, LeaderState, LeaseBackend, Round, RoundCtx, StoreHealth};
use std::time::Duration;
use tokio::time::Instant;

/// A lease backend: the protocol above over one store `S`.
pub struct CasLease<S> {
    store: S,
    claim: Claim,
    health: StoreHealth,
}

impl<S: LeaseStore> CasLease<S> {
    pub fn new(store: S, identity: String, timing: LeaseTiming) -> Self {
        CasLease {
            store,
            claim: Claim::new(identity, None, timing),
            health: StoreHealth::default(),
        }
    }

    /// Advertise this API URL in the record while we hold the lease.
    pub fn advertise(mut self, api: Option<String>) -> Self {
        self.claim.api = api;
        self
    }

    fn state(&self, now: Instant) -> LeaderState {
        let c = &self.claim;
        let leading = c.holds(now);
        LeaderState {
            identity: c.identity.clone(),
            is_leader: leading,
            epoch: c.last_epoch,
            holder: c.holder().map(|r| r.holder.clone()),
            holder_api: c.holder().and_then(|r| r.api.clone()),
            store: self.health.clone(),
            fence_deadline: if leading { c.fence_deadline() } else { None },
            members: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl<S: LeaseStore> LeaseBackend for CasLease<S> {
    async fn round(&mut self, ctx: RoundCtx) -> Round {
        let want = Want {
            may_hold: ctx.may_acquire,
            may_take: ctx.may_acquire,
            epoch: EpochRule::Above(ctx.epoch_floor),
            absent_wait: false,
        };
        let next = match self.claim.step(&self.store, want).await {
            Ok(next) => {
                self.health.last_ok = Some(Instant::now());
                self.health.last_error = None;
                next
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease round failed");
                self.health.last_error = Some(e.to_string());
                Instant::now() + self.claim.timing.retry
            }
        };
        Round {
            state: self.state(Instant::now()),
            next,
        }
    }

    fn retry_period(&self) -> Duration {
        self.claim.timing.retry
    }

    async fn release(&mut self) -> Result<(), LeaderError> {
        self.claim.release(&self.store).await
    }

    fn identity(&self) -> &str {
        &self.claim.identity
    }
}
