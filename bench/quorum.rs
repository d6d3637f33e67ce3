//! The quorum lease on LocalStack: three buckets in three regions, each reached through
//! its own fault proxy with a different added latency (a near, a middle and a far region).
//!
//! - Renewal: one replica leads; each renewal round is timed. Target: p99 no more than the
//!   second-fastest member's own p99 round trip (a conditional PUT through its proxy,
//!   timed alone) + 20 ms, i.e. the far member never slows a renewal.
//! - Takeover after a region loss: three replicas; the leader's region is black-holed and
//!   the leader itself stops (its elector aborted, no release: a dead process). Time until
//!   another replica leads. Target: lease + 1 s.

use crate::stats::{Series, ms};
use floatover::leader::s3::S3Store;
use floatover::leader::{
    Elector, Leadership, LeaseBackend, LeaseStore, LeaseTiming, Precondition, Put, QuorumLease,
    QuorumMember, RoundCtx,
};
use floatover::model::Epoch;
use floatover_devkit::faultproxy::{FaultProxy, Mode, Ops, Rule};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TIMING: LeaseTiming = LeaseTiming {
    lease: Duration::from_millis(4_000),
    renew_deadline: Duration::from_millis(2_500),
    retry: Duration::from_millis(500),
};
const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "us-east-2"];
/// Added one-way latency per member's proxy (near, middle, far).
const LATENCY_MS: [u64; 3] = [5, 30, 150];

pub struct QuorumBench {
    pub renewal: Series,
    pub members: Vec<Series>,
    pub takeover: Series,
}
async fn s3(endpoint: &str, region: &str, timeout: Duration) -> aws_sdk_s3::Client {
    floatover_devkit::s3_client(endpoint, region, timeout).await
}

async fn buckets(endpoint: &str) -> Result<Vec<String>, String> {
    let mut names = vec![];
    for r in REGIONS {
        let name = format!("qbench-{r}-{}", rand::random::<u32>());
        floatover_devkit::create_bucket(endpoint, r, &name)
            .await
            .map_err(|e| e.to_string())?;
        names.push(name);
    }
    Ok(names)
}

/// One store per member, each through `proxies[i]`.
async fn stores(proxies: &[FaultProxy], buckets: &[String], key: &str) -> Vec<Arc<dyn LeaseStore>> {
    let mut out: Vec<Arc<dyn LeaseStore>> = vec![];
    for ((r, b), p) in REGIONS.iter().zip(buckets).zip(proxies) {
        out.push(Arc::new(S3Store::new(
            s3(&p.url, r, Duration::from_millis(500)).await,
            b.clone(),
            key.into(),
        )));
    }
    out
}

fn members(stores: &[Arc<dyn LeaseStore>]) -> Vec<QuorumMember> {
    REGIONS
        .iter()
        .zip(stores)
        .map(|(r, s)| QuorumMember {
            name: (*r).to_string(),
            store: s.clone(),
        })
        .collect()
}

const GO: RoundCtx = RoundCtx {
    may_acquire: true,
    epoch_floor: Epoch(0),
};

