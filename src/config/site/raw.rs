//! Sites as written in the config (`sites:`, `site_policy:`).

use crate::config::Dur;
use serde::{Deserialize, Serialize};

/// How much of a site runs before it is promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Running and healthy: promotion only shifts traffic.
    Hot,
    /// Scaled down: start stopped standbys and/or raise an Auto Scaling group, wait until
    /// healthy, shift.
    Warm,
    /// Absent: launch instances from a launch template or an AMI, wait until healthy,
    /// shift.
    Cold,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }
}

/// One site: where it is, how ready it is, what it is made of, the traffic it takes and
/// how it is promoted.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: String,
    /// Default: aws.region.
    pub region: Option<String>,
    pub tier: Tier,
    /// The site that takes the traffic normally (exactly one site is primary).
    #[serde(default)]
    pub primary: bool,
    /// The site's targets, as `group/target`: their health is the site's health, and
    /// `wait_healthy` waits for them.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Fraction of `targets` that must be up for the site to be healthy (0 < q <= 1).
    #[serde(default = "default_quorum")]
    pub quorum: f64,
    /// The traffic this site takes once promoted: for each group, its target here.
    #[serde(default)]
    pub traffic: Vec<RawTraffic>,
    /// Recovery-time budget of the whole promotion.
    pub rto: Option<Dur>,
    /// Abort the promotion when a step or the total goes over its budget (default: raise
    /// an event and a metric, and go on: a late recovery beats none).
    #[serde(default)]
    pub abort_over_budget: bool,
    /// Warm: stopped standby instances to start.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Warm: an Auto Scaling group whose desired capacity is raised.
    pub auto_scaling: Option<RawAutoScaling>,
    /// Cold: what to launch.
    pub launch: Option<RawLaunch>,
    /// The promotion plan. Default from the tier: hot `shift`; warm `start_instances`
    /// and/or `scale_up`, `wait_healthy`, `shift`; cold `launch`, `wait_healthy`, `shift`.
    pub steps: Option<Vec<RawStep>>,
    /// Recovery point objective: an automatic promotion whose replication lag is over
    /// this waits for a person's approval (needs `replication_lag`).
    pub rpo: Option<Dur>,
    /// Where the replication lag of this site's data is read.
    pub replication_lag: Option<super::data::RawLag>,
    /// The site's Aurora Global Database cluster (for `promote_cluster`).
    pub aurora: Option<super::data::RawAurora>,
}

fn default_quorum() -> f64 {
    0.5
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub group: String,
    pub target: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutoScaling {
    pub name: String,
    pub desired: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLaunch {
    pub launch_template: Option<String>,
    /// Launch template version (default `$Default`).
    pub version: Option<String>,
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    pub subnet_id: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
    /// Tags put on the launched instances (floatover adds `floatover:site` and
    /// `floatover:run`).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// How `wait_healthy` probes each launched instance: a probe whose URL, address or
    /// command may use `{instance_id}`, `{private_ip}` and `{public_ip}`.
    pub probe: Option<crate::config::raw::RawProbe>,
    /// Launched instances that must pass `probe` (default: all of them).
    pub min_healthy: Option<u32>,
}

fn one() -> u32 {
    1
}

/// One step of a promotion plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawStep {
    StartInstances(RawBasic),
    ScaleUp(RawBasic),
    Launch(RawBasic),
    WaitHealthy(RawWait),
    Shift(RawBasic),
    Exec(RawExec),
    Webhook(RawWebhook),
    Approval(RawApproval),
    Parallel(RawParallel),
    RoutingControls(RawRoutingControls),
    PromoteReplica(super::data::RawPromoteReplica),
    PromoteCluster(super::data::RawPromoteCluster),
    ScaleEcs(super::data::RawScaleEcs),
    ScaleEksNodegroup(super::data::RawScaleEks),
}

/// Set Route 53 ARC routing controls through the cluster's data plane (no need for Route
/// 53's change API at the moment of failover).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutingControls {
    pub name: Option<String>,
    pub budget: Option<Dur>,
    /// The cluster's regional endpoints, tried in turn (any one applies the change).
    pub cluster: Vec<RawClusterEndpoint>,
    /// Routing control ARNs to turn on (this site's) ...
    #[serde(default)]
    pub on: Vec<String>,
    /// ... and to turn off (the site being left).
    #[serde(default)]
    pub off: Vec<String>,
    /// Safety rule ARNs to override (a person's decision: default none).
    #[serde(default)]
    pub override_safety_rules: Vec<String>,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterEndpoint {
    pub endpoint: String,
    pub region: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    pub name: Option<String>,
    pub budget: Option<Dur>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWait {
    pub name: Option<String>,
    pub budget: Option<Dur>,
    /// Targets that must be up (default: the site's quorum).
    pub min: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    pub name: Option<String>,
    pub budget: Option<Dur>,
    /// argv; no shell. The run's JSON is on stdin.
    pub command: Vec<String>,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub optional: bool,
    /// Safe to run again after a leader change interrupted it (default: no, the plan
    /// stops there for a person to decide).
    #[serde(default)]
    pub idempotent: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub name: Option<String>,
    /// Total time for every attempt.
    pub budget: Option<Dur>,
    pub url: String,
    /// Environment variable holding the HMAC-SHA256 key for the signature header.
    pub secret_env: Option<String>,
    /// One attempt's timeout.
    pub timeout: Option<Dur>,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub idempotent: bool,
}

fn default_retries() -> u32 {
    2
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    pub name: Option<String>,
    /// How long to wait for `floatover promote SITE --approve` (default 60m).
    pub timeout: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawParallel {
    pub name: Option<String>,
    /// Default: the longest budget of its steps.
    pub budget: Option<Dur>,
    pub steps: Vec<RawStep>,
}

/// How sites fail over.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSitePolicy {
    /// Promote a DR site when the active site loses its health quorum.
    #[serde(default = "yes")]
    pub automatic: bool,
    /// The active site must have been below quorum this long first.
    #[serde(default = "default_grace")]
    pub grace: Dur,
    /// Return to the primary site by itself once it is healthy again (default: no;
    /// failback is asked for with `floatover promote PRIMARY`).
    #[serde(default)]
    pub automatic_failback: bool,
    /// How often the pre-flight checks run in the background.
    #[serde(default = "default_preflight")]
    pub preflight_interval: Dur,
}

fn yes() -> bool {
    true
}
fn default_grace() -> Dur {
    Dur::ms(10_000)
}
fn default_preflight() -> Dur {
    Dur::ms(300_000)
}

impl Default for RawSitePolicy {
    fn default() -> Self {
        RawSitePolicy {
            automatic: true,
            grace: default_grace(),
            automatic_failback: false,
            preflight_interval: default_preflight(),
        }
    }
}
