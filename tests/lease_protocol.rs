//! The lease protocol (`leader::protocol`) with paused time: every timing rule is checked on the
//! virtual clock, so these tests are exact and take milliseconds. Each scenario runs on
//! every store: the in-memory store and the Kubernetes Lease store over the fake API
//! server (`devkit::kubeapi`, in process). The same protocol runs over S3 in tests/lease.rs
//! (LocalStack) and over the fake API server's HTTP in tests/kube_lease.rs.

use floatover::leader::{
    CasLease, LeaderState, LeaseBackend, LeaseRecord, LeaseStore, LeaseTiming, Precondition, Put,
    RoundCtx,
};
use floatover::model::Epoch;
use floatover_devkit::kubeapi::FakeKube;
use floatover_devkit::leaseworld::LeaseWorld;
use floatover_devkit::memlease::MemLease;
use std::time::Duration;
use tokio::time::Instant;

const TIMING: LeaseTiming = LeaseTiming {
    lease: Duration::from_millis(4_000),
    renew_deadline: Duration::from_millis(2_500),
    retry: Duration::from_millis(500),
};

const GO: RoundCtx = RoundCtx {
    may_acquire: true,
    epoch_floor: Epoch(0),
};

/// One replica: its lease backend, when it runs next, what it knew after its last round.
struct Replica<S: LeaseStore> {
    lease: CasLease<S>,
    next: Instant,
    state: Option<LeaderState>,
    /// Stopped replicas run no rounds (a killed or frozen process).
    running: bool,
    ctx: RoundCtx,
    /// When this replica first reported itself leader in its current term.
    led_since: Option<Instant>,
}

impl<S: LeaseStore> Replica<S> {
    fn new<W: LeaseWorld<Store = S>>(store: &W, name: &'static str) -> Self {
        Replica {
            lease: CasLease::new(store.store(name), name.into(), TIMING),
            next: Instant::now(),
            state: None,
            running: true,
            ctx: GO,
            led_since: None,
        }
    }

    fn leads(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.is_leader)
    }

    fn epoch(&self) -> Epoch {
        self.state.as_ref().map_or(Epoch(0), |s| s.epoch)
    }
}

/// Run every running replica's rounds in time order until `until` (virtual time).
async fn run_until<S: LeaseStore>(rs: &mut [Replica<S>], until: Instant) {
    while let Some(i) = (0..rs.len())
        .filter(|i| rs[*i].running)
        .min_by_key(|i| rs[*i].next)
    {
        if rs[i].next > until {
            break;
        }
        tokio::time::sleep_until(rs[i].next).await;
        let ctx = rs[i].ctx;
        let round = rs[i].lease.round(ctx).await;
        let now = Instant::now();
        if round.state.is_leader && !rs[i].leads() {
            rs[i].led_since = Some(now);
        }
        if !round.state.is_leader {
            rs[i].led_since = None;
        }
        rs[i].state = Some(round.state);
        // Never spin: a round always schedules the next one in the future.
        rs[i].next = round.next.max(now + Duration::from_millis(1));
    }
    tokio::time::sleep_until(until).await;
}

