//! Mass failover on the virtual clock: 500 groups, each a primary, a standby and one
//! Elastic IP, behind floatover's own per-API token buckets with EC2's documented defaults
//! (`MemProvider::with_buckets`). Every primary fails at the same instant (a zone outage).
//!
//! What must hold (DESIGN.md guarantee 9): every float moves within 1.05x the floor the
//! AssociateAddress bucket allows ((500 - 50) / 5 = 90 s); the leader never steps down
//! (waiting for tokens is progress), although a real elector with the liveness watchdog
//! runs; the reads stay one per lane and tick, not one per group; the queue is visible in
//! status and every waiting move's audit says how long it waited. And a truly stuck call
//! is still caught: the leader steps down.

use floatover::config;
use floatover::engine::Engine;
use floatover::leader::{CasLease, Elector, EpochFloor, Leadership, LeaseTiming};
use floatover::liveness::Liveness;
use floatover::metrics::Metrics;
use floatover::model::{Epoch, GroupName, MoveStamp, Reason, TargetId, TargetKey};
use floatover::pace::Limits;
use floatover::probe::{HealthBoard, Outcome};
use floatover::status::StatusStore;
use floatover_devkit::memlease::MemLease;
use floatover_devkit::memprovider::MemProvider;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const DRIFT_CHECK: Duration = Duration::from_secs(5);

fn config(groups: usize) -> String {
    let mut y = String::from(
        "leader: { backend: single }\naws: { region: us-east-1 }\ndrift_check: 5s\nresync_interval: 30s\n\
         probe_defaults: { interval: 500ms, timeout: 100ms, rise: 1, fall: 1 }\ngroups:\n",
    );
    for i in 0..groups {
        // The last group matters most: it must move first among those that wait.
        let priority = if i == groups - 1 { 10 } else { 0 };
        let _ = writeln!(
            y,
            "  - name: g{i}\n    policy: {{ priority: {priority} }}\n    targets:\n      \
             - {{ name: primary, instance_id: i-p{i}, priority: 200, probes: [{{ tcp: {{ address: \"127.0.0.1:9\" }} }}] }}\n      \
             - {{ name: standby, instance_id: i-s{i}, priority: 100, probes: [{{ tcp: {{ address: \"127.0.0.1:9\" }} }}] }}\n    \
             floats:\n      - eip: {{ allocation_id: eipalloc-{i} }}"
        );
    }
    y
}

fn key(g: usize, t: &str) -> TargetKey {
    TargetKey {
        group: GroupName(format!("g{g}")),
        target: TargetId(t.into()),
    }
}

struct World {
    provider: Arc<MemProvider>,
    board: Arc<HealthBoard>,
    leadership: Leadership,
    status: Arc<StatusStore>,
    liveness: Arc<Liveness>,
    store: MemLease,
    stop: CancellationToken,
    /// Set when the replica ever stopped leading after it first led.
    stepped_down: Arc<AtomicBool>,
    groups: usize,
}

