//! The planner: a pure function from (group spec, health, observed provider state, leader
//! epoch, memory, now) to actions. No I/O, no clock reads, no randomness, so every rule here
//! is tested exhaustively (unit and property tests below). The engine executes what this
//! returns; `floatover plan` prints it.

use crate::config::{GroupSpec, OnAllUnhealthy, TargetSpec};
use crate::model::{Epoch, FloatRef, GroupName, Health, Holder, MoveStamp, Reason, TargetId};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// What the provider reported for one float.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedFloat {
    pub holder: Holder,
    /// The fence stamp of the last move, if any controller ever moved it.
    pub stamp: Option<MoveStamp>,
}

/// Health of one target as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthView {
    pub health: Health,
    pub since: Instant,
}

/// Leader-local memory for a group. Losing it (restart, new leader) is safe: it only
/// delays or damps, it never decides where a float goes.
#[derive(Debug, Clone, Default)]
pub struct GroupMemory {
    /// Last automatic or manual move of each float (for `min_hold`).
    pub last_move: HashMap<String, Instant>,
    /// A switchover asked for by a person, pending until every float is on that target.
    pub switchover: Option<TargetId>,
    /// After drift: the owner the group must return to (`on_drift: revert`, the owner we
    /// had) or follow (`on_drift: adopt`, the target someone moved a float to). Cleared by
    /// the engine once every float is there or the target is no longer up.
    pub drift_owner: Option<TargetId>,
    /// Floats someone attached outside the group, left alone under `on_drift: adopt`
    /// until their holder changes again.
    pub adopted: HashSet<String>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Move {
        group: GroupName,
        float: FloatRef,
        from: Holder,
        to: TargetId,
        reason: Reason,
    },
    Release {
        group: GroupName,
        float: FloatRef,
        from: Holder,
    },
}

impl Action {
    pub fn float(&self) -> &FloatRef {
        match self {
            Action::Move { float, .. } | Action::Release { float, .. } => float,
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Action::Move { reason, .. } => *reason,
            Action::Release { .. } => Reason::Release,
        }
    }
}

/// Why the planner did not act on something that is not converged. Shown by `plan` and
/// `status` so that an operator never has to guess.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    /// No target is healthy; the float stays (policy `keep`) or nothing holds it.
    NoHealthyTarget { float: String },
    /// The move waits for `min_hold` since the float's last move.
    Held { float: String, remaining_ms: u64 },
    /// Failback waits for the preferred target to be healthy for `failback_delay`.
    FailbackPending { to: TargetId, remaining_ms: u64 },
    /// The float records a newer epoch than ours: another leader has acted. Refused.
    Fenced {
        float: String,
        ours: Epoch,
        theirs: Epoch,
    },
    /// The float would follow its group's owner, whose health is not confirmed yet.
    AwaitingHealth { float: String, target: TargetId },
    /// Fresh start: waiting for higher-priority targets' first health verdict.
    Settling { remaining_ms: u64 },
    /// The requested switchover target is no longer healthy; the request was dropped.
    SwitchoverDropped { to: TargetId },
    /// Someone attached the float outside the group; `on_drift: adopt` leaves it there.
    Adopted { float: String, holder: Holder },
}

/// The outcome of planning one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupPlan {
    /// Who should own the group's floats (None: nobody healthy).
    pub desired: Option<TargetId>,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    /// Re-plan no later than this, even if nothing else changes (failback or hold expiry).
    #[serde(skip)]
    pub next_wake: Option<Instant>,
}

/// Everything the planner looks at for one group.
pub struct Input<'a> {
    pub spec: &'a GroupSpec,
    pub health: &'a HashMap<TargetId, HealthView>,
    /// Keyed by float id. A float missing here is unknown and never touched.
    pub observed: &'a HashMap<String, ObservedFloat>,
    pub memory: &'a GroupMemory,
    pub epoch: Epoch,
    pub now: Instant,
}

fn health_of(i: &Input, t: &TargetId) -> HealthView {
    i.health.get(t).copied().unwrap_or(HealthView {
        health: Health::Unknown,
        since: i.now,
    })
}

fn is_up(i: &Input, t: &TargetId) -> bool {
    health_of(i, t).health == Health::Up
}

/// The best healthy target: highest priority, ties broken by config order.
fn preferred<'a>(i: &Input<'a>) -> Option<&'a TargetSpec> {
    let mut best: Option<&TargetSpec> = None;
    for t in &i.spec.targets {
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
    i.spec
        .floats
        .iter()
        .find_map(|f| match i.observed.get(&f.id) {
            Some(ObservedFloat {
                holder: Holder::Target(t),
                stamp,
            }) => i.spec.target(t).map(|ts| (&ts.id, stamp.as_ref())),
            _ => None,
        })
}

fn remaining(until: Instant, now: Instant) -> u64 {
    until.saturating_duration_since(now).as_millis() as u64
}

