//! Leader election among floatover replicas, with fencing.
//!
//! A backend ([`LeaseBackend`]) runs election rounds; the [`Elector`] drives it on time,
//! publishes [`LeaderState`] and, on shutdown, releases the lease so a standby takes over
//! at once. [`Leadership`] is the handle everybody else uses: providers call
//! [`Fence::permit`] right before each mutating call, which refuses once the lease could
//! expire before that call returns (DESIGN.md guarantee 2).

mod elector;
pub mod s3;
mod single;

pub use elector::{Elector, Leadership};
pub use single::SingleLease;

use crate::model::Epoch;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// What a replica knows about leadership right now.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderState {
    /// This replica's identity.
    pub identity: String,
    /// True while this replica holds the lease (and the fence deadline has not passed).
    pub is_leader: bool,
    /// Our epoch while leader; otherwise the newest epoch seen.
    pub epoch: Epoch,
    /// Current lease holder as last seen (None: nobody / unknown).
    pub holder: Option<String>,
    /// Monotonic deadline after which this replica must not mutate (renew time + renew
    /// deadline). Meaningless when not leader.
    #[serde(skip)]
    pub fence_deadline: Option<Instant>,
}

/// Result of one election round.
#[derive(Debug, Clone)]
pub struct Round {
    pub state: LeaderState,
    /// When to run the next round (the elector never waits longer than the retry period).
    pub next: Instant,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease store {op} failed: {message}")]
    Store { op: &'static str, message: String },
    #[error("lease record at {location} is not readable: {message}")]
    Corrupt { location: String, message: String },
}

/// Why a mutation was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FenceError {
    #[error("not the leader")]
    NotLeader,
    #[error(
        "lease could expire before the call returns ({remaining_ms} ms of lease left, call may take {needed_ms} ms)"
    )]
    LeaseTooOld { remaining_ms: u64, needed_ms: u64 },
    #[error("leadership epoch changed from {decided} to {now} since the decision")]
    EpochChanged { decided: Epoch, now: Epoch },
}

/// Permission to mutate, checked immediately before every mutating provider call.
pub trait Fence: Send + Sync {
    /// Ok if this replica is leader under `epoch` and will still be for `call_budget`.
    fn permit(&self, epoch: Epoch, call_budget: Duration) -> Result<(), FenceError>;
}

/// A leader election backend: one round acquires, renews or observes the lease.
#[async_trait::async_trait]
pub trait LeaseBackend: Send + Sync {
    async fn round(&mut self) -> Round;
    /// Give the lease up (only called while leader, after mutations have stopped).
    async fn release(&mut self) -> Result<(), LeaderError>;
    /// Stop acting as leader without touching the store (used when a round could not reach
    /// it and the fence deadline passed).
    fn identity(&self) -> &str;
}

/// A fence that always permits: for `plan` (which never mutates) and narrow unit tests.
pub struct NoFence;

impl Fence for NoFence {
    fn permit(&self, _: Epoch, _: Duration) -> Result<(), FenceError> {
        Ok(())
    }
}

/// Default identity: hostname, pid and a random suffix, so a restarted process never
/// mistakes its predecessor's lease for its own.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}
