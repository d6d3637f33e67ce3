//! A new leader's claims: its epoch stamped on the floats it may act on, beside the
//! worker.

use super::{Claimed, State, Worker};
use crate::engine::holder_of;
use crate::leader::Fence;
use crate::model::{Epoch, Holder, MoveStamp, Reason, TargetId};
use crate::provider::StampOrder;
use std::time::Duration;
use tokio::time::Instant;

impl Worker {
    /// A new leader stamps every float it may act on with its epoch, keeping the reason and
    /// target of the previous stamp (a switchover pin survives). Floats about to move are
    /// skipped: their move writes the stamp. The stamps wait in their own queue, behind
    /// every move, so the claim runs beside the worker ([`Self::claimed`] takes the result).
    pub(super) fn claim(&self, st: &mut State, epoch: Epoch, moving: &[String]) {
        if st.claimed == Some(epoch) || !st.claims.is_empty() {
            return;
        }
        let g = self.g();
        let Some(belief) = st.belief.clone() else {
            return;
        };
        let orders: Vec<StampOrder> = g
            .floats
            .iter()
            .filter(|f| !moving.contains(&f.id))
            .filter_map(|f| {
                let o = belief.get(&f.id)?;
                if o.stamp.as_ref().is_some_and(|s| s.epoch >= epoch) {
                    return None;
                }
                let (reason, target) = match (&o.stamp, holder_of(g, o.holder.as_ref())) {
                    (Some(s), _) => (s.reason, s.target.clone()),
                    (None, Holder::Target(t)) => (Reason::Claim, t),
                    (None, _) => (Reason::Claim, TargetId("-".into())),
                };
                Some(StampOrder {
                    turn: crate::pace::Turn {
                        priority: crate::pace::Priority {
                            class: crate::pace::Class::Claim,
                            rank: self.rank(),
                        },
                        heart: None,
                    },
                    float: f.clone(),
                    holder: o.holder.clone(),
                    observed: o.snapshot.clone(),
                    stamp: MoveStamp {
                        epoch,
                        reason,
                        target,
                    },
                })
            })
            .collect();
        if orders.is_empty() {
            st.claimed = Some(epoch);
            return;
        }
        let provider = self.ctx.provider.clone();
        let leadership = self.ctx.leadership.clone();
        st.claims.spawn(async move {
            let fence: &dyn Fence = &leadership;
            let calls = orders.iter().map(|o| async {
                let r = provider.stamp_float(o, fence).await;
                (o.float.id.clone(), o.stamp.clone(), r)
            });
            (epoch, futures::future::join_all(calls).await)
        });
    }

    /// A claim finished: remember the stamps written; retry the rest soon.
    pub(super) fn claimed(&self, st: &mut State, (epoch, results): Claimed) {
        let g = self.g();
        let mut all = true;
        let mut n = 0;
        for (float, stamp, r) in results {
            match r {
                Ok(()) => {
                    n += 1;
                    if let Some(b) = st.belief.as_mut().and_then(|b| b.get_mut(&float)) {
                        b.stamp = Some(stamp);
                    }
                }
                Err(e) => {
                    all = false;
                    tracing::warn!(group = %g.name, float = %float, error = %e, "could not claim the float for this epoch; retrying");
                }
            }
        }
        self.ctx.metrics.count_claims(n);
        if all {
            st.claimed = Some(epoch);
            tracing::info!(group = %g.name, epoch = epoch.0, floats = n, "claimed floats for this epoch");
        } else {
            let retry = Instant::now() + Duration::from_secs(1);
            st.next_wake = Some(st.next_wake.map_or(retry, |w| w.min(retry)));
        }
    }
}
