//! A zone outage at scale on LocalStack, shared by the suite's test and the bench: N
//! groups, each a primary and a standby instance and one Elastic IP on the primary, every
//! target probed over HTTP on one [`FleetHealth`] server; [`Mass::outage`] fails every
//! primary at the same instant.

use crate::DevkitError;
use crate::health::FleetHealth;
use crate::seed;
use std::fmt::Write as _;
use tokio::task::JoinHandle;

/// One group: its primary, its standby, its Elastic IP.
#[derive(Debug, Clone)]
pub struct MassGroup {
    pub primary: String,
    pub standby: String,
    pub allocation_id: String,
}

/// The seeded world and the health server its probes ask.
pub struct Mass {
    pub endpoint: String,
    pub region: String,
    pub groups: Vec<MassGroup>,
    pub health: FleetHealth,
    pub health_url: String,
    /// An S3 bucket for a lease shared by several replicas.
    pub bucket: String,
    /// Where that bucket is: the same emulator unless [`Mass::lease_on`] moved it.
    pub lease_endpoint: String,
    /// How often every target is probed (fall 2; the timeout is 80% of it). 500 ms unless
    /// changed before the config is written.
    pub probe_interval: std::time::Duration,
    _server: JoinHandle<()>,
    clients: seed::Clients,
}

fn seed_err<E: std::fmt::Debug>(op: &'static str) -> impl Fn(E) -> DevkitError {
    move |e| DevkitError::Seed {
        op,
        message: format!("{e:?}"),
    }
}

impl Mass {
    /// Seed `n` groups (2n instances, n EIPs each on its primary) and start the health
    /// server with every target up.
    pub async fn seed(
        endpoint: &str,
        region: &str,
        n: usize,
        tag: &str,
    ) -> Result<Mass, DevkitError> {
        let w = seed::world(endpoint, region, 2 * n, tag).await?;
        let clients = seed::clients(endpoint, region).await;
        let mut groups = Vec::with_capacity(n);
        for i in 0..n {
            let eip = seed::allocate_eip(&clients.ec2).await?;
            let alloc = eip.allocation_id().unwrap_or_default().to_string();
            let primary = w.instances[2 * i].instance_id.clone();
            clients
                .ec2
                .associate_address()
                .allocation_id(&alloc)
                .instance_id(&primary)
                .send()
                .await
                .map_err(seed_err("AssociateAddress"))?;
            groups.push(MassGroup {
                primary,
                standby: w.instances[2 * i + 1].instance_id.clone(),
                allocation_id: alloc,
            });
        }
        let health = FleetHealth::default();
        for g in &groups {
            health.boot(&g.primary);
            health.boot(&g.standby);
        }
        let (health_url, server) = health
            .start()
            .await
            .map_err(|e| DevkitError::Other(e.to_string()))?;
        Ok(Mass {
            endpoint: endpoint.to_string(),
            region: region.to_string(),
            groups,
            health,
            health_url,
            bucket: w.bucket.clone(),
            lease_endpoint: endpoint.to_string(),
            probe_interval: std::time::Duration::from_millis(500),
            _server: server,
            clients,
        })
    }

    /// The controller's config: one group per pair, probes every 500 ms, fall 2, one
    /// replica (`leader: single`).
    pub fn config(&self, identity: &str) -> String {
        self.config_with(&format!(
            "leader: {{ backend: single, identity: {identity} }}"
        ))
    }

    /// [`Mass::config`] for one of several replicas on the S3 lease, with its API.
    pub fn replica_config(&self, identity: &str, api_port: u16) -> String {
        self.config_with(&format!(
            "api: {{ listen: \"127.0.0.1:{api_port}\", token: \"bench-token-0123456789\" }}\n\
             leader: {{ backend: s3, identity: {identity}, s3: {{ bucket: {}, key: leader.json, endpoint_url: \"{}\" }} }}",
            self.bucket, self.lease_endpoint
        ))
    }

    fn config_with(&self, leader: &str) -> String {
        let mut y = String::new();
        let _ = writeln!(
            y,
            "{leader}\n\
             aws: {{ region: {}, endpoint_url: \"{}\", dns_member_writes: upsert }}\n\
             probe_defaults: {{ interval: {}ms, timeout: {}ms, rise: 1, fall: 2 }}\n\
             drift_check: 5s\nresync_interval: 30s\ngroups:",
            self.region,
            self.endpoint,
            self.probe_interval.as_millis(),
            self.probe_interval.as_millis() * 4 / 5
        );
        for (i, g) in self.groups.iter().enumerate() {
            let probe = |id: &str| {
                format!(
                    "[{{ http: {{ url: \"{}/health?instance={id}\" }} }}]",
                    self.health_url
                )
            };
            let _ = writeln!(
                y,
                "  - name: g{i}\n    policy: {{ preempt: false }}\n    targets:\n      \
                 - {{ name: primary, instance_id: {p}, priority: 200, probes: {pp} }}\n      \
                 - {{ name: standby, instance_id: {s}, priority: 100, probes: {sp} }}\n    \
                 floats:\n      - eip: {{ allocation_id: {a} }}",
                p = g.primary,
                pp = probe(&g.primary),
                s = g.standby,
                sp = probe(&g.standby),
                a = g.allocation_id,
            );
        }
        y
    }

    /// Every primary stops answering at once (503), as in a zone outage.
    pub fn outage(&self) {
        for g in &self.groups {
            self.health.unboot(&g.primary);
        }
    }

    /// How many EIPs are on their standby (one DescribeAddresses for all of them).
    pub async fn on_standby(&self) -> Result<usize, DevkitError> {
        let ids: Vec<String> = self
            .groups
            .iter()
            .map(|g| g.allocation_id.clone())
            .collect();
        let r = self
            .clients
            .ec2
            .describe_addresses()
            .set_allocation_ids(Some(ids))
            .send()
            .await
            .map_err(seed_err("DescribeAddresses"))?;
        let standby: std::collections::HashMap<&str, &str> = self
            .groups
            .iter()
            .map(|g| (g.allocation_id.as_str(), g.standby.as_str()))
            .collect();
        Ok(r.addresses()
            .iter()
            .filter(|a| {
                a.allocation_id()
                    .and_then(|id| standby.get(id))
                    .is_some_and(|s| a.instance_id() == Some(*s))
            })
            .count())
    }

    /// Keep the lease in S3 on another emulator. On AWS, S3 does not slow down because EC2
    /// is busy; one LocalStack process serving both does (its S3 answers queue behind a
    /// burst of 50 AssociateAddress calls), and that is not what a bench should measure.
    pub async fn lease_on(&mut self, endpoint: &str) -> Result<(), DevkitError> {
        let c = seed::clients(endpoint, &self.region).await;
        seed::create_bucket(&c.s3, &self.region, &self.bucket).await?;
        self.lease_endpoint = endpoint.to_string();
        Ok(())
    }

    /// The floor EC2's own buckets allow for moving every EIP at once: detection (fall 2 ×
    /// the probe interval) plus what AssociateAddress's bucket (50, then 5 a second) takes.
    pub fn floor(&self) -> std::time::Duration {
        let n = self.groups.len() as f64;
        let detection = 2.0 * self.probe_interval.as_secs_f64();
        std::time::Duration::from_secs_f64(detection + ((n - 50.0).max(0.0)) / 5.0)
    }
}
