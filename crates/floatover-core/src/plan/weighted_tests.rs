//! Weighted floats (DNS): active-active weights and active-standby over weights, with
//! property tests for the safety rule (never all zero while anyone is up), convergence
//! (a converged world plans nothing) and one action per float per decision.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn group(weights: &[u32], mode: Mode, min_healthy: u32) -> GroupView {
    GroupView {
        name: GroupName("web".into()),
        mode,
        targets: weights
            .iter()
            .enumerate()
            .map(|(i, w)| TargetView {
                id: t(i),
                // Priorities fall with the index: t0 is preferred in active-standby.
                priority: 1000 - u32::try_from(i).unwrap_or(0),
                weight: *w,
            })
            .collect(),
        floats: vec![FloatView {
            id: "dns:Z1:www.example.com.:A".into(),
            weighted: true,
            roles_only: false,
        }],
        policy: PlanPolicy {
            preempt: true,
            failback_delay: ms(0),
            min_hold: ms(2_000),
            on_all_unhealthy: OnAllUnhealthy::Keep,
            min_healthy,
            min_capacity: 0,
            site_managed: false,
        },
        settle: ms(1_000),
    }
}

fn t(i: usize) -> TargetId {
    TargetId(format!("t{i}"))
}

struct World {
    g: GroupView,
    health: HashMap<TargetId, HealthView>,
    observed: HashMap<String, ObservedFloat>,
    memory: GroupMemory,
    now: Instant,
}

impl World {
    fn new(g: GroupView, start: &[u32]) -> World {
        let now = Instant::now();
        let weights: BTreeMap<TargetId, u32> =
            start.iter().enumerate().map(|(i, w)| (t(i), *w)).collect();
        let observed = HashMap::from([(
            g.floats[0].id.clone(),
            ObservedFloat {
                holder: Holder::Nobody,
                weights,
                stamp: None,
            },
        )]);
        World {
            g,
            health: HashMap::new(),
            observed,
            memory: GroupMemory::default(),
            now,
        }
    }

    fn set(&mut self, i: usize, h: Health) {
        if self.health.get(&t(i)).map(|v| v.health) != Some(h) {
            self.health.insert(
                t(i),
                HealthView {
                    health: h,
                    since: self.now,
                },
            );
        }
    }

    fn plan(&self) -> GroupPlan {
        plan_group(&Input {
            group: &self.g,
            health: &self.health,
            observed: &self.observed,
            memory: &self.memory,
            epoch: Epoch(1),
            now: self.now,
        })
    }

    /// Apply as the provider would: the weights land, the owner is the heaviest target.
    fn apply(&mut self, p: &GroupPlan) {
        for a in &p.actions {
            if let Action::SetWeights { float, weights, .. } = a {
                let o = self.observed.get_mut(float).expect("observed");
                o.weights = weights.clone();
                o.holder = weights
                    .iter()
                    .filter(|(_, w)| **w > 0)
                    .max_by_key(|(_, w)| **w)
                    .map_or(Holder::Nobody, |(t, _)| Holder::Target(t.clone()));
                self.memory.last_move.insert(float.clone(), self.now);
            }
        }
    }

    fn weights(&self) -> BTreeMap<TargetId, u32> {
        self.observed
            .values()
            .next()
            .map(|o| o.weights.clone())
            .unwrap_or_default()
    }
}

