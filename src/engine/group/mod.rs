//! One group's worker: its own observation, memory, timers and heartbeat.

use super::reads::{Lane, Read};
use super::{Command, Ctx, SwitchoverError, holder_of, observed_view};
use crate::config::{GroupSpec, OnDrift};
use crate::faults::Fault;
use crate::leader::LeaderState;
use crate::liveness::Heart;
use crate::model::{Epoch, Holder, MoveStamp, TargetId};
use crate::plan::{self, GroupMemory, GroupView, Note};
use crate::provider::{Observation, ProviderError};
use crate::status::AuditEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often an idle worker beats.
mod claims;
mod drift;

const BEAT: Duration = Duration::from_millis(250);
/// How soon after a successful move its read-back is wanted: soon enough to learn the new
/// association ids, late enough that the read-backs of a burst of moves (one every 200 ms
/// at EC2's pace) share one read a second.
pub(super) const READBACK: Duration = Duration::from_secs(1);

/// A claim's result: the epoch and, per float, the stamp written or why not.
type Claimed = (Epoch, Vec<(String, MoveStamp, Result<(), ProviderError>)>);

pub(super) struct Pending {
    pub to: TargetId,
    pub since: Instant,
    pub audit_from: usize,
    pub reply: oneshot::Sender<Result<Vec<AuditEvent>, SwitchoverError>>,
}

/// Worker-local state: none of it decides where a float goes (the provider's state does).
pub(super) struct State {
    /// What we believe the provider holds: the last observation plus our own moves since.
    pub belief: Option<HashMap<String, Observation>>,
    /// The epoch we led under when the belief was built (drift is judged only against a
    /// belief of the current term).
    pub belief_epoch: Option<Epoch>,
    /// Wait for a fresh read now (takeover, failed call, first start).
    pub observe_now: bool,
    /// Ask for a fresh read then (the takeover's second look, a retry after a failure).
    pub observe_at: Instant,
    /// Only reads that started after this tick of the shared reads' clock may be used:
    /// our own last move is in them (an older read would show the old holder and look
    /// like drift).
    pub fresh_after: u64,
    /// After a failed shared read: the lane's own retry (any read after this tick) is the
    /// one to wait for. Asking for a read that starts "now" instead made every group ask
    /// again after every failure, and standbys read back to back.
    pub retry_after: Option<u64>,
    /// The last read of each lane taken in (by sequence number).
    pub seen: Vec<u64>,
    /// The claim being written (stamps wait in their own queue; the worker goes on).
    pub claims: JoinSet<Claimed>,
    pub memory: GroupMemory,
    pub pending: Vec<Pending>,
    pub next_wake: Option<Instant>,
    pub leading: Option<Epoch>,
    /// Epoch whose claims are all written.
    pub claimed: Option<Epoch>,
    /// The last plan said the group is below `min_healthy` (logged on change).
    pub below_min_healthy: bool,
    /// The last plan said the group is below `min_capacity` (logged on change).
    pub below_min_capacity: bool,
    pub observed_once: bool,
    /// Configured floats the provider does not know (logged when this changes).
    pub missing: Vec<String>,
}

pub(super) struct Worker {
    pub ctx: Arc<Ctx>,
    pub gi: usize,
    commands: mpsc::Receiver<Command>,
    heart: Heart,
    /// The planner's view of this group (built once: the config does not change).
    view: GroupView,
    /// The shared reads this group's floats are in.
    lanes: Vec<Arc<Lane>>,
    /// This group's targets' keys on the health board.
    keys: Vec<crate::model::TargetKey>,
}

impl Worker {
    pub fn new(ctx: Arc<Ctx>, gi: usize, commands: mpsc::Receiver<Command>, heart: Heart) -> Self {
        let view = super::group_view(&ctx.spec.groups[gi]);
        let lanes = ctx
            .reads
            .lanes_of(ctx.provider.as_ref(), &ctx.spec.groups[gi].floats);
        let g = &ctx.spec.groups[gi];
        let keys = g
            .targets
            .iter()
            .map(|t| crate::model::TargetKey {
                group: g.name.clone(),
                target: t.id.clone(),
            })
            .collect();
        Worker {
            keys,
            lanes,
            view,
            ctx,
            gi,
            commands,
            heart,
        }
    }

