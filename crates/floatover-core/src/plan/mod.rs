//! The planner: a pure function from (group view, health, observed provider state, leader
//! epoch, memory, now) to actions. No I/O, no clock reads, no randomness, so every rule here
//! is tested exhaustively (unit and property tests in `tests.rs`). The engine executes what
//! this returns; `floatover plan` prints it.
//!
//! It imports nothing but [`crate::model`]: its input is its own [`GroupView`], built from
//! the config by the engine's adapters (`engine::view`), so that a config or provider
//! change can never change a decision by accident. [`plan_group`] dispatches on the
//! group's [`Mode`]; the rules of each mode live in their own module.

mod active;
mod standby;

use crate::model::{
    Assignment, Epoch, GroupName, Health, Holder, Mode, MoveStamp, OnAllUnhealthy, Reason, TargetId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use std::time::Instant;

/// What the provider reported for one float.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedFloat {
    /// One-holder floats: who holds it. Weighted floats: the target with the most weight,
    /// if only targets have weight (the owner, in active-standby terms).
    pub holder: Holder,
    /// Weighted floats: each target's weight as observed (a target without a record is
    /// absent). Members that are not targets of the group are left alone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<TargetId, u32>,
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
    /// the engine once the target is no longer the owner (not up, a switchover), and
    /// after a revert also once every float is back.
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
        /// The float's id; the engine finds its provider payload.
        float: String,
        from: Holder,
        to: TargetId,
        reason: Reason,
    },
    Release {
        group: GroupName,
        float: String,
        from: Holder,
    },
    /// Set the weights of a weighted float (targets not listed are left alone).
    SetWeights {
        group: GroupName,
        float: String,
        from: BTreeMap<TargetId, u32>,
        weights: BTreeMap<TargetId, u32>,
        reason: Reason,
    },
}

impl Action {
    pub fn float(&self) -> &str {
        match self {
            Action::Move { float, .. }
            | Action::Release { float, .. }
            | Action::SetWeights { float, .. } => float,
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Action::Move { reason, .. } | Action::SetWeights { reason, .. } => *reason,
            Action::Release { .. } => Reason::Release,
        }
    }
}

/// Why the planner did not act on something that is not converged. Shown by `plan` and
/// `status` so that an operator never has to guess.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Active-active: fewer healthy targets than the group is sized for (N+1). The weight
    /// still goes to the survivors.
    BelowMinHealthy { healthy: u32, min_healthy: u32 },
    /// Active-active: the healthy targets' summed weight (their capacity) is below what
    /// the group is sized for. The weight still goes to the survivors.
    BelowMinCapacity { capacity: u32, min_capacity: u32 },
}

/// The outcome of planning one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupPlan {
    /// Where the group's floats should point (an owner, or None: nobody healthy).
    pub desired: Assignment,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    /// Re-plan no later than this, even if nothing else changes (failback or hold expiry).
    #[serde(skip)]
    pub next_wake: Option<Instant>,
}

/// A group as the planner sees it: names, priorities and policy, nothing about probes or
/// provider bindings.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub name: GroupName,
    pub mode: Mode,
    /// In config order (the tie-breaker for equal priorities).
    pub targets: Vec<TargetView>,
    pub floats: Vec<FloatView>,
    pub policy: PlanPolicy,
    /// How long an unowned group waits at a fresh start for higher-priority targets whose
    /// health is still unknown (keepalived's master-down interval).
    pub settle: Duration,
}

impl GroupView {
    pub fn target(&self, id: &TargetId) -> Option<&TargetView> {
        self.targets.iter().find(|t| &t.id == id)
    }
}

/// A float as the planner sees it: only its id. What it is and where it lives belong to
/// its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatView {
    pub id: String,
    /// Steered by weights over targets (`SetWeights`) rather than moved to one holder.
    pub weighted: bool,
    /// The weights are roles (a Route 53 failover pair): the owner gets 1, not its
    /// configured weight. Active-standby only.
    pub roles_only: bool,
}

/// A target as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView {
    pub id: TargetId,
    /// Higher wins (keepalived's VRRP priority).
    pub priority: u32,
    /// Weight in weighted floats while up (its capacity share; the owner's weight in
    /// active-standby). At least 1, so an up target never gets 0.
    pub weight: u32,
}

/// The policy settings that decide moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanPolicy {
    /// Fail back to a better-priority target once it has been up for `failback_delay`.
    pub preempt: bool,
    pub failback_delay: Duration,
    /// Automatic moves of one float are at least this far apart (flap damping).
    pub min_hold: Duration,
    pub on_all_unhealthy: OnAllUnhealthy,
    /// Active-active: warn below this many healthy targets (0: never).
    pub min_healthy: u32,
    /// Active-active: warn when the healthy targets' weights sum to less (0: never).
    pub min_capacity: u32,
    /// The group is the traffic of a site: it moves only when asked (a site's shift step or
    /// a person's switchover), never by itself, so the promotion plan decides when.
    pub site_managed: bool,
}

/// Everything the planner looks at for one group.
pub struct Input<'a> {
    pub group: &'a GroupView,
    pub health: &'a HashMap<TargetId, HealthView>,
    /// Keyed by float id. A float missing here is unknown and never touched.
    pub observed: &'a HashMap<String, ObservedFloat>,
    pub memory: &'a GroupMemory,
    pub epoch: Epoch,
    pub now: Instant,
}

/// Plan one group by the rules of its mode. See the mode's module and docs/policy.md "Policy".
pub fn plan_group(i: &Input) -> GroupPlan {
    match i.group.mode {
        Mode::ActiveStandby => standby::plan(i),
        Mode::ActiveActive => active::plan(i),
    }
}

// --- shared by the modes -----------------------------------------------------------------

/// Notes and the next deadline, collected while planning one group.
struct Scratch {
    notes: Vec<Note>,
    next_wake: Option<Instant>,
}

impl Scratch {
    fn wake_at(&mut self, t: Instant) {
        self.next_wake = Some(self.next_wake.map_or(t, |w| w.min(t)));
    }
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

fn remaining(until: Instant, now: Instant) -> u64 {
    u64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX)
}

/// Guard: a float that a newer leader already touched is not ours to move.
fn fenced(i: &Input, f: &FloatView, obs: &ObservedFloat, s: &mut Scratch) -> bool {
    match &obs.stamp {
        Some(st) if st.epoch > i.epoch => {
            s.notes.push(Note::Fenced {
                float: f.id.clone(),
                ours: i.epoch,
                theirs: st.epoch,
            });
            true
        }
        _ => false,
    }
}

/// Flap damping: the float changed less than `min_hold` ago. Notes it and plans a wake-up
/// for when the hold ends.
fn within_min_hold(i: &Input, f: &FloatView, s: &mut Scratch) -> bool {
    let Some(last) = i.memory.last_move.get(&f.id) else {
        return false;
    };
    let until = *last + i.group.policy.min_hold;
    if i.now >= until {
        return false;
    }
    s.notes.push(Note::Held {
        float: f.id.clone(),
        remaining_ms: remaining(until, i.now),
    });
    s.wake_at(until);
    true
}

/// Convenience for tests and benches: a duration in milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod weighted_tests;
