//! A promotion whose shift meets a Route 53 change API that does not answer (LocalStack,
//! the real binary, a fault proxy black-holing ChangeResourceRecordSets): the shift step
//! says so in the run record while it runs and tries again within its budget; when the
//! API returns the promotion finishes, and when it never does the step fails at its budget
//! naming the call. Never a hang, never a false success.

mod common;

use common::bin;
use common::sites::*;
use floatover::site::record::RunState;
use floatover_devkit::faultproxy::{FaultProxy, Mode, Ops, Rule};
use floatover_devkit::replica::{Replica, free_port};
use serde_json::Value;
use std::time::Duration;

fn change_api_down() -> Vec<Rule> {
    vec![Rule {
        ops: Ops::Named(vec!["ChangeResourceRecordSets".into()]),
        region: None,
        mode: Mode::Blackhole,
    }]
}

/// The replica behind a proxy, steady with east active; east's servers then die.
async fn promoting(tag: &str) -> (Sites, FaultProxy, Replica, tokio::task::JoinHandle<()>) {
    let (mut s, west_url, boot) = sites(tag).await;
    let proxy = FaultProxy::start(&s.ls.endpoint).await.expect("proxy");
    let port = free_port();
    let cfg: String = config(&s, port, &west_url, "")
        .lines()
        .map(|l| {
            if l.starts_with("aws:") {
                format!("{}\n", l.replace(&s.ls.endpoint, &proxy.url))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    let steady = eventually(Duration::from_secs(20), async || {
        site(&site_api(&r).await, "east").active && leads(&r).await
    })
    .await;
    assert!(steady.is_some(), "not steady: {}", site_api(&r).await);
    proxy.set(change_api_down());
    s.east_hs.stop().await;
    (s, proxy, r, boot)
}

/// West still has no weight: the traffic never moved.
async fn assert_unmoved(s: &Sites) {
    let w = weights(s).await;
    assert!(
        w.iter().any(|(id, weight)| id == "west" && *weight == 0),
        "the traffic did not move: {w:?}"
    );
}

fn shift_step(v: &Value) -> Value {
    json_of(v, "west")["run"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "shift")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_that_meets_a_dead_change_api_says_so_and_finishes_when_it_returns() {
    let (s, proxy, r, _boot) = promoting("shiftretry").await;
    // The run reaches the shift; each failed attempt shows in the record while it runs.
    let retrying = eventually(Duration::from_secs(40), async || {
        let v = site_api(&r).await;
        let st = shift_step(&v);
        st["state"] == "running"
            && st["detail"].as_str().is_some_and(|d| {
                d.contains("attempt 1 failed") && d.contains("ChangeResourceRecordSets")
            })
    })
    .await;
    let v = site_api(&r).await;
    assert!(retrying.is_some(), "{v:#}");
    assert_eq!(
        site(&v, "west").run.map(|x| x.state),
        Some(RunState::Running),
        "neither failed nor succeeded while the API is down"
    );
    assert_unmoved(&s).await;

    // The change API returns: the promotion finishes within the shift's budget.
    proxy.pass();
    let done = eventually(Duration::from_secs(20), async || {
        site(&site_api(&r).await, "west")
            .run
            .is_some_and(|x| x.state == RunState::Succeeded)
    })
    .await;
    let v = site_api(&r).await;
    assert!(done.is_some(), "{v:#}");
    let st = shift_step(&v);
    assert!(st["attempts"].as_u64().unwrap_or(0) >= 2, "{st:#}");
    assert_eq!(st["detail"], "www -> west");
    assert_eq!(
        weights(&s).await,
        [("east".to_string(), 0), ("west".to_string(), 100)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_whose_change_api_never_returns_fails_at_its_budget_naming_the_call() {
    let (s, _proxy, r, _boot) = promoting("shiftfail").await;
    let failed = eventually(Duration::from_secs(60), async || {
        site(&site_api(&r).await, "west")
            .run
            .is_some_and(|x| x.state == RunState::Failed)
    })
    .await;
    let v = site_api(&r).await;
    assert!(failed.is_some(), "{v:#}");
    let st = shift_step(&v);
    assert_eq!(st["state"], "failed", "{st:#}");
    let err = st["error"].as_str().unwrap_or("");
    assert!(
        err.contains("www -> west") && err.contains("ChangeResourceRecordSets"),
        "{st:#}"
    );
    assert!(st["attempts"].as_u64().unwrap_or(0) >= 2, "{st:#}");
    // The step's hard limit (twice its 10 s budget, without abort_over_budget) bounds it,
    // and it is marked over budget; the traffic never moved.
    let took =
        st["finished_unix_ms"].as_u64().unwrap_or(0) - st["started_unix_ms"].as_u64().unwrap_or(0);
    assert!(
        took <= 21_000,
        "shift took {took} ms against its 20 s limit"
    );
    assert_eq!(st["over_budget"], true, "{st:#}");
    assert_unmoved(&s).await;
}
