//! Adapters from the controller's types (config, health board, provider observations) to
//! the planner's input. They sit on this side of the boundary so that the planner imports
//! nothing but `model`; the engine and `floatover plan` share them, so the dry run
//! decides exactly as the controller would.

use crate::config::GroupSpec;
use crate::model::{Holder, TargetId};
use crate::plan::{FloatView, GroupView, HealthView, ObservedFloat, PlanPolicy, TargetView};
use crate::probe::{TargetHealth, TargetKey};
use crate::provider::{Attached, Observation};
use std::collections::{BTreeMap, HashMap};

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
                weight: t.weight,
            })
            .collect(),
        floats: g
            .floats
            .iter()
            .map(|f| FloatView {
                id: f.id.clone(),
                weighted: f.kind.weighted(),
                roles_only: f.kind.roles_only(),
            })
            .collect(),
        policy: PlanPolicy {
            preempt: g.policy.preempt,
            failback_delay: g.policy.failback_delay,
            min_hold: g.policy.min_hold,
            on_all_unhealthy: g.policy.on_all_unhealthy,
            min_healthy: g.policy.min_healthy,
            min_capacity: g.policy.min_capacity,
            site_managed: g.policy.site_managed,
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

/// Each target's weight in a weighted float (targets without a record are absent;
/// members that are not targets are left out: floatover never touches them).
pub fn weights_of(g: &GroupSpec, o: &Observation) -> BTreeMap<TargetId, u32> {
    o.weights
        .iter()
        .filter_map(|(m, w)| {
            g.targets
                .iter()
                .find(|t| t.bindings.matches(m))
                .map(|t| (t.id.clone(), *w))
        })
        .collect()
}

/// The owner of a weighted float in active-standby terms: the member with the most weight
/// (first in config order on a tie), if it is a target and has any weight.
fn heaviest(g: &GroupSpec, o: &Observation) -> Holder {
    let best = o
        .weights
        .iter()
        .filter(|(_, w)| *w > 0)
        .max_by_key(|(_, w)| *w);
    match best {
        None => Holder::Nobody,
        Some((m, _)) => holder_of(g, Some(m)),
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
                        since: h.since.into_std(),
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
                (f.id.clone(), {
                    let weights = weights_of(g, o);
                    let holder = if o.weights.is_empty() {
                        holder_of(g, o.holder.as_ref())
                    } else {
                        heaviest(g, o)
                    };
                    ObservedFloat {
                        holder,
                        weights,
                        stamp: o.stamp.clone(),
                    }
                })
            })
        })
        .collect()
}
