//! Executing one probe: HTTP(S), TCP connect or exec, each bounded by its timeout.

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
                humantime::format_duration(*t)
            )),
        }
    }
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
            Err(_) => Outcome::TimedOut(timeout),
        }
    }

    async fn run_inner(&self, kind: &ProbeKind) -> Outcome {
        match kind {
            ProbeKind::Http {
                url,
                expect_status,
                body_contains,
                ..
            } if url.starts_with("http://") => {
                plain_http(url, expect_status, body_contains.as_deref()).await
            }
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
fn status_ok(status: u16, expect: &[u16]) -> bool {
    if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.contains(&status)
    }
}

/// Plain-HTTP probe on a fresh connection: one TCP connect, one HTTP/1.1 handshake, one
/// GET, nothing pooled and no background task. A fresh connection per probe means a dead
/// listener is never hidden behind a kept-alive connection; doing it without a pooled
/// client costs a fraction of the CPU and memory, which matters at thousands of probes a
/// second (bench/RESULTS.md).
async fn plain_http(url: &str, expect: &[u16], body_contains: Option<&str>) -> Outcome {
    use http_body_util::{BodyExt, Empty};
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Outcome::Fail(format!("bad URL: {e}")),
    };
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return Outcome::Fail("URL has no host".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Fail(format!("request failed: connect {host}:{port}: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await {
            Ok(x) => x,
            Err(e) => return Outcome::Fail(format!("request failed: {e}")),
        };
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let authority = match parsed.port() {
        Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or(host)),
        None => parsed.host_str().unwrap_or(host).to_string(),
    };
    let req = match hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::USER_AGENT,
            concat!("floatover/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<axum::body::Bytes>::new())
    {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("bad request: {e}")),
    };
    let exchange = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        if !status_ok(status, expect) {
            return Err(format!("unexpected status {status}"));
        }
        if let Some(needle) = body_contains {
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading body: {e}"))?
                .to_bytes();
            if !String::from_utf8_lossy(&body).contains(needle) {
                return Err(format!("body lacks {needle:?}"));
            }
        }
        Ok(())
    };
    // Drive the connection and the exchange together; dropping both closes the socket.
    tokio::pin!(conn);
    tokio::pin!(exchange);
    let result = tokio::select! {
        r = &mut exchange => r,
        c = &mut conn => match c {
            Err(e) => Err(format!("request failed: {e}")),
            Ok(()) => exchange.await,
        },
    };
    match result {
        Ok(()) => Outcome::Ok,
        Err(why) => Outcome::Fail(why),
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
