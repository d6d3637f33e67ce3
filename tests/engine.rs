//! The engine with the in-memory provider and paused time: every timing rule of the
//! policy (failover, failback delay, min_hold, switchover stickiness), the fence, and the
//! shutdown order, checked on the virtual clock. LocalStack tests (failover.rs,
//! switchover.rs, faults.rs) remain the end-to-end proof; these pin the rules exactly.

use floatover::config;
use floatover::engine::{Command, Engine};
use floatover::leader::{CasLease, Elector, LeaderState, Leadership, LeaseTiming, StoreHealth};
use floatover::metrics::Metrics;
use floatover::model::{Epoch, GroupName, MoveStamp, Reason, TargetId, TargetKey};
use floatover::probe::{HealthBoard, Outcome};
use floatover::status::StatusStore;
use floatover_devkit::memlease::MemLease;
use floatover_devkit::memprovider::{Call, MemProvider};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
leader: { backend: single }
aws: { region: us-east-1 }
drift_check: 2s
resync_interval: 10s
probe_defaults: { interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }
groups:
  - name: web
    policy: { preempt: true, failback_delay: 3s, min_hold: 2s }
    targets:
      - { name: a, instance_id: i-a, priority: 200, probes: [{ tcp: { address: "127.0.0.1:9" } }] }
      - { name: b, instance_id: i-b, priority: 100, probes: [{ tcp: { address: "127.0.0.1:9" } }] }
    floats:
      - eip: { allocation_id: eipalloc-1 }
      - eip: { allocation_id: eipalloc-2 }
"#;

const F1: &str = "eip:eipalloc-1";
const F2: &str = "eip:eipalloc-2";

fn leader_state(epoch: u64, leading: bool) -> LeaderState {
    LeaderState {
        identity: "me".into(),
        is_leader: leading,
        epoch: Epoch(epoch),
        holder: leading.then(|| "me".to_string()),
        holder_api: None,
        store: StoreHealth::default(),
        fence_deadline: leading.then(|| Instant::now() + Duration::from_secs(365 * 24 * 3600)),
        members: Vec::new(),
    }
}

struct World {
    provider: Arc<MemProvider>,
    board: Arc<HealthBoard>,
    leader: watch::Sender<LeaderState>,
    commands: mpsc::Sender<Command>,
    stop: CancellationToken,
    engine: tokio::task::JoinHandle<()>,
}

