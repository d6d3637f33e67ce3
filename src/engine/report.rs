//! After a reconcile: answer pending switchovers, publish status and metrics.

use super::SwitchoverError;
use super::group::{State, Worker};
use crate::model::{Assignment, Health, Holder};
use crate::plan::{GroupPlan, Note, ObservedFloat};
use crate::probe::{TargetHealth, TargetKey};
use crate::status::{FloatStatus, GroupStatus, TargetStatus};
use std::collections::HashMap;
use tokio::time::Instant;

/// Flip a sizing flag when its note appears or goes; log the edge. True when it flipped.
fn flip(was: &mut bool, note: Option<&Note>, group: &str, what: &str) -> bool {
    if note.is_some() == *was {
        return false;
    }
    *was = note.is_some();
    match note {
        Some(n) => {
            tracing::warn!(group, note = ?n, "below {what}: the survivors take all the traffic")
        }
        None => tracing::info!(group, "back to at least {what}"),
    }
    true
}

impl Worker {
    /// N+1 sizing (active-active): warn and set the metric when the group drops below
    /// `min_healthy` or `min_capacity`, and when it is back.
    pub(super) fn report_sizing(&self, st: &mut State, p: &GroupPlan) {
        let g = &self.g().name.0;
        let healthy = p
            .notes
            .iter()
            .find(|n| matches!(n, Note::BelowMinHealthy { .. }));
        if flip(&mut st.below_min_healthy, healthy, g, "min_healthy") {
            self.ctx
                .metrics
                .set_below_min_healthy(g, st.below_min_healthy);
        }
        let capacity = p
            .notes
            .iter()
            .find(|n| matches!(n, Note::BelowMinCapacity { .. }));
        if flip(&mut st.below_min_capacity, capacity, g, "min_capacity") {
            self.ctx
                .metrics
                .set_below_min_capacity(g, st.below_min_capacity);
        }
    }

    pub(super) fn finish_switchovers(&self, st: &mut State, plan: &GroupPlan) {
        let g = self.g();
        let cache = st.belief.clone().unwrap_or_default();
        let timeout = self.ctx.spec.switchover_timeout;
        let mut keep = Vec::new();
        for p in st.pending.drain(..) {
            // The planner's view: for a weighted float, the target with the weight.
            let seen = super::observed_view(g, &cache);
            let done = g
                .floats
                .iter()
                .all(|f| seen.get(&f.id).map(|o| &o.holder) == Some(&Holder::Target(p.to.clone())));
            if done {
                st.memory.switchover = None;
                let events = self
                    .ctx
                    .status
                    .audit()
                    .into_iter()
                    .skip(p.audit_from)
                    .filter(|e| e.group == g.name)
                    .collect();
                let _ = p.reply.send(Ok(events));
            } else if plan
                .notes
                .iter()
                .any(|n| matches!(n, Note::SwitchoverDropped { .. }))
            {
                st.memory.switchover = None;
                let _ = p
                    .reply
                    .send(Err(SwitchoverError::Unhealthy(p.to.0.clone(), "not up")));
            } else if p.since.elapsed() > timeout {
                let _ = p.reply.send(Err(SwitchoverError::Failed(format!(
                    "not done after {}; see the audit trail",
                    floatover_core::human::duration(timeout)
                ))));
            } else {
                keep.push(p);
            }
        }
        st.pending = keep;
    }

    pub(super) fn publish(
        &self,
        p: &GroupPlan,
        observed: &HashMap<String, ObservedFloat>,
        health: &HashMap<TargetKey, TargetHealth>,
        now: Instant,
    ) {
        let g = self.g();
        let names: Vec<String> = g.targets.iter().map(|t| t.id.0.clone()).collect();
        let floats: Vec<FloatStatus> = g
            .floats
            .iter()
            .filter_map(|f| {
                observed.get(&f.id).map(|o| FloatStatus {
                    id: f.id.clone(),
                    holder: o.holder.clone(),
                    weights: o.weights.clone(),
                    stamp: o.stamp.clone(),
                    propagation: self.ctx.provider.propagation(f),
                })
            })
            .collect();
        for f in &floats {
            let owner = match &f.holder {
                Holder::Target(t) => Some(t.0.as_str()),
                _ => None,
            };
            self.ctx
                .metrics
                .set_float_owner(&g.name.0, &f.id, &names, owner);
            let on_desired = match &p.desired {
                Assignment::Owner(Some(t)) => f.holder == Holder::Target(t.clone()),
                // Nobody is wanted (nobody healthy): not a misplacement to page about.
                Assignment::Owner(None) => true,
                Assignment::Weights(w) => &f.weights == w,
            };
            self.ctx
                .metrics
                .set_float_on_desired(&g.name.0, &f.id, on_desired);
        }
        let owner = floats.iter().find_map(|f| match &f.holder {
            Holder::Target(t) => Some(t.clone()),
            _ => None,
        });
        let tallies = self.ctx.board.tallies_of(self.keys());
        let targets = g
            .targets
            .iter()
            .map(|t| {
                let key = TargetKey {
                    group: g.name.clone(),
                    target: t.id.clone(),
                };
                let h = health.get(&key);
                let votes = tallies.get(&key).map(|v| crate::status::VoteCount {
                    views: v.views,
                    down: v.down,
                    up: v.up,
                });
                TargetStatus {
                    name: t.id.clone(),
                    priority: t.priority,
                    health: h.map(|h| h.health).unwrap_or(Health::Unknown),
                    for_ms: h
                        .map(|h| {
                            u64::try_from(now.saturating_duration_since(h.since).as_millis())
                                .unwrap_or(u64::MAX)
                        })
                        .unwrap_or(0),
                    last_error: h.and_then(|h| h.last_error.clone()),
                    votes,
                }
            })
            .collect();
        self.ctx.status.set_group(GroupStatus {
            name: g.name.0.clone(),
            desired: p.desired.owner().cloned(),
            owner,
            targets,
            floats,
            notes: p.notes.clone(),
        });
    }
}
