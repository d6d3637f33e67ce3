//! S3 lease: one JSON object, changed only with conditional writes, so that it works on
//! real S3 and on LocalStack without any other coordination service.
//!
//! - Create: `PutObject` with `If-None-Match: *` (fails if someone else created it).
//! - Renew / take over / release: `PutObject` with `If-Match: <etag>` (fails if anybody
//!   wrote since we read it). Exactly one of several racing writers wins.
//! - Take over only after the object was seen *unchanged* (same ETag) for the holder's
//!   lease duration on our own monotonic clock. No wall clock is trusted.
//! - The holder may mutate until `last successful renewal send time + renew_deadline`,
//!   which is earlier than anybody can take over (`>= write time + lease_duration`).
//! - Release writes `released: true`, so a standby takes over on its next round.
//! - Epochs never go backwards: a new holder takes `max(record, floor) + 1`, where the floor
//!   is the highest epoch stamped on any float; a holder that learns of a stamp above its
//!   own epoch raises its epoch in its next renewal (still a conditional write, so only
//!   the true holder can).

use super::{LeaderError, LeaderState, LeaseBackend, Round, RoundCtx, StoreHealth};
use crate::aws::{Failure, failure};
use crate::model::Epoch;
use aws_sdk_s3::primitives::ByteStream;
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

pub struct S3Lease {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    region: String,
    identity: String,
    /// Our advertised API URL, written into the record while we hold it.
    api: Option<String>,
    store: StoreHealth,
    timing: LeaseTiming,
    /// ETag of our own last successful write while we hold the lease.
    mine: Option<String>,
    record: Option<LeaseRecord>,
    /// Send time of our last successful write (start of the fence window).
    renewed_at: Option<Instant>,
    /// Someone else's lease as last seen: its ETag and when we first saw that ETag.
    seen: Option<(String, Instant)>,
    last_epoch: Epoch,
}

enum Put {
    Ok(String),
    Conflict,
}

impl S3Lease {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: String,
        key: String,
        identity: String,
        timing: LeaseTiming,
    ) -> Self {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "(no region)".into());
        S3Lease {
            client,
            bucket,
            key,
            region,
            identity,
            api: None,
            store: StoreHealth::default(),
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

    fn store_error<E, R>(
        &self,
        op: &'static str,
        e: &aws_sdk_s3::error::SdkError<E, R>,
    ) -> LeaderError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + crate::aws::HttpStatus + 'static,
    {
        let (code, message) = match failure(e) {
            Failure::Transport { code, message }
            | Failure::Throttled { code, message }
            | Failure::Api { code, message } => (code, message),
        };
        LeaderError::Store {
            op,
            region: self.region.clone(),
            code,
            message: format!("{message} ({})", self.location()),
        }
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(lease = %self.location()))]
    async fn get(&self) -> Result<Option<(LeaseRecord, String)>, LeaderError> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.store_error("GetObject", &e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.map_err(|e| LeaderError::Store {
            op: "GetObject",
            region: self.region.clone(),
            code: "ConnectionError".into(),
            message: format!("reading the lease body: {e}"),
        })?;
        let rec: LeaseRecord =
            serde_json::from_slice(&body.into_bytes()).map_err(|e| LeaderError::Corrupt {
                location: self.location(),
                message: e.to_string(),
            })?;
        Ok(Some((rec, etag)))
    }

    /// Conditional write: `if_match` None means create-only (`If-None-Match: *`).
    #[tracing::instrument(level = "debug", skip(self, rec), fields(lease = %self.location(), epoch = rec.epoch))]
    async fn put(&self, rec: &LeaseRecord, if_match: Option<&str>) -> Result<Put, LeaderError> {
        let body = serde_json::to_vec(rec).map_err(|e| LeaderError::Corrupt {
            location: self.location(),
            message: e.to_string(),
        })?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        req = match if_match {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(o) => Ok(Put::Ok(o.e_tag().unwrap_or_default().to_string())),
            Err(e) => {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let code = e.code().unwrap_or_default();
                let status = e.raw_response().map(|r| r.status().as_u16());
                if code == "PreconditionFailed"
                    || code == "ConditionalRequestConflict"
                    || status == Some(412)
                    || status == Some(409)
                {
                    Ok(Put::Conflict)
                } else {
                    Err(self.store_error("PutObject", &e))
                }
            }
        }
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
            store: self.store.clone(),
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
            tracing::warn!(lease = %self.location(), "not renewing the lease: this replica is not making progress");
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
                tracing::warn!(lease = %self.location(), from = rec.epoch, to = next.epoch, "a float carries an epoch above ours; raising our epoch above it");
            }
            let sent = Instant::now();
            return match self.put(&next, Some(&etag)).await? {
                Put::Ok(new) => {
                    self.won(next, new, sent);
                    Ok(sent + retry)
                }
                Put::Conflict => {
                    tracing::warn!(lease = %self.location(), "lease was taken by another replica");
                    self.lost();
                    Ok(Instant::now())
                }
            };
        }
        let now = Instant::now();
        let Some((rec, etag)) = self.get().await? else {
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
                tracing::info!(lease = %self.location(), epoch = fresh.epoch, "no lease object: creating one above the highest epoch seen");
            }
            let sent = Instant::now();
            if let Put::Ok(new) = self.put(&fresh, None).await? {
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
                        tracing::info!(lease = %self.location(), holder = %rec.holder, "lease expired; taking over");
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
            match self.put(&candidate, Some(&etag)).await? {
                Put::Ok(new) => self.won(candidate, new, sent),
                Put::Conflict => self.seen = None,
            }
        }
        Ok(Instant::now() + retry)
    }
}

#[async_trait::async_trait]
impl LeaseBackend for S3Lease {
    async fn round(&mut self, ctx: RoundCtx) -> Round {
        let next = match self.try_round(ctx).await {
            Ok(next) => {
                self.store.last_ok = Some(Instant::now());
                self.store.last_error = None;
                next
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease round failed");
                self.store.last_error = Some(e.to_string());
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
        let r = self.put(&released, Some(&etag)).await;
        self.lost();
        match r? {
            Put::Ok(_) | Put::Conflict => Ok(()),
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
