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
//! One batch per hosted zone per decision, never two in flight for one zone (a lock per
//! zone); a token bucket per account paces them (Route 53 allows five requests a second per
//! account); `Throttling` and `PriorRequestNotComplete` are retried with jitter by the SDK's
//! standard retry mode. After a batch, `GetChange` is polled until INSYNC in the
//! background: the time goes to `floatover_dns_insync_seconds`.

#[cfg(test)]
mod mocked;
mod observe;
pub mod spec;

use super::{Pacer, classify};
use crate::aws::HttpStatus;
use crate::leader::Fence;
use crate::metrics::Metrics;
use crate::model::MoveStamp;
use crate::provider::{
    ProviderError, Snapshot as AnySnapshot, StampOrder, WeightDone, WeightOrder,
};
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use spec::DnsRecord;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Route 53 is a global service; errors name it so (`ChangeResourceRecordSets in global`).
pub const REGION: &str = "global";

/// One record exactly as Route 53 returned it: what a DELETE must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub weight: Option<i64>,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
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
}

/// The TXT value of a stamp (quoted, as Route 53 stores TXT strings), with the version it
/// goes with: a claim under the same epoch still writes a different value (LocalStack
/// refuses to CREATE a record identical to one it holds, even one the batch DELETEs).
fn stamp_value(st: &MoveStamp, version: u64) -> String {
    format!("\"{} v{version}\"", super::stamp::encode(st))
}

/// The counter in a version record (0 when unreadable: the write then fails as stale).
fn version_of(r: &Rec) -> u64 {
    r.values
        .first()
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or(0)
}

fn decode_stamp(r: &Rec) -> Option<MoveStamp> {
    let v = r.values.first()?.trim_matches('"');
    super::stamp::decode(v.split(' ').next().unwrap_or(v))
}

pub use crate::aws::MemberWrites;

/// One member's wanted record, and whether the float changes at all.
struct Plan {
    changes: Vec<Change>,
    changed: u32,
}

fn rrset(
    name: &str,
    rtype: RrType,
    set_id: Option<&str>,
    rec: &Rec,
) -> Result<ResourceRecordSet, ProviderError> {
    let mut b = ResourceRecordSet::builder()
        .name(name)
        .r#type(rtype)
        .set_set_identifier(set_id.map(str::to_string))
        .set_weight(rec.weight)
        .set_ttl(rec.ttl);
    for v in &rec.values {
        b = b.resource_records(
            ResourceRecord::builder()
                .value(v)
                .build()
                .map_err(|e| invalid(&e))?,
        );
    }
    b.build().map_err(|e| invalid(&e))
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change, ProviderError> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| invalid(&e))
}

fn invalid(e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::Api {
        op: "ChangeResourceRecordSets",
        region: REGION.into(),
        code: "InvalidRequest".into(),
        message: e.to_string(),
    }
}

/// `(set identifier, value, weight)` of each target in an order.
fn wanted_of(o: &WeightOrder) -> Vec<(String, String, u32)> {
    o.weights
        .iter()
        .filter_map(|(b, w)| {
            b.dns
                .as_ref()
                .map(|m| (m.set_identifier.clone(), m.value.clone(), *w))
        })
        .collect()
}

fn snapshot(o: &Option<AnySnapshot>) -> Snapshot {
    match o {
        Some(AnySnapshot::Dns(s)) => s.clone(),
        None => Snapshot::default(),
    }
}

