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
