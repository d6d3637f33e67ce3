//! The lease protocol, over any store that offers a versioned read and a conditional
//! write ([`LeaseStore`]): S3 (ETag, `If-Match` / `If-None-Match`) today, a Kubernetes
//! Lease (resourceVersion) next. The takeover rules live here once, so every store keeps
//! the same guarantees:
//!
//! - Create only if absent; renew, take over and release only if the version read (or
//!   last written) is still current. Exactly one of several racing writers wins.
//! - Take over only after the record was seen *unchanged* (same version) for the holder's
//!   lease duration on our own monotonic clock. No wall clock is trusted.
//! - The holder may mutate until `last successful renewal send time + renew_deadline`,
//!   which is earlier than anybody can take over (`>= write time + lease_duration`).
//! - Release writes `released: true`, so a standby takes over on its next round.
//! - Epochs never go backwards: a new holder takes `max(record, floor) + 1`, where the floor
//!   is the highest epoch stamped on any float; a holder that learns of a stamp above its
//!   own epoch raises its epoch in its next renewal (still a conditional write, so only
//!   the true holder can).
//! - A replica that must not lead (stalled, or not yet settled) never creates, takes or
//!   renews the lease, and forgets a claim it had.

use super::{LeaderError, LeaderState, LeaseBackend, Round, RoundCtx, StoreHealth};
use crate::model::Epoch;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// The lease object's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseRecord {
    pub holder: String,
    pub epoch: u64,
    pub lease_ms: u64,
    /// Incremented on every renewal so that every write changes the ETag.
    pub renewals: u64,
    #[serde(default)]
    pub released: bool,
    /// The holder's API URL, so that standbys can point clients at the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// Timing of the election.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    pub lease: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

/// What a conditional write requires of the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// No record exists (create).
    Absent,
    /// The record is still at this version (renew, take over, release).
    Matches(&'a str),
}

/// The answer to a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the record's new version.
    Done(String),
    /// The precondition failed: somebody else wrote first.
    Conflict,
}

/// Where a lease record lives: a versioned read and a conditional write.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    /// The record and its version, or None when there is no record.
    async fn get(&self) -> Result<Option<(LeaseRecord, String)>, LeaderError>;
    /// Write `rec` if `pre` holds.
    async fn put(&self, rec: &LeaseRecord, pre: Precondition<'_>) -> Result<Put, LeaderError>;
    /// Where the record lives, for logs (`s3://bucket/key`).
    fn location(&self) -> String;
}

/// A lease backend: the protocol above over store `S`.
pub struct CasLease<S> {
    store: S,
    identity: String,
    /// Our advertised API URL, written into the record while we hold it.
    api: Option<String>,
    health: StoreHealth,
    timing: LeaseTiming,
    /// Version of our own last successful write while we hold the lease.
    mine: Option<String>,
    record: Option<LeaseRecord>,
    /// Send time of our last successful write (start of the fence window).
    renewed_at: Option<Instant>,
    /// Someone else's lease as last seen: its version and when we first saw it.
    seen: Option<(String, Instant)>,
    last_epoch: Epoch,
}

impl<S: LeaseStore> CasLease<S> {
    pub fn new(store: S, identity: String, timing: LeaseTiming) -> Self {
        CasLease {
            store,
            identity,
            api: None,
            health: StoreHealth::default(),
            timing,
            mine: None,
            record: None,
            renewed_at: None,
            seen: None,
            last_epoch: Epoch(0),
        }
    }

    /// Advertise this API URL in the record while we hold the lease.
    pub fn advertise(mut self, api: Option<String>) -> Self {
        self.api = api;
        self
    }

    fn state(&self, now: Instant) -> LeaderState {
        let leading = self.mine.is_some()
            && self
                .renewed_at
                .is_some_and(|t| now < t + self.timing.renew_deadline);
        LeaderState {
            identity: self.identity.clone(),
            is_leader: leading,
            epoch: self.last_epoch,
            holder: self
                .record
                .as_ref()
                .filter(|r| !r.released)
                .map(|r| r.holder.clone()),
            holder_api: self
                .record
                .as_ref()
                .filter(|r| !r.released)
                .and_then(|r| r.api.clone()),
            store: self.health.clone(),
            fence_deadline: if leading {
                self.renewed_at.map(|t| t + self.timing.renew_deadline)
            } else {
                None
            },
        }
    }

    fn won(&mut self, rec: LeaseRecord, etag: String, sent: Instant) {
        self.last_epoch = Epoch(rec.epoch);
        self.record = Some(rec);
        self.mine = Some(etag);
        self.renewed_at = Some(sent);
        self.seen = None;
    }

    fn lost(&mut self) {
        self.mine = None;
        self.renewed_at = None;
    }

