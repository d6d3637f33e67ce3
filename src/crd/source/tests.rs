use super::*;
use serde_json::json;

fn base() -> RawConfig {
    config::parse_raw(
        "leader: { backend: single }\naws: { region: us-east-1 }\ngroup_source: { kubernetes: {} }\n",
    )
    .expect("base config")
}

fn spec(eip: &str, url_host: &str) -> serde_json::Value {
    json!({
        "targets": [
            {"name": "a", "instance_id": "i-0000000000000000a", "priority": 200,
             "probes": [{"http": {"url": format!("http://{url_host}:8080/health")}}]},
            {"name": "b", "instance_id": "i-0000000000000000b", "priority": 100,
             "probes": [{"tcp": {"address": "10.0.0.2:80"}}]},
        ],
        "floats": [{"eip": {"allocation_id": eip}}],
    })
}

fn found(name: &str, generation: i64, raw: serde_json::Value) -> Found {
    Found {
        name: name.into(),
        uid: Some(format!("uid-{name}")),
        generation: Some(generation),
        spec: decode(name, &raw),
        raw,
    }
}

fn none(_: &str) -> Option<String> {
    None
}

#[test]
fn every_valid_object_runs_in_name_order() {
    let objs = [
        found("web", 3, spec("eipalloc-1", "10.0.0.1")),
        found("api", 1, spec("eipalloc-2", "10.0.0.1")),
    ];
    let a = assemble(&base(), &objs, &BTreeMap::new(), &none);
    let s = a.spec.expect("valid");
    let names: Vec<_> = s.groups.iter().map(|g| g.name.0.clone()).collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(a.objects["web"].running_generation, Some(3));
    assert_eq!(a.objects["web"].rejected, None);
    assert_eq!(a.running.len(), 2);
}

#[test]
fn no_objects_is_an_idle_controller_not_an_error() {
    let a = assemble(&base(), &[], &BTreeMap::new(), &none);
    assert!(a.spec.expect("valid").groups.is_empty());
}

#[test]
fn a_spec_that_does_not_decode_is_refused_alone_naming_the_field() {
    let mut bad = spec("eipalloc-2", "10.0.0.1");
    bad["targets"][0]["priorty"] = json!(5);
    let objs = [
        found("web", 1, spec("eipalloc-1", "10.0.0.1")),
        found("api", 1, bad),
    ];
    let a = assemble(&base(), &objs, &BTreeMap::new(), &none);
    let s = a.spec.expect("the good one runs");
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].name.0, "web");
    let why = a.objects["api"].rejected.clone().expect("refused");
    assert!(why.starts_with("FloatGroup api: spec.targets[0]"), "{why}");
    assert!(why.contains("priorty"), "{why}");
    assert_eq!(a.objects["api"].running_generation, None);
}

#[test]
fn a_bad_edit_keeps_the_previous_spec_running() {
    let first = assemble(
        &base(),
        &[found("web", 1, spec("eipalloc-1", "10.0.0.1"))],
        &BTreeMap::new(),
        &none,
    );
    // An edit that decodes but fails a check (a probe URL that is not http).
    let edited = found("web", 2, spec("eipalloc-1", "not a host/x"));
    let a = assemble(&base(), &[edited], &first.running, &none);
    let s = a.spec.expect("previous runs");
    assert_eq!(s.groups.len(), 1);
    assert_eq!(a.objects["web"].running_generation, Some(1));
    let why = a.objects["web"].rejected.clone().expect("refused");
    assert!(
        why.starts_with("FloatGroup web: spec.targets[0].probes[0]"),
        "{why}"
    );
    // Fixed: generation 3 runs, the refusal clears.
    let fixed = found("web", 3, spec("eipalloc-9", "10.0.0.1"));
    let b = assemble(&base(), &[fixed], &a.running, &none);
    assert_eq!(b.objects["web"].running_generation, Some(3));
    assert_eq!(b.objects["web"].rejected, None);
}

#[test]
fn a_float_claimed_by_two_objects_goes_to_the_first_by_name() {
    let objs = [
        found("b-second", 1, spec("eipalloc-1", "10.0.0.1")),
        found("a-first", 1, spec("eipalloc-1", "10.0.0.1")),
    ];
    let a = assemble(&base(), &objs, &BTreeMap::new(), &none);
    let s = a.spec.expect("valid");
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].name.0, "a-first");
    let why = a.objects["b-second"].rejected.clone().expect("refused");
    assert!(why.contains("FloatGroup b-second: spec.floats"), "{why}");
    assert!(why.contains("a-first"), "{why}");
}

#[test]
fn a_deleted_object_stops_running() {
    let first = assemble(
        &base(),
        &[
            found("web", 1, spec("eipalloc-1", "10.0.0.1")),
            found("api", 1, spec("eipalloc-2", "10.0.0.1")),
        ],
        &BTreeMap::new(),
        &none,
    );
    let a = assemble(
        &base(),
        &[found("web", 1, spec("eipalloc-1", "10.0.0.1"))],
        &first.running,
        &none,
    );
    assert_eq!(a.spec.expect("valid").groups.len(), 1);
    assert!(!a.running.contains_key("api"));
    assert!(!a.objects.contains_key("api"));
}

#[test]
fn an_object_name_that_is_not_a_group_name_is_refused() {
    let a = assemble(
        &base(),
        &[found("web.prod", 1, spec("eipalloc-1", "10.0.0.1"))],
        &BTreeMap::new(),
        &none,
    );
    let why = a.objects["web.prod"].rejected.clone().expect("refused");
    assert!(why.contains("FloatGroup web.prod: metadata.name"), "{why}");
}

#[test]
fn the_file_must_not_mix_sources() {
    let text = "leader: { backend: single }\naws: { region: us-east-1 }\ngroup_source: { kubernetes: {} }\ngroups:\n  - name: web\n    targets: []\n    floats: []\n";
    let e = config::from_yaml(text).expect_err("mixed");
    assert!(
        e.to_string()
            .contains("groups: must be empty when group_source is kubernetes"),
        "{e}"
    );
    let text = "leader: { backend: single }\naws: { region: us-east-1 }\n";
    let e = config::from_yaml(text).expect_err("no groups");
    assert!(
        e.to_string()
            .contains("groups: at least one group is required"),
        "{e}"
    );
}
