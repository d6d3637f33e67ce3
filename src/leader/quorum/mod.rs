//! A lease over a majority of independent stores (`leader.backend: quorum`): 3 or 5
//! members, each an S3 object or a Kubernetes Lease in its own place, so that losing any
//! one region, cluster or bucket (two of five) leaves the controller a leader.
//!
//! Each member runs the one-store protocol of [`super::protocol`] through a [`Claim`]; this
//! module only counts. The rules (the safety argument is in docs/leader-election.md, "Surviving a
//! region"):
//!
//! - A replica leads while it holds a majority of members. Its fence deadline is the
//!   majority-th latest of its members' deadlines (each: that member's last renewal send
//!   time + `renew_deadline`), i.e. the last instant at which a majority was still fenced.
//! - Another replica takes a member only after seeing it unchanged (or absent) for
//!   `lease_duration` on its own clock. Two majorities share a member, so a successor's
//!   majority is complete only after the old holder's deadline on that member has passed.
//! - A term's epoch is written to every member it holds, and a member is taken only by a
//!   term above the epoch it records; the term is 1 + the highest epoch read anywhere (and
//!   above the floats' stamps), so epochs strictly increase from leader to leader.
//! - Calls go to all members at once; a round returns as soon as a majority has answered
//!   (at most one retry period), so a renewal costs the majority's slowest answer. A slow
//!   member's call finishes in the background and its claim rejoins at the next round.
//! - A replica that holds only a minority is not leader, acts on nothing and releases what
//!   it holds, so that it never blocks a majority elsewhere (split votes back off with a
//!   per-replica jitter).

use super::protocol::{Claim, EpochRule, LeaseStore, LeaseTiming, Want};
use super::{LeaderError, LeaderState, LeaseBackend, MemberView, Round, RoundCtx, StoreHealth};
use crate::model::Epoch;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod backend;
use backend::{finish, view};

/// One member's call in flight: the claim travels with it and comes back with the answer.
type Call = JoinHandle<(Claim, Result<Instant, LeaderError>)>;

/// One lease member as this replica drives it.
struct Member {
    name: String,
    store: Arc<dyn LeaseStore>,
    /// The claim; while `call` is in flight, a copy of it as it left (the call brings
    /// the real one back).
    claim: Option<Claim>,
    call: Option<Call>,
    /// The member answered our last finished call.
    up: bool,
    error: Option<String>,
    /// When this member's claim wants its next step (a takeover exactly at expiry).
    next: Option<Instant>,
}

/// The quorum backend: [`Claim`]s on 3 or 5 stores, counted.
pub struct QuorumLease {
    identity: String,
    timing: LeaseTiming,
    members: Vec<Member>,
    /// The epoch of our current or last attempted term.
    term: Epoch,
    /// No new candidacy before this (after a split vote).
    backoff_until: Option<Instant>,
    /// When our current candidacy began (None: not standing). A candidate that won the
    /// first member keeps collecting the others for up to a lease duration: they may
    /// run out a moment later on our clock (a farther member's answer arrived later).
    standing_since: Option<Instant>,
    attempts: u64,
    health: StoreHealth,
}

/// A member as configured: its name (for status and metrics) and its store.
pub struct QuorumMember {
    pub name: String,
    pub store: Arc<dyn LeaseStore>,
}

impl QuorumLease {
    /// A quorum lease for `identity` over `members` (3 or 5; config validation refuses
    /// other counts, and an even count is still counted as a strict majority).
    pub fn new(
        members: Vec<QuorumMember>,
        identity: String,
        timing: LeaseTiming,
        api: Option<String>,
    ) -> Self {
        let members = members
            .into_iter()
            .map(|m| Member {
                name: m.name,
                store: m.store,
                claim: Some(Claim::new(identity.clone(), api.clone(), timing)),
                call: None,
                up: false,
                error: None,
                next: None,
            })
            .collect();
        QuorumLease {
            identity,
            timing,
            members,
            term: Epoch(0),
            backoff_until: None,
            standing_since: None,
            attempts: 0,
            health: StoreHealth::default(),
        }
    }

