//! Shared reads: one provider read per lane (an EC2 region, Route 53, ARC) and tick covers
//! every float and target of every group, however many groups there are.
//!
//! Why: with one read per group, 500 groups meant 500 DescribeAddresses per tick; an
//! emulator drowned in floatover's own reads, and on AWS the same pattern meets the API's
//! bucket and `RequestLimitExceeded`. Now a lane reads on its own schedule (the drift
//! check while leading, the resync as a standby) and whenever a group needs a fresher
//! view (after a move, a failed call, a takeover); requests that arrive together share one
//! read. A failed read backs off (exponential, with jitter and a cap) for the whole lane.
//!
//! A group only uses a read that started after its own last move (so its move is in it):
//! reads that started earlier could show the old holder and would look like drift. "After"
//! is judged on a logical clock ([`Reads::tick`], one count per read started), not on
//! instants: two things can happen at the same instant, a read and the end of a move.

use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::provider::{FloatProvider, FloatRef, Observation, ProviderError, TargetBindings};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First retry after a failed read; doubles up to [`BACKOFF_MAX`], with full jitter.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// One finished read of a lane.
#[derive(Debug)]
pub(crate) struct Read {
    /// Reads of this lane so far (1 for the first).
    pub seq: u64,
    /// The logical time the read was sent at: it shows every change finished before
    /// [`Reads::tick`] passed this value.
    pub tick: u64,
    pub result: Result<Arc<HashMap<String, Observation>>, ProviderError>,
}

struct Want {
    /// The tick of the last read started (a request for a view newer than a tick below
    /// it is served by that read).
    last_tick: u64,
    /// The earliest time someone needs a new read by.
    due: Option<Instant>,
    /// A read wanted at (not before) this time, whatever reads come earlier.
    scheduled: Option<Instant>,
    /// No read before this (backing off after a failure).
    not_before: Instant,
}

/// One lane: its floats and targets, its schedule and its last read.
pub(crate) struct Lane {
    pub name: String,
    floats: Vec<FloatRef>,
    targets: Vec<TargetBindings>,
    latest: watch::Sender<Option<Arc<Read>>>,
    want: Mutex<Want>,
    wake: Notify,
    ticks: Arc<AtomicU64>,
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, Want> {
        self.want.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last finished read.
    pub fn latest(&self) -> Option<Arc<Read>> {
        self.latest.borrow().clone()
    }

    /// Ask for a read that starts after tick `since`, by `by` at the latest. A read
    /// already under way (or done) that started late enough serves it.
    pub fn request(&self, since: u64, by: Instant) {
        {
            let mut w = self.lock();
            if w.last_tick > since {
                return;
            }
            w.due = Some(w.due.map_or(by, |d| d.min(by)));
        }
        self.wake.notify_one();
    }

    /// Ask for a read that starts at `at` or later (a takeover's second look, once the
    /// previous leader's last call could have landed). Earlier reads do not serve it.
    pub fn schedule(&self, at: Instant) {
        {
            let mut w = self.lock();
            w.scheduled = Some(w.scheduled.map_or(at, |s| s.min(at)));
        }
        self.wake.notify_one();
    }

    /// Until when the lane backs off after a failed read (None: not backing off).
    pub fn backing_off(&self) -> Option<Instant> {
        let w = self.lock();
        (w.not_before > Instant::now()).then_some(w.not_before)
    }

    /// A read that started after tick `since`: the latest if it is fresh enough, else the
    /// next one (asked for now). A lane that is backing off answers with its last failure
    /// at once rather than holding the group up.
    pub async fn fresh(&self, since: u64) -> Arc<Read> {
        let mut rx = self.latest.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                if r.tick > since {
                    return r;
                }
                if r.result.is_err() && self.backing_off().is_some() {
                    return r;
                }
            }
            self.request(since, Instant::now());
            if rx.changed().await.is_err() {
                // The lane's task ended (shutdown): answer with what there is.
                let last = self.latest();
                return last.unwrap_or_else(|| {
                    Arc::new(Read {
                        seq: 0,
                        tick: since,
                        result: Err(ProviderError::Unsupported("reads after shutdown")),
                    })
                });
            }
        }
    }
}

/// Every lane of the config, and a counter bumped on every finished read (group workers
/// wake on it to take in a newer view).
pub(crate) struct Reads {
    lanes: BTreeMap<String, Arc<Lane>>,
    pub generation: watch::Sender<u64>,
    ticks: Arc<AtomicU64>,
}

impl Reads {
    /// Lanes for every float of every group (each float once, each target once).
    pub fn new(provider: &dyn FloatProvider, groups: &[crate::config::GroupSpec]) -> Reads {
        let mut floats: BTreeMap<String, (Vec<FloatRef>, Vec<TargetBindings>)> = BTreeMap::new();
        for g in groups {
            let targets = g.target_bindings();
            for f in &g.floats {
                let lane = floats.entry(provider.read_lane(f)).or_default();
                if !lane.0.iter().any(|x| x.id == f.id) {
                    lane.0.push(f.clone());
                }
                for t in &targets {
                    if !lane.1.contains(t) {
                        lane.1.push(t.clone());
                    }
                }
            }
        }
        let ticks = Arc::new(AtomicU64::new(0));
        let lanes = floats
            .into_iter()
            .map(|(name, (floats, targets))| {
                let lane = Lane {
                    name: name.clone(),
                    floats,
                    targets,
                    latest: watch::channel(None).0,
                    ticks: ticks.clone(),
                    want: Mutex::new(Want {
                        last_tick: 0,
                        due: None,
                        scheduled: None,
                        not_before: Instant::now(),
                    }),
                    wake: Notify::new(),
                };
                (name, Arc::new(lane))
            })
            .collect();
        Reads {
            lanes,
            generation: watch::channel(0).0,
            ticks,
        }
    }

