//! API hardening and the CLI's manners, against a running controller (LocalStack).

mod common;

use common::{Env, bin};
use floatover_devkit::replica::{Scenario, free_port};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn raw_post(api: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{api}{path}"))
        .header("content-type", content_type)
        .bearer_auth("demo-token-0123456789")
        .body(body)
        .send()
        .await
        .expect("request");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_hostile_requests_and_standbys_name_the_leader() {
    let mut env = Env::new(2, Scenario::default(), "api").await;
    env.spawn_replica();
    env.spawn_replica();
    assert!(env.wait_eip_on(0, Duration::from_secs(20)).await.is_some());
    let (leader, _) = env
        .wait_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let standby = 1 - leader;
    let api = env.replicas[leader].api.clone();

    // 413 for an oversize body, 415 for a body that is not JSON.
    let (code, body) = raw_post(
        &api,
        "/api/v1/groups/web/switchover",
        "application/json",
        vec![b' '; 64 * 1024],
    )
    .await;
    assert_eq!(code, 413, "{body}");
    let (code, body) = raw_post(
        &api,
        "/api/v1/groups/web/switchover",
        "text/plain",
        b"{\"to\":\"standby\"}".to_vec(),
    )
    .await;
    assert_eq!(code, 415, "{body}");
    // No echo of unbounded input.
    let long = "x".repeat(5_000);
    let (code, body) = raw_post(
        &api,
        &format!("/api/v1/groups/{long}/switchover"),
        "application/json",
        b"{\"to\":\"standby\"}".to_vec(),
    )
    .await;
    assert_eq!(code, 404);
    assert!(
        body.len() < 400,
        "answer echoes the input: {} bytes",
        body.len()
    );

    // A standby's 503 names the leader and its API address (once it has read the lease).
    assert!(
        env.until(Duration::from_secs(5), || async {
            env.replicas[standby]
                .status()
                .await
                .is_some_and(|s| s["lease"]["holder_api"].is_string())
        })
        .await
        .is_some()
    );
    let c = reqwest::Client::new();
    let r = c
        .post(format!(
            "{}/api/v1/groups/web/switchover",
            env.replicas[standby].api
        ))
        .bearer_auth("demo-token-0123456789")
        .json(&serde_json::json!({"to": "standby"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 503);
    let b: serde_json::Value = r.json().await.expect("json");
    assert_eq!(b["leader_api"].as_str(), Some(api.as_str()), "{b}");

    // A client that never finishes its headers is dropped.
    let addr = api.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "slow-header connection must be closed");
    eprintln!("slow-header client dropped after {:?}", t.elapsed());

    // CLI: host:port without a scheme, status with human ages and the lease's health.
    let out = Command::new(bin())
        .args(["status", "--api", &addr])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("lease store: last answered") && text.contains("s ago"),
        "{text}"
    );
    // URL-encoded names: a group with a slash is just an unknown group.
    let out = Command::new(bin())
        .args([
            "switchover",
            "we/b",
            "standby",
            "--api",
            &addr,
            "--token",
            "demo-token-0123456789",
        ])
        .output()
        .expect("switchover");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown group \"we/b\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // JSON logs: no key twice on a line; epoch always a number.
    for r in &env.replicas {
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(obj) = v.as_object() else { continue };
            for k in obj.keys() {
                assert_eq!(
                    line.matches(&format!("\"{k}\":")).count(),
                    1,
                    "key {k} repeated: {line}"
                );
            }
            if let Some(e) = obj.get("epoch") {
                assert!(e.is_u64(), "epoch is not a number: {line}");
            }
        }
    }
}

#[test]
fn cli_explains_a_refused_connection_and_missing_credentials() {
    let port = free_port();
    let out = Command::new(bin())
        .args(["status", "--api", &format!("127.0.0.1:{port}")])
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connection refused") && err.contains("is floatover running?"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "api: {{ listen: \"127.0.0.1:{}\" }}\naws: {{ region: us-east-1, endpoint_url: \"http://127.0.0.1:9\" }}\nleader: {{ backend: single }}\ngroups:\n  - name: web\n    targets: [{{ name: a, instance_id: i-a, probes: [{{ tcp: {{ address: \"127.0.0.1:9\" }} }}] }}]\n    floats: [{{ eip: {{ allocation_id: eipalloc-1 }} }}]\n",
            free_port()
        ),
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("AWS_ACCESS_KEY_ID") && lines[0].contains("test / test"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI colours when stderr is not a terminal: {err}"
    );
}
