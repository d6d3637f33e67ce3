//! Executing a group's actions: concurrently across floats, each through the provider
//! (which queues for its token, then asks the fence), each recorded as an audit event.
//! Automatic moves stamp after the move (one call on the failover path); a switchover
//! stamps first. Each call carries its [`Turn`]: failovers and switchovers go before
//! failbacks and reverts, and the worker's heart beats while its call waits in a queue
//! that moves (waiting for the provider's pace is progress, not a stall).

use super::group::{State, Worker};
use crate::config::{Fencing, GroupSpec};
use crate::leader::Fence;
use crate::model::{Epoch, Holder, MoveStamp, Reason, TargetId};
use crate::pace::{Class, Priority, Turn};
use crate::plan::Action;
use crate::probe::{TargetHealth, TargetKey};
use crate::provider::{Attached, MoveOrder, Observation, ProviderError, ReleaseOrder, StampWhen};
use crate::status::{AuditEvent, unix_ms};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// What executing one action left: the belief about the float after it, and its audit.
pub(super) struct Outcome {
    pub float: String,
    pub belief: Observation,
    /// Refused as expected when leadership changes (a compare-and-set conflict, the fence).
    pub conflict: bool,
    pub ev: AuditEvent,
}

impl Worker {
    /// When did the condition that triggered this action become true?
    pub(super) fn trigger_instant(
        &self,
        a: &Action,
        health: &HashMap<TargetKey, TargetHealth>,
        st: &State,
    ) -> Option<Instant> {
        let g = self.g();
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
            } => since(to).and_then(|s| s.checked_add(g.policy.failback_delay)),
            Action::Move {
                reason: Reason::Switchover,
                to,
                ..
            } => st.pending.iter().find(|p| &p.to == to).map(|p| p.since),
            Action::Move { .. } => None,
            Action::Release {
                from: Holder::Target(f),
                ..
            } => since(f),
            Action::Release { .. } => None,
            Action::SetWeights {
                from,
                weights,
                reason,
                ..
            } => {
                let before = |t: &TargetId| from.get(t).copied().unwrap_or(0);
                let changed = weights.iter().find(|(t, w)| match reason {
                    Reason::Failover => **w == 0 && before(t) > 0,
                    Reason::Failback => **w > 0 && before(t) == 0,
                    _ => false,
                });
                changed.and_then(|(t, _)| since(t))
            }
        }
    }

    /// The queue class of an action: what restores traffic (or answers a person) first.
    fn class(a: &Action) -> Class {
        match (a, a.reason()) {
            (Action::Release { .. }, _) | (_, Reason::Failover | Reason::Switchover) => {
                Class::Failover
            }
            (_, Reason::Failback) => Class::Failback,
            _ => Class::Revert,
        }
    }

    /// The turn an action's calls wait with.
    fn turn(&self, a: &Action) -> Turn {
        Turn {
            priority: Priority {
                class: Self::class(a),
                rank: self.rank(),
            },
            heart: Some(self.heart().clone()),
        }
    }

    fn order(
        g: &GroupSpec,
        a: &Action,
        cache: &HashMap<String, Observation>,
        epoch: Epoch,
        turn: Turn,
    ) -> (Option<MoveOrder>, Option<ReleaseOrder>) {
        let observed = cache.get(a.float());
        let from = observed.and_then(|o| o.holder.clone());
        // The planner only plans floats of this group, so the lookup cannot miss.
        let Some(float) = g.float(a.float()) else {
            tracing::error!(group = %g.name, float = a.float(), "planned a float the group does not have; skipped (a bug)");
            return (None, None);
        };
        match a {
            Action::Move { to, reason, .. } => {
                let b = g.target(to).map(|t| t.bindings.clone()).unwrap_or_default();
                let strict = (g.policy.fencing == Fencing::Strict && float.kind.compare_and_set())
                    .then(|| observed.and_then(|o| o.version.clone()));
                (
                    Some(MoveOrder {
                        float: float.clone(),
                        to: b,
                        from,
                        stamp: MoveStamp {
                            epoch,
                            reason: *reason,
                            target: to.clone(),
                        },
                        stamp_when: if *reason == Reason::Switchover {
                            StampWhen::Before
                        } else {
                            StampWhen::After
                        },
                        strict,
                        turn,
                    }),
                    None,
                )
            }
            // Executed together, one batch per zone (`weights.rs`).
            Action::SetWeights { .. } => (None, None),
            Action::Release { from: h, .. } => (
                None,
                Some(ReleaseOrder {
                    float: float.clone(),
                    from,
                    targets: g.targets.iter().map(|t| t.bindings.clone()).collect(),
                    observed: observed.and_then(|o| o.snapshot.clone()),
                    turn,
                    stamp: MoveStamp {
                        epoch,
                        reason: Reason::Release,
                        target: match h {
                            Holder::Target(t) => t.clone(),
                            _ => TargetId("-".into()),
                        },
                    },
                }),
            ),
        }
    }

    pub(super) async fn execute(
        &self,
        st: &mut State,
        actions: Vec<Action>,
        health: &HashMap<TargetKey, TargetHealth>,
        epoch: Epoch,
        me: &str,
    ) {
        let g = self.g();
        let cache = st.belief.clone().unwrap_or_default();
        let (weighted, single): (Vec<&Action>, Vec<&Action>) = actions
            .iter()
            .partition(|a| matches!(a, Action::SetWeights { .. }));
        let weights_job = self.set_weights(&weighted, health, st, &cache, epoch, me);
        let jobs = single.into_iter().map(|a| {
            let trigger = self.trigger_instant(a, health, st);
            let (mv, rel) = Self::order(g, a, &cache, epoch, self.turn(a));
            self.one(a, trigger, mv, rel, epoch, me)
        });
        // Budget: a few calls each. Time spent waiting for tokens is not in it: the queue
        // beats for its waiters while it moves. Beyond it, a stall.
        let budget = self.ctx.spec.aws.call_timeout.saturating_mul(4);
        let (mut results, weighted) = self
            .beating(
                budget,
                futures::future::join(futures::future::join_all(jobs), weights_job),
            )
            .await;
        results.extend(weighted);
        self.record(st, results);
    }

    /// Carry out one action (a move or a release) and say how it went.
    async fn one(
        &self,
        a: &Action,
        trigger: Option<Instant>,
        mv: Option<MoveOrder>,
        rel: Option<ReleaseOrder>,
        epoch: Epoch,
        me: &str,
    ) -> Outcome {
        let g = self.g();
        let fence: &dyn Fence = &self.ctx.leadership;
        let started_unix_ms = unix_ms();
        let issued = Instant::now();
        let mut token_wait = None;
        let (res, calls, move_time, detail) = match (&mv, &rel) {
            (Some(o), _) => match self.ctx.provider.move_float(o, fence).await {
                Ok(d) => {
                    // Below a millisecond the token was there: not worth a word.
                    if d.token_wait >= Duration::from_millis(1) {
                        self.ctx.metrics.observe_token_wait(d.token_wait);
                        token_wait = Some(d.token_wait);
                    }
                    (
                        Ok(()),
                        d.calls_to_move,
                        d.move_time,
                        d.stamp_error
                            .map(|e| format!("moved; stamp not written: {e}")),
                    )
                }
                Err(e) => (Err(e), 0, issued.elapsed(), None),
            },
            (None, Some(o)) => {
                let r = self.ctx.provider.release_float(o, fence).await;
                (r, 1, issued.elapsed(), None)
            }
            (None, None) => (Ok(()), 0, Duration::ZERO, None),
        };
        let (from, to) = match a {
            Action::Move { from, to, .. } => (from.clone(), Some(to.clone())),
            Action::Release { from, .. } => (from.clone(), None),
            Action::SetWeights { .. } => (Holder::Nobody, None),
        };
        // A conflict (strict fencing) or a closed fence is expected when leadership
        // changes: not an error of this replica.
        let conflict = matches!(
            res,
            Err(ProviderError::Conflict { .. } | ProviderError::Fenced { .. })
        );
        let ev = AuditEvent {
            started_unix_ms,
            finished_unix_ms: unix_ms(),
            replica: me.to_string(),
            group: g.name.clone(),
            float: a.float().to_string(),
            from,
            to,
            reason: a.reason(),
            epoch,
            decision_ms: trigger.map(|t| issued.saturating_duration_since(t).as_secs_f64() * 1e3),
            call_ms: move_time.as_secs_f64() * 1e3,
            calls,
            ok: res.is_ok(),
            error: res.as_ref().err().map(|e| e.to_string()),
            detail: match (detail, token_wait) {
                (d, None) => d,
                (None, Some(w)) => Some(format!(
                    "waited {} for a provider token",
                    floatover_core::human::duration(w)
                )),
                (Some(d), Some(w)) => Some(format!(
                    "{d}; waited {} for a provider token",
                    floatover_core::human::duration(w)
                )),
            },
            token_wait_ms: token_wait.map(|w| w.as_secs_f64() * 1e3),
        };
        let holder: Option<Attached> = mv.as_ref().and_then(|o| o.to.attached_for(&o.float.kind));
        let stamp = mv
            .as_ref()
            .map(|o| o.stamp.clone())
            .or(rel.map(|o| o.stamp));
        Outcome {
            float: a.float().to_string(),
            belief: Observation {
                holder,
                stamp,
                ..Default::default()
            },
            conflict,
            ev,
        }
    }

    /// Remember what the results changed, audit each, and wake soon to read back.
    fn record(&self, st: &mut State, results: Vec<Outcome>) {
        let g = self.g();
        let now = Instant::now();
        let mut failed = false;
        for Outcome {
            float,
            belief,
            conflict,
            ev,
        } in results
        {
            if ev.ok {
                self.ctx.metrics.count_move(&g.name.0, ev.reason);
                st.memory.last_move.insert(float.clone(), now.into_std());
                if let Some(c) = st.belief.as_mut() {
                    c.insert(float, belief);
                }
            } else {
                failed = true;
                if conflict {
                    tracing::warn!(group = %g.name, float = %ev.float, error = ev.error.as_deref().unwrap_or(""), "move not done: the float changed since it was read, or this replica is no longer allowed to act; re-reading");
                } else {
                    tracing::error!(group = %g.name, float = %ev.float, error = ev.error.as_deref().unwrap_or(""), "move failed; will re-observe and retry");
                }
            }
            self.ctx.status.record(ev);
        }
        // Read back soon: verify our own moves (and learn new association ids) from a read
        // that started after them; the read-backs of a burst share one read. After a
        // failure the outcome is unknown (a timed-out call may have landed): read at once,
        // and do not judge that read as drift.
        st.fresh_after = self.ctx.reads.tick();
        if failed {
            st.observe_now = true;
            st.retry_after = None;
            st.belief_epoch = None;
        } else {
            for l in self.lanes() {
                l.request(st.fresh_after, now + super::group::READBACK);
            }
        }
        let next = if failed {
            Instant::now() + Duration::from_millis(500)
        } else {
            now
        };
        st.next_wake = Some(st.next_wake.map_or(next, |w| w.min(next)));
    }
}
