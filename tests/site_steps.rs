//! A promotion's steps against a recording provider double, under paused time.
//!
//! Site mutations pass the fence (guarantee 2): a leader that loses its lease in the
//! middle of a promotion makes no further provider call, hook call or record write after
//! its fence deadline. The record keeps the interrupted step as running, so the next
//! leader resumes it. And a launch never launches twice: a resumed run uses the
//! instances the old leader recorded, or finds them by the run's tag (RunInstances itself
//! runs against LocalStack in tests/site_cold.rs).

use floatover::config;
use floatover::engine::Command;
use floatover::leader::{LeaderState, Leadership, StoreHealth};
use floatover::metrics::Metrics;
use floatover::model::Epoch;
use floatover::probe::HealthBoard;
use floatover::provider::sites::LaunchRequest;
use floatover::site::promote::{
    Approvals, Executor, RunError, SiteCx, TAG_RUN, TAG_SITE, client_token,
};
use floatover::site::record::{Launched, RunKind, RunRecord, RunState, SiteRuns, StepState};
use floatover::site::store::{MemRunStore, RunStore, update};
use floatover::status::StatusStore;
use floatover_devkit::sitecfg;
use floatover_devkit::siteops::RecordingSiteOps;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// West: warm, a standby to start, a hook after it (it touches MARKER), then the shift.
fn config(marker: &str) -> String {
    sitecfg::west_site(&format!(
        r#"    tier: warm
    instances: [i-0000000000000000c]
    steps:
      - {{ start_instances: {{ budget: 60s }} }}
      - {{ exec: {{ command: [sh, -c, "touch {marker}"] }} }}
      - {{ shift: {{}} }}
"#
    ))
}

/// What a run of `spec`'s west site gets, with this store, provider and leadership.
fn site_cx(
    spec: &Arc<config::Spec>,
    store: Arc<dyn RunStore>,
    ops: Arc<RecordingSiteOps>,
    commands: mpsc::Sender<Command>,
    leadership: Leadership,
) -> SiteCx {
    SiteCx {
        board: Arc::new(HealthBoard::new(spec, Instant::now())),
        spec: spec.clone(),
        store,
        ops,
        commands,
        leadership,
        metrics: Arc::new(Metrics::new()),
        approvals: Arc::new(Approvals::default()),
        status: Arc::new(StatusStore::default()),
    }
}

fn leading(deadline: Instant) -> LeaderState {
    LeaderState {
        identity: "r0".into(),
        is_leader: true,
        epoch: Epoch(1),
        holder: Some("r0".into()),
        holder_api: None,
        store: StoreHealth::default(),
        fence_deadline: Some(deadline),
        members: Vec::new(),
    }
}

struct Run {
    ops: Arc<RecordingSiteOps>,
    store: Arc<MemRunStore>,
    leader: watch::Sender<LeaderState>,
    marker: std::path::PathBuf,
    _dir: tempfile::TempDir,
    commands: mpsc::Receiver<Command>,
}