impl World {
    /// A replica electing itself through a lease store, guarded by the liveness watchdog
    /// exactly as the binary wires it; every float on its primary with an old stamp.
    async fn start(groups: usize) -> World {
        let spec = Arc::new(config::from_yaml(&config(groups)).expect("config"));
        let floats: Vec<String> = (0..groups).map(|i| format!("eip:eipalloc-{i}")).collect();
        let names: Vec<&str> = floats.iter().map(String::as_str).collect();
        let provider = Arc::new(MemProvider::new(&names).with_buckets(Limits::default()));
        for (i, f) in floats.iter().enumerate() {
            let old = MoveStamp {
                epoch: Epoch(0),
                reason: Reason::Claim,
                target: TargetId("primary".into()),
            };
            provider.set(f, Some(&format!("i-p{i}")), Some(old));
        }
        let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
        let store = MemLease::new();
        let timing = LeaseTiming {
            lease: Duration::from_millis(4_000),
            renew_deadline: Duration::from_millis(2_500),
            retry: Duration::from_millis(500),
        };
        let liveness = Arc::new(Liveness::new());
        let floor = Arc::new(EpochFloor::default());
        let (elector, leadership) = Elector::new(Box::new(CasLease::new(
            store.for_replica("me"),
            "me".into(),
            timing,
        )));
        let elector = elector.guarded(liveness.clone(), floor.clone(), Instant::now());
        let status = Arc::new(StatusStore::default());
        let (_cmd, cmd_rx) = mpsc::channel(1);
        let engine = Engine::new(
            spec,
            provider.clone(),
            board.clone(),
            leadership.clone(),
            Arc::new(Metrics::new()),
            status.clone(),
            cmd_rx,
        )
        .with_liveness(liveness.clone())
        .with_floor(floor);
        let stop = CancellationToken::new();
        let es = stop.clone();
        tokio::spawn(async move {
            let _keep = _cmd;
            engine.run(es).await;
        });
        elector.spawn(stop.clone(), async {});
        for g in 0..groups {
            board.record(&key(g, "primary"), 0, Outcome::Ok, Instant::now());
            board.record(&key(g, "standby"), 0, Outcome::Ok, Instant::now());
        }
        let stepped_down = Arc::new(AtomicBool::new(false));
        {
            let (mut l, flag) = (leadership.clone(), stepped_down.clone());
            tokio::spawn(async move {
                let mut led = false;
                loop {
                    l.changed().await;
                    let s = l.state();
                    if s.is_leader {
                        led = true;
                    } else if led {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
        World {
            provider,
            board,
            leadership,
            status,
            liveness,
            store,
            stop,
            stepped_down,
            groups,
        }
    }

    fn on_standby(&self) -> usize {
        (0..self.groups)
            .filter(|i| {
                self.provider
                    .holder(&format!("eip:eipalloc-{i}"))
                    .as_deref()
                    == Some(format!("i-s{i}").as_str())
            })
            .count()
    }

    fn zone_outage(&self) {
        for g in 0..self.groups {
            self.board.record(
                &key(g, "primary"),
                0,
                Outcome::Fail("zone outage".into()),
                Instant::now(),
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn five_hundred_floats_move_at_the_buckets_pace_without_a_step_down() {
    const N: usize = 500;
    let w = World::start(N).await;
    // Leader elected, first shared read, claims written beside the workers.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(w.leadership.state().is_leader, "the replica leads");
    assert_eq!(w.on_standby(), 0);

    // Idle: one read per lane (one here) and drift-check tick, whatever the group count.
    let reads = w.provider.observe_calls();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = w.provider.observe_calls() - reads;
    assert!(
        idle <= 30 / DRIFT_CHECK.as_secs() + 1,
        "{idle} reads in 30 s idle: one per drift check ({N} groups)"
    );

    // Watch the watchdog every 250 ms through the whole failover.
    let stalls = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (live, stalls) = (w.liveness.clone(), stalls.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Err(s) = live.check() {
                    stalls.lock().expect("lock").push(s.to_string());
                }
            }
        });
    }
    let reads = w.provider.observe_calls();
    let moves_before = w.provider.calls().len();
    let t0 = Instant::now();
    w.zone_outage();

    // The queue a person reads, 10 s in: what waits and how long it will take.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let q = w
        .status
        .queues()
        .into_iter()
        .find(|q| q.api == "AssociateAddress")
        .expect("the AssociateAddress queue is in status");
    assert!(
        w.status.audit().iter().all(|e| e.reason != Reason::Drift),
        "no false drift: a group's own move is never taken for someone else's"
    );
    assert!(
        q.pending >= 350 && q.failovers == q.pending,
        "queue 10 s in: {q:?}"
    );
    assert!(
        (q.drain_s - f64::from(q.pending) / 5.0).abs() < 1.0,
        "drain time at 5 a second: {q:?}"
    );

    let mut done = None;
    for _ in 0..2_000 {
        if w.on_standby() == N {
            done = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = done.expect("every float moved");
    let floor = Duration::from_secs((N as u64 - 50) / 5);
    println!("{N} floats moved in {took:?}; floor {floor:?}");
    assert!(
        took <= floor.mul_f64(1.05),
        "{N} floats took {took:?}, over 1.05x the per-API floor {floor:?}"
    );
    assert!(
        took >= floor - Duration::from_millis(300),
        "faster than the bucket allows ({took:?} < {floor:?}): the bucket is not applied"
    );

    // Never a step-down: no stall seen, no move refused by our own fence, one epoch.
    assert_eq!(*stalls.lock().expect("lock"), Vec::<String>::new());
    assert!(
        !w.stepped_down.load(Ordering::SeqCst),
        "the leader stepped down"
    );
    assert_eq!(w.provider.refused(), 0, "no call refused by the fence");
    assert_eq!(w.leadership.state().epoch, Epoch(1));
    assert!(w.store.writes().iter().all(|x| x.record.epoch == 1));

    // The group with the higher priority went first among those that waited.
    let moves: Vec<_> = w.provider.calls()[moves_before..]
        .iter()
        .filter(|c| c.op == "move")
        .map(|c| c.float.clone())
        .collect();
    let pos = moves
        .iter()
        .position(|f| f == &format!("eip:eipalloc-{}", N - 1))
        .expect("moved");
    assert!(pos <= 50, "the priority group moved {pos}th");

    // Reads during the failover: the read-backs of a burst share a read (about one a
    // second) plus the drift check; not one per group.
    let failover_reads = w.provider.observe_calls() - reads;
    let bound = took.as_secs() + took.as_secs() / DRIFT_CHECK.as_secs() + 3;
    assert!(
        failover_reads <= bound,
        "{failover_reads} reads during the failover (bound {bound}, {N} groups)"
    );

    // Every move that waited says so in its audit line.
    let audit = w.status.audit();
    let waited = audit
        .iter()
        .filter(|e| e.reason == Reason::Failover && e.token_wait_ms.is_some())
        .count();
    assert!(waited >= N - 60, "{waited} audited waits");
    let last = audit
        .iter()
        .filter(|e| e.reason == Reason::Failover)
        .filter_map(|e| e.token_wait_ms)
        .fold(0.0_f64, f64::max);
    assert!(last >= 85_000.0, "the last move waited {last} ms");
    assert!(
        audit.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("for a provider token"))),
        "the audit line says how long the move waited"
    );
    w.stop.cancel();
}

/// Waiting is progress, but a call that hangs is not: with every AssociateAddress hanging
/// (no answer, ever), the watchdog reports the stall and the leader stops renewing, so
/// another replica could take over.
#[tokio::test(start_paused = true)]
async fn a_hung_call_is_still_a_stall() {
    let w = World::start(20).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(w.leadership.state().is_leader);
    w.provider.set_latency(Duration::from_secs(3_600));
    let t0 = Instant::now();
    w.zone_outage();
    let mut gone = None;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !w.leadership.state().is_leader {
            gone = Some(t0.elapsed());
            break;
        }
    }
    let gone = gone.expect("the stalled leader stepped down");
    // Four call timeouts of budget (6 s), the 2.5 s gap, then the lease's renew deadline.
    assert!(
        gone <= Duration::from_secs(15),
        "stepped down after {gone:?}"
    );
    assert!(w.liveness.check().is_err(), "the stall is reported");
    w.stop.cancel();
}
