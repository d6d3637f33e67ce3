//! Providers move floats. The trait speaks domain types plus the payloads each provider
//! owns: a float's [`FloatKind`], a target's [`Bindings`], a holder's [`Attached`]. The
//! planner never sees these (it plans over float ids and target names); the engine only
//! carries them from the config to the provider that understands them. SDK types stay
//! inside `provider/aws`. Three kinds exist: EC2 floats (`aws/ec2`: Elastic IP, secondary
//! IP, route), Route 53 record sets (`aws/route53`: weighted and failover records) and
//! Route 53 ARC routing controls (`aws/arc`: one control on per group, set through the
//! cluster's data plane, for failover without Route 53's change API); a
//! later provider (a Linux L2 VIP) adds a variant here and implements the same trait, so
//! the planner and the engine do not change. What a site promotion asks of the provider
//! is [`sites::SiteOps`].

pub mod aws;
pub mod sites;

use crate::leader::{Fence, FenceError};
use crate::model::MoveStamp;
pub use crate::pace::Turn;
use aws::arc::spec::ArcFloat;
use aws::ec2::spec::{Ec2Endpoint, Ec2Float};
use aws::route53::spec::{DnsMember, DnsRecord};
use serde::Serialize;
use std::collections::HashMap;

/// A float: its stable id, the region its API lives in, and the provider's payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FloatRef {
    /// Stable, human-readable id (`eip:eipalloc-1`, `ip:10.0.0.9`, `route:rtb-1:10.9.0.1/32`).
    pub id: String,
    pub region: String,
    pub kind: FloatKind,
}

/// Which provider owns a float, with that provider's description of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum FloatKind {
    Ec2(Ec2Float),
    /// A Route 53 weighted record set: weights over targets, not one holder.
    Dns(DnsRecord),
    /// Route 53 ARC routing controls: one holder, the target whose control is on.
    Arc(ArcFloat),
}

impl FloatKind {
    /// The float's stable id.
    pub fn id(&self) -> String {
        match self {
            FloatKind::Ec2(f) => f.id(),
            FloatKind::Dns(r) => r.id(),
            FloatKind::Arc(a) => a.id(),
        }
    }

    /// The EC2 description, if EC2 owns this float.
    pub fn ec2(&self) -> Option<&Ec2Float> {
        match self {
            FloatKind::Ec2(f) => Some(f),
            FloatKind::Dns(_) | FloatKind::Arc(_) => None,
        }
    }

    /// The Route 53 description, if this is a DNS float.
    pub fn dns(&self) -> Option<&DnsRecord> {
        match self {
            FloatKind::Dns(r) => Some(r),
            FloatKind::Ec2(_) | FloatKind::Arc(_) => None,
        }
    }

    /// True for floats steered by weights over targets (the planner's `SetWeights`);
    /// false for floats with one holder (`Move`, `Release`).
    pub fn weighted(&self) -> bool {
        matches!(self, FloatKind::Dns(_))
    }

    /// True for a weighted float whose weights are roles: exactly one target carries
    /// weight (1, the Route 53 failover `PRIMARY`), the other none (`SECONDARY`).
    pub fn roles_only(&self) -> bool {
        matches!(self, FloatKind::Dns(d) if d.routing == aws::route53::spec::Routing::Failover)
    }

    /// Whether the provider can refuse a move based on a stale view (strict fencing: a
    /// compare-and-set on the observed attachment).
    pub fn compare_and_set(&self) -> bool {
        match self {
            FloatKind::Ec2(f) => f.compare_and_set(),
            // Every DNS batch is a compare-and-set (the epoch record swap).
            FloatKind::Dns(_) => true,
            // ARC has no conditional update: only the fence keeps a stale leader out.
            FloatKind::Arc(_) => false,
        }
    }
}

/// How a target is reached by each provider kind: one binding per kind, each optional
/// (a group's floats say which ones its targets must have; the config checks it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
pub struct Bindings {
    pub ec2: Option<Ec2Endpoint>,
    pub dns: Option<DnsMember>,
    /// The target's ARC routing control ARN.
    pub arc: Option<String>,
}

