//! Wiring for `run` and `plan`: build the parts from a [`Spec`], start them, and stop them
//! in the order that keeps the fencing guarantee on shutdown: stop mutating, finish or
//! abandon in-flight calls, then release the lease. [`stores`] builds the lease and the
//! promotion record once per backend; [`signals`] turns SIGTERM/SIGINT into a stop.

mod signals;
mod stores;

use signals::process_signals;
pub use signals::shutdown_on_signals;
use stores::kube_client;

use crate::app::App;
use crate::config::{self, GroupSource, LeaderBackend, Spec};
use crate::crd::publish::{PodEvents, Publisher};
use crate::crd::source::{ObjectSource, ObjectsState};
use crate::exit::Exit;
use crate::faults::Faults;
use crate::leader::{LeaseBackend, default_identity};
use crate::logging::{self, LogFormat};
use crate::metrics::Metrics;
use crate::probe::Checker;
use crate::provider::FloatProvider;
use crate::provider::aws::{AwsProvider, sdk_config};
use crate::reload::ConfigWatch;
use crate::site::store::RunStore;
use crate::status::StatusStore;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the credentials message tells a user to set.
const CREDENTIALS_HINT: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (LocalStack accepts test / test), or AWS_PROFILE, or run with an instance or pod role (IRSA)";

/// Why the controller cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{what}: no cluster to talk to (in-cluster service account or KUBECONFIG): {source}")]
    NoCluster {
        what: &'static str,
        #[source]
        source: kube::config::InferConfigError,
    },
    #[error("{what}: kubeconfig context {context:?}: {source}")]
    NoContext {
        what: &'static str,
        context: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("a quorum member must be an s3 or kubernetes store")]
    NotAMember,
    #[error("{what}: {source}")]
    KubeClient {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("no AWS credentials: {CREDENTIALS_HINT}")]
    NoCredentialChain,
    #[error("no AWS credentials found: {CREDENTIALS_HINT}")]
    NoCredentials,
    #[error(
        "no AWS credentials within 10s (the credential chain is still looking): {CREDENTIALS_HINT}"
    )]
    CredentialsSlow,
    #[error("api.listen {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Checker(#[from] crate::probe::CheckerError),
}

impl BootstrapError {
    /// The exit code it deserves: a taken port is the config's fault, the rest the
    /// environment's.
    pub fn exit(&self) -> Exit {
        match self {
            BootstrapError::Listen { .. } => Exit::Invalid,
            _ => Exit::Failure,
        }
    }
}

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

/// This replica's identity: `leader.identity`, else `$POD_NAME`, else host-pid-random.
fn identity(spec: &Spec) -> String {
    spec.leader
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(default_identity)
}

/// The site loop and the API's handle to it; the promotion record is kept where
/// [`stores`] put it.
fn site_loop(
    spec: &Arc<Spec>,
    store: Arc<dyn RunStore>,
    metrics: &Arc<Metrics>,
) -> (
    crate::site::supervisor::SiteHandle,
    crate::site::supervisor::Supervisor,
) {
    let approvals = Arc::new(crate::site::promote::Approvals::default());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    (
        crate::site::supervisor::SiteHandle {
            requests: tx,
            approvals: approvals.clone(),
        },
        crate::site::supervisor::Supervisor {
            spec: spec.clone(),
            store,
            ops: Arc::new(crate::provider::aws::sites::AwsSiteOps::new(
                &spec.aws,
                metrics.clone(),
            )),
            approvals,
            requests: rx,
        },
    )
}

/// A panic anywhere ends the process (exit 70) after logging it: a half-dead controller
/// that keeps its lease is worse than a dead one, which a standby replaces.
fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "fatal: a task panicked; exiting so that a standby takes over");
        logging::emergency_line(&format!("floatover: fatal: {info}"));
        logging::drain(Duration::from_millis(300));
        std::process::exit(i32::from(Exit::Panic.code()));
    }));
}

/// One line that says what to set when the SDK finds no credentials.
pub async fn check_credentials(spec: &Spec) -> Result<(), BootstrapError> {
    use aws_credential_types::provider::ProvideCredentials;
    let conf = sdk_config(
        &spec.aws.default_region,
        spec.aws.endpoint_url.as_deref(),
        spec.aws.call_timeout,
        1,
        spec.aws.credentials.clone(),
    )
    .await;
    let Some(p) = conf.credentials_provider() else {
        return Err(BootstrapError::NoCredentialChain);
    };
    match tokio::time::timeout(Duration::from_secs(10), p.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(BootstrapError::NoCredentials),
        Err(_) => Err(BootstrapError::CredentialsSlow),
    }
}

