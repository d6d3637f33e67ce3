//! Heartbeats: how the process knows its own engine and probes are making progress.
//!
//! A failover controller whose engine is wedged must not keep its lease: it would hold the
//! leadership that another replica needs, and nobody would notice (docs/leader-election.md, "Leader election and fencing").
//! Every long-lived loop registers a [`Heart`] with the longest silence that is still
//! normal for it and beats on every turn. The elector asks [`Liveness::check`] before each
//! renewal and stops renewing while anything is stalled, so a standby takes over within
//! one lease; `/healthz` and `/readyz` answer 503 with the same reason.
//!
//! Beats are lock-free (one atomic store) because probe loops beat thousands of times a
//! second at scale. Time is tokio's monotonic clock, so tests drive it with paused time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One registered loop's pulse.
#[derive(Clone)]
pub struct Heart {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heart {
    /// Record progress now.
    pub fn beat(&self) {
        let ms = Instant::now()
            .saturating_duration_since(self.base)
            .as_millis();
        self.last_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

struct Entry {
    name: String,
    max_gap: Duration,
    last_ms: Arc<AtomicU64>,
}

/// A loop that has not beaten for longer than it is allowed to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} made no progress for {} (allowed {})", floatover_core::human::duration(*.silent_for), floatover_core::human::duration(*.max_gap))]
pub struct Stalled {
    pub name: String,
    pub silent_for: Duration,
    pub max_gap: Duration,
}

/// Registry of hearts. Cheap to check: one atomic load per registered loop.
pub struct Liveness {
    base: Instant,
    entries: Mutex<Vec<Entry>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    pub fn new() -> Self {
        Liveness {
            base: Instant::now(),
            entries: Mutex::new(Vec::new()),
        }
    }

    /// Register a loop that must beat at least every `max_gap`. It counts as having beaten
    /// at registration.
    pub fn register(&self, name: impl Into<String>, max_gap: Duration) -> Heart {
        let heart = Heart {
            base: self.base,
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        heart.beat();
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.push(Entry {
            name: name.into(),
            max_gap,
            last_ms: heart.last_ms.clone(),
        });
        heart
    }

    /// Ok when every registered loop beat recently enough; else the most overdue one.
    pub fn check(&self) -> Result<(), Stalled> {
        let now_ms = u64::try_from(
            Instant::now()
                .saturating_duration_since(self.base)
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut worst: Option<Stalled> = None;
        for en in e.iter() {
            let silent =
                Duration::from_millis(now_ms.saturating_sub(en.last_ms.load(Ordering::Relaxed)));
            if silent > en.max_gap
                && worst.as_ref().is_none_or(|w| {
                    silent.saturating_sub(en.max_gap) > w.silent_for.saturating_sub(w.max_gap)
                })
            {
                worst = Some(Stalled {
                    name: en.name.clone(),
                    silent_for: silent,
                    max_gap: en.max_gap,
                });
            }
        }
        worst.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_loop_is_reported_after_its_gap_and_recovers_on_beat() {
        let l = Liveness::new();
        let engine = l.register("engine", Duration::from_secs(2));
        let probe = l.register("probe web/a", Duration::from_secs(5));
        assert_eq!(l.check(), Ok(()));
        tokio::time::advance(Duration::from_millis(1_900)).await;
        engine.beat();
        tokio::time::advance(Duration::from_millis(1_900)).await;
        assert_eq!(
            l.check(),
            Ok(()),
            "engine beat 1.9 s ago, probe silent 3.8 s of 5 s"
        );
        tokio::time::advance(Duration::from_millis(300)).await;
        let s = l.check().expect_err("engine silent 2.2 s");
        assert_eq!(s.name, "engine");
        engine.beat();
        probe.beat();
        assert_eq!(l.check(), Ok(()));
        tokio::time::advance(Duration::from_secs(10)).await;
        let s = l.check().expect_err("both silent");
        assert_eq!(s.name, "engine", "the most overdue loop is named");
        assert!(
            s.to_string().contains("engine made no progress for 10s"),
            "{s}"
        );
    }
}