/// The changes for one float: replace each member whose weight or value differs (DELETE
/// exactly as observed, then CREATE), create missing members, and swap the stamp record if
/// anything changed (or `force_stamp`: a claim).
fn plan_float(
    rec: &DnsRecord,
    wanted: &[(String, String, u32)],
    seen: &Snapshot,
    stamp: &MoveStamp,
    force_stamp: bool,
    writes: MemberWrites,
) -> Result<Plan, ProviderError> {
    let rtype = RrType::from(rec.rtype.as_str());
    let mut changes = Vec::new();
    let mut changed = 0;
    for (set_id, value, weight) in wanted {
        let want = Rec {
            weight: Some(i64::from(*weight)),
            ttl: Some(i64::from(rec.ttl)),
            values: vec![value.clone()],
        };
        match seen.members.get(set_id) {
            Some(old) if old.weight == want.weight && old.values == want.values => {}
            Some(_) if writes == MemberWrites::Upsert => {
                changes.push(change(
                    ChangeAction::Upsert,
                    rrset(&rec.name, rtype.clone(), Some(set_id), &want)?,
                )?);
                changed += 1;
            }
            Some(old) => {
                changes.push(change(
                    ChangeAction::Delete,
                    rrset(&rec.name, rtype.clone(), Some(set_id), old)?,
                )?);
                changes.push(change(
                    ChangeAction::Create,
                    rrset(&rec.name, rtype.clone(), Some(set_id), &want)?,
                )?);
                changed += 1;
            }
            None => {
                changes.push(change(
                    ChangeAction::Create,
                    rrset(&rec.name, rtype.clone(), Some(set_id), &want)?,
                )?);
                changed += 1;
            }
        }
    }
    if changed > 0 || force_stamp {
        // The version record is the compare-and-set that holds on every backend: two
        // writers that saw version N both try to replace it with N+1. Real Route 53
        // refuses the second DELETE of N; LocalStack and moto, whose DELETE checks are
        // looser, refuse the second CREATE of an identical N+1 ("already exists").
        let vname = rec.version_name();
        let next = match &seen.version {
            Some(old) => {
                changes.push(change(
                    ChangeAction::Delete,
                    rrset(&vname, RrType::Txt, None, old)?,
                )?);
                version_of(old).saturating_add(1)
            }
            None => 1,
        };
        let new = Rec {
            weight: None,
            ttl: Some(i64::from(rec.ttl)),
            values: vec![format!("\"{next}\"")],
        };
        changes.push(change(
            ChangeAction::Create,
            rrset(&vname, RrType::Txt, None, &new)?,
        )?);
        let name = rec.stamp_name();
        if let Some(old) = &seen.stamp {
            changes.push(change(
                ChangeAction::Delete,
                rrset(&name, RrType::Txt, None, old)?,
            )?);
        }
        let new = Rec {
            weight: None,
            ttl: Some(i64::from(rec.ttl)),
            values: vec![stamp_value(stamp, next)],
        };
        changes.push(change(
            ChangeAction::Create,
            rrset(&name, RrType::Txt, None, &new)?,
        )?);
    }
    Ok(Plan { changes, changed })
}

