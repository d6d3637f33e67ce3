//! The `single` backend: one replica, always leader. Not highly available; `run` logs a
//! warning. Useful for a lab, a demo, or where another system already guarantees one
//! instance.

use super::{LeaderError, LeaderState, LeaseBackend, Round};
use crate::model::Epoch;
use std::time::Duration;
use tokio::time::Instant;

pub struct SingleLease {
    identity: String,
}

impl SingleLease {
    pub fn new(identity: String) -> Self {
        SingleLease { identity }
    }
}

#[async_trait::async_trait]
impl LeaseBackend for SingleLease {
    async fn round(&mut self) -> Round {
        let now = Instant::now();
        Round {
            state: LeaderState {
                identity: self.identity.clone(),
                is_leader: true,
                epoch: Epoch(1),
                holder: Some(self.identity.clone()),
                fence_deadline: Some(now + Duration::from_secs(3600)),
            },
            next: now + Duration::from_secs(60),
        }
    }

    async fn release(&mut self) -> Result<(), LeaderError> {
        Ok(())
    }

    fn identity(&self) -> &str {
        &self.identity
    }
}
