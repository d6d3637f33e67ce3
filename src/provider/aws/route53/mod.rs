//! Route 53 weighted record sets, steered with fenced change batches.
//!
//! A weight change is a compare-and-set: the batch DELETEs every changed record with
//! exactly the values observed and CREATEs its replacement, swaps the stamp record
//! (`_floatover.<name>` TXT, `epoch/reason/target`) the same way, and bumps the version
//! record (`_floatover-v.<name>` TXT, a counter: N is DELETEd, N+1 CREATEd). Route 53
//! applies a batch whole or not at all and refuses a DELETE whose values differ, so a
//! batch built on a view that anyone changed since (a newer leader's batch, a person)
//! fails with `InvalidChangeBatch` and the engine re-observes. A record floatover steers
//! is never UPSERTed. LocalStack (moto) checks a DELETE against the record as first
//! created, not as last replaced, and accepts a DELETE whose *weight* differs; it does
//! refuse to CREATE a record identical to an existing one. Two writers from the same view
//! both CREATE the same version N+1, so the second is refused there too (`InvalidInput`
//! or `InvalidChangeBatch`): the version record is the fence that holds on every backend.
//!
//! One batch per hosted zone at a time, never two in flight for one zone (a lock per
//! zone), shared by every group whose change waits for it ([`coalesce`]); a token bucket per account paces them (Route 53 allows five requests a second per
//! account); `Throttling` and `PriorRequestNotComplete` are retried with jitter by the SDK's
//! standard retry mode. After a batch, `GetChange` is polled until INSYNC in the
//! background: the time goes to `floatover_dns_insync_seconds`.

mod batch;
mod coalesce;
#[cfg(test)]
mod mocked;
mod observe;
pub mod spec;

pub use crate::aws::MemberWrites;
use batch::*;

use super::Pacer;
use crate::aws::HttpStatus;
use crate::leader::Fence;
use crate::metrics::Metrics;
use crate::model::MoveStamp;
use crate::provider::{
    Propagation, ProviderError, ReleaseOrder, StampOrder, WeightDone, WeightOrder,
};
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{Change, ChangeBatch, ChangeStatus};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Route 53 is a global service; errors name it so (`ChangeResourceRecordSets in global`).
pub const REGION: &str = "global";

/// One record exactly as Route 53 returned it: what a DELETE must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub weight: Option<i64>,
    /// `PRIMARY` or `SECONDARY` in a failover pair.
    pub failover: Option<String>,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    /// A Route 53 health check on the record: kept when floatover replaces the record
    /// (and part of what a DELETE must repeat).
    pub health_check: Option<String>,
}

impl Rec {
    /// A plain record (TXT stamps and versions).
    pub fn plain(ttl: u32, value: String) -> Rec {
        Rec {
            weight: None,
            failover: None,
            ttl: Some(i64::from(ttl)),
            values: vec![value],
            health_check: None,
        }
    }
}

/// A weighted set as observed: each member's record by set identifier, and the stamp
/// record. Handed back with a write, which replaces exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub members: BTreeMap<String, Rec>,
    pub stamp: Option<Rec>,
    /// The version record (`_floatover-v.<name>`, a counter).
    pub version: Option<Rec>,
}

/// The Route 53 client, its pacing and its zone locks.
pub struct Route53 {
    pub client: Client,
    pub pacer: Pacer,
    pub call_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub mutations: Arc<AtomicU64>,
    /// How long a batch waits for INSYNC before reporting (the rest is polled in the
    /// background and lands in the metrics).
    pub insync_wait: Duration,
    /// How changed member records are written (`replace` on Route 53).
    pub member_writes: MemberWrites,
    zones: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Changes waiting for their zone's next batch, by zone.
    waiting: Mutex<HashMap<String, Vec<coalesce::Waiting>>>,
    /// Each float's last change and how far it has spread (for status).
    sync: Mutex<HashMap<String, Propagation>>,
}

impl Route53 {
    pub fn new(
        client: Client,
        pacer: Pacer,
        call_timeout: Duration,
        metrics: Arc<Metrics>,
        mutations: Arc<AtomicU64>,
    ) -> Self {
        Route53 {
            client,
            pacer,
            call_timeout,
            metrics,
            mutations,
            insync_wait: Duration::from_secs(2),
            member_writes: MemberWrites::Replace,
            zones: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            sync: Mutex::new(HashMap::new()),
        }
    }

