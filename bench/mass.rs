//! Mass failover on LocalStack (`bench/run --mass`): N groups, each a primary and a standby
//! instance and one Elastic IP; every primary's health endpoint turns to 503 at the same
//! instant (a zone outage). `floatover run` (release) processes on an S3 lease, one or
//! three. Measured: time until every EIP is on its standby against the floor EC2's own
//! buckets allow (1 s detection + (N - 50) / 5 s for AssociateAddress), leader changes and
//! fenced calls during the failover, shared reads per drift-check tick (idle) and during
//! the failover, the leader's peak RSS. Writes `bench/MASS.md`.

use floatover_devkit::massworld::Mass;
use floatover_devkit::replica::{Replica, Stderr, floatover_bin, free_port, metric_sum};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

/// One scenario's numbers.
pub struct MassResult {
    pub groups: usize,
    pub replicas: usize,
    pub took: Duration,
    pub floor: Duration,
    /// Leaderships over the whole scenario, from the replicas' logs (1: no change of leader).
    pub leaders: usize,
    /// Groups moved before the outage (a target flapping at start): the floor assumes
    /// every group moves after it, so any makes the scenario void.
    pub early: usize,
    pub fenced: f64,
    pub idle_reads_per_tick: f64,
    pub failover_reads: f64,
    pub max_queued: u32,
    pub rss_mib: f64,
}

impl MassResult {
    pub fn ratio(&self) -> f64 {
        self.took.as_secs_f64() / self.floor.as_secs_f64()
    }

    pub fn passed(&self) -> bool {
        self.ratio() <= 1.05 && self.leaders == 1 && self.fenced == 0.0 && self.early == 0
    }

