//! Two-region DR site worlds, shared by the site tests and the bench: LocalStack seeded
//! in us-east-1 and us-west-2, the west standby stopped, a weighted record east=1 west=0,
//! a "boot" task that starts west's health server once its instance runs, and the
//! controller config for sites east (hot) and west (warm).

use crate::eventually::eventually;
use crate::health::HealthServer;
pub use crate::seed::instance_state;
use crate::seed::{self, World};
use crate::{LocalStack, dns};
use std::time::Duration;

/// A unique domain per scenario.
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}.example.test",
        std::process::id(),
        rand::random::<u32>()
    )
}

pub const TOKEN: &str = "site-token-0123456789";

pub struct Sites {
    pub ls: LocalStack,
    pub east: World,
    pub west: World,
    pub zone: String,
    pub name: String,
    pub r53: aws_sdk_route53::Client,
    pub east_hs: HealthServer,
    pub dir: tempfile::TempDir,
}

/// Two regions seeded; the west standby stopped; a weighted record east=1 west=0; a
/// "boot" task that starts the west health server once the instance runs.
pub async fn sites(tag: &str) -> (Sites, String, tokio::task::JoinHandle<()>) {
    let ls = LocalStack::start_or_reuse().expect("LocalStack");
    let east = seed::world(&ls.endpoint, "us-east-1", 1, &unique(tag))
        .await
        .expect("seed east");
    let west = seed::world(&ls.endpoint, "us-west-2", 1, &unique(tag))
        .await
        .expect("seed west");
    let wc = seed::clients(&ls.endpoint, "us-west-2").await;
    let wid = west.instances[0].instance_id.clone();
    wc.ec2
        .stop_instances()
        .instance_ids(&wid)
        .send()
        .await
        .expect("stop the west standby");
    assert!(
        eventually(Duration::from_secs(20), async || instance_state(
            &wc.ec2, &wid
        )
        .await
            == "stopped")
        .await
        .is_some(),
        "west standby never stopped"
    );
    let domain = unique(tag);
    let (r53, zone, name) = dns::weighted_zone(
        &ls.endpoint,
        &domain,
        &[("east", "10.0.0.1", 1), ("west", "10.1.0.1", 0)],
    )
    .await
    .expect("zone with records");
    let east_hs = HealthServer::start().await.expect("health");
    let mut west_hs = HealthServer::start().await.expect("health");
    west_hs.stop().await;
    let url = west_hs.url();
    let (ec2, id) = (wc.ec2.clone(), wid.clone());
    let boot = tokio::spawn(async move {
        loop {
            if instance_state(&ec2, &id).await == "running" {
                // The instance boots: its server answers a moment later.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = west_hs.restart().await;
                // Keep it alive for the rest of the test.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let s = Sites {
        ls,
        east,
        west,
        zone,
        name,
        r53,
        east_hs,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    (s, url, boot)
}

pub fn config(s: &Sites, port: u16, west_url: &str, extra_steps: &str) -> String {
    let ep = &s.ls.endpoint;
    let hook = s.dir.path().join("hook.json");
    format!(
        r#"api: {{ listen: "127.0.0.1:{port}", token: "{TOKEN}" }}
aws: {{ region: us-east-1, endpoint_url: "{ep}", dns_member_writes: upsert }}
leader: {{ backend: s3, identity: r0, s3: {{ bucket: {bucket}, key: leader.json, endpoint_url: "{ep}" }} }}
probe_defaults: {{ interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }}
resync_interval: 2s
groups:
  - name: www
    targets:
      - {{ name: east, dns: {{ value: 10.0.0.1, set_identifier: east }}, priority: 200, probes: [ {{ http: {{ url: "{east_url}" }} }} ] }}
      - {{ name: west, dns: {{ value: 10.1.0.1, set_identifier: west }}, priority: 100, probes: [ {{ http: {{ url: "{west_url}" }} }} ] }}
    floats: [ {{ dns: {{ zone_id: {zone}, name: "{name}", type: A, ttl: 60 }} }} ]
  - name: app-east
    targets: [ {{ name: e1, instance_id: {ei}, probes: [ {{ http: {{ url: "{east_url}" }} }} ] }} ]
    floats: [ {{ eip: {{ allocation_id: {ea} }} }} ]
  - name: app-west
    region: us-west-2
    targets: [ {{ name: w1, instance_id: {wi}, probes: [ {{ http: {{ url: "{west_url}" }} }} ] }} ]
    floats: [ {{ eip: {{ allocation_id: {wa} }} }} ]
site_policy: {{ grace: 1s }}
sites:
  - {{ name: east, tier: hot, primary: true, targets: [app-east/e1], traffic: [ {{ group: www, target: east }} ] }}
  - name: west
    region: us-west-2
    tier: warm
    rto: 60s
    instances: [{wi}]
    targets: [app-west/w1]
    traffic: [ {{ group: www, target: west }} ]
    steps:
      - start_instances: {{ budget: 20s }}
      - wait_healthy: {{ budget: 20s }}
{extra_steps}      - exec: {{ name: notify, command: [sh, -c, "cat > {hook}"], idempotent: true }}
      - shift: {{ budget: 10s }}
"#,
        bucket = s.east.bucket,
        east_url = s.east_hs.url(),
        zone = s.zone,
        name = s.name,
        ei = s.east.instances[0].instance_id,
        ea = s.east.allocation_id,
        wi = s.west.instances[0].instance_id,
        wa = s.west.allocation_id,
        hook = hook.display(),
    )
}

pub async fn weights(s: &Sites) -> Vec<(String, i64)> {
    dns::read(&s.r53, &s.zone, &s.name)
        .await
        .map(|(w, _)| w.into_iter().collect())
        .unwrap_or_default()
}
