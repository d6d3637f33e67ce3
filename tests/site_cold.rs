//! A cold DR site on LocalStack: nothing runs in us-west-2 until it is promoted. The
//! promotion launches two instances from a launch template (RunInstances with tags and a
//! client token), records them with their addresses, probes each of them through the
//! site's probe template, and only then moves the Route 53 weights. LocalStack records
//! instances but runs nothing, so their health endpoints are played by a test server that
//! answers for an instance once LocalStack reports it running (its "boot"), and logs
//! which instance id and address each probe carried; the site's own traffic target (its
//! front door) answers a second later, and the shift waits for it.

mod common;

use common::bin;
use common::dns::unique;
use common::sites::*;
use floatover::metrics::Metrics;
use floatover::provider::aws::sites::AwsSiteOps;
use floatover::provider::sites::SiteOps;
use floatover::site::record::RunState;
use floatover_devkit::health::{FleetHealth, HealthServer};
use floatover_devkit::replica::{Replica, free_port};
use floatover_devkit::{LocalStack, dns, seed};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_site_launches_from_its_template_probes_the_new_instances_then_shifts() {
    let ls = LocalStack::start_or_reuse().expect("LocalStack");
    let tag = unique("cold");
    let east = seed::world(&ls.endpoint, "us-east-1", 1, &tag)
        .await
        .expect("seed east");
    let wc = seed::clients(&ls.endpoint, "us-west-2").await;
    // The cold site's launch template: t3.small, unlike anything else in the test.
    let lt_name = format!("cold-{tag}");
    wc.ec2
        .create_launch_template()
        .launch_template_name(&lt_name)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12345678")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let (r53, zone, name) = dns::weighted_zone(
        &ls.endpoint,
        &tag,
        &[("east", "10.0.0.1", 1), ("west", "10.1.0.1", 0)],
    )
    .await
    .expect("zone with records");
    let east_hs = HealthServer::start().await.expect("health");
    let fleet = FleetHealth::default();
    let (fleet_url, _srv) = fleet.start().await.expect("fleet health");
    // Boot: an instance the site launched answers 300 ms after LocalStack says running.
    let (ec2, f, test_tag) = (wc.ec2.clone(), fleet.clone(), tag.clone());
    let boot = tokio::spawn(async move {
        loop {
            let out = ec2
                .describe_instances()
                .filters(
                    // This test's instances only (LocalStack may be shared by other runs).
                    aws_sdk_ec2::types::Filter::builder()
                        .name("tag:test")
                        .values(&test_tag)
                        .build(),
                )
                .send()
                .await;
            for i in out
                .iter()
                .flat_map(|o| o.reservations())
                .flat_map(|r| r.instances())
            {
                let running =
                    i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("running");
                if let (true, Some(id)) = (running, i.instance_id())
                    && !f.is_booted(id)
                {
                    let (f, id) = (f.clone(), id.to_string());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        f.boot(&id);
                        // The site's front door answers a second after its servers: the
                        // shift must wait for it too (a switchover refuses a target
                        // that is not up).
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        f.open_site();
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = format!(
        r#"api: {{ listen: "127.0.0.1:{port}", token: "{TOKEN}" }}
aws: {{ region: us-east-1, endpoint_url: "{ep}", dns_member_writes: upsert }}
leader: {{ backend: s3, identity: r0, s3: {{ bucket: {bucket}, key: leader.json, endpoint_url: "{ep}" }} }}
probe_defaults: {{ interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }}
groups:
  - name: www
    targets:
      - {{ name: east, dns: {{ value: 10.0.0.1, set_identifier: east }}, priority: 200, probes: [ {{ http: {{ url: "{east_url}" }} }} ] }}
      - {{ name: west, dns: {{ value: 10.1.0.1, set_identifier: west }}, priority: 100, probes: [ {{ http: {{ url: "{fleet_url}/site" }} }} ] }}
    floats: [ {{ dns: {{ zone_id: {zone}, name: "{name}", type: A, ttl: 60 }} }} ]
  - name: app-east
    targets: [ {{ name: e1, instance_id: {ei}, probes: [ {{ http: {{ url: "{east_url}" }} }} ] }} ]
    floats: [ {{ eip: {{ allocation_id: {ea} }} }} ]
site_policy: {{ automatic: false }}
sites:
  - {{ name: east, tier: hot, primary: true, targets: [app-east/e1], traffic: [ {{ group: www, target: east }} ] }}
  - name: west
    region: us-west-2
    tier: cold
    rto: 2m
    launch:
      launch_template: {lt_name}
      count: 2
      tags: {{ app: www, test: {tag} }}
      probe: {{ http: {{ url: "{fleet_url}/health?instance={{instance_id}}&ip={{private_ip}}" }} }}
    traffic: [ {{ group: www, target: west }} ]
    steps:
      - launch: {{ budget: 30s }}
      - wait_healthy: {{ budget: 30s }}
      - shift: {{ budget: 10s }}
"#,
        ep = ls.endpoint,
        bucket = east.bucket,
        east_url = east_hs.url(),
        ei = east.instances[0].instance_id,
        ea = east.allocation_id,
    );
    let r = Replica::spawn(&bin(), dir.path(), "r0", &cfg, port).expect("spawn");
    let dump = |r: &Replica| {
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        eprintln!("---- log, newest first ----\n{}", tail.join("\n"));
    };
    // Pre-flight finds the template; the site is ready before anything was launched.
    let ready = eventually(Duration::from_secs(30), async || {
        let v = site_api(&r).await;
        leads(&r).await && (site(&v, "west").ready == Some(true))
    })
    .await
    .is_some();
    if !ready {
        dump(&r);
    }
    assert!(ready, "{:#}", site_api(&r).await);

    let (code, out) = cli(&r, &["west"]);
    assert_eq!(code, Some(0), "{out}");
    let done = eventually(Duration::from_secs(90), async || {
        let v = site_api(&r).await;
        site(&v, "west")
            .run
            .is_some_and(|r| r.state != RunState::Running)
    })
    .await
    .is_some();
    let v = site_api(&r).await;
    if !done
        || !site(&v, "west")
            .run
            .is_some_and(|r| r.state == RunState::Succeeded)
    {
        dump(&r);
    }
    let run = json_of(&v, "west")["run"].clone();
    assert_eq!(run["state"], "succeeded", "{run:#}");
    boot.abort();

    // Two instances, from the template, tagged with the site and the run, addresses known.
    let launched = run["launched"].as_array().cloned().unwrap_or_default();
    assert_eq!(launched.len(), 2, "{run:#}");
    let ids: Vec<String> = launched
        .iter()
        .filter_map(|x| x["id"].as_str().map(str::to_string))
        .collect();
    let out = wc
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .expect("describe the launched instances");
    let insts: Vec<_> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(insts.len(), 2);
    let run_id = run["id"].as_str().unwrap_or("").to_string();
    for i in &insts {
        assert_eq!(
            i.instance_type().map(|t| t.as_str()),
            Some("t3.small"),
            "launched from the template"
        );
        let tag = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .map(str::to_string)
        };
        assert_eq!(tag("floatover:site").as_deref(), Some("west"));
        assert_eq!(tag("floatover:run").as_deref(), Some(run_id.as_str()));
        assert_eq!(tag("app").as_deref(), Some("www"));
        let rec = launched
            .iter()
            .find(|x| x["id"] == i.instance_id().unwrap_or(""))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            rec["private_ip"].as_str(),
            i.private_ip_address(),
            "{rec:#}"
        );
    }
    // Each instance was probed by its own id and address; healthy ones only after boot.
    let probed = fleet.probed();
    for x in &launched {
        let (id, ip) = (
            x["id"].as_str().unwrap_or(""),
            x["private_ip"].as_str().unwrap_or(""),
        );
        assert!(
            probed.iter().any(|(i, a)| i == id && a == ip),
            "{id} ({ip}) never probed: {probed:?}"
        );
    }
    let steps = run["steps"].as_array().cloned().unwrap_or_default();
    assert!(
        steps[0]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("2 instance(s) running: "),
        "{:#}",
        steps[0]
    );
    assert_eq!(steps[1]["detail"], "2 of 2 launched instance(s) healthy");
    assert_eq!(steps[2]["detail"], "www -> west");
    assert!(
        steps[2]["started_unix_ms"].as_u64() >= steps[1]["finished_unix_ms"].as_u64(),
        "shifted before the launched instances were healthy"
    );
    assert_eq!(
        weights_of(&r53, &zone, &name).await,
        [("east".to_string(), 0), ("west".to_string(), 100)]
    );
    // What a resuming leader does to find an interrupted launch: the tag lookup finds
    // exactly these instances.
    let mut spec = floatover::config::from_yaml(&cfg).expect("the test's config");
    spec.aws.credentials = Some(floatover_devkit::test_credentials());
    let ops = AwsSiteOps::new(&spec.aws, Arc::new(Metrics::new()));
    let mut found = ops
        .instances_tagged("us-west-2", "floatover:run", &run_id)
        .await
        .expect("tag lookup");
    found.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(found, want);
}

async fn weights_of(r53: &aws_sdk_route53::Client, zone: &str, name: &str) -> Vec<(String, i64)> {
    dns::read(r53, zone, name)
        .await
        .map(|(w, _)| w.into_iter().collect())
        .unwrap_or_default()
}
