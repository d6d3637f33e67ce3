//! Fault tests of the process and the leader: panics, stalls, a closed stderr, a recreated
//! lease, a partitioned lease store, a frozen leader, kill -9 mid-move. Real processes,
//! LocalStack and a fault proxy per replica and service; each ends with the invariant
//! checks that apply.
//!
//! Timings (scenario defaults): probes 200 ms × fall 3, lease 4 s / renew deadline 2.5 s /
//! retry 0.5 s, call timeout 1.5 s, drift check 2 s.

mod common;

use common::faults::*;
use common::{Env, now_ms};
use floatover_devkit::faultproxy::{Mode, Ops, Rule};
use floatover_devkit::invariants;
use floatover_devkit::replica::{Floats, Scenario, Stderr, metric_sum};
use std::time::{Duration, Instant};

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
                .status_body()
                .await
                .is_some_and(|s| !s.leader.is_leader)
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