impl World {
    /// An engine leading under epoch 1 with both targets up.
    async fn start() -> World {
        let spec = Arc::new(config::from_yaml(CONFIG).expect("config"));
        let provider = Arc::new(MemProvider::new(&[F1, F2]));
        let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
        let (leader, rx) = watch::channel(leader_state(1, true));
        let (commands, cmd_rx) = mpsc::channel(4);
        let engine = Engine::new(
            spec,
            provider.clone(),
            board.clone(),
            Leadership::follow(rx),
            Arc::new(Metrics::new()),
            Arc::new(StatusStore::default()),
            cmd_rx,
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(engine.run(stop.clone()));
        let w = World {
            provider,
            board,
            leader,
            commands,
            stop,
            engine: task,
        };
        w.health("a", true);
        w.health("b", true);
        w.settle(Duration::from_millis(100)).await;
        w
    }

    /// Stop the engine; it must return promptly (in-flight calls finish, nothing hangs).
    async fn shutdown(self) {
        self.stop.cancel();
        let done = tokio::time::timeout(Duration::from_secs(10), self.engine).await;
        assert!(done.is_ok(), "the engine did not stop within 10 s");
    }

    fn health(&self, target: &str, up: bool) {
        let key = TargetKey {
            group: GroupName("web".into()),
            target: TargetId(target.into()),
        };
        let o = if up {
            Outcome::Ok
        } else {
            Outcome::Fail("test".into())
        };
        self.board.record(&key, 0, o, Instant::now());
    }

    /// Let virtual time pass (the engine's timers fire on the way).
    async fn settle(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn on(&self, instance: &str) -> bool {
        self.provider.holder(F1).as_deref() == Some(instance)
            && self.provider.holder(F2).as_deref() == Some(instance)
    }

    fn moves_since(&self, t: Instant) -> Vec<Call> {
        self.provider
            .calls()
            .into_iter()
            .filter(|c| c.op == "move" && c.at >= t)
            .collect()
    }

    async fn switchover(&self, to: &str) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Switchover {
                group: GroupName("web".into()),
                to: TargetId(to.into()),
                reply,
            })
            .await
            .map_err(|e| e.to_string())?;
        match rx.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Initial assignment to the best target; a failure moves every float at once, one call
/// each, at the instant the threshold is crossed, stamped with our epoch.
#[tokio::test(start_paused = true)]
async fn failover_moves_every_float_at_the_threshold() {
    let w = World::start().await;
    assert!(w.on("i-a"), "initial owner: the highest priority");
    w.settle(ms(5_000)).await;
    let crossed = Instant::now();
    w.health("a", false);
    w.settle(ms(50)).await;
    assert!(w.on("i-b"));
    let moves = w.moves_since(crossed);
    assert_eq!(moves.len(), 2, "one call per float: {moves:?}");
    for m in &moves {
        assert!(
            m.at - crossed < ms(5),
            "moved {:?} after the crossing",
            m.at - crossed
        );
        assert_eq!(m.stamp.epoch, Epoch(1));
        assert_eq!(m.stamp.reason, Reason::Failover);
        assert_eq!(m.to.as_deref(), Some("i-b"));
    }
    // Converged: nothing more happens, however long we wait.
    let after = Instant::now();
    w.settle(ms(60_000)).await;
    assert!(
        w.moves_since(after).is_empty(),
        "a converged world makes no moves"
    );
    w.shutdown().await;
}

/// Failback waits for `failback_delay` after the preferred target came back, and for
/// `min_hold` after the float's last move; the later of the two wins.
#[tokio::test(start_paused = true)]
async fn failback_waits_for_its_delay_and_the_hold() {
    let w = World::start().await;
    w.settle(ms(5_000)).await;
    let t = Instant::now();
    w.health("a", false);
    w.settle(ms(500)).await;
    assert!(w.on("i-b"));
    w.health("a", true); // back at t + 500 ms: failback due at t + 3.5 s
    w.settle(ms(2_900)).await; // t + 3.4 s
    assert!(w.on("i-b"), "not before failback_delay");
    w.settle(ms(200)).await; // t + 3.6 s
    assert!(w.on("i-a"), "failed back");
    let back: Vec<Call> = w
        .moves_since(t + ms(1))
        .into_iter()
        .filter(|c| c.to.as_deref() == Some("i-a"))
        .collect();
    assert_eq!(back.len(), 2);
    for c in &back {
        let at = c.at - t;
        assert!(at >= ms(3_500) && at < ms(3_510), "failback at +{at:?}");
        assert_eq!(c.stamp.reason, Reason::Failback);
    }
    w.shutdown().await;
}

/// A float that just moved is not moved again automatically before `min_hold`, even when
/// its new holder fails at once: flapping is damped.
#[tokio::test(start_paused = true)]
async fn min_hold_damps_flapping() {
    let w = World::start().await;
    w.settle(ms(5_000)).await;
    let t = Instant::now();
    w.health("a", false);
    w.settle(ms(100)).await;
    assert!(w.on("i-b"));
    w.health("a", true);
    w.health("b", false); // b fails 100 ms after taking over
    w.settle(ms(1_800)).await; // t + 1.9 s
    assert!(w.on("i-b"), "held for min_hold (2 s)");
    w.settle(ms(200)).await; // t + 2.1 s
    assert!(w.on("i-a"));
    for c in w.moves_since(t + ms(200)) {
        let at = c.at - t;
        assert!(at >= ms(2_000) && at < ms(2_010), "moved at +{at:?}");
    }
    w.shutdown().await;
}

/// A person's switchover is done at once (not damped), sticks against failback for as
/// long as its target is healthy, and ends when that target fails.
#[tokio::test(start_paused = true)]
async fn switchover_sticks_until_its_target_fails() {
    let w = World::start().await;
    w.settle(ms(5_000)).await;
    w.switchover("b").await.expect("switchover");
    assert!(w.on("i-b"));
    let stamp = w.provider.stamp(F1).expect("stamped");
    assert_eq!(stamp.reason, Reason::Switchover);
    // a (preferred, preempt on) stays healthy: no failback, however long.
    let t = Instant::now();
    w.settle(ms(120_000)).await;
    assert!(w.on("i-b"), "pinned by the switchover");
    let moves = w.moves_since(t + ms(1));
    assert!(moves.is_empty(), "{moves:#?}");
    // Switchover to an unhealthy target is refused and changes nothing.
    w.health("a", false);
    w.settle(ms(10)).await;
    let err = w.switchover("a").await.expect_err("refused");
    assert!(err.contains("not healthy"), "{err}");
    w.health("a", true);
    w.settle(ms(10)).await;
    // b fails: automatic failover to a.
    w.health("b", false);
    w.settle(ms(50)).await;
    assert!(w.on("i-a"));
    w.shutdown().await;
}

/// A float stamped by a newer leader is never moved by us; the other float still is.
#[tokio::test(start_paused = true)]
async fn a_float_stamped_by_a_newer_epoch_is_not_moved() {
    let w = World::start().await;
    w.settle(ms(5_000)).await;
    w.provider.set(
        F2,
        Some("i-a"),
        Some(MoveStamp {
            epoch: Epoch(5),
            reason: Reason::Failover,
            target: TargetId("a".into()),
        }),
    );
    w.settle(ms(3_000)).await; // a drift check sees the newer stamp
    let t = Instant::now();
    w.health("a", false);
    w.settle(ms(10_000)).await;
    assert_eq!(w.provider.holder(F1).as_deref(), Some("i-b"));
    assert_eq!(
        w.provider.holder(F2).as_deref(),
        Some("i-a"),
        "fenced: left to the newer leader"
    );
    assert!(w.moves_since(t).iter().all(|c| c.float == F1));
    w.shutdown().await;
}

/// Leadership lost (or its fence deadline passed): no mutating call reaches the
/// provider, whatever the health does.
#[tokio::test(start_paused = true)]
async fn no_mutation_without_leadership() {
    let w = World::start().await;
    w.settle(ms(5_000)).await;
    w.leader.send_replace(leader_state(1, false));
    let t = Instant::now();
    w.health("a", false);
    w.settle(ms(30_000)).await;
    assert!(w.on("i-a"));
    assert!(w.moves_since(t).is_empty());

    // Leader again, but the fence deadline passes in 1 s: a move decided after that is
    // refused by the fence, before the provider.
    let mut s = leader_state(1, true);
    s.fence_deadline = Some(Instant::now() + ms(1_000));
    w.health("a", true);
    w.settle(ms(10)).await;
    w.leader.send_replace(s);
    w.settle(ms(2_000)).await;
    let t = Instant::now();
    w.health("a", false);
    w.settle(ms(10_000)).await;
    assert!(w.moves_since(t).is_empty(), "refused by the fence");
    w.shutdown().await;
}

/// Shutdown order: the lease is released only after the engine's in-flight calls have
/// finished, so a successor never overlaps them.
#[tokio::test(start_paused = true)]
async fn the_lease_is_released_only_after_mutations_stopped() {
    let spec = Arc::new(config::from_yaml(CONFIG).expect("config"));
    let provider = Arc::new(MemProvider::new(&[F1, F2]));
    let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
    let store = MemLease::new();
    let timing = LeaseTiming {
        lease: ms(4_000),
        renew_deadline: ms(2_500),
        retry: ms(500),
    };
    let (elector, leadership) = Elector::new(Box::new(CasLease::new(
        store.for_replica("me"),
        "me".into(),
        timing,
    )));
    let stop = CancellationToken::new();
    let engine_stop = CancellationToken::new();
    let (_cmd, cmd_rx) = mpsc::channel(1);
    let engine = Engine::new(
        spec,
        provider.clone(),
        board.clone(),
        leadership,
        Arc::new(Metrics::new()),
        Arc::new(StatusStore::default()),
        cmd_rx,
    );
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let es = engine_stop.clone();
    tokio::spawn(async move {
        engine.run(es).await;
        let _ = done_tx.send(());
    });
    let elector_task = elector.spawn(stop.clone(), async move {
        let _ = done_rx.await;
    });
    let key = |t: &str| TargetKey {
        group: GroupName("web".into()),
        target: TargetId(t.into()),
    };
    board.record(&key("a"), 0, Outcome::Ok, Instant::now());
    board.record(&key("b"), 0, Outcome::Ok, Instant::now());
    tokio::time::sleep(ms(8_000)).await;
    assert_eq!(provider.holder(F1).as_deref(), Some("i-a"));

    // A slow failover is in flight when shutdown begins.
    provider.set_latency(ms(1_000));
    board.record(&key("a"), 0, Outcome::Fail("test".into()), Instant::now());
    tokio::time::sleep(ms(100)).await;
    stop.cancel();
    engine_stop.cancel();
    let _ = elector_task.await;
    let last_call = provider.calls().iter().map(|c| c.at).max().expect("calls");
    let released = store
        .writes()
        .iter()
        .filter(|w| w.record.released)
        .map(|w| w.at)
        .max()
        .expect("the lease was released");
    assert!(
        released >= last_call,
        "released at {:?}, last provider call landed at {:?}",
        released,
        last_call
    );
}

/// After a drift revert the group still fails back: the reverted-to owner is forgotten
/// once every float is back (it used to be held while it was up, and then a failback
/// never came). A person moves one float while `b` owns the group; the drift check puts
/// it back on `b`; when `a` is healthy again, both floats return to `a` after
/// `failback_delay`.
#[tokio::test(start_paused = true)]
async fn a_drift_revert_does_not_block_the_next_failback() {
    let w = World::start().await;
    w.settle(ms(5_000)).await;
    w.health("a", false);
    w.settle(ms(500)).await;
    assert!(w.on("i-b"), "failed over to b");
    w.settle(ms(3_000)).await;
    // Someone moves one float to a (down) behind the controller's back.
    w.provider.set(F1, Some("i-a"), None);
    w.settle(ms(2_500)).await; // a drift check finds it and reverts it
    assert!(w.on("i-b"), "drift reverted to b");
    let back = Instant::now();
    w.health("a", true);
    w.settle(ms(3_500)).await; // failback_delay 3 s (min_hold 2 s is long past)
    assert!(
        w.on("i-a"),
        "no failback after a drift revert: moves {:?}",
        w.moves_since(back)
    );
    w.shutdown().await;
}