impl Bindings {
    /// True when the provider-level holder is this target.
    pub fn matches(&self, holder: &Attached) -> bool {
        match holder {
            Attached::Ec2(h) => self.ec2.as_ref().is_some_and(|b| b.matches(h)),
            Attached::Dns(m) => self
                .dns
                .as_ref()
                .is_some_and(|b| b.set_identifier == m.set_identifier),
            Attached::Arc(c) => self.arc.as_ref() == Some(c),
        }
    }

    /// What a provider will report as the holder once `float` is moved here.
    pub fn attached_for(&self, float: &FloatKind) -> Option<Attached> {
        match float {
            FloatKind::Ec2(_) => self.ec2.clone().map(Attached::Ec2),
            FloatKind::Dns(_) => self.dns.clone().map(Attached::Dns),
            FloatKind::Arc(_) => self.arc.clone().map(Attached::Arc),
        }
    }
}

/// Who holds a float right now, as its provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Attached {
    Ec2(Ec2Endpoint),
    /// A member of a weighted record set.
    Dns(DnsMember),
    /// The routing control that is on.
    Arc(String),
}

impl Attached {
    /// The EC2 endpoint, if EC2 reported this holder.
    pub fn ec2(&self) -> Option<&Ec2Endpoint> {
        match self {
            Attached::Ec2(e) => Some(e),
            Attached::Dns(_) | Attached::Arc(_) => None,
        }
    }

    /// A short label for a holder outside the group (`foreign:i-…`).
    pub fn label(&self) -> String {
        match self {
            Attached::Ec2(e) => e.label(),
            Attached::Dns(m) => m.set_identifier.clone(),
            Attached::Arc(c) => c.rsplit('/').next().unwrap_or(c).to_string(),
        }
    }
}

/// A target's bindings with the region they live in: what `observe` needs to find floats
/// that live on targets (secondary IPs on ENIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetBindings {
    pub region: String,
    pub bindings: Bindings,
}

/// What a provider knows about one float.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// None: not attached anywhere.
    pub holder: Option<Attached>,
    /// Fence stamp recorded with the resource by the last move.
    pub stamp: Option<MoveStamp>,
    /// The provider's compare-and-set token for the current attachment (the EIP's
    /// association id), used by strict fencing: a move names the attachment it replaces.
    pub version: Option<String>,
    /// Weighted floats: each member of the set as reported, with its weight.
    pub weights: Vec<(Attached, u32)>,
    /// What a compare-and-set write must replace exactly (the DNS records as observed).
    pub snapshot: Option<Snapshot>,
}

/// How far a float's last change has spread (Route 53: `GetChange` PENDING, then INSYNC
/// once every authoritative server answers with it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Propagation {
    /// The provider's change id.
    pub change: String,
    /// `PENDING` or `INSYNC`.
    pub state: String,
    /// From the write to INSYNC, once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insync_ms: Option<u64>,
}

/// A provider's exact record of what it observed, handed back with a write so that the
/// write replaces exactly that (or is refused).
#[derive(Debug, Clone, PartialEq)]
pub enum Snapshot {
    Dns(aws::route53::Snapshot),
}

/// Set the weights of one weighted float, under an epoch.
#[derive(Debug, Clone)]
pub struct WeightOrder {
    pub float: FloatRef,
    /// Each target's bindings and its new weight (targets not listed are left alone).
    pub weights: Vec<(Bindings, u32)>,
    /// What the decision was based on; the write replaces exactly this.
    pub observed: Option<Snapshot>,
    pub stamp: MoveStamp,
}

