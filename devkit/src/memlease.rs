//! An in-memory lease store for deterministic tests of the lease protocol
//! (`floatover::leader::protocol`) with paused time: the same
//! conditional-write semantics as S3 (create if absent, write if the version matches),
//! shared by every replica that holds a clone, with switches to make it unreachable and a
//! log of every successful write.

use floatover::leader::{LeaderError, LeaseRecord, LeaseStore, Precondition, Put};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One successful write, as the store saw it.
#[derive(Debug, Clone)]
pub struct Write {
    pub at: Instant,
    pub record: LeaseRecord,
}

#[derive(Default)]
struct Inner {
    record: Option<(LeaseRecord, u64)>,
    next_version: u64,
    /// Identities whose calls fail (a partition between them and the store).
    cut_off: Vec<String>,
    /// Per identity: how long a request takes to reach the store, and its answer to come
    /// back (a slow or distant member).
    lag: Vec<(String, Duration, Duration)>,
    log: Vec<Write>,
}

/// A shared lease record. Clone it for each replica with [`MemLease::for_replica`].
#[derive(Clone, Default)]
pub struct MemLease {
    inner: Arc<Mutex<Inner>>,
    /// The replica this handle belongs to (for [`MemLease::cut_off`]).
    who: String,
}

impl MemLease {
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle for replica `identity` on the same record.
    pub fn for_replica(&self, identity: &str) -> Self {
        MemLease {
            inner: self.inner.clone(),
            who: identity.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the store unreachable for `identity` (true) or reachable again (false).
    pub fn cut_off(&self, identity: &str, cut: bool) {
        let mut g = self.lock();
        g.cut_off.retain(|i| i != identity);
        if cut {
            g.cut_off.push(identity.to_string());
        }
    }

    /// Requests from `identity` take `there` to reach the store and their answers `back`
    /// to return (virtual time). Zero both to remove the lag.
    pub fn lag(&self, identity: &str, there: Duration, back: Duration) {
        let mut g = self.lock();
        g.lag.retain(|(i, _, _)| i != identity);
        if !there.is_zero() || !back.is_zero() {
            g.lag.push((identity.to_string(), there, back));
        }
    }

    fn lag_of(&self) -> (Duration, Duration) {
        let g = self.lock();
        g.lag
            .iter()
            .find(|(i, _, _)| *i == self.who)
            .map_or((Duration::ZERO, Duration::ZERO), |(_, a, b)| (*a, *b))
    }

    /// Delete the record (the lease object was removed or moved).
    pub fn delete(&self) {
        self.lock().record = None;
    }

    /// Put a record in place, as if another process had written it.
    pub fn plant(&self, record: LeaseRecord) {
        let mut g = self.lock();
        g.next_version += 1;
        let v = g.next_version;
        g.record = Some((record, v));
    }

    pub fn record(&self) -> Option<LeaseRecord> {
        self.lock().record.as_ref().map(|(r, _)| r.clone())
    }

    /// Every successful write so far.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().log.clone()
    }

    fn reachable(&self, g: &Inner) -> Result<(), LeaderError> {
        if g.cut_off.contains(&self.who) {
            return Err(LeaderError::Store {
                op: "PutObject",
                region: "memory".into(),
                code: "ConnectionError".into(),
                message: "cut off by the test".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl LeaseStore for MemLease {
    async fn get(&self) -> Result<Option<(LeaseRecord, String)>, LeaderError> {
        let (there, back) = self.lag_of();
        pause(there).await;
        let read = {
            let g = self.lock();
            self.reachable(&g)?;
            g.record.as_ref().map(|(r, v)| (r.clone(), v.to_string()))
        };
        pause(back).await;
        Ok(read)
    }

    async fn put(&self, rec: &LeaseRecord, pre: Precondition<'_>) -> Result<Put, LeaderError> {
        let (there, back) = self.lag_of();
        pause(there).await;
        let answer = self.apply(rec, pre)?;
        pause(back).await;
        Ok(answer)
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

impl MemLease {
    /// The conditional write itself, at the instant the request reaches the store.
    fn apply(&self, rec: &LeaseRecord, pre: Precondition<'_>) -> Result<Put, LeaderError> {
        let mut g = self.lock();
        self.reachable(&g)?;
        let ok = match (pre, &g.record) {
            (Precondition::Absent, None) => true,
            (Precondition::Matches(v), Some((_, cur))) => v == cur.to_string(),
            _ => false,
        };
        if !ok {
            return Ok(Put::Conflict);
        }
        g.next_version += 1;
        let v = g.next_version;
        g.record = Some((rec.clone(), v));
        g.log.push(Write {
            at: Instant::now(),
            record: rec.clone(),
        });
        Ok(Put::Done(v.to_string()))
    }
}

/// Sleep, unless there is nothing to wait for (no lag: behave exactly as before lags).
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
