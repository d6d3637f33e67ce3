//! Batch planning: exact replacement, the stamp and version swap, one batch per zone.

use super::*;
use crate::model::{Epoch, Reason, TargetId};
use crate::provider::Snapshot as AnySnapshot;
use spec::DnsRecord;

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
