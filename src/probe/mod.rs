//! Health probing: every replica runs every probe, so a standby that becomes leader already
//! knows the world. Probe results go through the rise/fall machine into the [`HealthBoard`],
//! which wakes the engine only on a health transition.
//!
//! Each probe loop re-probes at `fast_interval` while its last result is unconfirmed
//! (HAProxy's `fastinter`), beats a heart so that a stopped loop takes the lease away from
//! this replica, and defers to [`overload`] so that a starved controller never blames its
//! targets.

mod board;
mod check;
mod http;
pub mod overload;
pub mod peers;
pub mod votes;

pub use crate::model::TargetKey;
pub use board::{HealthBoard, TargetHealth};
pub use check::{Checker, CheckerError, Outcome, Prepared};
pub use floatover_core::health::{RiseFall, combine};

use crate::config::{ProbeKind, ProbeSpec, Spec};
use crate::faults::{Fault, Faults};
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::status::StatusStore;
use overload::Load;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn kind_name(k: &ProbeKind) -> &'static str {
    match k {
        ProbeKind::Http { .. } => "http",
        ProbeKind::Tcp { .. } => "tcp",
        ProbeKind::Exec { .. } => "exec",
    }
}

/// Probes in flight at once, at most (more wait for a slot; the timeout of a probe starts
/// when it runs, so waiting never counts against the target).
pub const DEFAULT_CONCURRENCY: usize = 512;

/// What the probe loops share.
#[derive(Clone)]
pub struct ProbeDeps {
    pub board: Arc<HealthBoard>,
    pub checker: Checker,
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusStore>,
    /// Each loop registers a heart here (None: nobody watches, e.g. `floatover plan`).
    pub liveness: Option<Arc<Liveness>>,
    pub faults: Faults,
    pub concurrency: usize,
}