    /// How many members make a majority.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    fn claims(&self) -> impl Iterator<Item = &Claim> {
        self.members.iter().filter_map(|m| m.claim.as_ref())
    }

    /// Members we hold at `now` (a member with a call in flight counts as it was when the
    /// call left).
    fn held(&self, now: Instant) -> usize {
        self.claims().filter(|c| c.holds(now)).count()
    }

    /// The majority-th latest deadline of the members we hold: until then a majority of
    /// members cannot have been taken by anybody else.
    fn fence_deadline(&self, now: Instant) -> Option<Instant> {
        let mut ds: Vec<Instant> = self
            .claims()
            .filter(|c| c.holds(now))
            .filter_map(Claim::fence_deadline)
            .collect();
        ds.sort_unstable_by(|a, b| b.cmp(a));
        ds.get(self.majority() - 1).copied()
    }

    /// The epoch a majority of the members we hold carries: our term once a majority has
    /// been written with it. Published as the leader's epoch, so that a term raised
    /// mid-tenure counts only once it could fence (any later majority meets it).
    fn carried(&self, now: Instant) -> Epoch {
        let mut es: Vec<Epoch> = self
            .claims()
            .filter(|c| c.holds(now))
            .filter_map(|c| c.record().map(|r| Epoch(r.epoch)))
            .collect();
        es.sort_unstable_by(|a, b| b.cmp(a));
        es.get(self.majority() - 1).copied().unwrap_or(self.term)
    }

    /// The highest epoch we know of: any member's record, our own term, the floor.
    fn highest_epoch(&self, floor: Epoch) -> Epoch {
        self.claims()
            .map(Claim::last_epoch)
            .fold(self.term.max(floor), Epoch::max)
    }

    /// The highest epoch in another holder's record.
    fn highest_foreign(&self) -> Epoch {
        self.claims()
            .filter_map(Claim::record)
            .filter(|r| r.holder != self.identity)
            .map(|r| Epoch(r.epoch))
            .fold(Epoch(0), Epoch::max)
    }

    /// A deterministic per-replica pause after a split vote (0.5 to 2.5 retry periods),
    /// so that candidates who split the members do not meet again at once.
    fn backoff(&mut self) -> Duration {
        self.attempts = self.attempts.wrapping_add(1);
        let mut h = DefaultHasher::new();
        (&self.identity, self.attempts).hash(&mut h);
        let permille = u32::try_from(h.finish() % 2000).unwrap_or(0) + 500;
        self.timing.retry.saturating_mul(permille) / 1000
    }

    /// Bring back the claims of calls that have finished.
    async fn collect_finished(&mut self) {
        for m in &mut self.members {
            if m.call.as_ref().is_some_and(JoinHandle::is_finished)
                && let Some(call) = m.call.take()
            {
                finish(m, call.await);
            }
        }
    }

    /// What this round asks of every member.
    /// What this round asks of every member, and for a new candidacy the member to take
    /// first (see [`QuorumLease::take_first`]).
    fn want(&mut self, ctx: RoundCtx, now: Instant) -> (Want, Option<usize>) {
        let k = self.majority();
        let held = self.held(now);
        // A term is worth holding only while it is above every epoch somebody else has
        // used (a stamp on a float, another replica's record; stamps equal to our term
        // are our own). A leader moves its term above a newer stamp and re-stamps its
        // members with it (its published epoch follows once a majority carries it: see
        // `state`). A candidate whose term fell behind gives up what it holds: two
        // candidates raising the same term would both hold it.
        let others = self.highest_foreign();
        let behind = self.term > Epoch(0) && (others >= self.term || ctx.epoch_floor > self.term);
        if behind && held >= k {
            let to = Epoch(others.max(ctx.epoch_floor).0.saturating_add(1));
            tracing::warn!(
                from = self.term.0,
                to = to.0,
                "an epoch above ours was seen (a float's stamp or a member's record): raising our term above it"
            );
            self.term = to;
        } else if behind {
            self.standing_since = None;
            if held > 0 {
                return (
                    Want {
                        may_hold: false,
                        may_take: false,
                        epoch: EpochRule::Term(self.term),
                        absent_wait: true,
                    },
                    None,
                );
            }
        }
        // Never renew a claim left over from a term that fell behind (a new candidacy
        // below takes a term above every epoch read).
        let may_hold = ctx.may_acquire && !(behind && held < k);
        let nothing = Want {
            may_hold,
            may_take: false,
            epoch: EpochRule::Term(self.term),
            absent_wait: true,
        };
        if !ctx.may_acquire {
            return (nothing, None);
        }
        if held >= k {
            // Leading: keep what we hold and take back any member that became free (a
            // recreated one, one whose holder let it run out) under the same term.
            return (
                Want {
                    may_take: true,
                    epoch: EpochRule::Term(self.term),
                    absent_wait: false,
                    ..nothing
                },
                None,
            );
        }
        if held > 0 {
            // Still collecting the members of a candidacy begun in an earlier round.
            return (
                Want {
                    may_take: true,
                    ..nothing
                },
                None,
            );
        }
        // Free: read in our last call (a member we cannot reach is never free, however
        // old our last look at it) and released, absent or unchanged for a lease.
        let free = self
            .members
            .iter()
            .filter(|m| m.up && m.claim.as_ref().is_some_and(|c| c.free(now)))
            .count();
        if free < k || self.backoff_until.is_some_and(|t| now < t) {
            return (nothing, None);
        }
        // Above every epoch read anywhere (and the floats' stamps); a term whose candidacy
        // wrote nothing may be stood for again rather than burn an epoch per attempt.
        let read = self
            .claims()
            .map(Claim::last_epoch)
            .fold(ctx.epoch_floor, Epoch::max);
        self.term = self.term.max(Epoch(read.0.saturating_add(1)));
        tracing::info!(
            term = self.term.0,
            free,
            "a majority of lease members is free: standing for a new term"
        );
        self.standing_since = Some(now);
        let first = self.members.iter().position(|m| {
            m.up && m.call.is_none() && m.claim.as_ref().is_some_and(|c| c.free(now))
        });
        (
            Want {
                may_hold: ctx.may_acquire,
                may_take: true,
                epoch: EpochRule::Term(self.term),
                ..nothing
            },
            first,
        )
    }

    /// A new candidacy takes one member first, the lowest-numbered free one, and the
    /// others only if it won it. Two standbys that see the lease run out at the same
    /// moment race for that one member, and exactly one wins it (a conditional write),
    /// instead of each taking one member of three and both having to give up and back
    /// off. It costs one member's round trip on a takeover, nothing on a renewal.
    async fn take_first(&mut self, i: usize, want: Want) -> bool {
        let retry = self.timing.retry;
        let m = &mut self.members[i];
        let Some(mut claim) = m.claim.clone() else {
            return false;
        };
        let store = m.store.clone();
        m.call = Some(tokio::spawn(async move {
            let r = claim.step(store.as_ref(), want).await;
            (claim, r)
        }));
        if let Some(call) = m.call.as_mut()
            && let Ok(joined) = tokio::time::timeout(retry, call).await
        {
            m.call = None;
            finish(m, joined);
        }
        m.call.is_none() && m.claim.as_ref().is_some_and(|c| c.holds(Instant::now()))
    }

    /// Send one step to every member that has no call in flight; wait until a majority
    /// has answered or one retry period has passed, whichever comes first. While a call
    /// is in flight the member keeps a copy of the claim as it left: a call can only
    /// extend or lose a hold, and nobody can take the member before that copy's deadline,
    /// so counting it is safe.
    async fn step_all(&mut self, want: Want) {
        let started = Instant::now();
        for m in &mut self.members {
            if m.call.is_some() {
                continue;
            }
            if let Some(claim) = &m.claim {
                let mut claim = claim.clone();
                let store = m.store.clone();
                m.call = Some(tokio::spawn(async move {
                    let r = claim.step(store.as_ref(), want).await;
                    (claim, r)
                }));
            }
        }
        let k = self.majority();
        let cap = tokio::time::sleep_until(started + self.timing.retry);
        tokio::pin!(cap);
        let mut done = Vec::new();
        {
            let mut waiting: FuturesUnordered<_> = self
                .members
                .iter_mut()
                .enumerate()
                .filter_map(|(i, m)| m.call.as_mut().map(|c| async move { (i, c.await) }))
                .collect();
            let mut ok = 0;
            while ok < k {
                tokio::select! {
                    next = waiting.next() => match next {
                        Some((i, joined)) => {
                            ok += usize::from(matches!(&joined, Ok((_, Ok(_)))));
                            done.push((i, joined));
                        }
                        None => break,
                    },
                    _ = &mut cap => break,
                }
            }
            // Answers that are already here count too; the rest keep running and rejoin
            // at a later round.
            while let Some(Some((i, joined))) = waiting.next().now_or_never() {
                done.push((i, joined));
            }
        }
        for (i, joined) in done {
            let m = &mut self.members[i];
            m.call = None;
            finish(m, joined);
        }
    }

    /// After a round: a replica that holds a minority releases it (it is not leader, and
    /// holding members could keep a majority from forming elsewhere).
    fn release_minority(&mut self, now: Instant) {
        let held = self.held(now);
        if held == 0 || held >= self.majority() {
            if held >= self.majority() {
                self.standing_since = None;
            }
            return;
        }
        if self
            .standing_since
            .is_some_and(|t| now < t + self.timing.lease)
        {
            // Still collecting: the others may be free in a moment.
            return;
        }
        self.standing_since = None;
        let pause = self.backoff();
        self.backoff_until = Some(now + pause);
        tracing::info!(
            held,
            majority = self.majority(),
            pause_ms = pause.as_millis() as u64,
            "holding only a minority of lease members: releasing them"
        );
        for m in &mut self.members {
            if m.call.is_some() {
                continue;
            }
            if let Some(mut claim) = m.claim.clone().filter(|c| c.holds(now)) {
                // A release makes the member free at once: the copy left behind must not
                // count as held while the call is on its way.
                if let Some(c) = m.claim.as_mut() {
                    c.forget();
                }
                let store = m.store.clone();
                m.call = Some(tokio::spawn(async move {
                    let r = claim.release(store.as_ref()).await.map(|()| Instant::now());
                    (claim, r)
                }));
            }
        }
    }

    fn state(&self, now: Instant) -> LeaderState {
        let leading = self.held(now) >= self.majority();
        let views: Vec<MemberView> = self.members.iter().map(|m| view(m, now)).collect();
        // The holder most members name, if a majority names it.
        let named = |who: &str| {
            views
                .iter()
                .filter(|v| v.holder.as_deref() == Some(who))
                .count()
        };
        let holder_rec = self
            .claims()
            .filter_map(Claim::holder)
            .max_by_key(|r| named(&r.holder))
            .filter(|r| named(&r.holder) >= self.majority());
        LeaderState {
            identity: self.identity.clone(),
            is_leader: leading,
            epoch: if leading {
                self.carried(now)
            } else {
                self.highest_epoch(Epoch(0))
            },
            holder: holder_rec.map(|r| r.holder.clone()),
            holder_api: holder_rec.and_then(|r| r.api.clone()),
            store: self.health.clone(),
            fence_deadline: if leading {
                self.fence_deadline(now)
            } else {
                None
            },
            members: views,
        }
    }

    fn note_health(&mut self) {
        let up = self.members.iter().filter(|m| m.up).count();
        if up >= self.majority() {
            self.health.last_ok = Some(Instant::now());
            self.health.last_error = None;
        } else {
            let down: Vec<String> = self
                .members
                .iter()
                .filter(|m| !m.up)
                .map(|m| match &m.error {
                    Some(e) => format!("{}: {e}", m.name),
                    None => format!("{}: no answer yet", m.name),
                })
                .collect();
            self.health.last_error = Some(format!(
                "{up} of {} lease members answered, {} needed; {}",
                self.members.len(),
                self.majority(),
                down.join("; ")
            ));
        }
    }
}
