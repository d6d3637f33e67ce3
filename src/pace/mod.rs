//! Client-side token buckets, one per provider API, each with a priority queue in front.
//!
//! Why per API: EC2 evaluates every API in its own bucket ("each API is evaluated
//! individually", AWS's EC2 throttling page), so an `AssociateAddress` never waits for a
//! `CreateTags` and a stamp never delays a move. One shared bucket for every mutating call
//! made a mass failover six times slower than EC2 itself allows.
//!
//! Why a queue: when more calls are due than tokens allow, the order matters. A failover
//! (or a person's switchover) goes before a failback, a drift revert or a stamp; among
//! equals, the group's priority, then the config order, decides; among those, first come
//! first served. [`Bucket::status`] says what waits and how long it will take to drain.
//!
//! Waiting for a token is progress, not a stall: a waiter beats its [`Heart`] while the
//! bucket keeps granting tokens. A bucket that stopped granting (a bug) stops the beats, so
//! the liveness watchdog still catches it.
//!
//! Time is tokio's clock (paused-time tests drive it); tokens are counted in integer
//! billionths so that refill arithmetic is exact.

use crate::liveness::Heart;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often a waiter wakes to beat its heart.
const BEAT: Duration = Duration::from_millis(250);
/// One token, in the bucket's integer units.
const ONE: u128 = 1_000_000_000;

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Tokens the bucket holds when full (calls that may go out at once).
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: u32,
}

/// Why a call waits: its class goes first, then the rank (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A failover, a release of a float nobody healthy can hold, or a person's
    /// switchover: traffic is down or a person is waiting.
    Failover,
    /// Return to the preferred target: traffic flows already.
    Failback,
    /// Undo someone else's change, or anything else that is not urgent.
    Revert,
    /// The epoch stamp written after a move.
    Stamp,
    /// A new leader's claim of floats that stay where they are.
    Claim,
    /// Reads (their own buckets; the class only orders reads among themselves).
    Read,
}

/// A call's place in a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority {
    pub class: Class,
    /// Lower first: the group's priority (higher priority, lower rank), then config order.
    pub rank: u64,
}

impl Default for Priority {
    fn default() -> Self {
        Priority {
            class: Class::Revert,
            rank: u64::MAX,
        }
    }
}

impl Priority {
    /// The rank of a group with `priority` (higher first) at `index` in the config.
    pub fn rank_of(priority: u32, index: usize) -> u64 {
        (u64::from(u32::MAX - priority) << 32) | u64::try_from(index).unwrap_or(u64::from(u32::MAX))
    }
}

/// How a call waits for its token: its priority, and the heart it keeps beating while the
/// queue moves.
#[derive(Clone, Default)]
pub struct Turn {
    pub priority: Priority,
    pub heart: Option<Heart>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("priority", &self.priority)
            .field("heart", &self.heart.is_some())
            .finish()
    }
}

/// What one bucket's queue looks like now (status API, metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// The API (`AssociateAddress`).
    pub api: String,
    /// Where the bucket counts (a region).
    pub scope: String,
    /// Calls waiting for a token.
    pub pending: u32,
    /// Of those, failovers and switchovers.
    pub failovers: u32,
    /// Tokens in the bucket now.
    pub tokens: f64,
    pub burst: u32,
    pub per_second: u32,
    /// Seconds until every waiting call has its token, at the refill rate.
    pub drain_s: f64,
    /// Tokens granted since start.
    pub granted: u64,
}

struct State {
    /// Tokens in billionths.
    tokens: u128,
    at: Instant,
    queue: BTreeMap<(Priority, u64), Arc<Notify>>,
    seq: u64,
    /// Last grant, or the moment the queue last went from empty to waiting.
    last_progress: Instant,
    granted: u64,
}

/// One API's bucket in one scope.
pub struct Bucket {
    api: String,
    scope: String,
    limit: Limit,
    st: Mutex<State>,
}

impl Bucket {
    pub fn new(api: impl Into<String>, scope: impl Into<String>, limit: Limit) -> Self {
        let limit = Limit {
            burst: limit.burst.max(1),
            per_second: limit.per_second.max(1),
        };
        let now = Instant::now();
        Bucket {
            api: api.into(),
            scope: scope.into(),
            limit,
            st: Mutex::new(State {
                tokens: u128::from(limit.burst) * ONE,
                at: now,
                queue: BTreeMap::new(),
                seq: 0,
                last_progress: now,
                granted: 0,
            }),
        }
    }

