//! Providers move floats. The trait speaks domain types only; SDK types stay inside
//! `provider/aws`. Later providers (Route 53 weights, Linux L2 VIP) implement the same
//! trait, so the planner and the engine do not change when they arrive.

pub mod aws;

use crate::leader::{Fence, FenceError};
use crate::model::{Binding, FloatRef, MoveStamp, ProviderHolder};
use std::collections::HashMap;

/// What a provider knows about one float.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// None: not attached anywhere.
    pub holder: Option<ProviderHolder>,
    /// Fence stamp recorded with the resource by the last move.
    pub stamp: Option<MoveStamp>,
    /// The provider's compare-and-set token for the current attachment (the EIP's
    /// association id), used by strict fencing: a move names the attachment it replaces.
    pub version: Option<String>,
}

/// When a move writes its stamp (the epoch record) relative to the move itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampWhen {
    /// Before the move: a person's switchover, whose pin must exist before the float is
    /// there (no leader may fail back over it).
    Before,
    /// After the move: automatic moves. The float was claimed for this epoch when
    /// leadership was gained, so the failover path is a single provider call.
    After,
}

/// Move one float onto a target, under an epoch.
#[derive(Debug, Clone)]
pub struct MoveOrder {
    pub float: FloatRef,
    pub to: Binding,
    /// Current holder as observed (lets a provider clean up after a move).
    pub from: Option<ProviderHolder>,
    pub stamp: MoveStamp,
    pub stamp_when: StampWhen,
    /// Strict fencing: replace exactly the attachment `version` that was observed, so the
    /// provider refuses the write if anyone changed the float since (EIPs only).
    pub strict: Option<Option<String>>,
}

/// Re-stamp one float with a new epoch without moving it (a new leader's claim).
#[derive(Debug, Clone)]
pub struct StampOrder {
    pub float: FloatRef,
    /// Where the float is (secondary IP stamps live on the holder's interface).
    pub holder: Option<ProviderHolder>,
    pub stamp: MoveStamp,
}

/// Detach one float.
#[derive(Debug, Clone)]
pub struct ReleaseOrder {
    pub float: FloatRef,
    pub from: Option<ProviderHolder>,
    pub stamp: MoveStamp,
}

/// What a successful move took.
#[derive(Debug, Clone, Default)]
pub struct MoveDone {
    /// Provider round trips until the float was on the new holder (the failover path).
    pub calls_to_move: u32,
    /// Time until the float was on the new holder.
    pub move_time: std::time::Duration,
    /// A stamp written after the move that failed (the next claim or move rewrites it).
    pub stamp_error: Option<String>,
}

/// Errors of provider calls, with enough context to act on at 3 a.m.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{op} in {region}: {code}: {message}")]
    Api {
        op: &'static str,
        region: String,
        code: String,
        message: String,
    },
    /// Still throttled after every retry.
    #[error("{op} in {region}: {code}: {message} (throttled after all retries)")]
    Throttled {
        op: &'static str,
        region: String,
        code: String,
        message: String,
    },
    /// No answer: timeout or connection failure.
    #[error("{op} in {region}: {code}: {message}")]
    Transport {
        op: &'static str,
        region: String,
        code: String,
        message: String,
    },
    /// The provider refused a compare-and-set write: the float changed since it was
    /// observed (strict fencing).
    #[error("{op} in {region}: {code}: the float changed since it was observed ({message})")]
    Conflict {
        op: &'static str,
        region: String,
        code: String,
        message: String,
    },
    #[error("refused by the fence before {op}: {source}")]
    Fenced {
        op: &'static str,
        #[source]
        source: FenceError,
    },
    #[error("no client for region {0} (not in the config)")]
    UnknownRegion(String),
    #[error("target has no {0} for this float kind")]
    MissingBinding(&'static str),
}

/// A provider of floats.
#[async_trait::async_trait]
pub trait FloatProvider: Send + Sync {
    /// Current holder and stamp of each float. `enis` lists `(region, eni_id)` of the
    /// targets' network interfaces (where secondary IPs may live). Floats that do not exist are absent from the
    /// result (and never touched by the planner).
    async fn observe(
        &self,
        floats: &[FloatRef],
        enis: &[(String, String)],
    ) -> Result<HashMap<String, Observation>, ProviderError>;

    /// Move the float and write its stamp (before or after, as the order says). The fence
    /// is consulted right before each mutating call (after any rate-limit wait). A failed
    /// stamp after a successful move is reported in the result, not as an error: the
    /// float did move.
    async fn move_float(
        &self,
        order: &MoveOrder,
        fence: &dyn Fence,
    ) -> Result<MoveDone, ProviderError>;

    /// Write a stamp without moving (a new leader's claim).
    async fn stamp_float(&self, order: &StampOrder, fence: &dyn Fence)
    -> Result<(), ProviderError>;

    /// Stamp, then detach the float.
    async fn release_float(
        &self,
        order: &ReleaseOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError>;
}
