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

use super::LeaderError;
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
    /// A random id of the claim that wrote the record (one per process and store). A
    /// renewal whose answer was lost may still land; the next renewal then finds a version
    /// it did not write, and only this id tells "my own late write" from "a replica with
    /// the same identity" (a misconfiguration the protocol must still survive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
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

/// A shared store is a store (a quorum member, or one store chosen at start).
#[async_trait::async_trait]
impl<T: LeaseStore + ?Sized> LeaseStore for std::sync::Arc<T> {
    async fn get(&self) -> Result<Option<(LeaseRecord, String)>, LeaderError> {
        (**self).get().await
    }
    async fn put(&self, rec: &LeaseRecord, pre: Precondition<'_>) -> Result<Put, LeaderError> {
        (**self).put(rec, pre).await
    }
    fn location(&self) -> String {
        (**self).location()
    }
}

/// Which epoch a claim writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochRule {
    /// One store: a takeover writes `max(record, floor) + 1`; a renewal keeps its epoch
    /// unless the floor has passed it.
    Above(Epoch),
    /// One member of a quorum: every write carries exactly this term epoch, and a record is
    /// taken only if its epoch is below it (so the term's epoch is above every epoch the
    /// member ever held: see `quorum`).
    Term(Epoch),
}

/// What one step of a claim may do.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    /// May keep (renew) what it holds. False: forget the claim and let it run out.
    pub may_hold: bool,
    /// May create or take over the record.
    pub may_take: bool,
    pub epoch: EpochRule,
    /// Create an absent record only after seeing it absent for a lease duration on our
    /// own clock (quorum members: a member deleted and recreated empty must not hand a
    /// second replica a fresh record while the holder's fence window is still open).
    /// False: create at once (one store, or a leader that already holds a majority).
    pub absent_wait: bool,
}

/// The version `seen` records for an absent record (no store uses an empty version).
mod cas;
pub use cas::CasLease;

const ABSENT: &str = "";

/// One replica's claim on one store: the per-store half of the protocol (module docs).
/// A plain value, so that a quorum can move it into a task per member and get it back.
#[derive(Debug, Clone)]
pub struct Claim {
    identity: String,
    /// Our advertised API URL, written into the record while we hold it.
    api: Option<String>,
    timing: LeaseTiming,
    /// Version of our own last successful write while we hold the record.
    mine: Option<String>,
    /// The record as last read or written (None: absent, or never read).
    record: Option<LeaseRecord>,
    /// True once the store answered at least once (so `record: None` means absent).
    known: bool,
    /// Send time of our last successful write (start of the fence window).
    renewed_at: Option<Instant>,
    /// Someone else's record as last seen: its version and when we first saw it.
    seen: Option<(String, Instant)>,
    /// The highest epoch this claim has read or written.
    last_epoch: Epoch,
    /// This claim's id in the records it writes ([`LeaseRecord::writer`]).
    writer: String,
    /// The send time of the first renewal since the last success whose answer never came
    /// (it may have landed).
    unsure_since: Option<Instant>,
}

impl Claim {
    pub fn new(identity: String, api: Option<String>, timing: LeaseTiming) -> Self {
        Claim {
            identity,
            api,
            timing,
            mine: None,
            record: None,
            known: false,
            renewed_at: None,
            seen: None,
            last_epoch: Epoch(0),
            writer: format!("{:016x}", rand::random::<u64>()),
            unsure_since: None,
        }
    }

    /// True while we hold the record and our last renewal is within the renew deadline.
    pub fn holds(&self, now: Instant) -> bool {
        self.mine.is_some() && self.fence_deadline().is_some_and(|d| now < d)
    }

    /// While held: the last renewal's send time + the renew deadline.
    pub fn fence_deadline(&self) -> Option<Instant> {
        self.mine.as_ref()?;
        self.renewed_at.map(|t| t + self.timing.renew_deadline)
    }

    /// The record as last seen (None: absent or not yet read).
    pub fn record(&self) -> Option<&LeaseRecord> {
        self.record.as_ref()
    }

    /// The live holder named by the record (not released).
    pub fn holder(&self) -> Option<&LeaseRecord> {
        self.record.as_ref().filter(|r| !r.released)
    }

    pub fn last_epoch(&self) -> Epoch {
        self.last_epoch
    }

    /// Did the store answer at least once since we last lost track of the record?
    pub fn known(&self) -> bool {
        self.known
    }

