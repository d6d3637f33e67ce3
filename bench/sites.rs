//! Warm site promotion on LocalStack, two regions: `floatover run` (release) on the S3
//! lease; site west (us-west-2) has one stopped standby. Each trial asks for the
//! promotion of west through the API and times every step from the run record; then
//! promotes east back, stops the standby again and takes west's health endpoint down.
//! floatover's own overhead is the run's total minus what its steps spent waiting on the
//! provider or on probes (`waited_ms` per step): the run record's conditional writes,
//! the hand-offs between steps and the engine's decision.

use crate::stats::{Series, ms};
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, floatover_bin, free_port};
use floatover_devkit::{dns, seed};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub(crate) const TOKEN: &str = "bench-token-0123456789";

pub struct SiteBench {
    pub total: Series,
    pub overhead: Series,
    pub steps: Vec<Series>,
}

async fn wait_state(ec2: &aws_sdk_ec2::Client, id: &str, want: &str) -> Result<(), String> {
    let t = Instant::now();
    while seed::instance_state(ec2, id).await != want {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("{id} never {want}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Ask for a promotion and wait until it ends; returns the run.
pub(crate) async fn promote(r: &Replica, name: &str, previous: &str) -> Result<Value, String> {
    let c = reqwest::Client::new();
    let res = c
        .post(format!("{}/api/v1/sites/{name}/promote", r.api))
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!(
            "promote {name}: {} {}",
            res.status(),
            res.text().await.unwrap_or_default()
        ));
    }
    let t = Instant::now();
    loop {
        let s = r.site(name).await;
        let run = &s["run"];
        if run["id"] != previous && (run["state"] == "succeeded" || run["state"] == "failed") {
            if run["state"] == "failed" {
                return Err(format!("promotion of {name} failed: {}", run["error"]));
            }
            return Ok(run.clone());
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err(format!("promotion of {name} did not end: {run}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn span(s: &Value) -> u64 {
    s["finished_unix_ms"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(s["started_unix_ms"].as_u64().unwrap_or(0))
}

pub async fn run(endpoint: &str, trials: usize) -> Result<SiteBench, String> {
    let tag = format!("sitebench-{}", std::process::id());
    let east = seed::world(endpoint, "us-east-1", 1, &format!("{tag}-e"))
        .await
        .map_err(|e| e.to_string())?;
    let west = seed::world(endpoint, "us-west-2", 1, &format!("{tag}-w"))
        .await
        .map_err(|e| e.to_string())?;
    let wec2 = seed::clients(endpoint, "us-west-2").await.ec2;
    let wid = west.instances[0].instance_id.clone();
    let r53 = dns::client(endpoint).await;
    let zone = dns::zone(&r53, &format!("{tag}.example.test"))
        .await
        .map_err(|e| e.to_string())?;
    let name = format!("shop.{tag}.example.test.");
    let east_hs = HealthServer::start().await.map_err(|e| e.to_string())?;
    let mut west_hs = HealthServer::start().await.map_err(|e| e.to_string())?;
    let port = free_port();
    let cfg = format!(
        r#"api: {{ listen: "127.0.0.1:{port}", token: "{TOKEN}" }}
aws: {{ region: us-east-1, endpoint_url: "{endpoint}", dns_member_writes: upsert }}
leader: {{ backend: s3, identity: bench, s3: {{ bucket: {bucket}, key: leader.json, endpoint_url: "{endpoint}" }} }}
probe_defaults: {{ interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}
groups:
  - name: shop
    targets:
      - {{ name: east, dns: {{ value: 10.0.0.1, set_identifier: east }}, priority: 200, probes: [ {{ http: {{ url: "{eu}" }} }} ] }}
      - {{ name: west, dns: {{ value: 10.1.0.1, set_identifier: west }}, priority: 100, probes: [ {{ http: {{ url: "{wu}" }} }} ] }}
    floats: [ {{ dns: {{ zone_id: {zone}, name: "{name}", type: A, ttl: 60 }} }} ]
site_policy: {{ automatic: false }}
sites:
  - {{ name: east, tier: hot, primary: true, targets: [shop/east], traffic: [ {{ group: shop, target: east }} ] }}
  - name: west
    region: us-west-2
    tier: warm
    instances: [{wid}]
    targets: [shop/west]
    traffic: [ {{ group: shop, target: west }} ]
    steps:
      - start_instances: {{ budget: 20s }}
      - wait_healthy: {{ budget: 20s }}
      - shift: {{ budget: 10s }}
"#,
        bucket = east.bucket,
        eu = east_hs.url(),
        wu = west_hs.url(),
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
        let e = r.site("east").await;
        if leads && e["active"] == true && e["healthy"] == true {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err("the sites never settled".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut total = Vec::new();
    let mut overhead = Vec::new();
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut last_west = String::new();
    let mut last_east = String::new();
    for _ in 0..trials {
        // West scaled down: standby stopped, its server not answering.
        west_hs.stop().await;
        wec2.stop_instances()
            .instance_ids(&wid)
            .send()
            .await
            .map_err(|e| format!("StopInstances: {e}"))?;
        wait_state(&wec2, &wid, "stopped").await?;
        // ... and the controller has seen it go down (else wait_healthy measures nothing).
        let t = Instant::now();
        while r.site("west").await["healthy"] != false {
            if t.elapsed() > Duration::from_secs(10) {
                return Err("west never went down".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The standby "boots": its server answers as soon as LocalStack says running.
        let (ec2, id) = (wec2.clone(), wid.clone());
        let boot = tokio::spawn(async move {
            let _ = wait_state(&ec2, &id, "running").await;
        });
        let asked = Instant::now();
        let promote_west = promote(&r, "west", &last_west);
        let started = async {
            let _ = boot.await;
            west_hs.restart().await.map_err(|e| e.to_string())
        };
        let (run, up) = tokio::join!(promote_west, started);
        up?;
        let run = run?;
        let asked_to_done = ms(asked.elapsed());
        last_west = run["id"].as_str().unwrap_or("").to_string();
        let whole = span(&run) as f64;
        let mut waited = 0.0;
        for s in run["steps"].as_array().into_iter().flatten() {
            waited += s["waited_ms"].as_u64().unwrap_or(0) as f64;
            steps
                .entry(s["name"].as_str().unwrap_or("?").to_string())
                .or_default()
                .push(span(s) as f64);
        }
        total.push(whole);
        overhead.push((whole - waited).max(0.0));
        eprintln!(
            "  trial: run {whole:.0} ms (request -> done {asked_to_done:.0} ms), waits {waited:.0} ms, own {:.0} ms",
            whole - waited
        );
        // Back to east for the next trial.
        let back = promote(&r, "east", &last_east).await?;
        last_east = back["id"].as_str().unwrap_or("").to_string();
    }
    drop(r);
    let order = ["start_instances", "wait_healthy", "shift"];
    Ok(SiteBench {
        total: Series {
            name: "warm site promotion, whole run (start_instances + wait_healthy + shift)".into(),
            samples_ms: total,
            p99_target_ms: None,
            note: "the run record's start -> end (the API request and the polling add about 200 ms more); LocalStack starts an instance at once and the standby's server answers as soon as it runs, so on AWS add the instance's boot; probes 100 ms, rise 2".into(),
        },
        overhead: Series {
            name: "warm site promotion, floatover's own overhead (total - provider and probe waits)".into(),
            samples_ms: overhead,
            p99_target_ms: Some(1000.0),
            note: "the run's total minus each step's waited_ms: conditional writes of the run record to S3 before and after every step, hand-offs between steps and the engine's decision".into(),
        },
        steps: order
            .iter()
            .map(|n| Series {
                name: format!("warm site promotion, step {n}"),
                samples_ms: steps.remove(*n).unwrap_or_default(),
                p99_target_ms: None,
                note: match *n {
                    "start_instances" => "StartInstances, then DescribeInstances every 500 ms until running",
                    "wait_healthy" => "until the standby's probe crosses rise (2 x 100 ms) as the engine sees it",
                    _ => "fenced switchover: one Route 53 change batch (weights, version, stamp) and its read-back",
                }
                .into(),
            })
            .collect(),
    })
}
