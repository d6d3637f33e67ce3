use crate::config;
use std::time::Duration;

const BASE: &str = r#"
leader: { backend: single }
aws: { region: us-east-1 }
groups:
  - name: web-east
    targets:
      - { name: a, instance_id: i-0000000000000000a, probes: [ { tcp: { address: "10.0.0.1:80" } } ] }
      - { name: b, instance_id: i-0000000000000000b, probes: [ { tcp: { address: "10.0.0.2:80" } } ] }
    floats: [ { eip: { allocation_id: eipalloc-1 } } ]
  - name: web-west
    region: us-west-2
    targets:
      - { name: c, instance_id: i-0000000000000000c, probes: [ { tcp: { address: "10.1.0.1:80" } } ] }
      - { name: d, instance_id: i-0000000000000000d, probes: [ { tcp: { address: "10.1.0.2:80" } } ] }
    floats: [ { eip: { allocation_id: eipalloc-2 } } ]
"#;

fn with_sites(sites: &str) -> Result<config::Spec, config::ConfigError> {
    config::from_yaml(&format!("{BASE}{sites}"))
}

fn issues(sites: &str) -> Vec<String> {
    match with_sites(sites) {
        Ok(_) => vec![],
        Err(e) => e.issues().iter().map(|i| i.to_string()).collect(),
    }
}

#[test]
fn a_warm_site_gets_the_tier_plan_with_default_budgets() {
    let s = with_sites(
        r#"
sites:
  - { name: east, tier: hot, primary: true, targets: [web-east/a, web-east/b], traffic: [ { group: web-east, target: a } ] }
  - name: west
    region: us-west-2
    tier: warm
    rto: 15m
    instances: [i-0000000000000000c, i-0000000000000000d]
    targets: [web-west/c, web-west/d]
    traffic: [ { group: web-west, target: c } ]
"#,
    )
    .expect("valid");
    let west = &s.sites[1];
    let words: Vec<_> = west.steps.iter().map(|s| s.kind.word()).collect();
    assert_eq!(words, ["start_instances", "wait_healthy", "shift"]);
    assert_eq!(west.expected(), Duration::from_secs(120 + 300 + 60));
    assert_eq!(west.quorum_count(), 1);
    assert_eq!(s.sites[0].steps.len(), 1, "hot: shift only");
    assert_eq!(s.sites[0].region, "us-east-1", "default region");
}

#[test]
fn every_site_problem_is_named() {
    let got = issues(
        r#"
sites:
  - name: east
    tier: warm
    targets: [web-east/zz, nogroup]
    quorum: 1.5
    traffic: []
    steps:
      - approval: { timeout: 0s }
      - webhook: { url: "ftp://x", retries: 11 }
      - parallel: { steps: [ { shift: {} }, { approval: {} } ] }
      - exec: { command: [] }
"#,
    );
    let want = [
        "sites[0].targets[0]: group \"web-east\" has no target named \"zz\"",
        "sites[0].targets[1]: \"nogroup\": write group/target",
        "sites[0].quorum: a fraction",
        "sites[0].traffic: name the traffic",
        "sites[0].tier: a warm site needs stopped `instances`",
        "sites[0].steps[0].timeout: must be between 1s",
        "sites[0].steps[1].url: \"ftp://x\" is not an http(s) URL",
        "sites[0].steps[1].retries: at most 10",
        "sites[0].steps[2].steps[0]: shift cannot run in parallel",
        "sites[0].steps[2].steps[1]: an approval cannot run in parallel",
        "sites[0].steps[3].command: the program",
        "sites: exactly one site must be `primary: true`",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing {w:?} in {got:#?}"
        );
    }
    // No shift at the top level of the plan is its own problem.
    assert!(
        got.iter()
            .any(|g| g.contains("no `shift` or `routing_controls` step")),
        "{got:#?}"
    );
}

#[test]
fn cold_needs_a_launch_and_only_cold_launches() {
    let got = issues(
        r#"
sites:
  - { name: east, tier: hot, primary: true, traffic: [ { group: web-east, target: a } ], launch: { image_id: ami-1, instance_type: t3.micro } }
  - { name: west, tier: cold, traffic: [ { group: web-west, target: c } ] }
"#,
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("sites[0].launch: only a cold site")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("sites[1].tier: a cold site needs `launch`")),
        "{got:#?}"
    );
}

