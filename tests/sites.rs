//! DR sites on LocalStack, two regions, the real binary with the S3 lease (the promotion
//! record lives beside it). The primary site in us-east-1 loses its health quorum; the
//! warm site in us-west-2 is promoted step by step: its stopped standby is started
//! (StartInstances), its probe turns healthy (the "instance" boots: a health server
//! starts when LocalStack reports it running), a hook runs, and only then the Route 53
//! weights move. Every step is in the record with its timing.

mod common;

use common::bin;
use common::sites::*;
use floatover::site::record::RunState;
use floatover_devkit::replica::{Replica, free_port, metric_sum};
use floatover_devkit::seed;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_site_is_promoted_step_by_step_when_the_primary_loses_quorum() {
    let (mut s, west_url, boot) = sites("site").await;
    let port = free_port();
    let cfg = config(&s, port, &west_url, "");
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    let dump = |r: &Replica| {
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        eprintln!("---- log, newest first ----\n{}", tail.join("\n"));
    };
    // Steady: east leads the traffic, the sites API says so.
    let steady = eventually(Duration::from_secs(20), async || {
        let v = site_api(&r).await;
        site(&v, "east").active && site(&v, "east").healthy
    })
    .await
    .is_some();
    if !steady {
        dump(&r);
    }
    assert!(steady, "{}", site_api(&r).await);
    // The active site's record is set to its full weight by the www group's first
    // reconcile, which may come just after the sites API first answers.
    let full = [("east".to_string(), 100), ("west".to_string(), 0)];
    let set = eventually(Duration::from_secs(10), async || weights(&s).await == full).await;
    assert!(set.is_some(), "{:?}", weights(&s).await);

    // The primary site dies: below quorum for the 1 s grace, then west is promoted.
    let died = Instant::now();
    let died_ms = common::now_ms();
    s.east_hs.stop().await;
    let done = eventually(Duration::from_secs(60), async || {
        let v = site_api(&r).await;
        site(&v, "west").active
            && site(&v, "west")
                .run
                .is_some_and(|r| r.state == RunState::Succeeded)
    })
    .await
    .is_some();
    let v = site_api(&r).await;
    if !done {
        dump(&r);
    }
    assert!(done, "{v:#}");
    let took = died.elapsed();
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 0), ("west".to_string(), 100)]
    );

    let run = &json_of(&v, "west")["run"];
    assert!(
        run["trigger"]
            .as_str()
            .unwrap_or("")
            .starts_with("automatic: site east below quorum"),
        "{run:#}"
    );
    assert_eq!(run["from_site"], "east");
    let steps = run["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps
        .iter()
        .map(|x| x["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["start_instances", "wait_healthy", "notify", "shift"]
    );
    for st in steps {
        assert_eq!(st["state"], "done", "{st:#}");
        assert!(
            st["started_unix_ms"].is_u64() && st["finished_unix_ms"].is_u64(),
            "{st:#}"
        );
    }
    // Order: each step starts after the previous one finished; the weights moved only
    // after the standby was healthy.
    for w in steps.windows(2) {
        assert!(
            w[1]["started_unix_ms"].as_u64() >= w[0]["finished_unix_ms"].as_u64(),
            "{w:#?}"
        );
    }
    assert!(
        steps[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("1 instance(s) running"),
        "{:#}",
        steps[0]
    );
    assert_eq!(steps[1]["detail"], "1 of 1 target(s) up");
    assert_eq!(steps[3]["detail"], "www -> west");
    let status: Value = r
        .get("/api/v1/status")
        .await
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or_default();
    let moved = status["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["group"] == "www" && e["reason"] == "switchover" && e["ok"] == true)
        .cloned()
        .unwrap_or_default();
    assert!(
        moved["started_unix_ms"].as_u64() >= steps[1]["finished_unix_ms"].as_u64(),
        "the weights moved before the standby was healthy: {moved:#} vs {:#}",
        steps[1]
    );
    // The hook got the run's JSON.
    let hook: Value = serde_json::from_str(
        &std::fs::read_to_string(s.dir.path().join("hook.json")).expect("the hook ran"),
    )
    .expect("hook JSON");
    assert_eq!(hook["site"], "west");
    assert_eq!(hook["step"], "notify");
    assert_eq!(hook["run"], run["id"]);
    // Metrics and the record beside the lease.
    let m = r.metrics().await.expect("metrics");
    let won = |l: &str| l.contains("site=\"west\"") && l.contains("outcome=\"succeeded\"");
    assert_eq!(
        metric_sum(&m, "floatover_site_promotions_total", &won),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "floatover_site_active", &|l| l
            .contains("site=\"west\"")),
        1.0
    );
    let c = seed::clients(&s.ls.endpoint, "us-east-1").await;
    let body =
        c.s3.get_object()
            .bucket(&s.east.bucket)
            .key("leader.json.sites.json")
            .send()
            .await
            .expect("the record is in S3")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
    let rec: Value = serde_json::from_slice(&body).expect("record JSON");
    assert_eq!(rec["active_site"], "west");
    assert!(rec["current"].is_null(), "{rec:#}");
    eprintln!(
        "run started {} ms after the primary died; finished {} ms after",
        run["started_unix_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(died_ms),
        run["finished_unix_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(died_ms)
    );
    eprintln!(
        "primary died -> west took the traffic in {took:?}; steps: {:?}",
        steps
            .iter()
            .map(|x| (
                x["name"].as_str().unwrap_or(""),
                x["finished_unix_ms"].as_u64().unwrap_or(0)
                    - x["started_unix_ms"].as_u64().unwrap_or(0)
            ))
            .collect::<Vec<_>>()
    );
    boot.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_promotion_waits_for_approval_and_only_one_runs_at_a_time() {
    let (s, west_url, boot) = sites("appr").await;
    let r = spawn_steady(&s, &west_url, "      - approval: { timeout: 60s }\n").await;
    let (code, out) = cli(&r, &["west", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("site west (warm, us-west-2)") && out.contains("approval"),
        "{out}"
    );
    let (code, out) = cli(&r, &["west"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("promotion of west started: run west-"),
        "{out}"
    );
    let (code, out) = cli(&r, &["west"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("already running"), "{out}");
    // The standby starts and turns healthy; then the plan waits for a person.
    let waiting = eventually(Duration::from_secs(30), async || {
        step_state(&site_api(&r).await, "west", "approval") == "running"
    })
    .await
    .is_some();
    assert!(waiting, "{:#}", site_api(&r).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        step_state(&site_api(&r).await, "west", "approval"),
        "running",
        "blocks"
    );
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 100), ("west".to_string(), 0)]
    );
    let (code, out) = cli(&r, &["west", "--approve"]);
    assert_eq!(code, Some(0), "{out}");
    let done = eventually(Duration::from_secs(20), async || {
        site(&site_api(&r).await, "west")
            .run
            .is_some_and(|r| r.state == RunState::Succeeded)
    })
    .await
    .is_some();
    assert!(done, "{:#}", site_api(&r).await);
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 0), ("west".to_string(), 100)]
    );
    let v = site_api(&r).await;
    assert_eq!(
        json_of(&v, "west")["run"]["trigger"],
        "requested through the API"
    );
    assert_eq!(
        json_of(&v, "west")["run"]["approved"],
        serde_json::json!(["west"])
    );
    // Nothing waits any more: a stray approval is refused.
    let (code, out) = cli(&r, &["west", "--approve"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("no approval is waiting for site west"),
        "{out}"
    );
    boot.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_promotion_times_out_and_a_failing_hook_stops_the_plan() {
    let (s, west_url, boot) = sites("stop").await;
    let r = spawn_steady(&s, &west_url, "      - approval: { timeout: 2s }\n").await;
    let (code, out) = cli(&r, &["west"]);
    assert_eq!(code, Some(0), "{out}");
    let failed = eventually(Duration::from_secs(40), async || {
        site(&site_api(&r).await, "west")
            .run
            .is_some_and(|r| r.state == RunState::Failed)
    })
    .await
    .is_some();
    let v = site_api(&r).await;
    assert!(failed, "{v:#}");
    let run = &json_of(&v, "west")["run"];
    assert!(
        run["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("step approval failed: not approved within 2s"),
        "{run:#}"
    );
    assert_eq!(
        step_state(&v, "west", "shift"),
        "pending",
        "nothing after the failed step ran"
    );
    assert!(site(&v, "east").active, "the traffic stays");
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 100), ("west".to_string(), 0)]
    );

    // A failing, non-optional hook: the plan stops there with the program's own words.
    let path = s.dir.path().join("r0.yaml");
    let failing = config(
        &s,
        r.port(),
        &west_url,
        "      - exec: { name: boom, command: [sh, -c, \"echo disk full >&2; exit 4\"] }\n",
    );
    std::fs::write(&path, failing).expect("write");
    // The reload is picked up within the 2 s poll; the plan then shows the new step.
    assert!(
        eventually(Duration::from_secs(15), async || {
            site_api(&r).await["plans"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["steps"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|st| st["name"] == "boom")
                })
        })
        .await
        .is_some(),
        "reloaded"
    );
    let started = eventually(Duration::from_secs(15), async || {
        cli(&r, &["west"]).0 == Some(0)
    })
    .await
    .is_some();
    assert!(started, "promote after the reload");
    let failed = eventually(Duration::from_secs(40), async || {
        let v = site_api(&r).await;
        site(&v, "west")
            .run
            .is_some_and(|r| r.state == RunState::Failed)
            && step_state(&v, "west", "boom") == "failed"
    })
    .await
    .is_some();
    let v = site_api(&r).await;
    assert!(failed, "{v:#}");
    let run = &json_of(&v, "west")["run"];
    assert_eq!(
        run["error"], "step boom failed: sh exited with 4: disk full",
        "{run:#}"
    );
    assert_eq!(step_state(&v, "west", "notify"), "pending");
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 100), ("west".to_string(), 0)]
    );
    let m = r.metrics().await.expect("metrics");
    assert_eq!(
        metric_sum(&m, "floatover_site_promotions_total", &|l| l
            .contains("outcome=\"failed\"")),
        2.0,
        "{m}"
    );
    boot.abort();
}
