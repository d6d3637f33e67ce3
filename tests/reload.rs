//! Live config reload with the real binary against LocalStack: an edited config file takes
//! effect without a restart (same process), a bad one is rejected with the old config
//! still running (and failing over), shown in status and metrics; SIGHUP re-reads at once.

mod common;

use common::Env;
use floatover_devkit::eventually::eventually;
use floatover_devkit::replica::{Floats, Scenario, metric_sum, render_config};
use std::time::Duration;

fn reloads(metrics: &str, outcome: &str) -> f64 {
    metric_sum(metrics, "floatover_config_reloads_total", &|l| {
        l.contains(&format!("outcome=\"{outcome}\""))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_config_takes_effect_without_a_restart_and_a_bad_one_is_rejected() {
    let sc = Scenario {
        s3_lease: true,
        min_hold_ms: 0,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "rl").await;
    env.spawn_replica();
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "initial assignment"
    );
    let pid = env.replicas[0].pid();
    let file = env.dir.path().join("r0.yaml");
    let port: u16 = env.replicas[0]
        .api
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let urls: Vec<String> = env.health.iter().map(|h| h.url()).collect();

    // 1. The file gains a secondary IP and a route: both land on the owner, same process.
    let more = Scenario {
        floats: Floats::All,
        ..env.scenario.clone()
    };
    std::fs::write(&file, render_config(&env.world, &more, &urls, port, "r0")).expect("write");
    let enis = vec![
        env.world.instances[0].eni_id.clone(),
        env.world.instances[1].eni_id.clone(),
    ];
    let (w, c) = (env.world.clone(), &env.clients);
    let took = eventually(Duration::from_secs(20), async || {
        c.ip_holders(&enis, &w.secondary_ip).await == vec![enis[0].clone()]
            && c.route_target(&w.route_table_id, &w.route_destination)
                .await
                .as_deref()
                == Some(w.instances[0].instance_id.as_str())
    })
    .await;
    if took.is_none() {
        env.dump_logs();
    }
    assert!(took.is_some(), "the new floats were never placed");
    assert_eq!(env.replicas[0].pid(), pid, "no restart");
    assert!(env.replicas[0].child_status().is_none(), "still running");
    let m = env.replicas[0].metrics().await.expect("metrics");
    assert_eq!(reloads(&m, "applied"), 1.0, "{m}");
    assert_eq!(metric_sum(&m, "floatover_config_valid", &|_| true), 1.0);

    // 2. A bad config (a float kind that does not exist) is rejected: the old one keeps
    //    running, status and metrics say so.
    let good = std::fs::read_to_string(&file).expect("read");
    std::fs::write(
        &file,
        good.replace("eip: { allocation_id", "elastic_ip: { allocation_id"),
    )
    .expect("write");
    let rejected = eventually(Duration::from_secs(10), async || {
        env.replicas[0]
            .metrics()
            .await
            .is_some_and(|m| reloads(&m, "rejected") >= 1.0)
    })
    .await;
    assert!(rejected.is_some(), "the bad config was not rejected");
    let s = env.replicas[0].status().await.expect("status");
    let warnings = s["warnings"].to_string();
    assert!(
        warnings.contains("config reload rejected") && warnings.contains("elastic_ip"),
        "{warnings}"
    );
    let m = env.replicas[0].metrics().await.expect("metrics");
    assert_eq!(metric_sum(&m, "floatover_config_valid", &|_| true), 0.0);
    // The old config still fails over.
    env.health[0].stop().await;
    assert!(
        env.wait_eip_on(1, Duration::from_secs(10)).await.is_some(),
        "the running config still fails over"
    );

    // 3. The good config back, with SIGHUP: applied at once, the warning goes away.
    std::fs::write(&file, &good).expect("write");
    env.replicas[0].signal("HUP");
    let applied = eventually(Duration::from_secs(10), async || {
        env.replicas[0]
            .metrics()
            .await
            .is_some_and(|m| reloads(&m, "applied") >= 2.0)
    })
    .await;
    assert!(applied.is_some(), "SIGHUP did not reload");
    assert_eq!(env.replicas[0].pid(), pid, "no restart");
    let cleared = eventually(Duration::from_secs(10), async || {
        env.replicas[0]
            .status()
            .await
            .is_some_and(|s| !s["warnings"].to_string().contains("config reload"))
    })
    .await;
    assert!(
        cleared.is_some(),
        "the config warning stays after a good reload"
    );
    // The audit trail survived the reloads.
    let s = env.replicas[0].status().await.expect("status");
    let reasons: Vec<String> = s["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    assert!(reasons.iter().any(|r| r == "failover"), "{reasons:?}");
    let _ = env.replicas[0].terminate();
}
