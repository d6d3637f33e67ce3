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
        routing: Default::default(),
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
        ..Rec::plain(60, String::new())
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
        stamp: Some(Rec::plain(60, "\"3/failover/*\"".into())),
        version: Some(Rec::plain(60, "\"41\"".into())),
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
        routing: Default::default(),
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
                        arc: None,
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
    let r = Rec::plain(60, stamp_value(&stamp(), 3));
    assert_eq!(decode_stamp(&r), Some(stamp()));
}

/// A failover pair swaps roles: both records DELETEd exactly as read (health check id
/// included) before either is CREATEd, so there are never two PRIMARY records; each record
/// keeps its own health check.
#[test]
fn a_failover_pair_swaps_roles_and_keeps_health_checks() {
    let pair = |role: &str, v: &str, hc: Option<&str>| Rec {
        failover: Some(role.into()),
        health_check: hc.map(str::to_string),
        ..Rec::plain(60, v.into())
    };
    let seen = Snapshot {
        members: BTreeMap::from([
            ("a".into(), pair("PRIMARY", "10.0.0.1", Some("hc-a"))),
            ("b".into(), pair("SECONDARY", "10.0.0.2", None)),
        ]),
        ..Snapshot::default()
    };
    let r = DnsRecord {
        routing: super::spec::Routing::Failover,
        ..rec()
    };
    let wanted = [
        ("a".into(), "10.0.0.1".into(), 0),
        ("b".into(), "10.0.0.2".into(), 1),
    ];
    let p = plan_float(&r, &wanted, &seen, &stamp(), false, MemberWrites::Replace).unwrap();
    assert_eq!(
        actions(&p)[..4],
        [
            "DELETE www.example.com. a",
            "DELETE www.example.com. b",
            "CREATE www.example.com. a",
            "CREATE www.example.com. b",
        ]
    );
    let set = |i: usize| p.changes[i].resource_record_set().unwrap();
    assert_eq!(set(0).health_check_id(), Some("hc-a"));
    assert_eq!(set(0).failover().map(|f| f.as_str()), Some("PRIMARY"));
    assert_eq!(set(2).failover().map(|f| f.as_str()), Some("SECONDARY"));
    assert_eq!(
        set(2).health_check_id(),
        Some("hc-a"),
        "kept with its record"
    );
    assert_eq!(set(2).weight(), None, "a failover record has no weight");
    assert_eq!(set(3).failover().map(|f| f.as_str()), Some("PRIMARY"));
    assert_eq!(set(3).health_check_id(), None);
    assert_eq!(p.changed, 2);

    // Converged pair: nothing to send.
    let done = Snapshot {
        members: BTreeMap::from([
            ("a".into(), pair("SECONDARY", "10.0.0.1", Some("hc-a"))),
            ("b".into(), pair("PRIMARY", "10.0.0.2", None)),
        ]),
        ..Snapshot::default()
    };
    let p = plan_float(&r, &wanted, &done, &stamp(), false, MemberWrites::Replace).unwrap();
    assert!(p.changes.is_empty());
}

/// A weighted record with a health check keeps it, and its DELETE repeats it (real
/// Route 53 refuses a DELETE that does not match the record exactly).
#[test]
fn a_weighted_record_keeps_its_health_check() {
    let seen = Snapshot {
        members: BTreeMap::from([(
            "a".into(),
            Rec {
                health_check: Some("hc-a".into()),
                ..member(100, "10.0.0.1")
            },
        )]),
        ..Snapshot::default()
    };
    let p = plan_float(
        &rec(),
        &[("a".into(), "10.0.0.1".into(), 0)],
        &seen,
        &stamp(),
        false,
        MemberWrites::Replace,
    )
    .unwrap();
    for c in &p.changes[..2] {
        assert_eq!(
            c.resource_record_set().unwrap().health_check_id(),
            Some("hc-a")
        );
    }
}

/// A release DELETEs the group's records exactly as read (another writer's member is left
/// alone) and fences the batch like any other; nothing when there is nothing to delete.
#[test]
fn a_release_deletes_the_groups_records_and_fences_the_batch() {
    let seen = Snapshot {
        members: BTreeMap::from([
            ("a".into(), member(100, "10.0.0.1")),
            ("b".into(), member(0, "10.0.0.2")),
            ("other".into(), member(10, "10.9.9.9")),
        ]),
        version: Some(Rec::plain(60, "\"4\"".into())),
        ..Snapshot::default()
    };
    let ids = ["a".to_string(), "b".to_string(), "gone".to_string()];
    let p = plan_release(&rec(), &ids, &seen, &stamp()).unwrap();
    assert_eq!(
        actions(&p),
        [
            "DELETE www.example.com. a",
            "DELETE www.example.com. b",
            "DELETE _floatover-v.www.example.com. -",
            "CREATE _floatover-v.www.example.com. -",
            "CREATE _floatover.www.example.com. -",
        ]
    );
    assert_eq!(p.changed, 2);
    let none = plan_release(&rec(), &ids, &Snapshot::default(), &stamp()).unwrap();
    assert!(none.changes.is_empty());
}
