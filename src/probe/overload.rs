//! Overload must never look like failure.
//!
//! When this process cannot run its probes on schedule (more probes than CPU, a starved
//! container), a probe's timeout can fire because *we* were late, not because the target
//! was slow. Blaming the target then causes false failovers everywhere at once. So:
//!
//! - a monitor task measures how late the runtime wakes timers (scheduling lag) and keeps
//!   the last two seconds of it;
//! - a probe that timed out is judged only after the monitor's next tick (the starved
//!   monitor may not have run yet when the timeout fires): if the lag measured during
//!   the probe's window adds up to a fifth of its timeout (at most 50 ms) or more (a probe
//!   waits for the CPU at each of its steps: connect, write, read), the timeout counts as
//!   no result (a refused connection still counts: that is the target's answer, not our
//!   lateness);
//! - while lag is high the process is *overloaded*: intervals are stretched (×2 per
//!   overloaded tick, up to ×8, back to ×1 when calm) and the number of probes in flight
//!   is bounded;
//! - `floatover_probe_scheduling_lag_seconds`, `floatover_overloaded`,
//!   `floatover_probe_skipped_total{reason}` and a status warning say so.

use crate::metrics::Metrics;
use crate::status::StatusStore;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lag above which the process counts as overloaded.
pub const LAG_LIMIT: Duration = Duration::from_millis(50);
const TICK: Duration = Duration::from_millis(50);
const MAX_STRETCH: u32 = 8;
/// How much lag history is kept (ticks).
const HISTORY: usize = 64;

/// Shared load state, written by the monitor, read by every probe loop.
pub struct Load {
    base: Instant,
    lag_us: AtomicU64,
    /// Milliseconds since `base` of the last overloaded tick (0: never).
    last_overloaded_ms: AtomicU64,
    stretch: AtomicU32,
    /// (tick time in ms since `base`, lag measured at that tick), newest last.
    history: Mutex<VecDeque<(u64, Duration)>>,
    ticks: watch::Sender<u64>,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            base: Instant::now(),
            lag_us: AtomicU64::new(0),
            last_overloaded_ms: AtomicU64::new(0),
            stretch: AtomicU32::new(1),
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            ticks: watch::channel(0).0,
        }
    }
}

impl Load {
    fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Current smoothed scheduling lag.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }

    /// Interval multiplier while shedding load (1 when calm).
    pub fn stretch(&self) -> u32 {
        self.stretch.load(Ordering::Relaxed).clamp(1, MAX_STRETCH)
    }

    /// Was the process overloaded at any moment since `t` (inclusive of the tick that
    /// covers `t`)?
    pub fn overloaded_since(&self, t: Instant) -> bool {
        let last = self.last_overloaded_ms.load(Ordering::Relaxed);
        last > 0 && last.saturating_add(u64::try_from(TICK.as_millis()).unwrap_or(0)) >= self.ms(t)
    }

    /// The lag measured by the ticks that cover any moment of `[from, to]`, added up (a
    /// tick at time T measured the interval `[T - TICK - lag, T]`). A probe waits for the
    /// CPU at each of its steps (connect, write, read), so what it lost to local lag is
    /// closer to the sum over its window than to the worst single tick.
    pub fn lag_within(&self, from: Instant, to: Instant) -> Duration {
        let (from, to) = (self.ms(from), self.ms(to));
        let tick = u64::try_from(TICK.as_millis()).unwrap_or(50);
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.iter()
            .filter(|(t, lag)| {
                let start = t.saturating_sub(tick + u64::try_from(lag.as_millis()).unwrap_or(0));
                start <= to && *t >= from
            })
            .map(|(_, lag)| *lag)
            .sum()
    }

    /// Wait for the monitor's next tick (at most `cap`): after it, the lag of every moment
    /// up to now is known.
    pub async fn next_tick(&self, cap: Duration) {
        let mut rx = self.ticks.subscribe();
        let _ = tokio::time::timeout(cap, rx.changed()).await;
    }

    /// Should a probe timeout between `started` and `ended` (with this timeout) count as
    /// no result? Call after [`Load::next_tick`].
    pub fn excuses_timeout(&self, started: Instant, ended: Instant, timeout: Duration) -> bool {
        let lost = self.lag_within(started, ended);
        lost >= (timeout / 5).min(LAG_LIMIT) || self.overloaded_since(started)
    }

    /// Feed one measured lag (the monitor; tests).
    pub fn observe(&self, lag: Duration, now: Instant) -> bool {
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back((self.ms(now), lag));
        }
        self.ticks.send_modify(|n| *n = n.wrapping_add(1));
        // Fast attack, slow decay: one bad tick counts at once, calm must last.
        let prev = self.lag();
        let smoothed = lag.max(prev / 2);
        self.lag_us.store(
            u64::try_from(smoothed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let over = lag >= LAG_LIMIT;
        let s = self.stretch();
        if over {
            self.last_overloaded_ms
                .store(self.ms(now).max(1), Ordering::Relaxed);
            self.stretch
                .store((s.saturating_mul(2)).min(MAX_STRETCH), Ordering::Relaxed);
        } else if smoothed < LAG_LIMIT / 5 && s > 1 {
            self.stretch.store(s - 1, Ordering::Relaxed);
        }
        over
    }
}

