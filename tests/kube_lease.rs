//! The Kubernetes Lease store over HTTP, against the fake API server (`devkit::kubeapi`, a
//! test double: no real API server can be installed on these machines) and, when
//! `KUBECONFIG` is set, against a real cluster (`#[ignore]`d; run with `--ignored`).
//!
//! The timing rules themselves are checked with paused time in tests/lease_protocol.rs on
//! this same store; here real clients make real requests: 409s decide races, three
//! replicas elect one leader, and a killed leader is replaced without overlap.

use floatover::leader::kube::{KubeLease, KubeStore};
use floatover::leader::{
    LeaderState, LeaseBackend, LeaseRecord, LeaseStore, LeaseTiming, Precondition, Put, RoundCtx,
};
use floatover::model::Epoch;
use floatover_devkit::kubeapi::FakeKube;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const TIMING: LeaseTiming = LeaseTiming {
    lease: Duration::from_millis(1_200),
    renew_deadline: Duration::from_millis(800),
    retry: Duration::from_millis(200),
};

const GO: RoundCtx = RoundCtx {
    may_acquire: true,
    epoch_floor: Epoch(0),
};

fn rec(holder: &str, epoch: u64) -> LeaseRecord {
    LeaseRecord {
        holder: holder.into(),
        epoch,
        lease_ms: 1_200,
        renewals: 0,
        released: false,
        api: None,
        writer: None,
    }
}

/// Two writers over HTTP: exactly one creates the Lease (the other gets 409
/// AlreadyExists), and a replace with a stale resourceVersion gets 409 Conflict; both
/// read as "lost the race", not as errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_are_decided_by_409s() {
    let api = FakeKube::new();
    let url = api.serve().await.expect("serve");
    let store = |_: &str| {
        KubeStore::new(
            FakeKube::http_client(&url).expect("client"),
            "ns1",
            "floatover",
        )
    };
    let (a, b) = (store("a"), store("b"));
    assert!(a.get().await.expect("get").is_none());
    let (rec_a, rec_b) = (rec("a", 1), rec("b", 1));
    let (ra, rb) = tokio::join!(
        a.put(&rec_a, Precondition::Absent),
        b.put(&rec_b, Precondition::Absent)
    );
    let (ra, rb) = (ra.expect("put a"), rb.expect("put b"));
    let winners = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Put::Done(_)))
        .count();
    assert_eq!(winners, 1, "{ra:?} {rb:?}");
    let (got, v1) = a.get().await.expect("get").expect("a lease");
    assert!(got.holder == "a" || got.holder == "b");
    let Put::Done(v2) = a
        .put(&rec("a", 2), Precondition::Matches(&v1))
        .await
        .expect("replace")
    else {
        panic!("the current version must be accepted");
    };
    assert_ne!(v1, v2, "every write gets a new resourceVersion");
    assert_eq!(
        b.put(&rec("b", 2), Precondition::Matches(&v1))
            .await
            .expect("replace"),
        Put::Conflict,
        "a stale resourceVersion loses"
    );
    // What kubectl shows: holder and epoch in the Lease's own fields.
    let lease = api.get("ns1", "floatover").expect("stored");
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    assert_eq!(lease["spec"]["leaseTransitions"], 2);
    assert_eq!(
        lease["metadata"]["annotations"]["floatover.io/lease-ms"],
        "1200"
    );
}

/// An unreachable or refusing API server is an error in the user's words:
/// `op in namespace ns: Reason: message (lease ns/name)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_read_as_op_namespace_reason_message() {
    let api = FakeKube::new();
    let url = api.for_replica("a").serve().await.expect("serve");
    api.cut_off("a", true);
    let a = KubeStore::new(FakeKube::http_client(&url).expect("client"), "prod", "fo");
    let e = a.get().await.expect_err("cut off").to_string();
    assert!(
        e.starts_with("GetLease in namespace prod: ServiceUnavailable: cut off by the test"),
        "{e}"
    );
    assert!(e.ends_with("(lease prod/fo)"), "{e}");
    // Nothing listens here any more: a transport error, still one readable line.
    let gone = KubeStore::new(
        FakeKube::http_client("http://127.0.0.1:9").expect("client"),
        "prod",
        "fo",
    );
    let e = gone.get().await.expect_err("refused").to_string();
    assert!(
        e.starts_with("GetLease in namespace prod: ConnectionError:"),
        "{e}"
    );
    assert!(!e.contains('{'), "no Debug dump: {e}");
}

/// A black-holed API server (requests never answered) costs a round at most the store's
/// timeout, and reads as an error naming the call: a lease round never hangs.
#[tokio::test(start_paused = true)]
async fn a_black_holed_api_server_is_bounded_by_the_store_timeout() {
    let api = FakeKube::new();
    api.freeze("a", true);
    let a = KubeStore::new(api.for_replica("a").client(), "default", "floatover")
        .with_timeout(Duration::from_millis(500));
    let t = Instant::now();
    let e = a.get().await.expect_err("black hole").to_string();
    assert_eq!(t.elapsed(), Duration::from_millis(500));
    assert!(
        e.starts_with("GetLease in namespace default: ConnectionError: no answer within 500 ms"),
        "{e}"
    );
    let e = a
        .put(&rec("a", 1), Precondition::Absent)
        .await
        .expect_err("black hole")
        .to_string();
    assert!(e.starts_with("CreateLease in namespace default"), "{e}");
    api.freeze("a", false);
    assert!(a.get().await.expect("answers again").is_none());
}

