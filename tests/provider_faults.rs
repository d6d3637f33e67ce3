//! Fault tests of the provider side: a stale leader's late write (standard and strict
//! fencing), out-of-band changes, a blackholed region, sustained throttling. Real
//! processes, LocalStack and a fault proxy per replica and service; each ends with the
//! invariant checks that apply.
//!
//! Timings (scenario defaults): probes 200 ms × fall 3, lease 4 s / renew deadline 2.5 s /
//! retry 0.5 s, call timeout 1.5 s, drift check 2 s.

mod common;

use common::faults::*;
use common::{Env, Proxies, now_ms};
use floatover_devkit::faultproxy::{Mode, Ops, Rule};
use floatover_devkit::invariants;
use floatover_devkit::replica::{Floats, Scenario, Stderr, metric_sum};
use std::time::{Duration, Instant};

/// Partition the leader from the lease store and hold its mutating calls, kill the
/// primary (its move is held), then kill the standby too so the successor picks the spare;
/// finally release the old leader's held write so it lands late.
async fn stale_write(fencing: &'static str) -> (Env, usize, usize, Proxies, Proxies, u64) {
    let sc = Scenario {
        fencing,
        min_hold_ms: 0,
        ..Default::default()
    };
    let mut env = Env::new(3, sc, "stale").await;
    let (a, pa, b, pb) = two_replicas(&mut env, &[]).await;
    pa.ec2.set(vec![Rule {
        ops: Ops::Mutating,
        region: None,
        mode: Mode::Hold,
    }]);
    pa.s3.set_all(Mode::Blackhole);
    env.health[0].stop().await;
    let held = env
        .until(Duration::from_secs(5), || async {
            pa.ec2
                .log()
                .iter()
                .any(|s| s.is_mutating() && s.forwarded_ms.is_none())
        })
        .await;
    assert!(held.is_some(), "the old leader's move is held at the proxy");
    env.health[1].stop().await;
    assert!(
        env.until(Duration::from_secs(10), || env.leads(b))
            .await
            .is_some(),
        "successor leads"
    );
    assert!(
        env.wait_eip_on(2, Duration::from_secs(5)).await.is_some(),
        "successor moved to the spare"
    );
    let released = now_ms();
    pa.ec2.release();
    (env, a, b, pa, pb, released)
}

/// (6a) Standard fencing: the late write lands, and the drift check finds and reverts it
/// within drift_check (+ a call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leaders_late_write_is_found_and_reverted() {
    let (env, a, b, pa, pb, released) = stale_write("standard").await;
    // The late write reached EC2 and was accepted (seen at the proxy: the successor may
    // revert it within milliseconds, faster than anyone could poll for it).
    let landed = env
        .until(Duration::from_secs(3), || async {
            pa.ec2.log().iter().any(|s| {
                s.op == "AssociateAddress"
                    && s.status == Some(200)
                    && s.forwarded_ms.is_some_and(|f| f >= released)
            })
        })
        .await;
    assert!(
        landed.is_some(),
        "the stale write landed (it is what this test corrects)"
    );
    let landed_ms = pa
        .ec2
        .log()
        .iter()
        .filter(|s| s.op == "AssociateAddress" && s.status == Some(200))
        .filter_map(|s| s.answered_ms)
        .filter(|t| *t >= released)
        .min()
        .unwrap_or(released);
    let fixed = env
        .until(Duration::from_secs(5), || async {
            env.replicas[b].status().await.is_some_and(|s| {
                s["audit"].as_array().into_iter().flatten().any(|e| {
                    e["reason"] == "drift" && e["started_unix_ms"].as_u64() >= Some(landed_ms)
                })
            })
        })
        .await;
    if fixed.is_none() {
        env.dump_logs();
    }
    assert!(fixed.is_some(), "the successor found the stale write");
    let found_ms = env.replicas[b].status().await.and_then(|s| {
        s["audit"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == "drift")
            .filter_map(|e| e["started_unix_ms"].as_u64())
            .find(|t| *t >= landed_ms)
    });
    let took = found_ms.unwrap_or(u64::MAX).saturating_sub(landed_ms);
    eprintln!("stale write found {took} ms after it landed");
    assert!(took <= 2_000 + 1_500 + 250, "{took} ms");
    assert!(
        env.wait_eip_on(2, Duration::from_secs(3)).await.is_some(),
        "reverted to the spare"
    );
    let drift = env.replicas[b]
        .audit_events()
        .into_iter()
        .any(|e| e["reason"] == "drift");
    assert!(drift, "the successor audited the drift");
    // Apart from the held write (sent inside its fence), the fence held.
    for (i, p) in [(a, &pa), (b, &pb)] {
        invariants::within_fence(
            &p.ec2.log(),
            &p.s3.log(),
            RENEW,
            CALL,
            Duration::from_millis(100),
        )
        .unwrap_or_else(|e| panic!("replica {i}: {e}"));
    }
}

/// (6b) Strict fencing: EC2 itself refuses the late write (it names an association that
/// no longer exists); the float never leaves the spare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_fencing_makes_the_provider_refuse_a_late_write() {
    let (env, a, b, pa, pb, released) = stale_write("strict").await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            env.eip_holder().await.as_deref(),
            Some(env.instance(2).as_str()),
            "the late write must not land"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late: Vec<_> = pa
        .ec2
        .log()
        .into_iter()
        .filter(|s| s.is_mutating() && s.forwarded_ms.is_some_and(|f| f >= released))
        .collect();
    assert!(!late.is_empty(), "the held call was forwarded");
    assert!(
        late.iter().all(|s| s.status != Some(200)),
        "and refused by EC2: {late:?}"
    );
    let _ = (a, b, pb);
}

