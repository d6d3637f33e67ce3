//! DR sites on LocalStack, continued: a leader killed in the middle of a promotion,
//! pre-flight, and a drill with its report.

mod common;

use common::bin;
use common::sites::*;
use floatover::site::record::RunState;
use floatover_devkit::replica::{Replica, free_port, metric_sum};
use serde_json::Value;
use std::time::Duration;

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
        eventually(Duration::from_secs(30), async || {
            for (i, r) in rs.iter().enumerate() {
                if leads(r).await {
                    leader = Some(i);
                    return true;
                }
            }
            false
        })
        .await
        .is_some(),
        "a leader"
    );
    let l = leader.expect("leader");
    let other = 1 - l;
    let (code, out) = cli(&rs[l], &["west"]);
    assert_eq!(code, Some(0), "{out}");
    let in_slow = eventually(Duration::from_secs(30), async || {
        step_state(&site_api(&rs[l]).await, "west", "slow") == "running"
    })
    .await
    .is_some();
    assert!(in_slow, "{:#}", site_api(&rs[l]).await);
    let before = json_of(&site_api(&rs[l]).await, "west")["run"].clone();
    rs[l].kill9();
    // The standby takes the lease and resumes the run from the record.
    let done = eventually(Duration::from_secs(40), async || {
        let v = site_api(&rs[other]).await;
        site(&v, "west")
            .run
            .is_some_and(|r| r.state == RunState::Succeeded)
    })
    .await
    .is_some();
    let v = site_api(&rs[other]).await;
    assert!(done, "{v:#}");
    let after = &json_of(&v, "west")["run"];
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
    assert!(site(&v, "west").active);
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
    let shown = eventually(Duration::from_secs(20), async || {
        let v = site_api(&r).await;
        (site(&v, "west").ready == Some(false))
            && (site(&v, "central").ready == Some(false))
            && (site(&v, "east").ready == Some(true))
    })
    .await
    .is_some();
    let v = site_api(&r).await;
    assert!(shown, "{v:#}");
    assert!(
        json_of(&v, "west")["not_ready"]
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
    let r = spawn_steady(&s, &west_url, "").await;
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
    assert!(site(&site_api(&r).await, "east").active);
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
