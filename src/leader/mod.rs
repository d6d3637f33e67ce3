//! Leader election among floatover replicas, with fencing.
//!
//! A backend ([`LeaseBackend`]) runs election rounds; the [`Elector`] drives it on time,
//! publishes [`LeaderState`] and, on shutdown, releases the lease so a standby takes over
//! at once. [`Leadership`] is the handle everybody else uses: providers call
//! [`Fence::permit`] right before each mutating call, which refuses once the lease could
//! expire before that call returns (docs/leader-election.md, "Leader election and fencing").

mod elector;
pub mod kube;
pub mod protocol;
pub mod quorum;
pub mod s3;
mod single;

pub use elector::{Elector, Leadership};
pub use protocol::{
    CasLease, Claim, EpochRule, LeaseRecord, LeaseStore, LeaseTiming, Precondition, Put, Want,
};
pub use quorum::{QuorumLease, QuorumMember};
pub use single::SingleLease;

use crate::model::Epoch;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The highest epoch this replica has seen anywhere: in the lease record and in the
/// stamps on the floats. A new holder always takes an epoch above it, so epochs never go
/// backwards even when the lease object is deleted or moved to a new bucket
/// (docs/leader-election.md, "Leader election and fencing"). The engine raises it from every observation; the elector
/// hands it to the lease store on every round.
#[derive(Debug, Default)]
pub struct EpochFloor {
    value: AtomicU64,
    settled: AtomicBool,
}

impl EpochFloor {
    /// Raise the floor to `e` (never lowers it).
    pub fn raise(&self, e: Epoch) {
        self.value.fetch_max(e.0, Ordering::SeqCst);
    }

    pub fn get(&self) -> Epoch {
        Epoch(self.value.load(Ordering::SeqCst))
    }

    /// Every group has been observed once: the floor includes every stamp.
    pub fn mark_settled(&self) {
        self.settled.store(true, Ordering::SeqCst);
    }

    pub fn settled(&self) -> bool {
        self.settled.load(Ordering::SeqCst)
    }
}

/// What the elector tells the lease store before a round.
#[derive(Debug, Clone, Copy)]
pub struct RoundCtx {
    /// False while this replica must not take the lease (its engine or probes are stalled,
    /// or it has not yet seen the floats' stamps): it still reads the lease to know the
    /// holder, but never creates or takes it over.
    pub may_acquire: bool,
    /// Take or keep an epoch strictly above this.
    pub epoch_floor: Epoch,
}

/// How the lease store has been answering, for `status` and alerts.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth {
    /// Last successful read or write of the lease.
    pub last_ok: Option<Instant>,
    /// The last failure, as `op in region: Code: message`, until the next success.
    pub last_error: Option<String>,
}

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
    /// The holder's advertised API URL (from the lease record), so that a standby can
    /// tell a client where the leader is.
    pub holder_api: Option<String>,
    /// How the lease store answers.
    #[serde(skip)]
    pub store: StoreHealth,
    /// Monotonic deadline after which this replica must not mutate (renew time + renew
    /// deadline). Meaningless when not leader.
    #[serde(skip)]
    pub fence_deadline: Option<Instant>,
    /// Each lease member's state (quorum backend only; empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberView>,
}

/// One lease member as this replica last saw it (quorum backend), for `status` and the
/// `floatover_lease_member_up{member}` gauge.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MemberView {
    /// The member's name (config `leader.quorum.members[].name`).
    pub name: String,
    /// The member answered this replica's last call.
    pub up: bool,
    /// This replica holds the member under its current term.
    pub held: bool,
    /// The live holder named by the member's record, as last read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The epoch in the member's record, as last read.
    pub epoch: u64,
    /// The last failure, as `op in region: Code: message`, until the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    /// Rendered like provider errors: `op in region: Code: message`.
    #[error("{op} in {region}: {code}: {message}")]
    Store {
        op: &'static str,
        region: String,
        code: String,
        message: String,
    },
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
    async fn round(&mut self, ctx: RoundCtx) -> Round;
    /// How often rounds run (the elector's pace while it skips rounds).
    fn retry_period(&self) -> Duration;
    /// Give the lease up (only called while leader, after mutations have stopped).
    async fn release(&mut self) -> Result<(), LeaderError>;
    /// This replica's identity, as written into the lease record.
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
