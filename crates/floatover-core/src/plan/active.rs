//! Active-active: every healthy target takes traffic, in proportion to its weight
//! (capacity). A target that goes down drops to 0 at once and its share spreads over the
//! rest; one that comes back is added again after `min_hold` since the float's last
//! change (flap damping never delays taking weight *away* from a down target).
//!
//! Safety rule (as in AWS ARC): never write all weights of a record to 0. An up target's
//! weight is at least 1, so weights are all-zero only when nothing is up, and then nothing
//! is written at all: `on_all_unhealthy: keep` (fail-open; the config refuses `release`
//! for weighted floats). At a fresh start, targets whose health is still unknown get
//! `settle` to answer before anyone's weight is taken away.

use super::{
    Action, FloatView, GroupPlan, Input, Note, ObservedFloat, Scratch, fenced, health_of, is_up,
    remaining, within_min_hold,
};
use crate::model::{Assignment, Health, OnAllUnhealthy, Reason, TargetId};
use std::collections::BTreeMap;

pub(super) fn plan(i: &Input) -> GroupPlan {
    let mut s = Scratch {
        notes: Vec::new(),
        next_wake: None,
    };
    let up = i.group.targets.iter().filter(|t| is_up(i, &t.id)).count();
    let up = u32::try_from(up).unwrap_or(u32::MAX);
    let min = i.group.policy.min_healthy;
    if min > 0 && up < min {
        s.notes.push(Note::BelowMinHealthy {
            healthy: up,
            min_healthy: min,
        });
    }
    let capacity = i
        .group
        .targets
        .iter()
        .filter(|t| is_up(i, &t.id))
        .fold(0u32, |sum, t| sum.saturating_add(t.weight));
    let min_capacity = i.group.policy.min_capacity;
    if min_capacity > 0 && capacity < min_capacity {
        s.notes.push(Note::BelowMinCapacity {
            capacity,
            min_capacity,
        });
    }
    let desired: BTreeMap<TargetId, u32> = i
        .group
        .targets
        .iter()
        .map(|t| (t.id.clone(), if is_up(i, &t.id) { t.weight } else { 0 }))
        .collect();
    let mut actions = Vec::new();
    if up == 0 {
        for f in &i.group.floats {
            if let Some(a) = release(i, f, &mut s) {
                actions.push(a);
            } else {
                s.notes.push(Note::NoHealthyTarget {
                    float: f.id.clone(),
                });
            }
        }
    } else if !settling(i, &mut s) {
        for f in &i.group.floats {
            if let Some(a) = plan_float(i, f, &desired, &mut s) {
                actions.push(a);
            }
        }
    }
    GroupPlan {
        desired: Assignment::Weights(desired),
        actions,
        notes: s.notes,
        next_wake: s.next_wake,
    }
}

/// Fresh start: some targets have no verdict yet. Wait up to `settle` for them, so that
/// the first target to answer does not take all the traffic by accident.
fn settling(i: &Input, s: &mut Scratch) -> bool {
    let until = i
        .group
        .targets
        .iter()
        .filter(|t| health_of(i, &t.id).health == Health::Unknown)
        .map(|t| health_of(i, &t.id).since + i.group.settle)
        .filter(|until| i.now < *until)
        .max();
    match until {
        Some(until) => {
            s.wake_at(until);
            s.notes.push(Note::Settling {
                remaining_ms: remaining(until, i.now),
            });
            true
        }
        None => false,
    }
}

fn plan_float(
    i: &Input,
    f: &FloatView,
    desired: &BTreeMap<TargetId, u32>,
    s: &mut Scratch,
) -> Option<Action> {
    let obs = i.observed.get(&f.id)?;
    if !f.weighted || &obs.weights == desired {
        return None;
    }
    if fenced(i, f, obs, s) {
        return None;
    }
    let reason = reason(obs, desired);
    // Flap damping for adding weight back only.
    if reason == Reason::Failback && within_min_hold(i, f, s) {
        return None;
    }
    Some(Action::SetWeights {
        group: i.group.name.clone(),
        float: f.id.clone(),
        from: obs.weights.clone(),
        weights: desired.clone(),
        reason,
    })
}

/// Failover when weight is taken from a target; failback when only added; drift when
/// neither (someone edited a weight, or a record is missing).
/// `on_all_unhealthy: release` with every target down (not merely unknown): remove the
/// records (fail closed) instead of leaving the dead targets' weights in place.
fn release(i: &Input, f: &FloatView, s: &mut Scratch) -> Option<Action> {
    if i.group.policy.on_all_unhealthy != OnAllUnhealthy::Release {
        return None;
    }
    let all_down = i
        .group
        .targets
        .iter()
        .all(|t| health_of(i, &t.id).health == Health::Down);
    let obs = i.observed.get(&f.id)?;
    if !all_down || obs.weights.is_empty() || fenced(i, f, obs, s) {
        return None;
    }
    Some(Action::Release {
        group: i.group.name.clone(),
        float: f.id.clone(),
        from: obs.holder.clone(),
    })
}

fn reason(obs: &ObservedFloat, desired: &BTreeMap<TargetId, u32>) -> Reason {
    let before = |t: &TargetId| obs.weights.get(t).copied().unwrap_or(0);
    if desired.iter().any(|(t, w)| *w == 0 && before(t) > 0) {
        Reason::Failover
    } else if desired.iter().any(|(t, w)| *w > 0 && before(t) == 0) {
        Reason::Failback
    } else {
        Reason::Drift
    }
}
