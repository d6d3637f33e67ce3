//! `floatover plan` is a dry run: it shows the move the controller would make and mutates
//! nothing. Also: a running replica's /healthz, /readyz and /metrics.

mod common;

use common::{Env, bin};
use floatover_devkit::replica::{Scenario, free_port, render_config};
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_the_move_and_mutates_nothing() {
    let env = Env::new(
        2,
        Scenario {
            s3_lease: false,
            ..Default::default()
        },
        "plan",
    )
    .await;
    let urls: Vec<String> = env.health.iter().map(|h| h.url()).collect();
    let cfg = env.dir.path().join("plan.yaml");
    std::fs::write(
        &cfg,
        render_config(&env.world, &env.scenario, &urls, free_port(), "planner"),
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["plan", "-c"])
        .arg(&cfg)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run plan");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("desired owner primary"), "{stdout}");
    assert!(
        stdout.contains("WOULD move") && stdout.contains("to primary (failover)"),
        "{stdout}"
    );
    assert_eq!(env.eip_holder().await, None, "plan must not mutate");

    // --json is machine-readable.
    let out = Command::new(bin())
        .args(["plan", "--json", "-c"])
        .arg(&cfg)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run plan");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["groups"][0]["actions"][0]["to"], "primary");
    assert_eq!(v["sites"], serde_json::json!([]));
    assert_eq!(env.eip_holder().await, None, "plan must not mutate");

    // A config naming a float and an instance that do not exist: exit 1, both named.
    let text = render_config(&env.world, &env.scenario, &urls, free_port(), "planner")
        .replace(&env.world.allocation_id, "eipalloc-0000doesnotexist")
        .replace(&env.world.instances[1].instance_id, "i-0000doesnotexist");
    std::fs::write(&cfg, text).expect("write");
    let out = Command::new(bin())
        .args(["plan", "-c"])
        .arg(&cfg)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run plan");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("eip:eipalloc-0000doesnotexist does not exist")
            && all.contains("instance i-0000doesnotexist"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics_endpoints() {
    let mut env = Env::new(
        2,
        Scenario {
            s3_lease: false,
            ..Default::default()
        },
        "api",
    )
    .await;
    env.spawn_replica();
    let api = env.replicas[0].api.clone();
    let c = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = c.get(format!("{api}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz never became 200");
    let h = c
        .get(format!("{api}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(h.status(), 200);
    assert!(env.wait_eip_on(0, Duration::from_secs(20)).await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = env.replicas[0].metrics().await.expect("metrics");
    for name in [
        "floatover_leader 1",
        "floatover_target_health{",
        "floatover_probe_duration_seconds_bucket{",
        "floatover_float_owner{",
        "floatover_moves_total{group=\"web\",reason=\"failover\"} 1",
        "floatover_provider_calls_total{op=\"AssociateAddress\"} 1",
        "floatover_reconcile_duration_seconds_count",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
}
