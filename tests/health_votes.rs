//! Health votes on LocalStack with the real binary: two replicas on the S3 lease, each
//! probing the primary through its own health endpoint (its own network path). Only the
//! leader loses sight of the primary: with votes, no failover (the other replica still
//! sees it up); without votes, the same fault fails over (the control). The primary
//! really dies (both paths): failover within detection + one probe interval.

mod common;

use common::{Env, bin};
use floatover::probe::peers::HealthView;
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, Scenario, free_port, render_config};
use std::time::{Duration, Instant};

/// Two replicas; replica i probes the primary at `primary[i]` and the standby at the
/// shared standby server. With `votes`, each lists the other as its peer.
async fn two(votes: bool, tag: &str) -> (Env, Vec<HealthServer>) {
    let sc = Scenario::default();
    let mut env = Env::new(2, sc, tag).await;
    let primary = vec![
        HealthServer::start().await.expect("health"),
        HealthServer::start().await.expect("health"),
    ];
    let ports = [free_port(), free_port()];
    for i in 0..2 {
        let mut sc = env.scenario.clone();
        if votes {
            sc.extra_yaml = format!(
                "health_votes: {{ peers: [\"http://127.0.0.1:{}\"] }}\n",
                ports[1 - i]
            );
        }
        let urls = [primary[i].url(), env.health[1].url()];
        let name = format!("r{i}");
        let cfg = render_config(&env.world, &sc, &urls, ports[i], &name);
        env.replicas
            .push(Replica::spawn(&bin(), env.dir.path(), &name, &cfg, ports[i]).expect("spawn"));
        if i == 0 {
            // r0 first, so that it leads.
            assert!(env.wait_leader(Duration::from_secs(20)).await.is_some());
        }
    }
    assert!(
        env.wait_eip_on(0, Duration::from_secs(20)).await.is_some(),
        "EIP on the primary"
    );
    (env, primary)
}

async fn own_view(r: &Replica) -> Option<HealthView> {
    r.get("/api/v1/health/view")
        .await
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_losing_sight_does_not_fail_over_and_a_real_death_does() {
    let (env, mut primary) = two(true, "votes").await;
    let leader = env.leader().await.expect("one leader");
    // Both replicas' views count: wait until each has the other's.
    tokio::time::sleep(Duration::from_secs(1)).await;

    primary[leader].stop().await;
    // The leader sees the primary down on its own...
    let sees_down = env
        .until(Duration::from_secs(5), || async {
            own_view(&env.replicas[leader]).await.is_some_and(|v| {
                v.targets
                    .iter()
                    .any(|t| t.target == "primary" && t.health == floatover::model::Health::Down)
            })
        })
        .await;
    assert!(
        sees_down.is_some(),
        "the leader's own probes see the primary down"
    );
    // ... and keeps the EIP on it: the other vantage point sees it up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.eip_holder().await.as_deref(),
        Some(env.instance(0).as_str()),
        "no failover on one vantage point's broken path"
    );
    // Status says why: the voted health and the views behind it.
    let body = env.replicas[leader].status_body().await.expect("status");
    let primary_status = body.groups[0]
        .targets
        .iter()
        .find(|t| t.name.0 == "primary")
        .cloned()
        .expect("primary in status");
    assert_eq!(primary_status.health, floatover::model::Health::Up);
    assert_eq!(
        primary_status.votes,
        Some(floatover::status::VoteCount {
            views: 2,
            down: 1,
            up: 1
        })
    );
    let m = env.replicas[leader].metrics().await.unwrap_or_default();
    assert!(
        m.contains("floatover_vote_peer_up{peer=\"http://127.0.0.1:"),
        "{m}"
    );

    // The primary really dies: the other replica's path too.
    primary[1 - leader].stop().await;
    let died = Instant::now();
    let took = env.wait_eip_on(1, Duration::from_secs(15)).await;
    assert!(took.is_some(), "failover once every view sees it down");
    // Detection (fall 3 x 200 ms + timeouts) + one probe interval for the peer's view +
    // the move.
    let took = died.elapsed();
    eprintln!("primary died on both paths: EIP on the standby after {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_votes_the_leaders_view_alone_fails_over() {
    let (env, mut primary) = two(false, "novotes").await;
    let leader = env.leader().await.expect("one leader");
    primary[leader].stop().await;
    let took = env.wait_eip_on(1, Duration::from_secs(10)).await;
    assert!(
        took.is_some(),
        "one vantage point decides alone without votes"
    );
}
