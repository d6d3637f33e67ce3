//! A warm promotion with data, split by step: EC2, S3 and Route 53 on LocalStack; RDS,
//! ECS, EKS and CloudWatch on moto (`floatover_devkit::dataworld`, fresh per trial, so
//! every trial promotes a real replica). `floatover run` (release) on the S3 lease;
//! site west's plan: the RPO gate (lag from CloudWatch), promote_replica, scale_ecs,
//! scale_eks_nodegroup, shift. floatover's own overhead is the run's total minus what the
//! steps spent waiting on the provider (`waited_ms`).

use crate::sites::{TOKEN, promote, span};
use crate::stats::Series;
use floatover_devkit::dataworld;
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, floatover_bin, free_port};
use floatover_devkit::{dns, seed};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct DataBench {
    pub total: Series,
    pub overhead: Series,
    pub steps: Vec<Series>,
}

const ORDER: [&str; 5] = [
    "rpo",
    "promote_replica",
    "scale_ecs",
    "scale_eks_nodegroup",
    "shift",
];

pub async fn run(endpoint: &str, moto: &str, trials: usize) -> Result<DataBench, String> {
    let mut total = Vec::new();
    let mut overhead = Vec::new();
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // Both sites' servers answer: the bench measures the data steps, not a failure.
    let hs = HealthServer::start().await.map_err(|e| e.to_string())?;
    for trial in 0..trials {
        let tag = format!("databench-{}-{trial}", std::process::id());
        let east = seed::world(endpoint, "us-east-1", 1, &format!("{tag}-e"))
            .await
            .map_err(|e| e.to_string())?;
        let d = dataworld::seed(moto, &format!("{}{trial}", std::process::id()))
            .await
            .map_err(|e| e.to_string())?;
        d.set_lag(1.5).await.map_err(|e| e.to_string())?;
        let r53 = dns::client(endpoint).await;
        let zone = dns::zone(&r53, &format!("{tag}.example.test"))
            .await
            .map_err(|e| e.to_string())?;
        let name = format!("shop.{tag}.example.test.");
        let port = free_port();
        let cfg = format!(
            r#"api: {{ listen: "127.0.0.1:{port}", token: "{TOKEN}" }}
aws: {{ region: us-east-1, endpoint_url: "{endpoint}", dns_member_writes: upsert, service_endpoints: {{ rds: "{moto}", ecs: "{moto}", eks: "{moto}", cloudwatch: "{moto}" }} }}
leader: {{ backend: s3, identity: bench, s3: {{ bucket: {bucket}, key: leader.json, endpoint_url: "{endpoint}" }} }}
probe_defaults: {{ interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}
groups:
  - name: shop
    targets:
      - {{ name: east, dns: {{ value: 10.0.0.1, set_identifier: east }}, priority: 200, probes: [ {{ http: {{ url: "{hu}" }} }} ] }}
      - {{ name: west, dns: {{ value: 10.1.0.1, set_identifier: west }}, priority: 100, probes: [ {{ http: {{ url: "{hu}" }} }} ] }}
    floats: [ {{ dns: {{ zone_id: {zone}, name: "{name}", type: A, ttl: 60 }} }} ]
site_policy: {{ automatic: false }}
sites:
  - {{ name: east, tier: hot, primary: true, traffic: [ {{ group: shop, target: east }} ] }}
  - name: west
    region: us-west-2
    tier: warm
    rpo: 30s
    replication_lag: {{ rds: {{ instance: {replica} }} }}
    traffic: [ {{ group: shop, target: west }} ]
    steps:
      - promote_replica: {{ instance: {replica}, budget: 30s }}
      - scale_ecs: {{ cluster: {ecs}, service: {svc}, desired: 2, budget: 30s }}
      - scale_eks_nodegroup: {{ cluster: {eks}, nodegroup: {ng}, desired: 2, budget: 30s }}
      - shift: {{ budget: 10s }}
"#,
            bucket = east.bucket,
            hu = hs.url(),
            replica = d.replica,
            ecs = d.ecs_cluster,
            svc = d.ecs_service,
            eks = d.eks_cluster,
            ng = d.nodegroup,
        );
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let r = Replica::spawn(&floatover_bin(), dir.path(), "bench", &cfg, port)
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        loop {
            let leads = r
                .status()
                .await
                .is_some_and(|s| s["leader"]["is_leader"] == true);
            if leads && r.site("east").await["active"] == true {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err("the sites never settled".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let run = promote(&r, "west", "").await?;
        let whole = span(&run) as f64;
        let mut waited = 0.0;
        for s in run["steps"].as_array().into_iter().flatten() {
            waited += s["waited_ms"].as_u64().unwrap_or(0) as f64;
            steps
                .entry(s["name"].as_str().unwrap_or("?").to_string())
                .or_default()
                .push(span(s) as f64);
        }
        eprintln!(
            "  trial {trial}: run {whole:.0} ms, waits {waited:.0} ms, own {:.0} ms, lag at cut-over {} ms",
            whole - waited,
            run["lag_at_cutover_ms"]
        );
        total.push(whole);
        overhead.push((whole - waited).max(0.0));
    }
    Ok(DataBench {
        total: Series {
            name: "warm promotion with data, whole run".into(),
            samples_ms: total,
            p99_target_ms: None,
            note: "the run record's start -> end: RPO gate, PromoteReadReplica, UpdateService, UpdateNodegroupConfig, Route 53 shift; moto answers at once (AWS takes minutes to promote a replica and to add nodes)".into(),
        },
        overhead: Series {
            name: "warm promotion with data, floatover's own overhead".into(),
            samples_ms: overhead,
            p99_target_ms: Some(1000.0),
            note: "the run's total minus each step's waited_ms: record writes to S3 around every step, hand-offs, the engine's decision".into(),
        },
        steps: ORDER
            .iter()
            .map(|n| Series {
                name: format!("warm promotion with data, step {n}"),
                samples_ms: steps.remove(*n).unwrap_or_default(),
                p99_target_ms: None,
                note: match *n {
                    "rpo" => "one CloudWatch GetMetricData (through moto's CBOR adapter)",
                    "promote_replica" => "DescribeDBInstances, PromoteReadReplica, DescribeDBInstances until standalone and available",
                    "scale_ecs" => "DescribeServices, UpdateService, DescribeServices until running and COMPLETED",
                    "scale_eks_nodegroup" => "DescribeNodegroup, UpdateNodegroupConfig, DescribeNodegroup until ACTIVE",
                    _ => "a lag reading for the record, then the fenced Route 53 switchover",
                }
                .into(),
            })
            .collect(),
    })
}
