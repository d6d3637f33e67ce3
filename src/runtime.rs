//! Wiring for `run` and `plan`: build the parts from a [`Spec`], start them, and stop them
//! in the order that keeps the fencing guarantee on shutdown: stop mutating, finish or
//! abandon in-flight calls, then release the lease.

use crate::api::{self, ApiState};
use crate::cli::LogFormat;
use crate::config::{self, LeaderBackend, Spec};
use crate::engine::Engine;
use crate::leader::s3::{LeaseTiming, S3Lease};
use crate::leader::{Elector, LeaseBackend, SingleLease, default_identity};
use crate::metrics::Metrics;
use crate::model::{Epoch, Health};
use crate::plan::{self, GroupMemory};
use crate::probe::{self, Checker, HealthBoard};
use crate::provider::FloatProvider;
use crate::provider::aws::{AwsProvider, sdk_config};
use crate::status::StatusStore;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FLOATOVER_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
        });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().flatten_event(true).try_init(),
        LogFormat::Text => b.try_init(),
    };
}

fn regions(spec: &Spec) -> Vec<String> {
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
            Box::new(S3Lease::new(
                aws_sdk_s3::Client::from_conf(conf),
                bucket.clone(),
                key.clone(),
                identity,
                LeaseTiming {
                    lease: spec.leader.lease_duration,
                    renew_deadline: spec.leader.renew_deadline,
                    retry: spec.leader.retry_period,
                },
            ))
        }
    }
}

async fn shutdown_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = stop.cancelled() => {}
    }
    stop.cancel();
}

/// `floatover run`.
pub async fn run(path: &Path, log: LogFormat) -> ExitCode {
    init_tracing(log);
    let spec = match config::load(path) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    // Bind first: a port conflict must fail before anything else starts.
    let listener = match tokio::net::TcpListener::bind(spec.api.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: api.listen {}: {e}", spec.api.listen);
            return ExitCode::from(1);
        }
    };
    let checker = match Checker::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let metrics = Arc::new(Metrics::new());
    let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
    let status = Arc::new(StatusStore::default());
    let provider: Arc<dyn FloatProvider> =
        Arc::new(AwsProvider::connect(&spec.aws, &regions(&spec), metrics.clone()).await);
    let backend = lease_backend(&spec).await;
    tracing::info!(identity = backend.identity(), listen = %spec.api.listen, groups = spec.groups.len(), "floatover starting");

    let stop = CancellationToken::new();
    tokio::spawn(shutdown_signal(stop.clone()));
    let mut probes = probe::spawn_all(&spec, board.clone(), checker, metrics.clone(), stop.clone());
    let (elector, leadership) = Elector::new(backend);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let engine = Engine {
        spec: spec.clone(),
        provider,
        board: board.clone(),
        leadership: leadership.clone(),
        metrics: metrics.clone(),
        status: status.clone(),
        commands: rx,
    };
    let (engine_done_tx, engine_done_rx) = tokio::sync::oneshot::channel::<()>();
    let engine_stop = stop.clone();
    let engine_task = tokio::spawn(async move {
        engine.run(engine_stop).await;
        let _ = engine_done_tx.send(());
    });
    let elector_task = elector.spawn(stop.clone(), async move {
        let _ = engine_done_rx.await;
    });
    let api_state = ApiState {
        spec: spec.clone(),
        status,
        metrics,
        leadership,
        board,
        commands: tx,
    };
    let api_task = tokio::spawn(api::serve(api_state, listener, stop.clone()));

    stop.cancelled().await;
    let _ = engine_task.await;
    let _ = elector_task.await;
    probes.shutdown().await;
    let _ = api_task.await;
    tracing::info!("floatover stopped");
    ExitCode::SUCCESS
}

