//! Fault tests: the controller under injected faults, with real processes, LocalStack and
//! a fault proxy per replica and service. Each ends with the invariant checks that apply.
//!
//! Timings (scenario defaults): probes 200 ms × fall 3, lease 4 s / renew deadline 2.5 s /
//! retry 0.5 s, call timeout 1.5 s, drift check 2 s.

mod common;

use common::{Env, Proxies, now_ms};
use floatover::devkit::faultproxy::{Mode, Ops, Rule};
use floatover::devkit::invariants;
use floatover::devkit::replica::{Floats, Scenario, Stderr, metric_sum};
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_millis(4_000);
const RENEW: Duration = Duration::from_millis(2_500);
const RETRY: Duration = Duration::from_millis(500);
const CALL: Duration = Duration::from_millis(1_500);

/// Common end-of-test checks: leaders never overlapped at the provider and every mutating
/// call was inside its sender's fence.
fn check_fencing(env: &Env, proxies: &[(usize, &Proxies)]) {
    let logs: Vec<(String, Vec<_>, Vec<_>)> = proxies
        .iter()
        .map(|(i, p)| (env.replicas[*i].name.clone(), p.ec2.log(), p.s3.log()))
        .collect();
    let refs: Vec<(&str, &[_])> = logs
        .iter()
        .map(|(n, e, _)| (n.as_str(), e.as_slice()))
        .collect();
    if let Err(e) = invariants::no_overlap_between_replicas(&refs) {
        env.dump_logs();
        panic!("two leaders acted at once: {e}");
    }
    for (name, ec2, s3) in &logs {
        if let Err(e) = invariants::within_fence(ec2, s3, RENEW, CALL, Duration::from_millis(100)) {
            env.dump_logs();
            panic!("{name}: mutation outside the fence: {e}");
        }
    }
}

/// The EIP, the secondary IP and the route all on instance `i` (of two).
async fn all_floats_on(env: &Env, i: usize) -> bool {
    let w = &env.world;
    let enis = [w.instances[0].eni_id.clone(), w.instances[1].eni_id.clone()];
    let inst = w.instances[i].instance_id.as_str();
    env.eip_holder().await.as_deref() == Some(inst)
        && env.clients.ip_holders(&enis, &w.secondary_ip).await == vec![enis[i].clone()]
        && env
            .clients
            .route_target(&w.route_table_id, &w.route_destination)
            .await
            .as_deref()
            == Some(inst)
}

async fn two_replicas(
    env: &mut Env,
    first_env: &[(&str, &str)],
) -> (usize, Proxies, usize, Proxies) {
    let (a, pa) = env.spawn_proxied(first_env, Stderr::LogFile).await;
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "initial assignment"
    );
    assert!(
        env.until(Duration::from_secs(10), || env.leads(a))
            .await
            .is_some()
    );
    let (b, pb) = env.spawn_proxied(&[], Stderr::LogFile).await;
    assert!(
        env.until(Duration::from_secs(10), || async {
            env.replicas[b]
                .get("/readyz")
                .await
                .is_some_and(|(c, _)| c == 200)
        })
        .await
        .is_some(),
        "standby ready"
    );
    (a, pa, b, pb)
}

/// (1) A panic inside a reconcile ends the process (exit 70) and a standby takes over
/// within the lease budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_engine_ends_the_process_and_a_standby_takes_over() {
    let mut env = Env::new(2, Scenario::default(), "panic").await;
    let (a, pa, b, pb) = two_replicas(&mut env, &[("FLOATOVER_FAULT", "engine-panic")]).await;
    env.replicas[a].signal("USR1");
    let died = env
        .until(Duration::from_secs(5), || {
            let st = env.replicas[a].child_status();
            async move { st.is_some() }
        })
        .await;
    assert!(died.is_some(), "the panicking replica must exit");
    let died_at = Instant::now();
    let code = env.replicas[a].child_status().and_then(|s| s.code());
    assert_eq!(code, Some(70), "panic exit code");
    let took = env.until(Duration::from_secs(10), || env.leads(b)).await;
    let took = took.unwrap_or_else(|| {
        env.dump_logs();
        panic!("standby never took over")
    });
    eprintln!(
        "takeover {took:?} after the panic exit ({:?} since)",
        died_at.elapsed()
    );
    assert!(took <= LEASE + RETRY + Duration::from_secs(1), "{took:?}");
    check_fencing(&env, &[(a, &pa), (b, &pb)]);
}

