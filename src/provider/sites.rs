//! What a promotion asks of the provider, provider-neutral: start stopped standbys and
//! read their states. (Auto Scaling and launches build on it.)

use super::ProviderError;
use std::collections::BTreeMap;

#[async_trait::async_trait]
pub trait SiteOps: Send + Sync {
    /// Start the instances (idempotent: a running instance stays running).
    async fn start_instances(&self, region: &str, ids: &[String]) -> Result<(), ProviderError>;
    /// Each instance's state (`pending`, `running`, `stopped`, ...); a missing one is absent.
    async fn instance_states(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, String>, ProviderError>;
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
}
