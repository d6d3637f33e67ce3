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
        got.iter().any(|g| g.contains("no `shift` step")),
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
    let plans: Vec<_> = s.sites.iter().map(super::plan::site_plan).collect();
    assert!(plans[1].over_rto, "8m of steps over a 5m RTO");
    let text = super::plan::text(&plans);
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