    /// Could another replica's claim be taken at `now` by us: read, and released, or seen
    /// unchanged (or absent) for its lease on our clock. Unknown and held records are not.
    pub fn free(&self, now: Instant) -> bool {
        if self.mine.is_some() || !self.known {
            return false;
        }
        match &self.record {
            None => self
                .seen
                .as_ref()
                .is_some_and(|(v, first)| v == ABSENT && now >= *first + self.timing.lease),
            Some(r) if r.released => true,
            Some(r) => self
                .seen
                .as_ref()
                .is_some_and(|(_, first)| now >= *first + record_lease(r)),
        }
    }

    fn won(&mut self, rec: LeaseRecord, version: String, sent: Instant) {
        self.last_epoch = self.last_epoch.max(Epoch(rec.epoch));
        self.record = Some(rec);
        self.known = true;
        self.mine = Some(version);
        self.renewed_at = Some(sent);
        self.seen = None;
    }

    /// Stop claiming the record (it runs out, or somebody else wrote it).
    pub fn forget(&mut self) {
        self.mine = None;
        self.renewed_at = None;
    }

    fn fresh(&self, epoch: u64) -> LeaseRecord {
        LeaseRecord {
            holder: self.identity.clone(),
            epoch,
            lease_ms: duration_ms(self.timing.lease),
            renewals: 0,
            released: false,
            api: self.api.clone(),
            writer: Some(self.writer.clone()),
        }
    }

    /// One step against `store`: renew what we hold, or read and (if allowed and due)
    /// create or take over. Returns when the next step is due. Errors leave the claim as
    /// it was (the fence deadline decides).
    pub async fn step(
        &mut self,
        store: &dyn LeaseStore,
        want: Want,
    ) -> Result<Instant, LeaderError> {
        if !want.may_hold && self.mine.is_some() {
            // This replica must not lead (stalled): never renew; let the lease run out so a
            // healthy standby takes over. Forget our claim: if we recover, we wait for the
            // lease like anybody else and take a new epoch.
            tracing::warn!(lease = %store.location(), "not renewing the lease: this replica is not making progress");
            self.forget();
        }
        // Fast path: renew our own record without reading it first.
        if let (Some(version), Some(rec)) = (self.mine.clone(), self.record.clone()) {
            return self.renew(store, want, version, rec).await;
        }
        let read = match store.get().await {
            Ok(read) => read,
            Err(e) => {
                // An absence is only an absence while we keep seeing it: the record may
                // be created and deleted again while we cannot look.
                if self.seen.as_ref().is_some_and(|(v, _)| v == ABSENT) {
                    self.seen = None;
                }
                return Err(e);
            }
        };
        // The clock starts when the answer is here, not when the question left: the
        // version read may have been written while the request was on its way, and a
        // takeover must wait a whole lease after that write.
        let now = Instant::now();
        self.known = true;
        match read {
            None => self.create(store, want, now).await,
            Some((rec, version)) => self.take_over(store, want, now, rec, version).await,
        }
    }

    /// Renew the record we hold (a conditional write on the version we wrote last).
    async fn renew(
        &mut self,
        store: &dyn LeaseStore,
        want: Want,
        version: String,
        rec: LeaseRecord,
    ) -> Result<Instant, LeaderError> {
        let mut next = LeaseRecord {
            renewals: rec.renewals.saturating_add(1),
            writer: Some(self.writer.clone()),
            ..rec
        };
        match want.epoch {
            EpochRule::Above(floor) if floor.0 > next.epoch => {
                // A float carries a stamp above our epoch, and we still hold the lease:
                // the stamp outlived an older lease object. Move above it. (Stamps equal
                // to our epoch are our own.)
                next.epoch = floor.0.saturating_add(1);
                tracing::warn!(lease = %store.location(), from = rec.epoch, to = next.epoch, "a float carries an epoch above ours; raising our epoch above it");
            }
            EpochRule::Term(e) => next.epoch = next.epoch.max(e.0),
            EpochRule::Above(_) => {}
        }
        let sent = Instant::now();
        let put = match store.put(&next, Precondition::Matches(&version)).await {
            Ok(p) => p,
            Err(e) => {
                // No answer, but the write may have landed (and may still land).
                self.unsure_since.get_or_insert(sent);
                return Err(e);
            }
        };
        match put {
            Put::Done(new) => {
                self.unsure_since = None;
                self.won(next, new, sent);
                Ok(sent + self.timing.retry)
            }
            Put::Conflict => {
                if let Some(since) = self.unsure_since.take()
                    && let Ok(Some((rec, v))) = store.get().await
                    && rec.holder == next.holder
                    && rec.writer == next.writer
                    && rec.epoch == next.epoch
                    && !rec.released
                {
                    // Our own renewal, whose answer was lost, landed: the record is still
                    // ours. The fence counts from when that renewal was sent (it landed
                    // later, so everyone else's clock started later still).
                    tracing::info!(lease = %store.location(), "a renewal whose answer was lost had landed: the lease is still ours");
                    self.won(rec, v, since);
                    return Ok(Instant::now());
                }
                tracing::warn!(lease = %store.location(), "lease was taken by another replica");
                self.forget();
                self.known = false;
                Ok(Instant::now())
            }
        }
    }

