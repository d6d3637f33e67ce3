//! Mass failover on LocalStack: 100 groups, each a primary and a standby instance and one
//! Elastic IP; every primary's health endpoint turns to 503 at the same instant (a zone
//! outage). The whole controller runs in this process (real probes, the real EC2 provider,
//! the elector with its liveness watchdog).
//!
//! What must hold: every EIP moves; the leader never steps down (one epoch, no call
//! refused by its own fence, no stall reported); reads stay shared (a few per second for
//! all 100 groups, never one per group); the queue shows in status while it drains, and
//! moves that waited say so. How fast, against EC2's floor, is the bench's job
//! (`bench/run --mass`): here the bound is loose, so a busy machine does not fail it.

use floatover::config;
use floatover::metrics::Metrics;
use floatover::provider::aws::AwsProvider;
use floatover_devkit::LocalStack;
use floatover_devkit::inprocess;
use floatover_devkit::massworld::Mass;
use floatover_devkit::replica::metric_sum;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_eips_fail_over_at_once_without_a_step_down() {
    const N: usize = 100;
    let ls = LocalStack::start_or_reuse().expect("LocalStack");
    let tag = format!("mass-{}", std::process::id());
    let world = Mass::seed(&ls.endpoint, "us-east-1", N, &tag)
        .await
        .expect("seed");
    let mut spec = config::from_yaml(&world.config("mass")).expect("config");
    spec.aws.credentials = Some(floatover_devkit::test_credentials());
    let spec = Arc::new(spec);
    let metrics = Arc::new(Metrics::new());
    let provider = Arc::new(
        AwsProvider::connect(&spec.aws, &["us-east-1".to_string()], metrics.clone()).await,
    );
    let ctl = inprocess::start(spec, provider.clone(), metrics.clone())
        .await
        .expect("controller");
    let status = |api: String| async move {
        reqwest::get(format!("{api}/api/v1/status"))
            .await
            .ok()?
            .json::<floatover::api::StatusBody>()
            .await
            .ok()
    };
    // Leading, every float observed on its primary, nothing moved yet.
    let mut ready = false;
    for _ in 0..60 {
        if let Some(s) = status(ctl.api.clone()).await
            && s.leader.is_leader
            && s.groups.len() == N
            && s.groups
                .iter()
                .all(|g| g.owner.as_ref().is_some_and(|o| o.0 == "primary"))
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        ready,
        "the controller leads and sees every EIP on its primary"
    );
    let reads_before = metric_sum(&metrics.encode(), "floatover_observe_reads_total", &|_| {
        true
    });
    let moves_before = provider.mutating_calls();

    let t0 = Instant::now();
    world.outage();
    let mut max_pending = 0;
    let mut took = None;
    while t0.elapsed() < Duration::from_secs(120) {
        if let Some(s) = status(ctl.api.clone()).await {
            assert!(
                s.leader.is_leader,
                "the leader stepped down: {:?}",
                s.leader
            );
            assert_eq!(s.leader.epoch, 1, "a change of leader mid-failover");
            assert!(
                s.warnings.iter().all(|w| !w.contains("no progress")),
                "a stall was reported: {:?}",
                s.warnings
            );
            if let Some(q) = s.queues.iter().find(|q| q.api == "AssociateAddress") {
                max_pending = max_pending.max(q.pending);
            }
        }
        if world.on_standby().await.expect("describe") == N {
            took = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = took.expect("every EIP moved to its standby within 120 s");
    let floor = world.floor();
    println!("{N} EIPs moved in {took:?} (floor {floor:?}); at most {max_pending} moves queued");
    assert!(
        max_pending >= 20,
        "the queue was visible in status while it drained (max {max_pending})"
    );

    let text = metrics.encode();
    let reads = metric_sum(&text, "floatover_observe_reads_total", &|_| true) - reads_before;
    // The read-backs of the whole burst share about one read a second, plus the drift
    // check's (measured: 9 in 11 s for 100 groups); one per group would be 100 a tick.
    let bound = took.as_secs_f64() * 1.5 + 3.0;
    println!("{reads} shared reads during the failover");
    assert!(
        reads <= bound,
        "{reads} shared reads in {took:?} (bound {bound}): reads must not grow with groups"
    );
    let fenced = metric_sum(&text, "floatover_fenced_total", &|_| true);
    assert_eq!(fenced, 0.0, "no call refused by the leader's own fence");
    let mutations = provider.mutating_calls() - moves_before;
    // One AssociateAddress per EIP plus the stamps, batched (one CreateTags for all the
    // floats that get the same tag while a token is awaited).
    assert!(
        mutations < 2 * N as u64,
        "{mutations} mutating calls for {N} moves: stamps are not batched"
    );
    let s = status(ctl.api.clone()).await.expect("status");
    assert!(
        s.audit
            .iter()
            .any(|e| e.token_wait_ms.is_some_and(|w| w > 1_000.0)),
        "moves that waited for a token say so in the audit"
    );
    assert!(
        ctl.lease
            .writes()
            .iter()
            .all(|w| w.record.epoch == 1 && !w.record.released)
    );
    let _ = ctl.stop.send(());
    let _ = ctl.run.await;
}