/// What a successful weight change took.
#[derive(Debug, Clone, Default)]
pub struct WeightDone {
    /// Records changed in this float (0: already as wanted).
    pub changed: u32,
    /// Round trips for the batch this float was part of.
    pub calls: u32,
    /// Time of the batch call.
    pub call_time: std::time::Duration,
    /// Floats that shared the batch (one batch per zone per decision).
    pub batch_size: u32,
    /// Time until the provider reported the change applied everywhere (Route 53 INSYNC),
    /// when that came within the wait; None: still pending (see the metrics).
    pub insync: Option<std::time::Duration>,
    /// The stamp is part of the batch, so it cannot fail on its own; kept for symmetry.
    pub stamp_error: Option<String>,
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
    pub to: Bindings,
    /// Current holder as observed (lets a provider clean up after a move).
    pub from: Option<Attached>,
    pub stamp: MoveStamp,
    pub stamp_when: StampWhen,
    /// Strict fencing: replace exactly the attachment `version` that was observed, so the
    /// provider refuses the write if anyone changed the float since (EIPs only).
    pub strict: Option<Option<String>>,
    /// Its place in the provider's queue when more calls are due than tokens allow.
    pub turn: Turn,
}

/// Re-stamp one float with a new epoch without moving it (a new leader's claim).
#[derive(Debug, Clone)]
pub struct StampOrder {
    pub float: FloatRef,
    /// Where the float is (secondary IP stamps live on the holder's interface).
    pub holder: Option<Attached>,
    /// What was observed (DNS: the stamp record is swapped as a compare-and-set).
    pub observed: Option<Snapshot>,
    pub stamp: MoveStamp,
    /// Its place in the provider's queue (a claim waits behind moves and their stamps).
    pub turn: Turn,
}

/// Detach one float.
#[derive(Debug, Clone)]
pub struct ReleaseOrder {
    pub float: FloatRef,
    pub from: Option<Attached>,
    pub stamp: MoveStamp,
    /// The group's targets (a weighted float releases their records, and only theirs).
    pub targets: Vec<Bindings>,
    /// What the release must replace exactly (DNS: the records as observed).
    pub observed: Option<Snapshot>,
    /// Its place in the provider's queue.
    pub turn: Turn,
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
    /// Time spent waiting for the provider's tokens before the move call went out.
    pub token_wait: std::time::Duration,
}

/// Errors of provider calls, with enough context to act on at 3 a.m.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// An operation this provider does not offer.
    #[error("{0}: not supported by this provider")]
    Unsupported(&'static str),
    /// A float handed to a provider that does not own its kind (a wiring bug).
    #[error("float {0} is not a {1} float")]
    WrongProvider(String, &'static str),
}

/// A provider of floats.
#[async_trait::async_trait]
pub trait FloatProvider: Send + Sync {
    /// Current holder and stamp of each float. `targets` are the group's targets'
    /// bindings (floats such as secondary IPs live on them). Floats that do not exist are
    /// absent from the result (and never touched by the planner).
    async fn observe(
        &self,
        floats: &[FloatRef],
        targets: &[TargetBindings],
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

    /// Set the weights of weighted floats: one compare-and-set batch per zone for all of
    /// them (one decision), results in the order of `orders`. A provider without
    /// weighted floats refuses.
    async fn set_weights(
        &self,
        orders: &[WeightOrder],
        _fence: &dyn Fence,
    ) -> Vec<Result<WeightDone, ProviderError>> {
        orders
            .iter()
            .map(|o| Err(ProviderError::WrongProvider(o.float.id.clone(), "weighted")))
            .collect()
    }

    /// How far the float's last change has spread, where the provider tracks it.
    fn propagation(&self, _float: &FloatRef) -> Option<Propagation> {
        None
    }

    /// The provider's client-side queues (calls waiting for a token), for status and
    /// metrics.
    fn queues(&self) -> Vec<crate::pace::QueueStatus> {
        Vec::new()
    }

    /// Which read a float's observation belongs to: the engine reads every float of one
    /// lane in one `observe` call per tick, shared by all groups, and lanes independently
    /// (a region that hangs does not hold up another). Default: the float's region.
    fn read_lane(&self, float: &FloatRef) -> String {
        float.region.clone()
    }
}
