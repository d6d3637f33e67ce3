//! (d) Three replicas on the S3 lease (LocalStack), real processes.

mod common;

use common::Env;
use floatover_devkit::replica::Scenario;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_millis(4_000);
const RETRY: Duration = Duration::from_millis(500);

/// No two epochs act at once: events of different epochs never overlap in time, epochs
/// only grow, and each epoch belongs to one replica.
fn check_audit(events: &[serde_json::Value]) {
    let mut evs: Vec<(u64, u64, u64, String)> = events
        .iter()
        .map(|e| {
            (
                e["started_unix_ms"].as_u64().expect("started"),
                e["finished_unix_ms"].as_u64().expect("finished"),
                e["epoch"].as_u64().expect("epoch"),
                e["replica"].as_str().expect("replica").to_string(),
            )
        })
        .collect();
    evs.sort();
    let mut owner: HashMap<u64, String> = HashMap::new();
    for (_, _, epoch, replica) in &evs {
        let o = owner.entry(*epoch).or_insert_with(|| replica.clone());
        assert_eq!(o, replica, "epoch {epoch} acted from two replicas");
    }
    for w in evs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.2 != b.2 {
            assert!(a.2 < b.2, "epoch went backwards: {a:?} then {b:?}");
            assert!(
                a.1 <= b.0,
                "epochs {} and {} acted at the same time: {a:?} {b:?}",
                a.2,
                b.2
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_mutates_and_a_killed_leader_is_replaced_in_time() {
    let mut env = Env::new(
        2,
        Scenario {
            failback_delay_ms: 1_000,
            ..Default::default()
        },
        "d",
    )
    .await;
    for _ in 0..3 {
        env.spawn_replica();
    }
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "initial assignment"
    );
    let (leader, _) = env
        .wait_leader(Duration::from_secs(10))
        .await
        .expect("one leader");

    // A failover: only the leader acts.
    env.health[0].stop().await;
    assert!(env.wait_eip_on(1, Duration::from_secs(10)).await.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, r) in env.replicas.iter().enumerate() {
        let n = r.audit_events().len();
        if i == leader {
            assert!(
                n >= 2,
                "leader must have recorded the initial assignment and the failover"
            );
        } else {
            assert_eq!(n, 0, "standby {} mutated", r.name);
        }
    }

    // kill -9 the leader: another replica leads within lease + retry + 1 s.
    let old_epoch = env.replicas[leader].epoch().await.expect("epoch");
    let killed = Instant::now();
    env.replicas[leader].kill9();
    let mut new_leader = None;
    while killed.elapsed() < LEASE + RETRY + Duration::from_secs(3) {
        if let Some(l) = env.leader().await
            && l != leader
        {
            new_leader = Some((l, killed.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (nl, took) = new_leader.unwrap_or_else(|| {
        env.dump_logs();
        panic!("no new leader")
    });
    eprintln!("takeover after kill -9: {took:?}");
    assert!(
        took <= LEASE + RETRY + Duration::from_secs(1),
        "takeover took {took:?}"
    );
    let new_epoch = env.replicas[nl].epoch().await.expect("epoch");
    assert!(
        new_epoch > old_epoch,
        "epoch must grow: {old_epoch} -> {new_epoch}"
    );

    // The new leader acts: failback once the primary is healthy again.
    env.health[0].restart().await.expect("restart");
    assert!(
        env.wait_eip_on(0, Duration::from_secs(15)).await.is_some(),
        "failback by the new leader"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<serde_json::Value> = env.replicas.iter().flat_map(|r| r.audit_events()).collect();
    assert!(
        all.iter().any(|e| e["epoch"].as_u64() == Some(new_epoch)),
        "new epoch acted"
    );
    check_audit(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_for_an_immediate_takeover() {
    let mut env = Env::new(2, Scenario::default(), "term").await;
    env.spawn_replica();
    env.spawn_replica();
    let (leader, _) = env
        .wait_leader(Duration::from_secs(15))
        .await
        .expect("leader");
    let t = Instant::now();
    let st = env.replicas[leader].terminate().expect("exit status");
    assert!(st.success(), "clean exit on SIGTERM: {st:?}");
    let other = 1 - leader;
    let mut took = None;
    while t.elapsed() < Duration::from_secs(6) {
        if env.replicas[other].leads().await {
            took = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let took = took.expect("standby took over");
    eprintln!("takeover after SIGTERM: {took:?}");
    assert!(
        took < LEASE,
        "released lease must be taken over before it would expire: {took:?}"
    );
    assert!(
        !env.replicas[leader].log_events("lease released").is_empty(),
        "leader logged the release"
    );
}