/// `floatover plan`: probe long enough for every threshold to be crossed, observe, plan,
/// print. Never mutates (it does not even hold a fence).
pub async fn plan(path: &Path, json: bool) -> ExitCode {
    init_tracing(LogFormat::Text);
    let spec = match config::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let checker = match Checker::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let metrics = Arc::new(Metrics::new());
    let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
    let stop = CancellationToken::new();
    let probes = probe::spawn_all(&spec, board.clone(), checker, metrics.clone(), stop.clone());
    let settle = spec
        .groups
        .iter()
        .flat_map(|g| g.targets.iter().flat_map(|t| t.probes.iter()))
        .map(|p| p.interval * p.rise.max(p.fall) + p.timeout)
        .max()
        .unwrap_or_default()
        .min(Duration::from_secs(60));
    eprintln!(
        "probing targets for {} ...",
        humantime::format_duration(settle)
    );
    let provider = AwsProvider::connect(&spec.aws, &regions(&spec), metrics).await;
    let floats: Vec<_> = spec
        .groups
        .iter()
        .flat_map(|g| g.floats.iter().cloned())
        .collect();
    let enis: Vec<_> = spec
        .groups
        .iter()
        .flat_map(|g| g.targets.iter())
        .filter_map(|t| t.binding.eni_id.clone().map(|e| (t.region.clone(), e)))
        .collect();
    let (_, observed) = tokio::join!(tokio::time::sleep(settle), provider.observe(&floats, &enis));
    stop.cancel();
    drop(probes);
    let observed = match observed {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: cannot read provider state: {e}");
            return ExitCode::from(3);
        }
    };
    let now = Instant::now();
    let snap = board.snapshot();
    let mut out = Vec::new();
    for g in &spec.groups {
        let health = crate::engine::health_view(g, &snap);
        let obs = crate::engine::observed_view(g, &observed);
        // Plan as the newest leader would: no stamp fences it. Failback timing is judged as
        // if the current health had held for the whole probing window.
        let epoch = obs
            .values()
            .filter_map(|o| o.stamp.as_ref().map(|s| s.epoch))
            .max()
            .unwrap_or(Epoch(1));
        let p = plan::plan_group(&plan::Input {
            spec: g,
            health: &health,
            observed: &obs,
            memory: &GroupMemory::default(),
            epoch,
            now,
        });
        let missing: Vec<&str> = g
            .floats
            .iter()
            .filter(|f| !observed.contains_key(&f.id))
            .map(|f| f.id.as_str())
            .collect();
        out.push(serde_json::json!({
            "group": g.name.0,
            "targets": g.targets.iter().map(|t| serde_json::json!({"name": t.id.0, "priority": t.priority, "health": health.get(&t.id).map(|h| h.health).unwrap_or(Health::Unknown).as_str()})).collect::<Vec<_>>(),
            "floats": obs.iter().map(|(id, o)| serde_json::json!({"id": id, "holder": o.holder.to_string()})).collect::<Vec<_>>(),
            "missing_floats": missing,
            "desired": p.desired,
            "actions": p.actions,
            "notes": p.notes,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for g in &out {
            println!(
                "group {}: desired owner {}",
                g["group"].as_str().unwrap_or("?"),
                g["desired"].as_str().unwrap_or("(none healthy)")
            );
            for t in g["targets"].as_array().into_iter().flatten() {
                println!(
                    "  target {:<20} priority {:<5} {}",
                    t["name"].as_str().unwrap_or("?"),
                    t["priority"],
                    t["health"].as_str().unwrap_or("?")
                );
            }
            for m in g["missing_floats"].as_array().into_iter().flatten() {
                println!(
                    "  WARNING float {} was not found at the provider",
                    m.as_str().unwrap_or("?")
                );
            }
            let actions = g["actions"].as_array().cloned().unwrap_or_default();
            if actions.is_empty() {
                println!("  no change");
            }
            for a in actions {
                println!(
                    "  WOULD {} {} from {} to {} ({})",
                    a["action"].as_str().unwrap_or("?"),
                    a["float"]["id"].as_str().unwrap_or("?"),
                    a["from"]["id"]
                        .as_str()
                        .unwrap_or(a["from"]["kind"].as_str().unwrap_or("?")),
                    a["to"].as_str().unwrap_or("(nobody)"),
                    a["reason"].as_str().unwrap_or("release")
                );
            }
            for n in g["notes"].as_array().into_iter().flatten() {
                println!("  note: {n}");
            }
        }
    }
    ExitCode::SUCCESS
}

/// Human rendering of `GET /api/v1/status`.
pub fn render_status(body: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let l = &body["leader"];
    let _ = writeln!(
        s,
        "replica {} - {} (epoch {}, lease holder {})",
        l["identity"].as_str().unwrap_or("?"),
        if l["is_leader"].as_bool().unwrap_or(false) {
            "LEADER"
        } else {
            "standby"
        },
        l["epoch"],
        l["holder"].as_str().unwrap_or("none")
    );
    if let Some(e) = body["observe_error"].as_str() {
        let _ = writeln!(s, "provider observation failing: {e}");
    }
    for g in body["groups"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "group {}: desired owner {}",
            g["name"].as_str().unwrap_or("?"),
            g["desired"].as_str().unwrap_or("(none)")
        );
        for t in g["targets"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "  target {:<16} prio {:<4} {:<8} for {:>6} ms {}",
                t["name"].as_str().unwrap_or("?"),
                t["priority"],
                t["health"].as_str().unwrap_or("?"),
                t["for_ms"],
                t["last_error"].as_str().unwrap_or("")
            );
        }
        for f in g["floats"].as_array().into_iter().flatten() {
            let holder = f["holder"]["id"]
                .as_str()
                .unwrap_or(f["holder"]["kind"].as_str().unwrap_or("?"));
            let _ = writeln!(
                s,
                "  float  {:<40} on {}",
                f["id"].as_str().unwrap_or("?"),
                holder
            );
        }
        for n in g["notes"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    for e in body["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take(10)
    {
        let _ = writeln!(
            s,
            "  move {} {} -> {} ({}, epoch {}, {:.1} ms){}",
            e["float"].as_str().unwrap_or("?"),
            e["from"]["id"].as_str().unwrap_or("-"),
            e["to"].as_str().unwrap_or("(released)"),
            e["reason"].as_str().unwrap_or("?"),
            e["epoch"],
            e["call_ms"].as_f64().unwrap_or(0.0),
            if e["ok"].as_bool().unwrap_or(false) {
                String::new()
            } else {
                format!(" FAILED: {}", e["error"].as_str().unwrap_or(""))
            }
        );
    }
    s
}
