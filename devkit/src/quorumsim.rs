//! A world of replicas electing a leader over a quorum of in-memory lease members, on
//! tokio's paused clock: each replica's election loop runs as its own task (as the
//! elector does), the test partitions, slows, freezes, crashes and restarts them, and the
//! world records every replica's fence window (from the round that first reported it
//! leader to its fence deadline) so that [`QuorumWorld::check`] can prove that no two
//! replicas could ever mutate at the same instant and that epochs only grow.
//!
//! Used by the scripted quorum tests and by the seeded simulation (tests/lease_quorum.rs).

use crate::memlease::MemLease;
use floatover::leader::{
    LeaderState, LeaseBackend, LeaseStore, LeaseTiming, QuorumLease, QuorumMember, RoundCtx,
};
use floatover::model::Epoch;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// When one replica could mutate: `[from, to]` under `epoch`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub who: String,
    pub epoch: Epoch,
    pub from: Instant,
    pub to: Instant,
}

#[derive(Default)]
struct Shared {
    windows: Vec<Window>,
    /// Each identity's last published state.
    states: Vec<(String, LeaderState)>,
    /// What `run_for` saw go wrong (two replicas leading at one instant).
    violations: Vec<String>,
    /// How long each round took: (identity, leader after it, duration).
    rounds: Vec<(String, bool, Duration)>,
}

/// One replica slot: restarts get a new identity (`b`, `b.2`, ...), as a restarted
/// process does.
struct Slot {
    base: String,
    incarnation: u32,
    identity: String,
    task: Option<JoinHandle<()>>,
    frozen: Arc<Mutex<bool>>,
    ctx: Arc<Mutex<RoundCtx>>,
}

/// Replicas over a quorum of [`MemLease`] members.
pub struct QuorumWorld {
    pub members: Vec<MemLease>,
    pub timing: LeaseTiming,
    slots: Vec<Slot>,
    shared: Arc<Mutex<Shared>>,
}

const GO: RoundCtx = RoundCtx {
    may_acquire: true,
    epoch_floor: Epoch(0),
};

impl QuorumWorld {
    /// `n_members` empty members and one replica per name in `replicas`, all running.
    pub fn new(n_members: usize, replicas: &[&str], timing: LeaseTiming) -> Self {
        let mut w = QuorumWorld {
            members: (0..n_members).map(|_| MemLease::new()).collect(),
            timing,
            slots: Vec::new(),
            shared: Arc::default(),
        };
        for name in replicas {
            w.slots.push(Slot {
                base: name.to_string(),
                incarnation: 0,
                identity: String::new(),
                task: None,
                frozen: Arc::default(),
                ctx: Arc::new(Mutex::new(GO)),
            });
            w.start(w.slots.len() - 1);
        }
        w
    }

    fn index(&self, name: &str) -> usize {
        self.slots
            .iter()
            .position(|s| s.base == name)
            .unwrap_or_else(|| panic!("no replica {name}"))
    }

    /// The member names used in status: `m0`, `m1`, ...
    pub fn member_name(i: usize) -> String {
        format!("m{i}")
    }

    fn start(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.incarnation += 1;
        slot.identity = if slot.incarnation == 1 {
            slot.base.clone()
        } else {
            format!("{}.{}", slot.base, slot.incarnation)
        };
        let members = self
            .members
            .iter()
            .enumerate()
            .map(|(m, store)| QuorumMember {
                name: Self::member_name(m),
                store: Arc::new(store.for_replica(&slot.base)) as Arc<dyn LeaseStore>,
            })
            .collect();
        let lease = QuorumLease::new(members, slot.identity.clone(), self.timing, None);
        *lock(&slot.frozen) = false;
        slot.task = Some(tokio::spawn(drive(
            lease,
            slot.frozen.clone(),
            slot.ctx.clone(),
            self.shared.clone(),
        )));
    }

    /// Cut replica `name` off from member `m` (or reconnect it).
    pub fn partition(&self, name: &str, m: usize, cut: bool) {
        self.members[m].cut_off(name, cut);
    }

    /// Requests from `name` to member `m` take `there` to arrive and `back` to answer.
    pub fn lag(&self, name: &str, m: usize, there: Duration, back: Duration) {
        self.members[m].lag(name, there, back);
    }

    /// Freeze (SIGSTOP) or thaw replica `name`: no rounds while frozen.
    pub fn freeze(&self, name: &str, frozen: bool) {
        *lock(&self.slots[self.index(name)].frozen) = frozen;
    }

    /// Change what replica `name`'s elector tells its lease (stalled, epoch floor).
    pub fn set_ctx(&self, name: &str, ctx: RoundCtx) {
        *lock(&self.slots[self.index(name)].ctx) = ctx;
    }

    /// Kill replica `name` (kill -9): its window ends now; calls already sent may still
    /// land, as packets in flight do.
    pub fn crash(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(t) = self.slots[i].task.take() {
            t.abort();
            let now = Instant::now();
            let who = self.slots[i].identity.clone();
            let mut sh = lock(&self.shared);
            for w in sh.windows.iter_mut().filter(|w| w.who == who) {
                w.to = w.to.min(now);
            }
            sh.states.retain(|(id, _)| *id != who);
        }
    }

    /// Start replica `name` again (a new process: new identity, empty state).
    pub fn restart(&mut self, name: &str) {
        let i = self.index(name);
        if self.slots[i].task.is_none() {
            self.start(i);
        }
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.slots[self.index(name)].task.is_some()
    }

    /// Replica `name`'s current identity.
    pub fn identity(&self, name: &str) -> String {
        self.slots[self.index(name)].identity.clone()
    }

