//! Epoch stamps, batched: every resource that gets the same tag (key and value) while a
//! CreateTags token is awaited goes out in one CreateTags call (it takes up to 1,000
//! resource ids). A mass failover to targets of the same name, or a new leader's claims,
//! cost a few calls instead of one per float.
//!
//! The first caller for a tag leads its batch: it waits for the token (in the CreateTags
//! bucket, behind every move), takes whatever joined, asks the fence and sends. The others
//! wait for the answer, beating their heart while the bucket moves. A leader dropped
//! before it sends hands the batch back, so a follower leads instead.

use super::Ec2Region;
use crate::leader::Fence;
use crate::model::MoveStamp;
use crate::pace::{Bucket, Turn};
use crate::provider::ProviderError;
use crate::provider::aws::stamp;
use aws_sdk_ec2::types::Tag;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// CreateTags takes at most this many resource ids.
const MAX_RESOURCES: usize = 1_000;
/// How long a leader that got its token at once waits for others to join (stamps are off
/// the failover path: the float has moved already).
const LINGER: Duration = Duration::from_millis(10);
/// How often a waiting caller checks that the bucket still moves.
const BEAT: Duration = Duration::from_millis(250);

type Reply = oneshot::Sender<Result<(), ProviderError>>;
type TagKey = (String, String);

/// Stamps waiting for their CreateTags, by tag.
#[derive(Default)]
pub struct StampQueue {
    pending: Mutex<HashMap<TagKey, Vec<(String, Reply)>>>,
}

impl StampQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TagKey, Vec<(String, Reply)>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Join the batch for `tag`; true when this caller leads it.
    fn join(&self, tag: &TagKey, resource: &str, reply: Reply) -> bool {
        let mut p = self.lock();
        let lead = !p.contains_key(tag);
        p.entry(tag.clone())
            .or_default()
            .push((resource.to_string(), reply));
        lead
    }

    fn take(&self, tag: &TagKey) -> Vec<(String, Reply)> {
        self.lock().remove(tag).unwrap_or_default()
    }
}

/// Drops a batch whose leader was dropped before sending: its followers see their reply
/// channel close and try again (one of them leads).
struct Lead<'a> {
    queue: &'a StampQueue,
    tag: Option<TagKey>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.tag.take() {
            drop(self.queue.take(&t));
        }
    }
}

impl Ec2Region {
    /// Write one stamp (`key` = stamp on `resource`), batched with every other stamp of the
    /// same tag that is waiting.
    pub(super) async fn tag(
        &self,
        resource: &str,
        key: String,
        st: &MoveStamp,
        fence: &dyn Fence,
        turn: &Turn,
    ) -> Result<(), ProviderError> {
        let tag = (key, stamp::encode(st));
        let bucket = self.buckets.get("CreateTags");
        loop {
            let (tx, rx) = oneshot::channel();
            if self.stamps.join(&tag, resource, tx) {
                let mut lead = Lead {
                    queue: &self.stamps,
                    tag: Some(tag.clone()),
                };
                let waited = bucket.acquire(turn).await;
                if waited < LINGER {
                    tokio::time::sleep(LINGER).await;
                }
                lead.tag = None;
                let batch = self.stamps.take(&tag);
                self.send_batch(&tag, batch, st, fence, turn, &bucket).await;
            }
            match wait(rx, turn, &bucket).await {
                Ok(r) => return r,
                // The leader was dropped before sending: try again.
                Err(_) => continue,
            }
        }
    }

    /// Send one batch (the first token is already taken) and answer everyone in it.
    async fn send_batch(
        &self,
        (key, value): &TagKey,
        batch: Vec<(String, Reply)>,
        st: &MoveStamp,
        fence: &dyn Fence,
        turn: &Turn,
        bucket: &Bucket,
    ) {
        let mut chunks = batch.into_iter().peekable();
        let mut first = true;
        while chunks.peek().is_some() {
            let chunk: Vec<(String, Reply)> = chunks.by_ref().take(MAX_RESOURCES).collect();
            if !first {
                bucket.acquire(turn).await;
            }
            first = false;
            let ids: Vec<String> = chunk.iter().map(|(r, _)| r.clone()).collect();
            let res = self.create_tags(&ids, key, value, st, fence).await;
            match res {
                // One unknown resource fails the whole call: send the others one by one
                // so that one bad id does not cost every other float its stamp.
                Err(ProviderError::Api { .. }) if chunk.len() > 1 => {
                    for (id, reply) in chunk {
                        bucket.acquire(turn).await;
                        let r = self
                            .create_tags(std::slice::from_ref(&id), key, value, st, fence)
                            .await;
                        let _ = reply.send(r);
                    }
                }
                res => {
                    for (_, reply) in chunk {
                        let _ = reply.send(res.clone());
                    }
                }
            }
        }
    }

    /// One fenced CreateTags (the token is already taken).
    async fn create_tags(
        &self,
        ids: &[String],
        key: &str,
        value: &str,
        st: &MoveStamp,
        fence: &dyn Fence,
    ) -> Result<(), ProviderError> {
        let op = "CreateTags";
        if let Err(source) = fence.permit(st.epoch, self.call_timeout) {
            self.metrics.fenced.inc();
            return Err(ProviderError::Fenced { op, source });
        }
        self.mutations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.count_stamp_batch(ids.len());
        let t = Tag::builder().key(key).value(value).build();
        self.timed(
            op,
            self.client
                .create_tags()
                .set_resources(Some(ids.to_vec()))
                .tags(t)
                .send(),
        )
        .await
        .map(|_| ())
    }
}

/// Wait for a batch's answer, beating while the CreateTags bucket moves.
async fn wait(
    rx: oneshot::Receiver<Result<(), ProviderError>>,
    turn: &Turn,
    bucket: &Bucket,
) -> Result<Result<(), ProviderError>, oneshot::error::RecvError> {
    tokio::pin!(rx);
    loop {
        tokio::select! {
            r = &mut rx => return r,
            _ = tokio::time::sleep(BEAT) => {
                if let Some(h) = &turn.heart
                    && bucket.moving()
                {
                    h.beat();
                }
            }
        }
    }
}
