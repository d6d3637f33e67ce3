//! What a promotion asks of the provider, provider-neutral: start stopped standbys, raise
//! a scaling group, launch new instances, and read back their states and addresses.

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
}
