//! What health votes cost: two `floatover run` replicas on the S3 lease in LocalStack,
//! each probing the primary through its own health endpoint (200 ms probes, fall 3). The
//! primary dies on both paths at once; time until the EIP is on the standby. Run with and
//! without `health_votes`; the difference is what waiting for a second vantage point
//! costs. Target (issue "One controller across regions"): at most one probe interval +
//! 50 ms over single-view detection.

use crate::stats::{Series, ms, pct};
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, Scenario, floatover_bin, free_port, render_config};
use floatover_devkit::seed;
use std::time::{Duration, Instant};

const INTERVAL_MS: u64 = 200;

async fn one_setting(endpoint: &str, trials: usize, votes: bool) -> Result<Vec<f64>, String> {
    let world = seed::world(
        endpoint,
        "us-east-1",
        2,
        &format!("votes-{}-{}", std::process::id(), rand::random::<u16>()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let clients = seed::clients(endpoint, "us-east-1").await;
    let standby = HealthServer::start().await.map_err(|e| e.to_string())?;
    let mut primary = vec![
        HealthServer::start().await.map_err(|e| e.to_string())?,
        HealthServer::start().await.map_err(|e| e.to_string())?,
    ];
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ports = [free_port(), free_port()];
    let mut rs = vec![];
    for i in 0..2 {
        let mut sc = Scenario {
            interval_ms: INTERVAL_MS,
            min_hold_ms: 0,
            failback_delay_ms: 500,
            ..Scenario::default()
        };
        if votes {
            sc.extra_yaml = format!(
                "health_votes: {{ peers: [\"http://127.0.0.1:{}\"] }}\n",
                ports[1 - i]
            );
        }
        let urls = [primary[i].url(), standby.url()];
        let name = format!("v{i}");
        let cfg = render_config(&world, &sc, &urls, ports[i], &name);
        rs.push(
            Replica::spawn(&floatover_bin(), dir.path(), &name, &cfg, ports[i])
                .map_err(|e| e.to_string())?,
        );
    }
    let on = |i: usize| world.instances[i].instance_id.clone();
    let mut samples = vec![];
    for _ in 0..trials {
        // Steady: the EIP on the primary, and (with votes) each replica has the other's view.
        let t = Instant::now();
        while clients.eip_holder(&world.allocation_id).await != Some(on(0)) {
            if t.elapsed() > Duration::from_secs(30) {
                return Err("the EIP never came back to the primary".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let died = Instant::now();
        primary[0].stop().await;
        primary[1].stop().await;
        while clients.eip_holder(&world.allocation_id).await != Some(on(1)) {
            if died.elapsed() > Duration::from_secs(20) {
                return Err("no failover within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(ms(died.elapsed()));
        // Back for the next trial (failback after its delay).
        for p in &mut primary {
            p.restart().await.map_err(|e| e.to_string())?;
        }
    }
    drop(rs);
    Ok(samples)
}

/// Failover time without and with votes, and the difference of the medians.
pub async fn run(endpoint: &str, trials: usize) -> Result<(Series, Series), String> {
    let single = one_setting(endpoint, trials, false).await?;
    let voted = one_setting(endpoint, trials, true).await?;
    let mut s = single.clone();
    s.sort_by(|a, b| a.total_cmp(b));
    let base = pct(&s, 50.0);
    Ok((
        Series {
            name: "EIP failover, both paths to the primary die, one view".into(),
            samples_ms: single,
            p99_target_ms: None,
            note: format!(
                "two replicas, {INTERVAL_MS} ms probes, fall 3, no health_votes: death -> EIP on the standby"
            ),
        },
        Series {
            name: "the same with health_votes (2 replicas)".into(),
            samples_ms: voted,
            p99_target_ms: Some(base + INTERVAL_MS as f64 + 50.0),
            note: format!(
                "target: the one-view median ({base:.0} ms) + one probe interval ({INTERVAL_MS} ms) + 50 ms"
            ),
        },
    ))
}
