//! The controller in process against LocalStack's Route 53, and reading it back: shared
//! by the DNS tests.

use floatover::config;
use floatover::metrics::Metrics;
use floatover::provider::aws::AwsProvider;
use floatover_devkit::dns;
use floatover_devkit::eventually::eventually;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use floatover_devkit::sites::unique;

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
    let mut spec = config::from_yaml(yaml).expect("config");
    spec.aws.credentials = Some(floatover_devkit::test_credentials());
    let spec = Arc::new(spec);
    let metrics = Arc::new(Metrics::new());
    let provider = Arc::new(
        AwsProvider::connect(
            &spec.aws,
            &["us-east-1".into(), "eu-west-1".into()],
            metrics.clone(),
        )
        .await,
    );
    let app = floatover_devkit::inprocess::start(spec, provider, metrics.clone())
        .await
        .expect("controller");
    (metrics, app.api, app.stop, app.run)
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

/// A single-replica controller with one DNS group of HTTP-probed targets on LocalStack,
/// as YAML (the leader, aws and probe settings every in-process DNS test shares). Each
/// target is (name, its other keys, its record value, its probe URL); `policy` and
/// `float` are the keys of those mappings.
pub struct DnsYaml<'a> {
    pub endpoint: &'a str,
    pub group: &'a str,
    pub policy: &'a str,
    pub targets: &'a [(&'a str, &'a str, &'a str, String)],
    pub float: &'a str,
}

impl DnsYaml<'_> {
    pub fn render(&self) -> String {
        let targets: String = self
            .targets
            .iter()
            .map(|(name, keys, value, url)| {
                format!(
                    "      - {{ name: {name}, {keys}, dns: {{ value: {value} }}, probes: [{{ http: {{ url: \"{url}\" }} }}] }}\n"
                )
            })
            .collect();
        format!(
            r#"
leader: {{ backend: single, lease_duration: 3s, renew_deadline: 2s, retry_period: 300ms }}
aws: {{ region: us-east-1, endpoint_url: "{ep}", call_timeout: 1500ms, dns_member_writes: upsert }}
probe_defaults: {{ interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }}
groups:
  - name: {group}
    policy: {{ {policy} }}
    targets:
{targets}    floats:
      - dns: {{ {float} }}
"#,
            ep = self.endpoint,
            group = self.group,
            policy = self.policy,
            float = self.float,
        )
    }
}
