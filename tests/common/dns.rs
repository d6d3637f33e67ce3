//! The controller in process against LocalStack's Route 53, and reading it back: shared
//! by the DNS tests.

use floatover::app::App;
use floatover::config;
use floatover::leader::CasLease;
use floatover::metrics::Metrics;
use floatover::probe::Checker;
use floatover::provider::aws::AwsProvider;
use floatover_devkit::dns;
use floatover_devkit::eventually::eventually;
use floatover_devkit::memlease::MemLease;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A unique domain per scenario.
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}.example.test",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The controller's status, as JSON (Null when it does not answer).
pub async fn status_json(api: &str) -> serde_json::Value {
    match reqwest::get(format!("{api}/api/v1/status")).await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

pub fn batches(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("floatover_dns_batches_total{outcome=\"applied\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

pub type Running = (
    Arc<Metrics>,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), floatover::app::AppError>>,
);

/// The whole controller in this process: the real AWS provider against LocalStack, a
/// single-replica lease, real probes and API.
pub async fn start_app(yaml: &str) -> Running {
    let spec = Arc::new(config::from_yaml(yaml).expect("config"));
    let metrics = Arc::new(Metrics::new());
    let provider = Arc::new(
        AwsProvider::connect(
            &spec.aws,
            &["us-east-1".into(), "eu-west-1".into()],
            metrics.clone(),
        )
        .await,
    );
    let store = MemLease::new();
    let backend = CasLease::new(store.for_replica("me"), "me".into(), spec.leader.timing());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let api = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = App::new(
        spec,
        provider,
        Box::new(backend),
        Checker::new().expect("checker"),
    )
    .with_metrics(metrics.clone());
    let run = tokio::spawn(app.run(listener, async {
        let _ = stop_rx.await;
    }));
    (metrics, api, stop_tx, run)
}

pub async fn wait_one(
    r53: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
    want: &[(&str, i64)],
) -> Option<Duration> {
    wait_weights(r53, zone, name, want, Duration::from_secs(15)).await
}

/// Until the record set's weights are `want`; how long it took.
pub async fn wait_weights(
    r53: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
    want: &[(&str, i64)],
    limit: Duration,
) -> Option<Duration> {
    let want: BTreeMap<String, i64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    eventually(limit, async || {
        dns::read(r53, zone, name).await.map(|(w, _)| w).ok() == Some(want.clone())
    })
    .await
}

/// Stop the in-process controller and check that it stopped cleanly.
pub async fn stop_app(
    stop_tx: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<(), floatover::app::AppError>>,
) {
    let _ = stop_tx.send(());
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops")
        .expect("join");
    assert!(ended.is_ok(), "{ended:?}");
}