fn only_weights(p: &GroupPlan) -> Vec<BTreeMap<TargetId, u32>> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::SetWeights { weights, .. } => Some(weights.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn active_active_spreads_by_capacity_and_drops_a_down_target_at_once() {
    let mut w = World::new(group(&[100, 50, 50], Mode::ActiveActive, 0), &[1, 1, 1]);
    for i in 0..3 {
        w.set(i, Health::Up);
    }
    let p = w.plan();
    assert_eq!(
        only_weights(&p),
        [BTreeMap::from([(t(0), 100), (t(1), 50), (t(2), 50)])]
    );
    w.apply(&p);
    assert!(w.plan().actions.is_empty(), "converged");

    // A target goes down right after the last change: not held (min_hold is for adding).
    w.now += ms(100);
    w.set(1, Health::Down);
    let p = w.plan();
    assert_eq!(
        only_weights(&p),
        [BTreeMap::from([(t(0), 100), (t(1), 0), (t(2), 50)])]
    );
    assert_eq!(p.actions[0].reason(), Reason::Failover);
    w.apply(&p);

    // It comes back: added after min_hold since the last change.
    w.now += ms(100);
    w.set(1, Health::Up);
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert!(matches!(p.notes[..], [Note::Held { .. }]), "{:?}", p.notes);
    w.now += ms(2_000);
    let p = w.plan();
    assert_eq!(p.actions[0].reason(), Reason::Failback);
    w.apply(&p);
    assert_eq!(w.weights()[&t(1)], 50);
}

#[test]
fn all_down_keeps_the_weights_and_says_so() {
    let mut w = World::new(group(&[1, 1], Mode::ActiveActive, 2), &[1, 1]);
    w.set(0, Health::Down);
    w.set(1, Health::Down);
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert!(
        p.notes
            .iter()
            .any(|n| matches!(n, Note::NoHealthyTarget { .. }))
    );
    assert!(p.notes.contains(&Note::BelowMinHealthy {
        healthy: 0,
        min_healthy: 2
    }));
}

#[test]
fn fresh_start_settles_before_taking_weight_from_unknown_targets() {
    let mut w = World::new(group(&[1, 1], Mode::ActiveActive, 0), &[1, 1]);
    w.set(0, Health::Up);
    // t1 has no verdict yet.
    w.health.insert(
        t(1),
        HealthView {
            health: Health::Unknown,
            since: w.now,
        },
    );
    let p = w.plan();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(matches!(p.notes[..], [Note::Settling { .. }]));
    w.now += ms(1_000);
    assert_eq!(only_weights(&w.plan())[0][&t(1)], 0);
}

#[test]
fn a_newer_epoch_stamp_fences_a_weighted_float() {
    let mut w = World::new(group(&[1, 1], Mode::ActiveActive, 0), &[1, 1]);
    w.set(0, Health::Up);
    w.set(1, Health::Down);
    for o in w.observed.values_mut() {
        o.stamp = Some(MoveStamp {
            epoch: Epoch(9),
            reason: Reason::Failover,
            target: t(0),
        });
    }
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert!(matches!(p.notes[..], [Note::Fenced { .. }]));
}

#[test]
fn active_standby_over_dns_gives_the_owner_its_weight() {
    let mut w = World::new(group(&[10, 20], Mode::ActiveStandby, 0), &[0, 0]);
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    let p = w.plan();
    assert_eq!(p.desired, Assignment::Owner(Some(t(0))));
    assert_eq!(only_weights(&p), [BTreeMap::from([(t(0), 10), (t(1), 0)])]);
    w.apply(&p);
    assert!(w.plan().actions.is_empty(), "converged");

    w.now += ms(5_000);
    w.set(0, Health::Down);
    let p = w.plan();
    assert_eq!(only_weights(&p), [BTreeMap::from([(t(0), 0), (t(1), 20)])]);
    assert_eq!(p.actions[0].reason(), Reason::Failover);
}

/// A Route 53 failover pair: the weights are roles, so the owner gets 1 (PRIMARY) and the
/// other 0 (SECONDARY), whatever the configured weights; failover swaps them.
#[test]
fn a_failover_pair_gets_roles_not_weights() {
    let mut g = group(&[10, 20], Mode::ActiveStandby, 0);
    g.floats[0].roles_only = true;
    let mut w = World::new(g, &[1, 0]);
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    assert!(w.plan().actions.is_empty(), "t0 is PRIMARY already");
    w.now += ms(5_000);
    w.set(0, Health::Down);
    let p = w.plan();
    assert_eq!(only_weights(&p), [BTreeMap::from([(t(0), 0), (t(1), 1)])]);
    w.apply(&p);
    assert!(w.plan().actions.is_empty(), "converged");
}

/// `on_all_unhealthy: release`: the records are released (fail closed) once nobody is up,
/// in both modes: in active-active when every target is down (not merely unknown), in
/// active-standby when the holder is down (the Elastic IP rule).
#[test]
fn release_removes_the_records_only_when_everyone_is_down() {
    for mode in [Mode::ActiveActive, Mode::ActiveStandby] {
        let mut g = group(&[100, 50], mode, 0);
        g.policy.on_all_unhealthy = OnAllUnhealthy::Release;
        let start: &[u32] = if mode == Mode::ActiveActive {
            &[100, 50]
        } else {
            &[100, 0]
        };
        let mut w = World::new(g, start);
        // Holder known: with active-standby, t0 holds.
        for o in w.observed.values_mut() {
            o.holder = Holder::Target(t(0));
        }
        w.set(0, Health::Down);
        w.health.insert(
            t(1),
            HealthView {
                health: Health::Unknown,
                since: w.now,
            },
        );
        w.now += ms(10_000);
        let p = w.plan();
        let released = p
            .actions
            .iter()
            .any(|a| matches!(a, Action::Release { .. }));
        assert_eq!(
            released,
            mode == Mode::ActiveStandby,
            "{mode:?}: t0 (the holder) down, t1 unknown: {:?}",
            p.actions
        );
        if released {
            continue;
        }
        w.set(1, Health::Down);
        let p = w.plan();
        assert!(
            matches!(p.actions[..], [Action::Release { .. }]),
            "{mode:?}: {:?}",
            p.actions
        );
        // Released (no records): nothing more to do while everyone is down.
        for o in w.observed.values_mut() {
            o.weights.clear();
            o.holder = Holder::Nobody;
        }
        assert!(w.plan().actions.is_empty(), "{mode:?}");
        // One comes back: its record is created again.
        w.now += ms(10_000);
        w.set(1, Health::Up);
        let p = w.plan();
        assert!(
            matches!(&p.actions[..], [Action::SetWeights { weights, .. }] if weights[&t(1)] > 0),
            "{mode:?}: {:?}",
            p.actions
        );
    }
}

proptest! {
    /// Whatever the health and the starting weights: a planned write never sets every
    /// weight to 0 (and there is at most one write per float); after it lands, the same
    /// world plans nothing.
    #[test]
    fn weights_are_never_all_zero_and_converge(
        caps in proptest::collection::vec(1u32..=255, 1..6),
        start in proptest::collection::vec(0u32..=255, 6),
        healths in proptest::collection::vec(0u8..3, 6),
        standby in any::<bool>(),
        roles in any::<bool>(),
    ) {
        let mode = if standby { Mode::ActiveStandby } else { Mode::ActiveActive };
        let n = caps.len();
        let mut g = group(&caps, mode, 0);
        // Roles (a failover pair) exist in active-standby only (config refuses the rest).
        g.floats[0].roles_only = roles && standby;
        let mut w = World::new(g, &start[..n]);
        for (i, h) in healths.iter().take(n).enumerate() {
            w.set(i, match h { 0 => Health::Up, 1 => Health::Down, _ => Health::Unknown });
        }
        w.now += ms(10_000); // past settle and every hold
        let p = w.plan();
        let writes = only_weights(&p);
        prop_assert!(writes.len() <= 1);
        for ws in &writes {
            prop_assert!(ws.values().any(|v| *v > 0), "all zero: {ws:?}");
            let any_up = (0..n).any(|i| w.health.get(&t(i)).is_some_and(|h| h.health == Health::Up));
            prop_assert!(any_up, "wrote weights with nobody up");
        }
        w.apply(&p);
        w.now += ms(10_000);
        prop_assert!(w.plan().actions.is_empty(), "not converged: {:?}", w.plan().actions);
    }
}
