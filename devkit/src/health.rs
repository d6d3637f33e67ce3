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
