use super::*;
use proptest::prelude::*;

fn target(name: &str, prio: u32) -> TargetView {
    TargetView {
        id: TargetId(name.into()),
        priority: prio,
        weight: 100,
    }
}

fn group(prios: &[u32], floats: usize, preempt: bool, release: bool) -> GroupView {
    GroupView {
        name: GroupName("g".into()),
        mode: Mode::ActiveStandby,
        policy: PlanPolicy {
            preempt,
            failback_delay: ms(3_000),
            min_hold: ms(2_000),
            on_all_unhealthy: if release {
                OnAllUnhealthy::Release
            } else {
                OnAllUnhealthy::Keep
            },
            min_healthy: 0,
            min_capacity: 0,
            site_managed: false,
        },
        targets: prios
            .iter()
            .enumerate()
            .map(|(i, p)| target(&format!("t{i}"), *p))
            .collect(),
        settle: ms(1_000),
        floats: (0..floats)
            .map(|i| FloatView {
                id: format!("eip:eipalloc-{i}"),
                weighted: false,
                roles_only: false,
            })
            .collect(),
    }
}

fn t(n: usize) -> TargetId {
    TargetId(format!("t{n}"))
}

struct World {
    spec: GroupView,
    health: HashMap<TargetId, HealthView>,
    observed: HashMap<String, ObservedFloat>,
    memory: GroupMemory,
    epoch: Epoch,
    now: Instant,
}