/// (2) An engine that hangs stops renewing: /healthz and /readyz say 503, a standby takes
/// over within stall detection + lease, and the stalled leader never mutates again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_engine_gives_up_its_lease_and_reports_unhealthy() {
    stall_case("engine-stall", Duration::from_secs(2) + RENEW).await;
}

/// (3) Probes that stop: same rule as a stalled engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_probes_give_up_the_lease_and_report_unhealthy() {
    // probe loop max gap: 8 × 200 ms + 200 ms timeout + 2 s
    stall_case("probe-stall", Duration::from_millis(3_800)).await;
}

async fn stall_case(fault: &str, detection: Duration) {
    let mut env = Env::new(2, Scenario::default(), "stall").await;
    let (a, pa, b, pb) = two_replicas(&mut env, &[("FLOATOVER_FAULT", fault)]).await;
    env.replicas[a].signal("USR1");
    let fired = Instant::now();
    let unhealthy = env
        .until(Duration::from_secs(10), || async {
            env.replicas[a]
                .get("/healthz")
                .await
                .is_some_and(|(c, _)| c == 503)
        })
        .await;
    assert!(
        unhealthy.is_some(),
        "the stalled replica must report unhealthy"
    );
    let (code, body) = env.replicas[a].get("/readyz").await.expect("readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("stalled"), "{body}");
    let took = env.until(Duration::from_secs(20), || env.leads(b)).await;
    let took = took.unwrap_or_else(|| {
        env.dump_logs();
        panic!("standby never took over from a stalled leader")
    });
    let budget = detection + LEASE + RETRY + Duration::from_secs(2);
    eprintln!(
        "{fault}: takeover {:?} after the fault (budget {budget:?})",
        fired.elapsed()
    );
    assert!(
        fired.elapsed() <= budget,
        "{:?} > {budget:?}",
        fired.elapsed()
    );
    assert!(
        !env.leads(a).await,
        "the stalled replica does not claim leadership"
    );
    // The new leader acts; the stalled one does not.
    env.health[0].stop().await;
    assert!(env.wait_eip_on(1, Duration::from_secs(5)).await.is_some());
    check_fencing(&env, &[(a, &pa), (b, &pb)]);
    let _ = took;
}

/// (4) stderr is a closed pipe: logging drops lines (counted) and the controller keeps
/// working: it stays healthy and still fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_never_stops_the_controller() {
    let sc = Scenario {
        s3_lease: false,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "stderr").await;
    let (r, _p) = env.spawn_proxied(&[], Stderr::ClosedPipe).await;
    assert!(env.wait_eip_on(0, Duration::from_secs(20)).await.is_some());
    env.health[0].stop().await;
    assert!(
        env.wait_eip_on(1, Duration::from_secs(3)).await.is_some(),
        "failover with a dead stderr"
    );
    let (code, _) = env.replicas[r].get("/healthz").await.expect("healthz");
    assert_eq!(code, 200);
    let m = env.replicas[r].metrics().await.expect("metrics");
    let dropped = metric_sum(&m, "floatover_log_lines_dropped_total", &|_| true);
    assert!(dropped > 0.0, "dropped log lines are counted: {dropped}");
    assert!(env.replicas[r].child_status().is_none(), "still running");
}

/// (5) Epochs never go backwards: a fresh lease object (new bucket) while the EIP carries
/// an epoch-7 stamp. The new leader takes an epoch above it and fails over in the usual
/// budget (before: epoch 1, every float fenced forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_lease_never_takes_the_epoch_backwards() {
    let sc = Scenario::default();
    let budget =
        Duration::from_millis(sc.interval_ms * u64::from(sc.fall)) + Duration::from_secs(1);
    let mut env = Env::new(2, sc, "epoch").await;
    env.clients
        .ec2
        .create_tags()
        .resources(&env.world.allocation_id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("floatover:stamp")
                .value("7/failover/primary")
                .build(),
        )
        .send()
        .await
        .expect("stamp");
    let (a, pa) = env.spawn_proxied(&[], Stderr::LogFile).await;
    let (b, pb) = env.spawn_proxied(&[], Stderr::LogFile).await;
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "initial assignment"
    );
    let (l, _) = env
        .wait_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let epoch = env.epoch(l).await.expect("epoch");
    assert!(
        epoch > 7,
        "new holder's epoch {epoch} must be above the stamp 7"
    );
    let t = Instant::now();
    env.health[0].stop().await;
    let took = env.wait_eip_on(1, budget + Duration::from_secs(2)).await;
    assert!(
        took.is_some_and(|d| d <= budget),
        "failover took {:?} (budget {budget:?})",
        t.elapsed()
    );
    check_fencing(&env, &[(a, &pa), (b, &pb)]);
}

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
    use floatover::devkit::health::HealthServer;
    use floatover::devkit::seed;
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

