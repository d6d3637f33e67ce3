//! The whole controller in one process: `App` with the in-memory provider and lease store,
//! real HTTP probes against real health servers, the real API. No LocalStack, no child
//! process: this is how a test (or an embedding program) runs floatover.

use floatover::config;
use floatover::metrics::Metrics;
use floatover_devkit::eventually::eventually;
use floatover_devkit::health::HealthServer;
use floatover_devkit::inprocess::{self, InProcess};
use floatover_devkit::memprovider::MemProvider;
use std::sync::Arc;
use std::time::Duration;

const F1: &str = "eip:eipalloc-1";
const F2: &str = "eip:eipalloc-2";

fn config(a: &str, b: &str) -> String {
    format!(
        r#"
leader: {{ backend: single, lease_duration: 3s, renew_deadline: 2s, retry_period: 300ms }}
aws: {{ region: us-east-1, call_timeout: 1s }}
probe_defaults: {{ interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}
groups:
  - name: web
    policy: {{ min_hold: 0s, failback_delay: 1s }}
    targets:
      - {{ name: a, instance_id: i-a, priority: 200, probes: [{{ http: {{ url: "{a}" }} }}] }}
      - {{ name: b, instance_id: i-b, priority: 100, probes: [{{ http: {{ url: "{b}" }} }}] }}
    floats:
      - eip: {{ allocation_id: eipalloc-1 }}
      - eip: {{ allocation_id: eipalloc-2 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_controller_runs_in_process_with_injected_provider_and_lease() {
    let mut a = HealthServer::start().await.expect("health a");
    let b = HealthServer::start().await.expect("health b");
    let spec = Arc::new(config::from_yaml(&config(&a.url(), &b.url())).expect("config"));
    let provider = Arc::new(MemProvider::new(&[F1, F2]));
    let InProcess {
        api,
        stop: stop_tx,
        run,
        lease: store,
    } = inprocess::start(spec, provider.clone(), Arc::new(Metrics::new()))
        .await
        .expect("controller");

    let on = |i: &str| {
        provider.holder(F1).as_deref() == Some(i) && provider.holder(F2).as_deref() == Some(i)
    };
    assert!(
        eventually(Duration::from_secs(10), async || on("i-a"))
            .await
            .is_some(),
        "initial assignment to a"
    );
    let status: floatover::api::StatusBody = reqwest::get(format!("{api}/api/v1/status"))
        .await
        .expect("status")
        .json()
        .await
        .expect("a status body");
    assert!(status.leader.is_leader, "{status:?}");

    a.stop().await;
    let took = eventually(Duration::from_secs(5), async || on("i-b")).await;
    assert!(took.is_some(), "failover to b");

    let _ = stop_tx.send(());
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the app stops within 10 s")
        .expect("join");
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(
        store.record().map(|r| r.released),
        Some(true),
        "the lease was released on shutdown"
    );
}
