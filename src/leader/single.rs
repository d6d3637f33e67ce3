//! The `single` backend: one replica, always leader. Not highly available; `run` logs a
//! warning. Useful for a lab, a demo, or where another system already guarantees one
//! instance.

use super::{LeaderError, LeaderState, LeaseBackend, Round, RoundCtx, StoreHealth};
use crate::model::Epoch;
use std::time::Duration;
use tokio::time::Instant;

pub struct SingleLease {
    identity: String,
    epoch: Epoch,
}

impl SingleLease {
    pub fn new(identity: String) -> Self {
        SingleLease {
            identity,
            epoch: Epoch(1),
        }
    }
}

#[async_trait::async_trait]
impl LeaseBackend for SingleLease {
    async fn round(&mut self, ctx: RoundCtx) -> Round {
        let now = Instant::now();
        // Epochs never go backwards: stay above every stamp seen on the floats.
        if ctx.epoch_floor > self.epoch {
            self.epoch = Epoch(ctx.epoch_floor.0.saturating_add(1));
        }
        Round {
            state: LeaderState {
                identity: self.identity.clone(),
                is_leader: ctx.may_acquire,
                epoch: self.epoch,
                holder: Some(self.identity.clone()),
                holder_api: None,
                store: StoreHealth {
                    last_ok: Some(now),
                    last_error: None,
                },
                fence_deadline: ctx.may_acquire.then(|| now + Duration::from_secs(3600)),
                members: Vec::new(),
            },
            next: now + self.retry_period(),
        }
    }

    fn retry_period(&self) -> Duration {
        Duration::from_millis(500)
    }

    async fn release(&mut self) -> Result<(), LeaderError> {
        Ok(())
    }

    fn identity(&self) -> &str {
        &self.identity
    }
}