    /// The logical clock now: a read that starts later has a higher tick, and shows every
    /// change finished before this call.
    pub fn tick(&self) -> u64 {
        self.ticks.load(Ordering::SeqCst)
    }

    /// The lanes a group's floats live in.
    pub fn lanes_of(&self, provider: &dyn FloatProvider, floats: &[FloatRef]) -> Vec<Arc<Lane>> {
        let mut names: Vec<String> = floats.iter().map(|f| provider.read_lane(f)).collect();
        names.sort();
        names.dedup();
        names
            .iter()
            .filter_map(|n| self.lanes.get(n).cloned())
            .collect()
    }

    pub fn lanes(&self) -> impl Iterator<Item = &Arc<Lane>> {
        self.lanes.values()
    }
}

/// What a lane's task needs.
pub(crate) struct LaneTask {
    pub lane: Arc<Lane>,
    pub provider: Arc<dyn FloatProvider>,
    pub leadership: Leadership,
    pub metrics: Arc<Metrics>,
    pub generation: watch::Sender<u64>,
    /// Period while leading (the drift check) and as a standby (the resync).
    pub leading_every: Duration,
    pub standby_every: Duration,
    /// Added to the backoff after a read that timed out or was throttled: the provider is
    /// slow or saturated, and every abandoned call still costs it work (three replicas
    /// retrying at 250 ms wedged LocalStack for minutes in the 500-float bench).
    pub slow_floor: Duration,
}

impl LaneTask {
    /// Read on schedule and on request until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let lane = &self.lane;
        let mut leader_rx = self.leadership.clone();
        let mut failures: u32 = 0;
        let mut seq: u64 = 0;
        let mut last_started: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let due = {
                let w = lane.lock();
                let every = if self.leadership.state().is_leader {
                    self.leading_every
                } else {
                    self.standby_every
                };
                // After a failure the lane tries again by itself once the backoff is
                // over (not_before), whether or not a group asks.
                let periodic = if failures > 0 {
                    now
                } else {
                    last_started.map_or(now, |s| s + every)
                };
                let asked = w.due.unwrap_or(periodic);
                let at = w.scheduled.unwrap_or(periodic);
                periodic.min(asked).min(at).max(w.not_before)
            };
            if due > now {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(due) => {}
                    _ = lane.wake.notified() => {}
                    _ = leader_rx.changed() => {}
                }
                continue;
            }
            last_started = Some(now);
            let (tick, why) = {
                let mut w = lane.lock();
                let why = if w.due.is_some_and(|d| d <= now) {
                    "asked"
                } else if w.scheduled.is_some_and(|s| s <= now) {
                    "scheduled"
                } else {
                    "periodic"
                };
                let tick = lane.ticks.fetch_add(1, Ordering::SeqCst) + 1;
                w.last_tick = tick;
                w.due = None;
                if w.scheduled.is_some_and(|s| s <= now) {
                    w.scheduled = None;
                }
                (tick, why)
            };
            let res = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                r = self.provider.observe(&lane.floats, &lane.targets) => r,
            };
            tracing::debug!(lane = %lane.name, tick, why, ok = res.is_ok(), took_ms = now.elapsed().as_millis() as u64, "read");
            self.metrics.count_observe_read(&lane.name, res.is_ok());
            match &res {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = if slow(e) {
                        self.slow_floor.saturating_add(backoff(failures))
                    } else {
                        backoff(failures)
                    };
                    tracing::warn!(lane = %lane.name, error = %e, retry_in = ?wait, "read failed; every group of this lane retries after the backoff");
                    lane.lock().not_before = Instant::now() + wait;
                }
            }
            seq += 1;
            lane.latest.send_replace(Some(Arc::new(Read {
                seq,
                tick,
                result: res.map(Arc::new),
            })));
            self.generation.send_modify(|g| *g = g.wrapping_add(1));
        }
    }
}

/// A read the provider did not answer in time, or refused for its rate.
fn slow(e: &ProviderError) -> bool {
    match e {
        ProviderError::Throttled { .. } => true,
        ProviderError::Transport { code, .. } => code == "Timeout",
        _ => false,
    }
}

/// Exponential backoff with jitter: between half and all of 250 ms × 2^(n-1), capped.
fn backoff(failures: u32) -> Duration {
    let cap = BACKOFF_MIN
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(BACKOFF_MAX);
    // Half the cap, plus up to half at random: retries of several replicas spread out,
    // and none comes back sooner than half the backoff.
    let jitter = f64::from(rand::random::<u16>()) / f64::from(u16::MAX);
    (cap / 2).saturating_add((cap / 2).mul_f64(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        for n in 1..20 {
            let d = backoff(n);
            assert!(d <= BACKOFF_MAX, "{n}: {d:?}");
            assert!(d >= BACKOFF_MIN / 2, "{n}: {d:?}");
        }
        assert!(backoff(10) >= BACKOFF_MAX / 2);
    }

    #[test]
    fn timeouts_and_throttles_count_as_a_slow_provider_other_failures_do_not() {
        let transport = |code: &str| ProviderError::Transport {
            op: "DescribeAddresses",
            region: "r".into(),
            code: code.into(),
            message: "m".into(),
        };
        assert!(slow(&transport("Timeout")));
        assert!(!slow(&transport("ConnectionError")));
        assert!(slow(&ProviderError::Throttled {
            op: "DescribeAddresses",
            region: "r".into(),
            code: "RequestLimitExceeded".into(),
            message: "m".into(),
        }));
        assert!(!slow(&ProviderError::Api {
            op: "DescribeAddresses",
            region: "r".into(),
            code: "InvalidAllocationID.NotFound".into(),
            message: "m".into(),
        }));
    }
}
