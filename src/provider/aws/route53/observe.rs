//! Reading weighted record sets: one paginated ListResourceRecordSets per hosted zone,
//! turned into observations (members with weights, the stamp, the exact snapshot).

use super::{REGION, Rec, Route53, Snapshot, decode_stamp};
use crate::provider::{Attached, FloatRef, Observation, ProviderError, Snapshot as AnySnapshot};
use aws_sdk_route53::types::{ResourceRecordSet, RrType};
use std::collections::{BTreeMap, HashMap};

/// At most this many pages per zone (300 records each): a bound, not a limit anyone hits.
const MAX_PAGES: usize = 100;

fn rec_of(s: &ResourceRecordSet) -> Rec {
    let failover = s.failover().map(|f| f.as_str().to_string());
    Rec {
        // A weighted record always has a weight; moto (LocalStack) leaves out a weight of
        // 0 when it answers.
        weight: s
            .weight()
            .or_else(|| (s.set_identifier().is_some() && failover.is_none()).then_some(0)),
        failover,
        health_check: s.health_check_id().map(str::to_string),
        ttl: s.ttl(),
        values: s
            .resource_records()
            .iter()
            .map(|r| r.value().to_string())
            .collect(),
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl Route53 {
    async fn list_zone(&self, zone: &str) -> Result<Vec<ResourceRecordSet>, ProviderError> {
        let mut out = Vec::new();
        let mut next: Option<(String, RrType, Option<String>)> = None;
        for _ in 0..MAX_PAGES {
            let mut req = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone)
                .max_items(300);
            if let Some((name, rtype, id)) = next.take() {
                req = req
                    .start_record_name(name)
                    .start_record_type(rtype)
                    .set_start_record_identifier(id);
            }
            let page = self.timed("ListResourceRecordSets", req.send()).await?;
            out.extend(page.resource_record_sets().iter().cloned());
            if !page.is_truncated() {
                return Ok(out);
            }
            match (page.next_record_name(), page.next_record_type()) {
                (Some(n), Some(t)) => {
                    next = Some((
                        n.to_string(),
                        t.clone(),
                        page.next_record_identifier().map(str::to_string),
                    ))
                }
                _ => return Ok(out),
            }
        }
        Err(ProviderError::Api {
            op: "ListResourceRecordSets",
            region: REGION.into(),
            code: "TooManyRecords".into(),
            message: format!("zone {zone} has more than {} records", MAX_PAGES * 300),
        })
    }

    /// Observe DNS floats. A float whose zone does not exist is absent from the result
    /// (the engine never touches an unknown float); an empty set is observed as empty.
    pub async fn observe(
        &self,
        floats: &[&FloatRef],
    ) -> Result<HashMap<String, Observation>, ProviderError> {
        let mut zones: BTreeMap<&str, Vec<&FloatRef>> = BTreeMap::new();
        for f in floats {
            if let Some(r) = f.kind.dns() {
                zones.entry(r.zone_id.as_str()).or_default().push(f);
            }
        }
        let reads = zones.into_iter().map(|(zone, fs)| async move {
            match self.list_zone(zone).await {
                Ok(sets) => Ok(Some((fs, sets))),
                Err(ProviderError::Api { code, .. }) if code == "NoSuchHostedZone" => Ok(None),
                Err(e) => Err(e),
            }
        });
        let mut out = HashMap::new();
        for r in futures::future::join_all(reads).await {
            let Some((fs, sets)) = r? else {
                continue;
            };
            for f in fs {
                let Some(rec) = f.kind.dns() else {
                    continue;
                };
                let mut snap = Snapshot::default();
                let mut weights = Vec::new();
                for s in &sets {
                    if same_name(s.name(), &rec.name) && s.r#type().as_str() == rec.rtype {
                        let Some(id) = s.set_identifier() else {
                            continue;
                        };
                        let r = rec_of(s);
                        let member = crate::provider::aws::route53::spec::DnsMember {
                            set_identifier: id.to_string(),
                            value: r.values.first().cloned().unwrap_or_default(),
                        };
                        // A failover pair reads as weights 1 (PRIMARY) and 0 (SECONDARY),
                        // which is what the planner asks for such a float.
                        let w = match r.failover.as_deref() {
                            Some(role) => u32::from(role == "PRIMARY"),
                            None => r
                                .weight
                                .and_then(|w| u32::try_from(w).ok())
                                .unwrap_or_default(),
                        };
                        weights.push((Attached::Dns(member), w));
                        snap.members.insert(id.to_string(), r);
                    } else if *s.r#type() == RrType::Txt {
                        if same_name(s.name(), &rec.stamp_name()) {
                            snap.stamp = Some(rec_of(s));
                        } else if same_name(s.name(), &rec.version_name()) {
                            snap.version = Some(rec_of(s));
                        }
                    }
                }
                out.insert(
                    f.id.clone(),
                    Observation {
                        stamp: snap.stamp.as_ref().and_then(decode_stamp),
                        weights,
                        snapshot: Some(AnySnapshot::Dns(snap)),
                        ..Observation::default()
                    },
                );
            }
        }
        Ok(out)
    }
}
