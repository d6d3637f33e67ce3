//! The `FloatGroup` custom resource (`floatover.io/v1alpha1`): a group of the file config
//! as a Kubernetes object, its spec the same schema as `groups[]` (generated from the same
//! Rust types, so the two cannot drift), its name the group's name. `crdgen` writes the
//! CustomResourceDefinition (`charts/floatover/crd/floatgroups.yaml`, checked in and
//! compared with the generated one by the tests).
//!
//! With `group_source: kubernetes` every replica reads the FloatGroups of one namespace as
//! its groups ([`source`]: a bad object is rejected alone, the others run) and the leader
//! writes their status and an Event on every move ([`publish`]).

pub mod publish;
pub mod source;

use crate::config::raw::{RawFloat, RawGroup, RawPolicy, RawTarget};
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// A group of targets and the floats that follow the healthy one(s).
#[derive(CustomResource, Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[kube(
    group = "floatover.io",
    version = "v1alpha1",
    kind = "FloatGroup",
    plural = "floatgroups",
    shortname = "fg",
    namespaced,
    status = "FloatGroupStatus",
    printcolumn = r#"{"name":"Owner","type":"string","jsonPath":".status.owner"}"#,
    printcolumn = r#"{"name":"Epoch","type":"integer","jsonPath":".status.epoch"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(deny_unknown_fields)]
pub struct FloatGroupSpec {
    /// Region of the group's EC2 floats (default: aws.region).
    pub region: Option<String>,
    #[serde(default)]
    pub policy: RawPolicy,
    pub targets: Vec<RawTarget>,
    pub floats: Vec<RawFloat>,
}

/// What the leader reports on a FloatGroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FloatGroupStatus {
    /// The target holding the group's floats.
    pub owner: Option<String>,
    /// The leader's epoch when it wrote this status.
    pub epoch: Option<u64>,
    /// Each target's health.
    #[serde(default)]
    pub targets: Vec<TargetHealthStatus>,
    /// When the owner last changed (RFC 3339).
    pub last_transition: Option<String>,
    /// The spec generation that is running (behind `metadata.generation` while a newer
    /// spec is rejected: see `message`).
    pub observed_generation: Option<i64>,
    /// Why the spec is not running (a rejected spec names the field and the reason).
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetHealthStatus {
    pub name: String,
    /// `up`, `down` or `unknown`.
    pub health: String,
}

impl FloatGroup {
    /// The group this resource describes, named after the resource.
    pub fn group(&self) -> RawGroup {
        RawGroup {
            name: self.metadata.name.clone().unwrap_or_default(),
            region: self.spec.region.clone(),
            policy: self.spec.policy.clone(),
            targets: self.spec.targets.clone(),
            floats: self.spec.floats.clone(),
        }
    }
}

/// The CustomResourceDefinition, as YAML.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&FloatGroup::crd())
}
