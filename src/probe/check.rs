//! Executing one probe: HTTP(S), TCP connect or exec, each bounded by its timeout.

use super::http::PlainHttp;
use crate::config::ProbeKind;
use std::time::Duration;
use tokio::process::Command;

/// Result of one probe execution, with a reason when it failed (shown in logs and status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail(String),
    /// No answer within the probe's timeout. Kept apart from other failures because a
    /// starved controller can cause it too (see `probe::overload`).
    TimedOut(Duration),
}

impl Outcome {
    /// The failure reason, if any (for status and logs).
    pub fn failure(&self) -> Option<String> {
        match self {
            Outcome::Ok => None,
            Outcome::Fail(why) => Some(why.clone()),
            Outcome::TimedOut(t) => Some(format!(
                "timed out after {}",
                floatover_core::human::duration(*t)
            )),
        }
    }
}

/// Executes probes. Holds the HTTPS clients so TLS setup is reused; plain HTTP, TCP and
/// exec probes need no client.
#[derive(Clone)]
pub struct Checker {
    /// None when no probe uses https: the clients and their root stores cost ~2 MiB.
    tls: Option<TlsClients>,
}

#[derive(Clone)]
struct TlsClients {
    verified: reqwest::Client,
    insecure: reqwest::Client,
}