    /// One round; errors leave the state as it was (the fence deadline decides).
    async fn try_round(&mut self, ctx: RoundCtx) -> Result<Instant, LeaderError> {
        let retry = self.timing.retry;
        let floor = ctx.epoch_floor.max(self.last_epoch);
        if !ctx.may_acquire && self.mine.is_some() {
            // This replica must not lead (stalled): never renew; let the lease run out so a
            // healthy standby takes over. Forget our claim: if we recover, we wait for the
            // lease like anybody else and take a new epoch.
            tracing::warn!(lease = %self.store.location(), "not renewing the lease: this replica is not making progress");
            self.lost();
        }
        // Fast path: renew our own lease without reading it first.
        if let (Some(etag), Some(rec)) = (self.mine.clone(), self.record.clone()) {
            let mut next = LeaseRecord {
                renewals: rec.renewals.saturating_add(1),
                ..rec
            };
            if ctx.epoch_floor.0 > next.epoch {
                // A float carries a stamp above our epoch, and we still hold the lease:
                // the stamp outlived an older lease object. Move above it. (Stamps equal
                // to our epoch are our own.)
                next.epoch = ctx.epoch_floor.0.saturating_add(1);
                tracing::warn!(lease = %self.store.location(), from = rec.epoch, to = next.epoch, "a float carries an epoch above ours; raising our epoch above it");
            }
            let sent = Instant::now();
            return match self.store.put(&next, Precondition::Matches(&etag)).await? {
                Put::Done(new) => {
                    self.won(next, new, sent);
                    Ok(sent + retry)
                }
                Put::Conflict => {
                    tracing::warn!(lease = %self.store.location(), "lease was taken by another replica");
                    self.lost();
                    Ok(Instant::now())
                }
            };
        }
        let now = Instant::now();
        let Some((rec, etag)) = self.store.get().await? else {
            self.record = None;
            if !ctx.may_acquire {
                return Ok(now + retry);
            }
            let fresh = LeaseRecord {
                holder: self.identity.clone(),
                epoch: floor.0.saturating_add(1),
                lease_ms: duration_ms(self.timing.lease),
                renewals: 0,
                released: false,
                api: self.api.clone(),
            };
            if floor > Epoch(0) {
                tracing::info!(lease = %self.store.location(), epoch = fresh.epoch, "no lease object: creating one above the highest epoch seen");
            }
            let sent = Instant::now();
            if let Put::Done(new) = self.store.put(&fresh, Precondition::Absent).await? {
                self.won(fresh, new, sent);
            }
            return Ok(sent + retry);
        };
        self.last_epoch = self.last_epoch.max(Epoch(rec.epoch));
        self.record = Some(rec.clone());
        let take = |me: &Self| LeaseRecord {
            holder: me.identity.clone(),
            epoch: floor.0.max(rec.epoch).saturating_add(1),
            lease_ms: duration_ms(me.timing.lease),
            renewals: 0,
            released: false,
            api: me.api.clone(),
        };
        // A record naming our identity that we did not write in this process (a restart
        // with a fixed identity, a lost response, or a second process misconfigured with
        // the same identity) is treated like anybody else's: adopting it could make two
        // processes lead at once.
        let next_try = if rec.released {
            Some(take(self))
        } else {
            match &self.seen {
                Some((e, first)) if *e == etag => {
                    let expires = *first + record_lease(&rec);
                    if now >= expires {
                        tracing::info!(lease = %self.store.location(), holder = %rec.holder, "lease expired; taking over");
                        Some(take(self))
                    } else {
                        return Ok(expires.min(now + retry));
                    }
                }
                _ => {
                    self.seen = Some((etag.clone(), now));
                    return Ok((now + record_lease(&rec)).min(now + retry));
                }
            }
        };
        if let Some(candidate) = next_try.filter(|_| ctx.may_acquire) {
            let sent = Instant::now();
            match self
                .store
                .put(&candidate, Precondition::Matches(&etag))
                .await?
            {
                Put::Done(new) => self.won(candidate, new, sent),
                Put::Conflict => self.seen = None,
            }
        }
        Ok(Instant::now() + retry)
    }
}

#[async_trait::async_trait]
impl<S: LeaseStore> LeaseBackend for CasLease<S> {
    async fn round(&mut self, ctx: RoundCtx) -> Round {
        let next = match self.try_round(ctx).await {
            Ok(next) => {
                self.health.last_ok = Some(Instant::now());
                self.health.last_error = None;
                next
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease round failed");
                self.health.last_error = Some(e.to_string());
                Instant::now() + self.timing.retry
            }
        };
        Round {
            state: self.state(Instant::now()),
            next,
        }
    }

    fn retry_period(&self) -> Duration {
        self.timing.retry
    }

    async fn release(&mut self) -> Result<(), LeaderError> {
        let (Some(etag), Some(rec)) = (self.mine.clone(), self.record.clone()) else {
            return Ok(());
        };
        let released = LeaseRecord {
            released: true,
            renewals: rec.renewals.saturating_add(1),
            ..rec
        };
        let r = self
            .store
            .put(&released, Precondition::Matches(&etag))
            .await;
        self.lost();
        match r? {
            Put::Done(_) | Put::Conflict => Ok(()),
        }
    }

    fn identity(&self) -> &str {
        &self.identity
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The lease duration a record claims, capped at one hour: the record comes from outside
/// the process, and a corrupt or hostile value must not overflow a deadline (or stall a
/// takeover forever).
fn record_lease(rec: &LeaseRecord) -> Duration {
    Duration::from_millis(rec.lease_ms.min(3_600_000))
}
