//! DR with data, end to end: the real binary, EC2 / S3 / Route 53 on LocalStack and RDS /
//! ECS / EKS / Auto Scaling / CloudWatch on moto (the community LocalStack serves none of
//! them). Site west's warm plan promotes an RDS read replica, scales an ECS service, an
//! EKS node group and an Auto Scaling group, then shifts Route 53, behind an RPO gate on
//! the replica's CloudWatch `ReplicaLag`:
//! - lag within the RPO: the promotion runs through, the replica is standalone, the
//!   service runs its tasks, the record keeps the lag at cut-over;
//! - lag over the RPO: the automatic promotion waits at the gate, says why, promotes
//!   nothing, and goes on when a person approves;
//! - the leader frozen while PromoteReadReplica is on its way, the call landing, the
//!   leader killed: the next leader resumes the run and does not promote again.

mod common;

use common::bin;
use common::sites::*;
use floatover_devkit::Moto;
use floatover_devkit::dataworld::{self, DataWorld};
use floatover_devkit::faultproxy::{FaultProxy, Mode, Ops, Rule};
use floatover_devkit::replica::{Replica, free_port};
use std::time::Duration;

/// The sites config with west's data: the RPO gate on the replica's lag, the replica
/// promoted and the service scaled to 2 before the hook and the shift. RDS goes to
/// `rds_endpoint` (moto, or a proxy in front of it), the rest of the data side to moto.
fn data_config(
    s: &Sites,
    port: u16,
    west_url: &str,
    d: &DataWorld,
    moto: &str,
    rds_endpoint: &str,
    identity: &str,
) -> String {
    let steps = format!(
        "      - promote_replica: {{ instance: {}, budget: 30s }}\n      - scale_ecs: {{ cluster: {}, service: {}, desired: 2, budget: 30s }}\n      - scale_eks_nodegroup: {{ cluster: {}, nodegroup: {}, desired: 2, budget: 30s }}\n      - scale_up: {{ budget: 30s }}\n",
        d.replica, d.ecs_cluster, d.ecs_service, d.eks_cluster, d.nodegroup
    );
    config(s, port, west_url, &steps)
        .replace(
            "dns_member_writes: upsert }",
            &format!(
                "dns_member_writes: upsert, service_endpoints: {{ rds: \"{rds_endpoint}\", ecs: \"{moto}\", cloudwatch: \"{moto}\", eks: \"{moto}\", autoscaling: \"{moto}\" }} }}"
            ),
        )
        .replace(
            "    rto: 60s\n",
            &format!(
                "    rto: 60s\n    rpo: 30s\n    replication_lag: {{ rds: {{ instance: {} }} }}\n    auto_scaling: {{ name: {}, desired: 2 }}\n",
                d.replica, d.asg
            ),
        )
        .replace("site_policy: { grace: 1s }", "site_policy: { grace: 1s, preflight_interval: 1s }")
        .replace("identity: r0", &format!("identity: {identity}"))
}

async fn steady(r: &Replica) -> bool {
    eventually(Duration::from_secs(30), async || {
        site(&site_api(r).await, "east").active && leads(r).await
    })
    .await
    .is_some()
}