/// Measure scheduling lag until `stop`; publish metrics and a status warning on change.
pub async fn monitor(
    load: Arc<Load>,
    metrics: Arc<Metrics>,
    status: Arc<StatusStore>,
    stop: CancellationToken,
) {
    let mut was_over = false;
    loop {
        let before = Instant::now();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let now = Instant::now();
        let lag = now.saturating_duration_since(before).saturating_sub(TICK);
        let over = load.observe(lag, now);
        let overloaded = over || load.lag() >= LAG_LIMIT;
        metrics.set_probe_lag(load.lag(), overloaded);
        if overloaded != was_over {
            was_over = overloaded;
            if overloaded {
                let msg = format!(
                    "overloaded: timers run {} late; probe intervals stretched x{} and timeouts not counted against targets",
                    floatover_core::human::duration(Duration::from_millis(
                        u64::try_from(lag.as_millis()).unwrap_or(u64::MAX)
                    )),
                    load.stretch()
                );
                tracing::warn!(
                    lag_ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
                    "{msg}"
                );
                status.set_warning("overload", Some(msg));
            } else {
                tracing::info!("no longer overloaded: probing at the configured intervals");
                status.set_warning("overload", None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lag_marks_overload_stretches_and_recovers() {
        let l = Load::default();
        let t0 = Instant::now();
        assert!(!l.overloaded_since(t0));
        assert!(!l.observe(Duration::from_millis(5), t0));
        assert_eq!(l.stretch(), 1);
        tokio::time::advance(Duration::from_millis(100)).await;
        let t1 = Instant::now();
        assert!(l.observe(Duration::from_millis(300), t1));
        assert!(
            l.overloaded_since(t0),
            "a probe that started before the overloaded tick overlaps it"
        );
        assert_eq!(l.stretch(), 2);
        assert!(l.observe(Duration::from_millis(300), t1));
        assert!(l.observe(Duration::from_millis(300), t1));
        assert!(l.observe(Duration::from_millis(300), t1));
        assert_eq!(l.stretch(), MAX_STRETCH, "bounded");
        tokio::time::advance(Duration::from_secs(1)).await;
        let t2 = Instant::now();
        assert!(
            !l.overloaded_since(t2),
            "a probe started after the last overloaded tick"
        );
        for _ in 0..40 {
            l.observe(Duration::ZERO, t2);
        }
        assert_eq!(l.stretch(), 1, "calm brings the interval back");
        assert!(l.lag() < LAG_LIMIT / 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_is_excused_only_by_lag_inside_its_window() {
        let l = Load::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            tokio::time::advance(TICK).await;
            l.observe(Duration::from_millis(1), Instant::now());
        }
        let probe_start = Instant::now();
        tokio::time::advance(Duration::from_millis(100)).await;
        let probe_end = Instant::now();
        assert!(
            !l.excuses_timeout(probe_start, probe_end, Duration::from_millis(100)),
            "calm: a timeout is the target's"
        );
        // The monitor's next tick reports 40 ms of lag covering the probe's window.
        l.observe(Duration::from_millis(40), probe_end);
        assert!(l.excuses_timeout(probe_start, probe_end, Duration::from_millis(100)));
        assert!(
            !l.excuses_timeout(probe_start, probe_end, Duration::from_secs(1)),
            "40 ms of lag does not excuse a 1 s timeout"
        );
        assert!(!l.excuses_timeout(
            t0,
            t0 + Duration::from_millis(10),
            Duration::from_millis(100)
        ));
    }
}
