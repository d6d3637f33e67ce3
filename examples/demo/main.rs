//! The demo: LocalStack, three instances with an Elastic IP, a health endpoint per
//! instance, three floatover replicas electing a leader through an S3 lease. It kills the
//! active instance's health endpoint, brings it back, kills the leader, and prints a
//! timeline. Then the same replicas steer a Route 53 weighted record over three targets in
//! two regions (`dns.rs`), and promote a warm DR site in a second region when the primary
//! region's site dies, step by step against budgets (`region.rs`). Runs by itself, ends by
//! itself, cleans up. `scripts/demo` builds and runs it.

mod dns;
mod region;

use floatover_devkit::LocalStack;
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, Scenario, floatover_bin, free_port, render_config};
use floatover_devkit::seed::{self, Clients, World};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const NAMES: [&str; 3] = ["primary", "standby", "spare"];

struct Demo {
    t0: Instant,
    world: World,
    clients: Clients,
    health: Vec<HealthServer>,
    replicas: Vec<Replica>,
    scenario: Scenario,
}

impl Demo {
    fn say(&self, what: impl AsRef<str>) {
        println!(
            "[t+{:>6.2}s] {}",
            self.t0.elapsed().as_secs_f64(),
            what.as_ref()
        );
    }

    fn name_of(&self, instance: &str) -> &'static str {
        self.world
            .instances
            .iter()
            .position(|i| i.instance_id == instance)
            .map(|i| NAMES[i])
            .unwrap_or("?")
    }

    async fn eip_owner(&self) -> Option<&'static str> {
        self.clients
            .eip_holder(&self.world.allocation_id)
            .await
            .map(|i| self.name_of(&i))
    }

    async fn wait_owner(&self, want: &str, timeout: Duration) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.eip_owner().await == Some(want) {
                return Some(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// The replica that leads (index, identity, epoch).
    async fn leader(&self) -> Option<(usize, String, u64)> {
        for (i, r) in self.replicas.iter().enumerate() {
            if let Some(s) = r.status().await
                && s["leader"]["is_leader"] == true
            {
                return Some((
                    i,
                    s["leader"]["identity"].as_str().unwrap_or("?").to_string(),
                    s["leader"]["epoch"].as_u64().unwrap_or(0),
                ));
            }
        }
        None
    }

    async fn wait_leader(
        &self,
        not: Option<usize>,
        timeout: Duration,
    ) -> Option<((usize, String, u64), Duration)> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Some(l) = self.leader().await
                && Some(l.0) != not
            {
                return Some((l, t.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Wait until the leader's view of `target` has `health`; returns the time it took.
    async fn wait_health(
        &self,
        leader: usize,
        target: &str,
        health: &str,
        timeout: Duration,
    ) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Some(s) = self.replicas[leader].status().await {
                let hit = s["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|g| g["name"] == "web")
                    .flat_map(|g| g["targets"].as_array().into_iter().flatten())
                    .any(|x| x["name"] == target && x["health"] == health);
                if hit {
                    return Some(t.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// The leader's newest move onto `to` (its audit line can trail the move itself by a
    /// few milliseconds: the log is written after the call returns, so wait for it).
    async fn last_audit(&self, leader: usize, to: &str) -> Option<serde_json::Value> {
        let t = Instant::now();
        loop {
            let ev = self.replicas[leader]
                .audit_events()
                .into_iter()
                .rev()
                .find(|e| e["reason"] != "drift");
            if let Some(e) = ev.filter(|e| e["to"] == to) {
                return Some(e);
            }
            if t.elapsed() > Duration::from_secs(3) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn run() -> Result<(), String> {
    let t0 = Instant::now();
    println!(
        "floatover demo: Elastic IP failover between three instances, decided by a fenced leader"
    );
    println!("(everything runs locally: LocalStack stands in for AWS)\n");
    let ls = LocalStack::start().map_err(|e| e.to_string())?;
    let world = seed::world(
        &ls.endpoint,
        "us-east-1",
        3,
        &format!("demo-{}", std::process::id()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let clients = seed::clients(&ls.endpoint, "us-east-1").await;
    let mut health = Vec::new();
    for _ in 0..3 {
        health.push(HealthServer::start().await.map_err(|e| e.to_string())?);
    }
    let mut act = dns::DnsAct::prepare(&ls.endpoint).await?;
    let mut scenario = Scenario {
        failback_delay_ms: 3_000,
        ..Default::default()
    };
    let domain = act
        .name
        .trim_start_matches("www.")
        .trim_end_matches('.')
        .to_string();
    let mut sites =
        region::RegionAct::prepare(&ls.endpoint, act.client.clone(), &act.zone, &domain).await?;
    scenario.extra_yaml = act.group_yaml(scenario.interval_ms) + &sites.yaml(scenario.interval_ms);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut demo = Demo {
        t0,
        world,
        clients,
        health,
        replicas: vec![],
        scenario,
    };
    demo.say(format!("LocalStack ready at {}", ls.endpoint));
    for (i, inst) in demo.world.instances.iter().enumerate() {
        demo.say(format!(
            "instance {:<8} {} (priority {}), health endpoint {}",
            NAMES[i],
            inst.instance_id,
            200 - 50 * i,
            demo.health[i].url()
        ));
    }
    demo.say(format!(
        "Elastic IP {} ({}), lease in s3://{}/leader.json",
        demo.world.public_ip, demo.world.allocation_id, demo.world.bucket
    ));
    demo.say(format!(
        "probes every {} ms, down after {} failures, up after {} successes; failback delay {} ms; lease 4 s, renew deadline 2.5 s",
        demo.scenario.interval_ms, demo.scenario.fall, demo.scenario.rise, demo.scenario.failback_delay_ms
    ));

    let bin = floatover_bin();
    if !bin.exists() {
        return Err(format!(
            "{} not found: run scripts/demo (it builds it)",
            bin.display()
        ));
    }
    let urls: Vec<String> = demo.health.iter().map(|h| h.url()).collect();
    for i in 0..3 {
        let port = free_port();
        let name = format!("replica-{}", i + 1);
        let cfg = render_config(&demo.world, &demo.scenario, &urls, port, &name);
        demo.replicas
            .push(Replica::spawn(&bin, dir.path(), &name, &cfg, port).map_err(|e| e.to_string())?);
        demo.say(format!("started {name} (API {})", demo.replicas[i].api));
    }

    let ((leader, id, epoch), _) = demo
        .wait_leader(None, Duration::from_secs(20))
        .await
        .ok_or("no leader elected")?;
    demo.say(format!(
        "leader elected: {id} (epoch {epoch}); the other two are warm standbys that probe too"
    ));
    demo.wait_owner("primary", Duration::from_secs(20))
        .await
        .ok_or("EIP never assigned to the primary")?;
    demo.say(format!("EIP {} is on primary", demo.world.public_ip));

    println!();
    demo.say("FAILURE: killing primary's health endpoint");
    demo.health[0].stop().await;
    let killed = Instant::now();
    let detect = demo
        .wait_health(leader, "primary", "down", Duration::from_secs(10))
        .await
        .ok_or("primary never marked down")?;
    demo.say(format!(
        "leader marked primary DOWN after {:.0} ms (detection floor {} ms = interval x fall)",
        detect.as_secs_f64() * 1e3,
        demo.scenario.interval_ms * demo.scenario.fall as u64
    ));
    demo.wait_owner("standby", Duration::from_secs(10))
        .await
        .ok_or("EIP never moved to the standby")?;
    let moved = killed.elapsed();
    let ev = demo.last_audit(leader, "standby").await.unwrap_or_default();
    demo.say(format!(
        "EIP moved to standby {:.0} ms after the kill (decision {:.3} ms, AWS call {:.1} ms, reason {}, epoch {})",
        moved.as_secs_f64() * 1e3,
        ev["decision_ms"].as_f64().unwrap_or(f64::NAN),
        ev["call_ms"].as_f64().unwrap_or(f64::NAN),
        ev["reason"].as_str().unwrap_or("?"),
        ev["epoch"]
    ));

    println!();
    demo.say("RECOVERY: bringing primary's health endpoint back");
    demo.health[0].restart().await.map_err(|e| e.to_string())?;
    let back = Instant::now();
    let up = demo
        .wait_health(leader, "primary", "up", Duration::from_secs(10))
        .await
        .ok_or("primary never came back up")?;
    demo.say(format!("leader marked primary UP after {:.0} ms; failback waits {} ms so a flapping server does not get traffic back", up.as_secs_f64() * 1e3, demo.scenario.failback_delay_ms));
    demo.wait_owner("primary", Duration::from_secs(15))
        .await
        .ok_or("no failback")?;
    let ev = demo.last_audit(leader, "primary").await.unwrap_or_default();
    demo.say(format!(
        "EIP back on primary {:.0} ms after recovery (reason {}, AWS call {:.1} ms)",
        back.elapsed().as_secs_f64() * 1e3,
        ev["reason"].as_str().unwrap_or("?"),
        ev["call_ms"].as_f64().unwrap_or(f64::NAN)
    ));

    println!();
    demo.say(format!(
        "CONTROLLER FAILURE: kill -9 of the leader {id} (it cannot release its lease)"
    ));
    demo.replicas[leader].kill9();
    let ((nl, nid, nepoch), took) = demo
        .wait_leader(Some(leader), Duration::from_secs(15))
        .await
        .ok_or("no new leader")?;
    demo.say(format!("{nid} took over after {:.2} s with epoch {nepoch} (lease 4 s: it waited to see the old lease unchanged that long)", took.as_secs_f64()));
    demo.say("FAILURE again under the new leader: killing primary's health endpoint");
    demo.health[0].stop().await;
    let killed = Instant::now();
    demo.wait_owner("standby", Duration::from_secs(10))
        .await
        .ok_or("new leader did not fail over")?;
    let ev = demo.last_audit(nl, "standby").await.unwrap_or_default();
    demo.say(format!(
        "EIP moved to standby {:.0} ms after the kill, by {} under epoch {}",
        killed.elapsed().as_secs_f64() * 1e3,
        ev["replica"].as_str().unwrap_or("?"),
        ev["epoch"]
    ));

    println!();
    dns_act(&demo, &mut act, nl).await?;

    println!();
    region::run(&|m| demo.say(m), &mut sites, &demo.replicas[nl]).await?;

    println!();
    demo.say("shutting down: SIGTERM to the replicas (the leader releases its lease), stopping LocalStack");
    for r in demo.replicas.iter_mut() {
        r.terminate();
    }
    drop(demo);
    drop(ls);
    println!(
        "\ndemo finished. Controller logs were in a temporary directory (JSON lines, message \"audit\" for every move)."
    );
    Ok(())
}

/// Global traffic: the weighted record follows its targets' health.
async fn dns_act(demo: &Demo, act: &mut dns::DnsAct, leader: usize) -> Result<(), String> {
    demo.say(format!(
        "GLOBAL TRAFFIC: {} is a Route 53 weighted record over {} (active-active, weight by capacity)",
        act.name,
        dns::TARGETS
            .iter()
            .map(|(n, r, w)| format!("{n} in {r} (weight {w})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let all = [("use1-a", 100), ("use1-b", 100), ("euw1", 50)];
    act.wait(&all, Duration::from_secs(20))
        .await
        .ok_or("the weighted records were never written")?;
    demo.say(format!(
        "records written: {}; stamp {:?}",
        dns::show(&act.weights().await),
        act.stamp().await
    ));
    demo.say("FAILURE: killing euw1's health endpoint");
    act.health[2].stop().await;
    let killed = Instant::now();
    act.wait(
        &[("use1-a", 100), ("use1-b", 100), ("euw1", 0)],
        Duration::from_secs(10),
    )
    .await
    .ok_or("euw1 was never drained")?;
    let ev = demo.replicas[leader]
        .audit_events()
        .into_iter()
        .rev()
        .find(|e| e["group"] == "global")
        .unwrap_or_default();
    demo.say(format!(
        "euw1 drained {:.0} ms after the kill: {} (one fenced batch: {})",
        killed.elapsed().as_secs_f64() * 1e3,
        dns::show(&act.weights().await),
        ev["detail"].as_str().unwrap_or("?")
    ));
    demo.say("RECOVERY: bringing euw1 back");
    act.health[2].restart().await.map_err(|e| e.to_string())?;
    let back = Instant::now();
    act.wait(&all, Duration::from_secs(15))
        .await
        .ok_or("euw1 never got its weight back")?;
    demo.say(format!(
        "euw1 has its share again {:.0} ms after recovery (rise {} probes, then min_hold 1 s since the last change): {}",
        back.elapsed().as_secs_f64() * 1e3,
        demo.scenario.rise,
        dns::show(&act.weights().await)
    ));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tokio::select! {
        r = run() => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            // Returning drops LocalStack and the replicas, which stops them.
            eprintln!("interrupted; cleaning up");
            ExitCode::FAILURE
        }
    }
}
