//! The FloatGroup status publisher in process, with paused time, against the in-test
//! Kubernetes API server (`FakeKube`, a test double): only the leader writes; a move
//! becomes one Event; a refused spec one Warning Event however many rounds pass; an API
//! server that is cut off costs nothing but a retry, and the status catches up after.

use floatover::crd::publish::Publisher;
use floatover::crd::source::{ObjectState, ObjectsState};
use floatover::leader::{LeaderState, Leadership};
use floatover::model::{Epoch, GroupName, Health, Holder, Reason, TargetId};
use floatover::status::{AuditEvent, GroupStatus, StatusStore, TargetStatus};
use floatover_devkit::kubeapi::FakeKube;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const NS: &str = "prod";

fn leader(is: bool, epoch: u64) -> LeaderState {
    LeaderState {
        identity: "r0".into(),
        is_leader: is,
        epoch: Epoch(epoch),
        holder: None,
        holder_api: None,
        store: Default::default(),
        fence_deadline: Some(Instant::now() + Duration::from_secs(3600)),
        members: Vec::new(),
    }
}

fn moved(to: &str) -> AuditEvent {
    AuditEvent {
        token_wait_ms: None,
        started_unix_ms: 1_700_000_000_000,
        finished_unix_ms: 1_700_000_000_180,
        replica: "r0".into(),
        group: GroupName("web".into()),
        float: "eip:eipalloc-1".into(),
        from: Holder::Target(TargetId("primary".into())),
        to: Some(TargetId(to.into())),
        reason: Reason::Failover,
        epoch: Epoch(7),
        decision_ms: Some(1.0),
        call_ms: 180.0,
        calls: 1,
        ok: true,
        error: None,
        detail: None,
    }
}

fn group(owner: &str) -> GroupStatus {
    GroupStatus {
        name: "web".into(),
        owner: Some(TargetId(owner.into())),
        targets: vec![TargetStatus {
            name: TargetId("primary".into()),
            priority: 200,
            health: Health::Down,
            for_ms: 5,
            last_error: None,
            votes: None,
        }],
        ..Default::default()
    }
}

fn reasons(api: &FakeKube) -> Vec<String> {
    api.events(NS)
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn only_the_leader_reports_each_move_once_and_survives_a_cut_off_api() {
    let api = FakeKube::new();
    api.apply_floatgroup(NS, "web", json!({"targets": [], "floats": []}));
    let objects = Arc::new(ObjectsState::default());
    let mut st = BTreeMap::new();
    st.insert(
        "web".to_string(),
        ObjectState {
            uid: Some("uid-1".into()),
            running_generation: Some(1),
            rejected: None,
        },
    );
    objects.set(st.clone());
    let status = Arc::new(StatusStore::default());
    status.set_group(group("standby"));
    let (tx, rx) = watch::channel(leader(false, 6));
    let publisher = Publisher::new(api.client(), NS, "r0", objects.clone(), status.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(publisher.run(Leadership::follow(rx), stop.clone()));

    // A standby writes nothing, and a move recorded meanwhile is not its to report.
    status.record(moved("standby"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(api.events(NS).is_empty());
    assert!(api.floatgroup(NS, "web").expect("object")["status"].is_null());

    // Leader: the status is written; a new move becomes exactly one Event.
    tx.send(leader(true, 7)).expect("send");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = &api.floatgroup(NS, "web").expect("object")["status"];
    assert_eq!(s["owner"], "standby");
    assert_eq!(s["epoch"], 7);
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(s["targets"], json!([{"name": "primary", "health": "down"}]));
    assert!(reasons(&api).is_empty(), "{:?}", api.events(NS));
    status.record(moved("spare"));
    status.set_group(group("spare"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(reasons(&api), ["FailedOver"]);
    let ev = &api.events(NS)[0];
    assert_eq!(ev["involvedObject"]["uid"], "uid-1");
    assert_eq!(ev["reportingInstance"], "r0");
    let s = &api.floatgroup(NS, "web").expect("object")["status"];
    assert_eq!(s["owner"], "spare");
    assert_eq!(s["lastTransition"], "2023-11-14T22:13:20.18Z");

    // Unchanged status: no more writes.
    let writes = api.writes().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        api.writes().len(),
        writes,
        "a status is written only when it changes"
    );

    // A refused spec: one Warning Event however many rounds, the message in status.
    st.get_mut("web").expect("web").rejected = Some("FloatGroup web: spec.floats: bad".into());
    objects.set(st.clone());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(reasons(&api), ["FailedOver", "SpecRejected"]);
    assert_eq!(api.events(NS)[1]["type"], "Warning");
    let s = &api.floatgroup(NS, "web").expect("object")["status"];
    assert_eq!(s["message"], "FloatGroup web: spec.floats: bad");

    // The API server is cut off while the refusal clears: nothing fails, and the status
    // catches up once it answers again (the message is removed, not left behind).
    api.cut_off("", true);
    st.get_mut("web").expect("web").rejected = None;
    objects.set(st);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!task.is_finished(), "the publisher keeps going");
    api.cut_off("", false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = &api.floatgroup(NS, "web").expect("object")["status"];
    assert!(s["message"].is_null(), "{s}");
    assert_eq!(s["lastTransition"], "2023-11-14T22:13:20.18Z");
    stop.cancel();
    task.await.expect("publisher ends on stop");
}
