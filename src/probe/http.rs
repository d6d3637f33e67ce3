//! Plain `http://` probes without a pooled client: parsed once per probe loop, one fresh
//! connection per probe, ended with a reset. Status-only probes (the common case) do not use
//! hyper at all; probes with `body_contains` do.

use super::check::{Outcome, status_ok};
use crate::config::ProbeKind;

/// A plain-HTTP probe, parsed.
pub(super) struct PlainHttp {
    host: String,
    port: u16,
    /// The address when the host is an IP literal (no resolver call per probe).
    addr: Option<std::net::SocketAddr>,
    path: hyper::Uri,
    authority: hyper::header::HeaderValue,
    expect: Vec<u16>,
    body_contains: Option<String>,
    /// The whole request of a status-only probe, written in one call.
    request: Vec<u8>,
}

/// Longest response head a status-only probe reads (hyper's default limit is larger, but a
/// health endpoint's head is a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;

/// Why a plain HTTP probe failed, in the words its target's `last_error` shows.
#[derive(Debug, thiserror::Error)]
pub enum HttpProbeError {
    #[error("not an HTTP probe")]
    NotHttp,
    #[error("bad URL: {0}")]
    BadUrl(String),
    #[error("URL has no host")]
    NoHost,
    #[error("request failed: sending: {0}")]
    Send(#[source] std::io::Error),
    #[error("request failed: reading: {0}")]
    Read(#[source] std::io::Error),
    #[error("request failed: connection closed before a complete response head")]
    Closed,
    #[error("response head larger than {} KiB", MAX_HEAD / 1024)]
    HeadTooLarge,
    #[error("request failed: invalid response: {0}")]
    Invalid(#[source] httparse::Error),
    #[error("request failed: {0}")]
    Exchange(#[source] hyper::Error),
    #[error("reading body: {0}")]
    Body(#[source] hyper::Error),
    #[error("unexpected status {0}")]
    Status(u16),
    #[error("body lacks {0:?}")]
    BodyLacks(String),
}

impl PlainHttp {
    pub(super) fn parse(kind: &ProbeKind) -> Result<Self, HttpProbeError> {
        let ProbeKind::Http {
            url,
            expect_status,
            body_contains,
            ..
        } = kind
        else {
            return Err(HttpProbeError::NotHttp);
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| HttpProbeError::BadUrl(e.to_string()))?;
        let (Some(host_str), Some(port)) = (parsed.host_str(), parsed.port_or_known_default())
        else {
            return Err(HttpProbeError::NoHost);
        };
        let host = host_str.trim_start_matches('[').trim_end_matches(']');
        let path = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let authority = match parsed.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_string(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: floatover/{}\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .into_bytes();
        Ok(PlainHttp {
            request,
            host: host.to_string(),
            port,
            addr: host
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| std::net::SocketAddr::new(ip, port)),
            path: path
                .parse()
                .map_err(|e| HttpProbeError::BadUrl(format!("path: {e}")))?,
            authority: hyper::header::HeaderValue::from_str(&authority)
                .map_err(|e| HttpProbeError::BadUrl(format!("host: {e}")))?,
            expect: expect_status.clone(),
            body_contains: body_contains.clone(),
        })
    }

    /// Plain-HTTP probe on a fresh connection: one TCP connect, one HTTP/1.1 handshake, one
    /// GET, nothing pooled and no background task. A fresh connection per probe means a dead
    /// listener is never hidden behind a kept-alive connection; doing it without a pooled
    /// client costs a fraction of the CPU and memory, which matters at thousands of probes a
    /// second (bench/RESULTS.md).
    ///
    /// The connection ends with a reset, not a FIN exchange (as HAProxy ends its checks): the
    /// answer has been read by then, a graceful close would cost a `shutdown` and two more
    /// packets per probe (15% of the CPU at 10,000 probes/s), and it would leave a TIME_WAIT
    /// socket per probe: at thousands of probes a second to one address that runs the
    /// ephemeral ports dry.
    pub(super) async fn run(&self) -> Outcome {
        use http_body_util::{BodyExt, Empty};
        let (host, port) = (self.host.as_str(), self.port);
        let connect = match self.addr {
            Some(a) => tokio::net::TcpStream::connect(a).await,
            None => tokio::net::TcpStream::connect((host, port)).await,
        };
        let stream = match connect {
            Ok(s) => s,
            Err(e) => return Outcome::Fail(format!("request failed: connect {host}:{port}: {e}")),
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_zero_linger();
        if self.body_contains.is_none() {
            return match self.status_only(stream).await {
                Ok(()) => Outcome::Ok,
                Err(why) => Outcome::Fail(why.to_string()),
            };
        }
        let io = NoShutdown(hyper_util::rt::TokioIo::new(stream));
        let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
            Ok(x) => x,
            Err(e) => return Outcome::Fail(format!("request failed: {e}")),
        };
        let req = match hyper::Request::get(self.path.clone())
            .header(hyper::header::HOST, self.authority.clone())
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
                .map_err(HttpProbeError::Exchange)?;
            let status = resp.status().as_u16();
            if !status_ok(status, &self.expect) {
                return Err(HttpProbeError::Status(status));
            }
            if let Some(needle) = &self.body_contains {
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(HttpProbeError::Body)?
                    .to_bytes();
                if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
                    return Err(HttpProbeError::BodyLacks(needle.clone()));
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
                Err(e) => Err(HttpProbeError::Exchange(e)),
                Ok(()) => exchange.await,
            },
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(why) => Outcome::Fail(why.to_string()),
        }
    }

    /// A probe that checks the status only, the common case, without hyper: one write of
    /// the prepared request, reads into one small buffer until the response head parses
    /// (httparse, hyper's own parser), and the body is never read. A thousand probes a
    /// second each holding hyper's two 8 KiB buffers made the resident memory of a busy
    /// controller grow by ~10 MiB.
    async fn status_only(&self, mut stream: tokio::net::TcpStream) -> Result<(), HttpProbeError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(&self.request)
            .await
            .map_err(HttpProbeError::Send)?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            if buf.len() >= MAX_HEAD {
                return Err(HttpProbeError::HeadTooLarge);
            }
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(HttpProbeError::Read)?;
            if n == 0 {
                return Err(HttpProbeError::Closed);
            }
            // Interim 1xx heads (other than 101) come before the real one.
            loop {
                let mut headers = [httparse::EMPTY_HEADER; 100];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = resp.code.unwrap_or(0);
                        if (100..200).contains(&status) && status != 101 {
                            buf.drain(..len);
                            continue;
                        }
                        if !status_ok(status, &self.expect) {
                            return Err(HttpProbeError::Status(status));
                        }
                        return Ok(());
                    }
                    Ok(httparse::Status::Partial) => break,
                    Err(e) => return Err(HttpProbeError::Invalid(e)),
                }
            }
        }
    }
}