    pub fn g(&self) -> &GroupSpec {
        &self.ctx.spec.groups[self.gi]
    }

    pub(super) fn heart(&self) -> &Heart {
        &self.heart
    }

    pub(super) fn keys(&self) -> &[crate::model::TargetKey] {
        &self.keys
    }

    pub(super) fn lanes(&self) -> &[Arc<Lane>] {
        &self.lanes
    }

    pub async fn run(mut self, stop: CancellationToken) {
        let mut health_rx = self.ctx.board.subscribe();
        let mut leader_rx = self.ctx.leadership.clone();
        let mut reads_rx = self.ctx.reads.generation.subscribe();
        let mut beat = tokio::time::interval(BEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let now = Instant::now();
        let mut st = State {
            belief: None,
            belief_epoch: None,
            observe_now: true,
            observe_at: now,
            fresh_after: self.ctx.reads.tick(),
            retry_after: None,
            seen: vec![0; self.lanes.len()],
            claims: JoinSet::new(),
            memory: GroupMemory::default(),
            pending: Vec::new(),
            next_wake: None,
            leading: None,
            claimed: None,
            below_min_healthy: false,
            below_min_capacity: false,
            observed_once: false,
            missing: Vec::new(),
        };
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                // A closed channel disables this branch (no busy loop).
                Some(c) = self.commands.recv() => self.accept(c, &mut st),
                r = health_rx.changed() => if r.is_err() { break },
                _ = leader_rx.changed() => {},
                _ = reads_rx.changed() => {},
                Some(done) = st.claims.join_next() => match done {
                    Ok(c) => self.claimed(&mut st, c),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => {}
                },
                _ = tokio::time::sleep_until(st.observe_at) => {
                    st.observe_at = Instant::now() + Duration::from_secs(3600);
                    st.observe_now = true;
                }
                _ = beat.tick() => { self.heart.beat(); continue; }
                _ = tokio::time::sleep_until(st.next_wake.unwrap_or(far)) => st.next_wake = None,
            }
            self.heart.beat();
            self.reconcile(&mut st).await;
            self.heart.beat();
        }
        for p in st.pending.drain(..) {
            let _ = p.reply.send(Err(SwitchoverError::Failed(
                "controller is shutting down".into(),
            )));
        }
    }

    /// Run `fut`, beating while it runs for at most `budget`: a provider call that takes
    /// its normal time is progress; one that hangs past its budget is a stall.
    pub async fn beating<T>(
        &self,
        budget: Duration,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        let until = Instant::now() + budget;
        let heart = self.heart.clone();
        let pulse = async move {
            let mut t = tokio::time::interval(BEAT);
            loop {
                t.tick().await;
                if Instant::now() > until {
                    std::future::pending::<()>().await;
                }
                heart.beat();
            }
        };
        tokio::pin!(fut);
        tokio::select! {
            v = &mut fut => v,
            _ = pulse => unreachable!("the pulse never ends"),
        }
    }

    fn accept(&self, cmd: Command, st: &mut State) {
        let Command::Switchover { group, to, reply } = cmd;
        let leader = self.ctx.leadership.state();
        if !leader.is_leader {
            let _ = reply.send(Err(SwitchoverError::NotLeader(
                leader.holder.unwrap_or_else(|| "unknown".into()),
            )));
            return;
        }
        tracing::info!(%group, %to, "switchover requested");
        st.memory.switchover = Some(to.clone());
        st.memory.drift_owner = None;
        st.pending.push(Pending {
            to,
            since: Instant::now(),
            audit_from: self.ctx.status.audit().len(),
            reply,
        });
    }

    /// Wait for a read of every lane of this group that started after our last move, and
    /// take it in. False when there is none to plan from (a read failed).
    async fn observe(&self, st: &mut State, leader: &LeaderState) -> bool {
        let since = st
            .retry_after
            .take()
            .unwrap_or_else(|| self.ctx.reads.tick())
            .max(st.fresh_after);
        // Waiting for a read under way plus one more is normal; a lane that hangs longer
        // than its calls' timeout is a stall.
        let budget = self
            .ctx
            .spec
            .aws
            .call_timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1));
        let reads = self
            .beating(
                budget,
                futures::future::join_all(self.lanes.iter().map(|l| l.fresh(since))),
            )
            .await;
        self.take_in(st, leader, &reads)
    }

    /// Newer reads of this group's lanes than it has taken in, all fresh enough to judge
    /// (None: nothing new to take in yet).
    fn newer_reads(&self, st: &State) -> Option<Vec<Arc<Read>>> {
        let reads: Vec<Arc<Read>> = self.lanes.iter().filter_map(|l| l.latest()).collect();
        if reads.len() != self.lanes.len() {
            return None;
        }
        let newer = reads.iter().zip(&st.seen).any(|(r, seen)| r.seq > *seen);
        let failed = reads.iter().any(|r| r.result.is_err());
        let fresh = reads.iter().all(|r| r.tick > st.fresh_after);
        (newer && (failed || fresh)).then_some(reads)
    }

    /// Take in shared reads: this group's floats, drift judged against the belief of this
    /// term.
    fn take_in(&self, st: &mut State, leader: &LeaderState, reads: &[Arc<Read>]) -> bool {
        let g = self.g();
        for (seen, r) in st.seen.iter_mut().zip(reads) {
            *seen = (*seen).max(r.seq);
        }
        if let Some(e) = reads.iter().find_map(|r| r.result.as_ref().err()) {
            // The lane warns once per failed read for all its groups; a warning here would
            // repeat it for every group on every wake (192,000 lines in two minutes of a
            // 500-group failover with the emulator saturated).
            tracing::debug!(group = %g.name, error = %e, "observation failed; the shared read retries with backoff");
            self.ctx.status.set_observe_error(&g.name.0, e.to_string());
            // The lane retries by itself once its backoff is over, and its next read wakes
            // this group (a group that must see a fresh read waits for that one).
            let failed = reads.iter().filter(|r| r.result.is_err()).map(|r| r.tick);
            st.retry_after = failed.chain(st.retry_after).max();
            return false;
        }
        let mut o: HashMap<String, Observation> = HashMap::with_capacity(g.floats.len());
        for r in reads {
            if let Ok(all) = &r.result {
                for f in &g.floats {
                    if let Some(x) = all.get(&f.id) {
                        o.insert(f.id.clone(), x.clone());
                    }
                }
            }
        }
        if let Some(max) = o
            .values()
            .filter_map(|x| x.stamp.as_ref().map(|s| s.epoch))
            .max()
        {
            self.ctx.floor.raise(max);
        }
        if !st.observed_once {
            st.observed_once = true;
            if self.ctx.unobserved.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.ctx.floor.mark_settled();
            }
        }
        let missing: Vec<String> = g
            .floats
            .iter()
            .filter(|f| !o.contains_key(&f.id))
            .map(|f| f.id.clone())
            .collect();
        if missing != st.missing {
            if !missing.is_empty() {
                tracing::warn!(group = %g.name, ?missing, "configured floats not found at the provider; they are left alone");
            }
            st.missing = missing;
        }
        let leading = leader.is_leader.then_some(leader.epoch);
        if leading.is_some()
            && st.belief_epoch == leading
            && let Some(before) = &st.belief
        {
            self.find_drift(&mut st.memory, before, &o, leader);
        }
        // Adopted foreign holders are let go once the float moves again.
        st.memory.adopted.retain(|f| {
            o.get(f)
                .is_some_and(|x| matches!(holder_of(g, x.holder.as_ref()), Holder::Foreign(_)))
        });
        st.belief = Some(o);
        st.belief_epoch = leading;
        st.observe_now = false;
        self.ctx.status.clear_observe_error(&g.name.0);
        true
    }

    /// This group's rank in a provider queue among moves of the same class.
    pub(super) fn rank(&self) -> u64 {
        crate::pace::Priority::rank_of(self.g().policy.priority, self.gi)
    }

    async fn reconcile(&self, st: &mut State) {
        let started = Instant::now();
        let leader = self.ctx.leadership.state();
        if self.ctx.faults.active(Fault::EnginePanic) {
            panic!("injected fault: engine panic inside a reconcile (FLOATOVER_FAULT)");
        }
        if self.ctx.faults.active(Fault::EngineStall) {
            tracing::warn!("injected fault: engine stalls inside a reconcile (FLOATOVER_FAULT)");
            std::future::pending::<()>().await;
        }
        self.ctx.metrics.set_leader(leader.is_leader, leader.epoch);
        for m in &leader.members {
            self.ctx.metrics.set_lease_member(&m.name, m.up);
        }
        let g = self.g();
        let now_leading = leader.is_leader.then_some(leader.epoch);
        if now_leading.is_some() && now_leading != st.leading {
            tracing::info!(group = %g.name, epoch = leader.epoch.0, "leading: re-reading provider state before acting");
            st.observe_now = true;
            st.retry_after = None;
            st.belief_epoch = None;
            // The previous leader's last call may still land (it was sent before its fence
            // closed and may take up to a call timeout): read again once it could have. The
            // lane reads then for every group at once (a group busy with a queued move
            // takes that read in when it is back), and it is judged as drift.
            let recheck =
                Instant::now() + self.ctx.spec.aws.call_timeout + Duration::from_millis(250);
            for l in &self.lanes {
                l.schedule(recheck);
            }
        }
        st.leading = now_leading;
        if st.observe_now || st.belief.is_none() {
            if !self.observe(st, &leader).await {
                return;
            }
        } else if let Some(reads) = self.newer_reads(st) {
            // The drift check (leading) or resync (standby) of the shared reads.
            if !self.take_in(st, &leader, &reads) {
                return;
            }
        }
        let Some(belief) = st.belief.as_ref() else {
            return;
        };
        let health = self.ctx.board.snapshot_of(&self.keys);
        let now = Instant::now();
        let hv = super::health_view(g, &health);
        let observed = observed_view(g, belief);
        let p = plan::plan_group(&plan::Input {
            group: &self.view,
            health: &hv,
            observed: &observed,
            memory: &st.memory,
            epoch: leader.epoch,
            now: now.into_std(),
        });
        self.report_sizing(st, &p);
        if leader.is_leader {
            for n in &p.notes {
                if let Note::Fenced { .. } = n {
                    tracing::warn!(group = %g.name, note = ?n, "not acting on a float stamped with a newer epoch; raising our epoch above it");
                }
            }
        }
        st.next_wake = p.next_wake.map(Instant::from_std);
        if leader.is_leader {
            // Moves first (one call each: the failover path), then the claims of the
            // floats that stay, so a takeover that must fail over is not delayed by them.
            let moving: Vec<String> = p.actions.iter().map(|a| a.float().to_string()).collect();
            if !p.actions.is_empty() {
                self.execute(
                    st,
                    p.actions.clone(),
                    &health,
                    leader.epoch,
                    &leader.identity,
                )
                .await;
            }
            self.claim(st, leader.epoch, &moving);
        }
        // Drift handled: forget the target once it is no longer the owner, and after a
        // revert also once everything is back (nothing left to do): kept longer, the
        // reverted-to owner would hold the group and block every later failback. An
        // adopted owner is kept while it is up: that is what adopting means.
        let reverted = g.policy.on_drift == OnDrift::Revert
            || g.policy.mode == crate::config::Mode::ActiveActive;
        if let Some(t) = &st.memory.drift_owner
            && (p.desired.owner() != Some(t) || (reverted && p.actions.is_empty()))
        {
            st.memory.drift_owner = None;
        }
        // Status and metrics after the provider calls: they must not delay a failover.
        self.publish(&p, &observed, &health, now);
        self.finish_switchovers(st, &p);
        self.ctx.metrics.observe_reconcile(started.elapsed());
    }
}
