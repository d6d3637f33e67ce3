//! Executing weight changes (DNS floats): every `SetWeights` of one decision goes to the
//! provider in one call, which sends one compare-and-set batch per zone. Each float still
//! gets its own audit event (with the weights, the batch size and the time to INSYNC).

use super::execute::Outcome;
use super::group::{State, Worker};
use crate::model::{Epoch, Holder, MoveStamp, TargetId};
use crate::plan::Action;
use crate::probe::{TargetHealth, TargetKey};
use crate::provider::{Observation, ProviderError, WeightOrder};
use crate::status::{AuditEvent, unix_ms};
use std::collections::{BTreeMap, HashMap};
use tokio::time::Instant;

/// `a=100 b=0`
pub fn show(w: &BTreeMap<TargetId, u32>) -> String {
    let parts: Vec<String> = w.iter().map(|(t, n)| format!("{t}={n}")).collect();
    parts.join(" ")
}

/// The target with the most weight (first on a tie), as an audit event's from/to.
fn heaviest(w: &BTreeMap<TargetId, u32>) -> Option<TargetId> {
    let mut best: Option<(&TargetId, u32)> = None;
    for (t, n) in w {
        if *n > 0 && best.is_none_or(|(_, b)| *n > b) {
            best = Some((t, *n));
        }
    }
    best.map(|(t, _)| t.clone())
}

impl Worker {
    pub(super) async fn set_weights(
        &self,
        actions: &[&Action],
        health: &HashMap<TargetKey, TargetHealth>,
        st: &State,
        cache: &HashMap<String, Observation>,
        epoch: Epoch,
        me: &str,
    ) -> Vec<Outcome> {
        if actions.is_empty() {
            return Vec::new();
        }
        let g = self.g();
        let mut orders = Vec::new();
        let mut planned = Vec::new();
        for a in actions {
            let Action::SetWeights {
                float,
                from,
                weights,
                reason,
                ..
            } = a
            else {
                continue;
            };
            let Some(f) = g.float(float) else {
                tracing::error!(group = %g.name, float = %float, "planned a float the group does not have; skipped (a bug)");
                continue;
            };
            let bound: Vec<_> = weights
                .iter()
                .filter_map(|(t, w)| g.target(t).map(|ts| (ts.bindings.clone(), *w)))
                .collect();
            orders.push(WeightOrder {
                float: f.clone(),
                weights: bound,
                observed: cache.get(float).and_then(|o| o.snapshot.clone()),
                stamp: MoveStamp {
                    epoch,
                    reason: *reason,
                    target: heaviest(weights).unwrap_or_else(|| TargetId("-".into())),
                },
            });
            planned.push((*a, from, weights, self.trigger_instant(a, health, st)));
        }
        let started_unix_ms = unix_ms();
        let issued = Instant::now();
        let fence = &self.ctx.leadership;
        let results = self.ctx.provider.set_weights(&orders, fence).await;
        let finished_unix_ms = unix_ms();
        orders
            .iter()
            .zip(planned)
            .zip(results)
            .map(|((o, (a, from, weights, trigger)), res)| {
                let conflict = matches!(
                    res,
                    Err(ProviderError::Conflict { .. } | ProviderError::Fenced { .. })
                );
                let detail = match &res {
                    Ok(d) => Some(format!(
                        "weights {} (were {}); {} record(s) changed in a batch of {} float(s); {}",
                        show(weights),
                        show(from),
                        d.changed,
                        d.batch_size,
                        d.insync.map_or("INSYNC pending".to_string(), |t| format!(
                            "INSYNC after {} ms",
                            t.as_millis()
                        ))
                    )),
                    Err(_) => Some(format!("weights {} (were {})", show(weights), show(from))),
                };
                let ev = AuditEvent {
                    token_wait_ms: None,
                    started_unix_ms,
                    finished_unix_ms,
                    replica: me.to_string(),
                    group: g.name.clone(),
                    float: o.float.id.clone(),
                    from: heaviest(from).map_or(Holder::Nobody, Holder::Target),
                    to: heaviest(weights),
                    reason: a.reason(),
                    epoch,
                    decision_ms: trigger
                        .map(|t| issued.saturating_duration_since(t).as_secs_f64() * 1e3),
                    call_ms: res
                        .as_ref()
                        .map_or(0.0, |d| d.call_time.as_secs_f64() * 1e3),
                    calls: res.as_ref().map_or(0, |d| d.calls),
                    ok: res.is_ok(),
                    error: res.as_ref().err().map(|e| e.to_string()),
                    detail,
                };
                // Until the read-back, the belief is what was written; the exact records
                // (the next compare-and-set) come from that read.
                let belief = Observation {
                    weights: o
                        .weights
                        .iter()
                        .filter_map(|(b, w)| b.attached_for(&o.float.kind).map(|m| (m, *w)))
                        .collect(),
                    stamp: Some(o.stamp.clone()),
                    ..Observation::default()
                };
                Outcome {
                    float: o.float.id.clone(),
                    belief,
                    conflict,
                    ev,
                }
            })
            .collect()
    }
}
