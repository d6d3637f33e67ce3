//! A group as written (in the file's `groups:` or a FloatGroup's spec): its policy, its
//! targets and their probes, its floats. These types also give the CRD its schema.

use super::*;

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: String,
    pub region: Option<String>,
    #[serde(default)]
    pub policy: RawPolicy,
    pub targets: Vec<RawTarget>,
    pub floats: Vec<RawFloat>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    #[serde(default)]
    pub mode: Mode,
    /// Return to the highest-priority target once it is healthy again.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// How long the preferred target must stay healthy before failback.
    #[serde(default = "default_failback_delay")]
    pub failback_delay: Dur,
    /// Minimum time between two automatic moves of one float (flap damping).
    #[serde(default = "default_min_hold")]
    pub min_hold: Dur,
    #[serde(default)]
    pub on_all_unhealthy: OnAllUnhealthy,
    /// What to do when someone else changed a float.
    #[serde(default)]
    pub on_drift: OnDrift,
    /// `strict`: Elastic IPs move only from the association that was observed, so that EC2
    /// itself refuses a write based on a stale view.
    #[serde(default)]
    pub fencing: Fencing,
    /// Active-active: the fewest healthy targets the group is sized for (N+1). Below it,
    /// floatover still spreads the weight over the survivors, and warns.
    #[serde(default)]
    pub min_healthy: u32,
    /// Active-active: the least summed weight of healthy targets the group is sized for
    /// (weights as capacity: with 100/50/50, losing the 100 leaves 100). Below it,
    /// floatover still spreads the weight over the survivors, and warns.
    #[serde(default)]
    pub min_capacity: u32,
    /// When more moves are due than the provider's tokens allow (a zone outage moving
    /// hundreds of floats), failovers go first, and among them groups with a higher
    /// priority; equal priorities go in config order.
    #[serde(default)]
    pub priority: u32,
}

/// What the leader does when it finds a float changed by someone else.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnDrift {
    /// Put the float back on the owner it had (if that owner is up), at once.
    #[default]
    Revert,
    /// Accept the change: a target of the group becomes the owner (the group's other
    /// floats follow it); a holder outside the group keeps the float until it changes.
    Adopt,
}

/// How Elastic IP moves are fenced at the provider.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Fencing {
    /// One call per move (AssociateAddress with reassociation); stale writes are found by
    /// the drift check and corrected.
    #[default]
    Standard,
    /// DisassociateAddress of the observed association, then AssociateAddress without
    /// reassociation: a write based on a stale view fails at EC2. Two calls per move.
    Strict,
}

fn default_true() -> bool {
    true
}
fn default_failback_delay() -> Dur {
    Dur::ms(30_000)
}
fn default_min_hold() -> Dur {
    Dur::ms(5_000)
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            mode: Mode::ActiveStandby,
            preempt: true,
            failback_delay: default_failback_delay(),
            min_hold: default_min_hold(),
            on_all_unhealthy: OnAllUnhealthy::Keep,
            on_drift: OnDrift::Revert,
            fencing: Fencing::Standard,
            min_healthy: 0,
            min_capacity: 0,
            priority: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: String,
    pub instance_id: Option<String>,
    pub eni_id: Option<String>,
    /// The target's record in the group's DNS floats (weighted record sets).
    pub dns: Option<RawDnsMember>,
    /// The target's Route 53 ARC routing control ARN (groups with a `routing_control`
    /// float).
    pub routing_control: Option<String>,
    pub region: Option<String>,
    /// Higher wins. Ties are broken by the order in the config.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Share of traffic in DNS weights, proportional to capacity (1-255; default 100).
    #[serde(default = "default_weight")]
    pub weight: u32,
    pub probes: Vec<RawProbe>,
}

fn default_weight() -> u32 {
    100
}

fn default_priority() -> u32 {
    100
}

/// Exactly one of `http`, `tcp`, `exec`, plus optional overrides of the defaults.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub http: Option<RawHttpProbe>,
    pub tcp: Option<RawTcpProbe>,
    pub exec: Option<RawExecProbe>,
    pub interval: Option<Dur>,
    pub fast_interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttpProbe {
    pub url: String,
    /// Accepted status codes (default: any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// The body must contain this text.
    pub body_contains: Option<String>,
    /// Skip TLS certificate verification (self-signed health endpoints).
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTcpProbe {
    /// `host:port`.
    pub address: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExecProbe {
    /// Program and arguments; exit code 0 means healthy. No shell is involved.
    pub command: Vec<String>,
}

/// Exactly one of `eip`, `secondary_ip`, `route` (EC2 floats; their fields and checks
/// belong to the EC2 provider, `provider::aws::ec2::spec`), `dns` (Route 53,
/// `provider::aws::route53::spec`) or `routing_control` (Route 53 ARC,
/// `provider::aws::arc::spec`).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFloat {
    pub eip: Option<RawEip>,
    pub secondary_ip: Option<RawSecondaryIp>,
    pub route: Option<RawRoute>,
    /// A Route 53 weighted record set (one record per target).
    pub dns: Option<RawDnsRecord>,
    /// Route 53 ARC routing controls (one per target; the owner's is on).
    pub routing_control: Option<crate::provider::aws::arc::spec::RawArcFloat>,
}

// ---------------------------------------------------------------------------------------
// Resolved
// ---------------------------------------------------------------------------------------
