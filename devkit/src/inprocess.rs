//! The whole controller in the test's own process: the given provider, a single-replica
//! lease in memory, real probes and the real API on a port of its own.

use crate::memlease::MemLease;
use floatover::app::{App, AppError};
use floatover::config::Spec;
use floatover::leader::CasLease;
use floatover::metrics::Metrics;
use floatover::probe::Checker;
use floatover::provider::FloatProvider;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A controller running in this process.
pub struct InProcess {
    /// Its API, `http://127.0.0.1:PORT`.
    pub api: String,
    /// Send to stop it (in order: the engine, then the lease).
    pub stop: oneshot::Sender<()>,
    pub run: JoinHandle<Result<(), AppError>>,
    /// The lease store (to check it was released on shutdown).
    pub lease: MemLease,
}

/// Start the controller for `spec` on `provider`, with `metrics` as its registry.
pub async fn start(
    spec: Arc<Spec>,
    provider: Arc<dyn FloatProvider>,
    metrics: Arc<Metrics>,
) -> std::io::Result<InProcess> {
    let store = MemLease::new();
    let backend = CasLease::new(store.for_replica("me"), "me".into(), spec.leader.timing());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let checker = Checker::new().map_err(std::io::Error::other)?;
    let app = App::new(spec, provider, Box::new(backend), checker).with_metrics(metrics);
    let run = tokio::spawn(app.run(listener, async {
        let _ = stop_rx.await;
    }));
    Ok(InProcess {
        api,
        stop,
        run,
        lease: store,
    })
}
