//! Route 53 weighted records on LocalStack: the fenced batch (two leaders race one zone,
//! exactly one batch applies), and the whole controller steering weights by health (one
//! batch per zone per decision, nothing sent while converged, weights kept when every
//! target is down), with targets in two regions.

mod common;

use common::dns::*;
use floatover::aws::MemberWrites;
use floatover::config::AwsSpec;
use floatover::leader::{Fence, FenceError};
use floatover::metrics::Metrics;
use floatover::model::{Epoch, MoveStamp, Reason, TargetId};
use floatover::provider::aws::AwsProvider;
use floatover::provider::aws::route53::spec::{DnsMember, DnsRecord};
use floatover::provider::{
    Bindings, FloatKind, FloatProvider, FloatRef, ProviderError, WeightOrder,
};
use floatover_devkit::health::HealthServer;
use floatover_devkit::{LocalStack, dns};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Open;
impl Fence for Open {
    fn permit(&self, _: Epoch, _: Duration) -> Result<(), FenceError> {
        Ok(())
    }
}

fn aws(endpoint: &str) -> AwsSpec {
    AwsSpec {
        default_region: "us-east-1".into(),
        endpoint_url: Some(endpoint.to_string()),
        call_timeout: Duration::from_millis(3_000),
        max_attempts: 3,
        mutate_burst: 50,
        mutate_per_second: 5,
        api_limits: Default::default(),
        dns_burst: 50,
        dns_per_second: 10,
        dns_member_writes: MemberWrites::Upsert,
        service_endpoints: Default::default(),
        credentials: Some(floatover_devkit::test_credentials()),
    }
}

