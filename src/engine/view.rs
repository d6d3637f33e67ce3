//! Adapters from the controller's types (config, health board, provider observations) to
//! the planner's input. They sit on this side of the boundary so that the planner imports
//! nothing but `model`; the engine and `floatover plan` share them, so the dry run
//! decides exactly as the controller would.

use crate::config::GroupSpec;
use crate::model::{Holder, TargetId};
use crate::plan::{FloatView, GroupView, HealthView, ObservedFloat, PlanPolicy, TargetView};
use crate::probe::{TargetHealth, TargetKey};
use crate::provider::{Attached, Observation};
use std::collections::HashMap;

/// The planner's view of a group's configuration.
pub fn group_view(g: &GroupSpec) -> GroupView {
    GroupView {
        name: g.name.clone(),
        mode: g.policy.mode,
        targets: g
            .targets
            .iter()
            .map(|t| TargetView {
                id: t.id.clone(),
                priority: t.priority,
            })
            .collect(),
        floats: g
            .floats
            .iter()
            .map(|f| FloatView { id: f.id.clone() })
            .collect(),
        policy: PlanPolicy {
            preempt: g.policy.preempt,
            failback_delay: g.policy.failback_delay,
            min_hold: g.policy.min_hold,
            on_all_unhealthy: g.policy.on_all_unhealthy,
        },
        settle: g.settle,
    }
}

/// The domain holder of an observed provider holder: a target of the group, nobody, or
/// something outside the group.
pub fn holder_of(g: &GroupSpec, h: Option<&Attached>) -> Holder {
    match h {
        None => Holder::Nobody,
        Some(ph) => g
            .targets
            .iter()
            .find(|t| t.bindings.matches(ph))
            .map(|t| Holder::Target(t.id.clone()))
            .unwrap_or_else(|| Holder::Foreign(ph.label())),
    }
}

/// The planner's view of a group's target health, from the health board's snapshot.
pub fn health_view(
    g: &GroupSpec,
    snapshot: &HashMap<TargetKey, TargetHealth>,
) -> HashMap<TargetId, HealthView> {
    g.targets
        .iter()
        .filter_map(|t| {
            let key = TargetKey {
                group: g.name.clone(),
                target: t.id.clone(),
            };
            snapshot.get(&key).map(|h| {
                (
                    t.id.clone(),
                    HealthView {
                        health: h.health,
                        since: h.since,
                    },
                )
            })
        })
        .collect()
}

/// The planner's view of a group's floats, from the provider's observation.
pub fn observed_view(
    g: &GroupSpec,
    observations: &HashMap<String, Observation>,
) -> HashMap<String, ObservedFloat> {
    g.floats
        .iter()
        .filter_map(|f| {
            observations.get(&f.id).map(|o| {
                (
                    f.id.clone(),
                    ObservedFloat {
                        holder: holder_of(g, o.holder.as_ref()),
                        stamp: o.stamp.clone(),
                    },
                )
            })
        })
        .collect()
}
