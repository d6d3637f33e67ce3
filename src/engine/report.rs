//! After a reconcile: answer pending switchovers, publish status and metrics.

use super::{Engine, State, SwitchoverError, holder_of};
use crate::model::{Health, Holder};
use crate::plan::{GroupPlan, Note, ObservedFloat};
use crate::probe::{TargetHealth, TargetKey};
use crate::status::{FloatStatus, GroupStatus, TargetStatus};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

impl Engine {
    pub(super) fn finish_switchovers(
        &self,
        st: &mut State,
        plans: &[(usize, GroupPlan, HashMap<String, ObservedFloat>)],
    ) {
        let cache = st.cache.clone().unwrap_or_default();
        let mut keep = Vec::new();
        for p in st.pending.drain(..) {
            let Some((gi, plan, _)) = plans
                .iter()
                .find(|(gi, _, _)| self.spec.groups[*gi].name == p.group)
            else {
                continue;
            };
            let g = &self.spec.groups[*gi];
            let done = g.floats.iter().all(|f| {
                cache.get(&f.id).map(|o| holder_of(g, &o.holder))
                    == Some(Holder::Target(p.to.clone()))
            });
            if done {
                if let Some(m) = st.memory.get_mut(&p.group) {
                    m.switchover = None;
                }
                let events = self
                    .status
                    .audit()
                    .into_iter()
                    .skip(p.audit_from)
                    .filter(|e| e.group == p.group)
                    .collect();
                let _ = p.reply.send(Ok(events));
            } else if plan
                .notes
                .iter()
                .any(|n| matches!(n, Note::SwitchoverDropped { .. }))
            {
                if let Some(m) = st.memory.get_mut(&p.group) {
                    m.switchover = None;
                }
                let _ = p
                    .reply
                    .send(Err(SwitchoverError::Unhealthy(p.to.0.clone(), "not up")));
            } else if p.since.elapsed() > Duration::from_secs(30) {
                let _ = p.reply.send(Err(SwitchoverError::Failed(
                    "timed out after 30s; see the audit trail".into(),
                )));
            } else {
                keep.push(p);
            }
        }
        st.pending = keep;
    }

    pub(super) fn publish(
        &self,
        plans: &[(usize, GroupPlan, HashMap<String, ObservedFloat>)],
        health: &HashMap<TargetKey, TargetHealth>,
        now: Instant,
    ) {
        let mut out = Vec::new();
        for (gi, p, observed) in plans {
            let g = &self.spec.groups[*gi];
            let names: Vec<String> = g.targets.iter().map(|t| t.id.0.clone()).collect();
            let floats: Vec<FloatStatus> = g
                .floats
                .iter()
                .filter_map(|f| {
                    observed.get(&f.id).map(|o| FloatStatus {
                        id: f.id.clone(),
                        holder: o.holder.clone(),
                        stamp: o.stamp.clone(),
                    })
                })
                .collect();
            for f in &floats {
                let owner = match &f.holder {
                    Holder::Target(t) => Some(t.0.as_str()),
                    _ => None,
                };
                self.metrics
                    .set_float_owner(&g.name.0, &f.id, &names, owner);
            }
            let targets = g
                .targets
                .iter()
                .map(|t| {
                    let h = health.get(&TargetKey {
                        group: g.name.clone(),
                        target: t.id.clone(),
                    });
                    TargetStatus {
                        name: t.id.clone(),
                        priority: t.priority,
                        health: h.map(|h| h.health).unwrap_or(Health::Unknown).as_str(),
                        for_ms: h
                            .map(|h| now.saturating_duration_since(h.since).as_millis() as u64)
                            .unwrap_or(0),
                        last_error: h.and_then(|h| h.last_error.clone()),
                    }
                })
                .collect();
            out.push(GroupStatus {
                name: g.name.0.clone(),
                desired: p.desired.clone(),
                targets,
                floats,
                notes: p.notes.clone(),
            });
        }
        self.status.set_observed(out);
    }
}
