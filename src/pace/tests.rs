//! The buckets and their queue on paused time.
use super::*;
use crate::liveness::Liveness;

fn turn(class: Class, rank: u64) -> Turn {
    Turn {
        priority: Priority { class, rank },
        heart: None,
    }
}

#[tokio::test(start_paused = true)]
async fn burst_then_refill_rate() {
    let b = Arc::new(Bucket::new("AssociateAddress", "r", EC2_MUTATE));
    let t0 = Instant::now();
    let mut jobs = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let b = b.clone();
        jobs.spawn(async move {
            b.acquire(&Turn::default()).await;
            Instant::now()
        });
    }
    let mut done: Vec<Duration> = Vec::new();
    while let Some(r) = jobs.join_next().await {
        done.push(r.expect("join").saturating_duration_since(t0));
    }
    done.sort();
    assert_eq!(done[49], Duration::ZERO, "the burst goes at once");
    // The 60th call waits for 10 refills at 5 a second: exactly 2 s.
    assert_eq!(done[59], Duration::from_secs(2));
    assert_eq!(done[50], Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn failovers_first_then_rank_then_arrival() {
    let b = Arc::new(Bucket::new(
        "AssociateAddress",
        "r",
        Limit {
            burst: 1,
            per_second: 1,
        },
    ));
    b.acquire(&Turn::default()).await; // empty the bucket
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut jobs = tokio::task::JoinSet::new();
    let asks = [
        ("revert", Class::Revert, 0),
        ("failback", Class::Failback, 0),
        ("failover-low", Class::Failover, 9),
        ("failover-high", Class::Failover, 1),
        ("stamp", Class::Stamp, 0),
    ];
    for (name, class, rank) in asks {
        let (b, order) = (b.clone(), order.clone());
        jobs.spawn(async move {
            b.acquire(&turn(class, rank)).await;
            order.lock().expect("lock").push(name);
        });
        tokio::task::yield_now().await;
    }
    let st = b.status();
    assert_eq!((st.pending, st.failovers), (5, 2));
    assert_eq!(st.drain_s, 5.0);
    while jobs.join_next().await.is_some() {}
    assert_eq!(
        *order.lock().expect("lock"),
        vec![
            "failover-high",
            "failover-low",
            "failback",
            "revert",
            "stamp"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_leaves_the_queue() {
    let b = Arc::new(Bucket::new(
        "X",
        "r",
        Limit {
            burst: 1,
            per_second: 1,
        },
    ));
    b.acquire(&Turn::default()).await;
    let first = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(&turn(Class::Failover, 0)).await })
    };
    tokio::task::yield_now().await;
    let second = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(&turn(Class::Failback, 0)).await })
    };
    tokio::task::yield_now().await;
    first.abort();
    let waited = second.await.expect("second gets the token");
    assert_eq!(waited, Duration::from_secs(1));
    assert_eq!(b.status().pending, 0);
}

/// Waiting in a moving queue is progress: the heart beats. The watchdog would call a
/// 20 s wait a stall without it.
#[tokio::test(start_paused = true)]
async fn a_waiter_beats_while_the_queue_moves() {
    let live = Liveness::new();
    let heart = live.register("engine (group g)", Duration::from_millis(2_500));
    let b = Arc::new(Bucket::new(
        "X",
        "r",
        Limit {
            burst: 1,
            per_second: 5,
        },
    ));
    for _ in 0..100 {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(&turn(Class::Failover, 0)).await });
    }
    tokio::task::yield_now().await;
    let mine = Turn {
        priority: Priority {
            class: Class::Failback,
            rank: 0,
        },
        heart: Some(heart),
    };
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.acquire(&mine).await })
    };
    // Auto-advanced paused time: every timer fires on the dot.
    let checker = tokio::spawn(async move {
        for _ in 0..79 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert_eq!(
                live.check(),
                Ok(()),
                "waiting in a moving queue is progress"
            );
        }
    });
    let waited = waiter.await.expect("granted");
    checker.await.expect("never a stall");
    assert_eq!(waited, Duration::from_secs(20));
}

#[test]
fn limits_by_category_and_override() {
    let mut l = Limits::default();
    assert_eq!(l.of("AssociateAddress"), EC2_MUTATE);
    assert_eq!(l.of("DescribeAddresses"), EC2_READ);
    l.apis.insert(
        "CreateTags".into(),
        Limit {
            burst: 100,
            per_second: 10,
        },
    );
    assert_eq!(l.of("CreateTags").per_second, 10);
    assert!(Priority::rank_of(200, 5) < Priority::rank_of(100, 0));
    assert!(Priority::rank_of(100, 0) < Priority::rank_of(100, 1));
}
