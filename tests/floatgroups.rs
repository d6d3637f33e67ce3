//! FloatGroup objects as the group source, with the real binary: LocalStack for EC2 and
//! the in-test Kubernetes API server (`FakeKube`, a test double: no real API server can
//! be installed on these machines) for the FloatGroups, their status, Events and the
//! leader's Lease. An object added takes effect without a restart, the leader writes its
//! status and an Event on every move, a bad edit is refused alone with the previous spec
//! still failing over, a fixed one runs, and a deleted one stops.

mod common;

use common::{Env, bin};
use floatover_devkit::eventually::eventually;
use floatover_devkit::kubeapi::FakeKube;
use floatover_devkit::replica::{Replica, Scenario, Stderr, free_port, metric_sum, render_config};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "prod";

/// The scenario's config split in two: the file without groups (the groups come from
/// objects; the leader is a Lease on the same API server), and the group's spec.
fn split_config(full: &str, identity: &str) -> (String, Value) {
    let (head, _) = full.split_once("groups:\n").expect("config has groups");
    let head = head.replace(
        &format!("leader: {{ backend: single, identity: {identity} }}"),
        &format!("leader: {{ backend: kubernetes, identity: {identity}, kubernetes: {{ namespace: {NS} }} }}"),
    );
    let file = format!("{head}group_source: {{ kubernetes: {{ namespace: {NS} }} }}\n");
    let doc: Value = serde_saphyr::from_str(full).expect("yaml");
    let mut spec = doc["groups"][0].clone();
    if let Some(m) = spec.as_object_mut() {
        m.remove("name");
    }
    (file, spec)
}

fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{ server: \"{url}\" }}\ncontexts:\n- name: fake\n  context: {{ cluster: fake, user: fake, namespace: {NS} }}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{ token: test }}\n"
    )
}

