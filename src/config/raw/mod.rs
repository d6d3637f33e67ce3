//! The config as written (`Raw*`, serde): every key, its default and its serde shape.
//! Validation turns it into the resolved [`super::spec::Spec`].

use super::Dur;

pub use crate::model::{Mode, OnAllUnhealthy};
use crate::provider::aws::ec2::spec::{RawEip, RawRoute, RawSecondaryIp};
use crate::provider::aws::route53::spec::{RawDnsMember, RawDnsRecord};
use serde::{Deserialize, Serialize};

mod group;
pub use group::*;

// ---------------------------------------------------------------------------------------
// As written
// ---------------------------------------------------------------------------------------

/// Top-level config document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub aws: RawAws,
    pub leader: RawLeader,
    #[serde(default)]
    pub probe_defaults: RawProbeDefaults,
    /// How often the observed provider state is re-read even when nothing changed.
    #[serde(default = "default_resync")]
    pub resync_interval: Dur,
    /// How often the leader re-reads its floats to find changes made by someone else
    /// (drift) and late writes of a stale leader.
    #[serde(default = "default_drift_check")]
    pub drift_check: Dur,
    /// How long a switchover may take before the API answers that it did not complete.
    #[serde(default = "default_switchover_timeout")]
    pub switchover_timeout: Dur,
    /// Where the groups come from: `file` (the `groups:` below, the default) or
    /// `kubernetes` (FloatGroup objects; `groups:` must then be empty).
    #[serde(default)]
    pub group_source: RawGroupSource,
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    /// Disaster-recovery sites and their promotion plans.
    #[serde(default)]
    pub sites: Vec<crate::config::site::RawSite>,
    #[serde(default)]
    pub site_policy: crate::config::site::RawSitePolicy,
    /// Health votes from several vantage points (other replicas' views of the targets).
    pub health_votes: Option<RawHealthVotes>,
}

/// `health_votes`: a target counts as down only when more than `share` of the fresh views
/// (this replica's and its peers') say so.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthVotes {
    /// The other replicas' API URLs (their `api.advertise`).
    pub peers: Vec<String>,
    /// Down when more than this share of the fresh views say down (0.5: a majority).
    #[serde(default = "default_vote_share")]
    pub share: f64,
    /// A peer's view older than this does not count (default: 2 x probe_defaults.interval).
    pub max_age: Option<Dur>,
}

fn default_vote_share() -> f64 {
    0.5
}

/// Where the groups come from. One source is chosen at start.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RawGroupSource {
    /// `groups:` in this file.
    #[default]
    File,
    /// FloatGroup objects (`floatover.io/v1alpha1`) in one namespace, read by every
    /// replica, their status written by the leader.
    Kubernetes(RawKubeGroups),
}

/// Where the FloatGroup objects live.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawKubeGroups {
    /// Default: `$POD_NAMESPACE`, else the client's namespace.
    pub namespace: Option<String>,
}

fn default_switchover_timeout() -> Dur {
    Dur::ms(30_000)
}

fn default_drift_check() -> Dur {
    Dur::ms(2_000)
}

fn default_resync() -> Dur {
    Dur::ms(10_000)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token for mutating API calls, literally. Prefer `token_env`.
    pub token: Option<String>,
    /// Name of an environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// URL other replicas and clients use to reach this API (default: `http://` + listen,
    /// or the hostname when listening on all addresses). Written into the lease so that a
    /// standby can name the leader's API.
    pub advertise: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:9090".into()
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: default_listen(),
            token: None,
            token_env: None,
            advertise: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// Default region for groups and targets that do not name one.
    pub region: Option<String>,
    /// Endpoint override (LocalStack, VPC endpoints).
    pub endpoint_url: Option<String>,
    /// Per-service endpoint overrides, over `endpoint_url` (`rds`, `ecs`, `eks`,
    /// `cloudwatch`, `autoscaling`, `ec2`, `s3`, `route53`).
    #[serde(default)]
    pub service_endpoints: std::collections::BTreeMap<String, String>,
    /// Upper bound for one provider operation including its retries.
    #[serde(default = "default_call_timeout")]
    pub call_timeout: Dur,
    /// Attempts per provider operation (1 = no retry). Throttling and 5xx are retried
    /// with exponential backoff and full jitter.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Client-side token bucket of each mutating EC2 API, per region: burst size (EC2
    /// counts every API in its own bucket; its documented mutating category is 50).
    #[serde(default = "default_burst")]
    pub mutate_burst: u32,
    /// Refill rate of each mutating EC2 API's bucket, calls per second (EC2: 5).
    #[serde(default = "default_rate")]
    pub mutate_per_second: u32,
    /// Bucket of each Describe EC2 API, per region: burst size (EC2: 100).
    #[serde(default = "default_describe_burst")]
    pub describe_burst: u32,
    /// Refill rate of each Describe API's bucket, calls per second (EC2: 20).
    #[serde(default = "default_describe_rate")]
    pub describe_per_second: u32,
    /// Per-API bucket overrides, by EC2 API name (`AssociateAddress: { burst: 100,
    /// per_second: 20 }`): for an account whose limits AWS raised.
    #[serde(default)]
    pub api_limits: std::collections::BTreeMap<String, crate::pace::Limit>,
    /// Client-side token bucket for Route 53 change batches, per account: burst size.
    #[serde(default = "default_burst")]
    pub dns_burst: u32,
    /// Route 53 change batches per second (Route 53 allows five requests a second per
    /// account across all its APIs; reads share it).
    #[serde(default = "default_dns_rate")]
    pub dns_per_second: u32,
    /// `replace` (Route 53: DELETE exactly as observed + CREATE) or `upsert` (emulators).
    #[serde(default)]
    pub dns_member_writes: crate::aws::MemberWrites,
}

