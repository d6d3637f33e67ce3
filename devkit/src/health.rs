//! A health endpoint that can be killed and brought back on the same port, to play the
//! part of a server's `/health` in tests and the demo.

use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// An HTTP server answering `200 ok` on every path, until stopped.
pub struct HealthServer {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

async fn serve(listener: TcpListener) {
    let app = axum::Router::new().fallback(|| async { "ok\n" });
    let _ = axum::serve(listener, app).await;
}

impl HealthServer {
    /// Start on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        Ok(HealthServer {
            addr,
            task: Some(tokio::spawn(serve(l))),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Kill it: the listener closes, connections are refused from now on.
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Bring it back on the same port.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let l = TcpListener::bind(self.addr).await?;
        self.task = Some(tokio::spawn(serve(l)));
        Ok(())
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A health endpoint that can take thousands of probes a second on one core: answers every
/// connection with `200 ok` and closes it, on its own thread and single-threaded runtime,
/// and counts the answers in `served`. For benches and overload tests, where the server
/// must never be the bottleneck (the axum [`HealthServer`] costs several times more CPU
/// per request). Returns the URL to probe.
pub fn lean_responder(
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<String> {
    // A deep accept queue: std's default backlog (128) drops SYNs when a thousand probes
    // connect in a burst, and a dropped SYN is a 1 s retransmit, i.e. a probe timeout.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let bound = async {
                let sock = tokio::net::TcpSocket::new_v4()?;
                sock.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
                let l = sock.listen(4096)?;
                let addr = l.local_addr()?;
                Ok::<_, std::io::Error>((l, addr))
            };
            let l = match bound.await {
                Ok((l, addr)) => {
                    let _ = tx.send(Ok(addr));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            while let Ok((mut s, _)) = l.accept().await {
                let served = served.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let mut seen = 0;
                    while let Ok(n) = s.read(&mut buf[seen..]).await {
                        if n == 0 {
                            return;
                        }
                        seen += n;
                        if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") || seen == buf.len() {
                            break;
                        }
                    }
                    if s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                    )
                    .await
                    .is_ok()
                    {
                        served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
    });
    let addr = rx.recv().map_err(std::io::Error::other)??;
    Ok(format!("http://{addr}/health"))
}

/// Health endpoints of instances a cold site launches, which LocalStack records but never
/// runs: `GET /health?instance=ID&ip=IP` answers 200 once the test has marked that
/// instance booted ([`FleetHealth::boot`]), 503 before; `GET /site` (the site's front
/// door, e.g. its load balancer) answers 200 once the test opened it
/// ([`FleetHealth::open_site`]). Every (instance, ip) probed is remembered once, so a test
/// sees what was probed (a list of every probe grew by thousands a second in the mass
/// bench, and its reallocations under the lock stalled answers into probe timeouts).
#[derive(Clone, Default)]
pub struct FleetHealth {
    booted: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    probed: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<(String, String)>>>,
    site_open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(serde::Deserialize)]
struct ProbeQuery {
    instance: Option<String>,
    ip: Option<String>,
}

impl FleetHealth {
    /// Serve on a free loopback port; returns the base URL (`http://127.0.0.1:PORT`).
    pub async fn start(&self) -> std::io::Result<(String, JoinHandle<()>)> {
        use axum::extract::Query;
        use axum::http::StatusCode;
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let (a, b) = (self.clone(), self.clone());
        let app = axum::Router::new()
            .route(
                "/health",
                axum::routing::get(move |Query(q): Query<ProbeQuery>| {
                    let me = a.clone();
                    async move {
                        let id = q.instance.unwrap_or_default();
                        let seen = (id, q.ip.unwrap_or_default());
                        let mut probed = me.probed.lock().unwrap_or_else(|p| p.into_inner());
                        if !probed.contains(&seen) {
                            probed.insert(seen.clone());
                        }
                        drop(probed);
                        let id = seen.0;
                        if me.is_booted(&id) {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        }
                    }
                }),
            )
            .route(
                "/site",
                axum::routing::get(move || {
                    let me = b.clone();
                    async move {
                        if me.site_open.load(std::sync::atomic::Ordering::SeqCst) {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        }
                    }
                }),
            );
        let task = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        Ok((format!("http://{addr}"), task))
    }

    pub fn boot(&self, id: &str) {
        self.booted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
    }

    /// The instance stops answering (503), as when its zone goes down.
    pub fn unboot(&self, id: &str) {
        self.booted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn open_site(&self) {
        self.site_open
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_booted(&self, id: &str) -> bool {
        self.booted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Every (instance, ip) probed so far, as the URLs carried them.
    pub fn probed(&self) -> Vec<(String, String)> {
        self.probed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
