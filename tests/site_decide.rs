//! The site supervisor's pure decision (`site::decide`) on the virtual clock: every rule
//! exact to the millisecond (grace, quorum edges, a ready site first, never onto the
//! active site, one run at a time, take-over first, automatic failback on and off, the
//! drill's failback), and property tests over arbitrary inputs (never two runs, never a
//! promotion away from an active site at quorum, a converged world decides nothing).

use floatover::config::{self, Spec};
use floatover::site::SitePolicy;
use floatover::site::decide::{Input, Order, Refusal, Request, SiteAction, decide};
use floatover::site::record::{Resume, RunKind, RunRecord, RunState, SiteRuns, resume};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

const CONFIG: &str = r#"
leader: { backend: single }
aws: { region: us-east-1 }
groups:
  - name: web
    targets:
      - { name: a, instance_id: i-0000000000000000a, probes: [ { tcp: { address: "127.0.0.1:9" } } ] }
      - { name: b, instance_id: i-0000000000000000b, probes: [ { tcp: { address: "127.0.0.1:9" } } ] }
      - { name: c, instance_id: i-0000000000000000c, probes: [ { tcp: { address: "127.0.0.1:9" } } ] }
      - { name: d, instance_id: i-0000000000000000d, probes: [ { tcp: { address: "127.0.0.1:9" } } ] }
      - { name: e, instance_id: i-0000000000000000e, probes: [ { tcp: { address: "127.0.0.1:9" } } ] }
    floats: [ { eip: { allocation_id: eipalloc-1 } } ]
site_policy: { grace: 10s }
sites:
  - { name: east, tier: hot, primary: true, quorum: 0.5, targets: [web/a, web/b], traffic: [ { group: web, target: a } ] }
  - name: west
    tier: warm
    instances: [i-0000000000000000c, i-0000000000000000d]
    targets: [web/c, web/d]
    traffic: [ { group: web, target: c } ]
    steps: [ { start_instances: {} }, { wait_healthy: {} }, { shift: {} } ]
  - { name: south, tier: hot, targets: [web/e], traffic: [ { group: web, target: e } ] }
"#;

fn spec() -> Spec {
    config::from_yaml(CONFIG).expect("valid config")
}

/// A world to decide about; every field can be changed by a test.
#[derive(Debug, Clone)]
struct World {
    spec: Spec,
    policy: SitePolicy,
    leading: Option<u64>,
    taken_over: Option<u64>,
    record: Option<SiteRuns>,
    running: Option<String>,
    up: BTreeMap<String, usize>,
    ready: BTreeMap<String, bool>,
    below_since: Option<Instant>,
    requests: Vec<Request>,
}

impl World {
    /// Leading under epoch 1, record taken over, east (the primary) active and healthy.
    fn converged() -> Self {
        let spec = spec();
        let policy = spec.site_policy.clone();
        World {
            spec,
            policy,
            leading: Some(1),
            taken_over: Some(1),
            record: Some(SiteRuns::default()),
            running: None,
            up: [("east", 2), ("west", 0), ("south", 0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ready: BTreeMap::new(),
            below_since: None,
            requests: Vec::new(),
        }
    }

    fn up(mut self, site: &str, n: usize) -> Self {
        self.up.insert(site.into(), n);
        self
    }

    fn decide(&self, now: Instant) -> Vec<SiteAction> {
        let input = Input {
            sites: &self.spec.sites,
            policy: &self.policy,
            leading: self.leading,
            taken_over: self.taken_over,
            record: self.record.as_ref(),
            running: self.running.as_deref(),
            up: &self.up,
            ready: &self.ready,
            below_since: self.below_since,
            requests: &self.requests,
        };
        decide(&input, now)
    }

    /// Decide, and keep what the driver would keep (below-since).
    fn step(&mut self, now: Instant) -> Vec<SiteAction> {
        let a = self.decide(now);
        for x in &a {
            if let SiteAction::BelowSince(t) = x {
                self.below_since = *t;
            }
        }
        a
    }
}

fn starts(actions: &[SiteAction]) -> Vec<(String, Option<usize>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            SiteAction::Start { site, request, .. } => Some((site.clone(), *request)),
            _ => None,
        })
        .collect()
}

