//! The demo's region act: two DR sites behind one Route 53 weighted record. `east`
//! (us-east-1, hot, primary) loses its servers; the leader promotes `west` (us-west-2,
//! warm: its standby instance is stopped) step by step: StartInstances, wait until the
//! standby's probe is healthy (its "server" answers a second after LocalStack reports it
//! running), then the weights move. Each step is printed against its budget.

use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::Replica;
use floatover_devkit::{dns, seed};
use std::time::{Duration, Instant};

pub struct RegionAct {
    pub client: aws_sdk_route53::Client,
    pub zone: String,
    pub name: String,
    pub east: HealthServer,
    pub west_url: String,
    pub west_instance: String,
    boot: tokio::task::JoinHandle<()>,
}

impl RegionAct {
    /// The west standby seeded and stopped, health endpoints for both sites, a boot task
    /// that brings west's endpoint up once its instance runs. `zone` is the DNS act's.
    pub async fn prepare(
        endpoint: &str,
        client: aws_sdk_route53::Client,
        zone: &str,
        domain: &str,
    ) -> Result<RegionAct, String> {
        let west = seed::world(
            endpoint,
            "us-west-2",
            1,
            &format!("demo-west-{}", std::process::id()),
        )
        .await
        .map_err(|e| e.to_string())?;
        let ec2 = seed::clients(endpoint, "us-west-2").await.ec2;
        let id = west.instances[0].instance_id.clone();
        ec2.stop_instances()
            .instance_ids(&id)
            .send()
            .await
            .map_err(|e| format!("StopInstances: {e}"))?;
        let t = Instant::now();
        while seed::instance_state(&ec2, &id).await != "stopped" {
            if t.elapsed() > Duration::from_secs(30) {
                return Err("the west standby never stopped".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let east = HealthServer::start().await.map_err(|e| e.to_string())?;
        let mut west_hs = HealthServer::start().await.map_err(|e| e.to_string())?;
        west_hs.stop().await;
        let west_url = west_hs.url();
        let boot_id = id.clone();
        let boot = tokio::spawn(async move {
            loop {
                if seed::instance_state(&ec2, &boot_id).await == "running" {
                    // The instance boots; its server answers a second later.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = west_hs.restart().await;
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(RegionAct {
            client,
            zone: zone.to_string(),
            name: format!("shop.{domain}."),
            east,
            west_url,
            west_instance: id,
            boot,
        })
    }

    /// The `shop` group and the two sites, appended to the replicas' config (after the
    /// other groups: `sites:` is a top-level key).
    pub fn yaml(&self, interval_ms: u64) -> String {
        format!(
            r#"  - name: shop
    targets:
      - {{ name: east, region: us-east-1, dns: {{ value: 10.0.0.10, set_identifier: east }}, priority: 200, probes: [ {{ http: {{ url: "{east}" }}, interval: {interval_ms}ms }} ] }}
      - {{ name: west, region: us-west-2, dns: {{ value: 10.1.0.10, set_identifier: west }}, priority: 100, probes: [ {{ http: {{ url: "{west}" }}, interval: {interval_ms}ms }} ] }}
    floats: [ {{ dns: {{ zone_id: {zone}, name: "{name}", type: A, ttl: 60 }} }} ]
site_policy: {{ grace: 2s }}
sites:
  - {{ name: east, region: us-east-1, tier: hot, primary: true, targets: [shop/east], traffic: [ {{ group: shop, target: east }} ] }}
  - name: west
    region: us-west-2
    tier: warm
    rto: 1m
    rpo: 30s
    # The demo has no database: a command stands in for the replica's lag (on AWS:
    # rds: {{ instance: db-west }}, CloudWatch ReplicaLag).
    replication_lag: {{ exec: {{ command: [sh, -c, "echo 1.8"] }} }}
    instances: [{inst}]
    targets: [shop/west]
    traffic: [ {{ group: shop, target: west }} ]
    steps:
      - start_instances: {{ budget: 10s }}
      - wait_healthy: {{ budget: 20s }}
      - shift: {{ budget: 5s }}
"#,
            east = self.east.url(),
            west = self.west_url,
            zone = self.zone,
            name = self.name,
            inst = self.west_instance,
        )
    }

    pub async fn weights(&self) -> String {
        dns::read(&self.client, &self.zone, &self.name)
            .await
            .map(|(w, _)| {
                w.iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }
}

impl Drop for RegionAct {
    fn drop(&mut self) {
        self.boot.abort();
    }
}

/// One step as a bar: its time in `#`, up to its budget in `.`, over budget in `!`.
pub fn bar(took_ms: u64, budget_ms: u64, width: usize) -> String {
    let budget_ms = budget_ms.max(1);
    let cells = |ms: u64| {
        usize::try_from(ms.saturating_mul(width as u64).div_ceil(budget_ms)).unwrap_or(width)
    };
    let used = cells(took_ms).min(width * 2);
    if used <= width {
        format!("[{}{}]", "#".repeat(used), ".".repeat(width - used))
    } else {
        format!("[{}]{}", "#".repeat(width), "!".repeat(used - width))
    }
}

/// Kill east, watch west's promotion step by step, print the timeline.
pub async fn run(
    say: &dyn Fn(String),
    act: &mut RegionAct,
    leader: &Replica,
) -> Result<(), String> {
    say(format!(
        "DR SITES: {} is shared by site east (us-east-1, hot, primary) and site west (us-west-2, warm: its standby {} is STOPPED)",
        act.name, act.west_instance
    ));
    let t = Instant::now();
    loop {
        let (e, w) = (leader.site("east").await, leader.site("west").await);
        if e["active"] == true && e["healthy"] == true && w["ready"] == true {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("the sites never settled: {e} {w}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say(format!(
        "east takes the traffic ({}); west passed pre-flight (standby exists, StartInstances DryRun ok). West's plan: rpo (its replication lag within the 30 s RPO, else an automatic promotion waits for a person), start_instances (budget 10 s), wait_healthy (20 s), shift (5 s); RTO 1 min",
        act.weights().await
    ));
    say("REGION FAILURE: every server of site east dies".into());
    act.east.stop().await;
    let died = Instant::now();
    let mut printed = 0usize;
    let mut announced = false;
    let run = loop {
        let run = leader.site("west").await["run"].clone();
        if !announced && run["state"] == "running" {
            announced = true;
            say(format!(
                "site east below quorum for the 2 s grace: promoting west ({})",
                run["trigger"].as_str().unwrap_or("?")
            ));
        }
        let steps = run["steps"].as_array().cloned().unwrap_or_default();
        while printed < steps.len()
            && matches!(
                steps[printed]["state"].as_str(),
                Some("done" | "failed" | "skipped")
            )
        {
            let s = &steps[printed];
            let took = s["finished_unix_ms"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(s["started_unix_ms"].as_u64().unwrap_or(0));
            say(format!(
                "  step {:<16} {} in {:.2} s of its {} s budget: {}",
                s["name"].as_str().unwrap_or("?"),
                s["state"].as_str().unwrap_or("?"),
                took as f64 / 1e3,
                s["budget_ms"].as_u64().unwrap_or(0) / 1000,
                s["detail"].as_str().or(s["error"].as_str()).unwrap_or("")
            ));
            printed += 1;
        }
        if run["state"] == "succeeded" || run["state"] == "failed" {
            break run;
        }
        if died.elapsed() > Duration::from_secs(90) {
            return Err(format!("the promotion of west never finished: {run}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if run["state"] != "succeeded" {
        return Err(format!(
            "the promotion of west failed: {}",
            run["error"].as_str().unwrap_or("?")
        ));
    }
    let total = run["finished_unix_ms"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(run["started_unix_ms"].as_u64().unwrap_or(0));
    say(format!(
        "west takes the traffic {:.1} s after east died ({}); the promotion itself took {:.1} s of its 60 s RTO",
        died.elapsed().as_secs_f64(),
        act.weights().await,
        total as f64 / 1e3
    ));
    say(
        match (run["lag_at_cutover_ms"].as_u64(), run["rpo_ms"].as_u64()) {
            (Some(lag), Some(rpo)) => format!(
                "RPO: replication lag at cut-over {:.1} s, {} the RPO of {} s (the writes a real failover at that moment could lose)",
                lag as f64 / 1e3,
                if lag <= rpo { "within" } else { "OVER" },
                rpo / 1000
            ),
            _ => "RPO: replication lag at cut-over unknown".into(),
        },
    );
    println!("\n  timeline of the promotion (# time taken, . rest of the step's budget):");
    for s in run["steps"].as_array().into_iter().flatten() {
        let took = s["finished_unix_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(s["started_unix_ms"].as_u64().unwrap_or(0));
        let budget = s["budget_ms"].as_u64().unwrap_or(0);
        println!(
            "  {:<16} {} {:>6.2} s / {:>3} s",
            s["name"].as_str().unwrap_or("?"),
            bar(took, budget, 40),
            took as f64 / 1e3,
            budget / 1000
        );
    }
    println!(
        "  {:<16} {} {:>6.2} s / {:>3} s",
        "total (RTO)",
        bar(total, 60_000, 40),
        total as f64 / 1e3,
        60
    );
    println!("  (`floatover drill west --out DIR` writes the same timeline as an SVG report)\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bars_show_time_against_budget() {
        assert_eq!(super::bar(0, 1000, 4), "[....]");
        assert_eq!(super::bar(500, 1000, 4), "[##..]");
        assert_eq!(super::bar(1500, 1000, 4), "[####]!!");
    }
}