fn member(id: &str, addr: &str) -> Bindings {
    Bindings {
        ec2: None,
        arc: None,
        dns: Some(DnsMember {
            set_identifier: id.into(),
            value: addr.into(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leaders_race_one_zone_and_exactly_one_batch_applies() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let domain = unique("race");
    let (r53, zone, name) = dns::weighted_zone(
        &ls.endpoint,
        &domain,
        &[("a", "10.0.0.1", 1), ("b", "10.0.0.2", 1)],
    )
    .await
    .expect("zone with records");
    let rec = DnsRecord {
        zone_id: zone.clone(),
        name: name.clone(),
        rtype: "A".into(),
        ttl: 60,
        routing: Default::default(),
    };
    let float = FloatRef {
        id: rec.id(),
        region: "us-east-1".into(),
        kind: FloatKind::Dns(rec),
    };
    // Two replicas, each with its own client (no shared zone lock): one thinks it still
    // leads under epoch 5, the other leads under epoch 6. Both read the same set.
    let old = AwsProvider::connect(&aws(&ls.endpoint), &[], Arc::new(Metrics::new())).await;
    let new = AwsProvider::connect(&aws(&ls.endpoint), &[], Arc::new(Metrics::new())).await;
    let seen = new
        .observe(std::slice::from_ref(&float), &[])
        .await
        .expect("observe");
    let snapshot = seen[&float.id].snapshot.clone();
    assert_eq!(seen[&float.id].weights.len(), 2, "{seen:?}");
    let order = |epoch: u64, a: u32, b: u32| WeightOrder {
        float: float.clone(),
        weights: vec![(member("a", "10.0.0.1"), a), (member("b", "10.0.0.2"), b)],
        observed: snapshot.clone(),
        stamp: MoveStamp {
            epoch: Epoch(epoch),
            reason: Reason::Failover,
            target: TargetId(if a > 0 { "a" } else { "b" }.into()),
        },
    };
    let (o1, o2) = (order(5, 1, 0), order(6, 0, 1));
    let (r_old, r_new) = tokio::join!(
        old.set_weights(std::slice::from_ref(&o1), &Open),
        new.set_weights(std::slice::from_ref(&o2), &Open),
    );
    let ok: Vec<bool> = [&r_old[0], &r_new[0]].iter().map(|r| r.is_ok()).collect();
    assert_eq!(
        ok.iter().filter(|x| **x).count(),
        1,
        "exactly one batch applies: {r_old:?} {r_new:?}"
    );
    let loser = if ok[0] { &r_new[0] } else { &r_old[0] };
    assert!(
        matches!(loser, Err(ProviderError::Conflict { .. })),
        "the other is refused as a conflict: {loser:?}"
    );
    let msg = loser
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.starts_with("ChangeResourceRecordSets in global: "),
        "{msg}"
    );

    let (weights, stamp) = dns::read(&r53, &zone, &name).await.expect("read");
    let (want, epoch) = if ok[0] { ((1, 0), 5) } else { ((0, 1), 6) };
    assert_eq!(
        weights,
        BTreeMap::from([("a".into(), want.0), ("b".into(), want.1)])
    );
    assert!(
        stamp
            .as_deref()
            .is_some_and(|s| s.starts_with(&format!("{epoch}/"))),
        "the winner's epoch is recorded: {stamp:?}"
    );

    // The loser re-reads and, if it is the newer leader, now succeeds.
    if !ok[1] {
        let seen = new
            .observe(std::slice::from_ref(&float), &[])
            .await
            .expect("observe");
        let mut retry = order(6, 0, 1);
        retry.observed = seen[&float.id].snapshot.clone();
        let r = new.set_weights(&[retry], &Open).await;
        assert!(r[0].is_ok(), "{r:?}");
    }
    // A stale batch (an old snapshot) never applies, whatever its epoch.
    let stale = order(7, 3, 3);
    let r = old.set_weights(&[stale], &Open).await;
    assert!(matches!(r[0], Err(ProviderError::Conflict { .. })), "{r:?}");
}

/// Two records in two zones. (One zone would do on Route 53; on LocalStack, moto's DELETE
/// of a weighted record removes every record with that SetIdentifier in the zone, so each
/// weighted set gets its own zone here. The one-batch-per-zone grouping of several sets in
/// one zone is unit-tested in `provider::aws::route53`.)
fn app_config(endpoint: &str, zones: [&str; 2], names: [&str; 2], urls: [&str; 3]) -> String {
    format!(
        r#"
leader: {{ backend: single, lease_duration: 3s, renew_deadline: 2s, retry_period: 300ms }}
aws: {{ region: us-east-1, endpoint_url: "{endpoint}", call_timeout: 1500ms, dns_member_writes: upsert }}
resync_interval: 200ms
drift_check: 200ms
probe_defaults: {{ interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}
groups:
  - name: web
    policy: {{ mode: active-active, min_hold: 0s, min_healthy: 2 }}
    targets:
      - {{ name: a, region: us-east-1, weight: 100, dns: {{ value: 10.0.0.1 }}, probes: [{{ http: {{ url: "{a}" }} }}] }}
      - {{ name: b, region: eu-west-1, weight: 50, dns: {{ value: 10.0.0.2 }}, probes: [{{ http: {{ url: "{b}" }} }}] }}
      - {{ name: c, region: eu-west-1, weight: 50, dns: {{ value: 10.0.0.3 }}, probes: [{{ http: {{ url: "{c}" }} }}] }}
    floats:
      - dns: {{ zone_id: {z1}, name: "{n1}", ttl: 30 }}
      - dns: {{ zone_id: {z2}, name: "{n2}", ttl: 30 }}
"#,
        a = urls[0],
        b = urls[1],
        c = urls[2],
        n1 = names[0],
        n2 = names[1],
        z1 = zones[0],
        z2 = zones[1],
    )
}

/// Active-standby over DNS: the owner has its weight, the other 0; failover on death,
/// failback after `failback_delay` (the EIP rules, on a weighted record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_active_standby_fails_over_and_back() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let r53 = dns::client(&ls.endpoint).await;
    let domain = unique("as");
    let zone = dns::zone(&r53, &domain).await.expect("zone");
    let name = format!("db.{domain}.");
    let mut a = HealthServer::start().await.expect("health");
    let b = HealthServer::start().await.expect("health");
    let yaml = DnsYaml {
        endpoint: &ls.endpoint,
        group: "db",
        policy: "preempt: true, failback_delay: 1s, min_hold: 0s",
        targets: &[
            (
                "a",
                "region: us-east-1, priority: 200, weight: 10",
                "10.0.0.1",
                a.url(),
            ),
            (
                "b",
                "region: eu-west-1, priority: 100, weight: 20",
                "10.0.0.2",
                b.url(),
            ),
        ],
        float: &format!("zone_id: {zone}, name: \"{name}\", ttl: 30"),
    }
    .render();
    let (_metrics, api, stop_tx, run) = start_app(&yaml).await;
    assert!(
        wait_one(&r53, &zone, &name, &[("a", 10), ("b", 0)])
            .await
            .is_some(),
        "owner a"
    );
    // Someone gives b weight by hand: reported as drift and put back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    dns::upsert_weighted(&r53, &zone, &name, &[("b", "10.0.0.2", 30)])
        .await
        .expect("drift");
    assert!(
        wait_one(&r53, &zone, &name, &[("a", 10), ("b", 0)])
            .await
            .is_some(),
        "drift reverted"
    );
    let status = status_json(&api).await;
    let audit = &status["audit"];
    let drift = audit.as_array().into_iter().flatten().find(|e| {
        e["reason"] == "drift" && e["detail"].as_str().is_some_and(|d| d.contains("weights"))
    });
    assert!(
        drift.is_some_and(|e| e["detail"]
            .as_str()
            .is_some_and(|d| d.contains("found a=10 b=30"))),
        "drift event: {audit}"
    );
    a.stop().await;
    assert!(
        wait_one(&r53, &zone, &name, &[("a", 0), ("b", 20)])
            .await
            .is_some(),
        "failover to b"
    );
    let (_, stamp) = dns::read(&r53, &zone, &name).await.expect("read");
    assert!(
        stamp.as_deref().is_some_and(|s| s.contains("/failover/b")),
        "{stamp:?}"
    );
    a.restart().await.expect("restart");
    let back = Instant::now();
    assert!(
        wait_one(&r53, &zone, &name, &[("a", 10), ("b", 0)])
            .await
            .is_some(),
        "failback to a"
    );
    assert!(
        back.elapsed() >= Duration::from_secs(1),
        "failback waited failback_delay"
    );
    stop_app(stop_tx, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_active_weights_follow_health_one_batch_per_zone() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let r53 = dns::client(&ls.endpoint).await;
    let (d1, d2) = (unique("aa"), unique("ab"));
    let z1 = dns::zone(&r53, &d1).await.expect("zone");
    let z2 = dns::zone(&r53, &d2).await.expect("zone");
    let (n1, n2) = (format!("www.{d1}."), format!("www.{d2}."));
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(HealthServer::start().await.expect("health"));
    }
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let yaml = app_config(
        &ls.endpoint,
        [&z1, &z2],
        [&n1, &n2],
        [&urls[0], &urls[1], &urls[2]],
    );
    let (metrics, api, stop_tx, run) = start_app(&yaml).await;

    let want = |a: i64, b: i64, c: i64| {
        BTreeMap::from([
            ("a".to_string(), a),
            ("b".to_string(), b),
            ("c".to_string(), c),
        ])
    };
    let wait_for = |expected: BTreeMap<String, i64>| {
        let r53 = r53.clone();
        let sets = [(z1.clone(), n1.clone()), (z2.clone(), n2.clone())];
        async move {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                let mut all = true;
                for (z, n) in &sets {
                    let (w, _) = dns::read(&r53, z, n).await.expect("read");
                    all &= w == expected;
                }
                if all {
                    return Some(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None
        }
    };

    // Records created from nothing, weight by capacity.
    assert!(
        wait_for(want(100, 50, 50)).await.is_some(),
        "initial weights"
    );
    // Converged: many resyncs (200 ms), zero batches.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = batches(&metrics.encode());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        batches(&metrics.encode()),
        before,
        "a converged world sends nothing"
    );

    // b dies: its weight goes to 0 in both records, one batch per zone.
    servers[1].stop().await;
    let took = wait_for(want(100, 0, 50)).await;
    assert!(
        took.is_some(),
        "b drained: {:?} {}",
        dns::read(&r53, &z1, &n1).await,
        status_json(&api).await
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        batches(&metrics.encode()),
        before + 2,
        "one batch per zone for the decision"
    );
    let (_, stamp) = dns::read(&r53, &z1, &n1).await.expect("read");
    assert!(
        stamp.as_deref().is_some_and(|s| s.contains("/failover/")),
        "{stamp:?}"
    );
    // Status shows how far each record set's last change has spread.
    let status = status_json(&api).await;
    let floats = status["groups"][0]["floats"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(floats.len(), 2, "{status}");
    for f in &floats {
        assert_eq!(f["propagation"]["state"], "INSYNC", "{f}");
        assert!(
            f["propagation"]["change"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{f}"
        );
    }

    // Everyone dies: once all are down, the weights stay (fail open), nothing is written.
    // (The two deaths are seen a probe apart, so the first may still be drained.)
    servers[0].stop().await;
    servers[2].stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mid = batches(&metrics.encode());
    let (kept, _) = dns::read(&r53, &z1, &n1).await.expect("read");
    assert!(kept.values().any(|w| *w > 0), "never all zero: {kept:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(dns::read(&r53, &z1, &n1).await.expect("read").0, kept);
    assert_eq!(batches(&metrics.encode()), mid, "no write with nobody up");
    assert!(
        metrics
            .encode()
            .contains("floatover_below_min_healthy{group=\"web\"} 1"),
        "N+1 warning raised"
    );

    // Everyone returns.
    for s in &mut servers {
        s.restart().await.expect("restart");
    }
    let restored = wait_for(want(100, 50, 50)).await;
    assert!(
        restored.is_some(),
        "restored: {:?} {}",
        dns::read(&r53, &z1, &n1).await,
        status_json(&api).await
    );

    stop_app(stop_tx, run).await;
}
