//! S3 lease semantics in-process against LocalStack: one winner, epochs grow, release
//! hands over at once, and a leader whose renewals are blocked stops mutating before
//! anybody can take its lease.

use floatover::leader::s3::{LeaseTiming, S3Lease};
use floatover::leader::{Elector, Fence, Leadership};
use floatover_devkit::LocalStack;
use floatover_devkit::eventually::eventually_every;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TIMING: LeaseTiming = LeaseTiming {
    lease: Duration::from_millis(4_000),
    renew_deadline: Duration::from_millis(2_500),
    retry: Duration::from_millis(500),
};
const CALL_BUDGET: Duration = Duration::from_millis(1_500);

async fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    floatover_devkit::s3_client(endpoint, "us-east-1", Duration::from_millis(500)).await
}

async fn bucket(endpoint: &str) -> String {
    let name = format!("lease-{}-{}", std::process::id(), rand::random::<u32>());
    s3(endpoint)
        .await
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("bucket");
    name
}

fn elect(
    client: aws_sdk_s3::Client,
    bucket: &str,
    id: &str,
    stop: &CancellationToken,
) -> Leadership {
    let backend = S3Lease::s3(
        client,
        bucket.into(),
        "leader.json".into(),
        id.into(),
        TIMING,
    );
    let (e, l) = Elector::new(Box::new(backend));
    e.spawn(stop.clone(), async {});
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_winner_and_release_hands_over_at_once() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let b = bucket(&ls.endpoint).await;
    let stops: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
    let mut ls_ = vec![];
    for (i, st) in stops.iter().enumerate() {
        ls_.push(elect(s3(&ls.endpoint).await, &b, &format!("c{i}"), st));
    }
    assert!(
        eventually_every(
            Duration::from_secs(5),
            Duration::from_millis(10),
            async || ls_.iter().filter(|l| l.state().is_leader).count() == 1
        )
        .await
        .is_some()
    );
    // Stays exactly one over many renewals.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ls_.iter().filter(|l| l.state().is_leader).count(), 1);
    }
    let leader = ls_
        .iter()
        .position(|l| l.state().is_leader)
        .expect("leader");
    let epoch = ls_[leader].state().epoch;
    stops[leader].cancel();
    let took = eventually_every(
        Duration::from_secs(4),
        Duration::from_millis(10),
        async || {
            ls_.iter()
                .enumerate()
                .any(|(i, l)| i != leader && l.state().is_leader)
        },
    )
    .await
    .expect("takeover after release");
    eprintln!("takeover after release: {took:?}");
    assert!(
        took < Duration::from_millis(1_500),
        "release must hand over within ~one retry period: {took:?}"
    );
    let new = ls_
        .iter()
        .find(|l| l.state().is_leader)
        .expect("new leader")
        .state();
    assert_eq!(new.epoch.0, epoch.0 + 1);
    for s in stops {
        s.cancel();
    }
}

/// A TCP proxy that can be switched to swallow traffic (connections accepted, nothing
/// forwarded), the nastiest network failure for a lease holder.
async fn stallable_proxy(upstream: String, blocked: Arc<AtomicBool>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else {
                return;
            };
            let (up, blocked) = (upstream.clone(), blocked.clone());
            tokio::spawn(async move {
                if blocked.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let Ok(mut out) = TcpStream::connect(&up).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = out.split();
                let pump = async {
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {},
                        _ = tokio::io::copy(&mut ro, &mut wi) => {},
                    }
                };
                let watch = async {
                    while !blocked.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                };
                tokio::select! { _ = pump => {}, _ = watch => {
                    // Blocked: stop forwarding and hold the connection open, silent.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                } }
                let _ = wi.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_leader_stops_mutating_before_its_lease_can_pass() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let b = bucket(&ls.endpoint).await;
    let blocked = Arc::new(AtomicBool::new(false));
    let upstream = ls.endpoint.trim_start_matches("http://").to_string();
    let proxy = stallable_proxy(upstream, blocked.clone()).await;
    let stop = CancellationToken::new();
    let a = elect(s3(&proxy).await, &b, "a-behind-proxy", &stop);
    assert!(
        eventually_every(
            Duration::from_secs(5),
            Duration::from_millis(10),
            async || a.state().is_leader
        )
        .await
        .is_some(),
        "a leads first"
    );
    let b_ = elect(s3(&ls.endpoint).await, &b, "b-direct", &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let epoch_a = a.state().epoch;
    assert!(a.permit(epoch_a, CALL_BUDGET).is_ok());

    blocked.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let mut fenced_at = None;
    let mut taken_at = None;
    while t0.elapsed() < Duration::from_secs(10) && taken_at.is_none() {
        if fenced_at.is_none() && a.permit(epoch_a, CALL_BUDGET).is_err() {
            fenced_at = Some(t0.elapsed());
        }
        if b_.state().is_leader {
            taken_at = Some(t0.elapsed());
            // At the moment b leads, a must already refuse.
            assert!(
                a.permit(epoch_a, CALL_BUDGET).is_err(),
                "a still permitted after b took over"
            );
            assert!(
                a.permit(epoch_a, Duration::ZERO).is_err(),
                "a still believes it leads after b took over"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (fenced, taken) = (
        fenced_at.expect("a fenced itself"),
        taken_at.expect("b took over"),
    );
    eprintln!("renewals blocked: a fenced after {fenced:?}, b took over after {taken:?}");
    assert!(
        fenced + CALL_BUDGET <= taken,
        "a's last permitted call could still be in flight when b took over ({fenced:?} vs {taken:?})"
    );
    assert!(b_.state().epoch > epoch_a);
    stop.cancel();
}

/// Two processes misconfigured with the same identity must not both lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_identity_twice_never_gives_two_leaders() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let b = bucket(&ls.endpoint).await;
    let stop = CancellationToken::new();
    let first = elect(s3(&ls.endpoint).await, &b, "same", &stop);
    assert!(
        eventually_every(
            Duration::from_secs(5),
            Duration::from_millis(10),
            async || first.state().is_leader
        )
        .await
        .is_some()
    );
    let second = elect(s3(&ls.endpoint).await, &b, "same", &stop);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !(first.state().is_leader && second.state().is_leader),
            "two leaders with one identity"
        );
    }
    assert!(
        first.state().is_leader,
        "the renewing holder keeps its lease"
    );
    stop.cancel();
}
