//! Pre-flight: could this site's plan run right now? Checked in the background (every
//! `site_policy.preflight_interval`) by every replica and shown in status and as
//! `floatover_site_ready{site}`. Local checks (hooks runnable, secrets set, an approval
//! can be given, every step kind available) need nothing; provider checks read the
//! standbys' states (a terminated one cannot start), prove StartInstances with DryRun (on
//! real AWS that checks permissions; LocalStack says yes to anything, so existence and
//! state come from DescribeInstances), and look the launch template or AMI up.

use super::ops::SiteOps;
use super::spec::{SiteSpec, Step, StepKind};
use crate::config::Spec;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The verdict for one site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    /// Why not (empty when ready).
    pub problems: Vec<String>,
    pub checked_unix_ms: u64,
    /// The site's replication lag at the check (None: no lag source, or unreadable).
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// Why the lag could not be read.
    #[serde(default)]
    pub lag_error: Option<String>,
}

fn runnable(prog: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let ok = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if prog.contains('/') {
        return ok(Path::new(prog));
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| ok(&d.join(prog))))
}

fn flat(steps: &[Step]) -> Vec<&Step> {
    steps
        .iter()
        .flat_map(|s| match &s.kind {
            StepKind::Parallel(inner) => inner.iter().collect::<Vec<_>>(),
            _ => vec![s],
        })
        .collect()
}

/// What can be checked without the provider.
pub fn local_problems(
    spec: &Spec,
    site: &SiteSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut v = Vec::new();
    for s in flat(&site.steps) {
        match &s.kind {
            StepKind::Exec { command, .. } => {
                if let Some(prog) = command.first()
                    && !runnable(prog)
                {
                    v.push(format!(
                        "step {}: {prog} is not an executable file here",
                        s.name
                    ));
                }
            }
            StepKind::Webhook {
                secret_env: Some(var),
                ..
            } if env(var).is_none_or(|x| x.is_empty()) => {
                v.push(format!("step {}: secret_env {var} is not set", s.name));
            }
            StepKind::Approval if spec.api.token.is_none() => v.push(format!(
                "step {}: nobody can approve: set api.token or api.token_env",
                s.name
            )),
            _ => {}
        }
    }
    v
}

/// What needs the provider.
pub async fn provider_problems(ops: &dyn SiteOps, site: &SiteSpec) -> Vec<String> {
    let mut v = Vec::new();
    if !site.instances.is_empty() {
        match ops.describe_instances(&site.region, &site.instances).await {
            Ok(states) => {
                for id in &site.instances {
                    match states.get(id).map(|v| v.state.as_str()) {
                        None => v.push(format!("instance {id} does not exist in {}", site.region)),
                        Some(st @ ("terminated" | "shutting-down")) => {
                            v.push(format!("instance {id} is {st}: it cannot be started"))
                        }
                        Some(_) => {}
                    }
                }
            }
            // A missing id fails the whole describe call on AWS: name it.
            Err(e) => v.push(e.to_string()),
        }
        if v.is_empty()
            && let Err(e) = ops.can_start(&site.region, &site.instances).await
        {
            v.push(format!("StartInstances would be refused: {e}"));
        }
    }
    if let Some((name, desired)) = &site.auto_scaling {
        match ops.scaling_group(&site.region, name).await {
            Ok(None) => v.push(format!(
                "Auto Scaling group {name} does not exist in {}",
                site.region
            )),
            Ok(Some(g)) if *desired > g.max => v.push(format!(
                "Auto Scaling group {name}: desired {desired} is above its max size {}",
                g.max
            )),
            Ok(Some(_)) => {}
            Err(e) => v.push(e.to_string()),
        }
    }
    v.extend(data_problems(ops, site).await);
    if let Some(l) = &site.launch {
        if let Some(t) = &l.launch_template {
            match ops.launch_template_exists(&site.region, t).await {
                Ok(true) => {}
                Ok(false) => v.push(format!(
                    "launch template {t} does not exist in {}",
                    site.region
                )),
                Err(e) => v.push(e.to_string()),
            }
        }
        if let Some(i) = &l.image_id {
            match ops.image_exists(&site.region, i).await {
                Ok(true) => {}
                Ok(false) => v.push(format!("AMI {i} does not exist in {}", site.region)),
                Err(e) => v.push(e.to_string()),
            }
        }
    }
    v
}

