//! What a promotion asks of the provider, provider-neutral: start stopped standbys, raise
//! a scaling group, launch new instances, and read back their states and addresses; and
//! the data side: promote a database replica, scale a container service or a node group,
//! read a replication-lag metric.

use super::ProviderError;
use std::collections::BTreeMap;

/// One instance as a promotion sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceView {
    /// `pending`, `running`, `stopped`, `terminated`, ...
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

/// Instances to launch (a cold site). Either a launch template or an image (with a type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchRequest {
    pub launch_template: Option<String>,
    pub version: Option<String>,
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    pub subnet_id: Option<String>,
    pub count: u32,
    pub tags: BTreeMap<String, String>,
    /// Makes the launch idempotent at the provider: the same token launches once (AWS
    /// keeps it for at least a day).
    pub client_token: String,
}

/// A scaling group as a promotion sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalingView {
    pub desired: u32,
    pub max: u32,
    /// Instances in service and healthy by the group's own checks.
    pub in_service: Vec<String>,
    /// All instances with their lifecycle state.
    pub instances: BTreeMap<String, String>,
}

/// An RDS DB instance as a promotion sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbView {
    /// `available`, `modifying`, `backing-up`, ...
    pub status: String,
    /// The source it replicates from; None for a standalone (or promoted) instance.
    pub replica_of: Option<String>,
}

/// An Aurora DB cluster as a promotion sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub arn: String,
    /// `available`, `failing-over`, `modifying`, ...
    pub status: String,
}

/// One member of an Aurora global cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalMember {
    /// `arn:aws:rds:<region>:<account>:cluster:<id>`.
    pub arn: String,
    pub writer: bool,
}

/// An ECS service as a promotion sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceView {
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    /// Deployments still listed (more than one: a rollout in progress).
    pub deployments: u32,
    /// The primary deployment's rollout state (`COMPLETED`, `IN_PROGRESS`, `FAILED`),
    /// when ECS reports one.
    pub rollout: Option<String>,
}

/// An EKS managed node group as a promotion sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodegroupView {
    /// `ACTIVE`, `UPDATING`, `DEGRADED`, ...
    pub status: String,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
}

/// A node group's new scaling (None: unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodegroupScaling {
    pub desired: u32,
    pub min: Option<u32>,
    pub max: Option<u32>,
}

#[async_trait::async_trait]
pub trait SiteOps: Send + Sync {
    /// Start the instances (idempotent: a running instance stays running).
    async fn start_instances(&self, region: &str, ids: &[String]) -> Result<(), ProviderError>;
    /// Each instance's state and addresses; a missing one is absent.
    async fn describe_instances(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, InstanceView>, ProviderError>;
    /// StartInstances with DryRun: Ok when the call would be allowed (real AWS checks
    /// permissions this way; emulators say yes to anything).
    async fn can_start(&self, region: &str, ids: &[String]) -> Result<(), ProviderError>;
    /// Whether a launch template (id `lt-...` or name) exists.
    async fn launch_template_exists(
        &self,
        region: &str,
        template: &str,
    ) -> Result<bool, ProviderError>;
    /// Whether an AMI exists.
    async fn image_exists(&self, region: &str, image: &str) -> Result<bool, ProviderError>;
    /// Launch instances; returns their ids.
    async fn run_instances(
        &self,
        region: &str,
        req: &LaunchRequest,
    ) -> Result<Vec<String>, ProviderError>;
    /// Instances carrying the tag `key=value` that are not terminated (finds what an
    /// interrupted launch started before its ids were recorded).
    async fn instances_tagged(
        &self,
        region: &str,
        key: &str,
        value: &str,
    ) -> Result<Vec<String>, ProviderError>;
    /// A scaling group; None when it does not exist.
    async fn scaling_group(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<ScalingView>, ProviderError>;
    /// Set a scaling group's desired capacity.
    async fn set_desired(
        &self,
        region: &str,
        name: &str,
        desired: u32,
    ) -> Result<(), ProviderError>;

    /// An RDS DB instance; None when it does not exist.
    async fn db_instance(&self, _region: &str, _id: &str) -> Result<Option<DbView>, ProviderError> {
        Err(ProviderError::Unsupported("DescribeDBInstances"))
    }
    /// Promote a read replica to a standalone instance.
    async fn promote_read_replica(&self, _region: &str, _id: &str) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("PromoteReadReplica"))
    }
    /// An Aurora DB cluster; None when it does not exist.
    async fn db_cluster(
        &self,
        _region: &str,
        _id: &str,
    ) -> Result<Option<ClusterView>, ProviderError> {
        Err(ProviderError::Unsupported("DescribeDBClusters"))
    }
    /// The members of an Aurora global cluster; None when it does not exist.
    async fn global_cluster(
        &self,
        _region: &str,
        _id: &str,
    ) -> Result<Option<Vec<GlobalMember>>, ProviderError> {
        Err(ProviderError::Unsupported("DescribeGlobalClusters"))
    }
    /// Planned: make `target` (a cluster ARN) the global cluster's writer.
    async fn switchover_global_cluster(
        &self,
        _region: &str,
        _global: &str,
        _target: &str,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("SwitchoverGlobalCluster"))
    }
    /// Unplanned: detach `cluster` (an ARN) from the global cluster; it becomes a
    /// standalone writer.
    async fn detach_from_global_cluster(
        &self,
        _region: &str,
        _global: &str,
        _cluster: &str,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("RemoveFromGlobalCluster"))
    }
    /// The newest datapoint (maximum over a minute) of a CloudWatch metric with one
    /// dimension within the last ten minutes; None when there is none.
    async fn metric_latest(
        &self,
        _region: &str,
        _namespace: &str,
        _metric: &str,
        _dimension: (&str, &str),
    ) -> Result<Option<f64>, ProviderError> {
        Err(ProviderError::Unsupported("GetMetricData"))
    }
    /// An ECS service; None when it does not exist.
    async fn ecs_service(
        &self,
        _region: &str,
        _cluster: &str,
        _service: &str,
    ) -> Result<Option<ServiceView>, ProviderError> {
        Err(ProviderError::Unsupported("DescribeServices"))
    }
    /// Set an ECS service's desired count.
    async fn set_ecs_desired(
        &self,
        _region: &str,
        _cluster: &str,
        _service: &str,
        _desired: u32,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("UpdateService"))
    }
    /// An EKS managed node group; None when it does not exist.
    async fn nodegroup(
        &self,
        _region: &str,
        _cluster: &str,
        _nodegroup: &str,
    ) -> Result<Option<NodegroupView>, ProviderError> {
        Err(ProviderError::Unsupported("DescribeNodegroup"))
    }
    /// Change an EKS node group's scaling.
    async fn set_nodegroup_scaling(
        &self,
        _region: &str,
        _cluster: &str,
        _nodegroup: &str,
        _scaling: NodegroupScaling,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("UpdateNodegroupConfig"))
    }
}
