//! Route 53 ARC routing controls: a way to steer DNS that does not need Route 53's change
//! API (served from us-east-1) at the moment of failover. Failover records are created
//! beforehand, each tied to a routing control through a health check; turning controls on
//! and off goes through the ARC cluster's data plane, five regional endpoints of which any
//! one will do. So the update is tried on each endpoint in turn until one applies it, and
//! stops at once when an endpoint refuses it for a reason another endpoint would share (a
//! safety rule, a missing permission, an unknown control).
//!
//! Two users: the `routing_controls` promotion step (a site's plan turns controls on and
//! off) and the `routing_control` float kind ([`float`]: a group's owner is the target
//! whose control is on).
//!
//! No emulator serves ARC: tests run the real SDK against an in-test endpoint that speaks
//! its JSON protocol (`floatover_devkit::arc`, a test double) and a black hole (docs/architecture.md,
//! "Limitations").

pub mod float;
pub mod spec;

use crate::aws::{Failure, failure, sdk_config};
use crate::leader::FenceError;
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use std::collections::HashMap;
use std::time::Duration;

/// One of the cluster's regional endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ClusterEndpoint {
    pub url: String,
    pub region: String,
}

/// Why routing controls were not set.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ArcError {
    /// An endpoint answered no for a reason every endpoint shares: a safety rule
    /// (`ConflictException`), a bad request, a missing permission, an unknown control.
    #[error("{op} in {region}: {code}: {message}")]
    Refused {
        op: &'static str,
        region: String,
        code: String,
        message: String,
    },
    /// Every endpoint was tried; none answered (each named with its error).
    #[error("{op}: no ARC cluster endpoint answered: {tried}")]
    Unavailable { op: &'static str, tried: String },
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
        let overrides = (!overrides.is_empty()).then(|| overrides.to_vec());
        self.each("UpdateRoutingControlStates", Some(gate), |client| {
            let call = client
                .update_routing_control_states()
                .set_update_routing_control_state_entries(Some(entries.clone()))
                .set_safety_rules_to_override(overrides.clone());
            async move { call.send().await.map(|_| ()) }
        })
        .await
        .map(|(url, ())| url)
    }

    /// Every routing control of `control_panel` and whether it is on, read through the
    /// first endpoint that answers (all pages).
    pub async fn states(&self, control_panel: &str) -> Result<HashMap<String, bool>, ArcError> {
        let (_, states) = self
            .each("ListRoutingControls", None, |client| {
                let (client, panel) = (client.clone(), control_panel.to_string());
                async move {
                    let mut out = HashMap::new();
                    let mut next: Option<String> = None;
                    loop {
                        let page = client
                            .list_routing_controls()
                            .control_panel_arn(&panel)
                            .set_next_token(next.take())
                            .send()
                            .await?;
                        for c in page.routing_controls() {
                            if let Some(arn) = c.routing_control_arn() {
                                let on =
                                    c.routing_control_state() == Some(&RoutingControlState::On);
                                out.insert(arn.to_string(), on);
                            }
                        }
                        match page.next_token() {
                            Some(t) if !t.is_empty() => next = Some(t.to_string()),
                            _ => return Ok(out),
                        }
                    }
                }
            })
            .await?;
        Ok(states)
    }

    /// Run `call` on each endpoint in turn until one answers; a final refusal stops at
    /// once. `gate` (mutating calls) runs right before each attempt.
    async fn each<T, E, R, F>(
        &self,
        op: &'static str,
        gate: Option<&(dyn Fn() -> Result<(), FenceError> + Sync)>,
        call: impl Fn(&aws_sdk_route53recoverycluster::Client) -> F,
    ) -> Result<(String, T), ArcError>
    where
        F: std::future::Future<
                Output = Result<T, aws_sdk_route53recoverycluster::error::SdkError<E, R>>,
            >,
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + crate::aws::HttpStatus + 'static,
    {
        let mut tried = Vec::new();
        for (ep, client) in &self.endpoints {
            if let Some(gate) = gate {
                gate()?;
            }
            let span =
                tracing::info_span!("provider_call", op, region = %ep.region, endpoint = %ep.url);
            match tracing::Instrument::instrument(call(client), span).await {
                Ok(v) => return Ok((ep.url.clone(), v)),
                Err(e) => match failure(&e) {
                    Failure::Api { code, message } if final_code(&code) => {
                        return Err(ArcError::Refused {
                            op,
                            region: ep.region.clone(),
                            code,
                            message,
                        });
                    }
                    Failure::Api { code, message }
                    | Failure::Throttled { code, message }
                    | Failure::Transport { code, message } => {
                        tracing::warn!(op, endpoint = %ep.url, region = %ep.region, %code, %message, "ARC endpoint did not answer; trying the next one");
                        tried.push(format!("{} ({}): {code}: {message}", ep.url, ep.region));
                    }
                },
            }
        }
        Err(ArcError::Unavailable {
            op,
            tried: tried.join("; "),
        })
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
