//! Executing a plan's actions: concurrently across floats, each through the provider
//! (which paces, then asks the fence), each recorded as an audit event.

use super::{Engine, State};
use crate::config::GroupSpec;
use crate::leader::Fence;
use crate::model::{Binding, Epoch, Holder, MoveStamp, Reason, TargetId};
use crate::plan::Action;
use crate::probe::{TargetHealth, TargetKey};
use crate::provider::{MoveOrder, Observation, ReleaseOrder};
use crate::status::{AuditEvent, unix_ms};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

impl Engine {
    /// When did the condition that triggered this action become true?
    pub(super) fn trigger_instant(
        &self,
        g: &GroupSpec,
        a: &Action,
        health: &HashMap<TargetKey, TargetHealth>,
        st: &State,
    ) -> Option<Instant> {
        let since = |t: &TargetId| {
            health
                .get(&TargetKey {
                    group: g.name.clone(),
                    target: t.clone(),
                })
                .map(|h| h.since)
        };
        match a {
            Action::Move {
                reason: Reason::Failover,
                from: Holder::Target(f),
                ..
            } => since(f),
            Action::Move {
                reason: Reason::Failover,
                to,
                ..
            } => since(to),
            Action::Move {
                reason: Reason::Failback,
                to,
                ..
            } => since(to).map(|s| s + g.policy.failback_delay),
            Action::Move {
                reason: Reason::Switchover,
                to,
                ..
            } => st
                .pending
                .iter()
                .find(|p| p.group == g.name && &p.to == to)
                .map(|p| p.since),
            Action::Move { .. } => None,
            Action::Release {
                from: Holder::Target(f),
                ..
            } => since(f),
            Action::Release { .. } => None,
        }
    }

    pub(super) async fn execute(
        &self,
        st: &mut State,
        actions: Vec<(usize, Action)>,
        health: &HashMap<TargetKey, TargetHealth>,
        epoch: Epoch,
        me: &str,
    ) {
        let fence: &dyn Fence = &self.leadership;
        let cache = st.cache.clone().unwrap_or_default();
        let jobs = actions.iter().map(|(gi, a)| {
            let g = &self.spec.groups[*gi];
            let trigger = self.trigger_instant(g, a, health, st);
            let from = cache.get(&a.float().id).and_then(|o| o.holder.clone());
            async move {
                let started_unix_ms = unix_ms();
                let issued = Instant::now();
                let (to, to_binding, stamp_target) = match a {
                    Action::Move { to, .. } => {
                        let b = g.target(to).map(|t| t.binding.clone()).unwrap_or_default();
                        (Some(to.clone()), Some(b), to.clone())
                    }
                    Action::Release { from, .. } => (
                        None,
                        None,
                        match from {
                            Holder::Target(t) => t.clone(),
                            _ => TargetId(String::new()),
                        },
                    ),
                };
                let stamp = MoveStamp {
                    epoch,
                    reason: a.reason(),
                    target: stamp_target,
                };
                let res = match &to_binding {
                    Some(b) => {
                        self.provider
                            .move_float(
                                &MoveOrder {
                                    float: a.float().clone(),
                                    to: b.clone(),
                                    from: from.clone(),
                                    stamp: stamp.clone(),
                                },
                                fence,
                            )
                            .await
                    }
                    None => {
                        self.provider
                            .release_float(
                                &ReleaseOrder {
                                    float: a.float().clone(),
                                    from: from.clone(),
                                    stamp: stamp.clone(),
                                },
                                fence,
                            )
                            .await
                    }
                };
                let from_holder = match a {
                    Action::Move { from, .. } | Action::Release { from, .. } => from.clone(),
                };
                let ev = AuditEvent {
                    started_unix_ms,
                    finished_unix_ms: unix_ms(),
                    replica: me.to_string(),
                    group: g.name.clone(),
                    float: a.float().id.clone(),
                    from: from_holder,
                    to: to.clone(),
                    reason: a.reason(),
                    epoch,
                    decision_ms: trigger
                        .map(|t| issued.saturating_duration_since(t).as_secs_f64() * 1e3),
                    call_ms: issued.elapsed().as_secs_f64() * 1e3,
                    ok: res.is_ok(),
                    error: res.as_ref().err().map(|e| e.to_string()),
                };
                (g, a.float().id.clone(), to_binding, stamp, ev)
            }
        });
        let results = futures::future::join_all(jobs).await;
        let now = Instant::now();
        let mut failed = false;
        for (g, float, to_binding, stamp, ev) in results {
            if ev.ok {
                self.metrics.count_move(&g.name.0, ev.reason);
                st.memory
                    .entry(g.name.clone())
                    .or_default()
                    .last_move
                    .insert(float.clone(), now);
                if let Some(c) = st.cache.as_mut() {
                    let holder = to_binding.map(|b: Binding| crate::model::ProviderHolder {
                        instance_id: b.instance_id,
                        eni_id: b.eni_id,
                    });
                    c.insert(
                        float,
                        Observation {
                            holder,
                            stamp: Some(stamp),
                        },
                    );
                }
            } else {
                failed = true;
                tracing::error!(group = %g.name, float = %ev.float, error = ?ev.error, "move failed; will re-observe and retry");
            }
            self.status.record(ev);
        }
        if failed {
            st.cache = None;
            let retry = Instant::now() + Duration::from_millis(500);
            st.next_wake = Some(st.next_wake.map_or(retry, |w| w.min(retry)));
        } else {
            // Moves succeeded: re-plan at once so that follow-up steps and status are current.
            st.next_wake = Some(now);
        }
    }
}
