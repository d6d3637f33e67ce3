//! The config as resolved (`Spec`): validated, defaults applied, regions filled in. Only
//! this form leaves the config module.

use super::raw::{Fencing, OnDrift};
pub use crate::aws::AwsSpec;
use crate::model::{GroupName, TargetId};
use crate::model::{Mode, OnAllUnhealthy};
use crate::provider::{Bindings, FloatRef, TargetBindings};
use std::net::SocketAddr;
use std::time::Duration;

/// The validated config that the controller runs on.
#[derive(Debug, Clone)]
pub struct Spec {
    pub api: ApiSpec,
    pub aws: AwsSpec,
    pub leader: LeaderSpec,
    pub resync_interval: Duration,
    pub drift_check: Duration,
    pub switchover_timeout: Duration,
    pub group_source: GroupSource,
    pub groups: Vec<GroupSpec>,
    pub sites: Vec<crate::config::site::SiteSpec>,
    pub site_policy: crate::config::site::SitePolicy,
    /// None: every replica judges targets by its own probes alone.
    pub health_votes: Option<VotesSpec>,
}

/// Health votes, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct VotesSpec {
    /// The peers' API base URLs.
    pub peers: Vec<String>,
    pub rule: VoteRule,
    /// How often the peers' views are fetched (the probe interval).
    pub poll: Duration,
}

/// Where the groups came from.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupSource {
    File,
    /// FloatGroup objects; None: `$POD_NAMESPACE` or the client's default namespace.
    Kubernetes {
        namespace: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct ApiSpec {
    pub listen: SocketAddr,
    /// URL written into the lease for standbys to name (see `RawApi::advertise`).
    pub advertise: String,
    /// None: mutating API calls are refused (403).
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub enum LeaderBackend {
    S3 {
        bucket: String,
        key: String,
        region: String,
        endpoint_url: Option<String>,
    },
    Single,
    Kubernetes {
        /// None: `$POD_NAMESPACE` or the client's default namespace.
        namespace: Option<String>,
        name: String,
        /// None: in-cluster, else the kubeconfig's current context.
        context: Option<String>,
    },
    /// A majority of these members (each `S3` or `Kubernetes`).
    Quorum {
        members: Vec<QuorumMemberSpec>,
    },
}

/// One member of a quorum lease.
#[derive(Debug, Clone)]
pub struct QuorumMemberSpec {
    pub name: String,
    /// `S3` or `Kubernetes` (validation refuses the others).
    pub store: LeaderBackend,
}

#[derive(Debug, Clone)]
pub struct LeaderSpec {
    pub backend: LeaderBackend,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub identity: Option<String>,
}

impl LeaderSpec {
    /// The lease timing this configures (one place that maps the config's names).
    pub fn timing(&self) -> crate::leader::LeaseTiming {
        crate::leader::LeaseTiming {
            lease: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry: self.retry_period,
        }
    }
}

/// Policy of an active-standby group.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub mode: Mode,
    pub preempt: bool,
    pub failback_delay: Duration,
    pub min_hold: Duration,
    pub on_all_unhealthy: OnAllUnhealthy,
    pub on_drift: OnDrift,
    pub fencing: Fencing,
    pub min_healthy: u32,
    /// Active-active N+1 check on summed weights of healthy targets (0: off).
    pub min_capacity: u32,
    /// Set when a site names the group as its traffic (see `PlanPolicy::site_managed`).
    pub site_managed: bool,
    /// The group's place in a provider queue among groups of the same move class (higher
    /// first).
    pub priority: u32,
}

#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub name: GroupName,
    pub policy: Policy,
    /// In config order (the tie-breaker for equal priorities).
    pub targets: Vec<TargetSpec>,
    pub floats: Vec<FloatRef>,
    /// Longest time any target's probes need to cross a threshold from a fresh start
    /// (interval × max(rise, fall) + timeout). An unowned float waits up to this long for
    /// higher-priority targets whose health is still unknown, like keepalived's master-down
    /// interval, so the first target to answer does not win by accident.
    pub settle: Duration,
}

impl GroupSpec {
    pub fn target(&self, id: &TargetId) -> Option<&TargetSpec> {
        self.targets.iter().find(|t| &t.id == id)
    }

    pub fn float(&self, id: &str) -> Option<&FloatRef> {
        self.floats.iter().find(|f| f.id == id)
    }

    /// The targets' bindings, as a provider's `observe` wants them.
    pub fn target_bindings(&self) -> Vec<TargetBindings> {
        self.targets
            .iter()
            .map(|t| TargetBindings {
                region: t.region.clone(),
                bindings: t.bindings.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub id: TargetId,
    pub bindings: Bindings,
    pub region: String,
    pub priority: u32,
    /// DNS weight when up (active-active share, or the owner's weight).
    pub weight: u32,
    pub probes: Vec<ProbeSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub interval: Duration,
    /// Interval while a failure streak is being confirmed or cleared (<= interval).
    pub fast_interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    Http {
        url: String,
        expect_status: Vec<u16>,
        body_contains: Option<String>,
        insecure: bool,
    },
    Tcp {
        address: String,
    },
    Exec {
        command: Vec<String>,
    },
}

/// How health votes are counted (see `probe::votes`).
#[derive(Debug, Clone, PartialEq)]
pub struct VoteRule {
    /// A target is down when more than this share of the fresh views say so (0.5: a
    /// strict majority).
    pub share: f64,
    /// A peer's view older than this does not count.
    pub max_age: Duration,
}

impl VoteRule {
    /// How many down views make a target down among `views`.
    pub fn needed(&self, views: usize) -> usize {
        // More than `share` of the views; at least one.
        let n = views as f64 * self.share;
        ((n.floor() as usize) + 1).clamp(1, views.max(1))
    }
}
