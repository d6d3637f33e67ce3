//! Route 53 ARC routing controls: a way to steer DNS that does not need Route 53's change
//! API (served from us-east-1) at the moment of failover. Failover records are created
//! beforehand, each tied to a routing control through a health check; turning controls on
//! and off goes through the ARC cluster's data plane, five regional endpoints of which any
//! one will do. So the update is tried on each endpoint in turn until one applies it, and
//! stops at once when an endpoint refuses it for a reason another endpoint would share (a
//! safety rule, a missing permission, an unknown control).
//!
//! No emulator serves ARC: tests run the real SDK against an in-test endpoint that speaks
//! its JSON protocol and a black hole (README, "Limitations").

use crate::aws::{Failure, failure, sdk_config};
use crate::leader::FenceError;
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use std::time::Duration;

/// One of the cluster's regional endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEndpoint {
    pub url: String,
    pub region: String,
}

/// Why routing controls were not set.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ArcError {
    /// An endpoint answered no for a reason every endpoint shares: a safety rule
    /// (`ConflictException`), a bad request, a missing permission, an unknown control.
    #[error("UpdateRoutingControlStates in {region}: {code}: {message}")]
    Refused {
        region: String,
        code: String,
        message: String,
    },
    /// Every endpoint was tried; none answered (each named with its error).
    #[error("no ARC cluster endpoint answered: {0}")]
    Unavailable(String),
    /// This replica may not act (the fence refused before a call).
    #[error(transparent)]
    Fenced(#[from] FenceError),
}

/// Codes another endpoint would answer the same way: stop trying.
fn final_code(code: &str) -> bool {
    matches!(
        code,
        "ConflictException"
            | "ValidationException"
            | "AccessDeniedException"
            | "ResourceNotFoundException"
            | "ServiceLimitExceededException"
    )
}

/// The cluster's endpoints with an SDK client each, built once per promotion step (not
/// per attempt: loading an SDK config resolves credentials).
pub struct ArcCluster {
    endpoints: Vec<(ClusterEndpoint, aws_sdk_route53recoverycluster::Client)>,
}

impl ArcCluster {
    /// Clients for `cluster`; `call_timeout` bounds one endpoint's attempt.
    pub async fn connect(
        cluster: &[ClusterEndpoint],
        call_timeout: Duration,
        credentials: Option<aws_credential_types::Credentials>,
    ) -> Self {
        let mut endpoints = Vec::with_capacity(cluster.len());
        for ep in cluster {
            let conf = sdk_config(
                &ep.region,
                Some(&ep.url),
                call_timeout,
                1,
                credentials.clone(),
            )
            .await;
            endpoints.push((
                ep.clone(),
                aws_sdk_route53recoverycluster::Client::new(&conf),
            ));
        }
        ArcCluster { endpoints }
    }

    /// Set routing controls through the first endpoint that answers, trying them in
    /// order. `gate` runs right before each call (the fence). Returns the endpoint that
    /// applied the change.
    pub async fn set(
        &self,
        on: &[String],
        off: &[String],
        overrides: &[String],
        gate: &(dyn Fn() -> Result<(), FenceError> + Sync),
    ) -> Result<String, ArcError> {
        let entries: Vec<UpdateRoutingControlStateEntry> = on
            .iter()
            .map(|a| (a, RoutingControlState::On))
            .chain(off.iter().map(|a| (a, RoutingControlState::Off)))
            .filter_map(|(arn, state)| {
                UpdateRoutingControlStateEntry::builder()
                    .routing_control_arn(arn)
                    .routing_control_state(state)
                    .build()
                    .ok()
            })
            .collect();
        let mut tried = Vec::new();
        for (ep, client) in &self.endpoints {
            gate()?;
            let call = client
                .update_routing_control_states()
                .set_update_routing_control_state_entries(Some(entries.clone()))
                .set_safety_rules_to_override((!overrides.is_empty()).then(|| overrides.to_vec()))
                .send();
            let span = tracing::info_span!("provider_call", op = "UpdateRoutingControlStates", region = %ep.region, endpoint = %ep.url);
            match tracing::Instrument::instrument(call, span).await {
                Ok(_) => return Ok(ep.url.clone()),
                Err(e) => match failure(&e) {
                    Failure::Api { code, message } if final_code(&code) => {
                        return Err(ArcError::Refused {
                            region: ep.region.clone(),
                            code,
                            message,
                        });
                    }
                    Failure::Api { code, message }
                    | Failure::Throttled { code, message }
                    | Failure::Transport { code, message } => {
                        tracing::warn!(endpoint = %ep.url, region = %ep.region, %code, %message, "ARC endpoint did not apply the update; trying the next one");
                        tried.push(format!("{} ({}): {code}: {message}", ep.url, ep.region));
                    }
                },
            }
        }
        Err(ArcError::Unavailable(tried.join("; ")))
    }
}

/// [`ArcCluster::connect`] then [`ArcCluster::set`], for one update.
pub async fn set_routing_controls(
    cluster: &[ClusterEndpoint],
    on: &[String],
    off: &[String],
    overrides: &[String],
    call_timeout: Duration,
    credentials: Option<aws_credential_types::Credentials>,
    gate: &(dyn Fn() -> Result<(), FenceError> + Sync),
) -> Result<String, ArcError> {
    ArcCluster::connect(cluster, call_timeout, credentials)
        .await
        .set(on, off, overrides, gate)
        .await
}
