//! Executing one probe: HTTP(S), TCP connect or exec, each bounded by its timeout.

use crate::config::ProbeKind;
use std::time::Duration;
use tokio::process::Command;

/// Result of one probe execution, with a reason when it failed (shown in logs and status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail(String),
}

/// Executes probes. Holds the HTTP clients so connections and TLS setup are reused.
#[derive(Clone)]
pub struct Checker {
    http: reqwest::Client,
    http_insecure: reqwest::Client,
}

/// Errors building a checker (TLS backend problems).
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    #[error("cannot build HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl Checker {
    pub fn new() -> Result<Self, CheckerError> {
        // No connection pooling: a pooled keep-alive connection can hide a dead listener
        // for one extra interval, and health endpoints are cheap to reconnect to.
        let base = || {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("floatover/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Checker {
            http: base().build()?,
            http_insecure: base().danger_accept_invalid_certs(true).build()?,
        })
    }

    /// Run one probe, never longer than `timeout`.
    pub async fn run(&self, kind: &ProbeKind, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.run_inner(kind)).await {
            Ok(o) => o,
            Err(_) => Outcome::Fail(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            )),
        }
    }

    async fn run_inner(&self, kind: &ProbeKind) -> Outcome {
        match kind {
            ProbeKind::Http {
                url,
                expect_status,
                body_contains,
                insecure,
            } => {
                let client = if *insecure {
                    &self.http_insecure
                } else {
                    &self.http
                };
                let resp = match client.get(url).send().await {
                    Ok(r) => r,
                    Err(e) => return Outcome::Fail(format!("request failed: {e}")),
                };
                let status = resp.status().as_u16();
                let status_ok = if expect_status.is_empty() {
                    (200..300).contains(&status)
                } else {
                    expect_status.contains(&status)
                };
                if !status_ok {
                    return Outcome::Fail(format!("unexpected status {status}"));
                }
                if let Some(needle) = body_contains {
                    match resp.text().await {
                        Ok(b) if b.contains(needle.as_str()) => {}
                        Ok(_) => return Outcome::Fail(format!("body lacks {needle:?}")),
                        Err(e) => return Outcome::Fail(format!("reading body: {e}")),
                    }
                }
                Outcome::Ok
            }
            ProbeKind::Tcp { address } => match tokio::net::TcpStream::connect(address).await {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Fail(format!("connect {address}: {e}")),
            },
            ProbeKind::Exec { command } => {
                let Some((prog, args)) = command.split_first() else {
                    return Outcome::Fail("empty command".into());
                };
                let status = Command::new(prog)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await;
                match status {
                    Ok(s) if s.success() => Outcome::Ok,
                    Ok(s) => Outcome::Fail(format!("exit status {s}")),
                    Err(e) => Outcome::Fail(format!("cannot run {prog}: {e}")),
                }
            }
        }
    }
}