fn step_detail(v: &serde_json::Value, step: &str) -> String {
    json_of(v, "west")["run"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == step)
        .and_then(|s| s["detail"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn finished(r: &Replica, secs: u64) -> Option<serde_json::Value> {
    let mut last = serde_json::Value::Null;
    eventually(Duration::from_secs(secs), async || {
        last = site_api(r).await;
        json_of(&last, "west")["run"]["state"] != "running"
            && json_of(&last, "west")["run"]["state"].is_string()
    })
    .await
    .map(|_| last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_promotion_promotes_the_database_and_scales_the_service_before_the_shift() {
    let moto = Moto::start_or_reuse().expect("moto");
    let (mut s, west_url, _boot) = sites("data").await;
    let d = dataworld::seed(&moto.endpoint, &format!("{}", rand::random::<u32>()))
        .await
        .expect("seed moto");
    d.set_lag(2.0).await.expect("lag");
    let port = free_port();
    let cfg = data_config(
        &s,
        port,
        &west_url,
        &d,
        &moto.endpoint,
        &moto.endpoint,
        "r0",
    );
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    assert!(steady(&r).await, "not steady: {}", site_api(&r).await);
    // Pre-flight shows the lag against the RPO.
    let shown = eventually(Duration::from_secs(10), async || {
        let v = site_api(&r).await;
        json_of(&v, "west")["lag_ms"] == 2000 && json_of(&v, "west")["rpo_ms"] == 30_000
    })
    .await;
    assert!(
        shown.is_some(),
        "pre-flight lag: {}",
        json_of(&site_api(&r).await, "west")
    );

    s.east_hs.stop().await;
    let v = finished(&r, 60).await.expect("the promotion finished");
    let run = &json_of(&v, "west")["run"];
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        step_detail(&v, "rpo"),
        "replication lag 2.0 s within the RPO of 30s"
    );
    assert_eq!(
        step_detail(&v, "promote_replica"),
        format!("{} promoted and available", d.replica)
    );
    assert_eq!(step_detail(&v, "scale_ecs"), "app: 2 of 2 task(s) running");
    assert_eq!(
        step_detail(&v, "scale_eks_nodegroup"),
        "workers: ACTIVE, desired 2 (min 0, max 2)"
    );
    assert_eq!(
        step_detail(&v, "scale_up"),
        format!("{}: 2 of 2 in service", d.asg)
    );
    assert_eq!(d.nodegroup_desired().await, Some(2));
    assert_eq!(d.asg_in_service().await, 2);
    assert_eq!(run["lag_at_cutover_ms"], 2000, "the measured RPO");
    assert_eq!(d.replica_source().await, None, "standalone now");
    assert_eq!(d.ecs_desired().await, Some(2));
    let w = weights(&s).await;
    assert!(
        w.iter().any(|(id, weight)| id == "west" && *weight > 0),
        "{w:?}"
    );
    for st in run["steps"].as_array().into_iter().flatten() {
        eprintln!(
            "  {:<16} {:>6} ms  {}",
            st["name"].as_str().unwrap_or(""),
            st["finished_unix_ms"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(st["started_unix_ms"].as_u64().unwrap_or(0)),
            st["detail"].as_str().unwrap_or("")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_over_the_rpo_holds_the_automatic_promotion_for_a_person() {
    let moto = Moto::start_or_reuse().expect("moto");
    let (mut s, west_url, _boot) = sites("rpo").await;
    let d = dataworld::seed(&moto.endpoint, &format!("{}", rand::random::<u32>()))
        .await
        .expect("seed moto");
    d.set_lag(120.0).await.expect("lag");
    let port = free_port();
    let cfg = data_config(
        &s,
        port,
        &west_url,
        &d,
        &moto.endpoint,
        &moto.endpoint,
        "r0",
    );
    let r = Replica::spawn(&bin(), s.dir.path(), "r0", &cfg, port).expect("spawn");
    assert!(steady(&r).await, "not steady: {}", site_api(&r).await);

    // A person asking for a promotion is told first (a dry run changes nothing).
    let (code, out) = cli(&r, &["west", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "warning: replication lag 120.0 s (at the last pre-flight) is over the RPO of 30.0 s"
        ),
        "{out}"
    );

    s.east_hs.stop().await;
    let waiting = eventually(Duration::from_secs(30), async || {
        step_detail(&site_api(&r).await, "rpo").contains("waiting for approval")
    })
    .await;
    assert!(
        waiting.is_some(),
        "{}",
        json_of(&site_api(&r).await, "west")
    );
    assert_eq!(
        step_detail(&site_api(&r).await, "rpo"),
        "replication lag 120.0 s is over the RPO of 30s: waiting for approval (floatover promote west --approve); writes not yet replicated may be lost"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        d.replica_source().await.is_some(),
        "nothing promoted while it waits"
    );

    let (code, out) = cli(&r, &["west", "--approve"]);
    assert_eq!(code, Some(0), "{out}");
    let v = finished(&r, 60).await.expect("finished after the approval");
    assert_eq!(json_of(&v, "west")["run"]["state"], "succeeded");
    assert_eq!(
        step_detail(&v, "rpo"),
        "replication lag 120.0 s is over the RPO of 30s; approved by a person"
    );
    assert_eq!(d.replica_source().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_during_the_database_step_resumes_without_promoting_twice() {
    let moto = Moto::start_or_reuse().expect("moto");
    let (mut s, west_url, _boot) = sites("dbkill").await;
    let d = dataworld::seed(&moto.endpoint, &format!("{}", rand::random::<u32>()))
        .await
        .expect("seed moto");
    d.set_lag(1.0).await.expect("lag");
    // RDS through a proxy that holds PromoteReadReplica until released.
    let proxy = FaultProxy::start(&moto.endpoint).await.expect("proxy");
    proxy.set(vec![Rule {
        ops: Ops::Named(vec!["PromoteReadReplica".into()]),
        region: None,
        mode: Mode::Hold,
    }]);
    let (p0, p1) = (free_port(), free_port());
    let c0 = data_config(&s, p0, &west_url, &d, &moto.endpoint, &proxy.url, "r0");
    let c1 = data_config(&s, p1, &west_url, &d, &moto.endpoint, &proxy.url, "r1");
    let mut r0 = Replica::spawn(&bin(), s.dir.path(), "r0", &c0, p0).expect("spawn r0");
    assert!(steady(&r0).await, "not steady: {}", site_api(&r0).await);
    let r1 = Replica::spawn(&bin(), s.dir.path(), "r1", &c1, p1).expect("spawn r1");

    s.east_hs.stop().await;
    let sent = eventually(Duration::from_secs(30), async || {
        proxy.log().iter().any(|x| x.op == "PromoteReadReplica")
    })
    .await;
    assert!(
        sent.is_some(),
        "PromoteReadReplica never sent: {}",
        json_of(&site_api(&r0).await, "west")
    );
    // The leader freezes with its call on the way; the call then lands (its answer never
    // read), and the leader dies.
    r0.signal("STOP");
    proxy.release();
    let landed = eventually(Duration::from_secs(10), async || {
        proxy
            .log()
            .iter()
            .any(|x| x.op == "PromoteReadReplica" && x.answered_ms.is_some())
    })
    .await;
    assert!(landed.is_some(), "the held call never landed");
    r0.kill9();
    proxy.pass();

    let v = finished(&r1, 60)
        .await
        .expect("the next leader finished the run");
    let run = &json_of(&v, "west")["run"];
    assert_eq!(run["state"], "succeeded", "{run}");
    assert!(run["resumed"].as_u64().unwrap_or(0) >= 1, "{run}");
    assert_eq!(
        step_detail(&v, "promote_replica"),
        format!(
            "{} was already standalone and available (not promoted again)",
            d.replica
        )
    );
    let promotes: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|x| x.op == "PromoteReadReplica" && x.forwarded_ms.is_some())
        .collect();
    assert_eq!(promotes.len(), 1, "promoted once: {promotes:?}");
    assert_eq!(d.replica_source().await, None);
}
