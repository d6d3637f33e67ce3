//! DNS under faults, with a real replica process and a fault proxy between it and
//! LocalStack: EC2 in the group's region black-holed does not delay a DNS failover, and a
//! Route 53 answering `Throttling` / `PriorRequestNotComplete` to most batches still
//! converges (the SDK retries with jitter; the engine re-reads and retries the rest).

mod common;

use common::Env;
use common::dns::wait_weights;
use floatover_devkit::dns;
use floatover_devkit::faultproxy::{Mode, Ops, Rule};
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Scenario, Stderr};
use std::time::Duration;

const EC2_OPS: [&str; 7] = [
    "DescribeAddresses",
    "DescribeNetworkInterfaces",
    "DescribeRouteTables",
    "DescribeInstances",
    "AssociateAddress",
    "DisassociateAddress",
    "CreateTags",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failover_ignores_a_blackholed_ec2_region_and_converges_under_throttling() {
    let mut sc = Scenario::default();
    let budget =
        Duration::from_millis(sc.interval_ms * u64::from(sc.fall)) + Duration::from_secs(1);
    let mut env = Env::new(2, Scenario::default(), "dnsfault").await;
    let r53 = dns::client(&env.ls.endpoint).await;
    let domain = format!(
        "dnsfault-{}-{}.example.test",
        std::process::id(),
        rand::random::<u32>()
    );
    let zone = dns::zone(&r53, &domain).await.expect("zone");
    let name = format!("www.{domain}.");
    let mut dh = [
        HealthServer::start().await.expect("health"),
        HealthServer::start().await.expect("health"),
    ];
    sc.extra_yaml = format!(
        "  - name: global\n    policy: {{ mode: active-active, min_hold: 0s }}\n    targets:\n      - {{ name: east, region: us-east-1, dns: {{ value: 10.0.0.1 }}, probes: [{{ http: {{ url: \"{}\" }} }}] }}\n      - {{ name: west, region: eu-west-1, dns: {{ value: 10.0.0.2 }}, probes: [{{ http: {{ url: \"{}\" }} }}] }}\n    floats:\n      - dns: {{ zone_id: {zone}, name: \"{name}\", ttl: 30 }}\n",
        dh[0].url(),
        dh[1].url()
    );
    env.scenario = sc;
    let (r, p) = env.spawn_proxied(&[], Stderr::LogFile).await;
    let both = [("east", 100), ("west", 100)];
    assert!(
        wait_weights(&r53, &zone, &name, &both, Duration::from_secs(20))
            .await
            .is_some(),
        "records written"
    );

    // EC2 in us-east-1 stops answering (Route 53, signed for us-east-1 too, still does).
    p.ec2.set(vec![Rule {
        ops: Ops::Named(EC2_OPS.iter().map(|s| s.to_string()).collect()),
        region: Some("us-east-1".into()),
        mode: Mode::Blackhole,
    }]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    dh[1].stop().await;
    let took = wait_weights(
        &r53,
        &zone,
        &name,
        &[("east", 100), ("west", 0)],
        budget + Duration::from_secs(3),
    )
    .await;
    eprintln!("DNS failover with EC2 us-east-1 black-holed: {took:?} (budget {budget:?})");
    assert!(
        took.is_some_and(|d| d <= budget),
        "DNS failover {took:?} > {budget:?}"
    );

    // Route 53 throttles every batch for 1.5 s (so some are, whatever the dice say), then
    // most of them: the recovery still lands.
    let throttle = |f: f64| {
        vec![Rule {
            ops: Ops::Named(vec!["ChangeResourceRecordSets".into()]),
            region: None,
            mode: Mode::Throttle(f),
        }]
    };
    p.ec2.set(throttle(1.0));
    dh[1].restart().await.expect("restart");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    p.ec2.set(throttle(0.6));
    let took = wait_weights(&r53, &zone, &name, &both, Duration::from_secs(30)).await;
    assert!(took.is_some(), "converged under throttling");
    let log = p.ec2.log();
    let batches: Vec<_> = log
        .iter()
        .filter(|s| s.op == "ChangeResourceRecordSets")
        .collect();
    let throttled = batches.iter().filter(|s| s.status == Some(400)).count();
    eprintln!(
        "recovery under throttling: {took:?}, {} batch attempts, {throttled} throttled",
        batches.len()
    );
    assert!(throttled > 0, "the proxy throttled some batches");
    assert!(
        batches
            .iter()
            .all(|s| s.forwarded_ms.is_none() || s.status.is_some()),
        "every forwarded batch was answered"
    );
    let s = env.replicas[r].status_body().await.expect("status");
    assert!(s.leader.is_leader, "{s:?}");
}