    /// Heal everything: no partition, no lag, nobody frozen, crashed replicas restarted.
    pub fn heal(&mut self) {
        for (m, store) in self.members.iter().enumerate() {
            for s in &self.slots {
                store.cut_off(&s.base, false);
                self.members[m].lag(&s.base, Duration::ZERO, Duration::ZERO);
            }
        }
        for i in 0..self.slots.len() {
            *lock(&self.slots[i].frozen) = false;
            if self.slots[i].task.is_none() {
                self.start(i);
            }
        }
    }

    /// Replica `name`'s last published state (None before its first round).
    pub fn state(&self, name: &str) -> Option<LeaderState> {
        let who = self.identity(name);
        lock(&self.shared)
            .states
            .iter()
            .find(|(id, _)| *id == who)
            .map(|(_, s)| s.clone())
    }

    /// The replica (by name) that may mutate right now, if any. Panics if two may.
    pub fn leader(&self) -> Option<String> {
        let leading = self.leaders();
        assert!(leading.len() <= 1, "two leaders at once: {leading:?}");
        leading.into_iter().next()
    }

    /// Every replica (by name) whose last published state lets it mutate now.
    pub fn leaders(&self) -> Vec<String> {
        let now = Instant::now();
        self.slots
            .iter()
            .filter(|s| s.task.is_some())
            .filter(|s| {
                self.state(&s.base)
                    .is_some_and(|st| st.is_leader && st.fence_deadline.is_some_and(|d| now < d))
            })
            .map(|s| s.base.clone())
            .collect()
    }

    /// Every round so far: (identity, leader after it, how long it took).
    pub fn rounds(&self) -> Vec<(String, bool, Duration)> {
        lock(&self.shared).rounds.clone()
    }

    /// Every fence window so far.
    pub fn windows(&self) -> Vec<Window> {
        lock(&self.shared).windows.clone()
    }

    /// The safety properties: no two replicas' windows overlap, and each new window's
    /// epoch is above every earlier one's.
    pub fn check(&self) -> Result<(), String> {
        if let Some(v) = lock(&self.shared).violations.first() {
            return Err(v.clone());
        }
        let mut ws = self.windows();
        ws.sort_by_key(|w| w.from);
        for (i, a) in ws.iter().enumerate() {
            for b in &ws[i + 1..] {
                if a.who != b.who && b.from < a.to {
                    return Err(format!("overlapping leaders: {a:?} and {b:?}"));
                }
                if b.epoch <= a.epoch && !(a.who == b.who && a.epoch == b.epoch) {
                    return Err(format!("epoch did not grow: {a:?} then {b:?}"));
                }
            }
        }
        Ok(())
    }

    /// Advance virtual time by `d`, checking at every step of `tick` that at most one
    /// replica leads.
    pub async fn run_for(&self, d: Duration) {
        let end = Instant::now() + d;
        let tick = Duration::from_millis(50);
        while Instant::now() < end {
            tokio::time::sleep(tick.min(end - Instant::now())).await;
            let leading = self.leaders();
            if leading.len() > 1 {
                lock(&self.shared)
                    .violations
                    .push(format!("two leaders at once: {leading:?}"));
            }
            self.stamp_floats();
        }
    }

    /// Every leader stamps its epoch on the floats it acts on, and every replica's engine
    /// raises its epoch floor from the stamps it observes (`leader::EpochFloor`): model
    /// that as each replica's floor following the highest epoch that has led so far.
    fn stamp_floats(&self) {
        let top = self.windows().iter().map(|w| w.epoch).max();
        if let Some(top) = top {
            for s in &self.slots {
                let mut c = lock(&s.ctx);
                c.epoch_floor = c.epoch_floor.max(top);
            }
        }
    }

    /// Run until `cond` holds (checked every 10 ms) or `limit` passes; returns how long it
    /// took.
    pub async fn until(&self, limit: Duration, cond: impl Fn(&Self) -> bool) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() <= limit {
            if cond(self) {
                return Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

/// One replica's election loop: what the elector does, minus liveness.
async fn drive(
    mut lease: QuorumLease,
    frozen: Arc<Mutex<bool>>,
    ctx: Arc<Mutex<RoundCtx>>,
    shared: Arc<Mutex<Shared>>,
) {
    let who = lease.identity().to_string();
    let mut next = Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        while *lock(&frozen) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let c = *lock(&ctx);
        let started = Instant::now();
        let round = lease.round(c).await;
        let now = Instant::now();
        record(&shared, &who, &round.state, now);
        lock(&shared)
            .rounds
            .push((who.clone(), round.state.is_leader, now - started));
        next = round.next.max(now + Duration::from_millis(1));
        // Wake at the fence deadline too, as the elector does.
        if let Some(d) = round.state.fence_deadline.filter(|d| *d < next && *d > now) {
            next = d;
        }
    }
}

fn record(shared: &Mutex<Shared>, who: &str, s: &LeaderState, now: Instant) {
    let mut sh = lock(shared);
    sh.states.retain(|(id, _)| id != who);
    sh.states.push((who.to_string(), s.clone()));
    // The fence reads only the last published state: a new state ends every window of
    // this replica that it does not continue.
    let mut continued = false;
    for w in sh.windows.iter_mut().filter(|w| w.who == who && w.to > now) {
        match (s.is_leader, s.fence_deadline) {
            (true, Some(d)) if w.epoch == s.epoch => {
                w.to = d;
                continued = true;
            }
            _ => w.to = now,
        }
    }
    if let (true, Some(d), false) = (s.is_leader, s.fence_deadline, continued) {
        sh.windows.push(Window {
            who: who.to_string(),
            epoch: s.epoch,
            from: now,
            to: d,
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
