//! The quorum lease on real S3 conditional writes (LocalStack): three buckets in three
//! regions, three replicas whose lease calls pass through a fault proxy. One region black-
//! holed: the leader keeps leading. Two: nobody leads, and status names the unreachable
//! members. Restored: one leader again. The leader stops: another takes over at once.

use floatover::leader::s3::S3Store;
use floatover::leader::{
    Elector, LeaderState, Leadership, LeaseStore, LeaseTiming, QuorumLease, QuorumMember,
};
use floatover_devkit::LocalStack;
use floatover_devkit::eventually::eventually;
use floatover_devkit::faultproxy::{FaultProxy, Mode, Ops, Rule};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TIMING: LeaseTiming = LeaseTiming {
    lease: Duration::from_millis(4_000),
    renew_deadline: Duration::from_millis(2_500),
    retry: Duration::from_millis(500),
};
const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "us-east-2"];

async fn s3(endpoint: &str, region: &str, timeout: Duration) -> aws_sdk_s3::Client {
    floatover_devkit::s3_client(endpoint, region, timeout).await
}

/// One bucket per region, created directly on LocalStack.
async fn buckets(endpoint: &str) -> Vec<String> {
    let mut names = vec![];
    for r in REGIONS {
        let name = format!(
            "quorum-{r}-{}-{}",
            std::process::id(),
            rand::random::<u16>()
        );
        floatover_devkit::create_bucket(endpoint, r, &name)
            .await
            .expect("bucket");
        names.push(name);
    }
    names
}

async fn replica(
    proxy: &str,
    buckets: &[String],
    id: &str,
    stop: &CancellationToken,
) -> Leadership {
    let mut members = vec![];
    for (r, b) in REGIONS.iter().zip(buckets) {
        members.push(QuorumMember {
            name: (*r).to_string(),
            store: Arc::new(S3Store::new(
                s3(proxy, r, Duration::from_millis(500)).await,
                b.clone(),
                "floatover/leader.json".into(),
            )) as Arc<dyn LeaseStore>,
        });
    }
    let lease = QuorumLease::new(members, id.into(), TIMING, Some(format!("http://{id}")));
    let (e, l) = Elector::new(Box::new(lease));
    e.spawn(stop.clone(), async {});
    l
}

fn leaders(ls: &[Leadership]) -> Vec<LeaderState> {
    ls.iter()
        .map(Leadership::state)
        .filter(|s| s.is_leader)
        .collect()
}

fn blackhole(regions: &[&str]) -> Vec<Rule> {
    regions
        .iter()
        .map(|r| Rule {
            ops: Ops::All,
            region: Some((*r).to_string()),
            mode: Mode::Blackhole,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_of_buckets_in_three_regions_elects_one_leader() {
    let ls = LocalStack::start_or_reuse().expect("localstack");
    let bs = buckets(&ls.endpoint).await;
    let proxy = FaultProxy::start(&ls.endpoint).await.expect("proxy");
    let stops: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
    let mut rs = vec![];
    for (i, st) in stops.iter().enumerate() {
        rs.push(replica(&proxy.url, &bs, &format!("q{i}"), st).await);
    }
    let took = eventually(Duration::from_secs(20), async || leaders(&rs).len() == 1).await;
    assert!(took.is_some(), "one leader");
    // The leader takes the members it did not win in its first round on its next ones.
    let all_held = eventually(Duration::from_secs(5), async || {
        leaders(&rs)
            .first()
            .is_some_and(|s| s.members.iter().all(|m| m.up && m.held))
    })
    .await;
    assert!(all_held.is_some(), "{:?}", leaders(&rs));
    let first = leaders(&rs).remove(0);
    let idx = rs
        .iter()
        .position(|l| l.state().identity == first.identity)
        .expect("leader index");

    // us-east-1 black-holed: the leader keeps its two other members and its epoch.
    proxy.set(blackhole(&["us-east-1"]));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let now = leaders(&rs);
    assert_eq!(now.len(), 1, "still one leader");
    assert_eq!(
        (now[0].identity.as_str(), now[0].epoch),
        (first.identity.as_str(), first.epoch)
    );
    let east = &now[0].members[0];
    assert!(!east.up && east.error.is_some(), "{east:?}");

    // Two regions black-holed: nobody leads; status names both.
    proxy.set(blackhole(&["us-east-1", "us-west-2"]));
    let gone = eventually(Duration::from_secs(10), async || leaders(&rs).is_empty()).await;
    assert!(gone.is_some(), "a minority never leads");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(leaders(&rs).is_empty(), "nobody leads on one member");
    let st = rs[idx].state();
    let err = st.store.last_error.clone().unwrap_or_default();
    assert!(
        err.contains("us-east-1: ") && err.contains("us-west-2: ") && err.contains("2 needed"),
        "{err}"
    );

    // Restored: one leader again.
    proxy.pass();
    let back = eventually(Duration::from_secs(20), async || leaders(&rs).len() == 1).await;
    assert!(back.is_some(), "a leader again");
    let again = leaders(&rs).remove(0);
    assert!(again.epoch >= first.epoch);

    // The leader stops and releases: another replica leads within a few retries.
    let li = rs
        .iter()
        .position(|l| l.state().identity == again.identity)
        .expect("leader index");
    stops[li].cancel();
    let next = eventually(Duration::from_secs(10), async || {
        leaders(&rs).iter().any(|s| s.identity != again.identity)
    })
    .await;
    let next = next.expect("handed over");
    assert!(
        next < Duration::from_secs(3),
        "release hands over at once: {next:?}"
    );
    let successor = leaders(&rs).remove(0);
    assert!(successor.epoch > again.epoch, "a new term");
    for s in &stops {
        s.cancel();
    }
}