/// One replica's rounds, as it saw them.
type Log = Arc<Mutex<Vec<(Instant, LeaderState)>>>;

/// One replica's election loop; its latest state is shared with the test.
fn elect(url: &str, id: &'static str, seen: Log) -> tokio::task::JoinHandle<()> {
    let client = FakeKube::http_client(url).expect("client");
    let mut lease = KubeLease::kubernetes(client, "default", "floatover", id.into(), TIMING);
    tokio::spawn(async move {
        loop {
            let round = lease.round(GO).await;
            let now = Instant::now();
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((now, round.state.clone()));
            tokio::time::sleep_until(round.next.max(now + Duration::from_millis(1))).await;
        }
    })
}

/// Leadership intervals per replica: (identity, epoch, first round as leader, fence
/// deadline of its last round as leader).
fn terms(log: &[(Instant, LeaderState)]) -> Vec<(String, Epoch, Instant, Instant)> {
    let mut out: Vec<(String, Epoch, Instant, Instant)> = Vec::new();
    for (at, s) in log {
        if !s.is_leader {
            continue;
        }
        let until = s.fence_deadline.unwrap_or(*at);
        match out.iter_mut().find(|t| t.0 == s.identity && t.1 == s.epoch) {
            Some(t) => t.3 = t.3.max(until),
            None => out.push((s.identity.clone(), s.epoch, *at, until)),
        }
    }
    out
}

/// Three replicas over HTTP elect exactly one leader; the leader is killed (its task
/// aborted mid-term, like a SIGKILL); another takes over with the next epoch, and only
/// after the dead leader's fence closed: no two leaders' mutation windows overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_leader_and_a_killed_leader_is_replaced() {
    let api = FakeKube::new();
    let mut urls = Vec::new();
    for id in ["r0", "r1", "r2"] {
        urls.push(api.for_replica(id).serve().await.expect("serve"));
    }
    let logs: Vec<Log> = (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let ids = ["r0", "r1", "r2"];
    let mut tasks: Vec<_> = (0..3)
        .map(|i| elect(&urls[i], ids[i], logs[i].clone()))
        .collect();
    let leader_now = |logs: &[Log]| -> Vec<usize> {
        (0..3)
            .filter(|i| {
                logs[*i]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last()
                    .is_some_and(|(_, s)| s.is_leader)
            })
            .collect()
    };
    let t = Instant::now();
    let first = loop {
        let l = leader_now(&logs);
        if l.len() == 1 {
            break l[0];
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no leader: {l:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Stable: the same single leader over several renewals.
    tokio::time::sleep(TIMING.lease * 2).await;
    assert_eq!(leader_now(&logs), vec![first], "one stable leader");

    tasks[first].abort();
    let killed = Instant::now();
    let second = loop {
        let l: Vec<usize> = leader_now(&logs)
            .into_iter()
            .filter(|i| *i != first)
            .collect();
        if l.len() == 1 {
            break l[0];
        }
        assert!(l.len() < 2, "two leaders at once: {l:?}");
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "nobody took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(TIMING.lease).await;
    for t in &mut tasks {
        t.abort();
    }

    // Every term, from every replica's own log: epochs strictly grow from term to term,
    // and each term starts after the previous one's fence deadline.
    let mut all: Vec<_> = logs
        .iter()
        .flat_map(|l| terms(&l.lock().unwrap_or_else(|p| p.into_inner())))
        .collect();
    all.sort_by_key(|t| t.2);
    assert!(all.len() >= 2, "{all:?}");
    for w in all.windows(2) {
        assert!(w[1].1 > w[0].1, "epochs grow: {all:?}");
        assert!(w[1].2 >= w[0].3, "terms never overlap: {all:?}");
    }
    let new = all.last().expect("a term");
    assert_eq!(new.0, ids[second]);
    let lease = api.get("default", "floatover").expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], ids[second]);
    assert_eq!(lease["spec"]["leaseTransitions"], new.1.0);
}

/// Against a real cluster: set `KUBECONFIG` (and optionally `FLOATOVER_TEST_NAMESPACE`,
/// default `default`) and run `cargo test --test kube_lease -- --ignored`. Creates and
/// deletes a Lease named `floatover-test-<random>`.
#[tokio::test]
#[ignore = "needs a real cluster: KUBECONFIG"]
async fn real_cluster_conflicts_are_lost_races() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!("KUBECONFIG not set: nothing to test against");
        return;
    }
    let client = kube::Client::try_default().await.expect("kube client");
    let ns = std::env::var("FLOATOVER_TEST_NAMESPACE").unwrap_or_else(|_| "default".into());
    let name = format!("floatover-test-{:08x}", rand_suffix());
    let (a, b) = (
        KubeStore::new(client.clone(), &ns, &name),
        KubeStore::new(client.clone(), &ns, &name),
    );
    let Put::Done(v1) = a
        .put(&rec("a", 1), Precondition::Absent)
        .await
        .expect("create")
    else {
        panic!("create refused");
    };
    assert_eq!(
        b.put(&rec("b", 1), Precondition::Absent)
            .await
            .expect("create"),
        Put::Conflict
    );
    assert!(matches!(
        a.put(&rec("a", 2), Precondition::Matches(&v1))
            .await
            .expect("replace"),
        Put::Done(_)
    ));
    assert_eq!(
        b.put(&rec("b", 2), Precondition::Matches(&v1))
            .await
            .expect("replace"),
        Put::Conflict
    );
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, &ns);
    let _ = api.delete(&name, &Default::default()).await;
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id()
}
