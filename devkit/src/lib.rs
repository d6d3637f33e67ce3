//! Development kit: what the integration tests, the demo and the benchmarks share.
//! LocalStack lifecycle, seeding EC2 resources, killable health servers and controller
//! replicas as child processes. Not used by the controller itself.

pub mod arc;
pub mod dataworld;
pub mod dns;
pub mod eventually;
pub mod faultproxy;
pub mod health;
pub mod inprocess;
pub mod invariants;
pub mod kubeapi;
pub mod leaseworld;
pub mod massworld;
pub mod memlease;
pub mod memprovider;
pub mod quorumsim;
pub mod region;
pub mod replica;
pub mod seed;
pub mod sitecfg;
pub mod siteops;
pub mod sites;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors of the development kit (fixture setup), with what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum DevkitError {
    #[error("cannot start LocalStack: {0} (see localstack/localstack.sh; first run installs it)")]
    LocalStack(String),
    #[error("cannot start moto: {0} (see moto/moto.sh; first run installs it)")]
    Moto(String),
    #[error("AWS call {op} failed while seeding: {message}")]
    Seed { op: &'static str, message: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Repository root (where `localstack/` lives): the parent of this crate.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// A running LocalStack: started by us (stopped on drop) or given by the environment
/// (`FLOATOVER_LOCALSTACK_ENDPOINT`, left running).
pub struct LocalStack {
    pub endpoint: String,
    dir: Option<PathBuf>,
}

impl LocalStack {
    /// Use `$FLOATOVER_LOCALSTACK_ENDPOINT` if set, else start a fresh instance on a free
    /// port with its own state directory.
    pub fn start_or_reuse() -> Result<Self, DevkitError> {
        if let Ok(ep) = std::env::var("FLOATOVER_LOCALSTACK_ENDPOINT")
            && !ep.is_empty()
        {
            return Ok(LocalStack {
                endpoint: ep,
                dir: None,
            });
        }
        Self::start()
    }

    /// Start a fresh instance.
    pub fn start() -> Result<Self, DevkitError> {
        let (endpoint, dir) =
            start_emulator("localstack/localstack.sh").map_err(DevkitError::LocalStack)?;
        Ok(LocalStack {
            endpoint,
            dir: Some(dir),
        })
    }

    pub fn state_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            stop_emulator("localstack/localstack.sh", dir);
        }
    }
}

/// A running moto server (RDS, Auto Scaling, ECS, EKS, CloudWatch: what the community
/// LocalStack does not serve): started by us (stopped on drop) or given by the
/// environment (`FLOATOVER_MOTO_ENDPOINT`, left running).
pub struct Moto {
    pub endpoint: String,
    dir: Option<PathBuf>,
}

impl Moto {
    /// Use `$FLOATOVER_MOTO_ENDPOINT` if set, else start a fresh instance on a free port.
    pub fn start_or_reuse() -> Result<Self, DevkitError> {
        if let Ok(ep) = std::env::var("FLOATOVER_MOTO_ENDPOINT")
            && !ep.is_empty()
        {
            return Ok(Moto {
                endpoint: ep,
                dir: None,
            });
        }
        let (endpoint, dir) = start_emulator("moto/moto.sh").map_err(DevkitError::Moto)?;
        Ok(Moto {
            endpoint,
            dir: Some(dir),
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            stop_emulator("moto/moto.sh", dir);
        }
    }
}

/// Run an emulator's `start` (`script` under the repository root): its endpoint and its
/// state directory, or what it printed when it failed.
fn start_emulator(script: &str) -> Result<(String, PathBuf), String> {
    let out = Command::new(repo_root().join(script))
        .arg("start")
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let endpoint = std::fs::read_to_string(dir.join("endpoint"))
        .map_err(|e| format!("no endpoint file in {}: {e}", dir.display()))?
        .trim()
        .to_string();
    Ok((endpoint, dir))
}

fn stop_emulator(script: &str, dir: &Path) {
    let _ = Command::new(repo_root().join(script))
        .arg("stop")
        .arg(dir)
        .output();
}

/// The static credentials LocalStack accepts, handed to every SDK client the devkit, the
/// tests and the benchmarks build (and set on every child replica's environment), so no
/// test changes the process environment while other threads read it.
pub fn test_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("test", "test", None, None, "floatover-devkit")
}

/// An S3 client for `region` at `endpoint` (path-style, as emulators want), with test
/// credentials and one attempt that gives up after `timeout`: the lease tests and the
/// quorum bench talk to buckets in several regions this way.
pub async fn s3_client(
    endpoint: &str,
    region: &str,
    timeout: std::time::Duration,
) -> aws_sdk_s3::Client {
    let conf = floatover::provider::aws::sdk_config(
        region,
        Some(endpoint),
        timeout,
        1,
        Some(test_credentials()),
    )
    .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

/// Create bucket `name` in `region` (outside us-east-1, S3 wants the region named in the
/// request): one lease member's bucket.
pub async fn create_bucket(endpoint: &str, region: &str, name: &str) -> Result<(), DevkitError> {
    let mut req = s3_client(endpoint, region, std::time::Duration::from_secs(10))
        .await
        .create_bucket()
        .bucket(name);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    req.send().await.map_err(|e| DevkitError::Seed {
        op: "CreateBucket",
        message: format!("{e}"),
    })?;
    Ok(())
}
