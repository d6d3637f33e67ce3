//! Route 53 record shapes beyond weights on LocalStack: failover record pairs (roles
//! swapped, health checks kept) and `on_all_unhealthy: release` (records deleted when
//! everyone is down, back when a target recovers).

mod common;

use common::dns::*;
use floatover_devkit::health::HealthServer;
use floatover_devkit::{LocalStack, dns};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A Route 53 failover record pair (PRIMARY/SECONDARY, a health check on one record):
/// floatover makes the owner the PRIMARY, swaps the roles on failover and back on
/// failback, and every record keeps its own health check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_record_pair_swaps_roles_and_keeps_health_checks() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let r53 = dns::client(&ls.endpoint).await;
    let domain = unique("fo");
    let zone = dns::zone(&r53, &domain).await.expect("zone");
    let name = format!("api.{domain}.");
    let hc = dns::health_check(&r53, "10.0.0.1", 80)
        .await
        .expect("health check");
    dns::failover_pair(
        &r53,
        &zone,
        &name,
        [("a", "10.0.0.1", Some(&hc)), ("b", "10.0.0.2", None)],
    )
    .await
    .expect("pair");
    let mut a = HealthServer::start().await.expect("health");
    let b = HealthServer::start().await.expect("health");
    let yaml = DnsYaml {
        endpoint: &ls.endpoint,
        group: "api",
        policy: "preempt: true, failback_delay: 500ms, min_hold: 0s",
        targets: &[
            ("a", "region: us-east-1, priority: 200", "10.0.0.1", a.url()),
            ("b", "region: eu-west-1, priority: 100", "10.0.0.2", b.url()),
        ],
        float: &format!("zone_id: {zone}, name: \"{name}\", routing: failover"),
    }
    .render();
    let (metrics, _api, stop_tx, run) = start_app(&yaml).await;
    let wait_roles = |primary: &'static str| {
        let (r53, zone, name, hc) = (r53.clone(), zone.clone(), name.clone(), hc.clone());
        async move {
            let want = BTreeMap::from([
                (
                    "a".to_string(),
                    (
                        if primary == "a" {
                            "PRIMARY"
                        } else {
                            "SECONDARY"
                        }
                        .to_string(),
                        Some(hc),
                    ),
                ),
                (
                    "b".to_string(),
                    (
                        if primary == "b" {
                            "PRIMARY"
                        } else {
                            "SECONDARY"
                        }
                        .to_string(),
                        None,
                    ),
                ),
            ]);
            let t = Instant::now();
            let mut last = None;
            while t.elapsed() < Duration::from_secs(15) {
                last = dns::roles(&r53, &zone, &name).await.ok();
                if last.as_ref() == Some(&want) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(format!("want {want:?}, have {last:?}"))
        }
    };
    // Already as wanted at start: only the new leader's claim (the stamp) is written.
    wait_roles("a").await.expect("a is PRIMARY");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let claimed = batches(&metrics.encode());
    assert!(
        claimed <= 1,
        "a converged pair is left alone: {claimed} batches"
    );

    a.stop().await;
    wait_roles("b").await.expect("failover: b is PRIMARY");
    let (_, stamp) = dns::read(&r53, &zone, &name).await.expect("read");
    assert!(
        stamp.as_deref().is_some_and(|s| s.contains("/failover/b")),
        "{stamp:?}"
    );
    a.restart().await.expect("restart");
    wait_roles("a").await.expect("failback: a is PRIMARY again");
    assert_eq!(
        batches(&metrics.encode()),
        claimed + 2,
        "one batch per change"
    );
    stop_app(stop_tx, run).await;
}

/// `on_all_unhealthy: release` on a DNS float: when every target is down the group's
/// records are deleted (fail closed: the name stops answering with dead servers), and a
/// target that comes back gets its record again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_deletes_the_records_when_everyone_is_down_and_a_survivor_brings_them_back() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let r53 = dns::client(&ls.endpoint).await;
    let domain = unique("rel");
    let zone = dns::zone(&r53, &domain).await.expect("zone");
    let name = format!("api.{domain}.");
    let mut a = HealthServer::start().await.expect("health");
    let mut b = HealthServer::start().await.expect("health");
    let yaml = DnsYaml {
        endpoint: &ls.endpoint,
        group: "api",
        policy: "mode: active-active, min_hold: 0s, on_all_unhealthy: release",
        targets: &[
            ("a", "weight: 100", "10.0.0.1", a.url()),
            ("b", "weight: 50", "10.0.0.2", b.url()),
        ],
        float: &format!("zone_id: {zone}, name: \"{name}\""),
    }
    .render();
    let (_metrics, api, stop_tx, run) = start_app(&yaml).await;
    assert!(
        wait_one(&r53, &zone, &name, &[("a", 100), ("b", 50)])
            .await
            .is_some(),
        "records created"
    );
    a.stop().await;
    b.stop().await;
    assert!(
        wait_one(&r53, &zone, &name, &[]).await.is_some(),
        "released: {:?} {}",
        dns::read(&r53, &zone, &name).await,
        status_json(&api).await
    );
    let (_, stamp) = dns::read(&r53, &zone, &name).await.expect("read");
    assert!(
        stamp.as_deref().is_some_and(|s| s.contains("/release/")),
        "{stamp:?}"
    );
    b.restart().await.expect("restart");
    assert!(
        wait_one(&r53, &zone, &name, &[("a", 0), ("b", 50)])
            .await
            .is_some(),
        "b's record is back: {:?} {}",
        dns::read(&r53, &zone, &name).await,
        status_json(&api).await
    );
    stop_app(stop_tx, run).await;
}