fn events(api: &FakeKube, reason: &str) -> Vec<Value> {
    api.events(NS)
        .into_iter()
        .filter(|e| e["reason"] == reason && e["involvedObject"]["name"] == "web")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floatgroups_drive_the_controller_and_carry_its_status_and_events() {
    let sc = Scenario {
        s3_lease: false,
        min_hold_ms: 0,
        ..Default::default()
    };
    let mut env = Env::new(2, sc, "fg").await;
    let api = FakeKube::new();
    let url = api.serve().await.expect("fake API server");
    let kc = env.dir.path().join("kubeconfig");
    std::fs::write(&kc, kubeconfig(&url)).expect("kubeconfig");
    let port = free_port();
    let urls: Vec<String> = env.health.iter().map(|h| h.url()).collect();
    let full = render_config(&env.world, &env.scenario, &urls, port, "r0");
    let (file, spec) = split_config(&full, "r0");
    let kc_s = kc.display().to_string();
    env.replicas.push(
        Replica::spawn_with(
            &bin(),
            env.dir.path(),
            "r0",
            &file,
            port,
            &[("KUBECONFIG", kc_s.as_str()), ("POD_NAME", "floatover-0")],
            Stderr::LogFile,
        )
        .expect("spawn"),
    );
    let r = &env.replicas[0];
    let pid = r.pid();

    // 0. No FloatGroup yet: an idle controller that leads and is ready.
    let idle = eventually(Duration::from_secs(15), async || {
        r.get("/readyz").await.map(|(c, _)| c) == Some(200) && env.leader().await == Some(0)
    })
    .await
    .is_some();
    if !idle {
        env.dump_logs();
    }
    assert!(
        idle,
        "an idle controller (no FloatGroups) is ready and leads"
    );

    // 1. A FloatGroup appears: its float is placed, without a restart.
    api.apply_floatgroup(NS, "web", spec.clone());
    let placed = env.wait_eip_on(0, Duration::from_secs(20)).await.is_some();
    if !placed {
        env.dump_logs();
    }
    assert!(placed, "the FloatGroup's EIP was never placed");
    assert_eq!(env.replicas[0].pid(), pid, "no restart");
    let r = &env.replicas[0];
    // The leader writes its status: owner, epoch, each target's health, the generation.
    let ok = eventually(Duration::from_secs(10), async || {
        let st = &api.floatgroup(NS, "web").unwrap_or_default()["status"];
        st["owner"] == "primary"
            && st["epoch"].as_u64().is_some_and(|e| e >= 1)
            && st["observedGeneration"] == 1
            && st["targets"]
                == json!([{"name": "primary", "health": "up"}, {"name": "standby", "health": "up"}])
    })
    .await
    .is_some();
    assert!(
        ok,
        "status never written: {}",
        api.floatgroup(NS, "web").unwrap_or_default()
    );
    assert!(
        eventually(Duration::from_secs(5), async || !events(&api, "FailedOver")
            .is_empty())
        .await
        .is_some(),
        "an Event for the first placement: {:?}",
        api.events(NS)
    );
    let first = &events(&api, "FailedOver")[0];
    assert_eq!(first["type"], "Normal");
    assert_eq!(first["involvedObject"]["kind"], "FloatGroup");
    assert!(
        first["message"]
            .as_str()
            .unwrap_or("")
            .contains("-> primary"),
        "{first}"
    );

    // 2. A bad edit (a probe URL that is not http) is refused alone: the message names the
    // field, a Warning Event says so, the old spec keeps running.
    let mut bad = spec.clone();
    bad["targets"][0]["probes"][0]["http"]["url"] = json!("ftp://nowhere");
    api.apply_floatgroup(NS, "web", bad);
    let refused = eventually(Duration::from_secs(10), async || {
        let st = &api.floatgroup(NS, "web").unwrap_or_default()["status"];
        st["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("FloatGroup web: spec.targets[0].probes[0].http.url"))
            && st["observedGeneration"] == 1
    })
    .await
    .is_some();
    assert!(
        refused,
        "refusal not shown: {}",
        api.floatgroup(NS, "web").unwrap_or_default()
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            events(&api, "SpecRejected")
                .iter()
                .any(|e| e["type"] == "Warning")
        })
        .await
        .is_some()
    );
    let status = r.status().await.expect("status");
    assert!(
        status.to_string().contains("floatgroup/web")
            || status["warnings"].to_string().contains("spec.targets[0]"),
        "status API shows the refusal: {status}"
    );
    let m = r.metrics().await.expect("metrics");
    assert!(
        metric_sum(&m, "floatover_config_reloads_total", &|l| l
            .contains("rejected"))
            >= 1.0,
        "{m}"
    );
    assert_eq!(metric_sum(&m, "floatover_config_valid", &|_| true), 0.0);

    // 3. The previous spec still fails over: the primary dies, the float moves, the status
    // and an Event say so.
    env.health[0].stop().await;
    let moved = env.wait_eip_on(1, Duration::from_secs(20)).await.is_some();
    if !moved {
        env.dump_logs();
    }
    assert!(moved, "no failover under the previous spec");
    let r = &env.replicas[0];
    assert!(
        eventually(Duration::from_secs(10), async || {
            let st = &api.floatgroup(NS, "web").unwrap_or_default()["status"];
            st["owner"] == "standby" && st["lastTransition"].is_string()
        })
        .await
        .is_some(),
        "{}",
        api.floatgroup(NS, "web").unwrap_or_default()
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            events(&api, "FailedOver").iter().any(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("primary -> standby")
            })
        })
        .await
        .is_some(),
        "{:?}",
        api.events(NS)
    );

    // 4. A fixed spec runs: the refusal clears and the new generation is observed.
    env.health[0].restart().await.expect("health back");
    let mut fixed = spec.clone();
    fixed["policy"]["preempt"] = json!(false);
    api.apply_floatgroup(NS, "web", fixed);
    let cleared = eventually(Duration::from_secs(15), async || {
        let st = &api.floatgroup(NS, "web").unwrap_or_default()["status"];
        st["observedGeneration"] == 3 && st["message"].is_null()
    })
    .await
    .is_some();
    assert!(cleared, "{}", api.floatgroup(NS, "web").unwrap_or_default());
    let m = r.metrics().await.expect("metrics");
    assert_eq!(
        metric_sum(&m, "floatover_config_valid", &|_| true),
        1.0,
        "{m}"
    );

    // 5. A refused config file (the other source of a reload): the running config stays,
    // status and metrics say so, and a Warning Event lands on this Pod.
    let path = env.dir.path().join("r0.yaml");
    let good = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        good.replace("resync_interval: 2000ms", "resync_interval: 0ms"),
    )
    .expect("write");
    let pod_event = eventually(Duration::from_secs(10), async || {
        api.events(NS).iter().any(|e| {
            e["reason"] == "ConfigRejected"
                && e["involvedObject"]["kind"] == "Pod"
                && e["involvedObject"]["name"] == "floatover-0"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("resync_interval")
        })
    })
    .await
    .is_some();
    assert!(pod_event, "{:?}", api.events(NS));
    let status = r.status().await.expect("status");
    assert!(
        status["warnings"].to_string().contains("resync_interval"),
        "{status}"
    );
    std::fs::write(&path, good).expect("write");
    let clear = eventually(Duration::from_secs(10), async || {
        r.status()
            .await
            .is_some_and(|s| !s["warnings"].to_string().contains("resync_interval"))
    })
    .await
    .is_some();
    assert!(clear, "the refusal clears once the file is good again");

    // 6. The object is deleted: the group stops running (status lists no group).
    api.delete_floatgroup(NS, "web");
    let gone = eventually(Duration::from_secs(15), async || {
        r.status()
            .await
            .is_some_and(|s| s["groups"].as_array().is_some_and(|g| g.is_empty()))
    })
    .await
    .is_some();
    assert!(gone, "{:?}", r.status().await);
    assert_eq!(env.replicas[0].pid(), pid, "never restarted as a process");
    assert!(env.replicas[0].child_status().is_none(), "still running");
}

#[test]
fn check_names_each_refused_manifest_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "leader: { backend: single }\naws: { region: us-east-1 }\ngroup_source: { kubernetes: {} }\n",
    )
    .expect("write");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(bin())
            .arg("check")
            .arg("-c")
            .arg(&cfg)
            .args(extra)
            .output()
            .expect("run check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, _) = run(&[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("groups come from FloatGroup objects"), "{out}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/floatgroup.yaml");
    let (code, out, err) = run(&["--floatgroups", example]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("FloatGroup web: ok"), "{out}");
    // A second object with an unknown key and the example's EIP: refused, naming the field.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(example).expect("example")
        + "---\napiVersion: floatover.io/v1alpha1\nkind: FloatGroup\nmetadata: { name: api }\nspec:\n  targets: [ { name: a, instance_id: i-0000000000000000a, probez: [] } ]\n  floats: []\n";
    std::fs::write(&bad, text).expect("write");
    let (code, out, err) = run(&["--floatgroups", bad.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("FloatGroup web: ok"), "{out}");
    assert!(
        err.contains("FloatGroup api: spec.targets[0].probez: unknown field"),
        "{err}"
    );
}
