//! Drift: what someone else changed since this leader last looked.

use super::Worker;
use crate::config::OnDrift;
use crate::engine::observed_view;
use crate::leader::LeaderState;
use crate::model::{Holder, Reason};
use crate::plan::GroupMemory;
use crate::provider::Observation;
use crate::status::{AuditEvent, unix_ms};
use std::collections::HashMap;

impl Worker {
    /// Compare a fresh observation with what this leader believes: any float whose holder
    /// (or, for a weighted float, any target's weight) differs was changed by someone else
    /// (a person, a script, a stale leader's late write, or a change of ours that did not
    /// stick).
    pub(super) fn find_drift(
        &self,
        memory: &mut GroupMemory,
        before: &HashMap<String, Observation>,
        after: &HashMap<String, Observation>,
        leader: &LeaderState,
    ) {
        let g = self.g();
        let (was, now) = (observed_view(g, before), observed_view(g, after));
        for f in &g.floats {
            let (Some(b), Some(a)) = (was.get(&f.id), now.get(&f.id)) else {
                continue;
            };
            if b.holder == a.holder && b.weights == a.weights {
                continue;
            }
            let expected = b.holder.clone();
            let found = a.holder.clone();
            let weights = if f.kind.weighted() {
                format!(
                    "; weights expected {}, found {}",
                    crate::engine::weights::show(&b.weights),
                    crate::engine::weights::show(&a.weights)
                )
            } else {
                String::new()
            };
            let stamp = a
                .stamp
                .as_ref()
                .map(|s| format!("stamp epoch {} ({} to {})", s.epoch, s.reason, s.target))
                .unwrap_or_else(|| "no stamp".into());
            // Active-active weights are always put back: they follow health, not a choice.
            let on_drift = if g.policy.mode == crate::config::Mode::ActiveActive {
                OnDrift::Revert
            } else {
                g.policy.on_drift
            };
            let action = match (on_drift, &expected, &found) {
                (OnDrift::Revert, Holder::Target(t), _) => {
                    memory.drift_owner = Some(t.clone());
                    "revert"
                }
                (OnDrift::Revert, _, _) => "revert",
                (OnDrift::Adopt, _, Holder::Target(t)) => {
                    memory.drift_owner = Some(t.clone());
                    "adopt"
                }
                (OnDrift::Adopt, _, Holder::Foreign(_)) => {
                    memory.adopted.insert(f.id.clone());
                    "adopt"
                }
                (OnDrift::Adopt, _, Holder::Nobody) => "adopt",
            };
            let detail = format!(
                "expected on {expected}, found on {found}{weights} ({stamp}); on_drift: {action}"
            );
            tracing::warn!(group = %g.name, float = %f.id, expected = %expected, found = %found, action, "drift: float changed by someone else");
            self.ctx.metrics.count_drift(&g.name.0, action);
            let now_ms = unix_ms();
            self.ctx.status.record(AuditEvent {
                token_wait_ms: None,
                started_unix_ms: now_ms,
                finished_unix_ms: now_ms,
                replica: leader.identity.clone(),
                group: g.name.clone(),
                float: f.id.clone(),
                from: expected,
                to: match found {
                    Holder::Target(t) => Some(t),
                    _ => None,
                },
                reason: Reason::Drift,
                epoch: leader.epoch,
                decision_ms: None,
                call_ms: 0.0,
                calls: 0,
                ok: true,
                error: None,
                detail: Some(detail),
            });
        }
    }
}