/// A connection whose graceful shutdown is skipped: dropping it resets the socket (see
/// [`PlainHttp`]).
struct NoShutdown<T>(T);

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for NoShutdown<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for NoShutdown<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::Checker;
    use super::*;
    use std::time::Duration;

    const T: Duration = Duration::from_secs(2);

    fn http(url: &str, expect: &[u16], body: Option<&str>) -> ProbeKind {
        ProbeKind::Http {
            url: url.into(),
            expect_status: expect.to_vec(),
            body_contains: body.map(Into::into),
            insecure: false,
        }
    }

    /// A server that answers each connection with `answer`, written in pieces of `chunk`
    /// bytes, then closes.
    async fn raw_server(answer: Vec<u8>, chunk: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    for piece in answer.chunks(chunk.max(1)) {
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::task::yield_now().await;
                    }
                });
            }
        });
        format!("http://{addr}/health")
    }

    /// The status-only path (no hyper): heads in pieces, interim 1xx heads, early close,
    /// garbage and oversized heads.
    #[tokio::test]
    async fn status_only_probe_reads_the_head_correctly() {
        let c = Checker::new().expect("checker");
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        let url = raw_server(ok.clone(), 3).await;
        assert_eq!(
            c.run(&http(&url, &[], None), T).await,
            Outcome::Ok,
            "head in pieces"
        );
        let url = raw_server(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), 64).await;
        assert_eq!(c.run(&http(&url, &[204], None), T).await, Outcome::Ok);
        assert_eq!(
            c.run(&http(&url, &[200], None), T).await,
            Outcome::Fail("unexpected status 204".into())
        );
        let mut interim = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        interim.extend_from_slice(&ok);
        let url = raw_server(interim, 5).await;
        assert_eq!(
            c.run(&http(&url, &[], None), T).await,
            Outcome::Ok,
            "1xx skipped"
        );
        let url = raw_server(b"HTTP/1.1 503 Service Unavailable\r\n\r\n".to_vec(), 64).await;
        assert_eq!(
            c.run(&http(&url, &[], None), T).await,
            Outcome::Fail("unexpected status 503".into())
        );
        let url = raw_server(b"HTTP/1.1 200 OK\r\nContent-".to_vec(), 64).await;
        let out = c.run(&http(&url, &[], None), T).await;
        assert!(
            matches!(&out, Outcome::Fail(w) if w.contains("closed before a complete response head")),
            "{out:?}"
        );
        let url = raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(), 64).await;
        let out = c.run(&http(&url, &[], None), T).await;
        assert!(
            matches!(&out, Outcome::Fail(w) if w.contains("invalid response")),
            "{out:?}"
        );
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..40 {
            huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(500)).as_bytes());
        }
        huge.extend_from_slice(b"\r\n");
        let url = raw_server(huge, 4096).await;
        let out = c.run(&http(&url, &[], None), T).await;
        assert!(
            matches!(&out, Outcome::Fail(w) if w.contains("larger than 16 KiB")),
            "{out:?}"
        );
    }
}