/// (8b) The leader is cut off from the lease store: it stops mutating before anyone else
/// can start, reports standby, and the successor acts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_lease_store_stops_before_a_successor_starts() {
    let mut env = Env::new(2, Scenario::default(), "partition").await;
    let (a, pa, b, pb) = two_replicas(&mut env, &[]).await;
    pa.s3.set_all(Mode::Blackhole);
    let cut = Instant::now();
    let (mut down_at, mut up_at) = (None, None);
    while cut.elapsed() < Duration::from_secs(12) && up_at.is_none() {
        if down_at.is_none() && !env.leads(a).await {
            down_at = Some(cut.elapsed());
        }
        if env.leads(b).await {
            up_at = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("partitioned leader stood down after {down_at:?}; successor after {up_at:?}");
    let (down_at, up_at) = (down_at.expect("stood down"), up_at.expect("successor"));
    assert!(
        down_at < up_at,
        "the old leader stood down before the successor started"
    );
    assert!(
        down_at <= RENEW + RETRY,
        "fenced within the renew deadline: {down_at:?}"
    );
    env.health[0].stop().await;
    assert!(
        env.wait_eip_on(1, Duration::from_secs(5)).await.is_some(),
        "successor acted"
    );
    check_fencing(&env, &[(a, &pa), (b, &pb)]);
}

/// (9) A frozen leader (SIGSTOP past its lease, then SIGCONT) makes no mutation after it
/// resumes and reports standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_does_not_mutate_after_it_resumes() {
    let mut env = Env::new(2, Scenario::default(), "frozen").await;
    let (a, pa, b, pb) = two_replicas(&mut env, &[]).await;
    env.replicas[a].signal("STOP");
    assert!(
        env.until(Duration::from_secs(10), || env.leads(b))
            .await
            .is_some(),
        "successor"
    );
    env.health[0].stop().await;
    assert!(
        env.wait_eip_on(1, Duration::from_secs(5)).await.is_some(),
        "successor acted"
    );
    let resumed = now_ms();
    env.replicas[a].signal("CONT");
    let standby = env
        .until(Duration::from_secs(2), || async {
            env.replicas[a]
                .status()
                .await
                .is_some_and(|s| s["leader"]["is_leader"] == false)
        })
        .await;
    assert!(standby.is_some(), "the resumed replica reports standby");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        invariants::mutating_between(&pa.ec2.log(), resumed, now_ms()),
        0,
        "no mutation from the resumed replica"
    );
    check_fencing(&env, &[(a, &pa), (b, &pb)]);
}

/// (10) kill -9 in the middle of a multi-float move: the next leader converges every float.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_in_the_middle_of_a_multi_float_move_converges() {
    let sc = Scenario {
        floats: Floats::All,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "kill9").await;
    let (a, pa, b, pb) = two_replicas(&mut env, &[]).await;
    pa.ec2.set(vec![Rule {
        ops: Ops::Named(vec![
            "AssignPrivateIpAddresses".into(),
            "ReplaceRoute".into(),
        ]),
        region: None,
        mode: Mode::Hold,
    }]);
    env.health[0].stop().await;
    assert!(
        env.wait_eip_on(1, Duration::from_secs(5)).await.is_some(),
        "the EIP moved"
    );
    let held = env
        .until(Duration::from_secs(3), || async {
            pa.ec2
                .log()
                .iter()
                .filter(|s| s.forwarded_ms.is_none())
                .count()
                >= 2
        })
        .await;
    assert!(held.is_some(), "the other two moves are in flight");
    env.replicas[a].kill9();
    pa.ec2.drop_held();
    let done = env
        .until(LEASE + Duration::from_secs(6), || all_floats_on(&env, 1))
        .await;
    assert!(done.is_some(), "the successor converged every float");
    assert!(env.leads(b).await);
    check_fencing(&env, &[(a, &pa), (b, &pb)]);
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