    /// No record: note how long it has been absent, and create it if allowed and due.
    async fn create(
        &mut self,
        store: &dyn LeaseStore,
        want: Want,
        now: Instant,
    ) -> Result<Instant, LeaderError> {
        let retry = self.timing.retry;
        self.record = None;
        let since = match &self.seen {
            Some((v, first)) if v == ABSENT => *first,
            _ => now,
        };
        self.seen = Some((ABSENT.to_string(), since));
        if !want.may_take {
            return Ok(now + retry);
        }
        if want.absent_wait && now < since + self.timing.lease {
            return Ok((since + self.timing.lease).min(now + retry));
        }
        let epoch = match want.epoch {
            EpochRule::Above(floor) => floor.max(self.last_epoch).0.saturating_add(1),
            EpochRule::Term(e) => e.0,
        };
        let fresh = self.fresh(epoch);
        if epoch > 1 {
            tracing::info!(lease = %store.location(), epoch, "no lease object: creating one above the highest epoch seen");
        }
        let sent = Instant::now();
        match store.put(&fresh, Precondition::Absent).await? {
            Put::Done(new) => self.won(fresh, new, sent),
            // Somebody created it first: it is not absent any more.
            Put::Conflict => self.seen = None,
        }
        Ok(sent + retry)
    }

    /// Somebody's record: wait until it is released or has stayed unchanged for its lease
    /// on our clock, then take it over if allowed.
    async fn take_over(
        &mut self,
        store: &dyn LeaseStore,
        want: Want,
        now: Instant,
        rec: LeaseRecord,
        version: String,
    ) -> Result<Instant, LeaderError> {
        let retry = self.timing.retry;
        self.last_epoch = self.last_epoch.max(Epoch(rec.epoch));
        self.record = Some(rec.clone());
        // A record naming our identity that we did not write in this process (a restart
        // with a fixed identity, a lost response, or a second process misconfigured with
        // the same identity) is treated like anybody else's: adopting it could make two
        // processes lead at once.
        if !rec.released {
            match &self.seen {
                Some((v, first)) if *v == version => {
                    let expires = *first + record_lease(&rec);
                    if now < expires {
                        return Ok(expires.min(now + retry));
                    }
                    tracing::info!(lease = %store.location(), holder = %rec.holder, "lease expired; taking over");
                }
                _ => {
                    self.seen = Some((version.clone(), now));
                    return Ok((now + record_lease(&rec)).min(now + retry));
                }
            }
        }
        let epoch = match want.epoch {
            EpochRule::Above(floor) => floor
                .max(self.last_epoch)
                .0
                .max(rec.epoch)
                .saturating_add(1),
            // The term must be above this record's epoch; the quorum raises its term.
            EpochRule::Term(e) if e.0 <= rec.epoch => return Ok(now + retry),
            EpochRule::Term(e) => e.0,
        };
        if want.may_take {
            let candidate = self.fresh(epoch);
            let sent = Instant::now();
            match store
                .put(&candidate, Precondition::Matches(&version))
                .await?
            {
                Put::Done(new) => self.won(candidate, new, sent),
                Put::Conflict => self.seen = None,
            }
        }
        Ok(Instant::now() + retry)
    }

    /// Give the record up (writes `released: true` if we still hold it).
    pub async fn release(&mut self, store: &dyn LeaseStore) -> Result<(), LeaderError> {
        let (Some(version), Some(rec)) = (self.mine.clone(), self.record.clone()) else {
            return Ok(());
        };
        let released = LeaseRecord {
            released: true,
            renewals: rec.renewals.saturating_add(1),
            ..rec
        };
        let r = store.put(&released, Precondition::Matches(&version)).await;
        self.forget();
        match r? {
            Put::Done(v) => {
                self.record = Some(released);
                self.seen = Some((v, Instant::now()));
                Ok(())
            }
            Put::Conflict => Ok(()),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The lease duration a record claims, capped at one hour: the record comes from outside
/// the process, and a corrupt or hostile value must not overflow a deadline (or stall a
/// takeover forever).
pub fn record_lease(rec: &LeaseRecord) -> Duration {
    Duration::from_millis(rec.lease_ms.min(3_600_000))
}
