//! The demo's DNS act: a Route 53 weighted record over three targets in two regions,
//! steered by the same replicas (active-active). One target dies and its weight spreads;
//! it comes back and gets its share again.

use floatover_devkit::dns;
use floatover_devkit::health::HealthServer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// (name, region, weight)
pub const TARGETS: [(&str, &str, i64); 3] = [
    ("use1-a", "us-east-1", 100),
    ("use1-b", "us-east-1", 100),
    ("euw1", "eu-west-1", 50),
];

pub struct DnsAct {
    pub client: aws_sdk_route53::Client,
    pub zone: String,
    pub name: String,
    pub health: Vec<HealthServer>,
}

impl DnsAct {
    /// A hosted zone and three health endpoints; nothing is written yet (floatover creates
    /// the records).
    pub async fn prepare(endpoint: &str) -> Result<DnsAct, String> {
        let client = dns::client(endpoint).await;
        let domain = format!("demo-{}.example.test", std::process::id());
        let zone = dns::zone(&client, &domain)
            .await
            .map_err(|e| e.to_string())?;
        let mut health = Vec::new();
        for _ in 0..3 {
            health.push(HealthServer::start().await.map_err(|e| e.to_string())?);
        }
        Ok(DnsAct {
            client,
            zone,
            name: format!("www.{domain}."),
            health,
        })
    }

    /// The group the replicas steer, appended to their config.
    pub fn group_yaml(&self, interval_ms: u64) -> String {
        let mut y = String::from(
            "  - name: global\n    policy: { mode: active-active, min_hold: 1s, min_healthy: 3 }\n    targets:\n",
        );
        for (i, (name, region, weight)) in TARGETS.iter().enumerate() {
            y.push_str(&format!(
                "      - {{ name: {name}, region: {region}, weight: {weight}, dns: {{ value: 192.0.2.{} }}, probes: [{{ http: {{ url: \"{}\" }}, interval: {interval_ms}ms }}] }}\n",
                i + 10,
                self.health[i].url()
            ));
        }
        y.push_str(&format!(
            "    floats:\n      - dns: {{ zone_id: {}, name: \"{}\", ttl: 30 }}\n",
            self.zone, self.name
        ));
        y
    }

    pub async fn weights(&self) -> BTreeMap<String, i64> {
        dns::read(&self.client, &self.zone, &self.name)
            .await
            .map(|(w, _)| w)
            .unwrap_or_default()
    }

    pub async fn stamp(&self) -> String {
        dns::read(&self.client, &self.zone, &self.name)
            .await
            .ok()
            .and_then(|(_, s)| s)
            .unwrap_or_default()
    }

    /// Wait until the record's weights are `want` (name → weight).
    pub async fn wait(&self, want: &[(&str, i64)], timeout: Duration) -> Option<Duration> {
        let want: BTreeMap<String, i64> = want.iter().map(|(n, w)| (n.to_string(), *w)).collect();
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.weights().await == want {
                return Some(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }
}

pub fn show(w: &BTreeMap<String, i64>) -> String {
    let parts: Vec<String> = w.iter().map(|(n, v)| format!("{n}={v}")).collect();
    parts.join(" ")
}
