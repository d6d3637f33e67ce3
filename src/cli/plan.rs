//! `floatover plan`: probe long enough for every threshold to be crossed, observe, plan,
//! print. Never mutates (it does not even hold a fence). It plans through the same
//! adapters and planner as the engine, so the dry run decides exactly as the controller
//! would.

use crate::bootstrap::{check_credentials, regions};
use crate::config;
use crate::engine::{group_view, health_view, observed_view};
use crate::exit::Exit;
use crate::logging::{self, LogFormat};
use crate::metrics::Metrics;
use crate::model::{Assignment, Epoch, GroupName, Health, Holder, TargetId};
use crate::plan::{self, Action, GroupMemory, Note};
use crate::probe::{self, Checker, HealthBoard};
use crate::provider::FloatProvider;
use crate::provider::aws::AwsProvider;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What `plan` found for one group (printed as text, or as JSON with `--json`).
#[derive(Debug, Serialize)]
struct GroupReport {
    group: GroupName,
    targets: Vec<TargetReport>,
    floats: Vec<FloatReport>,
    /// Configured floats the provider does not know.
    missing_floats: Vec<String>,
    desired: Assignment,
    /// DNS: the change batches the leader would send, one per hosted zone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    batches: Vec<BatchReport>,
    actions: Vec<Action>,
    notes: Vec<Note>,
}

/// One Route 53 change batch of the plan: the zone and the records it would change.
#[derive(Debug, Serialize)]
struct BatchReport {
    zone_id: String,
    records: Vec<String>,
}

/// Group the plan's weight changes by hosted zone, as the provider sends them.
fn batches(g: &config::GroupSpec, actions: &[Action]) -> Vec<BatchReport> {
    let mut zones: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for a in actions {
        if let Action::SetWeights { float, .. } = a
            && let Some(rec) = g.float(float).and_then(|f| f.kind.dns())
        {
            zones
                .entry(rec.zone_id.clone())
                .or_default()
                .push(rec.name.clone());
        }
    }
    zones
        .into_iter()
        .map(|(zone_id, records)| BatchReport { zone_id, records })
        .collect()
}

#[derive(Debug, Serialize)]
struct TargetReport {
    name: TargetId,
    priority: u32,
    health: Health,
}

#[derive(Debug, Serialize)]
struct FloatReport {
    id: String,
    holder: String,
}

pub(super) async fn plan(path: &Path, json: bool) -> ExitCode {
    logging::init(LogFormat::Text);
    let spec = match config::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return Exit::Invalid.into();
        }
    };
    let checker = match Checker::for_spec(&spec) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure.into();
        }
    };
    let metrics = Arc::new(Metrics::new());
    let board = Arc::new(HealthBoard::new(&spec, Instant::now()));
    let stop = CancellationToken::new();
    let probes = probe::spawn_all(&spec, board.clone(), checker, metrics.clone(), stop.clone());
    let settle = probe_settle(&spec);
    eprintln!(
        "probing targets for {} ...",
        floatover_core::human::duration(settle)
    );
    if let Err(e) = check_credentials(&spec).await {
        eprintln!("error: {e}");
        return Exit::Failure.into();
    }
    let provider = AwsProvider::connect(&spec.aws, &regions(&spec), metrics).await;
    let floats: Vec<_> = spec
        .groups
        .iter()
        .flat_map(|g| g.floats.iter().cloned())
        .collect();
    let targets: Vec<_> = spec
        .groups
        .iter()
        .flat_map(|g| g.target_bindings())
        .collect();
    let (_, observed) = tokio::join!(
        tokio::time::sleep(settle),
        provider.observe(&floats, &targets)
    );
    stop.cancel();
    drop(probes);
    let observed = match observed {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: cannot read provider state: {e}");
            return Exit::Failure.into();
        }
    };
    let missing_instances = match missing_instances(&spec, &provider).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: cannot read provider state: {e}");
            return Exit::Failure.into();
        }
    };
    let mut any_missing = !missing_instances.is_empty();
    for i in &missing_instances {
        eprintln!("error: instance {i} (a target's instance_id) does not exist at the provider");
    }
    let now = Instant::now();
    let snap = board.snapshot();
    let mut reports = Vec::new();
    for g in &spec.groups {
        let (report, missing) = group_report(g, &snap, &observed, now);
        any_missing |= missing;
        reports.push(report);
    }
    let sites: Vec<_> = spec
        .sites
        .iter()
        .map(crate::site::outline::site_plan)
        .collect();
    let readiness = preflight_all(&spec).await;
    if let Err(code) = render(json, &reports, &sites, &readiness) {
        return code;
    }
    if any_missing {
        eprintln!("error: the config names resources that do not exist (see above)");
        return Exit::Invalid.into();
    }
    ExitCode::SUCCESS
}

