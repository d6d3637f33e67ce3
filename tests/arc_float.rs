//! The `routing_control` float end to end: the real binary steers a group through Route 53
//! ARC routing controls, with no Route 53 change API and no AWS emulator involved. No
//! emulator serves ARC, so the cluster is `floatover_devkit::arc::FakeArc` (a test double
//! that speaks ARC's JSON protocol, shares state across its endpoints and enforces a
//! safety rule), reached through the real SDK; the first endpoint of the cluster is a
//! black hole, as a lost region would be.

mod common;

use common::bin;
use floatover::api::StatusBody;
use floatover::leader::{Fence, FenceError};
use floatover::model::{Epoch, Holder, MoveStamp, Reason, TargetId};
use floatover::provider::{FloatProvider, MoveOrder, StampWhen};
use floatover_devkit::arc::{Answer, FakeArc, black_hole};
use floatover_devkit::eventually::eventually;
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, free_port};
use std::time::Duration;

const PANEL: &str = "arn:aws:route53-recovery-control::111122223333:controlpanel/p1";

fn control(name: &str) -> String {
    format!("{PANEL}/routingcontrol/{name}")
}

fn config(port: u16, cluster: &[(String, &str)], east: &str, west: &str) -> String {
    let eps: Vec<String> = cluster
        .iter()
        .map(|(u, r)| format!("{{ endpoint: \"{u}\", region: {r} }}"))
        .collect();
    format!(
        r#"api: {{ listen: "127.0.0.1:{port}", token: "arc-float-test-token" }}
aws: {{ region: us-east-1, call_timeout: 400ms }}
leader: {{ backend: single, identity: r0 }}
probe_defaults: {{ interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }}
resync_interval: 1s
drift_check: 500ms
groups:
  - name: www
    policy: {{ failback_delay: 500ms, min_hold: 0s }}
    targets:
      - {{ name: east, routing_control: "{ce}", priority: 200, probes: [ {{ http: {{ url: "{east}" }} }} ] }}
      - {{ name: west, routing_control: "{cw}", priority: 100, probes: [ {{ http: {{ url: "{west}" }} }} ] }}
    floats:
      - routing_control: {{ control_panel: "{PANEL}", cluster: [{eps}] }}
"#,
        ce = control("east"),
        cw = control("west"),
        eps = eps.join(", "),
    )
}

async fn owner_is(arc: &FakeArc, on: &str, off: &str) -> bool {
    arc.is_on(&control(on)) && !arc.is_on(&control(off))
}