/// Plan one group. See the module docs and README "Policy" for the rules.
pub fn plan_group(i: &Input) -> GroupPlan {
    let mut notes = Vec::new();
    let mut next_wake: Option<Instant> = None;
    let mut wake_at = |t: Instant| {
        next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
    };
    let pol = &i.spec.policy;
    let best = preferred(i);
    let current = current_owner(i);

    // 1. Who should own the group, and why.
    let mut switchover = None;
    if let Some(to) = &i.memory.switchover {
        if is_up(i, to) {
            switchover = Some(to.clone());
        } else {
            notes.push(Note::SwitchoverDropped { to: to.clone() });
        }
    }
    let drift_owner = i.memory.drift_owner.clone().filter(|t| is_up(i, t));
    let (desired, reason): (Option<TargetId>, Reason) = if let Some(to) = switchover {
        (Some(to), Reason::Switchover)
    } else if let Some(to) = drift_owner {
        (Some(to), Reason::Drift)
    } else {
        match current {
            Some((cur, stamp)) if health_of(i, cur).health != Health::Down => {
                // Holder is Up, or Unknown (fresh start): never move away from it on a guess.
                let pinned =
                    stamp.is_some_and(|s| s.reason == Reason::Switchover && &s.target == cur);
                let cur_prio = i.spec.target(cur).map_or(0, |t| t.priority);
                match best {
                    Some(b) if pol.preempt && !pinned && &b.id != cur && b.priority > cur_prio => {
                        let ready_at = health_of(i, &b.id).since + pol.failback_delay;
                        if i.now >= ready_at {
                            (Some(b.id.clone()), Reason::Failback)
                        } else {
                            notes.push(Note::FailbackPending {
                                to: b.id.clone(),
                                remaining_ms: remaining(ready_at, i.now),
                            });
                            wake_at(ready_at);
                            (Some(cur.clone()), Reason::Failover)
                        }
                    }
                    _ => (Some(cur.clone()), Reason::Failover),
                }
            }
            _ => {
                // Unowned (or owner down): the best healthy target, but at a fresh start
                // give better-priority targets whose health is still unknown a chance.
                let waiting = best.and_then(|b| {
                    i.spec
                        .targets
                        .iter()
                        .filter(|t| {
                            t.priority > b.priority && health_of(i, &t.id).health == Health::Unknown
                        })
                        .map(|t| health_of(i, &t.id).since + i.spec.settle)
                        .filter(|until| i.now < *until)
                        .max()
                });
                match (current, waiting) {
                    (None, Some(until)) => {
                        wake_at(until);
                        notes.push(Note::Settling {
                            remaining_ms: remaining(until, i.now),
                        });
                        (None, Reason::Failover)
                    }
                    _ => (best.map(|b| b.id.clone()), Reason::Failover),
                }
            }
        }
    };

    // 2. Per float: what it takes to get there.
    let mut actions = Vec::new();
    for f in &i.spec.floats {
        let Some(obs) = i.observed.get(&f.id) else {
            continue;
        };
        if i.memory.adopted.contains(&f.id) && matches!(obs.holder, Holder::Foreign(_)) {
            notes.push(Note::Adopted {
                float: f.id.clone(),
                holder: obs.holder.clone(),
            });
            continue;
        }
        let want = match &desired {
            Some(t) if obs.holder != Holder::Target(t.clone()) => Some(t),
            Some(_) => continue, // converged
            None => None,
        };
        // A float that a newer leader already touched is not ours to move.
        if let Some(s) = &obs.stamp
            && s.epoch > i.epoch
        {
            notes.push(Note::Fenced {
                float: f.id.clone(),
                ours: i.epoch,
                theirs: s.epoch,
            });
            continue;
        }
        let action = match want {
            // Guarantee 1, enforced where a move is made: the destination must be Up. (The
            // group's owner may be Unknown right after a restart: we keep it, but we do
            // not move more floats onto it until its probes confirm it.)
            Some(to) if !is_up(i, to) => {
                notes.push(Note::AwaitingHealth {
                    float: f.id.clone(),
                    target: to.clone(),
                });
                continue;
            }
            Some(to) => Action::Move {
                group: i.spec.name.clone(),
                float: f.clone(),
                from: obs.holder.clone(),
                to: to.clone(),
                reason,
            },
            None => {
                let holder_down = matches!(&obs.holder, Holder::Target(t) if health_of(i, t).health == Health::Down);
                if pol.on_all_unhealthy == OnAllUnhealthy::Release && holder_down {
                    Action::Release {
                        group: i.spec.name.clone(),
                        float: f.clone(),
                        from: obs.holder.clone(),
                    }
                } else {
                    if obs.holder != Holder::Nobody || pol.on_all_unhealthy == OnAllUnhealthy::Keep
                    {
                        notes.push(Note::NoHealthyTarget {
                            float: f.id.clone(),
                        });
                    }
                    continue;
                }
            }
        };
        // Flap damping: automatic moves of one float are at least min_hold apart. A person's
        // switchover is not damped, nor is putting a float back where this leader put it
        // (drift revert): that is not a new decision, and a stale write must not stick.
        if !matches!(action.reason(), Reason::Switchover | Reason::Drift)
            && let Some(last) = i.memory.last_move.get(&f.id)
        {
            let until = *last + pol.min_hold;
            if i.now < until {
                notes.push(Note::Held {
                    float: f.id.clone(),
                    remaining_ms: remaining(until, i.now),
                });
                wake_at(until);
                continue;
            }
        }
        actions.push(action);
    }

    GroupPlan {
        desired,
        actions,
        notes,
        next_wake,
    }
}

/// Convenience for tests and benches: a duration in milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[cfg(test)]
mod tests;