/// (7) A person moves the EIP by hand: found within drift_check, audited as drift with
/// what was found, and reverted (default); with on_drift: adopt, left where it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_changes_are_audited_and_follow_on_drift() {
    for on_drift in ["revert", "adopt"] {
        let sc = Scenario {
            s3_lease: false,
            on_drift,
            ..Default::default()
        };
        let mut env = Env::new(2, sc, "drift").await;
        env.spawn_replica();
        assert!(env.wait_eip_on(0, Duration::from_secs(20)).await.is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.clients
            .ec2
            .associate_address()
            .allocation_id(&env.world.allocation_id)
            .instance_id(env.instance(1))
            .allow_reassociation(true)
            .send()
            .await
            .expect("manual move");
        let audited = env
            .until(Duration::from_secs(4), || async {
                env.replicas[0].status().await.is_some_and(|s| {
                    s["audit"].as_array().into_iter().flatten().any(|e| {
                        e["reason"] == "drift"
                            && e["detail"]
                                .as_str()
                                .is_some_and(|d| d.contains("found on standby"))
                    })
                })
            })
            .await;
        assert!(
            audited.is_some_and(|d| d <= Duration::from_millis(2_500)),
            "{on_drift}: drift found in {audited:?}"
        );
        if on_drift == "revert" {
            assert!(
                env.wait_eip_on(0, Duration::from_secs(2)).await.is_some(),
                "reverted"
            );
        } else {
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(env.eip_holder().await, Some(env.instance(1)), "adopted");
        }
    }
}

/// (8) One group's EC2 endpoint is black-holed (its region); another group still fails
/// over within its usual budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_region_does_not_delay_another_group() {
    use floatover_devkit::health::HealthServer;
    use floatover_devkit::seed;
    let mut sc = Scenario::default();
    let budget =
        Duration::from_millis(sc.interval_ms * u64::from(sc.fall)) + Duration::from_secs(1);
    let mut env = Env::new(2, Scenario::default(), "region").await;
    let west = seed::world(
        &env.ls.endpoint,
        "us-west-2",
        2,
        &format!("west-{}", std::process::id()),
    )
    .await
    .expect("seed west");
    let h = HealthServer::start().await.expect("health");
    sc.extra_yaml = format!(
        "  - name: west\n    region: us-west-2\n    targets:\n      - {{ name: w1, instance_id: {}, probes: [{{ http: {{ url: \"{}\" }} }}] }}\n      - {{ name: w2, instance_id: {}, probes: [{{ http: {{ url: \"{}\" }} }}] }}\n    floats:\n      - eip: {{ allocation_id: {} }}\n",
        west.instances[0].instance_id,
        h.url(),
        west.instances[1].instance_id,
        h.url(),
        west.allocation_id
    );
    env.scenario = sc;
    let (r, p) = env.spawn_proxied(&[], Stderr::LogFile).await;
    p.ec2.set(vec![Rule {
        ops: Ops::All,
        region: Some("us-west-2".into()),
        mode: Mode::Blackhole,
    }]);
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "east assigned despite west"
    );
    let t = Instant::now();
    env.health[0].stop().await;
    let took = env.wait_eip_on(1, budget + Duration::from_secs(3)).await;
    eprintln!(
        "east failover with west black-holed: {:?} (budget {budget:?})",
        t.elapsed()
    );
    assert!(
        took.is_some_and(|d| d <= budget),
        "east failover {took:?} > {budget:?}"
    );
    let s = env.replicas[r].status().await.expect("status");
    assert!(
        s["observe_error"]
            .as_str()
            .is_some_and(|e| e.contains("west")),
        "the black-holed group's problem is shown: {s}"
    );
}

/// (11) Sustained throttling (60 % of EC2 calls answered RequestLimitExceeded): the
/// failover still completes once it stops, attempts are counted, and mutating operations
/// never come faster than the client-side bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_throttling_converges_and_respects_the_bucket() {
    let sc = Scenario {
        s3_lease: false,
        floats: Floats::All,
        mutate_burst: 2,
        mutate_per_second: 1,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "throttle").await;
    let (r, p) = env.spawn_proxied(&[], Stderr::LogFile).await;
    assert!(env.wait_eip_on(0, Duration::from_secs(30)).await.is_some());
    p.ec2.set_all(Mode::Throttle(0.6));
    env.health[0].stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    p.ec2.pass();
    let done = env
        .until(Duration::from_secs(15), || all_floats_on(&env, 1))
        .await;
    if done.is_none() {
        env.dump_logs();
    }
    assert!(done.is_some(), "converged after the throttling stopped");
    invariants::within_bucket(&p.ec2.log(), 2, 1).expect("bucket respected");
    let m = env.replicas[r].metrics().await.expect("metrics");
    let throttled = metric_sum(&m, "floatover_provider_attempts_total", &|l| {
        l.contains("outcome=\"throttled\"")
    });
    assert!(throttled > 0.0, "throttled attempts are counted");
}
