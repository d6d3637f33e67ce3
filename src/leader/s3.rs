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

use super::{LeaderError, LeaderState, LeaseBackend, Round};
use crate::model::Epoch;
use aws_sdk_s3::error::ProvideErrorMetadata;
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
    identity: String,
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
        S3Lease {
            client,
            bucket,
            key,
            identity,
            timing,
            mine: None,
            record: None,
            renewed_at: None,
            seen: None,
            last_epoch: Epoch(0),
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
            Err(e) => {
                return Err(LeaderError::Store {
                    op: "GetObject",
                    message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                });
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.map_err(|e| LeaderError::Store {
            op: "GetObject",
            message: e.to_string(),
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
                let code = e.code().unwrap_or_default();
                let status = e.raw_response().map(|r| r.status().as_u16());
                if code == "PreconditionFailed"
                    || code == "ConditionalRequestConflict"
                    || status == Some(412)
                    || status == Some(409)
                {
                    Ok(Put::Conflict)
                } else {
                    Err(LeaderError::Store {
                        op: "PutObject",
                        message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                    })
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
    async fn try_round(&mut self) -> Result<Instant, LeaderError> {
        let retry = self.timing.retry;
        // Fast path: renew our own lease without reading it first.
        if let (Some(etag), Some(rec)) = (self.mine.clone(), self.record.clone()) {
            let next = LeaseRecord {
                renewals: rec.renewals + 1,
                ..rec
            };
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
            let fresh = LeaseRecord {
                holder: self.identity.clone(),
                epoch: self.last_epoch.0 + 1,
                lease_ms: self.timing.lease.as_millis() as u64,
                renewals: 0,
                released: false,
            };
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
            epoch: rec.epoch + 1,
            lease_ms: me.timing.lease.as_millis() as u64,
            renewals: 0,
            released: false,
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
                    let expires = *first + Duration::from_millis(rec.lease_ms);
                    if now >= expires {
                        tracing::info!(lease = %self.location(), holder = %rec.holder, "lease expired; taking over");
                        Some(take(self))
                    } else {
                        return Ok(expires.min(now + retry));
                    }
                }
                _ => {
                    self.seen = Some((etag.clone(), now));
                    return Ok((now + Duration::from_millis(rec.lease_ms)).min(now + retry));
                }
            }
        };
        if let Some(candidate) = next_try {
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
    async fn round(&mut self) -> Round {
        let next = match self.try_round().await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "lease round failed");
                Instant::now() + self.timing.retry
            }
        };
        Round {
            state: self.state(Instant::now()),
            next,
        }
    }

    async fn release(&mut self) -> Result<(), LeaderError> {
        let (Some(etag), Some(rec)) = (self.mine.clone(), self.record.clone()) else {
            return Ok(());
        };
        let released = LeaseRecord {
            released: true,
            renewals: rec.renewals + 1,
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
