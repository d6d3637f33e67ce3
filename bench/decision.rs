//! Decision latency: from the probe result that crosses the fall threshold to the first
//! provider call, through the real health board, engine and planner. The provider here
//! only records when it is called: this measures floatover's own overhead, nothing else.

use crate::stats::Series;
use floatover::config;
use floatover::engine::Engine;
use floatover::leader::{Fence, Leadership};
use floatover::metrics::Metrics;
use floatover::model::{GroupName, TargetId};
use floatover::probe::{HealthBoard, Outcome, TargetKey};
use floatover::provider::{
    FloatProvider, FloatRef, MoveDone, MoveOrder, Observation, ProviderError, ReleaseOrder,
    StampOrder, TargetBindings, WeightDone, WeightOrder,
};
use floatover::status::StatusStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
leader: { backend: single }
aws: { region: us-east-1 }
resync_interval: 1h
probe_defaults: { rise: 1, fall: 1 }
groups:
  - name: bench
    policy: { preempt: false, min_hold: 0s, failback_delay: 0s }
    targets:
      - { name: a, instance_id: i-a, priority: 200, probes: [{ tcp: { address: "127.0.0.1:9" } }] }
      - { name: b, instance_id: i-b, priority: 100, probes: [{ tcp: { address: "127.0.0.1:9" } }] }
    floats:
      - eip: { allocation_id: eipalloc-bench }
"#;

/// Records the instant of every move and keeps the holder so observation stays consistent.
struct Recorder {
    state: Mutex<HashMap<String, Observation>>,
    calls: mpsc::UnboundedSender<Instant>,
}

#[async_trait::async_trait]
impl FloatProvider for Recorder {
    async fn observe(
        &self,
        _: &[FloatRef],
        _: &[TargetBindings],
    ) -> Result<HashMap<String, Observation>, ProviderError> {
        Ok(self.state.lock().map(|s| s.clone()).unwrap_or_default())
    }
    async fn stamp_float(&self, _: &StampOrder, _: &dyn Fence) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn move_float(
        &self,
        o: &MoveOrder,
        fence: &dyn Fence,
    ) -> Result<MoveDone, ProviderError> {
        fence
            .permit(o.stamp.epoch, Duration::from_millis(1500))
            .map_err(|source| ProviderError::Fenced {
                op: "bench",
                source,
            })?;
        let at = Instant::now();
        if let Ok(mut s) = self.state.lock() {
            s.insert(
                o.float.id.clone(),
                Observation {
                    holder: o.to.attached_for(&o.float.kind),
                    stamp: Some(o.stamp.clone()),
                    version: None,
                    ..Default::default()
                },
            );
        }
        let _ = self.calls.send(at);
        Ok(MoveDone {
            calls_to_move: 1,
            ..MoveDone::default()
        })
    }
    async fn release_float(&self, _: &ReleaseOrder, _: &dyn Fence) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn set_weights(
        &self,
        orders: &[WeightOrder],
        fence: &dyn Fence,
    ) -> Vec<Result<WeightDone, ProviderError>> {
        let mut out = Vec::new();
        for o in orders {
            if let Err(source) = fence.permit(o.stamp.epoch, Duration::from_millis(1500)) {
                out.push(Err(ProviderError::Fenced {
                    op: "bench",
                    source,
                }));
                continue;
            }
            let at = Instant::now();
            if let Ok(mut s) = self.state.lock() {
                s.insert(
                    o.float.id.clone(),
                    Observation {
                        weights: o
                            .weights
                            .iter()
                            .filter_map(|(b, w)| b.attached_for(&o.float.kind).map(|m| (m, *w)))
                            .collect(),
                        stamp: Some(o.stamp.clone()),
                        ..Observation::default()
                    },
                );
            }
            let _ = self.calls.send(at);
            out.push(Ok(WeightDone {
                changed: 1,
                calls: 1,
                ..WeightDone::default()
            }));
        }
        out
    }
}

/// The same measurement for a DNS group: active-active over two targets, the health change
/// of one target until the Route 53 batch is issued.
const DNS_CONFIG: &str = r#"
leader: { backend: single }
aws: { region: us-east-1 }
resync_interval: 1h
probe_defaults: { rise: 1, fall: 1 }
groups:
  - name: bench
    policy: { mode: active-active, min_hold: 0s }
    targets:
      - { name: a, dns: { value: 10.0.0.1 }, probes: [{ tcp: { address: "127.0.0.1:9" } }] }
      - { name: b, dns: { value: 10.0.0.2 }, probes: [{ tcp: { address: "127.0.0.1:9" } }] }
    floats:
      - dns: { zone_id: ZBENCH, name: www.example.com }
"#;

pub async fn run_dns(trials: usize) -> Series {
    let mut s = measure(DNS_CONFIG, "dns:ZBENCH:www.example.com.:A", trials, true).await;
    s.name = "DNS decision latency (health change -> Route 53 batch issued)".into();
    s.p99_target_ms = Some(5.0);
    s.note = "in-process: real health board, engine, active-active planner and batch grouping; the provider only timestamps set_weights".into();
    s
}

pub async fn run(trials: usize) -> Series {
    measure(CONFIG, "eip:eipalloc-bench", trials, false).await
}

/// Fail one target (then let it recover) `trials` times; time from the threshold crossing
/// to the provider call. `both_ways`: every change (down and up) is a call (DNS
/// active-active), not only the failover.
async fn measure(config_yaml: &str, float: &str, trials: usize, both_ways: bool) -> Series {
    let spec = Arc::new(config::from_yaml(config_yaml).expect("bench config"));
    let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
    let (tx, mut calls) = mpsc::unbounded_channel();
    let initial = HashMap::from([(float.to_string(), Observation::default())]);
    let provider = Arc::new(Recorder {
        state: Mutex::new(initial),
        calls: tx,
    });
    let leadership = Leadership::always_leader("bench");
    let (_cmd_tx, cmd_rx) = mpsc::channel(1);
    let engine = Engine::new(
        spec.clone(),
        provider,
        board.clone(),
        leadership,
        Arc::new(Metrics::new()),
        Arc::new(StatusStore::default()),
        cmd_rx,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(engine.run(stop.clone()));
    let key = |t: &str| TargetKey {
        group: GroupName("bench".into()),
        target: TargetId(t.into()),
    };
    let (a, b) = (key("a"), key("b"));
    board.record(&a, 0, Outcome::Ok, Instant::now());
    board.record(&b, 0, Outcome::Ok, Instant::now());
    // Initial assignment to `a`.
    let _ = tokio::time::timeout(Duration::from_secs(5), calls.recv()).await;
    let mut holder = (a, b);
    let mut samples = Vec::with_capacity(trials);
    for _ in 0..trials {
        let crossed = Instant::now();
        board.record(&holder.0, 0, Outcome::Fail("bench".into()), crossed);
        match tokio::time::timeout(Duration::from_secs(5), calls.recv()).await {
            Ok(Some(at)) => samples.push(crate::stats::ms(at.saturating_duration_since(crossed))),
            _ => break,
        }
        board.record(&holder.0, 0, Outcome::Ok, Instant::now());
        if both_ways {
            // The recovery is a reweight too: wait for it before the next trial.
            let _ = tokio::time::timeout(Duration::from_secs(5), calls.recv()).await;
        }
        holder = (holder.1, holder.0);
    }
    stop.cancel();
    let _ = task.await;
    Series {
        name: "decision latency (threshold crossing -> provider call issued)".into(),
        samples_ms: samples,
        p99_target_ms: Some(1.0),
        note: "in-process: real health board, engine and planner; the provider only timestamps the call".into(),
    }
}