pub async fn run(endpoint: &str, renewals: usize, takeovers: usize) -> Result<QuorumBench, String> {
    let bs = buckets(endpoint).await?;
    let mut proxies = vec![];
    for lat in LATENCY_MS {
        let p = FaultProxy::start(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        p.set(vec![Rule {
            ops: Ops::All,
            region: None,
            mode: Mode::Latency(Duration::from_millis(lat)),
        }]);
        proxies.push(p);
    }

    // Each member alone: a conditional PUT's round trip through its proxy.
    let probe = stores(&proxies, &bs, "bench/alone.json").await;
    let mut member_series = vec![];
    for (i, st) in probe.iter().enumerate() {
        let mut samples = vec![];
        let mut version: Option<String> = None;
        for n in 0..renewals.min(100) {
            let rec = floatover::leader::LeaseRecord {
                holder: "bench".into(),
                epoch: 1,
                lease_ms: 4_000,
                renewals: n as u64,
                released: false,
                api: None,
                writer: None,
            };
            let pre = match &version {
                Some(v) => Precondition::Matches(v),
                None => Precondition::Absent,
            };
            let t = Instant::now();
            match st.put(&rec, pre).await {
                Ok(Put::Done(v)) => version = Some(v),
                other => return Err(format!("member {} PUT: {other:?}", REGIONS[i])),
            }
            samples.push(ms(t.elapsed()));
        }
        member_series.push(Series {
            name: format!("lease member {} alone (+{} ms)", REGIONS[i], LATENCY_MS[i]),
            samples_ms: samples,
            p99_target_ms: None,
            note: format!(
                "one conditional PutObject to the {} bucket through a proxy that adds {} ms",
                REGIONS[i], LATENCY_MS[i]
            ),
        });
    }
    let mut alone_p99: Vec<f64> = member_series
        .iter()
        .map(|s| crate::stats::pct(&s.sorted(), 99.0))
        .collect();
    alone_p99.sort_by(|a, b| a.total_cmp(b));
    let second = alone_p99.get(1).copied().unwrap_or(f64::NAN);

    // Renewal rounds of one leader.
    let mut lease = QuorumLease::new(
        members(&stores(&proxies, &bs, "bench/renew.json").await),
        "bench-leader".into(),
        TIMING,
        None,
    );
    let t0 = Instant::now();
    loop {
        let r = lease.round(GO).await;
        if r.state.is_leader && r.state.members.iter().all(|m| m.held) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!("no leader on the quorum: {:?}", r.state.members));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut renew = vec![];
    for _ in 0..renewals {
        let t = Instant::now();
        let r = lease.round(GO).await;
        renew.push(ms(t.elapsed()));
        if !r.state.is_leader {
            return Err("lost the lease while renewing".into());
        }
        // As the elector: one round per retry period would take too long here; a short
        // pause lets the far member's call finish now and then.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = lease.release().await;

    // Takeover after the leader's region is lost.
    let mut takeover = vec![];
    for trial in 0..takeovers {
        for p in &proxies {
            p.set(vec![Rule {
                ops: Ops::All,
                region: None,
                mode: Mode::Pass,
            }]);
        }
        let key = format!("bench/takeover-{trial}.json");
        let mut electors: Vec<(CancellationToken, Leadership, tokio::task::JoinHandle<()>)> =
            vec![];
        for i in 0..3 {
            let lease = QuorumLease::new(
                members(&stores(&proxies, &bs, &key).await),
                format!("t{trial}-r{i}"),
                TIMING,
                None,
            );
            let (e, l) = Elector::new(Box::new(lease));
            let stop = CancellationToken::new();
            let h = e.spawn(stop.clone(), async {});
            electors.push((stop, l, h));
        }
        let t = Instant::now();
        let leader = loop {
            if let Some(i) = electors.iter().position(|(_, l, _)| l.state().is_leader) {
                break i;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err("no first leader".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // The leader's region goes dark: its process dies (no release), and its region's
        // bucket answers nobody.
        electors[leader].2.abort();
        let lost_region = REGIONS[leader % 3];
        for p in &proxies {
            p.set(vec![Rule {
                ops: Ops::All,
                region: Some(lost_region.into()),
                mode: Mode::Blackhole,
            }]);
        }
        let lost = Instant::now();
        loop {
            if electors
                .iter()
                .enumerate()
                .any(|(i, (_, l, _))| i != leader && l.state().is_leader)
            {
                break;
            }
            if lost.elapsed() > Duration::from_secs(30) {
                return Err("no takeover within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        takeover.push(ms(lost.elapsed()));
        for (stop, _, h) in electors {
            stop.cancel();
            h.abort();
        }
    }
    Ok(QuorumBench {
        renewal: Series {
            name: "quorum renewal round (3 members: +5, +30, +150 ms)".into(),
            samples_ms: renew,
            p99_target_ms: Some(second + 20.0),
            note: format!(
                "one renewal round of the quorum lease (conditional PUTs to all three members at once, back when two answered); target: the second-fastest member's own p99 ({second:.1} ms) + 20 ms"
            ),
        },
        members: member_series,
        takeover: Series {
            name: "takeover after the leader's region is lost".into(),
            samples_ms: takeover,
            p99_target_ms: Some(ms(TIMING.lease) + 1_000.0),
            note: "three replicas on the quorum; the leader's process dies and its region's bucket is black-holed; until another replica leads. Target: lease (4 s) + 1 s".into(),
        },
    })
}
