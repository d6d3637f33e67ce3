//! Route 53 ARC routing controls through the real SDK: no emulator serves ARC, so the
//! cluster's endpoints are played in the test by a small server that speaks ARC's JSON
//! protocol (and records what it was asked) and by a black hole (accepts, never answers).
//! The update goes to each endpoint in turn until one applies it; a safety rule's refusal
//! ends it at once, in words; the fence is asked before each call.

use floatover::leader::FenceError;
use floatover::provider::aws::arc::{ArcError, ClusterEndpoint, set_routing_controls};
use floatover_devkit::arc::{Answer, FakeArc, black_hole};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PANEL: &str = "arn:aws:route53-recovery-control::111122223333:controlpanel/abc";
const ON: &str =
    "arn:aws:route53-recovery-control::111122223333:controlpanel/abc/routingcontrol/west";
const OFF: &str =
    "arn:aws:route53-recovery-control::111122223333:controlpanel/abc/routingcontrol/east";

/// One endpoint of its own cluster (east on, west off) answering `answer`.
async fn fake(answer: Answer) -> (FakeArc, String) {
    let mut c = FakeArc::new(PANEL, &[(ON, false), (OFF, true)]);
    let url = c.endpoint(answer).await.expect("endpoint");
    (c, url)
}

fn safety_rule() -> Answer {
    Answer::Refuse("at-least-one-on".into())
}

fn ep(url: &str, region: &str) -> ClusterEndpoint {
    ClusterEndpoint {
        url: url.into(),
        region: region.into(),
    }
}

const CALL: Duration = Duration::from_millis(400);

async fn set(
    cluster: &[ClusterEndpoint],
    gate: &(dyn Fn() -> Result<(), FenceError> + Sync),
) -> Result<String, ArcError> {
    set_routing_controls(
        cluster,
        &[ON.to_string()],
        &[OFF.to_string()],
        &[],
        CALL,
        Some(floatover_devkit::test_credentials()),
        gate,
    )
    .await
}

fn count(f: &FakeArc) -> usize {
    f.log().len()
}

#[tokio::test]
async fn the_update_goes_round_the_cluster_until_an_endpoint_applies_it() {
    let hole = black_hole().await.expect("black hole");
    let (busy, busy_url) = fake(Answer::Unavailable).await;
    let (good, good_url) = fake(Answer::Serve).await;
    let cluster = [
        ep(&hole, "us-east-1"),
        ep(&busy_url, "us-west-2"),
        ep(&good_url, "eu-west-1"),
    ];
    let gates = std::sync::atomic::AtomicU32::new(0);
    let t = Instant::now();
    let used = set(&cluster, &|| {
        gates.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    })
    .await
    .expect("applied");
    let took = t.elapsed();
    assert_eq!(used, good_url);
    assert_eq!(
        gates.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "the fence before each call"
    );
    // The black hole costs one call timeout, no more.
    assert!(
        took < CALL * 2 + Duration::from_millis(500),
        "took {took:?}"
    );
    assert_eq!(count(&busy), 1);
    let seen = good.log();
    assert_eq!(seen.len(), 1);
    let (target, body) = (&seen[0].target, &seen[0].body);
    assert_eq!(target, "ToggleCustomerAPI.UpdateRoutingControlStates");
    let entries = body["UpdateRoutingControlStateEntries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let states: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["RoutingControlArn"].as_str().unwrap_or("").to_string(),
                e["RoutingControlState"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (ON.to_string(), "On".to_string()),
            (OFF.to_string(), "Off".to_string())
        ]
    );
}

#[tokio::test]
async fn a_safety_rule_refusal_ends_it_in_words_and_no_other_endpoint_is_asked() {
    let (_refuses, refuses_url) = fake(safety_rule()).await;
    let (good, good_url) = fake(Answer::Serve).await;
    let cluster = [ep(&refuses_url, "us-west-2"), ep(&good_url, "eu-west-1")];
    let err = set(&cluster, &|| Ok(())).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "UpdateRoutingControlStates in us-west-2: ConflictException: The update would violate safety rule at-least-one-on"
    );
    assert_eq!(count(&good), 0, "another endpoint would refuse it too");
}

