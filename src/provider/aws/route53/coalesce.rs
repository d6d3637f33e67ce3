//! One change batch per zone for every group: weight changes that wait for a zone while
//! its previous batch is in flight go out together in the next one.
//!
//! Why: a zone outage reweights hundreds of record sets at once, one decision per group.
//! One batch per group, one zone at a time, at Route 53's five requests a second, made 500
//! groups over 5 zones wait for 100 batches a zone; together they are a few.
//!
//! A batch is a compare-and-set on every record it names, so one member's stale view
//! refuses the whole batch: a merged batch that Route 53 refuses is sent again member by
//! member, so only the stale one is refused (and re-reads).

use super::Route53;
use crate::leader::Fence;
use crate::model::{Epoch, MoveStamp};
use crate::provider::ProviderError;
use aws_sdk_route53::types::Change;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Route 53 takes at most 1,000 changes in one batch; stay well under it.
const MAX_CHANGES: usize = 500;

/// A batch as sent: its change id, how long the call took, how many floats shared it.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub change: String,
    pub call_time: Duration,
    pub floats: u32,
}

/// One decision's changes for a zone, waiting for the zone's next batch.
pub(super) struct Waiting {
    changes: Vec<Change>,
    floats: u32,
    epoch: Epoch,
    reply: oneshot::Sender<Result<Sent, ProviderError>>,
}

impl Route53 {
    /// Send `changes` (for `floats` floats) in the zone's next batch, with whatever else
    /// is waiting for the zone under the same epoch.
    pub(super) async fn coalesced(
        &self,
        zone: &str,
        changes: Vec<Change>,
        floats: u32,
        st: &MoveStamp,
        fence: &dyn Fence,
    ) -> Result<Sent, ProviderError> {
        let (reply, rx) = oneshot::channel();
        self.waiting_for(zone, |q| {
            q.push(Waiting {
                changes,
                floats,
                epoch: st.epoch,
                reply,
            })
        });
        {
            let lock = self.zone_lock(zone);
            let _held = lock.lock().await;
            // An earlier holder may have sent ours already; then there is nothing to take.
            let batch = self.take_waiting(zone, st.epoch);
            if !batch.is_empty() {
                self.send_merged(zone, batch, st, fence).await;
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(super::invalid(&"the zone's batch was abandoned")))
    }

    /// Everything waiting for `zone` under `epoch`, up to a batch's worth of changes.
    fn take_waiting(&self, zone: &str, epoch: Epoch) -> Vec<Waiting> {
        self.waiting_for(zone, |q| {
            let mut taken = Vec::new();
            let mut n = 0;
            let mut rest = Vec::new();
            for w in q.drain(..) {
                if w.epoch == epoch && (taken.is_empty() || n + w.changes.len() <= MAX_CHANGES) {
                    n += w.changes.len();
                    taken.push(w);
                } else {
                    rest.push(w);
                }
            }
            *q = rest;
            taken
        })
    }

    /// Send the merged batch and answer every member; if Route 53 refuses it, send each
    /// member alone so that one stale view does not refuse the others.
    async fn send_merged(
        &self,
        zone: &str,
        batch: Vec<Waiting>,
        st: &MoveStamp,
        fence: &dyn Fence,
    ) {
        let floats: u32 = batch.iter().map(|w| w.floats).sum();
        let changes: Vec<Change> = batch.iter().flat_map(|w| w.changes.clone()).collect();
        let started = Instant::now();
        let res = self.send_batch(zone, changes, st, fence).await;
        let call_time = started.elapsed();
        match res {
            Err(ProviderError::Conflict { .. }) if batch.len() > 1 => {
                for w in batch {
                    let started = Instant::now();
                    let r = self.send_batch(zone, w.changes, st, fence).await;
                    let _ = w.reply.send(r.map(|change| Sent {
                        change,
                        call_time: started.elapsed(),
                        floats: w.floats,
                    }));
                }
            }
            res => {
                for w in batch {
                    let _ = w.reply.send(res.clone().map(|change| Sent {
                        change,
                        call_time,
                        floats,
                    }));
                }
            }
        }
    }
}
