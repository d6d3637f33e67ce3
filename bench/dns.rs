//! A 100-target active-active reweight on LocalStack: half the targets drop to 0 (then
//! come back), each change one ChangeResourceRecordSets batch, through the real Route 53
//! provider. Measures the batch call and the time to INSYNC, and checks one batch each.

use crate::stats::{Series, ms};
use floatover::aws::{AwsSpec, MemberWrites};
use floatover::leader::{Fence, FenceError};
use floatover::metrics::Metrics;
use floatover::model::{Epoch, MoveStamp, Reason, TargetId};
use floatover::provider::aws::AwsProvider;
use floatover::provider::aws::route53::spec::{DnsMember, DnsRecord};
use floatover::provider::{Bindings, FloatKind, FloatProvider, FloatRef, WeightOrder};
use floatover_devkit::dns;
use std::sync::Arc;
use std::time::Duration;

struct Open;
impl Fence for Open {
    fn permit(&self, _: Epoch, _: Duration) -> Result<(), FenceError> {
        Ok(())
    }
}

pub struct Reweight {
    pub call: Series,
    pub insync: Series,
    /// Batches sent per reweight (must be 1).
    pub batches_per_change: f64,
}

fn batches(m: &Metrics) -> u64 {
    m.encode()
        .lines()
        .filter(|l| l.starts_with("floatover_dns_batches_total{outcome=\"applied\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

pub async fn run(endpoint: &str, targets: usize, trials: usize) -> Result<Reweight, String> {
    let r53 = dns::client(endpoint).await;
    let domain = format!("bench-{}.example.test", std::process::id());
    let zone = dns::zone(&r53, &domain).await.map_err(|e| e.to_string())?;
    let rec = DnsRecord {
        zone_id: zone,
        name: format!("www.{domain}."),
        rtype: "A".into(),
        ttl: 60,
        routing: Default::default(),
    };
    let float = FloatRef {
        id: rec.id(),
        region: "us-east-1".into(),
        kind: FloatKind::Dns(rec),
    };
    let metrics = Arc::new(Metrics::new());
    let aws = AwsSpec {
        default_region: "us-east-1".into(),
        endpoint_url: Some(endpoint.to_string()),
        call_timeout: Duration::from_secs(10),
        max_attempts: 3,
        mutate_burst: 50,
        mutate_per_second: 5,
        api_limits: Default::default(),
        dns_burst: 50,
        dns_per_second: 10,
        dns_member_writes: MemberWrites::Upsert,
        service_endpoints: Default::default(),
        credentials: Some(floatover_devkit::test_credentials()),
    };
    let p = AwsProvider::connect(&aws, &[], metrics.clone()).await;
    let members: Vec<Bindings> = (0..targets)
        .map(|i| Bindings {
            ec2: None,
            arc: None,
            dns: Some(DnsMember {
                set_identifier: format!("t{i:03}"),
                value: format!("10.1.{}.{}", i / 250, i % 250 + 1),
            }),
        })
        .collect();
    let (mut call, mut insync) = (Vec::new(), Vec::new());
    let mut sent = 0u64;
    // Trial 0 creates the records (not measured); then alternate half down / all up.
    for trial in 0..=trials {
        let seen = p
            .observe(std::slice::from_ref(&float), &[])
            .await
            .map_err(|e| e.to_string())?;
        let half_down = trial % 2 == 1;
        let weights = members
            .iter()
            .enumerate()
            .map(|(i, b)| (b.clone(), if half_down && i % 2 == 0 { 0 } else { 1 }))
            .collect();
        let order = WeightOrder {
            float: float.clone(),
            weights,
            observed: seen.get(&float.id).and_then(|o| o.snapshot.clone()),
            stamp: MoveStamp {
                epoch: Epoch(1),
                reason: Reason::Failover,
                target: TargetId("-".into()),
            },
        };
        let before = batches(&metrics);
        let r = p.set_weights(&[order], &Open).await;
        let done = r
            .into_iter()
            .next()
            .ok_or("no result")?
            .map_err(|e| e.to_string())?;
        if trial > 0 {
            call.push(ms(done.call_time));
            if let Some(t) = done.insync {
                insync.push(ms(t));
            }
            sent += batches(&metrics) - before;
        }
    }
    Ok(Reweight {
        call: Series {
            name: format!("DNS reweight of {targets} targets on LocalStack (one batch: call)"),
            samples_ms: call,
            p99_target_ms: None,
            note: format!(
                "half of {targets} weighted records to 0 and back, one ChangeResourceRecordSets per change through the real provider (version and stamp swap included)"
            ),
        },
        insync: Series {
            name: format!("DNS reweight of {targets} targets on LocalStack (batch -> INSYNC)"),
            samples_ms: insync,
            p99_target_ms: None,
            note: "GetChange polled from the batch until INSYNC (LocalStack answers INSYNC at once; Route 53 takes up to about a minute)".into(),
        },
        batches_per_change: sent as f64 / trials.max(1) as f64,
    })
}
