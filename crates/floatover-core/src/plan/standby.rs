//! Active-standby: one target owns every float of the group at a time.
//!
//! Planning is two steps. First, choose the owner: a person's switchover, else the owner
//! to return to after drift, else keep the current owner (failing back to a better one
//! after `failback_delay` when `preempt` is on), else settle: the best healthy target, once
//! better-priority targets whose health is still unknown had their chance. Then, for each
//! float not on that owner, decide one action behind named guards: the float was stamped
//! by a newer leader (fenced), the destination is not up, the float moved too recently
//! (held).

use super::{
    Action, FloatView, GroupPlan, Input, Note, ObservedFloat, Scratch, TargetView, fenced,
    health_of, is_up, remaining, within_min_hold,
};
use crate::model::{Assignment, Health, Holder, MoveStamp, OnAllUnhealthy, Reason, TargetId};
use std::collections::BTreeMap;

pub(super) fn plan(i: &Input) -> GroupPlan {
    let mut s = Scratch {
        notes: Vec::new(),
        next_wake: None,
    };
    let (desired, reason) = choose_owner(i, &mut s);
    let mut actions = Vec::new();
    for f in &i.group.floats {
        if let Some(a) = plan_float(i, f, desired.as_ref(), reason, &mut s) {
            actions.push(a);
        }
    }
    GroupPlan {
        desired: Assignment::Owner(desired),
        actions,
        notes: s.notes,
        next_wake: s.next_wake,
    }
}

/// The best healthy target: highest priority, ties broken by config order.
fn preferred<'a>(i: &Input<'a>) -> Option<&'a TargetView> {
    let mut best: Option<&TargetView> = None;
    for t in &i.group.targets {
        if is_up(i, &t.id) && best.is_none_or(|b| t.priority > b.priority) {
            best = Some(t);
        }
    }
    best
}

/// The target that currently owns the group: the holder of the first float that is held by
/// a target (floats can disagree after a crash mid-move; the first one wins and the others
/// follow it).
fn current_owner<'a>(i: &Input<'a>) -> Option<(&'a TargetId, Option<&'a MoveStamp>)> {
    i.group
        .floats
        .iter()
        .find_map(|f| match i.observed.get(&f.id) {
            Some(ObservedFloat {
                holder: Holder::Target(t),
                stamp,
                ..
            }) => i.group.target(t).map(|tv| (&tv.id, stamp.as_ref())),
            _ => None,
        })
}

/// Step 1: who should own the group, and why.
fn choose_owner(i: &Input, s: &mut Scratch) -> (Option<TargetId>, Reason) {
    if let Some(to) = switchover(i, s) {
        return (Some(to), Reason::Switchover);
    }
    if let Some(to) = i.memory.drift_owner.clone().filter(|t| is_up(i, t)) {
        return (Some(to), Reason::Drift);
    }
    if i.group.policy.site_managed {
        // Held where it is, down or not: only a site's shift (a switchover) moves it.
        return match current_owner(i) {
            Some((cur, _)) => (Some(cur.clone()), Reason::Failover),
            None => (settle(i, true, s), Reason::Failover),
        };
    }
    match current_owner(i) {
        // Holder is Up, or Unknown (fresh start): never move away from it on a guess.
        Some((cur, stamp)) if health_of(i, cur).health != Health::Down => {
            let (owner, reason) = keep_or_failback(i, cur, stamp, s);
            (Some(owner), reason)
        }
        current => (settle(i, current.is_none(), s), Reason::Failover),
    }
}

/// A person's switchover, while its target is up (else the request is dropped, noted).
fn switchover(i: &Input, s: &mut Scratch) -> Option<TargetId> {
    let to = i.memory.switchover.as_ref()?;
    if is_up(i, to) {
        Some(to.clone())
    } else {
        s.notes.push(Note::SwitchoverDropped { to: to.clone() });
        None
    }
}

/// Keep the current owner, or fail back to a better-priority target that has been up for
/// `failback_delay` (only with `preempt`, and never away from a switchover's pin).
fn keep_or_failback(
    i: &Input,
    cur: &TargetId,
    stamp: Option<&MoveStamp>,
    s: &mut Scratch,
) -> (TargetId, Reason) {
    let pol = &i.group.policy;
    let pinned = stamp.is_some_and(|st| st.reason == Reason::Switchover && &st.target == cur);
    let cur_prio = i.group.target(cur).map_or(0, |t| t.priority);
    match preferred(i) {
        Some(b) if pol.preempt && !pinned && &b.id != cur && b.priority > cur_prio => {
            let ready_at = health_of(i, &b.id).since + pol.failback_delay;
            if i.now >= ready_at {
                (b.id.clone(), Reason::Failback)
            } else {
                s.notes.push(Note::FailbackPending {
                    to: b.id.clone(),
                    remaining_ms: remaining(ready_at, i.now),
                });
                s.wake_at(ready_at);
                (cur.clone(), Reason::Failover)
            }
        }
        _ => (cur.clone(), Reason::Failover),
    }
}