/// West's promotion with a lease whose fence deadline is `lease` away and never renewed.
async fn setup(lease: Duration) -> (Run, Executor) {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("hook-ran");
    let yaml = config(&marker.display().to_string());
    let spec = Arc::new(config::from_yaml(&yaml).expect("valid config"));
    let ops = Arc::new(RecordingSiteOps::new("pending", vec![]));
    let store = Arc::new(MemRunStore::default());
    let west = spec.sites[1].clone();
    let (runs, _) = update(store.as_ref(), 1, |r: &mut SiteRuns| {
        let _ = r.start(&spec.sites, &west, RunKind::Promotion, "test".into(), 1);
    })
    .await
    .expect("start");
    let id = runs.current.expect("a run").id;
    let (leader, rx) = watch::channel(leading(Instant::now() + lease));
    let (tx, commands) = mpsc::channel(4);
    let cx = site_cx(
        &spec,
        store.clone(),
        ops.clone(),
        tx,
        Leadership::follow(rx),
    );
    let ex = Executor::new(cx, west, 1, id);
    (
        Run {
            ops,
            store,
            leader,
            marker,
            _dir: dir,
            commands,
        },
        ex,
    )
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_runs_out_mid_promotion_stops_calling_at_its_fence() {
    let t0 = Instant::now();
    let lease = Duration::from_secs(5);
    let (mut run, ex) = setup(lease).await;
    let err = ex.run().await.expect_err("the run cannot finish");
    assert!(matches!(err, RunError::Fenced(_)), "{err}");
    // Time goes on: nothing else is called by anyone.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let calls = run.ops.calls();
    let last_allowed = t0 + lease - Duration::from_millis(1500);
    assert_eq!(calls.first().map(|c| c.0), Some("StartInstances"));
    assert!(
        calls.len() >= 5,
        "it polled while the lease lasted: {calls:?}"
    );
    for (op, at) in &calls {
        assert!(
            *at <= last_allowed,
            "{op} at +{:?}, after the last instant a call could still finish under the lease (+{:?})",
            at.duration_since(t0),
            last_allowed.duration_since(t0)
        );
    }
    assert!(!run.marker.exists(), "the hook after it never ran");
    assert!(
        run.commands.try_recv().is_err(),
        "no switchover was asked for"
    );
    let (runs, _) = run.store.load().await.expect("record");
    let cur = runs.current.expect("the run is still the current one");
    assert_eq!(
        cur.steps[0].state,
        StepState::Running,
        "left running for the next leader"
    );
    assert_eq!(cur.steps[1].state, StepState::Pending);
    drop(run.leader);
}

#[tokio::test(start_paused = true)]
async fn a_leader_told_it_lost_the_lease_stops_at_once() {
    let t0 = Instant::now();
    let (run, ex) = setup(Duration::from_secs(3600)).await;
    let task = tokio::spawn(ex.run());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let before = run.ops.calls().len();
    run.leader.send_modify(|s| {
        s.is_leader = false;
        s.holder = Some("r1".into());
    });
    let t_lost = Instant::now();
    let err = task.await.expect("no panic").expect_err("stopped");
    assert!(matches!(err, RunError::Fenced(_)), "{err}");
    tokio::time::sleep(Duration::from_secs(120)).await;
    let calls = run.ops.calls();
    assert!(before >= 2, "{calls:?}");
    assert!(
        calls.iter().all(|(_, at)| *at <= t_lost),
        "a call after the lease was lost: {calls:?} (lost at +{:?})",
        t_lost.duration_since(t0)
    );
    assert!(!run.marker.exists());
}

#[tokio::test(start_paused = true)]
async fn a_run_with_too_little_lease_left_makes_no_call_at_all() {
    let (run, ex) = setup(Duration::from_millis(1000)).await;
    let err = ex.run().await.expect_err("fenced");
    assert!(matches!(err, RunError::Fenced(_)), "{err}");
    assert_eq!(run.ops.calls(), vec![]);
    let (runs, _) = run.store.load().await.expect("record");
    assert_eq!(
        runs.current.expect("run").steps[0].state,
        StepState::Pending,
        "not even the record was written"
    );
}

/// West: cold, two instances launched from a template, then the shift.
fn cold() -> String {
    sitecfg::west_site(
        "    tier: cold\n    launch: { launch_template: web-dr, count: 2, tags: { app: www } }\n    steps: [ { launch: { budget: 20s } }, { shift: {} } ]\n",
    )
}

/// Run west's cold plan with `before` applied to the fresh run record; returns the record
/// and what was launched.
async fn launch_run(
    tagged: Vec<String>,
    before: impl FnOnce(&mut RunRecord),
) -> (RunRecord, Vec<LaunchRequest>) {
    let spec = Arc::new(config::from_yaml(&cold()).expect("valid"));
    let ops = Arc::new(RecordingSiteOps::new("running", tagged));
    let store: Arc<dyn RunStore> = Arc::new(MemRunStore::default());
    let west = spec.sites[1].clone();
    let (runs, _) = update(store.as_ref(), 1, |r: &mut SiteRuns| {
        let _ = r.start(&spec.sites, &west, RunKind::Promotion, "test".into(), 1);
        if let Some(c) = r.current.as_mut() {
            before(c);
        }
    })
    .await
    .expect("start");
    let id = runs.current.expect("run").id;
    let tx = floatover_devkit::siteops::switchovers_done();
    let cx = site_cx(
        &spec,
        store,
        ops.clone(),
        tx,
        Leadership::always_leader("r0"),
    );
    let rec = Executor::new(cx, west, 1, id)
        .run()
        .await
        .expect("finished");
    (rec, ops.launches())
}

#[tokio::test(start_paused = true)]
async fn a_fresh_launch_is_tagged_with_the_run_and_carries_its_token() {
    let (rec, launched) = launch_run(vec![], |_| {}).await;
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(launched.len(), 1);
    let req = &launched[0];
    assert_eq!(req.client_token, client_token(&rec.id, "launch"));
    assert_eq!(req.launch_template.as_deref(), Some("web-dr"));
    assert_eq!(req.count, 2);
    assert_eq!(req.tags.get(TAG_RUN), Some(&rec.id));
    assert_eq!(req.tags.get(TAG_SITE).map(String::as_str), Some("west"));
    assert_eq!(req.tags.get("app").map(String::as_str), Some("www"));
    assert_eq!(
        rec.launched,
        [
            Launched {
                id: "i-0000000000000a001".into(),
                private_ip: Some("10.9.0.1".into()),
                public_ip: None
            },
            Launched {
                id: "i-0000000000000a002".into(),
                private_ip: Some("10.9.0.2".into()),
                public_ip: None
            }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_launch_never_launches_again() {
    // The previous leader recorded its instances, then died.
    let (rec, launched) = launch_run(vec![], |r| {
        r.launched = vec![Launched {
            id: "i-0000000000000b001".into(),
            private_ip: None,
            public_ip: None,
        }];
    })
    .await;
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert!(launched.is_empty(), "launched again: {launched:?}");
    assert_eq!(rec.launched[0].private_ip.as_deref(), Some("10.9.0.1"));

    // It died between RunInstances and the record: the run's tag finds them.
    let (rec, launched) = launch_run(vec!["i-0000000000000c001".into()], |_| {}).await;
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert!(launched.is_empty(), "launched again: {launched:?}");
    assert_eq!(rec.launched[0].id, "i-0000000000000c001");
    assert!(
        rec.steps[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("found from an interrupted launch"),
        "{:?}",
        rec.steps[0]
    );
}