fn request(site: &str) -> Request {
    Request {
        site: site.into(),
        kind: RunKind::Promotion,
        trigger: "requested by a test".into(),
    }
}

fn finished(site: &str, from: &str, kind: RunKind, state: RunState) -> RunRecord {
    RunRecord {
        id: format!("{site}-1"),
        site: site.into(),
        kind,
        trigger: "test".into(),
        from_site: from.into(),
        state,
        started_unix_ms: 1,
        finished_unix_ms: Some(2),
        rto_ms: None,
        steps: vec![],
        approved: vec![],
        drill_of: None,
        resumed: 0,
        error: None,
        launched: vec![],
        rpo_ms: None,
        lag_at_cutover_ms: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_converged_world_decides_nothing() {
    let w = World::converged();
    assert_eq!(w.decide(Instant::now()), vec![]);
}

#[tokio::test(start_paused = true)]
async fn the_grace_is_exact_to_the_millisecond() {
    let mut w = World::converged().up("east", 0);
    let t0 = Instant::now();
    let grace = Duration::from_secs(10);
    assert_eq!(
        w.step(t0),
        vec![
            SiteAction::BelowSince(Some(t0)),
            SiteAction::WakeAt(t0 + grace)
        ]
    );
    tokio::time::advance(grace - Duration::from_millis(1)).await;
    assert_eq!(
        w.step(Instant::now()),
        vec![SiteAction::WakeAt(t0 + grace)],
        "1 ms before the grace ends: still waiting"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let a = w.step(Instant::now());
    assert_eq!(starts(&a), vec![("west".to_string(), None)], "{a:?}");
    let trigger = a.iter().find_map(|x| match x {
        SiteAction::Start { order, .. } => Some(order.trigger.clone()),
        _ => None,
    });
    assert_eq!(
        trigger.as_deref(),
        Some("automatic: site east below quorum (0 of 2 target(s) up, 1 needed) for 10s")
    );
    assert_eq!(w.below_since, None, "forgotten once the promotion starts");
}

#[tokio::test(start_paused = true)]
async fn back_at_quorum_within_the_grace_forgets_it() {
    let mut w = World::converged().up("east", 0);
    let t0 = Instant::now();
    w.step(t0);
    tokio::time::advance(Duration::from_secs(9)).await;
    w.up.insert("east".into(), 1);
    assert_eq!(w.step(Instant::now()), vec![SiteAction::BelowSince(None)]);
    // Down again: the grace starts over.
    w.up.insert("east".into(), 0);
    tokio::time::advance(Duration::from_secs(2)).await;
    let t1 = Instant::now();
    assert_eq!(
        w.step(t1),
        vec![
            SiteAction::BelowSince(Some(t1)),
            SiteAction::WakeAt(t1 + Duration::from_secs(10))
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn quorum_edges() {
    // east: 2 targets, quorum 0.5 -> 1 needed.
    let w = World::converged().up("east", 1);
    assert_eq!(
        w.decide(Instant::now()),
        vec![],
        "exactly the quorum is healthy"
    );
    let w = World::converged().up("east", 0);
    assert!(
        matches!(
            w.decide(Instant::now()).first(),
            Some(SiteAction::BelowSince(Some(_)))
        ),
        "one below the quorum is not"
    );
    // west: 2 targets, default quorum (a majority: 1 of 2) once it is active.
    let mut w = World::converged().up("west", 1).up("east", 0);
    w.record = Some(SiteRuns {
        active_site: Some("west".into()),
        ..SiteRuns::default()
    });
    assert_eq!(w.decide(Instant::now()), vec![]);
}

#[tokio::test(start_paused = true)]
async fn a_ready_site_first_then_any_other_never_the_active_one() {
    let t0 = Instant::now();
    let mut w = World::converged().up("east", 0);
    w.below_since = Some(t0);
    tokio::time::advance(Duration::from_secs(10)).await;
    w.ready.insert("south".into(), true);
    w.ready.insert("west".into(), false);
    assert_eq!(
        starts(&w.decide(Instant::now())),
        vec![("south".into(), None)]
    );
    w.ready.clear();
    assert_eq!(
        starts(&w.decide(Instant::now())),
        vec![("west".into(), None)]
    );
    // West active and down: east or south, never west.
    w.record = Some(SiteRuns {
        active_site: Some("west".into()),
        ..SiteRuns::default()
    });
    w.up.insert("west".into(), 0);
    let s = starts(&w.decide(Instant::now()));
    assert_eq!(s, vec![("east".into(), None)], "the first other site");
    // A request for the active site is refused.
    w.requests = vec![request("west")];
    assert_eq!(
        w.decide(Instant::now()),
        vec![SiteAction::Refuse {
            request: 0,
            why: Refusal::AlreadyActive("west".into())
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn one_run_at_a_time() {
    let mut w = World::converged();
    w.requests = vec![request("west"), request("south"), request("nowhere")];
    let a = w.decide(Instant::now());
    assert_eq!(starts(&a), vec![("west".into(), Some(0))]);
    assert!(a.contains(&SiteAction::Refuse {
        request: 1,
        why: Refusal::Busy("the one just requested for site west".into())
    }));
    assert!(a.contains(&SiteAction::Refuse {
        request: 2,
        why: Refusal::NoSuchSite("nowhere".into())
    }));
    // A run this replica executes, or one in the record: every request is refused, and
    // nothing automatic happens however long the active site is down.
    for (running, current) in [(true, false), (false, true)] {
        let mut w = World::converged().up("east", 0);
        w.below_since = Some(Instant::now() - Duration::from_secs(3600));
        w.running = running.then(|| "west-1".to_string());
        if current {
            let mut run = finished("west", "east", RunKind::Promotion, RunState::Running);
            run.id = "west-1".into();
            w.record = Some(SiteRuns {
                current: Some(run),
                ..SiteRuns::default()
            });
        }
        assert_eq!(starts(&w.decide(Instant::now())), vec![]);
        w.requests = vec![request("south")];
        assert_eq!(
            w.decide(Instant::now()),
            vec![SiteAction::Refuse {
                request: 0,
                why: Refusal::Busy("west-1".into())
            }],
            "running={running} current={current}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_does_not_lead_abandons_and_refuses() {
    let mut w = World::converged().up("east", 0);
    w.leading = None;
    w.running = Some("west-1".into());
    w.below_since = Some(Instant::now());
    w.requests = vec![request("west")];
    assert_eq!(
        w.decide(Instant::now()),
        vec![
            SiteAction::Abandon {
                run: "west-1".into()
            },
            SiteAction::Refuse {
                request: 0,
                why: Refusal::NotLeader
            },
            SiteAction::BelowSince(None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_takes_the_record_over_before_anything_else() {
    let mut w = World::converged().up("east", 0);
    w.leading = Some(2);
    w.below_since = Some(Instant::now() - Duration::from_secs(3600));
    w.requests = vec![request("west")];
    assert_eq!(
        w.decide(Instant::now()),
        vec![SiteAction::TakeOver { epoch: 2 }],
        "requests wait for the record"
    );
    w.running = Some("west-1".into());
    assert_eq!(
        w.decide(Instant::now()),
        vec![
            SiteAction::Abandon {
                run: "west-1".into()
            },
            SiteAction::TakeOver { epoch: 2 }
        ],
        "a run under the old epoch is not carried on"
    );
    // Record not read yet (taken over but nothing in memory): nothing.
    let mut w = World::converged();
    w.record = None;
    assert_eq!(w.decide(Instant::now()), vec![]);
}

#[test]
fn resume_goes_on_after_an_idempotent_step_and_stops_after_another() {
    let s = spec();
    let west = &s.sites[1];
    let mut runs = SiteRuns::default();
    runs.start(&s.sites, west, RunKind::Promotion, "t".into(), 1)
        .expect("starts");
    let mut run = runs.current.clone().expect("run");
    run.steps[0].state = floatover::site::record::StepState::Running;
    let mut steps = west.run_steps(false);
    assert_eq!(resume(&mut run.clone(), &steps), Resume::Continue);
    steps[0].idempotent = false;
    assert_eq!(
        resume(&mut run, &steps),
        Resume::Stop {
            step: "start_instances".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn automatic_failback_on_and_off() {
    let mut w = World::converged().up("west", 2).up("east", 2);
    w.record = Some(SiteRuns {
        active_site: Some("west".into()),
        ..SiteRuns::default()
    });
    assert_eq!(w.decide(Instant::now()), vec![], "off by default");
    w.policy.automatic_failback = true;
    let a = w.decide(Instant::now());
    assert_eq!(starts(&a), vec![("east".into(), None)]);
    assert!(
        matches!(&a[0], SiteAction::Start { order: Order { trigger, .. }, .. }
        if trigger == "automatic failback: primary site east is healthy again")
    );
    w.up.insert("east".into(), 0);
    assert_eq!(
        w.decide(Instant::now()),
        vec![],
        "not onto a primary below quorum"
    );
    // Automatic promotion off: nothing, however long the active site is down.
    let mut w = World::converged().up("east", 0);
    w.policy.automatic = false;
    w.below_since = Some(Instant::now() - Duration::from_secs(3600));
    assert_eq!(w.decide(Instant::now()), vec![SiteAction::BelowSince(None)]);
}

#[tokio::test(start_paused = true)]
async fn a_drill_that_succeeded_is_failed_back_once() {
    let mut w = World::converged();
    let mut r = SiteRuns {
        active_site: Some("south".into()),
        ..SiteRuns::default()
    };
    r.history.push(finished(
        "south",
        "east",
        RunKind::Drill,
        RunState::Succeeded,
    ));
    w.record = Some(r.clone());
    let a = w.decide(Instant::now());
    assert_eq!(
        a,
        vec![SiteAction::Start {
            site: "east".into(),
            order: Order {
                kind: RunKind::Promotion,
                trigger: "failback that ends drill south-1".into(),
                drill_of: Some("south-1".into()),
            },
            request: None
        }]
    );
    // Once the failback is in the history (whatever its outcome), never again.
    let mut back = finished("east", "south", RunKind::Promotion, RunState::Failed);
    back.drill_of = Some("south-1".into());
    r.history.push(back);
    w.record = Some(r);
    assert_eq!(starts(&w.decide(Instant::now())), vec![]);
    // A failed drill is not failed back.
    let mut r = SiteRuns::default();
    r.history
        .push(finished("south", "east", RunKind::Drill, RunState::Failed));
    w.record = Some(r);
    assert_eq!(w.decide(Instant::now()), vec![]);
}

const SITES: [&str; 4] = ["east", "west", "south", "nowhere"];

prop_compose! {
    fn arb_world()(
        leading in proptest::option::of(1u64..3),
        taken in proptest::option::of(1u64..3),
        record in proptest::option::of((0usize..4, any::<bool>(), 0u8..4)),
        running in any::<bool>(),
        up in proptest::collection::vec(0usize..3, 3),
        ready in proptest::collection::vec(any::<bool>(), 3),
        below_ms in proptest::option::of(0u64..20_000),
        reqs in proptest::collection::vec(0usize..4, 0..3),
        failback in any::<bool>(),
        automatic in any::<bool>(),
    ) -> (World, Option<u64>) {
        let mut w = World::converged();
        w.leading = leading;
        w.taken_over = taken;
        w.record = record.map(|(active, current, last)| {
            let mut r = SiteRuns {
                // 3: none recorded (the primary).
                active_site: (active < 3).then(|| SITES[active].to_string()),
                ..SiteRuns::default()
            };
            if current {
                r.current = Some(finished("west", "east", RunKind::Promotion, RunState::Running));
            }
            match last {
                1 => r.history.push(finished("south", "east", RunKind::Drill, RunState::Succeeded)),
                2 => r.history.push(finished("west", "east", RunKind::Promotion, RunState::Failed)),
                _ => {}
            }
            r
        });
        w.running = running.then(|| "west-9".to_string());
        for (i, n) in up.into_iter().enumerate() {
            w.up.insert(SITES[i].into(), n);
        }
        for (i, b) in ready.into_iter().enumerate() {
            w.ready.insert(SITES[i].into(), b);
        }
        w.requests = reqs.into_iter().map(|i| request(SITES[i])).collect();
        w.policy.automatic_failback = failback;
        w.policy.automatic = automatic;
        (w, below_ms)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_rules_hold_for_any_input((mut w, below_ms) in arb_world(), now_ms in 0u64..30_000) {
        let base = Instant::now();
        let now = base + Duration::from_millis(now_ms);
        w.below_since = below_ms.map(|b| base + Duration::from_millis(b.min(now_ms)));
        let a = w.decide(now);
        let s: Vec<&SiteAction> = a.iter().filter(|x| matches!(x, SiteAction::Start { .. })).collect();
        prop_assert!(s.len() <= 1, "never two runs: {a:?}");
        let record = w.record.clone().unwrap_or_default();
        let active = record.active(&w.spec.sites).map(str::to_string);
        if let Some(SiteAction::Start { site, order, request }) = s.first() {
            prop_assert!(w.leading.is_some() && w.taken_over == w.leading, "only a leader that took over");
            prop_assert!(w.running.is_none() && record.current.is_none(), "one run at a time: {a:?}");
            prop_assert!(Some(site) != active.as_ref(), "never onto the active site");
            prop_assert!(w.spec.sites.iter().any(|x| &x.name == site));
            let act = w.spec.sites.iter().find(|x| Some(&x.name) == active.as_ref());
            let at_q = act.is_some_and(|x| w.up[&x.name] >= x.quorum_count());
            if request.is_none() && order.drill_of.is_none() {
                if order.trigger.starts_with("automatic:") {
                    prop_assert!(w.policy.automatic && !at_q, "no promotion away from an active site at quorum");
                    let since = w.below_since.unwrap_or(now);
                    prop_assert!(now.duration_since(since) >= w.policy.grace, "not before the grace");
                } else {
                    prop_assert!(w.policy.automatic_failback && at_q, "failback only from a healthy site: {a:?}");
                    let p = w.spec.sites.iter().find(|x| x.primary).expect("primary");
                    prop_assert!(w.up[&p.name] >= p.quorum_count());
                }
            }
        }
        // Every request is answered exactly once, unless the record is being taken over.
        let answered = a.iter().filter(|x| matches!(x,
            SiteAction::Refuse { .. } | SiteAction::Start { request: Some(_), .. })).count();
        let waiting = a.iter().any(|x| matches!(x, SiteAction::TakeOver { .. }))
            || (w.leading.is_some() && w.record.is_none());
        if !waiting {
            prop_assert_eq!(answered, w.requests.len(), "{:?}", a);
        } else {
            prop_assert_eq!(answered, 0);
        }
    }

    #[test]
    fn a_converged_world_decides_nothing_whatever_else_is_up(
        up in proptest::collection::vec(0usize..3, 2), ready in proptest::collection::vec(any::<bool>(), 3),
        east in 1usize..3, now_ms in 0u64..100_000,
    ) {
        let mut w = World::converged().up("east", east).up("west", up[0]).up("south", up[1]);
        for (i, b) in ready.into_iter().enumerate() {
            w.ready.insert(SITES[i].into(), b);
        }
        prop_assert_eq!(w.decide(Instant::now() + Duration::from_millis(now_ms)), vec![]);
    }
}