/// How long to probe before planning: until every probe could decide (at most a minute).
fn probe_settle(spec: &crate::config::Spec) -> Duration {
    spec.groups
        .iter()
        .flat_map(|g| g.targets.iter().flat_map(|t| t.probes.iter()))
        .map(|p| {
            p.interval
                .checked_mul(p.rise.max(p.fall))
                .and_then(|d| d.checked_add(p.timeout))
                .unwrap_or(Duration::from_secs(60))
        })
        .max()
        .unwrap_or_default()
        .min(Duration::from_secs(60))
}

/// Targets' instances that do not exist at the provider.
async fn missing_instances(
    spec: &crate::config::Spec,
    provider: &AwsProvider,
) -> Result<Vec<String>, crate::provider::ProviderError> {
    let mut missing = Vec::new();
    for r in regions(spec) {
        let ids: Vec<String> = spec
            .groups
            .iter()
            .flat_map(|g| g.targets.iter())
            .filter(|t| t.region == r)
            .filter_map(|t| t.bindings.ec2.as_ref()?.instance_id.clone())
            .collect();
        missing.extend(provider.missing_instances(&r, &ids).await?);
    }
    Ok(missing)
}

/// One group's plan as the newest leader would make it; true when a float is missing.
fn group_report(
    g: &crate::config::GroupSpec,
    snap: &std::collections::HashMap<crate::model::TargetKey, crate::probe::TargetHealth>,
    observed: &std::collections::HashMap<String, crate::provider::Observation>,
    now: Instant,
) -> (GroupReport, bool) {
    let health = health_view(g, snap);
    let obs = observed_view(g, observed);
    // Plan as the newest leader would: no stamp fences it. Failback timing is judged as
    // if the current health had held for the whole probing window.
    let epoch = obs
        .values()
        .filter_map(|o| o.stamp.as_ref().map(|s| s.epoch))
        .max()
        .unwrap_or(Epoch(1));
    let view = group_view(g);
    let p = plan::plan_group(&plan::Input {
        group: &view,
        health: &health,
        observed: &obs,
        memory: &GroupMemory::default(),
        epoch,
        now: now.into_std(),
    });
    let missing_floats: Vec<String> = g
        .floats
        .iter()
        .filter(|f| !observed.contains_key(&f.id))
        .map(|f| f.id.clone())
        .collect();
    let missing = !missing_floats.is_empty();
    let report = GroupReport {
        group: g.name.clone(),
        targets: g
            .targets
            .iter()
            .map(|t| TargetReport {
                name: t.id.clone(),
                priority: t.priority,
                health: health.get(&t.id).map_or(Health::Unknown, |h| h.health),
            })
            .collect(),
        floats: g
            .floats
            .iter()
            .filter_map(|f| {
                obs.get(&f.id).map(|o| FloatReport {
                    id: f.id.clone(),
                    holder: o.holder.to_string(),
                })
            })
            .collect(),
        missing_floats,
        batches: batches(g, &p.actions),
        desired: p.desired,
        actions: p.actions,
        notes: p.notes,
    };
    (report, missing)
}

/// Pre-flight on demand: could each site's plan run right now?
async fn preflight_all(spec: &crate::config::Spec) -> Vec<serde_json::Value> {
    let ops = crate::provider::aws::sites::AwsSiteOps::new(&spec.aws, Arc::new(Metrics::new()));
    let mut readiness = Vec::new();
    for s in &spec.sites {
        let r = crate::site::preflight::check(spec, &ops, s, crate::status::unix_ms()).await;
        readiness.push(serde_json::json!({
            "site": s.name,
            "ready": r.ready,
            "problems": r.problems,
            "lag_ms": r.lag_ms,
            "lag_error": r.lag_error,
            "rpo_ms": s.data.as_ref().and_then(|d| d.rpo).map(|d| d.as_millis() as u64),
        }));
    }
    readiness
}