    pub fn row(&self) -> String {
        format!(
            "| {} EIPs, {} replica{} | {:.2} s | {:.2} s | {:.3}x | {} | {} | {} | {:.1} | {:.0} | {} | {:.0} MiB | {} |",
            self.groups,
            self.replicas,
            if self.replicas == 1 { "" } else { "s" },
            self.took.as_secs_f64(),
            self.floor.as_secs_f64(),
            self.ratio(),
            self.early,
            self.leaders,
            self.fenced,
            self.idle_reads_per_tick,
            self.failover_reads,
            self.max_queued,
            self.rss_mib,
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

pub const TABLE_HEADER: &str = "| scenario | all moved | floor | ratio (<= 1.05) | moved before the outage | leaders | fenced calls | reads per tick (idle) | reads during failover | max queued | leader RSS | |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

fn peak_rss_mib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn sum_metric(replicas: &[Replica], name: &str) -> f64 {
    let mut total = 0.0;
    for r in replicas {
        if let Some(text) = r.metrics().await {
            total += metric_sum(&text, name, &|_| true);
        }
    }
    total
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The moves to a standby in a replica's log: (finished at, unix ms; answered ok). A
/// move whose answer timed out may still have landed (LocalStack applies it late), so
/// the failover's end is the last move's end, answered or not (an upper bound).
fn moves(log: &std::path::Path) -> Vec<(u64, bool)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"message\":\"audit\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["to"] == "standby")
        .filter_map(|v| Some((v["finished_unix_ms"].as_u64()?, v["ok"] == true)))
        .collect()
}

/// Run one scenario: `groups` EIPs, `replicas` processes, in `region` of LocalStack.
pub async fn run(
    endpoint: &str,
    region: &str,
    groups: usize,
    replicas: usize,
) -> Result<MassResult, String> {
    let tag = format!("mass-{groups}-{replicas}-{}", std::process::id());
    eprintln!("  seeding {groups} groups in {region} ...");
    let mut world = Mass::seed(endpoint, region, groups, &tag)
        .await
        .map_err(|e| e.to_string())?;
    // Three replicas on this one machine probe 1,000 targets each, and the health server
    // answering them runs here too: at 500 ms that is 6,000 probes a second on two cores,
    // and late answers flapped targets before the outage. In production each replica has
    // its own host; here replicas beyond the first probe every second (the floor follows).
    // The S3 lease of several replicas lives on a LocalStack of its own (see
    // `Mass::lease_on`).
    let _lease_stack = if replicas > 1 {
        world.probe_interval = Duration::from_secs(1);
        eprintln!("  starting a second LocalStack for the S3 lease ...");
        let ls = floatover_devkit::LocalStack::start().map_err(|e| e.to_string())?;
        world
            .lease_on(&ls.endpoint)
            .await
            .map_err(|e| e.to_string())?;
        Some(ls)
    } else {
        None
    };
    // Replicas' logs are kept (target/bench-logs/<scenario>) so that a failed run can be
    // read afterwards: which replica stepped down, and why.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-logs")
        .join(format!("mass-{groups}-{replicas}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("  replicas' logs in {}", dir.display());
    let mut procs = Vec::new();
    for i in 0..replicas {
        let port = free_port();
        let name = format!("r{i}");
        // Logs at the production default (info): debug lines for 1,000 targets' probes
        // cost the saturated machine more CPU than the failover itself.
        let r = Replica::spawn_with(
            &floatover_bin(),
            &dir,
            &name,
            &world.replica_config(&name, port),
            port,
            &[("FLOATOVER_LOG", "info,floatover::engine::reads=debug")],
            Stderr::LogFile,
        )
        .map_err(|e| e.to_string())?;
        procs.push(r);
    }
    // One leader, every group observed on its primary.
    let ready_by = Instant::now() + Duration::from_secs(120);
    let leader = loop {
        if Instant::now() > ready_by {
            return Err("no leader with every group observed within 120 s".into());
        }
        let mut found = None;
        for (i, r) in procs.iter().enumerate() {
            if let Some(s) = r.status_body().await
                && s.leader.is_leader
                && s.groups.len() == groups
                && s.groups
                    .iter()
                    .all(|g| g.owner.as_ref().is_some_and(|o| o.0 == "primary"))
            {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Idle: shared reads per drift-check tick (5 s) over 15 s.
    let idle0 = sum_metric(&procs, "floatover_observe_reads_total").await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let idle = sum_metric(&procs, "floatover_observe_reads_total").await - idle0;
    let reads0 = sum_metric(&procs, "floatover_observe_reads_total").await;
    let fenced0 = sum_metric(&procs, "floatover_fenced_total").await;

    eprintln!("  outage: every primary answers 503 ...");
    let t0 = Instant::now();
    let t0_unix_ms = unix_ms();
    world.outage();
    // The bench's own polling competes with the replicas for the emulator and the two
    // cores (asking EC2 four times a second was most of LocalStack's DescribeAddresses
    // load): EC2 is asked every 2 s whether every EIP is on its standby, the replicas'
    // queues every second. When they all are, the time is read from the audit: the end of
    // the last successful move (AssociateAddress answered), to the millisecond.
    let mut max_queued = 0;
    let mut all_on_standby = false;
    let mut last_status = t0;
    while t0.elapsed() < Duration::from_secs(600) {
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            for r in &procs {
                if let Some(s) = r.status_body().await
                    && s.leader.is_leader
                    && let Some(q) = s.queues.iter().find(|q| q.api == "AssociateAddress")
                {
                    max_queued = max_queued.max(q.pending);
                }
            }
        }
        match world.on_standby().await {
            Ok(n) if n == groups => {
                all_on_standby = true;
                break;
            }
            Ok(_) => {}
            Err(e) => eprintln!("  (bench) reading EC2 failed, trying again: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if !all_on_standby {
        return Err("not every EIP moved within 600 s".into());
    }
    let all: Vec<(u64, bool)> = procs.iter().flat_map(|r| moves(&r.log)).collect();
    let early = all.iter().filter(|(t, ok)| *ok && *t < t0_unix_ms).count();
    let last_move = all
        .iter()
        .filter(|(t, _)| *t >= t0_unix_ms)
        .map(|(t, _)| *t)
        .max()
        .ok_or("every EIP is on its standby but no audit line says so")?;
    let took = Duration::from_millis(last_move.saturating_sub(t0_unix_ms));
    let leaders = procs
        .iter()
        .map(|r| {
            std::fs::read_to_string(&r.log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"became leader\""))
                .count()
        })
        .sum::<usize>();
    let failover_reads = sum_metric(&procs, "floatover_observe_reads_total").await - reads0;
    let fenced = sum_metric(&procs, "floatover_fenced_total").await - fenced0;
    let rss_mib = peak_rss_mib(procs[leader].pid());
    for r in &mut procs {
        r.terminate();
    }
    Ok(MassResult {
        groups,
        replicas,
        took,
        floor: world.floor(),
        early,
        leaders,
        fenced,
        idle_reads_per_tick: idle / 3.0,
        failover_reads,
        max_queued,
        rss_mib,
    })
}

/// Every scenario, as a section of `bench/MASS.md`.
pub fn report(results: &[Result<MassResult, String>], machine: &str) -> String {
    let mut md = format!(
        "# Mass failover\n\nMachine: {machine}. Command: `bench/run --mass`.\n\nLocalStack, `floatover run` (release) processes; several replicas share an S3 lease on a second LocalStack (on AWS, S3 does not slow down because EC2 is busy; one emulator process serving both queued the lease's writes behind a burst of 50 AssociateAddress calls); N groups each with a primary, a standby and one Elastic IP; probes every 500 ms with one replica and every second with three (three replicas on one 2-core machine probing 1,000 targets each at 500 ms, with the health server on the same cores, flapped targets before the outage), fall 2; every primary's health endpoint turns to 503 at the same instant. The floor is what EC2's own buckets allow: detection (2 probe intervals) + (N - 50) / 5 s (AssociateAddress: burst 50, 5 a second, each API in its own bucket). Reads are the shared reads (one per region and tick for every group); a tick is the 5 s drift check. Each replica's log is kept in `target/bench-logs/`.\n\n{TABLE_HEADER}\n"
    );
    for r in results {
        match r {
            Ok(r) => {
                let _ = writeln!(md, "{}", r.row());
            }
            Err(e) => {
                let _ = writeln!(md, "| failed: {e} |||||||||||");
            }
        }
    }
    md
}

/// The DNS scenario's numbers.
pub struct DnsMassResult {
    pub records: usize,
    pub zones: usize,
    pub took: Duration,
    /// Route 53 change batches applied during the reweight.
    pub batches: f64,
    /// Records the provider read back from Route 53 with the primary at weight 0.
    pub verified: usize,
}

impl DnsMassResult {
    pub fn row(&self) -> String {
        format!(
            "| {} weighted records over {} zones, 1 replica | {:.2} s | {:.0} change batches ({:.1} records a batch) | {}/{} read back from Route 53 | {} |",
            self.records,
            self.zones,
            self.took.as_secs_f64(),
            self.batches,
            self.records as f64 / self.batches.max(1.0),
            self.verified,
            self.records,
            if self.verified == self.records {
                "PASS"
            } else {
                "FAIL"
            }
        )
    }
}

/// `records` active-active weighted record sets (a primary and a standby member each) over
/// `zones` hosted zones; every primary fails at once, so every record's primary goes to 0.
/// The controller in process (real probes, the real Route 53 provider at Route 53's own
/// five requests a second).
pub async fn run_dns(
    endpoint: &str,
    records: usize,
    zones: usize,
) -> Result<DnsMassResult, String> {
    use floatover::provider::FloatProvider;
    use floatover_devkit::dns;
    use floatover_devkit::health::FleetHealth;
    let r53 = dns::client(endpoint).await;
    let pid = std::process::id();
    let mut zone_ids = Vec::new();
    for z in 0..zones {
        zone_ids.push(
            dns::zone(&r53, &format!("mass{z}-{pid}.example."))
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let health = FleetHealth::default();
    let mut y = format!(
        "leader: {{ backend: single, identity: dnsmass }}\naws: {{ region: us-east-1, endpoint_url: \"{endpoint}\", dns_member_writes: upsert, dns_per_second: 5 }}\n\
         probe_defaults: {{ interval: 500ms, timeout: 400ms, rise: 1, fall: 2 }}\ndrift_check: 5s\nresync_interval: 30s\ngroups:\n"
    );
    let (url, _server) = health.start().await.map_err(|e| e.to_string())?;
    for i in 0..records {
        let z = i % zones;
        let name = format!("r{i}.mass{z}-{pid}.example.");
        let (p, s) = (
            format!("10.1.{}.{}", i / 250, i % 250 + 1),
            format!("10.2.{}.{}", i / 250, i % 250 + 1),
        );
        dns::weighted(
            &r53,
            &zone_ids[z],
            &name,
            &[("primary", &p, 100), ("standby", &s, 100)],
        )
        .await
        .map_err(|e| e.to_string())?;
        health.boot(&format!("p{i}"));
        health.boot(&format!("s{i}"));
        let _ = writeln!(
            y,
            "  - name: d{i}\n    policy: {{ mode: active-active }}\n    targets:\n      \
             - {{ name: primary, weight: 100, dns: {{ value: {p}, set_identifier: primary }}, probes: [{{ http: {{ url: \"{url}/health?instance=p{i}\" }} }}] }}\n      \
             - {{ name: standby, weight: 100, dns: {{ value: {s}, set_identifier: standby }}, probes: [{{ http: {{ url: \"{url}/health?instance=s{i}\" }} }}] }}\n    \
             floats:\n      - dns: {{ zone_id: {}, name: \"{name}\", type: A, ttl: 60 }}",
            zone_ids[z]
        );
    }
    let mut spec = floatover::config::from_yaml(&y).map_err(|e| e.to_string())?;
    spec.aws.credentials = Some(floatover_devkit::test_credentials());
    let spec = std::sync::Arc::new(spec);
    let metrics = std::sync::Arc::new(floatover::metrics::Metrics::new());
    let provider = std::sync::Arc::new(
        floatover::provider::aws::AwsProvider::connect(
            &spec.aws,
            &["us-east-1".to_string()],
            metrics.clone(),
        )
        .await,
    );
    let ctl = floatover_devkit::inprocess::start(spec.clone(), provider.clone(), metrics.clone())
        .await
        .map_err(|e| e.to_string())?;
    let primary_at = |s: &floatover::api::StatusBody, w: u32| {
        s.groups.len() == records
            && s.groups.iter().all(|g| {
                g.floats.first().is_some_and(|f| {
                    f.weights.get(&floatover::model::TargetId("primary".into())) == Some(&w)
                })
            })
    };
    let status = || async {
        reqwest::get(format!("{}/api/v1/status", ctl.api))
            .await
            .ok()?
            .json::<floatover::api::StatusBody>()
            .await
            .ok()
    };
    let ready_by = Instant::now() + Duration::from_secs(180);
    loop {
        if status()
            .await
            .is_some_and(|s| s.leader.is_leader && primary_at(&s, 100))
        {
            break;
        }
        if Instant::now() > ready_by {
            return Err("the controller did not observe every record within 180 s".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let batches0 = metric_sum(&metrics.encode(), "floatover_dns_batches_total", &|l| {
        l.contains("applied")
    });
    let t0 = Instant::now();
    for i in 0..records {
        health.unboot(&format!("p{i}"));
    }
    let took = loop {
        if status().await.is_some_and(|s| primary_at(&s, 0)) {
            break t0.elapsed();
        }
        if t0.elapsed() > Duration::from_secs(600) {
            return Err("not every record reweighted within 600 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let batches = metric_sum(&metrics.encode(), "floatover_dns_batches_total", &|l| {
        l.contains("applied")
    }) - batches0;
    // Read back from Route 53 itself: one listing per zone.
    let floats: Vec<floatover::provider::FloatRef> =
        spec.groups.iter().flat_map(|g| g.floats.clone()).collect();
    eprintln!("  all reweighted in {took:?}; reading back from Route 53 ...");
    let mut seen = Err("not read".to_string());
    for _ in 0..5 {
        seen = provider
            .observe(&floats, &[])
            .await
            .map_err(|e| e.to_string());
        if seen.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seen = seen?;
    let verified = seen
        .values()
        .filter(|o| {
            o.weights
                .iter()
                .any(|(a, w)| a.label() == "primary" && *w == 0)
                && o.weights
                    .iter()
                    .any(|(a, w)| a.label() == "standby" && *w > 0)
        })
        .count();
    let _ = ctl.stop.send(());
    let _ = ctl.run.await;
    Ok(DnsMassResult {
        records,
        zones,
        took,
        batches,
        verified,
    })
}
