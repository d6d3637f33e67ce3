//! The RPO gate and the database step against a recording provider double, under paused
//! time: an automatic promotion whose replication lag is over the site's RPO waits for a
//! person (the wait names the lag and the RPO), goes on by itself when the lag falls back
//! within it, and fails in words when nobody approves; a promotion a person asked for goes
//! on and says so; the lag at cut-over is kept in the record; a replica that is already
//! standalone is not promoted again. (RDS, CloudWatch and ECS run for real on moto in
//! tests/site_data.rs.)

use floatover::config;
use floatover::leader::Leadership;
use floatover::metrics::Metrics;
use floatover::probe::HealthBoard;
use floatover::provider::sites::DbView;
use floatover::site::promote::{Approvals, Executor, SiteCx};
use floatover::site::record::{RunKind, RunRecord, RunState, SiteRuns, StepState};
use floatover::site::store::{MemRunStore, RunStore, update};
use floatover::status::StatusStore;
use floatover_devkit::sitecfg;
use floatover_devkit::siteops::RecordingSiteOps;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const AUTOMATIC: &str = "automatic: site east below quorum (0 of 1 target(s) up, 1 needed) for 1s";
const MANUAL: &str = "requested through the API";

fn config() -> String {
    sitecfg::west_site(
        r#"    tier: hot
    rpo: 30s
    replication_lag: { rds: { instance: db-west } }
    steps:
      - { promote_replica: { instance: db-west, budget: 60s } }
      - { shift: {} }
"#,
    )
}

struct Harness {
    ops: Arc<RecordingSiteOps>,
    store: Arc<MemRunStore>,
    approvals: Arc<Approvals>,
    run: tokio::task::JoinHandle<RunRecord>,
}

/// West's run started by `trigger`, with CloudWatch answering `lag` seconds and db-west a
/// replica of db-east (or standalone).
async fn start(trigger: &str, lag: Option<f64>, replica: bool) -> Harness {
    let spec = Arc::new(config::from_yaml(&config()).expect("valid config"));
    let ops = Arc::new(RecordingSiteOps::new("running", vec![]));
    ops.set_lag(lag);
    ops.set_db(Some(DbView {
        status: "available".into(),
        replica_of: replica.then(|| "db-east".to_string()),
    }));
    let store = Arc::new(MemRunStore::default());
    let west = spec.sites[1].clone();
    let (runs, _) = update(store.as_ref(), 1, |r: &mut SiteRuns| {
        let _ = r.start(&spec.sites, &west, RunKind::Promotion, trigger.into(), 1);
    })
    .await
    .expect("start");
    let id = runs.current.expect("a run").id;
    let tx = floatover_devkit::siteops::switchovers_done();
    let approvals = Arc::new(Approvals::default());
    let cx = SiteCx {
        board: Arc::new(HealthBoard::new(&spec, Instant::now())),
        spec: spec.clone(),
        store: store.clone(),
        ops: ops.clone(),
        commands: tx,
        leadership: Leadership::always_leader("r0"),
        metrics: Arc::new(Metrics::new()),
        approvals: approvals.clone(),
        status: Arc::new(StatusStore::default()),
    };
    let run = tokio::spawn(async move {
        Executor::new(cx, west, 1, id)
            .run()
            .await
            .expect("the run ends")
    });
    Harness {
        ops,
        store,
        approvals,
        run,
    }
}

fn promotes(ops: &RecordingSiteOps) -> usize {
    ops.calls()
        .iter()
        .filter(|(op, _)| *op == "PromoteReadReplica")
        .count()
}

impl Harness {
    async fn current(&self) -> Option<RunRecord> {
        self.store.load().await.ok().and_then(|(r, _)| r.current)
    }
}

#[tokio::test(start_paused = true)]
async fn an_automatic_promotion_over_the_rpo_waits_for_approval_naming_the_lag() {
    let h = start(AUTOMATIC, Some(42.0), true).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let cur = h.current().await.expect("still running");
    let gate = &cur.steps[0];
    assert_eq!(
        (gate.name.as_str(), gate.kind.as_str()),
        ("rpo", "rpo_gate")
    );
    assert_eq!(gate.state, StepState::Running);
    assert_eq!(
        gate.detail.as_deref(),
        Some(
            "replication lag 42.0 s is over the RPO of 30s: waiting for approval (floatover promote west --approve); writes not yet replicated may be lost"
        )
    );
    assert_eq!(promotes(&h.ops), 0, "nothing promoted while the gate waits");
    assert_eq!(cur.rpo_ms, Some(30_000));

    h.approvals.approve("west");
    let rec = h.run.await.expect("no panic");
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(
        rec.steps[0].detail.as_deref(),
        Some("replication lag 42.0 s is over the RPO of 30s; approved by a person")
    );
    assert_eq!(rec.approved, ["west"]);
    assert_eq!(promotes(&h.ops), 1);
    assert_eq!(rec.lag_at_cutover_ms, Some(42_000), "the measured RPO");
}

#[tokio::test(start_paused = true)]
async fn a_lag_within_the_rpo_goes_straight_on_and_is_kept_at_cut_over() {
    let h = start(AUTOMATIC, Some(3.0), true).await;
    let rec = h.run.await.expect("no panic");
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(
        rec.steps[0].detail.as_deref(),
        Some("replication lag 3.0 s within the RPO of 30s")
    );
    assert!(rec.approved.is_empty());
    assert_eq!(rec.lag_at_cutover_ms, Some(3_000));
    assert_eq!(
        rec.steps[1].detail.as_deref(),
        Some("db-west promoted and available")
    );
}

#[tokio::test(start_paused = true)]
async fn a_promotion_a_person_asked_for_goes_on_and_says_so() {
    let h = start(MANUAL, Some(42.0), true).await;
    let rec = h.run.await.expect("no panic");
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(
        rec.steps[0].detail.as_deref(),
        Some("replication lag 42.0 s is over the RPO of 30s; promoted by a person anyway")
    );
}

#[tokio::test(start_paused = true)]
async fn a_lag_that_falls_back_within_the_rpo_releases_the_gate_by_itself() {
    let h = start(AUTOMATIC, Some(42.0), true).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(promotes(&h.ops), 0);
    h.ops.set_lag(Some(12.0));
    let t = Instant::now();
    let rec = h.run.await.expect("no panic");
    assert!(t.elapsed() <= Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(
        rec.steps[0].detail.as_deref(),
        Some("replication lag 12.0 s within the RPO of 30s")
    );
    assert!(rec.approved.is_empty(), "nobody had to approve");
}

#[tokio::test(start_paused = true)]
async fn no_approval_within_the_gate_fails_the_run_in_words() {
    let h = start(AUTOMATIC, None, true).await;
    let rec = h.run.await.expect("no panic");
    assert_eq!(rec.state, RunState::Failed);
    assert_eq!(
        rec.steps[0].error.as_deref(),
        Some(
            "replication lag unknown (no ReplicaLag datapoint for db-west in the last 10 minutes); the RPO is 30s, and no approval within 1h"
        )
    );
    assert_eq!(promotes(&h.ops), 0, "the database was never promoted");
}

#[tokio::test(start_paused = true)]
async fn a_replica_already_standalone_is_not_promoted_again() {
    let h = start(MANUAL, Some(1.0), false).await;
    let rec = h.run.await.expect("no panic");
    assert_eq!(rec.state, RunState::Succeeded, "{rec:?}");
    assert_eq!(promotes(&h.ops), 0);
    assert_eq!(
        rec.steps[1].detail.as_deref(),
        Some("db-west was already standalone and available (not promoted again)")
    );
}
