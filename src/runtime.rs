//! Wiring for `run` and `plan`: build the parts from a [`Spec`], start them, and stop them
//! in the order that keeps the fencing guarantee on shutdown: stop mutating, finish or
//! abandon in-flight calls, then release the lease.

use crate::api::{self, ApiState};
use crate::config::{self, LeaderBackend, Spec};
use crate::engine::Engine;
use crate::faults::Faults;
use crate::leader::s3::{LeaseTiming, S3Lease};
use crate::leader::{Elector, EpochFloor, LeaseBackend, SingleLease, default_identity};
use crate::liveness::Liveness;
use crate::logging::{self, LogFormat};
use crate::metrics::Metrics;
use crate::probe::{self, Checker, HealthBoard, ProbeDeps};
use crate::provider::FloatProvider;
use crate::provider::aws::{AwsProvider, sdk_config};
use crate::status::StatusStore;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) fn regions(spec: &Spec) -> Vec<String> {
    let mut r: Vec<String> = spec
        .groups
        .iter()
        .flat_map(|g| g.floats.iter().map(|f| f.region.clone()))
        .collect();
    r.sort();
    r.dedup();
    r
}

/// Build the lease backend the config asks for.
pub async fn lease_backend(spec: &Spec) -> Box<dyn LeaseBackend> {
    let identity = spec
        .leader
        .identity
        .clone()
        .unwrap_or_else(default_identity);
    match &spec.leader.backend {
        LeaderBackend::Single => {
            tracing::warn!(
                "leader backend `single`: this replica is always leader; there is no high availability of the controller itself"
            );
            Box::new(SingleLease::new(identity))
        }
        LeaderBackend::S3 {
            bucket,
            key,
            region,
            endpoint_url,
        } => {
            // Lease calls must answer well within the retry period; one attempt per round
            // (the next round is the retry).
            let timeout = spec.leader.retry_period.max(Duration::from_millis(300));
            let base = sdk_config(region, endpoint_url.as_deref(), timeout, 1).await;
            let conf = aws_sdk_s3::config::Builder::from(&base)
                .force_path_style(endpoint_url.is_some())
                .build();
            Box::new(
                S3Lease::s3(
                    aws_sdk_s3::Client::from_conf(conf),
                    bucket.clone(),
                    key.clone(),
                    identity,
                    LeaseTiming {
                        lease: spec.leader.lease_duration,
                        renew_deadline: spec.leader.renew_deadline,
                        retry: spec.leader.retry_period,
                    },
                )
                .advertise(Some(spec.api.advertise.clone())),
            )
        }
    }
}

/// First SIGTERM/SIGINT: orderly shutdown. A second one: exit at once.
async fn shutdown_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            tracing::error!("cannot listen for SIGTERM/SIGINT");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = stop.cancelled() => {}
    }
    stop.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting at once");
    logging::drain(Duration::from_millis(100));
    std::process::exit(130);
}

/// A panic anywhere ends the process (exit 70) after logging it: a half-dead controller
/// that keeps its lease is worse than a dead one, which a standby replaces.
fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "fatal: a task panicked; exiting so that a standby takes over");
        logging::emergency_line(&format!("floatover: fatal: {info}"));
        logging::drain(Duration::from_millis(300));
        std::process::exit(70);
    }));
}

/// One line that says what to set when the SDK finds no credentials.
pub async fn check_credentials(spec: &Spec) -> Result<(), String> {
    use aws_credential_types::provider::ProvideCredentials;
    let conf = sdk_config(
        &spec.aws.default_region,
        spec.aws.endpoint_url.as_deref(),
        spec.aws.call_timeout,
        1,
    )
    .await;
    let hint = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (LocalStack accepts test / test), or AWS_PROFILE, or run with an instance or pod role (IRSA)";
    let Some(p) = conf.credentials_provider() else {
        return Err(format!("no AWS credentials: {hint}"));
    };
    match tokio::time::timeout(Duration::from_secs(10), p.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(format!("no AWS credentials found: {hint}")),
        Err(_) => Err(format!(
            "no AWS credentials within 10s (the credential chain is still looking): {hint}"
        )),
    }
}

