//! The promotion record beside a Kubernetes Lease: a ConfigMap written with its
//! resourceVersion as the precondition, against FakeKube (an in-test API server that
//! checks resourceVersions as the real one does). The same rules as beside the S3 lease:
//! a write from an older epoch is refused, a write over a changed record conflicts,
//! nothing is half-written, and errors read in the user's words.

use floatover::site::record::{RunKind, SiteRuns};
use floatover::site::store::{ConfigMapRunStore, RunStore, StoreError, update};
use floatover_devkit::kubeapi::FakeKube;
use serde_json::json;

const SITES: &str = r#"
leader: { backend: single }
aws: { region: us-east-1 }
groups:
  - name: web
    targets:
      - { name: a, instance_id: i-0000000000000000a, probes: [ { tcp: { address: "10.0.0.1:80" } } ] }
      - { name: b, instance_id: i-0000000000000000b, probes: [ { tcp: { address: "10.0.0.2:80" } } ] }
    floats: [ { eip: { allocation_id: eipalloc-1 } } ]
sites:
  - { name: east, tier: hot, primary: true, traffic: [ { group: web, target: a } ] }
  - { name: west, tier: hot, traffic: [ { group: web, target: b } ] }
"#;

#[tokio::test]
async fn the_record_is_a_configmap_written_under_the_epoch_with_preconditions() {
    let kube = FakeKube::new();
    let store = ConfigMapRunStore::new(kube.client(), "ops", "floatover");
    assert_eq!(store.location(), "configmap ops/floatover-sites");
    let (runs, version) = store.load().await.expect("load");
    assert_eq!((runs, version), (SiteRuns::default(), None));

    // Epoch 2 starts a run: the ConfigMap is created with the record.
    let spec = floatover::config::from_yaml(SITES).expect("valid");
    let (runs, id) = update(&store, 2, |r| {
        r.start(
            &spec.sites,
            &spec.sites[1],
            RunKind::Promotion,
            "test".into(),
            7,
        )
        .map(|x| x.id.clone())
    })
    .await
    .expect("write");
    let id = id.expect("started");
    assert_eq!(runs.epoch, 2);
    let cm = kube
        .configmap("ops", "floatover-sites")
        .expect("the ConfigMap exists");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "floatover"
    );
    let stored: SiteRuns =
        serde_json::from_str(cm["data"]["sites.json"].as_str().unwrap_or("")).expect("JSON");
    assert_eq!(stored.current.map(|c| c.id), Some(id.clone()));

    // A deposed leader (epoch 1) cannot write over it.
    let e = update(&store, 1, |r| r.current = None)
        .await
        .expect_err("fenced");
    assert!(
        matches!(
            e,
            StoreError::Fenced {
                found: 2,
                ours: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "the site record at configmap ops/floatover-sites was written by a newer leader (epoch 2 > ours 1); not writing"
    );

    // A write over a version that changed since it was read conflicts, and changes nothing.
    let (seen, v1) = store.load().await.expect("load");
    let mut mine = seen.clone();
    mine.active_site = Some("west".into());
    store
        .save(&mine, v1.as_deref())
        .await
        .expect("first writer wins");
    let mut late = seen;
    late.active_site = Some("east".into());
    let e = store
        .save(&late, v1.as_deref())
        .await
        .expect_err("stale version");
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let (now, _) = store.load().await.expect("load");
    assert_eq!(now.active_site.as_deref(), Some("west"));
    // Creating over an existing record conflicts too (two leaders both saw none).
    let e = store.save(&late, None).await.expect_err("exists");
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
}

#[tokio::test]
async fn an_unreadable_record_or_an_unreachable_server_is_named() {
    let kube = FakeKube::new();
    kube.plant_configmap(
        "ops",
        "floatover-sites",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {"sites.json": "{not json"}}),
    );
    let store = ConfigMapRunStore::new(kube.client(), "ops", "floatover");
    let e = store.load().await.expect_err("corrupt");
    assert!(
        e.to_string()
            .starts_with("the site record at configmap ops/floatover-sites is not readable: "),
        "{e}"
    );
    let cut = kube.for_replica("r1");
    cut.cut_off("r1", true);
    let store = ConfigMapRunStore::new(cut.client(), "ops", "floatover");
    let e = store.load().await.expect_err("cut off");
    assert_eq!(
        e.to_string(),
        "get configmap ops/floatover-sites: ServiceUnavailable: cut off by the test"
    );
}
