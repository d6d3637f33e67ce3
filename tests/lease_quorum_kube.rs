//! The mixed quorum the Helm chart offers: this cluster's Kubernetes Lease (over the
//! in-process fake API server) plus two S3-like members (in memory), paused time. One
//! leader over the three; the cluster's API server lost: the leader keeps its two other
//! members; the leader and the API server lost together: a standby takes over on the two
//! buckets alone, with a higher epoch.

use floatover::leader::{
    LeaderState, LeaseBackend, LeaseStore, LeaseTiming, QuorumLease, QuorumMember, RoundCtx,
};
use floatover::model::Epoch;
use floatover_devkit::kubeapi::FakeKube;
use floatover_devkit::leaseworld::LeaseWorld;
use floatover_devkit::memlease::MemLease;
use std::sync::Arc;
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

struct Replica {
    lease: QuorumLease,
    next: Instant,
    state: Option<LeaderState>,
    running: bool,
}

fn replica(kube: &FakeKube, s3: &[MemLease], who: &str) -> Replica {
    let mut members = vec![QuorumMember {
        name: "cluster".into(),
        store: Arc::new(LeaseWorld::store(kube, who)) as Arc<dyn LeaseStore>,
    }];
    for (i, m) in s3.iter().enumerate() {
        members.push(QuorumMember {
            name: format!("bucket{i}"),
            store: Arc::new(m.for_replica(who)),
        });
    }
    Replica {
        lease: QuorumLease::new(members, who.into(), TIMING, None),
        next: Instant::now(),
        state: None,
        running: true,
    }
}

fn leads(r: &Replica) -> bool {
    r.state
        .as_ref()
        .is_some_and(|s| s.is_leader && s.fence_deadline.is_some_and(|d| Instant::now() < d))
}

/// Run every running replica's rounds in time order until `until`; fails if two lead
/// at one instant.
async fn run_until(rs: &mut [Replica], until: Instant) {
    while let Some(i) = (0..rs.len())
        .filter(|i| rs[*i].running)
        .min_by_key(|i| rs[*i].next)
    {
        if rs[i].next > until {
            break;
        }
        tokio::time::sleep_until(rs[i].next).await;
        let round = rs[i].lease.round(GO).await;
        let now = Instant::now();
        rs[i].state = Some(round.state);
        rs[i].next = round.next.max(now + Duration::from_millis(1));
        let n = rs.iter().filter(|r| r.running && leads(r)).count();
        assert!(n <= 1, "two leaders at once");
    }
    tokio::time::sleep_until(until).await;
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test(start_paused = true)]
async fn this_clusters_lease_and_two_buckets_survive_the_cluster() {
    let kube = FakeKube::new();
    let s3 = [MemLease::new(), MemLease::new()];
    let mut rs = vec![replica(&kube, &s3, "a"), replica(&kube, &s3, "b")];
    run_until(&mut rs, Instant::now() + secs(10.0)).await;
    let leader = (0..2).find(|i| leads(&rs[*i])).expect("a leader");
    let epoch = rs[leader].state.as_ref().map(|s| s.epoch).expect("state");
    let on_kube = LeaseWorld::record(&kube).expect("the Lease is a member");
    assert_eq!(Epoch(on_kube.epoch), epoch);

    // The cluster's API server goes away for everyone: the leader keeps the buckets.
    for who in ["a", "b"] {
        kube.cut_off(who, true);
    }
    run_until(&mut rs, Instant::now() + secs(15.0)).await;
    assert!(leads(&rs[leader]), "two buckets are a majority");
    assert_eq!(rs[leader].state.as_ref().map(|s| s.epoch), Some(epoch));
    let cluster = &rs[leader].state.as_ref().expect("state").members[0];
    assert!(!cluster.up && cluster.error.is_some(), "{cluster:?}");

    // The leader dies with the cluster: the standby takes over on the buckets alone.
    rs[leader].running = false;
    let killed = Instant::now();
    let other = 1 - leader;
    let mut took = None;
    while killed.elapsed() < secs(20.0) {
        run_until(&mut rs, Instant::now() + secs(0.1)).await;
        if leads(&rs[other]) {
            took = Some(killed.elapsed());
            break;
        }
    }
    let took = took.expect("the standby takes over");
    assert!(took <= TIMING.lease + TIMING.retry * 2, "took {took:?}");
    assert!(rs[other].state.as_ref().map(|s| s.epoch) > Some(epoch));
}