/// The traffic the site would take can be read: the engine's last reading of each
/// traffic group's floats (DNS records, EIPs) did not fail (a deleted hosted zone, a
/// released address, missing permissions).
pub fn traffic_problems(status: &crate::status::StatusStore, site: &SiteSpec) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    site.traffic
        .iter()
        .filter(|(g, _)| seen.insert(g.0.clone()))
        .filter_map(|(g, _)| {
            status
                .observe_error_of(&g.0)
                .map(|e| format!("traffic group {g} cannot be read: {e}"))
        })
        .collect()
}

/// The data steps' resources exist and can do what the plan asks: the replica to
/// promote, the ECS service, the node group (its max allows the desired size).
async fn data_problems(ops: &dyn SiteOps, site: &SiteSpec) -> Vec<String> {
    let mut v = Vec::new();
    let region = &site.region;
    for s in flat(&site.steps) {
        match &s.kind {
            StepKind::PromoteReplica { instance } => match ops.db_instance(region, instance).await {
                Ok(None) => v.push(format!(
                    "step {}: DB instance {instance} does not exist in {region}",
                    s.name
                )),
                Ok(Some(_)) => {}
                Err(e) => v.push(format!("step {}: {e}", s.name)),
            },
            StepKind::PromoteCluster {
                global_cluster,
                cluster,
                ..
            } => match ops.db_cluster(region, cluster).await {
                Ok(None) => v.push(format!(
                    "step {}: DB cluster {cluster} does not exist in {region}",
                    s.name
                )),
                Ok(Some(c)) => match ops.global_cluster(region, global_cluster).await {
                    Ok(Some(members)) if !members.iter().any(|m| m.arn == c.arn) => v.push(format!(
                        "step {}: {cluster} is not a member of global cluster {global_cluster} (already detached?)",
                        s.name
                    )),
                    Ok(None) => v.push(format!(
                        "step {}: global cluster {global_cluster} does not exist",
                        s.name
                    )),
                    Ok(Some(_)) => {}
                    Err(e) => v.push(format!("step {}: {e}", s.name)),
                },
                Err(e) => v.push(format!("step {}: {e}", s.name)),
            },
            StepKind::ScaleEcs {
                cluster, service, ..
            } => match ops.ecs_service(region, cluster, service).await {
                Ok(None) => v.push(format!(
                    "step {}: ECS service {service} does not exist in cluster {cluster} ({region})",
                    s.name
                )),
                Ok(Some(_)) => {}
                Err(e) => v.push(format!("step {}: {e}", s.name)),
            },
            StepKind::ScaleEksNodegroup {
                cluster,
                nodegroup,
                desired,
                max,
                ..
            } => match ops.nodegroup(region, cluster, nodegroup).await {
                Ok(None) => v.push(format!(
                    "step {}: EKS node group {nodegroup} does not exist in cluster {cluster} ({region})",
                    s.name
                )),
                Ok(Some(n)) if max.is_none() && *desired > n.max => v.push(format!(
                    "step {}: desired {desired} is above node group {nodegroup}'s max size {} (set max in the step)",
                    s.name, n.max
                )),
                Ok(Some(_)) => {}
                Err(e) => v.push(format!("step {}: {e}", s.name)),
            },
            _ => {}
        }
    }
    v
}

/// Both, for one site, and its replication lag.
pub async fn check(spec: &Spec, ops: &dyn SiteOps, site: &SiteSpec, now_unix_ms: u64) -> Readiness {
    let mut problems = local_problems(spec, site, &|k| std::env::var(k).ok());
    problems.extend(provider_problems(ops, site).await);
    let (lag_ms, lag_error) = match &site.data {
        None => (None, None),
        Some(d) => match super::lag::read(d, &site.region, ops).await {
            Ok(l) => (Some(u64::try_from(l.as_millis()).unwrap_or(u64::MAX)), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    Readiness {
        ready: problems.is_empty(),
        problems,
        checked_unix_ms: now_unix_ms,
        lag_ms,
        lag_error,
    }
}