    /// Work on the changes waiting for `zone`.
    fn waiting_for<T>(&self, zone: &str, f: impl FnOnce(&mut Vec<coalesce::Waiting>) -> T) -> T {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        f(w.entry(zone.to_string()).or_default())
    }

    fn zone_lock(&self, zone: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut z = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        z.entry(zone.to_string()).or_default().clone()
    }

    /// Record an operation's outcome in metrics and turn SDK errors into ours.
    async fn timed<T, E, R>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, aws_sdk_route53::error::SdkError<E, R>>>,
    ) -> Result<T, ProviderError>
    where
        E: aws_sdk_route53::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus + 'static,
    {
        super::timed(&self.metrics, "route53", op, REGION, fut).await
    }

    /// One fenced batch for one zone. Returns the change id.
    async fn send_batch(
        &self,
        zone: &str,
        changes: Vec<Change>,
        st: &MoveStamp,
        fence: &dyn Fence,
    ) -> Result<String, ProviderError> {
        let op = "ChangeResourceRecordSets";
        self.pacer.until_ready().await;
        if let Err(source) = fence.permit(st.epoch, self.call_timeout) {
            self.metrics.fenced.inc();
            return Err(ProviderError::Fenced { op, source });
        }
        self.mutations.fetch_add(1, Ordering::Relaxed);
        let batch = ChangeBatch::builder()
            .comment(format!("floatover epoch {}", st.epoch))
            .set_changes(Some(changes))
            .build()
            .map_err(|e| invalid(&e))?;
        let res = self
            .timed(
                op,
                self.client
                    .change_resource_record_sets()
                    .hosted_zone_id(zone)
                    .change_batch(batch)
                    .send(),
            )
            .await;
        match res {
            Ok(out) => {
                self.metrics.count_dns_batch("applied");
                Ok(out
                    .change_info()
                    .map(|c| c.id().to_string())
                    .unwrap_or_default())
            }
            // The batch named records that are no longer as observed: someone (a newer
            // leader, a person) changed the set. Nothing was applied.
            Err(ProviderError::Api {
                code,
                message,
                region,
                ..
            }) if code == "InvalidChangeBatch" || code == "InvalidInput" => {
                self.metrics.count_dns_batch("conflict");
                Err(ProviderError::Conflict {
                    op,
                    region,
                    code,
                    message,
                })
            }
            Err(e) => {
                self.metrics.count_dns_batch("error");
                Err(e)
            }
        }
    }

    /// The last change of a float and its state.
    pub fn propagation(&self, float: &str) -> Option<Propagation> {
        let sync = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        sync.get(float).cloned()
    }

    /// Record the state of a change for the floats it carried. A float's newer change is
    /// never overwritten by an older one's INSYNC.
    fn track(&self, change: &str, floats: &[String], insync: Option<Duration>) {
        let mut sync = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        for f in floats {
            let state = Propagation {
                change: change.to_string(),
                state: if insync.is_some() {
                    "INSYNC"
                } else {
                    "PENDING"
                }
                .into(),
                insync_ms: insync.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            };
            match sync.get(f) {
                Some(old) if old.change != change && insync.is_some() => {}
                _ => {
                    sync.insert(f.clone(), state);
                }
            }
        }
    }

    /// Poll `GetChange` until INSYNC, at most `wait`; the rest continues in the background.
    async fn insync(
        self: &Arc<Self>,
        change_id: String,
        floats: Vec<String>,
        sent: Instant,
    ) -> Option<Duration> {
        if change_id.is_empty() {
            return None;
        }
        self.track(&change_id, &floats, None);
        let me = self.clone();
        let poll = async move {
            let mut delay = Duration::from_millis(100);
            for _ in 0..120 {
                let r = me
                    .timed("GetChange", me.client.get_change().id(&change_id).send())
                    .await;
                match r {
                    Ok(o) if o.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync) => {
                        let took = sent.elapsed();
                        me.metrics.observe_dns_insync(took);
                        me.track(&change_id, &floats, Some(took));
                        return Some(took);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(change = %change_id, error = %e, "cannot read the change's status");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            tracing::warn!(change = %change_id, "change not INSYNC after its polling budget");
            None
        };
        let task = tokio::spawn(poll);
        match tokio::time::timeout(self.insync_wait, task).await {
            Ok(Ok(d)) => d,
            // Still pending (the poll goes on and records the time) or the poll died.
            _ => None,
        }
    }

    /// Set the weights of `orders`: one batch per zone, results in order.
    pub async fn set_weights(
        self: &Arc<Self>,
        orders: &[WeightOrder],
        fence: &dyn Fence,
    ) -> Vec<Result<WeightDone, ProviderError>> {
        let mut results: Vec<Option<Result<WeightDone, ProviderError>>> =
            orders.iter().map(|_| None).collect();
        let (by_zone, settled) = plan_batches(orders, self.member_writes);
        for (i, r) in settled {
            results[i] = Some(r);
        }
        let batches = by_zone.into_iter().map(|(zone, (st, plans))| async move {
            let mut out = Vec::new();
            let size = u32::try_from(plans.len()).unwrap_or(u32::MAX);
            let changes: Vec<Change> = plans.iter().flat_map(|(_, p)| p.changes.clone()).collect();
            let started = Instant::now();
            let res = self.coalesced(&zone, changes, size, &st, fence).await;
            let floats: Vec<String> = plans
                .iter()
                .filter_map(|(i, _)| orders.get(*i).map(|o| o.float.id.clone()))
                .collect();
            // Outside the zone's lock: the next batch need not wait for this one's INSYNC.
            let insync = match &res {
                Ok(sent) => self.insync(sent.change.clone(), floats, started).await,
                Err(_) => None,
            };
            out.extend(plans.into_iter().map(|(i, p)| {
                let r = res.clone().map(|sent| WeightDone {
                    changed: p.changed,
                    calls: 1,
                    call_time: sent.call_time,
                    batch_size: sent.floats,
                    insync,
                    stamp_error: None,
                });
                (i, r)
            }));
            out
        });
        for (i, r) in futures::future::join_all(batches)
            .await
            .into_iter()
            .flatten()
        {
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(invalid(&"no result"))))
            .collect()
    }

    /// One batch outside a decision's set (a release, a claim), under the zone's lock.
    async fn send_alone(
        &self,
        zone: &str,
        changes: Vec<Change>,
        st: &MoveStamp,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        let lock = self.zone_lock(zone);
        let _held = lock.lock().await;
        self.send_batch(zone, changes, st, fence).await.map(|_| ())
    }

    /// `on_all_unhealthy: release`: DELETE the group's records of the set (exactly as
    /// observed) in one fenced batch, so the name stops answering with dead targets
    /// (fail closed). The next decision with a healthy target CREATEs them again.
    pub async fn release_float(
        &self,
        o: &ReleaseOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        let Some(rec) = o.float.kind.dns() else {
            return Err(ProviderError::WrongProvider(o.float.id.clone(), "Route 53"));
        };
        let ids: Vec<String> = o
            .targets
            .iter()
            .filter_map(|b| b.dns.as_ref().map(|m| m.set_identifier.clone()))
            .collect();
        let plan = plan_release(rec, &ids, &snapshot(&o.observed), &o.stamp)?;
        if plan.changed == 0 {
            return Ok(());
        }
        self.send_alone(&rec.zone_id, plan.changes, &o.stamp, fence)
            .await
    }

    /// A new leader's claim: swap the stamp record alone, as a compare-and-set.
    pub async fn stamp_float(
        &self,
        o: &StampOrder,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        let Some(rec) = o.float.kind.dns() else {
            return Err(ProviderError::WrongProvider(o.float.id.clone(), "Route 53"));
        };
        let plan = plan_float(
            rec,
            &[],
            &snapshot(&o.observed),
            &o.stamp,
            true,
            self.member_writes,
        )?;
        self.send_alone(&rec.zone_id, plan.changes, &o.stamp, fence)
            .await
    }
}

#[cfg(test)]
mod tests;