/// `floatover run`.
pub async fn run(path: &Path, log: LogFormat) -> ExitCode {
    logging::init(log);
    let faults = match Faults::from_env() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let spec = match config::load(path) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    exit_on_panic();
    if let Some(f) = faults.armed_fault() {
        tracing::warn!(fault = ?f, "FAULT INJECTION ARMED: SIGUSR1 will break this process on purpose (tests only)");
    }
    // Bind first: a port conflict must fail before anything else starts.
    let listener = match tokio::net::TcpListener::bind(spec.api.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: api.listen {}: {e}", spec.api.listen);
            return ExitCode::from(1);
        }
    };
    if let Err(e) = check_credentials(&spec).await {
        eprintln!("error: {e}");
        return ExitCode::from(3);
    }
    let checker = match Checker::for_spec(&spec) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let metrics = Arc::new(Metrics::new());
    let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
    let status = Arc::new(StatusStore::default());
    let liveness = Arc::new(Liveness::new());
    let floor = Arc::new(EpochFloor::default());
    let provider: Arc<dyn FloatProvider> =
        Arc::new(AwsProvider::connect(&spec.aws, &regions(&spec), metrics.clone()).await);
    let backend = lease_backend(&spec).await;
    tracing::info!(identity = backend.identity(), listen = %spec.api.listen, advertise = %spec.api.advertise, groups = spec.groups.len(), "floatover starting");

    let stop = CancellationToken::new();
    tokio::spawn(shutdown_signal(stop.clone()));
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
    let engine = Engine {
        floor,
        liveness: liveness.clone(),
        faults,
        ..Engine::new(
            spec.clone(),
            provider,
            board.clone(),
            leadership.clone(),
            metrics.clone(),
            status.clone(),
            rx,
        )
    };
    let mut tasks: JoinSet<&'static str> = JoinSet::new();
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
    let api_state = ApiState {
        spec: spec.clone(),
        status: status.clone(),
        metrics: metrics.clone(),
        leadership,
        board,
        commands: tx,
        liveness: liveness.clone(),
    };
    let api_stop = stop.clone();
    tasks.spawn(async move {
        if let Err(e) = api::serve(api_state, listener, api_stop).await {
            tracing::error!(error = %e, "API server failed");
        }
        "api"
    });
    let watch_stop = stop.clone();
    let (watch_metrics, watch_status) = (metrics.clone(), status.clone());
    tasks.spawn(async move {
        let mut was = false;
        loop {
            tokio::select! {
                _ = watch_stop.cancelled() => return "stall watch",
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let stalled = liveness.check().err();
            watch_metrics.set_stalled(stalled.is_some());
            if stalled.is_some() != was {
                was = stalled.is_some();
                watch_status.set_warning("stall", stalled.map(|s| format!("stalled: {s}")));
            }
        }
    });

    // Supervise: any task that ends before a shutdown was asked for is fatal.
    let mut failure: Option<String> = None;
    tokio::select! {
        biased;
        _ = stop.cancelled() => {}
        Some(r) = tasks.join_next() => {
            failure = Some(match r {
                Ok(name) => format!("the {name} task ended unexpectedly"),
                Err(e) => format!("a task failed: {e}"),
            });
        }
        Some(r) = probes.join_next() => {
            failure = Some(match r {
                Ok(()) => "a probe task ended unexpectedly".to_string(),
                Err(e) => format!("a probe task failed: {e}"),
            });
        }
    }
    // A task that ended because a shutdown was asked for in the meantime is no failure.
    if stop.is_cancelled() {
        failure = None;
    }
    if let Some(why) = &failure {
        tracing::error!(reason = %why, "fatal: stopping so that a standby takes over");
        stop.cancel();
    }
    // Orderly shutdown (engine finishes in-flight calls, then the lease is released), but
    // never longer than a deadline.
    let deadline = spec
        .aws
        .call_timeout
        .saturating_add(spec.leader.retry_period)
        .saturating_add(Duration::from_secs(3));
    let orderly = async {
        while tasks.join_next().await.is_some() {}
        probes.shutdown().await;
    };
    if tokio::time::timeout(deadline, orderly).await.is_err() {
        tracing::error!(deadline = %humantime::format_duration(deadline), "shutdown did not finish in time; exiting anyway");
        failure.get_or_insert_with(|| "shutdown deadline passed".into());
    }
    tracing::info!("floatover stopped");
    logging::drain(Duration::from_millis(300));
    if failure.is_some() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
