//! DR sites on LocalStack, two regions, the real binary with the S3 lease (the promotion
//! record lives beside it). The primary site in us-east-1 loses its health quorum; the
//! warm site in us-west-2 is promoted step by step: its stopped standby is started
//! (StartInstances), its probe turns healthy (the "instance" boots: a health server
//! starts when LocalStack reports it running), a hook runs, and only then the Route 53
//! weights move. Every step is in the record with its timing.

mod common;

use common::bin;
use common::dns::unique;
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, free_port, metric_sum};
use floatover_devkit::seed::{self, World};
use floatover_devkit::{LocalStack, dns, use_test_credentials};
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "site-token-0123456789";

async fn wait(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

struct Sites {
    ls: LocalStack,
    east: World,
    west: World,
    zone: String,
    name: String,
    r53: aws_sdk_route53::Client,
    east_hs: HealthServer,
    dir: tempfile::TempDir,
}

async fn instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let out = ec2.describe_instances().instance_ids(id).send().await;
    out.ok()
        .and_then(|o| {
            o.reservations()
                .first()
                .and_then(|r| r.instances().first())
                .and_then(|i| i.state())
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
        })
        .unwrap_or_default()
}

/// Two regions seeded; the west standby stopped; a weighted record east=1 west=0; a
/// "boot" task that starts the west health server once the instance runs.
async fn sites(tag: &str) -> (Sites, String, tokio::task::JoinHandle<()>) {
    use_test_credentials();
    let ls = LocalStack::start_or_reuse().expect("LocalStack");
    let east = seed::world(&ls.endpoint, "us-east-1", 1, &unique(tag))
        .await
        .expect("seed east");
    let west = seed::world(&ls.endpoint, "us-west-2", 1, &unique(tag))
        .await
        .expect("seed west");
    let wc = seed::clients(&ls.endpoint, "us-west-2").await;
    let wid = west.instances[0].instance_id.clone();
    wc.ec2
        .stop_instances()
        .instance_ids(&wid)
        .send()
        .await
        .expect("stop the west standby");
    assert!(
        wait(Duration::from_secs(20), async || instance_state(
            &wc.ec2, &wid
        )
        .await
            == "stopped")
        .await,
        "west standby never stopped"
    );
    let r53 = dns::client(&ls.endpoint).await;
    let domain = unique(tag);
    let zone = dns::zone(&r53, &domain).await.expect("zone");
    let name = format!("www.{domain}.");
    dns::weighted(
        &r53,
        &zone,
        &name,
        &[("east", "10.0.0.1", 1), ("west", "10.1.0.1", 0)],
    )
    .await
    .expect("records");
    let east_hs = HealthServer::start().await.expect("health");
    let mut west_hs = HealthServer::start().await.expect("health");
    west_hs.stop().await;
    let url = west_hs.url();
    let (ec2, id) = (wc.ec2.clone(), wid.clone());
    let boot = tokio::spawn(async move {
        loop {
            if instance_state(&ec2, &id).await == "running" {
                // The instance boots: its server answers a moment later.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = west_hs.restart().await;
                // Keep it alive for the rest of the test.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let s = Sites {
        ls,
        east,
        west,
        zone,
        name,
        r53,
        east_hs,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    (s, url, boot)
}

fn config(s: &Sites, port: u16, west_url: &str, extra_steps: &str) -> String {
    let ep = &s.ls.endpoint;
    let hook = s.dir.path().join("hook.json");
    format!(
        r#"api: {{ listen: "127.0.0.1:{port}", token: "{TOKEN}" }}
aws: {{ region: us-east-1, endpoint_url: "{ep}", dns_member_writes: upsert }}
leader: {{ backend: s3, identity: r0, s3: {{ bucket: {bucket}, key: leader.json, endpoint_url: "{ep}" }} }}
probe_defaults: {{ interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }}
resync_interval: 2s
groups:
  - name: www
    targets:
      - {{ name: east, dns: {{ value: 10.0.0.1, set_identifier: east }}, priority: 200, probes: [ {{ http: {{ url: "{east_url}" }} }} ] }}
      - {{ name: west, dns: {{ value: 10.1.0.1, set_identifier: west }}, priority: 100, probes: [ {{ http: {{ url: "{west_url}" }} }} ] }}
    floats: [ {{ dns: {{ zone_id: {zone}, name: "{name}", type: A, ttl: 60 }} }} ]
  - name: app-east
    targets: [ {{ name: e1, instance_id: {ei}, probes: [ {{ http: {{ url: "{east_url}" }} }} ] }} ]
    floats: [ {{ eip: {{ allocation_id: {ea} }} }} ]
  - name: app-west
    region: us-west-2
    targets: [ {{ name: w1, instance_id: {wi}, probes: [ {{ http: {{ url: "{west_url}" }} }} ] }} ]
    floats: [ {{ eip: {{ allocation_id: {wa} }} }} ]
site_policy: {{ grace: 1s }}
sites:
  - {{ name: east, tier: hot, primary: true, targets: [app-east/e1], traffic: [ {{ group: www, target: east }} ] }}
  - name: west
    region: us-west-2
    tier: warm
    rto: 60s
    instances: [{wi}]
    targets: [app-west/w1]
    traffic: [ {{ group: www, target: west }} ]
    steps:
      - start_instances: {{ budget: 20s }}
      - wait_healthy: {{ budget: 20s }}
{extra_steps}      - exec: {{ name: notify, command: [sh, -c, "cat > {hook}"], idempotent: true }}
      - shift: {{ budget: 10s }}
"#,
        bucket = s.east.bucket,
        east_url = s.east_hs.url(),
        zone = s.zone,
        name = s.name,
        ei = s.east.instances[0].instance_id,
        ea = s.east.allocation_id,
        wi = s.west.instances[0].instance_id,
        wa = s.west.allocation_id,
        hook = hook.display(),
    )
}

async fn weights(s: &Sites) -> Vec<(String, i64)> {
    dns::read(&s.r53, &s.zone, &s.name)
        .await
        .map(|(w, _)| w.into_iter().collect())
        .unwrap_or_default()
}

async fn site_api(r: &Replica) -> Value {
    r.get("/api/v1/sites")
        .await
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or_default()
}

fn site<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["sites"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

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
    let steady = wait(Duration::from_secs(20), async || {
        let v = site_api(&r).await;
        site(&v, "east")["active"] == true && site(&v, "east")["healthy"] == true
    })
    .await;
    if !steady {
        dump(&r);
    }
    assert!(steady, "{}", site_api(&r).await);
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 100), ("west".to_string(), 0)]
    );

    // The primary site dies: below quorum for the 1 s grace, then west is promoted.
    let died = Instant::now();
    let died_ms = common::now_ms();
    s.east_hs.stop().await;
    let done = wait(Duration::from_secs(60), async || {
        let v = site_api(&r).await;
        site(&v, "west")["active"] == true && site(&v, "west")["run"]["state"] == "succeeded"
    })
    .await;
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

    let run = &site(&v, "west")["run"];
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

async fn leads(r: &Replica) -> bool {
    r.status()
        .await
        .is_some_and(|s| s["leader"]["is_leader"] == true)
}

fn cli(r: &Replica, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(bin())
        .arg("promote")
        .args(args)
        .args(["--api", &r.api, "--token", TOKEN])
        .output()
        .expect("run floatover promote");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn step_state(v: &Value, site_name: &str, step: &str) -> String {
    site(v, site_name)["run"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == step)
        .and_then(|s| s["state"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_promotion_waits_for_approval_and_only_one_runs_at_a_time() {
    let (s, west_url, boot) = sites("appr").await;
    let port = free_port();
    let cfg = config(&s, port, &west_url, "      - approval: { timeout: 60s }\n");
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    assert!(
        wait(Duration::from_secs(20), async || {
            site(&site_api(&r).await, "east")["active"] == true && leads(&r).await
        })
        .await,
        "steady"
    );
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
    let waiting = wait(Duration::from_secs(30), async || {
        step_state(&site_api(&r).await, "west", "approval") == "running"
    })
    .await;
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
    let done = wait(Duration::from_secs(20), async || {
        site(&site_api(&r).await, "west")["run"]["state"] == "succeeded"
    })
    .await;
    assert!(done, "{:#}", site_api(&r).await);
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 0), ("west".to_string(), 100)]
    );
    let v = site_api(&r).await;
    assert_eq!(
        site(&v, "west")["run"]["trigger"],
        "requested through the API"
    );
    assert_eq!(
        site(&v, "west")["run"]["approved"],
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
    let port = free_port();
    let cfg = config(&s, port, &west_url, "      - approval: { timeout: 2s }\n");
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    assert!(
        wait(Duration::from_secs(20), async || {
            site(&site_api(&r).await, "east")["active"] == true && leads(&r).await
        })
        .await,
        "steady"
    );
    let (code, out) = cli(&r, &["west"]);
    assert_eq!(code, Some(0), "{out}");
    let failed = wait(Duration::from_secs(40), async || {
        site(&site_api(&r).await, "west")["run"]["state"] == "failed"
    })
    .await;
    let v = site_api(&r).await;
    assert!(failed, "{v:#}");
    let run = &site(&v, "west")["run"];
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
    assert_eq!(site(&v, "east")["active"], true, "the traffic stays");
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 100), ("west".to_string(), 0)]
    );

    // A failing, non-optional hook: the plan stops there with the program's own words.
    let path = s.dir.path().join("r0.yaml");
    let failing = config(
        &s,
        port,
        &west_url,
        "      - exec: { name: boom, command: [sh, -c, \"echo disk full >&2; exit 4\"] }\n",
    );
    std::fs::write(&path, failing).expect("write");
    // The reload is picked up within the 2 s poll; the plan then shows the new step.
    assert!(
        wait(Duration::from_secs(15), async || {
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
        .await,
        "reloaded"
    );
    let started = wait(Duration::from_secs(15), async || {
        cli(&r, &["west"]).0 == Some(0)
    })
    .await;
    assert!(started, "promote after the reload");
    let failed = wait(Duration::from_secs(40), async || {
        let v = site_api(&r).await;
        site(&v, "west")["run"]["state"] == "failed" && step_state(&v, "west", "boom") == "failed"
    })
    .await;
    let v = site_api(&r).await;
    assert!(failed, "{v:#}");
    let run = &site(&v, "west")["run"];
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_promotion_is_replaced_and_the_next_one_finishes_the_run() {
    let (s, west_url, boot) = sites("resume").await;
    // A slow, idempotent step in the middle: the leader dies while it runs.
    let slow = "      - exec: { name: slow, command: [sleep, \"3\"], idempotent: true }\n";
    let mut rs = Vec::new();
    for name in ["r0", "r1"] {
        let port = free_port();
        let cfg =
            config(&s, port, &west_url, slow).replace("identity: r0", &format!("identity: {name}"));
        rs.push(Replica::spawn(&bin(), s.dir.path(), name, &cfg, port).expect("spawn"));
    }
    let mut leader = None;
    assert!(
        wait(Duration::from_secs(30), async || {
            for (i, r) in rs.iter().enumerate() {
                if leads(r).await {
                    leader = Some(i);
                    return true;
                }
            }
            false
        })
        .await,
        "a leader"
    );
    let l = leader.expect("leader");
    let other = 1 - l;
    let (code, out) = cli(&rs[l], &["west"]);
    assert_eq!(code, Some(0), "{out}");
    let in_slow = wait(Duration::from_secs(30), async || {
        step_state(&site_api(&rs[l]).await, "west", "slow") == "running"
    })
    .await;
    assert!(in_slow, "{:#}", site_api(&rs[l]).await);
    let before = site(&site_api(&rs[l]).await, "west")["run"].clone();
    rs[l].kill9();
    // The standby takes the lease and resumes the run from the record.
    let done = wait(Duration::from_secs(40), async || {
        let v = site_api(&rs[other]).await;
        site(&v, "west")["run"]["state"] == "succeeded"
    })
    .await;
    let v = site_api(&rs[other]).await;
    assert!(done, "{v:#}");
    let after = &site(&v, "west")["run"];
    assert_eq!(after["id"], before["id"], "the same run, resumed");
    assert_eq!(after["resumed"], 1);
    for step in ["start_instances", "wait_healthy"] {
        let find = |r: &Value| {
            r["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"] == step)
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            find(after)["started_unix_ms"],
            find(&before)["started_unix_ms"],
            "{step} was done before the leader died and never ran again"
        );
    }
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 0), ("west".to_string(), 100)]
    );
    assert_eq!(site(&v, "west")["active"], true);
    boot.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_a_missing_instance_and_a_missing_launch_template() {
    let (s, west_url, boot) = sites("pre").await;
    let port = free_port();
    let good = config(&s, port, &west_url, "");
    // A second DR site, cold, whose launch template does not exist, with a hook that is
    // not there; and the warm site pointed at an instance that does not exist.
    let bad = good
        .replace("    instances: [", "    instances: [i-0000000000000dead, ")
        .replace(
            "site_policy: { grace: 1s }",
            "site_policy: { grace: 1s, automatic: false }",
        )
        + r#"  - name: central
    region: eu-central-1
    tier: cold
    launch: { launch_template: lt-0000000000000beef }
    traffic: [ { group: www, target: east } ]
    steps:
      - exec: { command: [/nonexistent/warm-up] }
      - launch: {}
      - shift: {}
"#;
    let path = s.dir.path().join("pre.yaml");
    std::fs::write(&path, &bad).expect("write");
    // On demand: floatover plan.
    let out = std::process::Command::new(bin())
        .args(["plan", "--json", "-c"])
        .arg(&path)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("plan");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let problems = |site_name: &str| -> String {
        v["preflight"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["site"] == site_name)
            .map(|p| p["problems"].to_string())
            .unwrap_or_default()
    };
    assert!(
        problems("west").contains("i-0000000000000dead"),
        "{v:#} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let central = problems("central");
    assert!(
        central.contains("launch template lt-0000000000000beef does not exist in eu-central-1"),
        "{central}"
    );
    assert!(
        central.contains("/nonexistent/warm-up is not an executable file here"),
        "{central}"
    );
    assert_eq!(problems("east"), "[]");

    // In the background: the running controller says so in status and metrics.
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &bad, port).expect("spawn");
    let shown = wait(Duration::from_secs(20), async || {
        let v = site_api(&r).await;
        site(&v, "west")["ready"] == false
            && site(&v, "central")["ready"] == false
            && site(&v, "east")["ready"] == true
    })
    .await;
    let v = site_api(&r).await;
    assert!(shown, "{v:#}");
    assert!(
        site(&v, "west")["not_ready"]
            .to_string()
            .contains("i-0000000000000dead"),
        "{v:#}"
    );
    let m = r.metrics().await.expect("metrics");
    assert_eq!(
        metric_sum(&m, "floatover_site_ready", &|l| l
            .contains("site=\"central\"")),
        0.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "floatover_site_ready", &|l| l.contains("site=\"east\"")),
        1.0,
        "{m}"
    );
    boot.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_promotes_verifies_fails_back_and_writes_its_report() {
    let (s, west_url, boot) = sites("drill").await;
    let port = free_port();
    let cfg = config(&s, port, &west_url, "");
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    assert!(
        wait(Duration::from_secs(20), async || {
            site(&site_api(&r).await, "east")["active"] == true && leads(&r).await
        })
        .await,
        "steady"
    );
    let out_dir = s.dir.path().join("reports");
    let out = std::process::Command::new(bin())
        .args(["drill", "west", "--timeout", "90s", "--out"])
        .arg(&out_dir)
        .args(["--api", &r.api, "--token", TOKEN])
        .output()
        .expect("run floatover drill");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("drill PASSED"), "{text}");
    // Back where it started.
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 100), ("west".to_string(), 0)]
    );
    assert_eq!(site(&site_api(&r).await, "east")["active"], true);
    let file = |ext: &str| {
        std::fs::read_dir(&out_dir)
            .expect("report dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == ext))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let rep: Value = serde_json::from_str(&file("json")).expect("report JSON");
    assert_eq!(rep["verdict"], "passed");
    assert_eq!(rep["site"], "west");
    assert_eq!(rep["from_site"], "east");
    assert_eq!(rep["rto_ms"], 60_000);
    assert_eq!(rep["within_rto"], true);
    let steps = rep["steps"].as_array().expect("steps");
    let names: Vec<String> = steps
        .iter()
        .map(|x| {
            format!(
                "{}:{}",
                x["phase"].as_str().unwrap_or(""),
                x["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "promote:start_instances",
            "promote:wait_healthy",
            "promote:notify",
            "promote:shift",
            "promote:verify",
            "failback:shift"
        ]
    );
    for st in steps {
        assert_eq!(st["state"], "done", "{st:#}");
        assert!(st["took_ms"].as_u64().is_some() && st["budget_ms"].as_u64().is_some());
    }
    let md = file("md");
    assert!(md.starts_with("# Drill of site west: PASSED"), "{md}");
    assert!(md.contains("within the RTO of 60.0 s"), "{md}");
    // The SVG is well-formed XML with one bar per step and the RTO line.
    let svg = file("svg");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses");
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("height") == Some("16"))
        .count();
    assert_eq!(bars, steps.len(), "{svg}");
    assert!(doc.descendants().any(|n| n.text() == Some("RTO")));
    // `FLOATOVER_DRILL_REPORT_DIR=examples/drill-report` refreshes the README's example.
    if let Ok(keep) = std::env::var("FLOATOVER_DRILL_REPORT_DIR") {
        for (ext, text) in [
            ("json", file("json")),
            ("md", file("md")),
            ("svg", svg.clone()),
        ] {
            let text = text.replace(
                &rep["drill_run"].as_str().unwrap_or("").to_string(),
                "example",
            );
            std::fs::write(
                std::path::Path::new(&keep).join(format!("drill-example.{ext}")),
                text,
            )
            .expect("keep the report");
        }
    }
    boot.abort();
}
