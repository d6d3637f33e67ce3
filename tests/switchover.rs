//! (e) Switchover via the CLI and the API: done for a healthy target, refused for an
//! unhealthy one (409), refused without or with a wrong token (401).

mod common;

use common::{Env, bin};
use floatover_devkit::replica::Scenario;
use std::process::Command;
use std::time::Duration;

async fn post(env: &Env, token: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
    let c = reqwest::Client::new();
    let mut req = c
        .post(format!(
            "{}/api/v1/groups/web/switchover",
            env.replicas[0].api
        ))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_via_cli_and_api_with_refusals() {
    let sc = Scenario {
        s3_lease: false,
        preempt: true,
        failback_delay_ms: 1_000,
        ..Default::default()
    };
    let token = sc.token.clone();
    let mut env = Env::new(3, sc, "e").await;
    env.spawn_replica();
    assert!(env.wait_eip_on(0, Duration::from_secs(20)).await.is_some());
    tokio::time::sleep(Duration::from_millis(800)).await; // spare's health settles too

    // Refused without a token, with a wrong token: nothing moves.
    let (code, _) = post(&env, None, serde_json::json!({"to": "standby"})).await;
    assert_eq!(code, 401);
    let (code, _) = post(
        &env,
        Some("wrong-token-wrong-token"),
        serde_json::json!({"to": "standby"}),
    )
    .await;
    assert_eq!(code, 401);
    // Unknown target and bad body name the problem.
    let (code, body) = post(&env, Some(&token), serde_json::json!({"to": "nope"})).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = post(&env, Some(&token), serde_json::json!({"target": "standby"})).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("to"),
        "{body}"
    );
    assert_eq!(env.eip_holder().await, Some(env.instance(0)));

    // Refused for an unhealthy target.
    env.health[2].stop().await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (code, body) = post(&env, Some(&token), serde_json::json!({"to": "spare"})).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("not healthy"),
        "{body}"
    );

    // API switchover to the standby: done, and sticky (no failback although preempt).
    let (code, body) = post(&env, Some(&token), serde_json::json!({"to": "standby"})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["moved"][0]["reason"], "switchover");
    assert_eq!(env.eip_holder().await, Some(env.instance(1)));
    tokio::time::sleep(Duration::from_millis(1_000 + 1_500)).await;
    assert_eq!(
        env.eip_holder().await,
        Some(env.instance(1)),
        "a switchover is not undone by failback"
    );

    // CLI switchover back to the primary; CLI refusals exit non-zero.
    let api = env.replicas[0].api.clone();
    let run = |args: &[&str], tok: Option<&str>| {
        let mut c = Command::new(bin());
        c.args(args)
            .env("FLOATOVER_API", &api)
            .env_remove("FLOATOVER_TOKEN");
        if let Some(t) = tok {
            c.env("FLOATOVER_TOKEN", t);
        }
        c.output().expect("run cli")
    };
    let out = run(&["switchover", "web", "spare"], Some(&token));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not healthy"));
    let out = run(&["switchover", "web", "primary"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["switchover", "web", "primary"], Some(&token));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("done"));
    assert_eq!(env.eip_holder().await, Some(env.instance(0)));

    // status renders the switchover in the CLI.
    let out = run(&["status"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LEADER") && text.contains("switchover"),
        "{text}"
    );
}