async fn status(r: &Replica) -> Option<StatusBody> {
    r.status_body().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_fails_over_and_back_through_routing_controls() {
    let dir = tempfile::tempdir().expect("dir");
    let mut east = HealthServer::start().await.expect("east");
    let west = HealthServer::start().await.expect("west");
    // Both off at the start: the leader turns the preferred target's control on.
    let mut arc = FakeArc::new(
        PANEL,
        &[(&control("east"), false), (&control("west"), false)],
    )
    .at_least_one_on();
    let hole = black_hole().await.expect("black hole");
    let good = arc.endpoint(Answer::Serve).await.expect("endpoint");
    let port = free_port();
    let cfg = config(
        port,
        &[(hole, "us-east-1"), (good.clone(), "us-west-2")],
        &east.url(),
        &west.url(),
    );
    let r = Replica::spawn(&bin(), dir.path(), "r0", &cfg, port).expect("spawn");

    let first = eventually(Duration::from_secs(20), async || {
        owner_is(&arc, "east", "west").await
    })
    .await;
    assert!(
        first.is_some(),
        "east never got the control: {:?}",
        arc.log()
    );

    // East dies: west's control on and east's off, in one update, past the black hole.
    east.stop().await;
    let moved = eventually(Duration::from_secs(10), async || {
        owner_is(&arc, "west", "east").await
    })
    .await;
    assert!(moved.is_some(), "west never got the control");
    eprintln!("failover through routing controls after {moved:?}");
    // Status follows the provider's view (the next observation).
    let seen_west = eventually(Duration::from_secs(5), async || {
        status(&r).await.is_some_and(|b| {
            b.groups[0].floats[0].id == "arc:p1"
                && b.groups[0].floats[0].holder == Holder::Target(TargetId("west".into()))
        })
    })
    .await;
    assert!(
        seen_west.is_some(),
        "status never showed west holding arc:p1"
    );
    let body = status(&r).await.expect("status");
    let failover = body
        .audit
        .iter()
        .find(|e| e.reason == Reason::Failover && e.ok)
        .expect("a failover in the audit");
    assert_eq!(failover.float, "arc:p1");
    let last_update = arc
        .log()
        .into_iter()
        .rfind(|c| c.target.ends_with("UpdateRoutingControlStates"))
        .expect("an update");
    assert_eq!(
        last_update.endpoint, 0,
        "the update reached the good endpoint"
    );
    let entries = last_update.body["UpdateRoutingControlStateEntries"]
        .as_array()
        .map(Vec::len);
    assert_eq!(
        entries,
        Some(2),
        "one update: west on and east off together"
    );

    // A person turns east on behind the controller's back: two owners is drift, and the
    // leader turns east off again (west is the owner while east is down).
    arc.set(&control("east"), true);
    let reverted = eventually(Duration::from_secs(10), async || {
        owner_is(&arc, "west", "east").await
    })
    .await;
    assert!(reverted.is_some(), "drift was not reverted");

    // East is back, but the cluster refuses the change by a safety rule: the failback
    // fails in ARC's words, and nothing else changes.
    arc.answer(0, Answer::Refuse("at-least-one-on".into()));
    east.restart().await.expect("restart east");
    let refused = eventually(Duration::from_secs(10), async || {
        status(&r).await.is_some_and(|b| {
            b.audit.iter().any(|e| {
                !e.ok
                    && e.error.as_deref()
                        == Some("UpdateRoutingControlStates in us-west-2: ConflictException: The update would violate safety rule at-least-one-on")
            })
        })
    })
    .await;
    assert!(
        refused.is_some(),
        "the refusal is not in the audit: {:?}",
        status(&r).await.map(|b| (b.audit, b.groups))
    );
    assert!(
        owner_is(&arc, "west", "east").await,
        "a refusal changes nothing"
    );

    // The rule lifted: the failback goes through.
    arc.answer(0, Answer::Serve);
    let back = eventually(Duration::from_secs(10), async || {
        owner_is(&arc, "east", "west").await
    })
    .await;
    assert!(back.is_some(), "no failback once the cluster accepted it");
    drop(r);
}

struct Closed;

impl Fence for Closed {
    fn permit(&self, _: Epoch, _: Duration) -> Result<(), FenceError> {
        Err(FenceError::NotLeader)
    }
}

/// A deposed leader's move never reaches the cluster: the fence is asked before each
/// endpoint's attempt. (ARC has no conditional write, so this is the only guard.)
#[tokio::test]
async fn a_fenced_move_sends_nothing() {
    let mut arc = FakeArc::new(
        PANEL,
        &[(&control("east"), true), (&control("west"), false)],
    );
    let good = arc.endpoint(Answer::Serve).await.expect("endpoint");
    let spec = floatover::config::from_yaml(&config(
        1,
        &[(good, "us-west-2")],
        "http://127.0.0.1:1/",
        "http://127.0.0.1:1/",
    ))
    .expect("valid config");
    let mut aws = spec.aws.clone();
    aws.credentials = Some(floatover_devkit::test_credentials());
    let provider = floatover::provider::aws::AwsProvider::connect(
        &aws,
        &[],
        std::sync::Arc::new(floatover::metrics::Metrics::new()),
    )
    .await;
    let g = &spec.groups[0];
    let order = MoveOrder {
        float: g.floats[0].clone(),
        to: g.targets[1].bindings.clone(),
        from: None,
        stamp: MoveStamp {
            epoch: Epoch(2),
            reason: Reason::Failover,
            target: TargetId("west".into()),
        },
        stamp_when: StampWhen::After,
        strict: None,
        turn: Default::default(),
    };
    let err = provider
        .move_float(&order, &Closed)
        .await
        .expect_err("fenced");
    assert_eq!(
        err.to_string(),
        "refused by the fence before UpdateRoutingControlStates: not the leader"
    );
    assert!(arc.log().is_empty(), "no call reached the cluster");
    assert!(owner_is(&arc, "east", "west").await);

    // The same move with an open fence observes and applies.
    let moved = provider
        .move_float(&order, &floatover::leader::NoFence)
        .await
        .expect("moved");
    assert_eq!(moved.calls_to_move, 1);
    assert!(owner_is(&arc, "west", "east").await);
    let seen = provider.observe(&g.floats, &[]).await.expect("observed");
    let holder = seen.get("arc:p1").and_then(|o| o.holder.clone());
    assert_eq!(
        holder,
        Some(floatover::provider::Attached::Arc(control("west")))
    );
}