impl World {
    fn new(spec: GroupView) -> Self {
        let now = Instant::now();
        let observed = spec
            .floats
            .iter()
            .map(|f| {
                (
                    f.id.clone(),
                    ObservedFloat {
                        holder: Holder::Nobody,
                        weights: Default::default(),
                        stamp: None,
                    },
                )
            })
            .collect();
        World {
            spec,
            health: HashMap::new(),
            observed,
            memory: GroupMemory::default(),
            epoch: Epoch(1),
            now,
        }
    }
    fn set(&mut self, target: usize, h: Health) {
        let id = t(target);
        let same = self.health.get(&id).map(|v| v.health) == Some(h);
        if !same {
            self.health.insert(
                id,
                HealthView {
                    health: h,
                    since: self.now,
                },
            );
        }
    }
    fn hold_all(&mut self, target: usize) {
        for o in self.observed.values_mut() {
            o.holder = Holder::Target(t(target));
        }
    }
    fn plan(&self) -> GroupPlan {
        plan_group(&Input {
            group: &self.spec,
            health: &self.health,
            observed: &self.observed,
            memory: &self.memory,
            epoch: self.epoch,
            now: self.now,
        })
    }
    /// Execute a plan the way the engine does (stamp, move, remember).
    fn apply(&mut self, p: &GroupPlan) {
        for a in &p.actions {
            let o = self.observed.get_mut(a.float()).expect("observed");
            match a {
                Action::Move { to, reason, .. } => {
                    o.holder = Holder::Target(to.clone());
                    o.stamp = Some(MoveStamp {
                        epoch: self.epoch,
                        reason: *reason,
                        target: to.clone(),
                    });
                }
                Action::Release { .. } => o.holder = Holder::Nobody,
                Action::SetWeights { .. } => unreachable!("no weighted floats here"),
            }
            self.memory
                .last_move
                .insert(a.float().to_string(), self.now);
        }
        if let Some(to) = &self.memory.switchover
            && self
                .observed
                .values()
                .all(|o| o.holder == Holder::Target(to.clone()))
        {
            self.memory.switchover = None;
        }
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

#[test]
fn initial_assignment_goes_to_highest_priority_healthy() {
    let mut w = World::new(group(&[100, 200, 50], 2, true, false));
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    let p = w.plan();
    assert_eq!(p.desired, Assignment::Owner(Some(t(1))));
    assert_eq!(p.actions.len(), 2);
}

#[test]
fn fresh_start_waits_for_higher_priority_unknown_targets() {
    let mut w = World::new(group(&[100, 50], 1, false, false));
    w.set(1, Health::Up);
    let p = w.plan();
    assert!(
        p.actions.is_empty(),
        "standby must not grab the float while the primary is unknown"
    );
    assert_eq!(p.next_wake, Some(w.now + ms(1_000)));
    w.set(0, Health::Up);
    assert!(matches!(&w.plan().actions[..], [Action::Move { to, .. }] if *to == t(0)));
    // A primary that never answers does not block forever.
    let mut w = World::new(group(&[100, 50], 1, false, false));
    w.set(0, Health::Unknown);
    w.set(1, Health::Up);
    w.advance(ms(1_000));
    assert!(matches!(&w.plan().actions[..], [Action::Move { to, .. }] if *to == t(1)));
}

#[test]
fn nothing_happens_while_all_unknown() {
    let w = World::new(group(&[100, 50], 1, true, false));
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert_eq!(p.desired, Assignment::Owner(None));
}

#[test]
fn failover_when_holder_goes_down() {
    let mut w = World::new(group(&[100, 50], 1, true, false));
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    w.hold_all(0);
    w.set(0, Health::Down);
    let p = w.plan();
    assert!(
        matches!(&p.actions[..], [Action::Move { to, reason: Reason::Failover, .. }] if *to == t(1))
    );
}

#[test]
fn never_moves_away_from_an_unknown_holder() {
    let mut w = World::new(group(&[50, 100], 1, true, false));
    w.set(1, Health::Up);
    w.hold_all(0); // t0 still Unknown at startup
    assert!(w.plan().actions.is_empty());
}

#[test]
fn failback_waits_for_failback_delay_and_only_with_preempt() {
    for preempt in [true, false] {
        let mut w = World::new(group(&[100, 50], 1, preempt, false));
        w.set(1, Health::Up);
        w.set(0, Health::Down);
        w.hold_all(1);
        w.set(0, Health::Up);
        let p = w.plan();
        assert!(p.actions.is_empty());
        if preempt {
            assert_eq!(p.next_wake, Some(w.now + ms(3_000)));
        } else {
            assert_eq!(p.next_wake, None);
        }
        w.advance(ms(3_000));
        let p = w.plan();
        if preempt {
            assert!(
                matches!(&p.actions[..], [Action::Move { to, reason: Reason::Failback, .. }] if *to == t(0))
            );
        } else {
            assert!(p.actions.is_empty(), "preempt: false never fails back");
        }
    }
}

#[test]
fn switchover_is_sticky_against_failback() {
    let mut w = World::new(group(&[100, 50], 1, true, false));
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    w.hold_all(0);
    w.memory.switchover = Some(t(1));
    let p = w.plan();
    assert!(
        matches!(&p.actions[..], [Action::Move { to, reason: Reason::Switchover, .. }] if *to == t(1))
    );
    w.apply(&p);
    assert_eq!(w.memory.switchover, None);
    w.advance(ms(60_000));
    assert!(w.plan().actions.is_empty(), "no failback over a switchover");
    // ...until the switchover target dies: then normal failover resumes.
    w.set(1, Health::Down);
    let p = w.plan();
    assert!(
        matches!(&p.actions[..], [Action::Move { to, reason: Reason::Failover, .. }] if *to == t(0))
    );
}

#[test]
fn switchover_to_unhealthy_target_is_dropped() {
    let mut w = World::new(group(&[100, 50], 1, true, false));
    w.set(0, Health::Up);
    w.set(1, Health::Down);
    w.hold_all(0);
    w.memory.switchover = Some(t(1));
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert!(p.notes.contains(&Note::SwitchoverDropped { to: t(1) }));
}

#[test]
fn newer_epoch_stamp_fences_the_float() {
    let mut w = World::new(group(&[100, 50], 1, true, false));
    w.set(1, Health::Up);
    w.set(0, Health::Down);
    w.hold_all(0);
    for o in w.observed.values_mut() {
        o.stamp = Some(MoveStamp {
            epoch: Epoch(7),
            reason: Reason::Failover,
            target: t(0),
        });
    }
    w.epoch = Epoch(6);
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert!(matches!(
        p.notes[..],
        [Note::Fenced {
            theirs: Epoch(7),
            ..
        }]
    ));
    w.epoch = Epoch(7);
    assert_eq!(w.plan().actions.len(), 1, "the same epoch may act");
}

#[test]
fn release_only_when_policy_says_so() {
    for release in [false, true] {
        let mut w = World::new(group(&[100, 50], 1, true, release));
        w.set(0, Health::Down);
        w.set(1, Health::Down);
        w.hold_all(0);
        let p = w.plan();
        assert_eq!(p.actions.len(), usize::from(release));
        if !release {
            assert!(matches!(p.notes[..], [Note::NoHealthyTarget { .. }]));
        }
    }
}

#[test]
fn min_hold_damps_a_second_automatic_move() {
    let mut w = World::new(group(&[100, 50, 10], 1, true, false));
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    w.set(2, Health::Up);
    w.hold_all(0);
    w.set(0, Health::Down);
    let p = w.plan();
    w.apply(&p);
    w.advance(ms(500));
    w.set(1, Health::Down);
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert_eq!(p.next_wake, Some(w.now + ms(1_500)));
    w.advance(ms(1_500));
    assert_eq!(w.plan().actions.len(), 1);
}

#[test]
fn split_floats_converge_on_the_first_floats_holder() {
    let mut w = World::new(group(&[100, 50], 2, false, false));
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    w.observed.get_mut("eip:eipalloc-0").expect("f0").holder = Holder::Target(t(1));
    w.observed.get_mut("eip:eipalloc-1").expect("f1").holder = Holder::Target(t(0));
    let p = w.plan();
    assert!(
        matches!(&p.actions[..], [Action::Move { to, float, .. }] if *to == t(1) && float == "eip:eipalloc-1")
    );
}

#[test]
fn foreign_holder_is_replaced_by_a_healthy_target() {
    let mut w = World::new(group(&[100], 1, true, false));
    w.set(0, Health::Up);
    for o in w.observed.values_mut() {
        o.holder = Holder::Foreign("i-other".into());
    }
    assert_eq!(w.plan().actions.len(), 1);
}

fn health_strategy() -> impl Strategy<Value = Health> {
    prop_oneof![Just(Health::Up), Just(Health::Down), Just(Health::Unknown)]
}

proptest! {
    /// Guarantee 1: every Move goes to a target that is Up, whatever the world looks like.
    #[test]
    fn never_moves_to_an_unhealthy_target(
        prios in proptest::collection::vec(0u32..5, 1..5),
        healths in proptest::collection::vec(health_strategy(), 5),
        holders in proptest::collection::vec(0usize..7, 3),
        switch_to in proptest::option::of(0usize..5),
        preempt in any::<bool>(),
        release in any::<bool>(),
    ) {
        let n = prios.len();
        let mut w = World::new(group(&prios, 3, preempt, release));
        for (i, h) in healths.iter().take(n).enumerate() {
            w.set(i, *h);
        }
        for (f, h) in w.spec.floats.clone().iter().zip(&holders) {
            let holder = match *h { x if x < n => Holder::Target(t(x)), 5 => Holder::Nobody, _ => Holder::Foreign("i-x".into()) };
            w.observed.get_mut(&f.id).expect("f").holder = holder;
        }
        w.memory.switchover = switch_to.filter(|s| *s < n).map(t);
        w.advance(ms(10_000));
        for a in w.plan().actions {
            if let Action::Move { to, .. } = a {
                prop_assert_eq!(w.health.get(&to).map(|v| v.health), Some(Health::Up));
            }
        }
    }

    /// Guarantees 3 and 4 over time: with random health changes every 250 ms, automatic
    /// moves of one float are never closer than min_hold, failback never happens before the
    /// preferred target was Up for failback_delay, and once health stops changing the world
    /// converges and then stays quiet (zero actions on every further reconcile).
    #[test]
    fn no_flapping_and_quiet_when_converged(
        prios in proptest::collection::vec(0u32..4, 2..4),
        steps in proptest::collection::vec((0usize..4, health_strategy()), 1..80),
        preempt in any::<bool>(),
    ) {
        let n = prios.len();
        let mut w = World::new(group(&prios, 2, preempt, false));
        let mut last_auto: HashMap<String, Instant> = HashMap::new();
        for (who, h) in steps {
            if who < n { w.set(who, h); }
            let p = w.plan();
            for a in &p.actions {
                if let Some(prev) = last_auto.get(a.float()) {
                    prop_assert!(w.now.duration_since(*prev) >= w.spec.policy.min_hold);
                }
                last_auto.insert(a.float().to_string(), w.now);
                if let Action::Move { to, reason: Reason::Failback, .. } = a {
                    let hv = w.health[to];
                    prop_assert!(w.now.duration_since(hv.since) >= w.spec.policy.failback_delay);
                }
            }
            w.apply(&p);
            w.advance(ms(250));
        }
        // Health is now stable: converge (bounded), then stay quiet.
        for _ in 0..10 {
            w.advance(ms(5_000));
            let p = w.plan();
            w.apply(&p);
        }
        for _ in 0..50 {
            w.advance(ms(1_000));
            prop_assert!(w.plan().actions.is_empty());
        }
    }
}

#[test]
fn drift_revert_returns_to_the_owner_at_once_and_adopted_floats_are_left_alone() {
    let mut w = World::new(group(&[200, 100], 1, false, false));
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    // Someone moved the float to t1 right after our own move (min_hold not over).
    w.hold_all(1);
    w.memory.last_move.insert("eip:eipalloc-0".into(), w.now);
    w.memory.drift_owner = Some(t(0));
    let p = w.plan();
    assert!(
        matches!(&p.actions[..], [Action::Move { to, reason: Reason::Drift, .. }] if *to == t(0)),
        "revert is not damped by min_hold: {p:?}"
    );
    // The drift owner is not up: no revert onto it (guarantee 1).
    w.set(0, Health::Down);
    let p = w.plan();
    assert!(p.actions.is_empty(), "{p:?}");
    // Adopted foreign holder: left alone, with a note.
    let mut w = World::new(group(&[200, 100], 1, false, false));
    w.set(0, Health::Up);
    for o in w.observed.values_mut() {
        o.holder = Holder::Foreign("i-elsewhere".into());
    }
    w.memory.adopted.insert("eip:eipalloc-0".into());
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert!(p.notes.iter().any(|n| matches!(n, Note::Adopted { .. })));
    w.memory.adopted.clear();
    assert_eq!(
        w.plan().actions.len(),
        1,
        "not adopted: a foreign holder is replaced"
    );
}

/// A site's traffic group never moves by itself: its owner going down changes nothing
/// until the site's shift asks (a switchover); a fresh group still gets placed.
#[test]
fn a_site_managed_group_moves_only_when_asked() {
    let mut g = group(&[200, 100], 1, true, false);
    g.policy.site_managed = true;
    let mut w = World::new(g);
    w.set(0, Health::Up);
    w.set(1, Health::Up);
    let p = w.plan();
    assert_eq!(p.actions.len(), 1, "placed at first");
    w.apply(&p);
    w.set(0, Health::Down);
    w.now += Duration::from_secs(60);
    assert!(w.plan().actions.is_empty(), "held on a down owner");
    w.memory.switchover = Some(t(1));
    let p = w.plan();
    assert!(
        matches!(&p.actions[..], [Action::Move { to, reason: Reason::Switchover, .. }] if *to == t(1)),
        "{:?}",
        p.actions
    );
    w.apply(&p);
    w.set(0, Health::Up);
    w.now += Duration::from_secs(3600);
    assert!(w.plan().actions.is_empty(), "no failback by itself either");
}
