//! Domain types shared by the planner, the providers, the leader backends and the API.
//!
//! Nothing here knows about an SDK: provider modules translate their own types into these
//! at the boundary, so that the planner can be tested without any cloud and so that every
//! provider (EC2 today, Route 53 weights, later a Linux L2 VIP) reuses the same planning
//! code.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Name of a target inside its group (unique per group), as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(pub String);

/// Name of a group (unique per config).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupName(pub String);

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A target is identified by its group and name (health board, metrics labels, API).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TargetKey {
    pub group: GroupName,
    pub target: TargetId,
}

/// A leadership term. Strictly increases with every new lease holder; every mutation is
/// decided under one epoch and tags the float with it, so that a stale leader can be
/// recognised and refused (docs/leader-election.md, "Leader election and fencing").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a group wants its floats to point at: the planner's decision, in provider-neutral
/// terms. A provider turns it into its own calls (an EIP association, a route's next hop,
/// a DNS record's weights).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Assignment {
    /// One holder (EIP, secondary IP, route, DNS failover record); None: nobody healthy.
    Owner(Option<TargetId>),
    /// A weight per target (DNS weighted record set); 0 takes a target out.
    Weights(BTreeMap<TargetId, u32>),
}

impl Assignment {
    /// The single owner, if this is an owner assignment with one.
    pub fn owner(&self) -> Option<&TargetId> {
        match self {
            Assignment::Owner(o) => o.as_ref(),
            Assignment::Weights(_) => None,
        }
    }
}

/// The holder of a float in domain terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Holder {
    /// Not attached anywhere.
    Nobody,
    /// Attached to one of the group's targets.
    Target(TargetId),
    /// Attached to something that is not a target of the group (provider id shown).
    Foreign(String),
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Nobody => f.write_str("(nobody)"),
            Holder::Target(t) => write!(f, "{t}"),
            Holder::Foreign(s) => write!(f, "foreign:{s}"),
        }
    }
}

/// Why a move happens. Three words, three code paths (docs/policy.md, "Policy").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Automatic: the holder is down, or the float has no healthy holder.
    Failover,
    /// Automatic: return to the preferred target after it has been healthy for
    /// `failback_delay`.
    Failback,
    /// Asked for by a person.
    Switchover,
    /// Every target is down and the policy says `release`.
    Release,
    /// Someone else changed a float (a person, a script, a stale leader's late write):
    /// recorded when found, and the reason of the move that reverts or adopts it.
    Drift,
    /// A new leader re-stamped a float with its epoch when it took over (no move), so
    /// that later moves need a single provider call and older leaders stay fenced.
    Claim,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Failover => "failover",
            Reason::Failback => "failback",
            Reason::Switchover => "switchover",
            Reason::Release => "release",
            Reason::Drift => "drift",
            Reason::Claim => "claim",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        match s {
            "failover" => Some(Reason::Failover),
            "failback" => Some(Reason::Failback),
            "switchover" => Some(Reason::Switchover),
            "release" => Some(Reason::Release),
            "drift" => Some(Reason::Drift),
            "claim" => Some(Reason::Claim),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health of a target after the rise/fall thresholds, as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not enough results yet to cross either threshold (fresh start).
    Unknown,
    /// `rise` consecutive successes on every probe.
    Up,
    /// `fall` consecutive failures on at least one probe.
    Down,
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The provider's record of the last move: written as tags before each mutation so that
/// the truth (and the fence) lives with the resource, not in controller memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MoveStamp {
    pub epoch: Epoch,
    pub reason: Reason,
    /// Target the move was heading to.
    pub target: TargetId,
}

/// How a group spreads its floats over its targets.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One owner at a time (keepalived's MASTER/BACKUP): EIPs, routes, and DNS records
    /// where the owner gets its weight and the others 0.
    #[default]
    ActiveStandby,
    /// Weight over every healthy target, proportional to its capacity (DNS floats only).
    ActiveActive,
}

/// What happens to a float when none of its group's targets is healthy.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnAllUnhealthy {
    /// Leave the float where it is (clients may still reach a half-alive server).
    #[default]
    Keep,
    /// Detach the float so that clients fail fast.
    Release,
}
