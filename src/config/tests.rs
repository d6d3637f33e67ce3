use super::*;

const GOOD: &str = r#"
api: { listen: "127.0.0.1:9090", token: "0123456789abcdef" }
aws: { region: us-east-1 }
leader: { backend: single }
groups:
  - name: web
    targets:
      - name: a
        instance_id: i-aaa
        priority: 200
        probes: [{ http: { url: "http://127.0.0.1:8080/health" } }]
      - name: b
        instance_id: i-bbb
        probes: [{ tcp: { address: "127.0.0.1:8081" }, interval: 200ms, fall: 2 }]
    floats:
      - eip: { allocation_id: eipalloc-1 }
"#;

#[test]
fn good_config_resolves_with_defaults() {
    let s = from_yaml(GOOD).expect("valid");
    let g = &s.groups[0];
    assert_eq!(g.targets[0].priority, 200);
    assert_eq!(g.targets[1].priority, 100);
    assert_eq!(
        g.targets[1].probes[0].interval,
        std::time::Duration::from_millis(200)
    );
    assert_eq!(g.targets[1].probes[0].fall, 2);
    assert_eq!(g.targets[1].probes[0].rise, 2, "default rise");
    assert_eq!(g.floats[0].region, "us-east-1");
    assert!(g.policy.preempt);
}

fn issues(yaml: &str) -> Vec<Issue> {
    match from_yaml(yaml) {
        Ok(_) => vec![],
        Err(e) => e.issues(),
    }
}

#[test]
fn unknown_key_names_its_path() {
    let bad = GOOD.replace("priority: 200", "priority: 200\n        prioritee: 3");
    let is = issues(&bad);
    assert_eq!(is.len(), 1);
    assert!(is[0].path.starts_with("groups[0].targets[0]"), "{:?}", is);
    assert!(is[0].reason.contains("prioritee"), "{:?}", is);
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let bad = GOOD
        .replace("i-aaa", "x-aaa")
        .replace("eipalloc-1", "alloc-1")
        .replace("interval: 200ms", "interval: 200ms, timeout: 1s");
    let is = issues(&bad);
    let paths: Vec<&str> = is.iter().map(|i| i.path.as_str()).collect();
    assert!(
        paths.contains(&"groups[0].targets[0].instance_id"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"groups[0].floats[0].eip.allocation_id"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"groups[0].targets[1].probes[0].timeout"),
        "{paths:?}"
    );
}

#[test]
fn bad_duration_is_named() {
    let is = issues(&GOOD.replace("interval: 200ms", "interval: fast"));
    assert_eq!(is[0].path, "groups[0].targets[1].probes[0].interval");
}

#[test]
fn a_quorum_of_buckets_and_a_lease_resolves_each_member() {
    let yaml = GOOD.replace(
        "leader: { backend: single }",
        r#"leader:
  backend: quorum
  quorum:
    members:
      - { name: use1, s3: { bucket: lease-use1 } }
      - { name: usw2, s3: { bucket: lease-usw2, region: us-west-2, endpoint_url: "http://127.0.0.1:4566" } }
      - { name: home, kubernetes: { name: floatover, context: east } }"#,
    );
    let s = from_yaml(&yaml).expect("valid");
    let LeaderBackend::Quorum { members } = &s.leader.backend else {
        panic!("quorum: {:?}", s.leader.backend);
    };
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["use1", "usw2", "home"]);
    match &members[0].store {
        LeaderBackend::S3 { region, key, .. } => {
            assert_eq!(region, "us-east-1", "the default region");
            assert_eq!(key, "floatover/leader.json", "the default key");
        }
        other => panic!("{other:?}"),
    }
    match &members[2].store {
        LeaderBackend::Kubernetes { context, .. } => assert_eq!(context.as_deref(), Some("east")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_quorum_refuses_a_duplicate_name_and_two_members_in_one_cluster() {
    let yaml = GOOD.replace(
        "leader: { backend: single }",
        r#"leader:
  backend: quorum
  quorum:
    members:
      - { name: a, kubernetes: { name: floatover } }
      - { name: a, s3: { bucket: lease-b } }
      - { name: c, kubernetes: { name: other } }"#,
    );
    let got: Vec<String> = issues(&yaml).iter().map(|i| i.to_string()).collect();
    assert!(
        got.iter()
            .any(|i| i.starts_with("leader.quorum.members[1].name")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|i| i.starts_with("leader.quorum.members[2]: is the same cluster")),
        "{got:?}"
    );
}
