//! The `routing_control` float: a group whose owner is the target whose ARC routing
//! control is on. Observing lists the control panel's controls; a move is one
//! `UpdateRoutingControlStates` (the new owner's control on, every other target's off),
//! so ARC checks its safety rules against the whole change; a release turns them all off.
//!
//! ARC keeps no tags and has no compare-and-set, so this float carries no stamp: the fence
//! (asked right before each endpoint's attempt) is what keeps a deposed leader out.

use super::spec::ArcFloat;
use super::{ArcCluster, ArcError};
use crate::leader::Fence;
use crate::metrics::Metrics;
use crate::model::MoveStamp;
use crate::provider::{
    Attached, FloatKind, FloatRef, MoveDone, MoveOrder, Observation, ProviderError, ReleaseOrder,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// ARC clients per control panel, built on first use (building one resolves
/// credentials, so it is done once, not per call).
pub struct ArcFloats {
    call_timeout: Duration,
    credentials: Option<aws_credential_types::Credentials>,
    clusters: tokio::sync::Mutex<HashMap<String, Arc<ArcCluster>>>,
    metrics: Arc<Metrics>,
    mutations: Arc<AtomicU64>,
}

fn arc(f: &FloatRef) -> Result<&ArcFloat, ProviderError> {
    match &f.kind {
        FloatKind::Arc(a) => Ok(a),
        _ => Err(ProviderError::WrongProvider(
            f.id.clone(),
            "routing_control",
        )),
    }
}

/// Where a failure happened, in the provider's words (`op in region: Code: message`).
fn provider_error(e: ArcError) -> ProviderError {
    match e {
        ArcError::Refused {
            op,
            region,
            code,
            message,
        } => ProviderError::Api {
            op,
            region,
            code,
            message,
        },
        ArcError::Unavailable { op, tried } => ProviderError::Transport {
            op,
            region: "every ARC cluster endpoint".into(),
            code: "Unavailable".into(),
            message: tried,
        },
        ArcError::Fenced(source) => ProviderError::Fenced {
            op: "UpdateRoutingControlStates",
            source,
        },
    }
}

/// The holder of a float given its controls' states: the one target whose control is
/// on. None when none is, or when several are (traffic split over two owners is not an
/// owner: the next move turns all but one off).
pub fn holder(float: &ArcFloat, states: &HashMap<String, bool>) -> Option<Attached> {
    let mut on = float
        .controls
        .iter()
        .filter(|c| states.get(*c).copied().unwrap_or(false));
    match (on.next(), on.next()) {
        (Some(one), None) => Some(Attached::Arc(one.clone())),
        _ => None,
    }
}

impl ArcFloats {
    pub fn new(
        call_timeout: Duration,
        credentials: Option<aws_credential_types::Credentials>,
        metrics: Arc<Metrics>,
        mutations: Arc<AtomicU64>,
    ) -> Self {
        ArcFloats {
            call_timeout,
            credentials,
            clusters: Default::default(),
            metrics,
            mutations,
        }
    }

    async fn cluster(&self, f: &ArcFloat) -> Arc<ArcCluster> {
        let mut map = self.clusters.lock().await;
        if let Some(c) = map.get(&f.control_panel) {
            return c.clone();
        }
        let c = Arc::new(
            ArcCluster::connect(&f.cluster, self.call_timeout, self.credentials.clone()).await,
        );
        map.insert(f.control_panel.clone(), c.clone());
        c
    }

    /// Each float's holder, from one listing of its control panel.
    pub async fn observe(
        &self,
        floats: &[&FloatRef],
    ) -> Result<HashMap<String, Observation>, ProviderError> {
        let mut out = HashMap::new();
        for f in floats {
            let a = arc(f)?;
            let states = self
                .cluster(a)
                .await
                .states(&a.control_panel)
                .await
                .map_err(provider_error)?;
            out.insert(
                f.id.clone(),
                Observation {
                    holder: holder(a, &states),
                    ..Observation::default()
                },
            );
        }
        Ok(out)
    }

    /// Turn `on` on and every other control of the float off, in one update.
    async fn set(
        &self,
        a: &ArcFloat,
        on: Option<&str>,
        stamp: &MoveStamp,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        let on: Vec<String> = on.map(str::to_string).into_iter().collect();
        let off: Vec<String> = a
            .controls
            .iter()
            .filter(|c| !on.contains(c))
            .cloned()
            .collect();
        let budget = self.call_timeout;
        let gate = || {
            fence.permit(stamp.epoch, budget).inspect_err(|_| {
                self.metrics.fenced.inc();
            })?;
            self.mutations.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        self.cluster(a)
            .await
            .set(&on, &off, &[], &gate)
            .await
            .map(|_| ())
            .map_err(provider_error)
    }

    pub async fn move_float(
        &self,
        o: &MoveOrder,
        fence: &dyn Fence,
    ) -> Result<MoveDone, ProviderError> {
        let a = arc(&o.float)?;
        let to =
            o.to.arc
                .as_deref()
                .ok_or(ProviderError::MissingBinding("routing_control"))?;
        let started = Instant::now();
        self.set(a, Some(to), &o.stamp, fence).await?;
        Ok(MoveDone {
            calls_to_move: 1,
            move_time: started.elapsed(),
            stamp_error: None,
            token_wait: std::time::Duration::ZERO,
        })
    }

    pub async fn release_float(
        &self,
        o: &ReleaseOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        let a = arc(&o.float)?;
        self.set(a, None, &o.stamp, fence).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float() -> ArcFloat {
        ArcFloat {
            control_panel: "p".into(),
            cluster: vec![],
            controls: vec!["p/routingcontrol/a".into(), "p/routingcontrol/b".into()],
        }
    }

    fn states(on: &[&str]) -> HashMap<String, bool> {
        float()
            .controls
            .iter()
            .map(|c| (c.clone(), on.iter().any(|o| c.ends_with(o))))
            .collect()
    }

    #[test]
    fn the_holder_is_the_one_control_that_is_on() {
        let f = float();
        assert_eq!(
            holder(&f, &states(&["/b"])),
            Some(Attached::Arc("p/routingcontrol/b".into()))
        );
        assert_eq!(holder(&f, &states(&[])), None, "all off: no holder");
        assert_eq!(
            holder(&f, &states(&["/a", "/b"])),
            None,
            "two on: no single owner"
        );
        let mut unknown = states(&[]);
        unknown.insert("p/routingcontrol/other".into(), true);
        assert_eq!(
            holder(&f, &unknown),
            None,
            "controls of other groups do not count"
        );
    }
}
