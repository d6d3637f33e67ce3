//! Prometheus metrics (prometheus-client, the Prometheus organisation's crate). One struct
//! owns every family so that names and labels are defined in one place and documented in
//! `/metrics` HELP lines.

use crate::model::TargetKey;
use crate::model::{Epoch, Health, Reason};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

mod register;
use register::{register_controller, register_provider, register_queues, register_sites_and_dns};

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
    lease_member_up: Family<Labels, Gauge>,
    vote_peer_up: Family<Labels, Gauge>,
    target_health: Family<Labels, Gauge>,
    probe_duration: Family<Labels, Histogram, fn() -> Histogram>,
    probe_failures: Family<Labels, Counter>,
    float_owner: Family<Labels, Gauge>,
    float_on_desired: Family<Labels, Gauge>,
    config_reloads: Family<Labels, Counter>,
    config_valid: Gauge,
    moves: Family<Labels, Counter>,
    provider_calls: Family<Labels, Counter>,
    provider_errors: Family<Labels, Counter>,
    provider_throttles: Family<Labels, Counter>,
    provider_attempts: Family<Labels, Counter>,
    log_dropped: Counter,
    probe_skipped: Family<Labels, Counter>,
    probe_lag: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    overloaded: Gauge,
    probe_late: Counter,
    stalled: Gauge,
    drift: Family<Labels, Counter>,
    claims: Counter,
    backoff: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    provider_duration: Family<Labels, Histogram, fn() -> Histogram>,
    pub fenced: Counter,
    reconcile_duration: Histogram,
    dns_batches: Family<Labels, Counter>,
    dns_insync: Histogram,
    below_min_healthy: Family<Labels, Gauge>,
    below_min_capacity: Family<Labels, Gauge>,
    site_active: Family<Labels, Gauge>,
    site_ready: Family<Labels, Gauge>,
    site_promotions: Family<Labels, Counter>,
    site_step_over_budget: Family<Labels, Counter>,
    site_step_seconds: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_pending: Family<Labels, Gauge>,
    queue_drain: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    token_wait: Histogram,
    stamp_batch: Histogram,
    observe_reads: Family<Labels, Counter>,
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
            float_on_desired: Family::default(),
            config_reloads: Family::default(),
            config_valid: Gauge::default(),
            moves: Family::default(),
            provider_calls: Family::default(),
            provider_errors: Family::default(),
            provider_throttles: Family::default(),
            provider_attempts: Family::default(),
            log_dropped: Counter::default(),
            probe_skipped: Family::default(),
            probe_lag: Default::default(),
            overloaded: Gauge::default(),
            probe_late: Counter::default(),
            stalled: Gauge::default(),
            lease_member_up: Family::default(),
            vote_peer_up: Family::default(),
            drift: Family::default(),
            claims: Counter::default(),
            backoff: Default::default(),
            provider_duration: Family::new_with_constructor(seconds_histogram),
            fenced: Counter::default(),
            reconcile_duration: seconds_histogram(),
            dns_batches: Family::default(),
            dns_insync: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            below_min_healthy: Family::default(),
            below_min_capacity: Family::default(),
            site_active: Family::default(),
            site_ready: Family::default(),
            site_promotions: Family::default(),
            site_step_over_budget: Family::default(),
            site_step_seconds: Family::default(),
            queue_pending: Family::default(),
            queue_drain: Family::default(),
            token_wait: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            stamp_batch: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            observe_reads: Family::default(),
            registry: Registry::default(),
        };
        register_controller(&mut registry, &m);
        register_provider(&mut registry, &m);
        register_queues(&mut registry, &m);
        register_sites_and_dns(&mut registry, &m);
        Metrics { registry, ..m }
    }

    pub fn set_site_active(&self, site: &str, active: bool) {
        self.site_active
            .get_or_create(&labels(&[("site", site)]))
            .set(i64::from(active));
    }

    pub fn set_site_ready(&self, site: &str, ready: bool) {
        self.site_ready
            .get_or_create(&labels(&[("site", site)]))
            .set(i64::from(ready));
    }

    pub fn count_site_run(&self, site: &str, kind: &str, outcome: &str) {
        self.site_promotions
            .get_or_create(&labels(&[
                ("site", site),
                ("kind", kind),
                ("outcome", outcome),
            ]))
            .inc();
    }

    pub fn count_over_budget(&self, site: &str, step: &str) {
        self.site_step_over_budget
            .get_or_create(&labels(&[("site", site), ("step", step)]))
            .inc();
    }

    pub fn set_step_seconds(&self, site: &str, step: &str, secs: f64) {
        self.site_step_seconds
            .get_or_create(&labels(&[("site", site), ("step", step)]))
            .set(secs);
    }

    /// Text exposition format.
    pub fn encode(&self) -> String {
        let dropped = crate::logging::dropped_lines();
        let seen = self.log_dropped.get();
        if dropped > seen {
            self.log_dropped.inc_by(dropped - seen);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn set_leader(&self, leader: bool, epoch: Epoch) {
        self.leader.set(i64::from(leader));
        self.epoch.set(epoch.0 as i64);
    }

    /// One health-vote peer: did its view arrive in the last poll.
    pub fn set_vote_peer(&self, peer: &str, up: bool) {
        self.vote_peer_up
            .get_or_create(&labels(&[("peer", peer)]))
            .set(i64::from(up));
    }

    /// One quorum lease member as this replica last saw it.
    pub fn set_lease_member(&self, member: &str, up: bool) {
        self.lease_member_up
            .get_or_create(&labels(&[("member", member)]))
            .set(i64::from(up));
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

    /// One probe's metric handles, looked up once per probe loop (a probe records a result
    /// many times a second; building label sets each time would cost more than the probe's
    /// bookkeeping itself).
    pub fn probe_handles(&self, key: &TargetKey, kind: &str) -> ProbeHandles {
        let l = labels(&[
            ("group", &key.group.0),
            ("target", &key.target.0),
            ("kind", kind),
        ]);
        ProbeHandles {
            duration: self.probe_duration.get_or_create(&l).clone(),
            failures: self.probe_failures.get_or_create(&l).clone(),
        }
    }

    /// Mark `owner` as the holder of `float` and every other target of the group as not.
    /// A config reload: `applied` or `rejected` (the previous config keeps running).
    pub fn count_config_reload(&self, outcome: &str) {
        self.config_reloads
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc();
        self.config_valid.set(i64::from(outcome == "applied"));
    }

    /// 1 while the config on disk is the one running (0 after a rejected reload).
    pub fn set_config_valid(&self, valid: bool) {
        self.config_valid.set(i64::from(valid));
    }

    /// 1 while the float is where the planner wants it (its owner, or its weights).
    pub fn set_float_on_desired(&self, group: &str, float: &str, on: bool) {
        self.float_on_desired
            .get_or_create(&labels(&[("group", group), ("float", float)]))
            .set(i64::from(on));
    }

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

    /// One SDK attempt (retries included) and its outcome.
    pub fn provider_attempt(&self, op: &str, outcome: &str) {
        self.provider_attempts
            .get_or_create(&labels(&[("op", op), ("outcome", outcome)]))
            .inc();
    }

    pub fn probe_skipped(&self, reason: &str) {
        self.probe_skipped
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    pub fn probe_late_start(&self) {
        self.probe_late.inc();
    }

    pub fn set_probe_lag(&self, lag: Duration, overloaded: bool) {
        self.probe_lag.set(lag.as_secs_f64());
        self.overloaded.set(i64::from(overloaded));
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.set(i64::from(stalled));
    }

    pub fn count_drift(&self, group: &str, action: &str) {
        self.drift
            .get_or_create(&labels(&[("group", group), ("action", action)]))
            .inc();
    }

    pub fn set_backoff(&self, d: Duration) {
        self.backoff.set(d.as_secs_f64());
    }

    /// Publish the provider's queues.
    pub fn set_queues(&self, queues: &[crate::pace::QueueStatus]) {
        for q in queues {
            let l = vec![
                ("api".into(), q.api.clone()),
                ("scope".into(), q.scope.clone()),
            ];
            self.queue_pending
                .get_or_create(&l)
                .set(i64::from(q.pending));
            self.queue_drain.get_or_create(&l).set(q.drain_s);
        }
    }

    pub fn observe_token_wait(&self, d: Duration) {
        self.token_wait.observe(d.as_secs_f64());
    }

    pub fn count_stamp_batch(&self, resources: usize) {
        self.stamp_batch.observe(resources as f64);
    }

    pub fn count_observe_read(&self, lane: &str, ok: bool) {
        self.observe_reads
            .get_or_create(&vec![
                ("lane".into(), lane.to_string()),
                (
                    "outcome".into(),
                    if ok { "ok" } else { "error" }.to_string(),
                ),
            ])
            .inc();
    }

    pub fn count_claims(&self, n: u64) {
        self.claims.inc_by(n);
    }

    pub fn count_dns_batch(&self, outcome: &str) {
        self.dns_batches
            .get_or_create(&vec![("outcome".into(), outcome.to_string())])
            .inc();
    }

    pub fn observe_dns_insync(&self, took: Duration) {
        self.dns_insync.observe(took.as_secs_f64());
    }

    pub fn set_below_min_healthy(&self, group: &str, below: bool) {
        self.below_min_healthy
            .get_or_create(&vec![("group".into(), group.to_string())])
            .set(i64::from(below));
    }

    pub fn set_below_min_capacity(&self, group: &str, below: bool) {
        self.below_min_capacity
            .get_or_create(&vec![("group".into(), group.to_string())])
            .set(i64::from(below));
    }

    pub fn observe_reconcile(&self, took: Duration) {
        self.reconcile_duration.observe(took.as_secs_f64());
    }
}

/// Cached handles of one probe's series (cheap clones sharing the registry's values).
#[derive(Clone)]
pub struct ProbeHandles {
    duration: Histogram,
    failures: Counter,
}

impl ProbeHandles {
    pub fn observe(&self, took: Duration, ok: bool) {
        self.duration.observe(took.as_secs_f64());
        if !ok {
            self.failures.inc();
        }
    }
}