fn render(
    json: bool,
    reports: &[GroupReport],
    sites: &[crate::site::outline::SitePlan],
    readiness: &[serde_json::Value],
) -> Result<(), ExitCode> {
    if json {
        let all = serde_json::json!({ "groups": reports, "sites": sites, "preflight": readiness });
        match serde_json::to_string_pretty(&all) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot render the plan as JSON: {e}");
                return Err(Exit::Failure.into());
            }
        }
    } else {
        print!("{}", text(reports));
        print!("{}", crate::site::outline::text(sites));
        for r in readiness {
            let name = r["site"].as_str().unwrap_or("");
            let rpo = r["rpo_ms"]
                .as_u64()
                .map(|x| format!(" (RPO {:.1} s)", x as f64 / 1000.0))
                .unwrap_or_default();
            match (r["lag_ms"].as_u64(), r["lag_error"].as_str()) {
                (Some(l), _) => {
                    println!(
                        "site {name}: replication lag {:.1} s{rpo}",
                        l as f64 / 1000.0
                    )
                }
                (None, Some(e)) => println!("site {name}: replication lag unknown: {e}{rpo}"),
                _ => {}
            }
            match r["problems"].as_array().filter(|p| !p.is_empty()) {
                None => println!(
                    "site {}: pre-flight ok (the plan could run now)",
                    r["site"].as_str().unwrap_or("")
                ),
                Some(p) => {
                    println!("site {}: NOT READY", r["site"].as_str().unwrap_or(""));
                    for x in p {
                        println!("  - {}", x.as_str().unwrap_or(""));
                    }
                }
            }
        }
    }
    Ok(())
}

fn holder_text(h: &Holder) -> String {
    match h {
        Holder::Nobody => "nobody".into(),
        Holder::Target(t) => t.0.clone(),
        Holder::Foreign(id) => id.clone(),
    }
}

/// The plan for people.
fn text(reports: &[GroupReport]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for g in reports {
        let desired = match &g.desired {
            Assignment::Owner(o) => format!(
                "desired owner {}",
                o.as_ref().map_or("(none healthy)", |t| t.0.as_str())
            ),
            Assignment::Weights(w) => {
                let parts: Vec<String> = w.iter().map(|(t, n)| format!("{t}={n}")).collect();
                format!("desired weights {}", parts.join(" "))
            }
        };
        let _ = writeln!(out, "group {}: {desired}", g.group);
        for t in &g.targets {
            let _ = writeln!(
                out,
                "  target {:<20} priority {:<5} {}",
                t.name.0,
                t.priority,
                t.health.as_str()
            );
        }
        for m in &g.missing_floats {
            let _ = writeln!(out, "  ERROR float {m} does not exist at the provider");
        }
        if g.actions.is_empty() {
            let _ = writeln!(out, "  no change");
        }
        for a in &g.actions {
            let line = match a {
                Action::Move {
                    float,
                    from,
                    to,
                    reason,
                    ..
                } => format!(
                    "WOULD move {float} from {} to {to} ({reason})",
                    holder_text(from)
                ),
                Action::SetWeights {
                    float,
                    from,
                    weights,
                    reason,
                    ..
                } => format!(
                    "WOULD set weights of {float} to {} (now {}) ({reason})",
                    crate::engine::show_weights(weights),
                    crate::engine::show_weights(from),
                ),
                Action::Release { float, from, .. } => format!(
                    "WOULD release {float} from {} to (nobody) (release)",
                    holder_text(from)
                ),
            };
            let _ = writeln!(out, "  {line}");
        }
        for b in &g.batches {
            let _ = writeln!(
                out,
                "  WOULD send 1 batch to zone {}: {} (plus each record's stamp and version swap)",
                b.zone_id,
                b.records.join(", ")
            );
        }
        for n in &g.notes {
            let _ = writeln!(
                out,
                "  note: {}",
                serde_json::to_string(n).unwrap_or_else(|_| format!("{n:?}"))
            );
        }
    }
    out
}