    pub fn limit(&self) -> Limit {
        self.limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refill(&self, st: &mut State, now: Instant) {
        let ns = now.saturating_duration_since(st.at).as_nanos();
        let cap = u128::from(self.limit.burst) * ONE;
        st.tokens = cap.min(
            st.tokens
                .saturating_add(ns.saturating_mul(u128::from(self.limit.per_second))),
        );
        st.at = now;
    }

    /// How long the queue may go without a grant and still count as moving: two refill
    /// periods and a second of slack.
    fn patience(&self) -> Duration {
        Duration::from_millis(2_000 / u64::from(self.limit.per_second))
            .saturating_add(Duration::from_secs(1))
    }

    /// True while the queue hands out tokens at its pace (or nobody waits).
    pub fn moving(&self) -> bool {
        let st = self.lock();
        st.queue.is_empty()
            || Instant::now().saturating_duration_since(st.last_progress) <= self.patience()
    }

    /// Wait for a token in priority order; returns how long the call waited.
    pub async fn acquire(&self, turn: &Turn) -> Duration {
        let started = Instant::now();
        let me = Arc::new(Notify::new());
        let key = {
            let mut st = self.lock();
            st.seq += 1;
            let key = (turn.priority, st.seq);
            if st.queue.is_empty() {
                st.last_progress = started;
            }
            st.queue.insert(key, me.clone());
            key
        };
        let mut ticket = Ticket {
            bucket: self,
            key: Some(key),
        };
        loop {
            let now = Instant::now();
            let wait = {
                let mut st = self.lock();
                self.refill(&mut st, now);
                let head = st.queue.keys().next() == Some(&key);
                if head && st.tokens >= ONE {
                    st.tokens -= ONE;
                    st.queue.remove(&key);
                    st.last_progress = now;
                    st.granted += 1;
                    if let Some(next) = st.queue.values().next() {
                        next.notify_one();
                    }
                    ticket.key = None;
                    return now.saturating_duration_since(started);
                }
                head.then(|| {
                    let missing = ONE - st.tokens;
                    let rate = u128::from(self.limit.per_second);
                    let ns = missing.div_ceil(rate);
                    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
                })
            };
            let nap = wait.map_or(BEAT, |w| w.min(BEAT));
            tokio::select! {
                _ = me.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
            if let Some(h) = &turn.heart
                && self.moving()
            {
                h.beat();
            }
        }
    }

    /// The queue now.
    pub fn status(&self) -> QueueStatus {
        let mut st = self.lock();
        self.refill(&mut st, Instant::now());
        let pending = u32::try_from(st.queue.len()).unwrap_or(u32::MAX);
        let failovers = u32::try_from(
            st.queue
                .keys()
                .filter(|(p, _)| p.class == Class::Failover)
                .count(),
        )
        .unwrap_or(u32::MAX);
        let tokens = st.tokens as f64 / ONE as f64;
        let short = (f64::from(pending) - tokens.floor()).max(0.0);
        QueueStatus {
            api: self.api.clone(),
            scope: self.scope.clone(),
            pending,
            failovers,
            tokens: (tokens * 100.0).floor() / 100.0,
            burst: self.limit.burst,
            per_second: self.limit.per_second,
            drain_s: short / f64::from(self.limit.per_second),
            granted: st.granted,
        }
    }
}

/// Leaves the queue if the waiting call is dropped, and wakes the next in line.
struct Ticket<'a> {
    bucket: &'a Bucket,
    key: Option<(Priority, u64)>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut st = self.bucket.lock();
            st.queue.remove(&key);
            if let Some(next) = st.queue.values().next() {
                next.notify_one();
            }
        }
    }
}

/// What each API's bucket holds: a default for mutating calls, one for reads, and
/// per-API overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    pub mutate: Option<Limit>,
    pub read: Option<Limit>,
    pub apis: BTreeMap<String, Limit>,
}

/// EC2's documented request-rate categories: mutating actions (bucket 50, refill 5 a
/// second) and non-mutating Describe actions (bucket 100, refill 20 a second), each API in
/// its own bucket.
pub const EC2_MUTATE: Limit = Limit {
    burst: 50,
    per_second: 5,
};
/// See [`EC2_MUTATE`].
pub const EC2_READ: Limit = Limit {
    burst: 100,
    per_second: 20,
};

impl Limits {
    /// The bucket an API gets: its override, else its category's.
    pub fn of(&self, api: &str) -> Limit {
        if let Some(l) = self.apis.get(api) {
            return *l;
        }
        let read = ["Describe", "List", "Get"]
            .iter()
            .any(|p| api.starts_with(p));
        if read {
            self.read.unwrap_or(EC2_READ)
        } else {
            self.mutate.unwrap_or(EC2_MUTATE)
        }
    }
}

/// Every API's bucket in one scope (an account-region), made on first use.
pub struct Buckets {
    scope: String,
    limits: Limits,
    map: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl Buckets {
    pub fn new(scope: impl Into<String>, limits: Limits) -> Self {
        Buckets {
            scope: scope.into(),
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket of `api`.
    pub fn get(&self, api: &str) -> Arc<Bucket> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(api.to_string())
            .or_insert_with(|| Arc::new(Bucket::new(api, self.scope.clone(), self.limits.of(api))))
            .clone()
    }

    /// Wait for a token of `api`; returns the wait.
    pub async fn acquire(&self, api: &str, turn: &Turn) -> Duration {
        self.get(api).acquire(turn).await
    }

    /// Every bucket used so far, by API name.
    pub fn status(&self) -> Vec<QueueStatus> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<QueueStatus> = m.values().map(|b| b.status()).collect();
        v.sort_by(|a, b| a.api.cmp(&b.api));
        v
    }
}

#[cfg(test)]
mod tests;
