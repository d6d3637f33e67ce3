//! Health probing: every replica runs every probe, so a standby that becomes leader already
//! knows the world. Probe results go through the rise/fall machine into the [`HealthBoard`],
//! which wakes the engine only on a health transition.

mod board;
mod check;
mod state;

pub use board::{HealthBoard, TargetHealth, TargetKey};
pub use check::{Checker, CheckerError, Outcome};
pub use state::{RiseFall, combine};

use crate::config::{ProbeKind, Spec};
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

fn kind_name(k: &ProbeKind) -> &'static str {
    match k {
        ProbeKind::Http { .. } => "http",
        ProbeKind::Tcp { .. } => "tcp",
        ProbeKind::Exec { .. } => "exec",
    }
}

/// Spawn one task per probe. They stop when `stop` is cancelled.
pub fn spawn_all(
    spec: &Spec,
    board: Arc<HealthBoard>,
    checker: Checker,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for g in &spec.groups {
        for t in &g.targets {
            for (idx, p) in t.probes.iter().enumerate() {
                let key = TargetKey {
                    group: g.name.clone(),
                    target: t.id.clone(),
                };
                let (board, checker, metrics, stop, p) = (
                    board.clone(),
                    checker.clone(),
                    metrics.clone(),
                    stop.clone(),
                    p.clone(),
                );
                set.spawn(async move {
                    let mut tick = tokio::time::interval(p.interval);
                    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    let kind = kind_name(&p.kind);
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tick.tick() => {}
                        }
                        let started = Instant::now();
                        let outcome = checker.run(&p.kind, p.timeout).await;
                        metrics.observe_probe(&key, kind, started.elapsed(), outcome == Outcome::Ok);
                        if let Outcome::Fail(why) = &outcome {
                            tracing::debug!(group = %key.group, target = %key.target, probe = idx, %why, "probe failed");
                        }
                        if let Some(h) = board.record(&key, idx, outcome, Instant::now()) {
                            tracing::info!(group = %key.group, target = %key.target, health = h.as_str(), "target health changed");
                            metrics.set_target_health(&key, h);
                        }
                    }
                });
            }
        }
    }
    set
}
