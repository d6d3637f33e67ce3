//! Wiring for `run` and `plan`: build the parts from a [`Spec`], start them, and stop them
//! in the order that keeps the fencing guarantee on shutdown: stop mutating, finish or
//! abandon in-flight calls, then release the lease.

use crate::app::App;
use crate::config::{self, GroupSource, LeaderBackend, Spec};
use crate::crd::publish::{PodEvents, Publisher};
use crate::crd::source::{ObjectSource, ObjectsState};
use crate::exit::Exit;
use crate::faults::Faults;
use crate::leader::kube::KubeStore;
use crate::leader::s3::S3Store;
use crate::leader::{
    CasLease, LeaseBackend, LeaseStore, QuorumLease, QuorumMember, SingleLease, default_identity,
};
use crate::logging::{self, LogFormat};
use crate::metrics::Metrics;
use crate::probe::Checker;
use crate::provider::FloatProvider;
use crate::provider::aws::{AwsProvider, sdk_config};
use crate::reload::ConfigWatch;
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

/// A Kubernetes client (in-cluster service account or KUBECONFIG) whose calls give up
/// after `timeout` and are not retried inside (the caller's next round is the retry), and
/// the namespace to use: `namespace`, else `$POD_NAMESPACE`, else the client's own.
async fn kube_client(
    what: &'static str,
    namespace: Option<&str>,
    context: Option<&str>,
    timeout: Duration,
) -> Result<(kube::Client, String), BootstrapError> {
    let mut config = match context {
        None => kube::Config::infer()
            .await
            .map_err(|source| BootstrapError::NoCluster { what, source })?,
        Some(c) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(c.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|source| BootstrapError::NoContext {
            what,
            context: c.to_string(),
            source,
        })?,
    };
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    config.connect_timeout = Some(timeout);
    config.default_retry = false;
    let ns = namespace
        .map(str::to_string)
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)
        .map_err(|source| BootstrapError::KubeClient { what, source })?;
    Ok((client, ns))
}

/// Build the lease backend the config asks for.
pub async fn lease_backend(spec: &Spec) -> Result<Box<dyn LeaseBackend>, BootstrapError> {
    let identity = identity(spec);
    let timing = spec.leader.timing();
    let api = Some(spec.api.advertise.clone());
    Ok(match &spec.leader.backend {
        LeaderBackend::Single => {
            tracing::warn!(
                "leader backend `single`: this replica is always leader; there is no high availability of the controller itself"
            );
            Box::new(SingleLease::new(identity))
        }
        one @ (LeaderBackend::Kubernetes { .. } | LeaderBackend::S3 { .. }) => {
            let store = lease_store(spec, one).await?;
            tracing::info!(lease = %store.location(), "leader election on one lease store");
            Box::new(CasLease::new(store, identity, timing).advertise(api))
        }
        LeaderBackend::Quorum { members } => {
            let mut stores = Vec::with_capacity(members.len());
            for m in members {
                stores.push(QuorumMember {
                    name: m.name.clone(),
                    store: lease_store(spec, &m.store).await?,
                });
            }
            tracing::info!(
                members = members.len(),
                "leader election on a quorum of lease stores"
            );
            Box::new(QuorumLease::new(stores, identity, timing, api))
        }
    })
}

/// One lease store (an S3 object or a Kubernetes Lease): the whole lease with one store,
/// one member of a quorum.
async fn lease_store(
    spec: &Spec,
    backend: &LeaderBackend,
) -> Result<Arc<dyn LeaseStore>, BootstrapError> {
    Ok(match backend {
        LeaderBackend::S3 {
            bucket,
            key,
            region,
            endpoint_url,
        } => {
            let client = lease_s3_client(spec, region, endpoint_url).await;
            Arc::new(S3Store::new(client, bucket.clone(), key.clone()))
        }
        LeaderBackend::Kubernetes {
            namespace,
            name,
            context,
        } => {
            let (client, ns) = lease_kube_client(spec, namespace, context).await?;
            Arc::new(KubeStore::new(client, &ns, name))
        }
        LeaderBackend::Single | LeaderBackend::Quorum { .. } => {
            return Err(BootstrapError::NotAMember);
        }
    })
}

/// Lease calls must answer well within the retry period; one attempt per round (the next
/// round is the retry).
fn lease_call_timeout(spec: &Spec) -> Duration {
    spec.leader.retry_period.max(Duration::from_millis(300))
}

async fn lease_s3_client(
    spec: &Spec,
    region: &str,
    endpoint_url: &Option<String>,
) -> aws_sdk_s3::Client {
    let creds = spec.aws.credentials.clone();
    s3_client(
        region,
        endpoint_url.as_deref(),
        lease_call_timeout(spec),
        1,
        creds,
    )
    .await
}

async fn lease_kube_client(
    spec: &Spec,
    namespace: &Option<String>,
    context: &Option<String>,
) -> Result<(kube::Client, String), BootstrapError> {
    kube_client(
        "leader.backend kubernetes",
        namespace.as_deref(),
        context.as_deref(),
        lease_call_timeout(spec),
    )
    .await
}

