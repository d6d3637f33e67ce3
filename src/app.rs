//! The controller as one value: an [`App`] is built from a resolved spec plus the provider
//! and the lease backend it should use, and runs until its shutdown future resolves. The
//! binary injects the AWS provider and the configured lease (`bootstrap::run`); a test can
//! inject the in-memory provider and lease store and run the whole controller in one
//! process.
//!
//! Inside: probes, the engine, the elector, the API and a stall watch run as supervised
//! tasks. Any of them ending before shutdown was asked for is fatal (a standby takes
//! over). Shutdown is orderly (the engine finishes its in-flight calls, then the lease is
//! released) but bounded by a deadline.

use crate::api::{self, ApiState};
use crate::config::Spec;
use crate::engine::Engine;
use crate::faults::Faults;
use crate::leader::{Elector, EpochFloor, LeaseBackend};
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::probe::{self, Checker, HealthBoard, ProbeDeps};
use crate::provider::FloatProvider;
use crate::status::StatusStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A task returned although no shutdown was asked for.
    #[error("the {0} task ended unexpectedly")]
    TaskEnded(&'static str),
    #[error("a task failed: {0}")]
    TaskFailed(#[source] tokio::task::JoinError),
    #[error("a probe task ended unexpectedly")]
    ProbeEnded,
    #[error("a probe task failed: {0}")]
    ProbeFailed(#[source] tokio::task::JoinError),
    #[error("shutdown deadline passed")]
    ShutdownDeadline,
}

pub use crate::sidecar::{Sidecar, SidecarCtx};

/// See the module docs.
pub struct App {
    spec: Arc<Spec>,
    provider: Arc<dyn FloatProvider>,
    backend: Box<dyn LeaseBackend>,
    checker: Checker,
    faults: Faults,
    metrics: Arc<Metrics>,
    status: Arc<StatusStore>,
    sidecars: Vec<(&'static str, Sidecar)>,
    sites: Option<api::SiteHandle>,
}

impl App {
    pub fn new(
        spec: Arc<Spec>,
        provider: Arc<dyn FloatProvider>,
        backend: Box<dyn LeaseBackend>,
        checker: Checker,
    ) -> Self {
        App {
            spec,
            provider,
            backend,
            checker,
            faults: Faults::default(),
            metrics: Arc::new(Metrics::new()),
            status: Arc::new(StatusStore::default()),
            sidecars: Vec::new(),
            sites: None,
        }
    }

    /// The API reaches the site loop (a sidecar) through this.
    pub fn with_sites(mut self, h: api::SiteHandle) -> Self {
        self.sites = Some(h);
        self
    }

    /// Run `task` beside the controller (see [`Sidecar`]).
    pub fn with_sidecar(mut self, name: &'static str, task: Sidecar) -> Self {
        self.sidecars.push((name, task));
        self
    }

    /// Use this status store (shared across config reloads: the audit trail and warnings
    /// carry over; group views are published again).
    pub fn with_status(mut self, status: Arc<StatusStore>) -> Self {
        status.restart();
        self.status = status;
        self
    }

    /// Arm test faults (`FLOATOVER_FAULT`).
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Use this metrics registry (shared with a provider built before the app).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Run until `shutdown` resolves (or a task fails), serving the API on `listener`.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let App {
            spec,
            provider,
            backend,
            checker,
            faults,
            metrics,
            status,
            sidecars,
            sites,
        } = self;
        let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
        let liveness = Arc::new(Liveness::new());
        let floor = Arc::new(EpochFloor::default());
        tracing::info!(identity = backend.identity(), listen = %spec.api.listen, advertise = %spec.api.advertise, groups = spec.groups.len(), "floatover starting");

        let stop = CancellationToken::new();
        let on_shutdown = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => on_shutdown.cancel(),
                _ = on_shutdown.cancelled() => {}
            }
        });
        faults.listen();
        let mut probes = probe::spawn(
            &spec,
            ProbeDeps {
                board: board.clone(),
                checker,
                metrics: metrics.clone(),
                status: status.clone(),
                liveness: Some(liveness.clone()),
                faults: faults.clone(),
                concurrency: probe::DEFAULT_CONCURRENCY,
            },
            stop.clone(),
        );
        // Take the lease only after every group's stamps were seen, or after this long (a
        // region whose API hangs must not keep the other groups without a leader).
        let settle_by = Instant::now()
            + spec
                .aws
                .call_timeout
                .saturating_mul(2)
                .max(spec.leader.lease_duration);
        let (elector, leadership) = Elector::new(backend);
        let elector = elector.guarded(liveness.clone(), floor.clone(), settle_by);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let engine = Engine::new(
            spec.clone(),
            provider,
            board.clone(),
            leadership.clone(),
            metrics.clone(),
            status.clone(),
            rx,
        )
        .with_floor(floor)
        .with_liveness(liveness.clone())
        .with_faults(faults);
        let mut tasks: JoinSet<&'static str> = JoinSet::new();
        spawn_engine_and_elector(&mut tasks, engine, elector, &stop);
        let cx = SidecarCtx {
            leadership: leadership.clone(),
            board: board.clone(),
            commands: tx.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
            liveness: liveness.clone(),
            stop: stop.clone(),
        };
        for (name, task) in sidecars {
            let fut = task(cx.clone());
            tasks.spawn(async move {
                fut.await;
                name
            });
        }
        let api_state = ApiState {
            spec: spec.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
            leadership,
            board,
            commands: tx,
            liveness: liveness.clone(),
            sites,
        };
        let api_stop = stop.clone();
        tasks.spawn(async move {
            if let Err(e) = api::serve(api_state, listener, api_stop).await {
                tracing::error!(error = %e, "API server failed");
            }
            "api"
        });
        tasks.spawn(stall_watch(liveness, metrics, status, stop.clone()));
        let failure = supervise(&mut tasks, &mut probes, &stop).await;
        // Orderly shutdown (engine finishes in-flight calls, then the lease is released), but
        // never longer than a deadline.
        let deadline = spec
            .aws
            .call_timeout
            .saturating_add(spec.leader.retry_period)
            .saturating_add(Duration::from_secs(3));
        let late = shut_down(tasks, probes, deadline).await;
        match failure.or(late) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// The engine and the elector; the elector releases the lease only after the engine has
/// stopped (its in-flight calls finished), so a standby never acts beside it.
fn spawn_engine_and_elector(
    tasks: &mut JoinSet<&'static str>,
    engine: Engine,
    elector: Elector,
    stop: &CancellationToken,
) {
    let (engine_done_tx, engine_done_rx) = tokio::sync::oneshot::channel::<()>();
    let engine_stop = stop.clone();
    tasks.spawn(async move {
        engine.run(engine_stop).await;
        let _ = engine_done_tx.send(());
        "engine"
    });
    let elector_stop = stop.clone();
    tasks.spawn(async move {
        elector
            .run(elector_stop, async move {
                let _ = engine_done_rx.await;
            })
            .await;
        "elector"
    });
}

/// Shows a stalled loop in metrics and status (the elector also stops renewing).
async fn stall_watch(
    liveness: Arc<Liveness>,
    metrics: Arc<Metrics>,
    status: Arc<StatusStore>,
    stop: CancellationToken,
) -> &'static str {
    let mut was = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return "stall watch",
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let stalled = liveness.check().err();
        metrics.set_stalled(stalled.is_some());
        if stalled.is_some() != was {
            was = stalled.is_some();
            status.set_warning("stall", stalled.map(|s| format!("stalled: {s}")));
        }
    }
}

