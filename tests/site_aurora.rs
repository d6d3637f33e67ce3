//! `promote_cluster` on moto (through `moto/server.py`, which answers the Aurora global
//! cluster calls moto 5.2.5 does not): a run's executor with the real AWS operations,
//! RDS reached through a fault proxy so that us-east-1 (the writer's region) can be lost.
//! - the writer answers: a planned switchover (nothing lost);
//! - the writer's region is black-holed: the step waits for a person before it detaches
//!   the secondary (writes not yet replicated are lost), says so, and detaches once
//!   approved; with `allow_data_loss: true` it detaches by itself;
//! - a step run again (a resumed run) promotes nothing twice.

use floatover::config;
use floatover::leader::Leadership;
use floatover::metrics::Metrics;
use floatover::probe::HealthBoard;
use floatover::provider::aws::sites::AwsSiteOps;
use floatover::site::promote::{Approvals, Executor, SiteCx};
use floatover::site::record::{RunKind, RunRecord, RunState, SiteRuns};
use floatover::site::store::{MemRunStore, update};
use floatover::status::StatusStore;
use floatover_devkit::Moto;
use floatover_devkit::dataworld::{AuroraWorld, seed_aurora};
use floatover_devkit::faultproxy::{FaultProxy, Mode, Ops, Rule};
use floatover_devkit::sitecfg;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct World {
    a: AuroraWorld,
    proxy: FaultProxy,
    _moto: Moto,
}

async fn world() -> World {
    let moto = Moto::start_or_reuse().expect("moto");
    let a = seed_aurora(&moto.endpoint, &format!("{}", rand::random::<u32>()))
        .await
        .expect("seed aurora");
    let proxy = FaultProxy::start(&moto.endpoint).await.expect("proxy");
    World {
        a,
        proxy,
        _moto: moto,
    }
}

/// West's run of `[promote_cluster <step>, shift]`, to its end or `timeout`; the
/// approvals are the test's to give.
async fn run(
    w: &World,
    step: &str,
    approvals: Arc<Approvals>,
) -> tokio::task::JoinHandle<RunRecord> {
    let yaml = sitecfg::west_site(&format!(
        "    tier: hot\n    aurora: {{ global_cluster: {}, cluster: {} }}\n    steps:\n      - {{ promote_cluster: {{ {step} budget: 20s }} }}\n      - {{ shift: {{}} }}\n",
        w.a.global, w.a.secondary
    ))
    .replace(
        "aws: { region: us-east-1 }",
        &format!(
            "aws: {{ region: us-east-1, call_timeout: 1s, max_attempts: 1, service_endpoints: {{ rds: \"{}\" }} }}",
            w.proxy.url
        ),
    );
    let mut spec = config::from_yaml(&yaml).expect("valid config");
    spec.aws.credentials = Some(floatover_devkit::test_credentials());
    let spec = Arc::new(spec);
    let store = Arc::new(MemRunStore::default());
    let west = spec.sites[1].clone();
    let (runs, _) = update(store.as_ref(), 1, |r: &mut SiteRuns| {
        let _ = r.start(
            &spec.sites,
            &west,
            RunKind::Promotion,
            "automatic: test".into(),
            1,
        );
    })
    .await
    .expect("start");
    let id = runs.current.expect("a run").id;
    let tx = floatover_devkit::siteops::switchovers_done();
    let metrics = Arc::new(Metrics::new());
    let cx = SiteCx {
        board: Arc::new(HealthBoard::new(&spec, Instant::now())),
        spec: spec.clone(),
        store: store.clone(),
        ops: Arc::new(AwsSiteOps::new(&spec.aws, metrics.clone())),
        commands: tx,
        leadership: Leadership::always_leader("r0"),
        metrics,
        approvals,
        status: Arc::new(StatusStore::default()),
    };
    tokio::spawn(async move {
        Executor::new(cx, west, 1, id)
            .run()
            .await
            .expect("the run ends")
    })
}

fn lose_east(p: &FaultProxy) {
    p.set(vec![Rule {
        ops: Ops::All,
        region: Some("us-east-1".into()),
        mode: Mode::Blackhole,
    }]);
}

fn region_of_writer(m: &[(String, bool)]) -> Option<&str> {
    m.iter().find(|(_, w)| *w).map(|(r, _)| r.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_answering_means_a_planned_switchover() {
    let w = world().await;
    let rec = run(&w, "", Arc::default()).await.await.expect("no panic");
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(
        rec.steps[0].detail.as_deref(),
        Some(
            format!(
                "switched over: {} is the writer of {} (planned, from {}: nothing lost)",
                w.a.secondary, w.a.global, w.a.writer
            )
            .as_str()
        )
    );
    let members = w.a.members().await;
    assert_eq!(region_of_writer(&members), Some("us-west-2"), "{members:?}");
    assert_eq!(members.len(), 2, "still one global cluster: {members:?}");

    // Run again (as a resumed run would): nothing is promoted twice.
    let again = run(&w, "", Arc::default()).await.await.expect("no panic");
    assert_eq!(
        again.steps[0].detail.as_deref(),
        Some(
            format!(
                "{} is already the writer of {} (not promoted again)",
                w.a.secondary, w.a.global
            )
            .as_str()
        )
    );
    let switchovers = w
        .proxy
        .log()
        .iter()
        .filter(|s| s.op == "SwitchoverGlobalCluster")
        .count();
    assert_eq!(switchovers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_gone_detaches_only_once_a_person_approves() {
    let w = world().await;
    lose_east(&w.proxy);
    let approvals = Arc::new(Approvals::default());
    let task = run(&w, "", approvals.clone()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!task.is_finished(), "it waits for a person");
    let members = w.a.members().await;
    assert_eq!(members.len(), 2, "nothing detached yet: {members:?}");
    assert!(
        !w.proxy
            .log()
            .iter()
            .any(|s| s.op == "RemoveFromGlobalCluster"),
        "no RemoveFromGlobalCluster before the approval"
    );
    approvals.approve("west");
    let rec = task.await.expect("no panic");
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(
        rec.steps[0].detail.as_deref(),
        Some(
            format!(
                "detached from {g}: {s} is a standalone writer (unplanned, approved by a person; writes not yet replicated from {wr} are lost)",
                g = w.a.global,
                s = w.a.secondary,
                wr = w.a.writer
            )
            .as_str()
        )
    );
    assert_eq!(rec.approved, ["west"]);
    let members = w.a.members().await;
    assert!(
        members.iter().all(|(r, _)| r != "us-west-2"),
        "west left the global cluster: {members:?}"
    );

    // Run again: already standalone, not detached twice.
    let again = run(&w, "", Arc::default()).await.await.expect("no panic");
    assert_eq!(
        again.steps[0].detail.as_deref(),
        Some(
            format!(
                "{} is already standalone, outside {} (not promoted again)",
                w.a.secondary, w.a.global
            )
            .as_str()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_data_loss_detaches_without_waiting() {
    let w = world().await;
    lose_east(&w.proxy);
    let rec = run(
        &w,
        "mode: unplanned, allow_data_loss: true,",
        Arc::default(),
    )
    .await
    .await
    .expect("no panic");
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert!(
        rec.steps[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("unplanned, allowed by allow_data_loss")),
        "{:?}",
        rec.steps[0].detail
    );
    assert!(rec.approved.is_empty());
}