/// An S3 client for the lease bucket (path-style with an endpoint override: LocalStack
/// and other emulators serve no virtual hosts).
async fn s3_client(
    region: &str,
    endpoint_url: Option<&str>,
    timeout: Duration,
    attempts: u32,
    credentials: Option<aws_credential_types::Credentials>,
) -> aws_sdk_s3::Client {
    let base = sdk_config(region, endpoint_url, timeout, attempts, credentials).await;
    let conf = aws_sdk_s3::config::Builder::from(&base)
        .force_path_style(endpoint_url.is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Where the promotion record lives: next to the lease, `<key>.sites.json` beside the S3
/// lease, the ConfigMap `<lease>-sites` beside the Kubernetes Lease; with a single replica
/// in memory. With a quorum lease, a copy beside each member, good while a majority
/// answers ([`crate::site::quorum_store`]).
async fn run_store(spec: &Spec, backend: &LeaderBackend) -> Arc<dyn crate::site::store::RunStore> {
    use crate::site::store::{ConfigMapRunStore, MemRunStore, S3RunStore};
    match backend {
        LeaderBackend::S3 {
            bucket,
            key,
            region,
            endpoint_url,
        } => {
            let client = s3_client(
                region,
                endpoint_url.as_deref(),
                spec.aws.call_timeout,
                spec.aws.max_attempts,
                spec.aws.credentials.clone(),
            )
            .await;
            Arc::new(S3RunStore(S3Store::new(
                client,
                bucket.clone(),
                format!("{key}.sites.json"),
            )))
        }
        LeaderBackend::Single => Arc::new(MemRunStore::default()),
        LeaderBackend::Kubernetes {
            namespace,
            name,
            context,
        } => {
            let client = kube_client(
                "the site record",
                namespace.as_deref(),
                context.as_deref(),
                spec.aws.call_timeout,
            )
            .await;
            match client {
                Ok((client, ns)) => Arc::new(ConfigMapRunStore::new(client, &ns, name)),
                Err(e) => {
                    // The lease backend needs the same client and fails loudly first.
                    tracing::error!(error = %e, "sites: no Kubernetes client for the promotion record; keeping it in memory");
                    Arc::new(MemRunStore::default())
                }
            }
        }
        LeaderBackend::Quorum { members } => {
            let mut copies = Vec::with_capacity(members.len());
            for m in members {
                copies.push(crate::site::quorum_store::RecordCopy {
                    member: m.name.clone(),
                    store: Box::pin(run_store(spec, &m.store)).await,
                });
            }
            Arc::new(crate::site::quorum_store::QuorumRunStore::new(copies))
        }
    }
}

/// The site loop and the API's handle to it; the promotion record is kept where
/// [`run_store`] says.
async fn site_loop(
    spec: &Arc<Spec>,
    metrics: &Arc<Metrics>,
) -> (
    crate::site::supervisor::SiteHandle,
    crate::site::supervisor::Supervisor,
) {
    let store = run_store(spec, &spec.leader.backend).await;
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

/// The first SIGTERM/SIGINT asks for an orderly shutdown (`stop`); a second one means
/// "now": this returns, and `run` exits at once with [`Exit::Interrupted`] (a returned
/// outcome rather than an exit from a task, so that it can be tested).
pub async fn shutdown_on_signals<F, Fut>(mut next_signal: F, stop: CancellationToken)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<&'static str>>,
{
    tokio::select! {
        s = next_signal() => match s {
            Some(name) => tracing::info!("{name}: shutting down"),
            // No signals to wait for: only a shutdown asked for otherwise.
            None => std::future::pending::<()>().await,
        },
        _ = stop.cancelled() => {}
    }
    stop.cancel();
    if next_signal().await.is_none() {
        std::future::pending::<()>().await;
    }
    tracing::warn!("second signal: exiting at once");
}

/// SIGTERM or SIGINT, whichever comes first (None: they cannot be listened for).
fn process_signals() -> impl FnMut() -> futures::future::BoxFuture<'static, Option<&'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let both = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => Some(Arc::new(tokio::sync::Mutex::new((t, i)))),
        _ => {
            tracing::error!("cannot listen for SIGTERM/SIGINT");
            None
        }
    };
    move || {
        let both = both.clone();
        Box::pin(async move {
            let both = both?;
            let mut g = both.lock().await;
            let (term, int) = &mut *g;
            tokio::select! {
                _ = term.recv() => Some("SIGTERM"),
                _ = int.recv() => Some("SIGINT"),
            }
        })
    }
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
    let backend = lease_backend(spec).await?;
    Ok(Parts {
        listener,
        checker,
        provider,
        backend,
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
        let (handle, supervisor) = site_loop(spec, metrics).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Signals from a channel: the first asks for an orderly stop, the second returns.
    #[tokio::test(start_paused = true)]
    async fn a_second_signal_aborts_and_a_first_only_stops() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let next = move || {
            let rx = rx.clone();
            async move { rx.lock().await.recv().await }
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(shutdown_on_signals(next, stop.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!stop.is_cancelled() && !task.is_finished());
        tx.send("SIGTERM").expect("send");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(stop.is_cancelled(), "the first signal stops in order");
        assert!(!task.is_finished(), "and does not abort");
        tx.send("SIGINT").expect("send");
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the second signal aborts")
            .expect("no panic");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_asked_for_otherwise_still_waits_for_a_second_signal() {
        let stop = CancellationToken::new();
        let task = tokio::spawn(shutdown_on_signals(
            || std::future::ready(None::<&'static str>),
            stop.clone(),
        ));
        stop.cancel();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!task.is_finished(), "no signals: never an abort");
    }
}