/// Errors building a checker (TLS backend problems).
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    #[error("cannot build HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl Checker {
    /// A checker for every probe kind, https included.
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
            tls: Some(TlsClients {
                verified: base().build()?,
                insecure: base().danger_accept_invalid_certs(true).build()?,
            }),
        })
    }

    /// A checker for the probes of `spec`: without TLS clients when none uses https.
    pub fn for_spec(spec: &crate::config::Spec) -> Result<Self, CheckerError> {
        let https = spec.groups.iter().any(|g| {
            g.targets.iter().any(|t| {
                t.probes.iter().any(|p| {
                    matches!(&p.kind, ProbeKind::Http { url, .. } if !url.starts_with("http://"))
                })
            })
        });
        if https {
            Self::new()
        } else {
            Ok(Checker { tls: None })
        }
    }

    /// Run one probe, never longer than `timeout`.
    pub async fn run(&self, kind: &ProbeKind, timeout: Duration) -> Outcome {
        self.run_prepared(&Prepared::new(kind), timeout).await
    }

    /// Run a probe prepared once for its loop, never longer than `timeout`.
    pub async fn run_prepared(&self, probe: &Prepared, timeout: Duration) -> Outcome {
        let work = async {
            match &probe.plain {
                Some(Ok(plain)) => plain.run().await,
                Some(Err(why)) => Outcome::Fail(why.to_string()),
                None => self.run_inner(&probe.kind).await,
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(o) => o,
            Err(_) => Outcome::TimedOut(timeout),
        }
    }

    async fn run_inner(&self, kind: &ProbeKind) -> Outcome {
        match kind {
            ProbeKind::Http { url, .. } if url.starts_with("http://") => {
                match PlainHttp::parse(kind) {
                    Ok(plain) => plain.run().await,
                    Err(why) => Outcome::Fail(why.to_string()),
                }
            }
            ProbeKind::Http {
                url,
                expect_status,
                body_contains,
                insecure,
            } => {
                let Some(tls) = &self.tls else {
                    return Outcome::Fail("https probe without a TLS client".into());
                };
                let client = if *insecure {
                    &tls.insecure
                } else {
                    &tls.verified
                };
                let resp = match client.get(url).send().await {
                    Ok(r) => r,
                    Err(e) => return Outcome::Fail(format!("request failed: {e}")),
                };
                let status = resp.status().as_u16();
                if !status_ok(status, expect_status) {
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

/// `expect_status` empty: any 2xx.
pub(super) fn status_ok(status: u16, expect: &[u16]) -> bool {
    if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.contains(&status)
    }
}

/// A probe with what can be worked out once (the parsed plain-HTTP request) worked out,
/// so that a loop running it thousands of times a second does not parse its URL each time.
pub struct Prepared {
    kind: ProbeKind,
    /// Some for plain `http://` probes (Err: the URL cannot be probed, said every time).
    plain: Option<Result<PlainHttp, super::http::HttpProbeError>>,
}

impl Prepared {
    pub fn new(kind: &ProbeKind) -> Self {
        let plain = match kind {
            ProbeKind::Http { url, .. } if url.starts_with("http://") => {
                Some(PlainHttp::parse(kind))
            }
            _ => None,
        };
        Prepared {
            kind: kind.clone(),
            plain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    async fn server(status: StatusCode, body: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let app = axum::Router::new().fallback(move || async move { (status, body) });
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/health")
    }

    fn http(url: &str, expect: &[u16], body: Option<&str>) -> ProbeKind {
        ProbeKind::Http {
            url: url.into(),
            expect_status: expect.to_vec(),
            body_contains: body.map(Into::into),
            insecure: false,
        }
    }

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn http_status_and_body_rules() {
        let c = Checker::new().expect("checker");
        let ok = server(StatusCode::OK, "status: ok").await;
        assert_eq!(c.run(&http(&ok, &[], None), T).await, Outcome::Ok);
        assert_eq!(c.run(&http(&ok, &[], Some("ok")), T).await, Outcome::Ok);
        assert!(
            matches!(c.run(&http(&ok, &[], Some("ready")), T).await, Outcome::Fail(m) if m.contains("body lacks"))
        );
        assert!(
            matches!(c.run(&http(&ok, &[204], None), T).await, Outcome::Fail(m) if m.contains("200"))
        );
        let down = server(StatusCode::SERVICE_UNAVAILABLE, "draining").await;
        assert!(matches!(
            c.run(&http(&down, &[], None), T).await,
            Outcome::Fail(_)
        ));
        assert_eq!(
            c.run(&http(&down, &[503], None), T).await,
            Outcome::Ok,
            "expect_status overrides 2xx"
        );
    }

    #[tokio::test]
    async fn refused_and_hanging_servers_fail() {
        let c = Checker::new().expect("checker");
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        assert!(matches!(
            c.run(&http(&format!("http://127.0.0.1:{port}/"), &[], None), T)
                .await,
            Outcome::Fail(_)
        ));
        assert!(matches!(
            c.run(
                &ProbeKind::Tcp {
                    address: format!("127.0.0.1:{port}")
                },
                T
            )
            .await,
            Outcome::Fail(_)
        ));
        // Accepts but never answers: the timeout decides.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let out = c
            .run(
                &http(&format!("http://{addr}/"), &[], None),
                Duration::from_millis(200),
            )
            .await;
        assert!(matches!(out, Outcome::TimedOut(_)));
        assert_eq!(
            c.run(
                &ProbeKind::Tcp {
                    address: addr.to_string()
                },
                T
            )
            .await,
            Outcome::Ok
        );
    }

    #[tokio::test]
    async fn exec_uses_the_exit_code() {
        let c = Checker::new().expect("checker");
        assert_eq!(
            c.run(
                &ProbeKind::Exec {
                    command: vec!["true".into()]
                },
                T
            )
            .await,
            Outcome::Ok
        );
        assert!(matches!(
            c.run(
                &ProbeKind::Exec {
                    command: vec!["false".into()]
                },
                T
            )
            .await,
            Outcome::Fail(_)
        ));
        assert!(
            matches!(c.run(&ProbeKind::Exec { command: vec!["/nonexistent/prog".into()] }, T).await, Outcome::Fail(m) if m.contains("cannot run"))
        );
        let slow = ProbeKind::Exec {
            command: vec!["sleep".into(), "5".into()],
        };
        assert!(matches!(
            c.run(&slow, Duration::from_millis(100)).await,
            Outcome::TimedOut(_)
        ));
    }
}
