//! Pure batch planning for Route 53: what one decision sends to one zone (the changed
//! records replaced exactly as read, the stamp swapped, the version bumped). No I/O.

use super::spec::{DnsRecord, Routing};
use super::{REGION, Rec, Snapshot};
use crate::aws::MemberWrites;
use crate::model::MoveStamp;
use crate::provider::{ProviderError, Snapshot as AnySnapshot, WeightDone, WeightOrder};
use aws_sdk_route53::types::{
    Change, ChangeAction, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use std::collections::BTreeMap;

/// The TXT value of a stamp (quoted, as Route 53 stores TXT strings), with the version it
/// goes with: a claim under the same epoch still writes a different value (LocalStack
/// refuses to CREATE a record identical to one it holds, even one the batch DELETEs).
pub(super) fn stamp_value(st: &MoveStamp, version: u64) -> String {
    format!("\"{} v{version}\"", crate::provider::aws::stamp::encode(st))
}

/// The counter in a version record (0 when unreadable: the write then fails as stale).
pub(super) fn version_of(r: &Rec) -> u64 {
    r.values
        .first()
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or(0)
}

pub(super) fn decode_stamp(r: &Rec) -> Option<MoveStamp> {
    let v = r.values.first()?.trim_matches('"');
    crate::provider::aws::stamp::decode(v.split(' ').next().unwrap_or(v))
}

/// One member's wanted record, and whether the float changes at all.
pub(super) struct Plan {
    pub(super) changes: Vec<Change>,
    pub(super) changed: u32,
}

pub(super) fn rrset(
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
        .set_failover(rec.failover.as_deref().map(ResourceRecordSetFailover::from))
        .set_health_check_id(rec.health_check.clone())
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

pub(super) fn change(
    action: ChangeAction,
    set: ResourceRecordSet,
) -> Result<Change, ProviderError> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| invalid(&e))
}

pub(super) fn invalid(e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::Api {
        op: "ChangeResourceRecordSets",
        region: REGION.into(),
        code: "InvalidRequest".into(),
        message: e.to_string(),
    }
}

/// `(set identifier, value, weight)` of each target in an order.
pub(super) fn wanted_of(o: &WeightOrder) -> Vec<(String, String, u32)> {
    o.weights
        .iter()
        .filter_map(|(b, w)| {
            b.dns
                .as_ref()
                .map(|m| (m.set_identifier.clone(), m.value.clone(), *w))
        })
        .collect()
}

pub(super) fn snapshot(o: &Option<AnySnapshot>) -> Snapshot {
    match o {
        Some(AnySnapshot::Dns(s)) => s.clone(),
        None => Snapshot::default(),
    }
}

/// The role a planned weight stands for in a failover pair: the owner (weight > 0) is the
/// `PRIMARY`.
pub(super) fn role(weight: u32) -> &'static str {
    if weight > 0 { "PRIMARY" } else { "SECONDARY" }
}

/// The changes for one float: replace each member whose weight (or failover role) or value
/// differs (DELETE exactly as observed, then CREATE), create missing members, and swap the
/// stamp record if anything changed (or `force_stamp`: a claim). All DELETEs come before
/// all CREATEs, so a failover pair never has two PRIMARY records even part-way through.
pub(super) fn plan_float(
    rec: &DnsRecord,
    wanted: &[(String, String, u32)],
    seen: &Snapshot,
    stamp: &MoveStamp,
    force_stamp: bool,
    writes: MemberWrites,
) -> Result<Plan, ProviderError> {
    let rtype = RrType::from(rec.rtype.as_str());
    let (mut deletes, mut writes_out) = (Vec::new(), Vec::new());
    let mut changed = 0;
    for (set_id, value, weight) in wanted {
        let old = seen.members.get(set_id);
        let want = Rec {
            weight: (rec.routing == Routing::Weighted).then(|| i64::from(*weight)),
            failover: (rec.routing == Routing::Failover).then(|| role(*weight).to_string()),
            ttl: Some(i64::from(rec.ttl)),
            values: vec![value.clone()],
            health_check: old.and_then(|o| o.health_check.clone()),
        };
        let set = |r: &Rec| rrset(&rec.name, rtype.clone(), Some(set_id), r);
        match old {
            Some(old)
                if old.weight == want.weight
                    && old.failover == want.failover
                    && old.values == want.values => {}
            Some(_) if writes == MemberWrites::Upsert => {
                writes_out.push(change(ChangeAction::Upsert, set(&want)?)?);
                changed += 1;
            }
            Some(old) => {
                deletes.push(change(ChangeAction::Delete, set(old)?)?);
                writes_out.push(change(ChangeAction::Create, set(&want)?)?);
                changed += 1;
            }
            // Emulators refuse to CREATE a record identical to one they ever held (a
            // member released and coming back): UPSERT there too.
            None if writes == MemberWrites::Upsert => {
                writes_out.push(change(ChangeAction::Upsert, set(&want)?)?);
                changed += 1;
            }
            None => {
                writes_out.push(change(ChangeAction::Create, set(&want)?)?);
                changed += 1;
            }
        }
    }
    let mut changes = deletes;
    changes.append(&mut writes_out);
    if changed > 0 || force_stamp {
        fence_changes(rec, seen, stamp, &mut changes)?;
    }
    Ok(Plan { changes, changed })
}

/// The compare-and-set part of every batch: bump the version record and swap the stamp.
fn fence_changes(
    rec: &DnsRecord,
    seen: &Snapshot,
    stamp: &MoveStamp,
    changes: &mut Vec<Change>,
) -> Result<(), ProviderError> {
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
    let new = Rec::plain(rec.ttl, format!("\"{next}\""));
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
    let new = Rec::plain(rec.ttl, stamp_value(stamp, next));
    changes.push(change(
        ChangeAction::Create,
        rrset(&name, RrType::Txt, None, &new)?,
    )?);
    Ok(())
}

/// `on_all_unhealthy: release`: DELETE the records of `ids` exactly as observed (the
/// group's members; others in the set are left alone), with the version bump and stamp
/// swap that fence every batch. Nothing when none of them exists.
pub(super) fn plan_release(
    rec: &DnsRecord,
    ids: &[String],
    seen: &Snapshot,
    stamp: &MoveStamp,
) -> Result<Plan, ProviderError> {
    let rtype = RrType::from(rec.rtype.as_str());
    let mut changes = Vec::new();
    let mut changed = 0;
    for id in ids {
        if let Some(old) = seen.members.get(id) {
            changes.push(change(
                ChangeAction::Delete,
                rrset(&rec.name, rtype.clone(), Some(id), old)?,
            )?);
            changed += 1;
        }
    }
    if changed > 0 {
        fence_changes(rec, seen, stamp, &mut changes)?;
    }
    Ok(Plan { changes, changed })
}

/// The batches one decision sends: one per hosted zone, with every changed float of that
/// zone in it (and the stamp of the decision), plus the orders settled without a call
/// (already as wanted, or not a DNS float).
#[allow(clippy::type_complexity)]
pub(super) fn plan_batches(
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