#[test]
fn step_names_are_unique_and_budgets_add_up() {
    let s = with_sites(
        r#"
sites:
  - { name: east, tier: hot, primary: true, traffic: [ { group: web-east, target: a } ] }
  - name: west
    region: us-west-2
    tier: hot
    rto: 2m
    targets: [web-west/c]
    traffic: [ { group: web-west, target: c } ]
    steps:
      - parallel:
          steps:
            - exec: { command: [/bin/true], budget: 20s }
            - webhook: { url: "https://hooks.example/dr", timeout: 5s, retries: 1 }
      - approval: {}
      - exec: { command: [/bin/true] }
      - shift: {}
"#,
    )
    .expect("valid");
    let west = &s.sites[1];
    let names: Vec<_> = west.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["parallel", "approval", "exec-2", "shift"]);
    // parallel = its longest step: the webhook's two 5 s attempts + 4 s backoff.
    assert_eq!(west.steps[0].budget, Duration::from_secs(20));
    assert_eq!(
        west.steps[1].budget,
        Duration::from_secs(3600),
        "approval: 60 min"
    );
    assert!(
        west.expected() > west.rto.expect("rto"),
        "plan can exceed its RTO (shown by plan)"
    );
}

#[test]
fn the_plan_reads_step_by_step_with_budgets_and_the_rto() {
    let s = with_sites(
        r#"
sites:
  - { name: east, tier: hot, primary: true, traffic: [ { group: web-east, target: a } ] }
  - name: west
    region: us-west-2
    tier: warm
    rto: 5m
    instances: [i-0000000000000000c]
    targets: [web-west/c, web-west/d]
    traffic: [ { group: web-west, target: c } ]
"#,
    )
    .expect("valid");
    let plans: Vec<_> = s.sites.iter().map(super::outline::site_plan).collect();
    assert!(plans[1].over_rto, "8m of steps over a 5m RTO");
    let text = super::outline::text(&plans);
    assert!(
        text.contains("site west (warm, us-west-2): promotion expected within 8m, RTO 5m"),
        "{text}"
    );
    assert!(text.contains("start i-0000000000000000c"), "{text}");
    assert!(
        text.contains("1 of 2 target(s) up (web-west/c, web-west/d)"),
        "{text}"
    );
    assert!(text.contains("web-west -> c"), "{text}");
    assert!(
        text.contains("WARNING: the step budgets add up to 8m, over the RTO of 5m"),
        "{text}"
    );
}

mod runs {
    use super::with_sites;
    use crate::site::record::*;
    use crate::site::store::{MemRunStore, RunStore, StoreError, update};

    fn spec() -> crate::config::Spec {
        with_sites(
            r#"
sites:
  - { name: east, tier: hot, primary: true, traffic: [ { group: web-east, target: a } ] }
  - name: west
    region: us-west-2
    tier: warm
    instances: [i-0000000000000000c]
    targets: [web-west/c]
    traffic: [ { group: web-west, target: c } ]
    steps:
      - start_instances: {}
      - parallel: { steps: [ { exec: { command: [/bin/true] } }, { wait_healthy: {} } ] }
      - exec: { name: idem, command: [/bin/true], idempotent: true }
      - shift: {}
"#,
        )
        .expect("valid")
    }