fn default_dns_rate() -> u32 {
    10
}

fn default_describe_burst() -> u32 {
    crate::pace::EC2_READ.burst
}

fn default_describe_rate() -> u32 {
    crate::pace::EC2_READ.per_second
}

fn default_call_timeout() -> Dur {
    Dur::ms(1_500)
}
fn default_attempts() -> u32 {
    3
}
fn default_burst() -> u32 {
    50
}
fn default_rate() -> u32 {
    5
}

impl Default for RawAws {
    fn default() -> Self {
        RawAws {
            region: None,
            endpoint_url: None,
            service_endpoints: Default::default(),
            call_timeout: default_call_timeout(),
            max_attempts: default_attempts(),
            mutate_burst: default_burst(),
            mutate_per_second: default_rate(),
            describe_burst: default_describe_burst(),
            describe_per_second: default_describe_rate(),
            api_limits: Default::default(),
            dns_burst: default_burst(),
            dns_per_second: default_dns_rate(),
            dns_member_writes: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeaderBackendKind {
    /// S3 object lease with conditional writes (works on real S3 and LocalStack).
    S3,
    /// One replica, always leader. Not highly available.
    Single,
    /// A Kubernetes Lease (coordination.k8s.io/v1) in the pod's namespace.
    Kubernetes,
    /// A majority of 3 or 5 independent stores (S3 buckets, Kubernetes Leases), so that
    /// losing one region, cluster or bucket leaves a leader.
    Quorum,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeader {
    pub backend: LeaderBackendKind,
    pub s3: Option<RawS3Lease>,
    pub kubernetes: Option<RawKubeLease>,
    pub quorum: Option<RawQuorum>,
    /// How long a lease stays valid without renewal, as seen by the other replicas.
    #[serde(default = "default_lease")]
    pub lease_duration: Dur,
    /// The holder steps down if it could not renew for this long.
    #[serde(default = "default_renew")]
    pub renew_deadline: Dur,
    /// Renew / retry period.
    #[serde(default = "default_retry")]
    pub retry_period: Dur,
    /// This replica's identity (default: hostname-pid-random).
    pub identity: Option<String>,
}

fn default_lease() -> Dur {
    Dur::ms(4_000)
}
fn default_renew() -> Dur {
    Dur::ms(2_500)
}
fn default_retry() -> Dur {
    Dur::ms(500)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3Lease {
    pub bucket: String,
    #[serde(default = "default_lease_key")]
    pub key: String,
    pub region: Option<String>,
    /// Endpoint override for the lease only (defaults to `aws.endpoint_url`).
    pub endpoint_url: Option<String>,
}

/// Where the Kubernetes Lease lives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubeLease {
    /// Default: `$POD_NAMESPACE`, else the client's namespace (the service account's in a
    /// pod, the kubeconfig context's outside).
    pub namespace: Option<String>,
    #[serde(default = "default_lease_name")]
    pub name: String,
    /// The kubeconfig context to use (default: in-cluster, else the current context), so
    /// that one replica can hold a Lease in another cluster (quorum members).
    pub context: Option<String>,
}

/// The members of a quorum lease.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuorum {
    pub members: Vec<RawQuorumMember>,
}

/// One quorum member: a name and exactly one store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuorumMember {
    /// Shown in status and in `floatover_lease_member_up{member}`.
    pub name: String,
    pub s3: Option<RawS3Lease>,
    pub kubernetes: Option<RawKubeLease>,
}

fn default_lease_name() -> String {
    "floatover".into()
}

impl Default for RawKubeLease {
    fn default() -> Self {
        RawKubeLease {
            namespace: None,
            name: default_lease_name(),
            context: None,
        }
    }
}

fn default_lease_key() -> String {
    "floatover/leader.json".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbeDefaults {
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// After a failed probe, probe again this often until rise or fall decides (HAProxy's
    /// `fastinter`): faster detection at the same steady-state probe rate. Default: the
    /// interval.
    pub fast_interval: Option<Dur>,
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    #[serde(default = "default_rise")]
    pub rise: u32,
    #[serde(default = "default_fall")]
    pub fall: u32,
}

fn default_interval() -> Dur {
    Dur::ms(1_000)
}
fn default_timeout() -> Dur {
    Dur::ms(800)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

impl Default for RawProbeDefaults {
    fn default() -> Self {
        RawProbeDefaults {
            interval: default_interval(),
            fast_interval: None,
            timeout: default_timeout(),
            rise: default_rise(),
            fall: default_fall(),
        }
    }
}