/// Unowned (or the owner is down): the best healthy target; but while the group has no
/// owner at all, better-priority targets whose health is still unknown get `settle` to
/// answer first, so the first target to answer does not win by accident.
fn settle(i: &Input, unowned: bool, s: &mut Scratch) -> Option<TargetId> {
    let best = preferred(i);
    let waiting = best.and_then(|b| {
        i.group
            .targets
            .iter()
            .filter(|t| t.priority > b.priority && health_of(i, &t.id).health == Health::Unknown)
            .map(|t| health_of(i, &t.id).since + i.group.settle)
            .filter(|until| i.now < *until)
            .max()
    });
    match waiting {
        Some(until) if unowned => {
            s.wake_at(until);
            s.notes.push(Note::Settling {
                remaining_ms: remaining(until, i.now),
            });
            None
        }
        _ => best.map(|b| b.id.clone()),
    }
}

/// Step 2: what it takes to bring one float to the owner, behind the guards.
fn plan_float(
    i: &Input,
    f: &FloatView,
    desired: Option<&TargetId>,
    reason: Reason,
    s: &mut Scratch,
) -> Option<Action> {
    let obs = i.observed.get(&f.id)?;
    if f.weighted {
        return plan_weighted(i, f, obs, desired, reason, s);
    }
    if i.memory.adopted.contains(&f.id) && matches!(obs.holder, Holder::Foreign(_)) {
        s.notes.push(Note::Adopted {
            float: f.id.clone(),
            holder: obs.holder.clone(),
        });
        return None;
    }
    if desired.is_some_and(|t| obs.holder == Holder::Target(t.clone())) {
        return None; // converged
    }
    if fenced(i, f, obs, s) {
        return None;
    }
    let action = match desired {
        Some(to) if destination_not_up(i, f, to, s) => return None,
        Some(to) => Action::Move {
            group: i.group.name.clone(),
            float: f.id.clone(),
            from: obs.holder.clone(),
            to: to.clone(),
            reason,
        },
        None => no_owner(i, f, obs, s)?,
    };
    if held(i, f, &action, s) {
        return None;
    }
    Some(action)
}

/// Guard (guarantee 1, enforced where a move is made): the destination must be Up. The
/// group's owner may be Unknown right after a restart: we keep it, but we do not move more
/// floats onto it until its probes confirm it.
fn destination_not_up(i: &Input, f: &FloatView, to: &TargetId, s: &mut Scratch) -> bool {
    if is_up(i, to) {
        return false;
    }
    s.notes.push(Note::AwaitingHealth {
        float: f.id.clone(),
        target: to.clone(),
    });
    true
}

/// No target is healthy: release the float from a down holder (`on_all_unhealthy:
/// release`), or leave it where it is and say so.
fn no_owner(i: &Input, f: &FloatView, obs: &ObservedFloat, s: &mut Scratch) -> Option<Action> {
    let policy = i.group.policy.on_all_unhealthy;
    let holder_down =
        matches!(&obs.holder, Holder::Target(t) if health_of(i, t).health == Health::Down);
    if policy == OnAllUnhealthy::Release && holder_down {
        return Some(Action::Release {
            group: i.group.name.clone(),
            float: f.id.clone(),
            from: obs.holder.clone(),
        });
    }
    if obs.holder != Holder::Nobody || policy == OnAllUnhealthy::Keep {
        s.notes.push(Note::NoHealthyTarget {
            float: f.id.clone(),
        });
    }
    None
}

/// Guard, flap damping: automatic moves of one float are at least `min_hold` apart. A
/// person's switchover is not damped, nor is putting a float back where this leader put it
/// (drift revert): that is not a new decision, and a stale write must not stick.
fn held(i: &Input, f: &FloatView, action: &Action, s: &mut Scratch) -> bool {
    !matches!(action.reason(), Reason::Switchover | Reason::Drift) && within_min_hold(i, f, s)
}

/// A weighted float (DNS) in active-standby: the owner gets its weight, every other target
/// 0, behind the same guards as a move. With no owner, the weights stay (Route 53 answers
/// with every record when all weights are 0: writing that would be fail-open anyway).
fn plan_weighted(
    i: &Input,
    f: &FloatView,
    obs: &ObservedFloat,
    desired: Option<&TargetId>,
    reason: Reason,
    s: &mut Scratch,
) -> Option<Action> {
    let Some(to) = desired else {
        // Nobody up: keep the weights (fail open), or with `on_all_unhealthy: release`
        // remove the records once their holder is down (fail closed).
        if i.group.policy.on_all_unhealthy == OnAllUnhealthy::Release
            && obs.weights.values().any(|w| *w > 0)
            && fenced(i, f, obs, s)
        {
            return None;
        }
        if obs.weights.values().all(|w| *w == 0) {
            s.notes.push(Note::NoHealthyTarget {
                float: f.id.clone(),
            });
            return None;
        }
        return no_owner(i, f, obs, s);
    };
    let weights: BTreeMap<TargetId, u32> = i
        .group
        .targets
        .iter()
        .map(|t| {
            let w = match (&t.id == to, f.roles_only) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => t.weight,
            };
            (t.id.clone(), w)
        })
        .collect();
    if weights == obs.weights {
        return None; // converged
    }
    if fenced(i, f, obs, s) || destination_not_up(i, f, to, s) {
        return None;
    }
    let action = Action::SetWeights {
        group: i.group.name.clone(),
        float: f.id.clone(),
        from: obs.weights.clone(),
        weights,
        reason,
    };
    if held(i, f, &action, s) {
        return None;
    }
    Some(action)
}
