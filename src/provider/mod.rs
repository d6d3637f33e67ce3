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
}

/// Move one float onto a target, under an epoch.
#[derive(Debug, Clone)]
pub struct MoveOrder {
    pub float: FloatRef,
    pub to: Binding,
    /// Current holder as observed (lets a provider clean up after a move).
    pub from: Option<ProviderHolder>,
    pub stamp: MoveStamp,
}

/// Detach one float.
#[derive(Debug, Clone)]
pub struct ReleaseOrder {
    pub float: FloatRef,
    pub from: Option<ProviderHolder>,
    pub stamp: MoveStamp,
}

/// Errors of provider calls, with enough context to act on at 3 a.m.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{op} in {region} failed: {code}: {message}")]
    Api {
        op: &'static str,
        region: String,
        code: String,
        message: String,
    },
    #[error("{op} in {region} was throttled after all retries: {message}")]
    Throttled {
        op: &'static str,
        region: String,
        message: String,
    },
    #[error("{op} in {region} timed out or could not connect: {message}")]
    Transport {
        op: &'static str,
        region: String,
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

    /// Stamp the resource with the epoch, then move the float. The fence is consulted
    /// right before each mutating call (after any rate-limit wait).
    async fn move_float(&self, order: &MoveOrder, fence: &dyn Fence) -> Result<(), ProviderError>;

    /// Stamp, then detach the float.
    async fn release_float(
        &self,
        order: &ReleaseOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError>;

    /// Mutating API calls issued so far (stamps included): the number tests watch to prove
    /// that a converged world is left alone.
    fn mutating_calls(&self) -> u64;
}
