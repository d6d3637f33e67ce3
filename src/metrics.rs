//! Prometheus metrics (prometheus-client, the Prometheus organisation's crate). One struct
//! owns every family so that names and labels are defined in one place and documented in
//! `/metrics` HELP lines.

use crate::model::{Epoch, Health, Reason};
use crate::probe::TargetKey;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn seconds_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric floatover exports.
pub struct Metrics {
    registry: Registry,
    pub leader: Gauge,
    pub epoch: Gauge,
    target_health: Family<Labels, Gauge>,
    probe_duration: Family<Labels, Histogram, fn() -> Histogram>,
    probe_failures: Family<Labels, Counter>,
    float_owner: Family<Labels, Gauge>,
    moves: Family<Labels, Counter>,
    provider_calls: Family<Labels, Counter>,
    provider_errors: Family<Labels, Counter>,
    provider_throttles: Family<Labels, Counter>,
    provider_duration: Family<Labels, Histogram, fn() -> Histogram>,
    pub fenced: Counter,
    reconcile_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("floatover");
        let m = Metrics {
            leader: Gauge::default(),
            epoch: Gauge::default(),
            target_health: Family::default(),
            probe_duration: Family::new_with_constructor(seconds_histogram),
            probe_failures: Family::default(),
            float_owner: Family::default(),
            moves: Family::default(),
            provider_calls: Family::default(),
            provider_errors: Family::default(),
            provider_throttles: Family::default(),
            provider_duration: Family::new_with_constructor(seconds_histogram),
            fenced: Counter::default(),
            reconcile_duration: seconds_histogram(),
            registry: Registry::default(),
        };
        registry.register(
            "leader",
            "1 if this replica holds the lease and may mutate",
            m.leader.clone(),
        );
        registry.register(
            "epoch",
            "Leadership epoch this replica last held or saw",
            m.epoch.clone(),
        );
        registry.register(
            "target_health",
            "Target health: 1 up, 0 down, -1 unknown",
            m.target_health.clone(),
        );
        registry.register(
            "probe_duration_seconds",
            "Probe latency",
            m.probe_duration.clone(),
        );
        registry.register(
            "probe_failures",
            "Failed probe executions",
            m.probe_failures.clone(),
        );
        registry.register(
            "float_owner",
            "1 for the target that holds the float",
            m.float_owner.clone(),
        );
        registry.register("moves", "Float moves by reason", m.moves.clone());
        registry.register(
            "provider_calls",
            "Provider API operations",
            m.provider_calls.clone(),
        );
        registry.register(
            "provider_errors",
            "Provider API operations that failed",
            m.provider_errors.clone(),
        );
        registry.register(
            "provider_throttles",
            "Provider API throttling responses",
            m.provider_throttles.clone(),
        );
        registry.register(
            "provider_call_duration_seconds",
            "Provider API operation latency incl. retries",
            m.provider_duration.clone(),
        );
        registry.register(
            "fenced",
            "Mutations refused by the fence (lease too old or newer epoch seen)",
            m.fenced.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "One observe-plan-execute pass",
            m.reconcile_duration.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn set_leader(&self, leader: bool, epoch: Epoch) {
        self.leader.set(i64::from(leader));
        self.epoch.set(epoch.0 as i64);
    }

    pub fn set_target_health(&self, key: &TargetKey, h: Health) {
        let v = match h {
            Health::Up => 1,
            Health::Down => 0,
            Health::Unknown => -1,
        };
        self.target_health
            .get_or_create(&labels(&[
                ("group", &key.group.0),
                ("target", &key.target.0),
            ]))
            .set(v);
    }

    pub fn observe_probe(&self, key: &TargetKey, kind: &str, took: Duration, ok: bool) {
        let l = labels(&[
            ("group", &key.group.0),
            ("target", &key.target.0),
            ("kind", kind),
        ]);
        self.probe_duration
            .get_or_create(&l)
            .observe(took.as_secs_f64());
        if !ok {
            self.probe_failures.get_or_create(&l).inc();
        }
    }

    /// Mark `owner` as the holder of `float` and every other target of the group as not.
    pub fn set_float_owner(
        &self,
        group: &str,
        float: &str,
        targets: &[String],
        owner: Option<&str>,
    ) {
        for t in targets {
            self.float_owner
                .get_or_create(&labels(&[
                    ("group", group),
                    ("float", float),
                    ("target", t),
                ]))
                .set(i64::from(Some(t.as_str()) == owner));
        }
    }

    pub fn count_move(&self, group: &str, reason: Reason) {
        self.moves
            .get_or_create(&labels(&[("group", group), ("reason", reason.as_str())]))
            .inc();
    }

    /// Record one provider operation (after retries).
    pub fn provider_call(&self, op: &str, took: Duration, ok: bool, throttled: u32) {
        let l = labels(&[("op", op)]);
        self.provider_calls.get_or_create(&l).inc();
        self.provider_duration
            .get_or_create(&l)
            .observe(took.as_secs_f64());
        if !ok {
            self.provider_errors.get_or_create(&l).inc();
        }
        if throttled > 0 {
            self.provider_throttles
                .get_or_create(&l)
                .inc_by(u64::from(throttled));
        }
    }

    pub fn observe_reconcile(&self, took: Duration) {
        self.reconcile_duration.observe(took.as_secs_f64());
    }
}
