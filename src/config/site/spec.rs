//! Sites as resolved: validated, defaults filled in, every step with its budget.

use super::raw::Tier;
use crate::model::{GroupName, TargetId};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    pub name: String,
    pub region: String,
    pub tier: Tier,
    pub primary: bool,
    pub targets: Vec<(GroupName, TargetId)>,
    pub quorum: f64,
    pub traffic: Vec<(GroupName, TargetId)>,
    pub rto: Option<Duration>,
    pub abort_over_budget: bool,
    pub instances: Vec<String>,
    pub auto_scaling: Option<(String, u32)>,
    pub launch: Option<LaunchSpec>,
    pub steps: Vec<Step>,
    /// The recovery point objective and where replication lag is read.
    pub data: Option<RpoSpec>,
}

/// Where a site's replication lag is read.
#[derive(Debug, Clone, PartialEq)]
pub enum LagSource {
    /// `GET url`: the body is the lag in seconds.
    Http { url: String },
    /// The command prints the lag in seconds.
    Exec { command: Vec<String> },
    /// CloudWatch `AWS/RDS ReplicaLag` of a read replica (seconds).
    Rds { instance: String },
    /// CloudWatch `AWS/RDS AuroraGlobalDBReplicationLag` of a secondary cluster
    /// (milliseconds).
    AuroraGlobal { cluster: String },
}

/// A site's data: how far it may lag (`rpo`; None: the lag is shown, never gated) and
/// where the lag is read.
#[derive(Debug, Clone, PartialEq)]
pub struct RpoSpec {
    pub rpo: Option<Duration>,
    pub lag: LagSource,
    /// One reading's timeout.
    pub timeout: Duration,
}

impl SiteSpec {
    /// Targets that must be up for the site to count as healthy (at least one).
    pub fn quorum_count(&self) -> usize {
        let n = self.targets.len() as f64 * self.quorum;
        (n.ceil() as usize).clamp(1, self.targets.len().max(1))
    }

    /// The steps a run of `kind` executes: the plan, and for a drill a final check that
    /// the site took the traffic and is healthy.
    pub fn run_steps(&self, drill: bool) -> Vec<Step> {
        let mut v = self.steps.clone();
        if drill {
            v.push(Step {
                name: "verify".into(),
                kind: StepKind::Verify,
                budget: Duration::from_secs(30),
                optional: false,
                idempotent: true,
            });
        }
        v
    }

    /// The sum of the top-level steps' budgets: what the plan expects to take. The RPO
    /// gate is left out: it waits only when the lag is over the RPO.
    pub fn expected(&self) -> Duration {
        self.steps
            .iter()
            .filter(|s| s.kind != StepKind::RpoGate)
            .fold(Duration::ZERO, |a, s| a.saturating_add(s.budget))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    pub launch_template: Option<String>,
    pub version: Option<String>,
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    pub subnet_id: Option<String>,
    pub count: u32,
    pub tags: BTreeMap<String, String>,
    /// A template: see [`crate::config::site::template`].
    pub probe: Option<crate::config::ProbeSpec>,
    pub min_healthy: u32,
}

/// One step of a promotion.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unique within the site's plan (the run record keys on it).
    pub name: String,
    pub kind: StepKind,
    pub budget: Duration,
    /// A failure lets the plan continue.
    pub optional: bool,
    /// Safe to run again when a leader change interrupted it.
    pub idempotent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    StartInstances,
    ScaleUp,
    Launch,
    WaitHealthy {
        min: usize,
    },
    Shift,
    Exec {
        command: Vec<String>,
        retries: u32,
    },
    Webhook {
        url: String,
        secret_env: Option<String>,
        timeout: Duration,
        retries: u32,
    },
    Approval,
    Parallel(Vec<Step>),
    /// Route 53 ARC routing controls on and off, through the first cluster endpoint that
    /// answers ([`crate::provider::aws::arc`]).
    RoutingControls {
        cluster: Vec<crate::provider::aws::arc::ClusterEndpoint>,
        on: Vec<String>,
        off: Vec<String>,
        overrides: Vec<String>,
    },
    /// Drills only: the site took the traffic and is healthy.
    Verify,
    /// First step of a site with an `rpo`: an automatic promotion whose replication lag
    /// is over the RPO waits here for a person's approval.
    RpoGate,
    /// RDS `PromoteReadReplica`, then wait until the instance is available.
    PromoteReplica {
        instance: String,
    },
    /// ECS `UpdateService` desired count, then wait until that many tasks run and the
    /// deployment is complete.
    ScaleEcs {
        cluster: String,
        service: String,
        desired: u32,
    },
    /// Aurora Global Database: make the site's cluster the writer (planned switchover,
    /// or detach-and-promote when the writer is gone).
    PromoteCluster {
        global_cluster: String,
        cluster: String,
        mode: super::data::ClusterMode,
        allow_data_loss: bool,
    },
    /// EKS `UpdateNodegroupConfig` scaling, then wait until the node group is `ACTIVE`.
    ScaleEksNodegroup {
        cluster: String,
        nodegroup: String,
        desired: u32,
        min: Option<u32>,
        max: Option<u32>,
    },
}

impl StepKind {
    pub fn word(&self) -> &'static str {
        match self {
            StepKind::StartInstances => "start_instances",
            StepKind::ScaleUp => "scale_up",
            StepKind::Launch => "launch",
            StepKind::WaitHealthy { .. } => "wait_healthy",
            StepKind::Shift => "shift",
            StepKind::Exec { .. } => "exec",
            StepKind::Webhook { .. } => "webhook",
            StepKind::Approval => "approval",
            StepKind::Verify => "verify",
            StepKind::Parallel(_) => "parallel",
            StepKind::RoutingControls { .. } => "routing_controls",
            StepKind::RpoGate => "rpo_gate",
            StepKind::PromoteReplica { .. } => "promote_replica",
            StepKind::PromoteCluster { .. } => "promote_cluster",
            StepKind::ScaleEcs { .. } => "scale_ecs",
            StepKind::ScaleEksNodegroup { .. } => "scale_eks_nodegroup",
        }
    }
}

/// How sites fail over.
#[derive(Debug, Clone, PartialEq)]
pub struct SitePolicy {
    pub automatic: bool,
    pub grace: Duration,
    pub automatic_failback: bool,
    pub preflight_interval: Duration,
}

impl Default for SitePolicy {
    fn default() -> Self {
        SitePolicy {
            automatic: true,
            grace: Duration::from_secs(10),
            automatic_failback: false,
            preflight_interval: Duration::from_secs(300),
        }
    }
}
