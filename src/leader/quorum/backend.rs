//! The quorum as a [`LeaseBackend`]: one round over every member, and how a member's
//! answer is taken back.

use super::*;

pub(super) fn view(m: &Member, now: Instant) -> MemberView {
    let c = m.claim.as_ref();
    MemberView {
        name: m.name.clone(),
        up: m.up,
        held: c.is_some_and(|c| c.holds(now)),
        holder: c.and_then(Claim::holder).map(|r| r.holder.clone()),
        epoch: c.and_then(Claim::record).map_or(0, |r| r.epoch),
        error: m.error.clone(),
    }
}

/// Put a finished call's claim back and note how the member answered.
pub(super) fn finish(
    m: &mut Member,
    joined: Result<(Claim, Result<Instant, LeaderError>), tokio::task::JoinError>,
) {
    match joined {
        Ok((claim, r)) => {
            m.claim = Some(claim);
            match r {
                Ok(next) => {
                    m.up = true;
                    m.error = None;
                    m.next = Some(next);
                }
                Err(e) => {
                    tracing::warn!(member = %m.name, error = %e, "lease member call failed");
                    m.up = false;
                    m.error = Some(e.to_string());
                }
            }
        }
        Err(e) => {
            // The call panicked (a panic ends the process anyway) or was cancelled at
            // shutdown: what it did is unknown, so give up any hold on this member.
            if let Some(c) = m.claim.as_mut() {
                c.forget();
            }
            m.up = false;
            m.error = Some(format!("lease call ended: {e}"));
        }
    }
}

#[async_trait::async_trait]
impl LeaseBackend for QuorumLease {
    async fn round(&mut self, ctx: RoundCtx) -> Round {
        self.collect_finished().await;
        let now = Instant::now();
        let (want, first) = self.want(ctx, now);
        let lost_race = match first {
            Some(i) => !self.take_first(i, want).await,
            None => false,
        };
        // Lost the race: somebody else is ahead. Still read every other member, so that
        // no member goes a round unseen (an absence counts only while it is seen).
        self.step_all(if lost_race {
            Want {
                may_take: false,
                ..want
            }
        } else {
            want
        })
        .await;
        let now = Instant::now();
        self.release_minority(now);
        self.note_health();
        // The next round: within a retry period, earlier when a member's record runs out
        // before that (a standby takes over at the instant it may, not up to a retry
        // period later).
        let next = self
            .members
            .iter()
            .filter_map(|m| m.next)
            .filter(|t| *t > now)
            .fold(now + self.timing.retry, Instant::min);
        Round {
            state: self.state(now),
            next,
        }
    }

    fn retry_period(&self) -> Duration {
        self.timing.retry
    }

    async fn release(&mut self) -> Result<(), LeaderError> {
        // Wait for calls in flight (bounded by the stores' own timeouts), then release
        // every member we hold, all at once.
        for m in &mut self.members {
            if let Some(call) = m.call.take() {
                finish(m, call.await);
            }
        }
        let now = Instant::now();
        let releases = self.members.iter_mut().filter_map(|m| {
            let store = m.store.clone();
            m.claim
                .as_mut()
                .filter(|c| c.holds(now))
                .map(|c| async move { c.release(store.as_ref()).await })
        });
        let results = futures::future::join_all(releases).await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    fn identity(&self) -> &str {
        &self.identity
    }
}
