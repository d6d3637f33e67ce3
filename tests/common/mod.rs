//! Shared setup for integration tests: LocalStack (one per run when the test script
//! provides it, else one per test), seeded world, health servers, controller replicas.
#![allow(dead_code)]

pub mod dns;
pub mod faults;
pub mod sites;

use floatover_devkit::LocalStack;
use floatover_devkit::eventually::eventually;
use floatover_devkit::health::HealthServer;
use floatover_devkit::replica::{Replica, Scenario, free_port, render_config};
use floatover_devkit::seed::{self, Clients, World};
use std::path::PathBuf;
use std::time::Duration;

pub struct Env {
    pub ls: LocalStack,
    pub world: World,
    pub clients: Clients,
    pub health: Vec<HealthServer>,
    pub dir: tempfile::TempDir,
    pub scenario: Scenario,
    pub replicas: Vec<Replica>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_floatover"))
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}-{}", std::process::id(), rand::random::<u32>())
}

impl Env {
    pub async fn new(instances: usize, scenario: Scenario, tag: &str) -> Env {
        let ls = LocalStack::start_or_reuse().expect("LocalStack");
        let world = seed::world(&ls.endpoint, "us-east-1", instances, &unique(tag))
            .await
            .expect("seed");
        let clients = seed::clients(&ls.endpoint, "us-east-1").await;
        let mut health = Vec::new();
        for _ in 0..instances {
            health.push(HealthServer::start().await.expect("health server"));
        }
        Env {
            ls,
            world,
            clients,
            health,
            dir: tempfile::tempdir().expect("tempdir"),
            scenario,
            replicas: vec![],
        }
    }

    /// Start one more replica; returns its index.
    pub fn spawn_replica(&mut self) -> usize {
        let port = free_port();
        let name = format!("r{}", self.replicas.len());
        let urls: Vec<String> = self.health.iter().map(|h| h.url()).collect();
        let cfg = render_config(&self.world, &self.scenario, &urls, port, &name);
        self.replicas.push(
            Replica::spawn(&bin(), self.dir.path(), &name, &cfg, port).expect("spawn floatover"),
        );
        self.replicas.len() - 1
    }

    pub fn instance(&self, i: usize) -> String {
        self.world.instances[i].instance_id.clone()
    }

    pub async fn eip_holder(&self) -> Option<String> {
        self.clients.eip_holder(&self.world.allocation_id).await
    }

    /// Poll until the EIP is on instance `i`; returns the time it took, or None on timeout.
    pub async fn wait_eip_on(&self, i: usize, timeout: Duration) -> Option<Duration> {
        let want = self.instance(i);
        eventually(timeout, async || {
            self.eip_holder().await.as_deref() == Some(want.as_str())
        })
        .await
    }

    /// Index of the replica that says it leads, if exactly one does.
    pub async fn leader(&self) -> Option<usize> {
        let mut leaders = vec![];
        for (i, r) in self.replicas.iter().enumerate() {
            if r.leads().await {
                leaders.push(i);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    }

    pub async fn wait_leader(&self, timeout: Duration) -> Option<(usize, Duration)> {
        let mut found = None;
        let took = eventually(timeout, async || {
            found = self.leader().await;
            found.is_some()
        })
        .await?;
        Some((found?, took))
    }

    /// Dump logs of all replicas (for a failing test's output).
    pub fn dump_logs(&self) {
        for r in &self.replicas {
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            // Probe chatter left out: the engine's lines are the story.
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .filter(|l| !l.contains("\"target\":\"floatover::probe\""))
                .take(40)
                .collect();
            eprintln!(
                "---- {} log (last 40 lines, newest first) ----\n{}",
                r.name,
                tail.join("\n")
            );
        }
    }
}

/// Per-replica fault proxies (EC2 and the S3 lease), for the fault tests.
pub struct Proxies {
    pub ec2: floatover_devkit::faultproxy::FaultProxy,
    pub s3: floatover_devkit::faultproxy::FaultProxy,
}

impl Env {
    /// Start a replica whose EC2 and lease calls go through fault proxies, with extra
    /// environment variables and a choice of stderr. Returns its index.
    pub async fn spawn_proxied(
        &mut self,
        env: &[(&str, &str)],
        stderr: floatover_devkit::replica::Stderr,
    ) -> (usize, Proxies) {
        use floatover_devkit::faultproxy::FaultProxy;
        let ec2 = FaultProxy::start(&self.ls.endpoint)
            .await
            .expect("ec2 proxy");
        let s3 = FaultProxy::start(&self.ls.endpoint)
            .await
            .expect("s3 proxy");
        let mut sc = self.scenario.clone();
        sc.ec2_endpoint = Some(ec2.url.clone());
        sc.s3_endpoint = Some(s3.url.clone());
        let port = free_port();
        let name = format!("r{}", self.replicas.len());
        let urls: Vec<String> = self.health.iter().map(|h| h.url()).collect();
        let cfg = render_config(&self.world, &sc, &urls, port, &name);
        self.replicas.push(
            Replica::spawn_with(&bin(), self.dir.path(), &name, &cfg, port, env, stderr)
                .expect("spawn floatover"),
        );
        (self.replicas.len() - 1, Proxies { ec2, s3 })
    }

    /// [`eventually`] for callers that hold an `Env` and write `|| async { .. }`.
    pub async fn until<F, Fut>(&self, timeout: Duration, mut f: F) -> Option<Duration>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually(timeout, async || f().await).await
    }

    /// Is replica `i` the leader by its own account?
    pub async fn leads(&self, i: usize) -> bool {
        self.replicas[i].leads().await
    }

    /// Epoch replica `i` reports.
    pub async fn epoch(&self, i: usize) -> Option<u64> {
        self.replicas[i].epoch().await
    }
}

/// Wall-clock milliseconds (to compare with proxy logs and audit events).
pub fn now_ms() -> u64 {
    floatover::status::unix_ms()
}