/// The batches one decision sends: one per hosted zone, with every changed float of that
/// zone in it (and the stamp of the decision), plus the orders settled without a call
/// (already as wanted, or not a DNS float).
#[allow(clippy::type_complexity)]
fn plan_batches(
    orders: &[WeightOrder],
    writes: MemberWrites,
) -> (
    BTreeMap<String, (MoveStamp, Vec<(usize, Plan)>)>,
    Vec<(usize, Result<WeightDone, ProviderError>)>,
) {
    let mut by_zone: BTreeMap<String, (MoveStamp, Vec<(usize, Plan)>)> = BTreeMap::new();
    let mut settled = Vec::new();
    for (i, o) in orders.iter().enumerate() {
        let Some(rec) = o.float.kind.dns() else {
            settled.push((
                i,
                Err(ProviderError::WrongProvider(o.float.id.clone(), "Route 53")),
            ));
            continue;
        };
        match plan_float(
            rec,
            &wanted_of(o),
            &snapshot(&o.observed),
            &o.stamp,
            false,
            writes,
        ) {
            Ok(p) if p.changes.is_empty() => settled.push((i, Ok(WeightDone::default()))),
            Ok(p) => by_zone
                .entry(rec.zone_id.clone())
                .or_insert_with(|| (o.stamp.clone(), Vec::new()))
                .1
                .push((i, p)),
            Err(e) => settled.push((i, Err(e))),
        }
    }
    (by_zone, settled)
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
        }
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
        let started = Instant::now();
        let res = fut
            .instrument(tracing::info_span!("route53", op, region = REGION))
            .await;
        let took = started.elapsed();
        match res {
            Ok(v) => {
                self.metrics.provider_call(op, took, true, 0);
                Ok(v)
            }
            Err(e) => {
                let err = classify(op, REGION, e);
                let throttled = u32::from(matches!(err, ProviderError::Throttled { .. }));
                self.metrics.provider_call(op, took, false, throttled);
                Err(err)
            }
        }
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

    /// Poll `GetChange` until INSYNC, at most `wait`; the rest continues in the background.
    async fn insync(self: &Arc<Self>, change_id: String, sent: Instant) -> Option<Duration> {
        if change_id.is_empty() {
            return None;
        }
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
            let lock = self.zone_lock(&zone);
            let _held = lock.lock().await;
            let mut out = Vec::new();
            let size = u32::try_from(plans.len()).unwrap_or(u32::MAX);
            let changes: Vec<Change> = plans.iter().flat_map(|(_, p)| p.changes.clone()).collect();
            let started = Instant::now();
            let res = self.send_batch(&zone, changes, &st, fence).await;
            let call_time = started.elapsed();
            let insync = match &res {
                Ok(id) => self.insync(id.clone(), started).await,
                Err(_) => None,
            };
            out.extend(plans.into_iter().map(|(i, p)| {
                let r = res.clone().map(|_| WeightDone {
                    changed: p.changed,
                    calls: 1,
                    call_time,
                    batch_size: size,
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
        let lock = self.zone_lock(&rec.zone_id);
        let _held = lock.lock().await;
        self.send_batch(&rec.zone_id, plan.changes, &o.stamp, fence)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Epoch, Reason, TargetId};

    fn rec() -> DnsRecord {
        DnsRecord {
            zone_id: "Z1".into(),
            name: "www.example.com.".into(),
            rtype: "A".into(),
            ttl: 60,
        }
    }

    fn stamp() -> MoveStamp {
        MoveStamp {
            epoch: Epoch(7),
            reason: Reason::Failover,
            target: TargetId("*".into()),
        }
    }

    fn member(w: i64, v: &str) -> Rec {
        Rec {
            weight: Some(w),
            ttl: Some(60),
            values: vec![v.into()],
        }
    }

    fn actions(p: &Plan) -> Vec<String> {
        p.changes
            .iter()
            .map(|c| {
                let s = c.resource_record_set();
                format!(
                    "{} {} {}",
                    c.action().as_str(),
                    s.map(|s| s.name()).unwrap_or(""),
                    s.and_then(|s| s.set_identifier()).unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn converged_set_sends_nothing() {
        let seen = Snapshot {
            members: BTreeMap::from([("a".into(), member(1, "10.0.0.1"))]),
            stamp: Some(member(0, "\"1/failover/*\"")),
            version: None,
        };
        let p = plan_float(
            &rec(),
            &[("a".into(), "10.0.0.1".into(), 1)],
            &seen,
            &stamp(),
            false,
            MemberWrites::Replace,
        )
        .unwrap();
        assert!(p.changes.is_empty());
    }

    /// A changed member is replaced exactly as observed, and the stamp record is swapped
    /// in the same batch: the compare-and-set that fences a stale writer.
    #[test]
    fn a_change_replaces_exactly_and_swaps_the_stamp() {
        let seen = Snapshot {
            members: BTreeMap::from([
                ("a".into(), member(1, "10.0.0.1")),
                ("b".into(), member(1, "10.0.0.2")),
            ]),
            stamp: Some(Rec {
                weight: None,
                ttl: Some(60),
                values: vec!["\"3/failover/*\"".into()],
            }),
            version: Some(Rec {
                weight: None,
                ttl: Some(60),
                values: vec!["\"41\"".into()],
            }),
        };
        let wanted = [
            ("a".into(), "10.0.0.1".into(), 0),
            ("b".into(), "10.0.0.2".into(), 1),
            ("c".into(), "10.0.0.3".into(), 1),
        ];
        let p = plan_float(
            &rec(),
            &wanted,
            &seen,
            &stamp(),
            false,
            MemberWrites::Replace,
        )
        .unwrap();
        assert_eq!(
            actions(&p),
            [
                "DELETE www.example.com. a",
                "CREATE www.example.com. a",
                "CREATE www.example.com. c",
                "DELETE _floatover-v.www.example.com. -",
                "CREATE _floatover-v.www.example.com. -",
                "DELETE _floatover.www.example.com. -",
                "CREATE _floatover.www.example.com. -",
            ]
        );
        assert_eq!(p.changed, 2);
        let old = p.changes[0].resource_record_set().unwrap();
        assert_eq!(
            old.weight(),
            Some(1),
            "the DELETE repeats the observed weight"
        );
    }

    fn order(zone: &str, name: &str, weights: &[(&str, u32)], seen: Snapshot) -> WeightOrder {
        let rec = DnsRecord {
            zone_id: zone.into(),
            name: name.into(),
            rtype: "A".into(),
            ttl: 60,
        };
        WeightOrder {
            float: crate::provider::FloatRef {
                id: rec.id(),
                region: REGION.into(),
                kind: crate::provider::FloatKind::Dns(rec),
            },
            weights: weights
                .iter()
                .map(|(id, w)| {
                    (
                        crate::provider::Bindings {
                            ec2: None,
                            dns: Some(spec::DnsMember {
                                set_identifier: (*id).into(),
                                value: "10.0.0.1".into(),
                            }),
                        },
                        *w,
                    )
                })
                .collect(),
            observed: Some(AnySnapshot::Dns(seen)),
            stamp: stamp(),
        }
    }

    /// One decision, three floats: two changed in zone Z1 share one batch, one changed in
    /// Z2 gets its own, and one already as wanted sends nothing.
    #[test]
    fn one_batch_per_zone_per_decision() {
        let seen = || Snapshot {
            members: BTreeMap::from([("a".into(), member(1, "10.0.0.1"))]),
            ..Snapshot::default()
        };
        let orders = [
            order("Z1", "www.example.com.", &[("a", 0)], seen()),
            order("Z2", "www.example.org.", &[("a", 0)], seen()),
            order("Z1", "api.example.com.", &[("a", 0)], seen()),
            order("Z1", "db.example.com.", &[("a", 1)], seen()),
        ];
        let (batches, settled) = plan_batches(&orders, MemberWrites::Replace);
        let shape: Vec<(String, Vec<usize>)> = batches
            .iter()
            .map(|(z, (_, ps))| (z.clone(), ps.iter().map(|(i, _)| *i).collect()))
            .collect();
        assert_eq!(
            shape,
            [("Z1".to_string(), vec![0, 2]), ("Z2".to_string(), vec![1])]
        );
        assert_eq!(settled.len(), 1);
        assert!(matches!(settled[0], (3, Ok(WeightDone { changed: 0, .. }))));
    }

    /// Upsert mode writes changed members in place; the version swap still fences.
    #[test]
    fn upsert_mode_still_swaps_the_version() {
        let seen = Snapshot {
            members: BTreeMap::from([("a".into(), member(1, "10.0.0.1"))]),
            stamp: None,
            version: Some(member(0, "\"7\"")),
        };
        let wanted = [("a".into(), "10.0.0.1".into(), 0)];
        let p = plan_float(
            &rec(),
            &wanted,
            &seen,
            &stamp(),
            false,
            MemberWrites::Upsert,
        )
        .unwrap();
        assert_eq!(
            actions(&p),
            [
                "UPSERT www.example.com. a",
                "DELETE _floatover-v.www.example.com. -",
                "CREATE _floatover-v.www.example.com. -",
                "CREATE _floatover.www.example.com. -",
            ]
        );
    }

    #[test]
    fn stamp_round_trips_through_txt() {
        let r = Rec {
            weight: None,
            ttl: Some(60),
            values: vec![stamp_value(&stamp(), 3)],
        };
        assert_eq!(decode_stamp(&r), Some(stamp()));
    }
}