/// Wait for a shutdown, or for a task to end first (fatal: everything is stopped so that
/// a standby takes over). Returns the failure, if any.
async fn supervise(
    tasks: &mut JoinSet<&'static str>,
    probes: &mut JoinSet<()>,
    stop: &CancellationToken,
) -> Option<AppError> {
    let mut failure = tokio::select! {
        biased;
        _ = stop.cancelled() => None,
        Some(r) = tasks.join_next() => Some(match r {
            Ok(name) => AppError::TaskEnded(name),
            Err(e) => AppError::TaskFailed(e),
        }),
        Some(r) = probes.join_next() => Some(match r {
            Ok(()) => AppError::ProbeEnded,
            Err(e) => AppError::ProbeFailed(e),
        }),
    };
    // A task that ended because a shutdown was asked for in the meantime is no failure.
    if stop.is_cancelled() {
        failure = None;
    }
    if let Some(why) = &failure {
        tracing::error!(reason = %why, "fatal: stopping so that a standby takes over");
        stop.cancel();
    }
    failure
}

/// Let every task finish (the engine its in-flight calls, then the elector releases the
/// lease), within `deadline`.
async fn shut_down(
    mut tasks: JoinSet<&'static str>,
    mut probes: JoinSet<()>,
    deadline: Duration,
) -> Option<AppError> {
    let orderly = async {
        while tasks.join_next().await.is_some() {}
        probes.shutdown().await;
    };
    if tokio::time::timeout(deadline, orderly).await.is_err() {
        tracing::error!(deadline = %floatover_core::human::duration(deadline), "shutdown did not finish in time; exiting anyway");
        return Some(AppError::ShutdownDeadline);
    }
    None
}