/// Run a scenario on every store, each as its own test.
macro_rules! on_every_store {
    ($name:ident) => {
        mod $name {
            #[tokio::test(start_paused = true)]
            async fn memory() {
                super::$name(super::MemLease::new()).await
            }
            #[tokio::test(start_paused = true)]
            async fn kubernetes_lease() {
                super::$name(super::FakeKube::new()).await
            }
        }
    };
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

on_every_store!(one_leader_epochs_grow_and_takeover_waits_for_the_lease);
/// Exactly one leader; epochs grow with every new holder; a dead holder is replaced only
/// after its lease ran out unchanged on the successor's own clock; release hands over
/// within one retry period.
async fn one_leader_epochs_grow_and_takeover_waits_for_the_lease<W: LeaseWorld>(store: W) {
    let mut rs = vec![Replica::new(&store, "a"), Replica::new(&store, "b")];
    let t0 = Instant::now();
    run_until(&mut rs, t0 + secs(10.0)).await;
    assert!(rs[0].leads() && !rs[1].leads(), "a created the lease first");
    assert_eq!(rs[0].epoch(), Epoch(1));
    assert_eq!(
        rs[1]
            .state
            .as_ref()
            .and_then(|s| s.holder.clone())
            .as_deref(),
        Some("a")
    );

    // a dies. b takes over no earlier than a's last write + lease, and no later than one
    // retry after that.
    rs[0].running = false;
    let killed = Instant::now();
    run_until(&mut rs, killed + secs(10.0)).await;
    assert!(rs[1].leads(), "b took over");
    assert_eq!(rs[1].epoch(), Epoch(2), "a new holder takes a new epoch");
    let last_a = store
        .writes()
        .iter()
        .filter(|(_, r)| r.holder == "a")
        .map(|(at, _)| *at)
        .max()
        .expect("a wrote");
    let took = rs[1].led_since.expect("b leads");
    assert!(
        took >= last_a + TIMING.lease,
        "took over {:?} after a's last renewal",
        took - last_a
    );
    assert!(took <= last_a + TIMING.lease + TIMING.retry);

    // a comes back: it does not lead while b renews, however long it watches.
    rs[0].running = true;
    rs[0].next = Instant::now();
    rs[0].state = None;
    let back = Instant::now();
    run_until(&mut rs, back + secs(60.0)).await;
    assert!(
        !rs[0].leads() && rs[1].leads(),
        "a live holder keeps its lease"
    );

    // b releases: a takes over on its next round, with epoch 3.
    rs[1].lease.release().await.expect("release");
    rs[1].running = false;
    let released = Instant::now();
    run_until(&mut rs, released + TIMING.retry).await;
    assert!(rs[0].leads(), "a released lease is taken within one retry");
    assert_eq!(rs[0].epoch(), Epoch(3));
}

on_every_store!(the_fence_closes_before_anyone_can_take_over);
/// A leader cut off from the store stops mutating (its fence closes) before anybody can
/// take the lease over: fence deadline = last renewal sent + renew_deadline, earliest
/// takeover = that renewal written + lease.
async fn the_fence_closes_before_anyone_can_take_over<W: LeaseWorld>(store: W) {
    let mut rs = vec![Replica::new(&store, "a"), Replica::new(&store, "b")];
    let t0 = Instant::now();
    run_until(&mut rs, t0 + secs(5.0)).await;
    assert!(rs[0].leads());
    let fence = rs[0]
        .state
        .as_ref()
        .and_then(|s| s.fence_deadline)
        .expect("leader has a fence deadline");
    assert!(fence > Instant::now());

    store.cut_off("a", true);
    let cut = Instant::now();
    let mut fence_closed_at = None;
    let mut step = cut;
    while step < cut + secs(10.0) {
        step += Duration::from_millis(50);
        run_until(&mut rs, step).await;
        if fence_closed_at.is_none() && !rs[0].leads() {
            fence_closed_at = Some(Instant::now());
        }
    }
    let closed = fence_closed_at.expect("a stopped leading");
    let shows_error = rs[0]
        .state
        .as_ref()
        .map(|s| s.store.last_error.is_some())
        .unwrap_or(false);
    assert!(shows_error, "status shows the store error");
    let took = rs[1].led_since.expect("b took over");
    assert!(
        closed + (TIMING.lease - TIMING.renew_deadline) - TIMING.retry <= took,
        "fence closed at +{:?}, takeover at +{:?}",
        closed - cut,
        took - cut
    );
    assert!(closed < took, "never two leaders at once");
    assert_eq!(rs[1].epoch(), Epoch(2));
}

on_every_store!(epochs_stay_above_the_floor_when_the_lease_is_recreated);
/// Epochs never go backwards: a new holder takes an epoch above the highest it has seen
/// (the lease record and the floats' stamps), and a holder that learns of a stamp above
/// its epoch raises its epoch in its next renewal.
async fn epochs_stay_above_the_floor_when_the_lease_is_recreated<W: LeaseWorld>(store: W) {
    let mut rs = vec![Replica::new(&store, "a")];
    rs[0].ctx = RoundCtx {
        may_acquire: true,
        epoch_floor: Epoch(7),
    };
    let t0 = Instant::now();
    run_until(&mut rs, t0 + secs(1.0)).await;
    assert_eq!(rs[0].epoch(), Epoch(8), "created above the floats' stamps");

    // The holder sees a stamp at 11 (an older, deleted lease object's term).
    rs[0].ctx.epoch_floor = Epoch(11);
    run_until(&mut rs, Instant::now() + secs(1.0)).await;
    assert!(rs[0].leads());
    assert_eq!(rs[0].epoch(), Epoch(12), "raised in a conditional renewal");

    // The object is deleted while everybody restarts: the new holder starts above the
    // stamps it sees, not at 1.
    store.delete();
    let mut rs = vec![Replica::new(&store, "b")];
    rs[0].ctx.epoch_floor = Epoch(12);
    run_until(&mut rs, Instant::now() + secs(1.0)).await;
    assert_eq!(rs[0].epoch(), Epoch(13));
}

on_every_store!(a_replica_that_may_not_acquire_never_holds_the_lease);
/// A replica that must not lead (stalled engine, floats not yet observed) reads the lease
/// but never creates, takes or renews it; a holder that stalls drops its claim, and a
/// standby takes over after the lease.
async fn a_replica_that_may_not_acquire_never_holds_the_lease<W: LeaseWorld>(store: W) {
    let mut rs = vec![Replica::new(&store, "a"), Replica::new(&store, "b")];
    rs[0].ctx.may_acquire = false;
    rs[1].ctx.may_acquire = false;
    run_until(&mut rs, Instant::now() + secs(10.0)).await;
    assert!(store.record().is_none(), "nobody created the lease");

    rs[0].ctx.may_acquire = true;
    run_until(&mut rs, Instant::now() + secs(2.0)).await;
    assert!(rs[0].leads());

    // a stalls: it stops renewing at once, and does not lead any more.
    rs[0].ctx.may_acquire = false;
    rs[1].ctx.may_acquire = true;
    let stalled = Instant::now();
    let writes_before = store.writes().len();
    run_until(&mut rs, stalled + TIMING.retry * 2).await;
    assert!(!rs[0].leads(), "a stalled holder drops its claim at once");
    assert_eq!(
        store.writes().len(),
        writes_before,
        "and writes nothing any more"
    );
    run_until(&mut rs, stalled + TIMING.lease + TIMING.retry * 2).await;
    assert!(rs[1].leads(), "a standby takes over after the lease");
    assert!(!rs[0].leads());
}

on_every_store!(a_hostile_lease_duration_is_capped);
/// A record holding an absurd lease duration (corrupt or hostile) cannot stall a takeover
/// for more than an hour, and never overflows a deadline.
async fn a_hostile_lease_duration_is_capped<W: LeaseWorld>(store: W) {
    store.plant(LeaseRecord {
        holder: "ghost".into(),
        epoch: 4,
        lease_ms: u64::MAX,
        renewals: 0,
        released: false,
        api: None,
        writer: None,
    });
    let mut rs = vec![Replica::new(&store, "a")];
    let t0 = Instant::now();
    run_until(&mut rs, t0 + secs(3_599.0)).await;
    assert!(!rs[0].leads());
    run_until(&mut rs, t0 + secs(3_601.0)).await;
    assert!(rs[0].leads(), "taken over after the one-hour cap");
    assert_eq!(rs[0].epoch(), Epoch(5));
}

on_every_store!(conditional_writes_have_exactly_one_winner);
/// The store's conditional writes: of two writers that both read "no lease", exactly one
/// creates it; a write against a stale version is refused.
async fn conditional_writes_have_exactly_one_winner<W: LeaseWorld>(store: W) {
    let (a, b) = (store.store("a"), store.store("b"));
    let rec = |h: &str| LeaseRecord {
        holder: h.into(),
        epoch: 1,
        lease_ms: 4_000,
        renewals: 0,
        released: false,
        api: None,
        writer: None,
    };
    assert!(a.get().await.expect("get").is_none());
    assert!(b.get().await.expect("get").is_none());
    let ra = a.put(&rec("a"), Precondition::Absent).await.expect("put");
    let rb = b.put(&rec("b"), Precondition::Absent).await.expect("put");
    assert!(matches!(ra, Put::Done(_)));
    assert_eq!(rb, Put::Conflict);
    let Put::Done(v1) = ra else { unreachable!() };
    let r2 = a
        .put(&rec("a"), Precondition::Matches(&v1))
        .await
        .expect("put");
    assert!(matches!(r2, Put::Done(_)));
    assert_eq!(
        b.put(&rec("b"), Precondition::Matches(&v1))
            .await
            .expect("put"),
        Put::Conflict,
        "stale version refused"
    );
}

/// A lease backend whose rounds never return (a store call stuck past every timeout).
struct Stuck;

#[async_trait::async_trait]
impl LeaseBackend for Stuck {
    async fn round(&mut self, _: RoundCtx) -> floatover::leader::Round {
        std::future::pending().await
    }
    fn retry_period(&self) -> Duration {
        TIMING.retry
    }
    async fn release(&mut self) -> Result<(), floatover::leader::LeaderError> {
        Ok(())
    }
    fn identity(&self) -> &str {
        "stuck"
    }
}

/// The elector beats a heart: a healthy elector never looks stalled, one stuck in a round
/// shows as stalled (and so on /healthz) within its bound, instead of leaving a replica
/// silently unable to lead.
#[tokio::test(start_paused = true)]
async fn a_stuck_elector_shows_as_stalled() {
    use floatover::leader::{Elector, EpochFloor};
    use floatover::liveness::Liveness;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;

    let stop = CancellationToken::new();
    let healthy = Arc::new(Liveness::new());
    let store = MemLease::new();
    let (e, _l) = Elector::new(Box::new(CasLease::new(
        store.for_replica("a"),
        "a".into(),
        TIMING,
    )));
    e.guarded(
        healthy.clone(),
        Arc::new(EpochFloor::default()),
        Instant::now(),
    )
    .spawn(stop.clone(), async {});
    let stuck = Arc::new(Liveness::new());
    let (e, _l2) = Elector::new(Box::new(Stuck));
    e.guarded(
        stuck.clone(),
        Arc::new(EpochFloor::default()),
        Instant::now(),
    )
    .spawn(stop.clone(), async {});

    tokio::time::sleep(secs(600.0)).await;
    assert!(healthy.check().is_ok(), "{:?}", healthy.check().err());
    let s = stuck.check().expect_err("stuck elector is reported");
    assert_eq!(s.name, "elector");
    // Bound: 5 retry periods + 2 s.
    let t = Instant::now();
    let stuck2 = Arc::new(Liveness::new());
    let (e, _l3) = Elector::new(Box::new(Stuck));
    e.guarded(stuck2.clone(), Arc::new(EpochFloor::default()), t)
        .spawn(stop.clone(), async {});
    tokio::time::sleep(secs(4.4)).await;
    assert!(stuck2.check().is_ok(), "not before its bound");
    tokio::time::sleep(secs(0.2)).await;
    assert!(stuck2.check().is_err(), "stalled after 4.5 s");
    stop.cancel();
}

/// A store that performs a write but loses its answer (as a timed-out PUT that landed),
/// once, at the `lose`-th write.
struct LostAnswer<S> {
    inner: S,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    lose: usize,
}

#[async_trait::async_trait]
impl<S: LeaseStore> LeaseStore for LostAnswer<S> {
    async fn get(&self) -> Result<Option<(LeaseRecord, String)>, floatover::leader::LeaderError> {
        self.inner.get().await
    }
    async fn put(
        &self,
        rec: &LeaseRecord,
        pre: Precondition<'_>,
    ) -> Result<Put, floatover::leader::LeaderError> {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let r = self.inner.put(rec, pre).await;
        if n == self.lose {
            return Err(floatover::leader::LeaderError::Store {
                op: "PutObject",
                region: "test".into(),
                code: "Timeout".into(),
                message: "no answer within the call timeout (the write landed)".into(),
            });
        }
        r
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

/// A renewal whose answer was lost but which landed is recognised as the claim's own
/// write (its writer id): the leader keeps the lease and its epoch, instead of reading
/// its own write as "taken by another replica" and stepping down. A replica with the
/// same identity but another writer id is still a stranger (next test in lease.rs:
/// `same_identity_twice_never_gives_two_leaders`).
#[tokio::test(start_paused = true)]
async fn a_renewal_that_landed_without_an_answer_keeps_the_lease() {
    let mem = MemLease::new();
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store = LostAnswer {
        inner: mem.store("a"),
        writes: writes.clone(),
        lose: 4,
    };
    let mut a = Replica {
        lease: CasLease::new(store, "a".into(), TIMING),
        next: Instant::now(),
        state: None,
        running: true,
        ctx: GO,
        led_since: None,
    };
    let start = Instant::now();
    let mut led = Vec::new();
    for step in 1..=40u32 {
        run_until(
            std::slice::from_mut(&mut a),
            start + Duration::from_millis(250) * step,
        )
        .await;
        led.push((a.leads(), a.epoch()));
    }
    assert!(
        led.iter().skip(2).all(|(l, e)| *l && *e == Epoch(1)),
        "the leader stepped down or changed epoch: {led:?}"
    );
    assert!(
        writes.load(std::sync::atomic::Ordering::SeqCst) > 8,
        "the scenario renewed past the lost answer"
    );
}
