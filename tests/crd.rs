//! The FloatGroup CRD: the checked-in file is exactly what `crdgen` generates from the Rust
//! types (so the schema cannot drift from the config), and the example resource is a group
//! that `floatover check` accepts.

use floatover::crd::{FloatGroup, crd_yaml};

const CHECKED_IN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/floatover/crd/floatgroups.yaml"
);

#[test]
fn the_checked_in_crd_is_the_generated_one() {
    let generated = crd_yaml().expect("render");
    let on_disk = std::fs::read_to_string(CHECKED_IN).expect("read");
    // Compared as documents: key order in defaults depends on serde_json's features,
    // which differ between a test build and the crdgen binary.
    let parse = |t: &str| -> serde_json::Value { serde_saphyr::from_str(t).expect("YAML") };
    assert!(
        parse(&on_disk) == parse(&generated),
        "charts/floatover/crd/floatgroups.yaml is stale: run `cargo run --bin crdgen > charts/floatover/crd/floatgroups.yaml`"
    );
    for needle in [
        "kind: CustomResourceDefinition",
        "name: floatgroups.floatover.io",
        "subresources:",
        "status: {}",
        "allocation_id",
        "on_all_unhealthy",
    ] {
        assert!(on_disk.contains(needle), "no {needle:?} in the CRD");
    }
}

#[test]
fn the_example_resource_is_a_valid_group() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/floatgroup.yaml"
    ))
    .expect("read");
    let fg: FloatGroup = serde_saphyr::from_str(&text).expect("a FloatGroup");
    let group = fg.group();
    assert_eq!(group.name, "web");
    let groups = serde_json::to_string(&vec![group]).expect("json");
    // JSON is YAML: the group goes into a config as it is.
    let config =
        format!("aws: {{ region: us-east-1 }}\nleader: {{ backend: single }}\ngroups: {groups}\n");
    floatover::config::from_yaml(&config).expect("floatover check accepts the example group");
    // And a resource with an unknown key is refused, naming it.
    let bad = text.replace("preempt: true", "preempt: true\n    prempt: false");
    let e = serde_saphyr::from_str::<FloatGroup>(&bad).expect_err("unknown key");
    assert!(e.to_string().contains("prempt"), "{e}");
}
