//! Losing a region, as the region test and the bench play it: three replicas of the real
//! binary, one "in" each of us-east-1, us-west-2 and us-east-2, each behind its own fault
//! proxy; the quorum lease over one bucket per region; sites east (us-east-1, hot) and
//! west (us-west-2, warm). Losing a region black-holes every request signed for it
//! (except Route 53's control plane, signed for us-east-1: the path without it is the
//! `routing_control` float, which LocalStack cannot serve).

use crate::eventually::eventually;
use crate::faultproxy::{FaultProxy, Mode, Ops, Rule};
use crate::replica::{Replica, free_port};
use crate::seed;
use crate::sites::{Sites, config, sites, weights};
use std::path::Path;
use std::time::Duration;

pub const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "us-east-2"];

/// Fault rules that black-hole every request for `regions` (Route 53 aside).
pub fn lose(regions: &[&str]) -> Vec<Rule> {
    regions
        .iter()
        .map(|r| Rule {
            ops: Ops::AllBut("route53".into()),
            region: Some((*r).to_string()),
            mode: Mode::Blackhole,
        })
        .collect()
}

/// The world of the region scenario: the two sites, a replica per region (None once
/// killed) and each replica's proxy.
pub struct RegionWorld {
    pub s: Sites,
    pub proxies: Vec<FaultProxy>,
    pub rs: Vec<Option<Replica>>,
    pub boot: tokio::task::JoinHandle<()>,
}

impl RegionWorld {
    /// Seed the sites and a bucket per region, start the three replicas (us-east-1's
    /// first, leading) and wait until one leads holding all three members with east
    /// active. Err: what never happened.
    pub async fn start(tag: &str, bin: &Path) -> Result<RegionWorld, String> {
        let (s, west_url, boot) = sites(tag).await;
        let third = seed::world(
            &s.ls.endpoint,
            "us-east-2",
            1,
            &format!("{tag}-{}", rand::random::<u32>()),
        )
        .await
        .map_err(|e| format!("seed us-east-2: {e}"))?;
        let buckets = [
            s.east.bucket.clone(),
            s.west.bucket.clone(),
            third.bucket.clone(),
        ];
        let quorum = |name: &str| {
            let mut y = format!(
                "leader:\n  backend: quorum\n  identity: {name}\n  quorum:\n    members:\n"
            );
            for (r, b) in REGIONS.iter().zip(&buckets) {
                y.push_str(&format!(
                    "      - {{ name: {r}, s3: {{ bucket: {b}, key: leader.json, region: {r} }} }}\n"
                ));
            }
            y
        };
        let mut proxies = vec![];
        let mut rs: Vec<Option<Replica>> = vec![];
        for r in REGIONS {
            let proxy = FaultProxy::start(&s.ls.endpoint)
                .await
                .map_err(|e| format!("proxy: {e}"))?;
            let port = free_port();
            let name = format!("r-{r}");
            let cfg: String = config(&s, port, &west_url, "")
                .lines()
                .map(|l| {
                    if l.starts_with("leader:") {
                        quorum(&name)
                    } else {
                        format!("{}\n", l.replace(&s.ls.endpoint, &proxy.url))
                    }
                })
                .collect();
            let replica = Replica::spawn(bin, s.dir.path(), &name, &cfg, port)
                .map_err(|e| format!("spawn {name}: {e}"))?;
            // us-east-1's replica starts first and leads (it can hold all three
            // buckets alone), so that losing us-east-1 always loses the leader too: the
            // worst case, with a takeover.
            if rs.is_empty()
                && eventually(Duration::from_secs(20), async || replica.leads().await)
                    .await
                    .is_none()
            {
                return Err(format!("{name} never led alone"));
            }
            rs.push(Some(replica));
            proxies.push(proxy);
        }
        let w = RegionWorld {
            s,
            proxies,
            rs,
            boot,
        };
        let steady = eventually(Duration::from_secs(40), async || {
            let l = w.leaders().await;
            if l.len() != 1 {
                return false;
            }
            let Some(r) = w.rs.iter().flatten().find(|r| r.name == l[0]) else {
                return false;
            };
            let held = r
                .status_body()
                .await
                .is_some_and(|b| b.lease.members.iter().filter(|m| m.held).count() == 3);
            held && site_active(r, "east").await
        })
        .await;
        if steady.is_none() {
            return Err(format!("no steady leader: {:?}", w.leaders().await));
        }
        Ok(w)
    }

    /// The replicas that say they lead.
    pub async fn leaders(&self) -> Vec<String> {
        let mut out = vec![];
        for r in self.rs.iter().flatten() {
            if r.leads().await {
                out.push(r.name.clone());
            }
        }
        out
    }

    /// us-east-1 is lost: every request to it black-holed, its replica killed, and site
    /// east's servers with it.
    pub async fn lose_east(&mut self) {
        for p in &self.proxies {
            p.set(lose(&["us-east-1"]));
        }
        if let Some(r) = self.rs[0].as_mut() {
            r.kill9();
        }
        self.rs[0] = None;
        self.s.east_hs.stop().await;
    }

    /// West has the traffic (weight) and east has none.
    pub async fn west_has_traffic(&self) -> bool {
        let w = weights(&self.s).await;
        w.iter().any(|(id, weight)| id == "west" && *weight > 0)
            && w.iter().all(|(id, weight)| id != "east" || *weight == 0)
    }

    /// How long west's finished promotion took by its record (started to finished), as
    /// any replica reports it; None while no replica reports a finished run.
    pub async fn west_run_ms(&self) -> Option<u64> {
        for r in self.rs.iter().flatten() {
            let west = r.site("west").await;
            let (start, end) = (
                west["run"]["started_unix_ms"].as_u64(),
                west["run"]["finished_unix_ms"].as_u64(),
            );
            if let (Some(a), Some(b)) = (start, end) {
                return Some(b.saturating_sub(a));
            }
        }
        None
    }
}

async fn site_active(r: &Replica, name: &str) -> bool {
    r.get("/api/v1/sites")
        .await
        .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v["sites"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == name))
                .and_then(|s| s["active"].as_bool())
        })
        .unwrap_or(false)
}