impl ProbeDeps {
    pub fn new(board: Arc<HealthBoard>, checker: Checker, metrics: Arc<Metrics>) -> Self {
        ProbeDeps {
            board,
            checker,
            metrics,
            status: Arc::new(StatusStore::default()),
            liveness: None,
            faults: Faults::default(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Longest silence of a probe loop that is still normal: its stretched interval, its
/// timeout and a margin for waiting on a probe slot.
pub fn max_gap(p: &ProbeSpec) -> Duration {
    p.interval
        .saturating_mul(8)
        .saturating_add(p.timeout)
        .saturating_add(Duration::from_secs(2))
}

/// When a probe runs next: `fast_interval` after the last run while its last result is
/// not yet confirmed by rise or fall (HAProxy's `fastinter`), else `interval`; stretched
/// while the process sheds load; never in the past.
///
/// The period counts from when the last run was *scheduled* (`scheduled`), not from when
/// it started: a timer wakes up to a millisecond late, and counting from the start would
/// add that to every period (1,000 probes at 100 ms would run at ~9,900/s instead of
/// 10,000/s). A run that started more than half a period late counts from its start
/// instead, so a loop that fell behind drifts rather than catching up in a burst.
pub fn next_run(
    p: &ProbeSpec,
    scheduled: Instant,
    started: Instant,
    now: Instant,
    transitional: bool,
    stretch: u32,
) -> Instant {
    let base = if transitional {
        p.fast_interval
    } else {
        p.interval
    };
    let slack = base / 2;
    let anchor = if started.saturating_duration_since(scheduled) <= slack {
        scheduled
    } else {
        started
    };
    anchor
        .checked_add(base.saturating_mul(stretch.max(1)))
        .unwrap_or(now)
        .max(now)
}

/// Spawn one task per probe plus the load monitor. They stop when `stop` is cancelled.
pub fn spawn(spec: &Spec, deps: ProbeDeps, stop: CancellationToken) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let load = Arc::new(Load::default());
    let slots = Arc::new(Semaphore::new(deps.concurrency.max(1)));
    set.spawn(overload::monitor(
        load.clone(),
        deps.metrics.clone(),
        deps.status.clone(),
        stop.clone(),
    ));
    for g in &spec.groups {
        for t in &g.targets {
            for (idx, p) in t.probes.iter().enumerate() {
                let key = TargetKey {
                    group: g.name.clone(),
                    target: t.id.clone(),
                };
                let heart = deps
                    .liveness
                    .as_ref()
                    .map(|l| l.register(format!("probe {}/{} #{idx}", g.name, t.id), max_gap(p)));
                let (deps, load, slots, stop, p) = (
                    deps.clone(),
                    load.clone(),
                    slots.clone(),
                    stop.clone(),
                    p.clone(),
                );
                set.spawn(async move {
                    let handles = deps.metrics.probe_handles(&key, kind_name(&p.kind));
                    let prepared = check::Prepared::new(&p.kind);
                    let beat = || {
                        if let Some(h) = &heart {
                            h.beat();
                        }
                    };
                    // Spread the first probes over the interval (at most a second) so a
                    // thousand loops do not fire as one: spread over only 100 ms, 3,000
                    // probes came at the health endpoints in bursts of 30,000 a second,
                    // and the late answers flapped targets at start.
                    let spread = p.interval.min(Duration::from_secs(1));
                    let mut next = Instant::now()
                        + spread.mul_f64(f64::from(rand::random::<u16>()) / f64::from(u16::MAX));
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep_until(next) => {}
                        }
                        beat();
                        if deps.faults.active(Fault::ProbeStall) {
                            tracing::warn!(group = %key.group, target_name = %key.target, "injected fault: probe loop stops (FLOATOVER_FAULT)");
                            // Stopped, but still obeys shutdown.
                            stop.cancelled().await;
                            return;
                        }
                        let permit = tokio::select! {
                            _ = stop.cancelled() => return,
                            p = slots.acquire() => p,
                        };
                        beat();
                        let started = Instant::now();
                        if started.saturating_duration_since(next) > p.interval / 2 {
                            deps.metrics.probe_late_start();
                        }
                        // Boxed: the in-flight probe's state (~2.4 KiB) lives only while it runs, not in
                        // each of a thousand idle loops.
                        let outcome = Box::pin(deps.checker.run_prepared(&prepared, p.timeout)).await;
                        drop(permit);
                        let mut now = Instant::now();
                        let excused = if matches!(outcome, Outcome::TimedOut(_)) {
                            // Judge after the monitor's next tick: a starved monitor may
                            // not have measured this window yet.
                            load.next_tick(Duration::from_secs(1)).await;
                            let e = load.excuses_timeout(started, now, p.timeout);
                            now = Instant::now();
                            e
                        } else {
                            false
                        };
                        beat();
                        let transitional = if excused {
                            // Our lateness, not the target's: no result.
                            deps.metrics.probe_skipped("local_lag");
                            false
                        } else {
                            handles.observe(now.saturating_duration_since(started), outcome == Outcome::Ok);
                            if let Some(why) = outcome.failure() {
                                tracing::debug!(group = %key.group, target_name = %key.target, probe = idx, why, "probe failed");
                            }
                            let (changed, transitional) = deps.board.record_probe(&key, idx, outcome, now);
                            if let Some(h) = changed {
                                tracing::info!(group = %key.group, target_name = %key.target, health = h.as_str(), "target health changed");
                                deps.metrics.set_target_health(&key, h);
                            }
                            transitional
                        };
                        next = next_run(&p, next, started, now, transitional, load.stretch());
                    }
                });
            }
        }
    }
    set
}

/// [`spawn`] without liveness, faults or status (`floatover plan`, benches).
pub fn spawn_all(
    spec: &Spec,
    board: Arc<HealthBoard>,
    checker: Checker,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> JoinSet<()> {
    spawn(spec, ProbeDeps::new(board, checker, metrics), stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(interval: u64, fast: u64) -> ProbeSpec {
        ProbeSpec {
            kind: ProbeKind::Tcp {
                address: "127.0.0.1:9".into(),
            },
            interval: Duration::from_millis(interval),
            fast_interval: Duration::from_millis(fast),
            timeout: Duration::from_millis(100),
            rise: 2,
            fall: 3,
        }
    }

    /// Detection with `fast_interval`: the first failure comes at the steady rate, the
    /// confirming ones at the fast rate; a confirmed state goes back to the steady rate.
    #[test]
    fn fast_interval_only_while_unconfirmed() {
        let p = spec(1_000, 100);
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(next_run(&p, t, t, t + ms(5), false, 1), t + ms(1_000));
        assert_eq!(next_run(&p, t, t, t + ms(5), true, 1), t + ms(100));
        assert_eq!(
            next_run(&p, t, t, t + ms(5), true, 4),
            t + ms(400),
            "stretched under load"
        );
        assert_eq!(
            next_run(&p, t, t, t + ms(300), true, 1),
            t + ms(300),
            "never in the past"
        );
        // A whole failure: up (steady) -> fail, fail, fail at 100 ms -> down at +200 ms
        // after the first failure, instead of +2 s.
        let mut m = RiseFall::new(2, 3);
        m.record(true);
        m.record(true);
        let mut at = t;
        let mut times = vec![];
        for _ in 0..3 {
            m.record(false);
            times.push(at);
            at = next_run(&p, at, at, at, m.transitional(), 1);
        }
        assert_eq!(m.state(), crate::model::Health::Down);
        assert_eq!(times[2] - times[0], ms(200));
        assert!(!m.transitional(), "confirmed: back to the steady rate");
        assert_eq!(
            next_run(&p, at, at, at, m.transitional(), 1),
            at + ms(1_000)
        );
    }

    /// A run that woke a little late keeps the fixed period (no drift of the probe rate);
    /// one that fell far behind counts from its start (no catch-up burst).
    #[test]
    fn period_counts_from_the_schedule_unless_far_behind() {
        let p = spec(100, 100);
        let t = Instant::now();
        let ms = Duration::from_millis;
        // Woke 1 ms late, ran 3 ms: the next run is still 100 ms after the scheduled time.
        assert_eq!(next_run(&p, t, t + ms(1), t + ms(4), false, 1), t + ms(100));
        // A thousand late wake-ups in a row do not slow the rate down.
        let mut at = t;
        for _ in 0..1_000 {
            at = next_run(&p, at, at + ms(1), at + ms(2), false, 1);
        }
        assert_eq!(at, t + ms(100_000));
        // 40 ms late: still on the period. 60 ms late (more than half of it): counted
        // from the start.
        assert_eq!(
            next_run(&p, t, t + ms(40), t + ms(41), false, 1),
            t + ms(100)
        );
        assert_eq!(
            next_run(&p, t, t + ms(60), t + ms(61), false, 1),
            t + ms(160)
        );
        // Never in the past, whatever the anchor.
        assert_eq!(
            next_run(&p, t, t + ms(1), t + ms(150), false, 1),
            t + ms(150)
        );
    }
}
