//! End-to-end failover against LocalStack with the real binary.

mod common;

use common::Env;
use floatover_devkit::replica::{Floats, Scenario, metric_sum};
use std::time::{Duration, Instant};

/// (a) The primary's health endpoint dies → the EIP is on the standby within
/// interval × fall + 1 s. Then (b, preempt) it fails back after failback_delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eip_fails_over_within_detection_budget_and_fails_back() {
    let sc = Scenario {
        s3_lease: false,
        failback_delay_ms: 2_000,
        ..Default::default()
    };
    let budget = Duration::from_millis(sc.interval_ms * sc.fall as u64) + Duration::from_secs(1);
    let mut env = Env::new(2, sc, "a").await;
    env.spawn_replica();
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "initial assignment to primary"
    );

    let killed = Instant::now();
    env.health[0].stop().await;
    let took = env.wait_eip_on(1, Duration::from_secs(10)).await;
    let took = took.unwrap_or_else(|| {
        env.dump_logs();
        panic!("EIP never moved to the standby");
    });
    let _ = killed;
    eprintln!("failover took {took:?} (budget {budget:?})");
    assert!(took <= budget, "failover took {took:?}, budget {budget:?}");

    // Failback: after the primary is healthy again (rise × interval) plus failback_delay.
    env.health[0].restart().await.expect("restart");
    let restored = Instant::now();
    let back = env
        .wait_eip_on(0, Duration::from_secs(15))
        .await
        .expect("failback");
    eprintln!("failback after {back:?}");
    assert!(
        back >= Duration::from_millis(2_000),
        "failback came before failback_delay: {back:?}"
    );
    let _ = restored;
    let s = env.replicas[0].status().await.expect("status");
    let reasons: Vec<&str> = s["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"failover") && reasons.contains(&"failback"),
        "{reasons:?}"
    );
}

/// (b) With preempt: false the float stays on the standby after the primary recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_failback_without_preempt() {
    let sc = Scenario {
        s3_lease: false,
        preempt: false,
        failback_delay_ms: 1_000,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "b").await;
    env.spawn_replica();
    assert!(env.wait_eip_on(0, Duration::from_secs(20)).await.is_some());
    env.health[0].stop().await;
    assert!(env.wait_eip_on(1, Duration::from_secs(10)).await.is_some());
    env.health[0].restart().await.expect("restart");
    tokio::time::sleep(Duration::from_millis(1_000 + 3_000)).await;
    assert_eq!(
        env.eip_holder().await,
        Some(env.instance(1)),
        "preempt: false must not fail back"
    );
}

/// (c) The secondary private IP and the route-table entry follow the owner with the EIP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_ip_and_route_follow_the_owner() {
    let sc = Scenario {
        s3_lease: false,
        floats: Floats::All,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "c").await;
    env.spawn_replica();
    if !all_on(&env, 0).await {
        env.dump_logs();
        panic!("floats did not all land on the primary");
    }
    env.health[0].stop().await;
    if !all_on(&env, 1).await {
        env.dump_logs();
        panic!("floats did not all follow to the standby");
    }
}

/// Poll until the EIP, the secondary IP (and only it) and the route are all on instance `want`.
async fn all_on(env: &Env, want: usize) -> bool {
    let enis: Vec<String> = env
        .world
        .instances
        .iter()
        .map(|i| i.eni_id.clone())
        .collect();
    let (ip, table, dest) = (
        &env.world.secondary_ip,
        &env.world.route_table_id,
        &env.world.route_destination,
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        let eip = env.eip_holder().await;
        let ips = env.clients.ip_holders(&enis, ip).await;
        let route = env.clients.route_target(table, dest).await;
        if eip.as_deref() == Some(env.instance(want).as_str())
            && ips == vec![enis[want].clone()]
            && route.as_deref() == Some(env.instance(want).as_str())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "eip={:?} ip on {:?} route={:?}",
        env.eip_holder().await,
        env.clients.ip_holders(&enis, ip).await,
        env.clients.route_target(table, dest).await
    );
    false
}

const MUTATING: [&str; 7] = [
    "CreateTags",
    "AssociateAddress",
    "AssignPrivateIpAddresses",
    "ReplaceRoute",
    "CreateRoute",
    "DisassociateAddress",
    "UnassignPrivateIpAddresses",
];

/// (g) A converged world gets zero mutating calls over many resyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_world_makes_no_mutating_calls() {
    let sc = Scenario {
        s3_lease: false,
        floats: Floats::All,
        resync_ms: 150,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "g").await;
    env.spawn_replica();
    assert!(env.wait_eip_on(0, Duration::from_secs(20)).await.is_some());
    tokio::time::sleep(Duration::from_secs(2)).await; // let every float settle
    let r = &env.replicas[0];
    let is_mut = |l: &str| {
        MUTATING
            .iter()
            .any(|op| l.contains(&format!("op=\"{op}\"")))
    };
    let is_describe = |l: &str| l.contains("op=\"Describe");
    let m1 = r.metrics().await.expect("metrics");
    let (mut1, desc1) = (
        metric_sum(&m1, "floatover_provider_calls_total", &is_mut),
        metric_sum(&m1, "floatover_provider_calls_total", &is_describe),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let m2 = r.metrics().await.expect("metrics");
    let (mut2, desc2) = (
        metric_sum(&m2, "floatover_provider_calls_total", &is_mut),
        metric_sum(&m2, "floatover_provider_calls_total", &is_describe),
    );
    eprintln!("mutating calls {mut1} -> {mut2}, describe calls {desc1} -> {desc2}");
    assert!(mut1 > 0.0, "the initial assignment must have mutated");
    assert!(
        desc2 - desc1 >= 3.0 * 10.0,
        "expected >= 10 resyncs (3 describes each), saw {}",
        desc2 - desc1
    );
    if mut1 != mut2 {
        env.dump_logs();
    }
    assert_eq!(mut1, mut2, "a converged world must not be touched");
}