/// What one run of the controller needs besides its config.
struct Parts {
    listener: tokio::net::TcpListener,
    checker: Checker,
    provider: Arc<dyn FloatProvider>,
    backend: Box<dyn LeaseBackend>,
    runs: Arc<dyn RunStore>,
}

/// Build the parts for `spec`; the error says what failed and the exit code it deserves.
async fn parts(spec: &Spec, metrics: &Arc<Metrics>) -> Result<Parts, BootstrapError> {
    // Bind first: a port conflict must fail before anything else starts. After a reload
    // the old listener was just closed: retry briefly.
    let mut bound = tokio::net::TcpListener::bind(spec.api.listen).await;
    for _ in 0..20 {
        if bound.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        bound = tokio::net::TcpListener::bind(spec.api.listen).await;
    }
    let listener = bound.map_err(|source| BootstrapError::Listen {
        addr: spec.api.listen,
        source,
    })?;
    check_credentials(spec).await?;
    let checker = Checker::for_spec(spec)?;
    let provider: Arc<dyn FloatProvider> =
        Arc::new(AwsProvider::connect(&spec.aws, &regions(spec), metrics.clone()).await);
    let stores = stores::build(spec).await?;
    Ok(Parts {
        listener,
        checker,
        provider,
        backend: stores.lease,
        runs: stores.runs,
    })
}

/// The config to start with, the config watcher, and (with `group_source: kubernetes`)
/// the client, namespace and shared state of the FloatGroups.
struct Start {
    watch: ConfigWatch,
    spec: Spec,
    objects: Option<Objects>,
}

type Objects = (kube::Client, String, Arc<ObjectsState>);

/// Read the config (file and objects) and start watching it; an error is printed here.
async fn start(
    path: &Path,
    metrics: &Arc<Metrics>,
    status: &Arc<StatusStore>,
) -> Result<Start, Exit> {
    let file_spec = config::load(path).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        Exit::Invalid
    })?;
    // With FloatGroups as the group source: one client for reading them and for the
    // leader's status and Events, and the objects' state shared by both.
    let objects = match &file_spec.group_source {
        GroupSource::File => None,
        GroupSource::Kubernetes { namespace } => {
            let timeout = Duration::from_secs(5);
            let (client, ns) = kube_client(
                "group_source kubernetes",
                namespace.as_deref(),
                None,
                timeout,
            )
            .await
            .map_err(|e| {
                eprintln!("error: {e}");
                Exit::Failure
            })?;
            tracing::info!(namespace = %ns, "groups come from FloatGroup objects");
            Some((client, ns, Arc::new(ObjectsState::default())))
        }
    };
    let source = objects
        .as_ref()
        .map(|(c, ns, st)| ObjectSource::new(c.clone(), ns, st.clone()));
    let (mut watch, spec) = ConfigWatch::start(path.to_path_buf(), source, metrics, status)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            Exit::Failure
        })?;
    // In a cluster, a refused config file is also an Event on this Pod.
    let pod_client = match (&objects, &spec.leader.backend) {
        (Some((c, ns, _)), _) => Some((c.clone(), ns.clone())),
        (
            None,
            LeaderBackend::Kubernetes {
                namespace, context, ..
            },
        ) => kube_client(
            "config events",
            namespace.as_deref(),
            context.as_deref(),
            Duration::from_secs(5),
        )
        .await
        .ok(),
        _ => None,
    };
    watch = watch.with_events(pod_client.and_then(|(c, ns)| PodEvents::new(c, &ns)));
    Ok(Start {
        watch,
        spec,
        objects,
    })
}

/// The controller for `spec` with its sidecars (FloatGroup status, the site loop).
async fn controller(
    spec: &Arc<Spec>,
    parts: Parts,
    objects: &Option<Objects>,
    faults: &Faults,
    metrics: &Arc<Metrics>,
    status: &Arc<StatusStore>,
) -> (App, tokio::net::TcpListener) {
    let Parts {
        listener,
        checker,
        provider,
        backend,
        runs,
    } = parts;
    let mut app = App::new(spec.clone(), provider, backend, checker)
        .with_faults(faults.clone())
        .with_metrics(metrics.clone())
        .with_status(status.clone());
    if let Some((client, ns, state)) = objects {
        let publisher = Publisher::new(
            client.clone(),
            ns,
            &identity(spec),
            state.clone(),
            status.clone(),
        );
        app = app.with_sidecar(
            "FloatGroup status",
            Box::new(move |cx| Box::pin(publisher.run(cx.leadership, cx.stop))),
        );
    }
    if let Some(votes) = spec.health_votes.clone() {
        app = app.with_sidecar(
            "health votes",
            Box::new(move |cx| {
                Box::pin(crate::probe::peers::run(
                    votes,
                    cx.board,
                    cx.metrics,
                    cx.liveness,
                    cx.stop,
                ))
            }),
        );
    }
    if !spec.sites.is_empty() {
        let (handle, supervisor) = site_loop(spec, runs, metrics);
        app = app.with_sites(handle).with_sidecar(
            "site supervisor",
            Box::new(move |cx| Box::pin(supervisor.run(cx))),
        );
    }
    (app, listener)
}