#[tokio::test]
async fn no_endpoint_answering_names_each_and_a_closed_fence_calls_none() {
    let hole = black_hole().await.expect("black hole");
    let (_busy, busy_url) = fake(Answer::Unavailable).await;
    let cluster = [ep(&hole, "us-east-1"), ep(&busy_url, "us-west-2")];
    let err = set(&cluster, &|| Ok(())).await.expect_err("none answered");
    let text = err.to_string();
    assert!(
        text.starts_with("UpdateRoutingControlStates: no ARC cluster endpoint answered: "),
        "{text}"
    );
    assert!(
        text.contains("(us-east-1): Timeout")
            && text.contains("(us-west-2): EndpointTemporarilyUnavailableException"),
        "{text}"
    );

    let (good, good_url) = fake(Answer::Serve).await;
    let err = set(&[ep(&good_url, "eu-west-1")], &|| {
        Err(FenceError::NotLeader)
    })
    .await
    .expect_err("fenced");
    assert_eq!(err, ArcError::Fenced(FenceError::NotLeader));
    assert_eq!(count(&good), 0, "no call after the fence refused");
}

/// West's promotion with one step, `routing_controls` over `cluster`: the run's outcome
/// and its step record.
async fn promote_with(
    cluster: &[(&str, &str)],
) -> (
    Result<(), floatover::site::promote::RunError>,
    floatover::site::record::StepRecord,
) {
    use floatover::site::promote::{Approvals, Executor, SiteCx};
    use floatover::site::record::{RunKind, SiteRuns};
    use floatover::site::store::{MemRunStore, RunStore, update};
    let eps: Vec<String> = cluster
        .iter()
        .map(|(u, r)| format!("{{ endpoint: \"{u}\", region: {r} }}"))
        .collect();
    let yaml = floatover_devkit::sitecfg::west_site(&format!(
        "    tier: hot\n    steps:\n      - {{ routing_controls: {{ cluster: [{}], on: [\"{ON}\"], off: [\"{OFF}\"], budget: 3s }} }}\n",
        eps.join(", ")
    ));
    let mut spec = floatover::config::from_yaml(&yaml).expect("valid config");
    spec.aws.call_timeout = CALL;
    spec.aws.credentials = Some(floatover_devkit::test_credentials());
    let spec = Arc::new(spec);
    let store = Arc::new(MemRunStore::default());
    let west = spec.sites[1].clone();
    let (runs, _) = update(store.as_ref(), 1, |r: &mut SiteRuns| {
        let _ = r.start(&spec.sites, &west, RunKind::Promotion, "test".into(), 1);
    })
    .await
    .expect("start");
    let id = runs.current.expect("a run").id;
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    let cx = SiteCx {
        board: Arc::new(floatover::probe::HealthBoard::new(
            &spec,
            tokio::time::Instant::now(),
        )),
        spec: spec.clone(),
        store: store.clone(),
        ops: Arc::new(floatover_devkit::siteops::RecordingSiteOps::new(
            "running",
            vec![],
        )),
        commands: tx,
        leadership: floatover::leader::Leadership::always_leader("r0"),
        metrics: Arc::new(floatover::metrics::Metrics::new()),
        approvals: Arc::new(Approvals::default()),
        status: Arc::new(floatover::status::StatusStore::default()),
    };
    let outcome = Executor::new(cx, west, 1, id).run().await.map(|_| ());
    let (runs, _) = store.load().await.expect("record");
    let run = runs
        .current
        .or_else(|| runs.history.last().cloned())
        .expect("the run");
    (outcome, run.steps[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_step_sets_the_controls_and_records_where() {
    let hole = black_hole().await.expect("black hole");
    let (good, good_url) = fake(Answer::Serve).await;
    let (outcome, step) = promote_with(&[(&hole, "us-east-1"), (&good_url, "us-west-2")]).await;
    assert!(outcome.is_ok(), "{outcome:?} {step:?}");
    assert_eq!(
        step.detail.as_deref(),
        Some(format!("1 on, 1 off through {good_url}").as_str())
    );
    assert_eq!(count(&good), 1);
    assert!(good.is_on(ON) && !good.is_on(OFF), "west on, east off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_step_refused_by_a_safety_rule_fails_in_words() {
    let (refuses, refuses_url) = fake(safety_rule()).await;
    let (outcome, step) = promote_with(&[(&refuses_url, "us-west-2")]).await;
    assert!(
        outcome.is_ok(),
        "the run ends (failed, in its record): {outcome:?}"
    );
    assert_eq!(
        step.state,
        floatover::site::record::StepState::Failed,
        "{step:?}"
    );
    assert_eq!(
        step.error.as_deref(),
        Some(
            "UpdateRoutingControlStates in us-west-2: ConflictException: The update would violate safety rule at-least-one-on"
        )
    );
    assert_eq!(count(&refuses), 1, "a refusal is not retried");
}
