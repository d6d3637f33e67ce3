//! Controller replicas as child processes (the real binary), their configs, status and
//! audit trails.

use crate::seed::World;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free loopback TCP port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Where the `floatover` binary is: `$FLOATOVER_BIN`, or next to the running executable
/// (`target/<profile>/`, also from `examples/` and `deps/`).
pub fn floatover_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FLOATOVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("examples") || dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("floatover")
}

/// Which floats a scenario's group carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floats {
    EipOnly,
    All,
}

/// Knobs of a scenario config.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub interval_ms: u64,
    pub rise: u32,
    pub fall: u32,
    pub preempt: bool,
    pub failback_delay_ms: u64,
    pub min_hold_ms: u64,
    pub resync_ms: u64,
    pub s3_lease: bool,
    pub floats: Floats,
    pub token: String,
    /// EC2 endpoint for this replica (default: LocalStack itself; a fault proxy in tests).
    pub ec2_endpoint: Option<String>,
    /// S3 endpoint of the lease (default: the EC2 endpoint).
    pub s3_endpoint: Option<String>,
    pub fencing: &'static str,
    pub on_drift: &'static str,
    pub drift_check_ms: u64,
    pub fast_interval_ms: Option<u64>,
    pub mutate_burst: u32,
    pub mutate_per_second: u32,
    /// Extra top-level YAML (other groups), appended verbatim.
    pub extra_yaml: String,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            interval_ms: 200,
            rise: 2,
            fall: 3,
            preempt: true,
            failback_delay_ms: 2_000,
            min_hold_ms: 500,
            resync_ms: 2_000,
            s3_lease: true,
            floats: Floats::EipOnly,
            token: "demo-token-0123456789".into(),
            ec2_endpoint: None,
            s3_endpoint: None,
            fencing: "standard",
            on_drift: "revert",
            drift_check_ms: 2_000,
            fast_interval_ms: None,
            mutate_burst: 50,
            mutate_per_second: 5,
            extra_yaml: String::new(),
        }
    }
}

/// Render a replica's config. `health[i]` is instance i's health URL.
pub fn render_config(
    w: &World,
    s: &Scenario,
    health: &[String],
    api_port: u16,
    identity: &str,
) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "api: {{ listen: \"127.0.0.1:{api_port}\", token: \"{}\" }}",
        s.token
    );
    let ec2 = s.ec2_endpoint.as_deref().unwrap_or(&w.endpoint);
    let _ = writeln!(
        y,
        "aws: {{ region: {}, endpoint_url: \"{ec2}\", mutate_burst: {}, mutate_per_second: {}, dns_member_writes: upsert }}",
        w.region, s.mutate_burst, s.mutate_per_second
    );
    if s.s3_lease {
        let s3 = s.s3_endpoint.as_deref().unwrap_or(ec2);
        let _ = writeln!(
            y,
            "leader: {{ backend: s3, identity: {identity}, s3: {{ bucket: {}, key: leader.json, endpoint_url: \"{s3}\" }} }}",
            w.bucket
        );
    } else {
        let _ = writeln!(y, "leader: {{ backend: single, identity: {identity} }}");
    }
    let fast = s
        .fast_interval_ms
        .map(|f| format!(", fast_interval: {f}ms"))
        .unwrap_or_default();
    let _ = writeln!(
        y,
        "probe_defaults: {{ interval: {}ms, timeout: {}ms, rise: {}, fall: {}{fast} }}",
        s.interval_ms,
        s.interval_ms.min(500),
        s.rise,
        s.fall
    );
    let _ = writeln!(y, "resync_interval: {}ms", s.resync_ms);
    let _ = writeln!(y, "drift_check: {}ms", s.drift_check_ms);
    let _ = writeln!(
        y,
        "groups:\n  - name: web\n    policy: {{ preempt: {}, failback_delay: {}ms, min_hold: {}ms, fencing: {}, on_drift: {} }}",
        s.preempt, s.failback_delay_ms, s.min_hold_ms, s.fencing, s.on_drift
    );
    let _ = writeln!(y, "    targets:");
    for (i, (inst, url)) in w.instances.iter().zip(health).enumerate() {
        let name = ["primary", "standby", "spare", "fourth"]
            .get(i)
            .copied()
            .unwrap_or("other");
        let prio = 200 - 50 * i as u32;
        let _ = writeln!(
            y,
            "      - {{ name: {name}, instance_id: {}, eni_id: {}, priority: {prio}, probes: [{{ http: {{ url: \"{url}\" }} }}] }}",
            inst.instance_id, inst.eni_id
        );
    }
    let _ = writeln!(
        y,
        "    floats:\n      - eip: {{ allocation_id: {} }}",
        w.allocation_id
    );
    if s.floats == Floats::All {
        let _ = writeln!(y, "      - secondary_ip: {{ address: {} }}", w.secondary_ip);
        let _ = writeln!(
            y,
            "      - route: {{ route_table_id: {}, destination: {} }}",
            w.route_table_id, w.route_destination
        );
    }
    y.push_str(&s.extra_yaml);
    y
}