    #[test]
    fn one_run_at_a_time_and_never_onto_the_active_site() {
        let s = spec();
        let mut r = SiteRuns::default();
        assert_eq!(r.active(&s.sites), Some("east"));
        let e = r
            .start(&s.sites, &s.sites[0], RunKind::Promotion, "t".into(), 1)
            .expect_err("east is active");
        assert_eq!(e, StartError::AlreadyActive("east".into()));
        let run = r
            .start(&s.sites, &s.sites[1], RunKind::Promotion, "t".into(), 5)
            .expect("start");
        assert_eq!(run.from_site, "east");
        assert_eq!(run.steps.len(), 4);
        assert_eq!(run.steps[1].steps.len(), 2);
        let e = r
            .start(&s.sites, &s.sites[1], RunKind::Drill, "t".into(), 6)
            .expect_err("busy");
        assert!(matches!(e, StartError::Busy { .. }), "{e}");
        r.finish(RunState::Succeeded, None, 9);
        assert_eq!(r.active(&s.sites), Some("west"));
        assert!(r.current.is_none());
        for i in 0..30 {
            r.start(&s.sites, &s.sites[0], RunKind::Drill, "t".into(), 10 + i)
                .expect("start");
            r.finish(RunState::Failed, Some("x".into()), 11 + i);
        }
        assert_eq!(r.history.len(), HISTORY);
        assert_eq!(
            r.active(&s.sites),
            Some("west"),
            "a failed run moves nothing"
        );
    }

    #[test]
    fn a_new_leader_reruns_idempotent_steps_and_stops_at_the_others() {
        let s = spec();
        let west = &s.sites[1];
        let mut r = SiteRuns::default();
        r.start(&s.sites, west, RunKind::Promotion, "t".into(), 1)
            .expect("start");
        let mut run = r.current.clone().expect("run");
        // start_instances done; the idempotent exec was running.
        run.steps[0].state = StepState::Done;
        run.steps[1].state = StepState::Done;
        run.steps[2].state = StepState::Running;
        let mut a = run.clone();
        assert_eq!(resume(&mut a, &west.steps), Resume::Continue);
        assert_eq!(a.steps[0].state, StepState::Done, "never repeated");
        assert_eq!(a.steps[2].state, StepState::Pending, "runs again");
        assert_eq!(a.resumed, 1);
        // The parallel group was running with its (non-idempotent) exec inside: stop.
        let mut b = run.clone();
        b.steps[1].state = StepState::Running;
        b.steps[1].steps[0].state = StepState::Running;
        b.steps[2].state = StepState::Pending;
        assert_eq!(
            resume(&mut b, &west.steps),
            Resume::Stop {
                step: "parallel".into()
            }
        );
        assert_eq!(b.steps[1].state, StepState::Failed);
        assert!(
            b.steps[1]
                .error
                .clone()
                .unwrap_or_default()
                .contains("not safe to run twice")
        );
    }

    #[tokio::test]
    async fn writes_are_conditional_and_fenced_by_epoch() {
        let store = MemRunStore::default();
        update(&store, 3, |r| r.active_site = Some("west".into()))
            .await
            .expect("write");
        let e = update(&store, 2, |r| r.active_site = None)
            .await
            .expect_err("older epoch");
        assert!(
            matches!(
                e,
                StoreError::Fenced {
                    found: 3,
                    ours: 2,
                    ..
                }
            ),
            "{e}"
        );
        let (r, v) = store.load().await.expect("load");
        assert_eq!(r.active_site.as_deref(), Some("west"));
        // A write against a stale version is a conflict, not an overwrite.
        store.save(&r, v.as_deref()).await.expect("save");
        let e = store
            .save(&r, v.as_deref())
            .await
            .expect_err("stale version");
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    }
}

#[test]
fn preflight_names_traffic_that_cannot_be_read() {
    let spec = with_sites(
        r#"
sites:
  - { name: east, tier: hot, primary: true, traffic: [ { group: web-east, target: a } ] }
  - { name: west, region: us-west-2, tier: hot, traffic: [ { group: web-west, target: c }, { group: web-west, target: d } ] }
"#,
    )
    .expect("valid");
    let status = crate::status::StatusStore::default();
    let west = &spec.sites[1];
    assert!(crate::site::preflight::traffic_problems(&status, west).is_empty());
    status.set_observe_error(
        "web-west",
        "DescribeAddresses in us-west-2: InvalidAllocationID.NotFound: gone".into(),
    );
    assert_eq!(
        crate::site::preflight::traffic_problems(&status, west),
        [
            "traffic group web-west cannot be read: DescribeAddresses in us-west-2: InvalidAllocationID.NotFound: gone"
        ],
        "once per group"
    );
    assert!(crate::site::preflight::traffic_problems(&status, &spec.sites[0]).is_empty());
}
