//! A site provider double that records every call with the virtual instant it was made
//! at: narrow tests of what a promotion asks of the provider (and when it must not ask at
//! all). RunInstances, StartInstances and friends run for real against LocalStack in the
//! site integration tests.

use floatover::provider::ProviderError;
use floatover::provider::sites::{DbView, InstanceView, LaunchRequest, ScalingView, SiteOps};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// The instances RunInstances "launches".
pub const LAUNCHED: [&str; 2] = ["i-0000000000000a001", "i-0000000000000a002"];

/// See the module docs.
pub struct RecordingSiteOps {
    calls: Mutex<Vec<(&'static str, Instant)>>,
    launches: Mutex<Vec<LaunchRequest>>,
    /// What `instances_tagged` finds (an interrupted launch's instances).
    pub tagged: Vec<String>,
    /// The state every instance reports (`running`, or `pending` for one that never
    /// boots); the i-th one asked for has the private IP 10.9.0.(i+1).
    pub state: &'static str,
    /// What CloudWatch answers for any metric (a replication lag), None: no datapoint.
    lag: Mutex<Option<f64>>,
    /// The one DB instance there is (any id finds it); PromoteReadReplica detaches it.
    db: Mutex<Option<DbView>>,
}

impl Default for RecordingSiteOps {
    fn default() -> Self {
        RecordingSiteOps {
            calls: Mutex::default(),
            launches: Mutex::default(),
            tagged: Vec::new(),
            state: "running",
            lag: Mutex::default(),
            db: Mutex::default(),
        }
    }
}

impl RecordingSiteOps {
    /// Instances that report `state`, and `tagged` found by the run's tag.
    pub fn new(state: &'static str, tagged: Vec<String>) -> Self {
        RecordingSiteOps {
            state,
            tagged,
            ..RecordingSiteOps::default()
        }
    }

    fn note(&self, op: &'static str) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((op, Instant::now()));
    }

    /// Every call so far (reads and writes), in order, with when it was made.
    pub fn calls(&self) -> Vec<(&'static str, Instant)> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The lag CloudWatch reports from now on (seconds; None: no datapoint).
    pub fn set_lag(&self, secs: Option<f64>) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = secs;
    }

    /// The DB instance every `db_instance` finds from now on.
    pub fn set_db(&self, db: Option<DbView>) {
        *self.db.lock().unwrap_or_else(|p| p.into_inner()) = db;
    }

    /// Every RunInstances request so far.
    pub fn launches(&self) -> Vec<LaunchRequest> {
        self.launches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait::async_trait]
impl SiteOps for RecordingSiteOps {
    async fn start_instances(&self, _: &str, _: &[String]) -> Result<(), ProviderError> {
        self.note("StartInstances");
        Ok(())
    }
    async fn describe_instances(
        &self,
        _: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, InstanceView>, ProviderError> {
        self.note("DescribeInstances");
        Ok(ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let v = InstanceView {
                    state: self.state.into(),
                    private_ip: Some(format!("10.9.0.{}", i + 1)),
                    public_ip: None,
                };
                (id.clone(), v)
            })
            .collect())
    }
    async fn can_start(&self, _: &str, _: &[String]) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn launch_template_exists(&self, _: &str, _: &str) -> Result<bool, ProviderError> {
        Ok(true)
    }
    async fn image_exists(&self, _: &str, _: &str) -> Result<bool, ProviderError> {
        Ok(true)
    }
    async fn run_instances(
        &self,
        _: &str,
        req: &LaunchRequest,
    ) -> Result<Vec<String>, ProviderError> {
        self.note("RunInstances");
        self.launches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(req.clone());
        Ok(LAUNCHED.iter().map(|s| s.to_string()).collect())
    }
    async fn instances_tagged(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Vec<String>, ProviderError> {
        self.note("DescribeInstances(tag)");
        Ok(self.tagged.clone())
    }
    async fn scaling_group(&self, _: &str, _: &str) -> Result<Option<ScalingView>, ProviderError> {
        self.note("DescribeAutoScalingGroups");
        Ok(None)
    }
    async fn set_desired(&self, _: &str, _: &str, _: u32) -> Result<(), ProviderError> {
        self.note("SetDesiredCapacity");
        Ok(())
    }

    async fn db_instance(&self, _: &str, _: &str) -> Result<Option<DbView>, ProviderError> {
        self.note("DescribeDBInstances");
        Ok(self.db.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    async fn promote_read_replica(&self, _: &str, _: &str) -> Result<(), ProviderError> {
        self.note("PromoteReadReplica");
        if let Some(d) = self.db.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            d.replica_of = None;
        }
        Ok(())
    }
    async fn metric_latest(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: (&str, &str),
    ) -> Result<Option<f64>, ProviderError> {
        self.note("GetMetricData");
        Ok(*self.lag.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The engine's side of a site's `shift`, for executor tests: every switchover asked for
/// is done at once (the engine has its own tests). Hand the sender to `SiteCx::commands`.
pub fn switchovers_done() -> tokio::sync::mpsc::Sender<floatover::engine::Command> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(floatover::engine::Command::Switchover { reply, .. }) = rx.recv().await {
            let _ = reply.send(Ok(Vec::new()));
        }
    });
    tx
}