/// Where a replica's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Into its log file (JSON lines).
    LogFile,
    /// A pipe whose reading end is closed at once: every write fails with EPIPE.
    ClosedPipe,
}

/// One controller process.
pub struct Replica {
    pub name: String,
    pub api: String,
    pub log: PathBuf,
    /// Behind a lock so that status checks work through a shared reference (tests poll it
    /// from closures that borrow the whole environment).
    child: std::sync::Mutex<Option<Child>>,
    pid: Option<u32>,
    status: std::sync::Mutex<Option<std::process::ExitStatus>>,
}

impl Replica {
    /// The port its API listens on.
    pub fn port(&self) -> u16 {
        self.api
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or(0)
    }

    /// Write the config into `dir` and start `floatover run` with JSON logs into a file.
    pub fn spawn(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &str,
        api_port: u16,
    ) -> std::io::Result<Replica> {
        Self::spawn_with(bin, dir, name, config, api_port, &[], Stderr::LogFile)
    }

    /// [`Replica::spawn`] with extra environment variables and a choice of stderr.
    pub fn spawn_with(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &str,
        api_port: u16,
        env: &[(&str, &str)],
        stderr: Stderr,
    ) -> std::io::Result<Replica> {
        let cfg = dir.join(format!("{name}.yaml"));
        std::fs::write(&cfg, config)?;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        let err = match stderr {
            Stderr::LogFile => Stdio::from(out),
            Stderr::ClosedPipe => Stdio::piped(),
        };
        let mut child = cmd
            .args(["--log-format", "json", "run", "-c"])
            .arg(&cfg)
            .env(
                "FLOATOVER_LOG",
                "info,floatover=debug,aws_config=warn,aws_smithy_runtime=warn,hyper=warn",
            )
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The caller's variables last: they may override the defaults above.
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()?;
        // Closing our end of the pipe makes every later write by the child fail.
        drop(child.stderr.take());
        Ok(Replica {
            name: name.into(),
            api: format!("http://127.0.0.1:{api_port}"),
            log,
            pid: Some(child.id()),
            child: std::sync::Mutex::new(Some(child)),
            status: std::sync::Mutex::new(None),
        })
    }

    /// Send a signal by name (STOP, CONT, USR1, TERM) without waiting.
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status();
        }
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Exit status if the process has ended (None while it runs).
    pub fn child_status(&self) -> Option<std::process::ExitStatus> {
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if st.is_none()
            && let Some(c) = self.child().as_mut()
        {
            *st = c.try_wait().ok().flatten();
        }
        *st
    }

    /// GET a path of the API; (status, body) or None when it does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let r = c.get(format!("{}{path}", self.api)).send().await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().await.unwrap_or_default()))
    }

    /// One site as `GET /api/v1/sites` shows it (Null when absent or unanswered).
    pub async fn site(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = self
            .get("/api/v1/sites")
            .await
            .and_then(|(_, b)| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        v["sites"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn is_running(&mut self) -> bool {
        self.child().is_some() && self.child_status().is_none()
    }

    /// kill -9: no chance to release the lease.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (up to 10 s) for a clean exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child().take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// `GET /api/v1/status`, or None if the replica does not answer.
    /// `GET /api/v1/status`, typed (None: no answer, or not a status body).
    pub async fn status_body(&self) -> Option<floatover::api::StatusBody> {
        serde_json::from_value(self.status().await?).ok()
    }

    /// Does it say it leads?
    pub async fn leads(&self) -> bool {
        self.status_body().await.is_some_and(|s| s.leader.is_leader)
    }

    /// The epoch it reports.
    pub async fn epoch(&self) -> Option<u64> {
        Some(self.status_body().await?.leader.epoch)
    }

    pub async fn status(&self) -> Option<serde_json::Value> {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        c.get(format!("{}/api/v1/status", self.api))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// `GET /metrics` text.
    pub async fn metrics(&self) -> Option<String> {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        c.get(format!("{}/metrics", self.api))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// Audit events this replica logged (survives kill -9: read from its log file).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.log_events("audit")
    }

    /// Log lines (JSON) whose message equals `msg`.
    pub fn log_events(&self, msg: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == msg)
            .collect()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sum of a counter family in Prometheus text, filtered by a label substring.
pub fn metric_sum(text: &str, name: &str, label_filter: &dyn Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| label_filter(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