/// After a reload: the parts for the new config, or, if it cannot start, for the
/// previous one again (the status says why). Err: neither can start.
async fn reload_parts(
    new: Arc<Spec>,
    spec: &mut Arc<Spec>,
    metrics: &Arc<Metrics>,
    status: &StatusStore,
) -> Result<Parts, BootstrapError> {
    match parts(&new, metrics).await {
        Ok(p) => {
            tracing::info!(
                groups = new.groups.len(),
                "config reload: the controller runs the new config"
            );
            *spec = new;
            Ok(p)
        }
        Err(e) => {
            tracing::error!(error = %e, "config reload: cannot start with the new config; going back to the previous one");
            metrics.set_config_valid(false);
            status.set_warning(
                "config",
                Some(format!(
                    "config reload failed to start, the previous config runs again: {e}"
                )),
            );
            parts(spec, metrics).await.inspect_err(|e| {
                tracing::error!(error = %e, "cannot start again with the previous config either");
            })
        }
    }
}

/// `floatover run`.
pub async fn run(path: &Path, log: LogFormat) -> ExitCode {
    logging::init(log);
    let faults = match Faults::from_env() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid.into();
        }
    };
    exit_on_panic();
    if let Some(f) = faults.armed_fault() {
        tracing::warn!(fault = ?f, "FAULT INJECTION ARMED: SIGUSR1 will break this process on purpose (tests only)");
    }
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(StatusStore::default());
    let Start {
        mut watch,
        spec,
        objects,
    } = match start(path, &metrics, &status).await {
        Ok(s) => s,
        Err(code) => return code.into(),
    };
    let mut spec = Arc::new(spec);
    let mut current = match parts(&spec, &metrics).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit().into();
        }
    };
    metrics.set_config_valid(true);
    let stop = CancellationToken::new();
    let aborted = tokio::spawn(shutdown_on_signals(process_signals(), stop.clone()));
    let aborted = async move {
        let _ = aborted.await;
    };
    tokio::pin!(aborted);

    // The config watcher hands each new valid config over; a rejected one is reported
    // there and never reaches the loop below.
    let (specs_tx, specs_rx) = tokio::sync::mpsc::channel::<Arc<Spec>>(1);
    let (wm, ws) = (metrics.clone(), status.clone());
    tokio::spawn(async move {
        loop {
            let next = watch.next(&wm, &ws).await;
            if specs_tx.send(next).await.is_err() {
                return;
            }
        }
    });
    let specs_rx = Arc::new(tokio::sync::Mutex::new(specs_rx));

    let code = loop {
        let (next_tx, mut next_rx) = tokio::sync::oneshot::channel::<Arc<Spec>>();
        let (stop2, rx) = (stop.clone(), specs_rx.clone());
        let shutdown = async move {
            let mut rx = rx.lock().await;
            tokio::select! {
                _ = stop2.cancelled() => {}
                Some(s) = rx.recv() => { let _ = next_tx.send(s); }
            }
        };
        let (app, listener) =
            controller(&spec, current, &objects, &faults, &metrics, &status).await;
        let result = tokio::select! {
            r = app.run(listener, shutdown) => r,
            _ = &mut aborted => break Exit::Interrupted.into(),
        };
        let next = next_rx.try_recv().ok();
        match (result, next) {
            (Ok(()), Some(new)) if !stop.is_cancelled() => {
                current = match reload_parts(new, &mut spec, &metrics, &status).await {
                    Ok(p) => p,
                    Err(e) => break e.exit().into(),
                };
            }
            (result, _) => {
                tracing::info!("floatover stopped");
                break match result {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => Exit::Failure.into(),
                };
            }
        }
    };
    logging::drain(Duration::from_millis(300));
    code
}
