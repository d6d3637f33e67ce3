//! The data side of a site: its recovery point objective (`rpo`) with where replication
//! lag is read (`replication_lag`), and the steps that promote a database or scale a
//! service before traffic moves (`promote_replica`, `scale_ecs`, `scale_eks_nodegroup`).
//! Checked here so that a mistake names its field before anything runs.

use super::resolve::Ctx;
use super::spec::{LagSource, RpoSpec, StepKind};
use crate::config::Dur;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a site's replication lag is read: exactly one source.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLag {
    /// `GET url` answers the lag in seconds (the body is a number).
    pub http: Option<RawLagHttp>,
    /// The command prints the lag in seconds (argv, no shell).
    pub exec: Option<RawLagExec>,
    /// RDS `ReplicaLag` of this read replica (CloudWatch, the site's region).
    pub rds: Option<RawLagRds>,
    /// Aurora `AuroraGlobalDBReplicationLag` of this secondary cluster (CloudWatch).
    pub aurora_global: Option<RawLagAurora>,
    /// One reading's timeout (default 5s).
    pub timeout: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLagHttp {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLagExec {
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLagRds {
    pub instance: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLagAurora {
    pub cluster: String,
}

/// Promote an RDS read replica (`PromoteReadReplica`), then wait until it is available.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromoteReplica {
    pub name: Option<String>,
    pub budget: Option<Dur>,
    /// The replica's DB instance identifier, in the site's region.
    pub instance: String,
    #[serde(default)]
    pub optional: bool,
}

/// Set an ECS service's desired count, then wait until it runs that many tasks and its
/// deployment is complete.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScaleEcs {
    pub name: Option<String>,
    pub budget: Option<Dur>,
    pub cluster: String,
    pub service: String,
    pub desired: u32,
    #[serde(default)]
    pub optional: bool,
}

/// Set an EKS managed node group's scaling, then wait until it is `ACTIVE` again.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScaleEks {
    pub name: Option<String>,
    pub budget: Option<Dur>,
    pub cluster: String,
    pub nodegroup: String,
    pub desired: u32,
    /// Raise the group's minimum to this (default: unchanged).
    pub min: Option<u32>,
    /// Raise the group's maximum to this (default: unchanged).
    pub max: Option<u32>,
    #[serde(default)]
    pub optional: bool,
}

/// The site's Aurora Global Database: the global cluster and this site's (secondary)
/// cluster in it, in the site's region.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAurora {
    pub global_cluster: String,
    pub cluster: String,
}

/// How `promote_cluster` makes this site's cluster the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterMode {
    /// Planned when the current writer answers, unplanned when it does not.
    #[default]
    Auto,
    /// SwitchoverGlobalCluster: the writer hands over, nothing is lost (needs it up).
    Planned,
    /// Detach this cluster from the global cluster (RemoveFromGlobalCluster): it becomes
    /// a standalone writer; writes not yet replicated are lost.
    Unplanned,
}

impl ClusterMode {
    pub fn word(self) -> &'static str {
        match self {
            ClusterMode::Auto => "auto",
            ClusterMode::Planned => "planned",
            ClusterMode::Unplanned => "unplanned",
        }
    }
}

/// Make the site's Aurora cluster the writer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromoteCluster {
    pub name: Option<String>,
    pub budget: Option<Dur>,
    #[serde(default)]
    pub mode: ClusterMode,
    /// An unplanned promotion (it may lose writes) goes on without a person's approval.
    #[serde(default)]
    pub allow_data_loss: bool,
    #[serde(default)]
    pub optional: bool,
}

/// `promote_cluster`: its kind, against the site's `aurora`.
pub(super) fn promote_cluster(
    cx: &mut Ctx,
    p: &str,
    r: &RawPromoteCluster,
    aurora: Option<&RawAurora>,
) -> StepKind {
    if r.allow_data_loss && r.mode == ClusterMode::Planned {
        cx.add(
            format!("{p}.allow_data_loss"),
            "a planned switchover loses nothing: allow_data_loss applies to mode unplanned or auto",
        );
    }
    let Some(a) = aurora else {
        cx.add(
            p,
            "promote_cluster needs the site's `aurora` (its global cluster and its cluster here)",
        );
        return StepKind::PromoteCluster {
            global_cluster: String::new(),
            cluster: String::new(),
            mode: r.mode,
            allow_data_loss: r.allow_data_loss,
        };
    };
    StepKind::PromoteCluster {
        global_cluster: a.global_cluster.clone(),
        cluster: a.cluster.clone(),
        mode: r.mode,
        allow_data_loss: r.allow_data_loss,
    }
}

/// The site's `aurora`, its identifiers checked.
pub(super) fn aurora(cx: &mut Ctx, p: &str, a: Option<&RawAurora>) {
    let Some(a) = a else { return };
    for (field, v) in [
        ("global_cluster", &a.global_cluster),
        ("cluster", &a.cluster),
    ] {
        if !rds_identifier(v) {
            cx.add(
                format!("{p}.aurora.{field}"),
                format!("{v:?} is not a cluster identifier (1-63 letters, digits and hyphens, starting with a letter)"),
            );
        }
    }
}

/// The longest RPO accepted: a day (beyond that it is not a recovery point objective).
const MAX_RPO: Duration = Duration::from_secs(24 * 3600);
/// Counts a step may ask for (ECS tasks, EKS nodes).
const MAX_COUNT: u32 = 10_000;

/// An RDS DB instance or cluster identifier: 1-63 letters, digits and hyphens, starting
/// with a letter, no double or trailing hyphen.
pub fn rds_identifier(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// An ECS or EKS resource name: 1-255 letters, digits, hyphens and underscores.
fn aws_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `rpo` and `replication_lag` of site `p`.
pub(super) fn rpo(
    cx: &mut Ctx,
    p: &str,
    rpo: Option<Dur>,
    lag: Option<&RawLag>,
) -> Option<RpoSpec> {
    if let Some(r) = rpo
        && r.0 > MAX_RPO
    {
        cx.add(format!("{p}.rpo"), "must be at most 24h");
    }
    let source = lag.and_then(|l| lag_source(cx, &format!("{p}.replication_lag"), l));
    match (rpo, lag) {
        (Some(_), None) => {
            cx.add(
                format!("{p}.rpo"),
                "needs replication_lag: where to read how far the data behind this site lags",
            );
            None
        }
        (rpo, Some(l)) => {
            let timeout = l.timeout.map_or(Duration::from_secs(5), |d| d.0);
            if timeout.is_zero() || timeout > Duration::from_secs(60) {
                cx.add(
                    format!("{p}.replication_lag.timeout"),
                    "must be more than 0 and at most 60s",
                );
            }
            Some(RpoSpec {
                rpo: rpo.map(|d| d.0),
                lag: source?,
                timeout,
            })
        }
        (None, None) => None,
    }
}

fn lag_source(cx: &mut Ctx, p: &str, l: &RawLag) -> Option<LagSource> {
    let set = [
        l.http.is_some(),
        l.exec.is_some(),
        l.rds.is_some(),
        l.aurora_global.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        cx.add(
            p,
            "set exactly one of http, exec, rds or aurora_global (where the lag is read)",
        );
        return None;
    }
    if let Some(h) = &l.http {
        match reqwest::Url::parse(&h.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                cx.add(
                    format!("{p}.http.url"),
                    format!("{:?} is not an http(s) URL", h.url),
                );
                return None;
            }
        }
        return Some(LagSource::Http { url: h.url.clone() });
    }
    if let Some(e) = &l.exec {
        if e.command.is_empty() || e.command[0].trim().is_empty() {
            cx.add(format!("{p}.exec.command"), "must name a program");
            return None;
        }
        return Some(LagSource::Exec {
            command: e.command.clone(),
        });
    }
    if let Some(r) = &l.rds {
        if !rds_identifier(&r.instance) {
            cx.add(
                format!("{p}.rds.instance"),
                format!("{:?} is not a DB instance identifier (1-63 letters, digits and hyphens, starting with a letter)", r.instance),
            );
            return None;
        }
        return Some(LagSource::Rds {
            instance: r.instance.clone(),
        });
    }
    let a = l.aurora_global.as_ref()?;
    if !rds_identifier(&a.cluster) {
        cx.add(
            format!("{p}.aurora_global.cluster"),
            format!("{:?} is not a DB cluster identifier (1-63 letters, digits and hyphens, starting with a letter)", a.cluster),
        );
        return None;
    }
    Some(LagSource::AuroraGlobal {
        cluster: a.cluster.clone(),
    })
}

/// `promote_replica`: its kind, after checking the identifier.
pub(super) fn promote_replica(cx: &mut Ctx, p: &str, r: &RawPromoteReplica) -> StepKind {
    if !rds_identifier(&r.instance) {
        cx.add(
            format!("{p}.instance"),
            format!("{:?} is not a DB instance identifier (1-63 letters, digits and hyphens, starting with a letter)", r.instance),
        );
    }
    StepKind::PromoteReplica {
        instance: r.instance.clone(),
    }
}

/// `scale_ecs`: its kind, after checking names and the count.
pub(super) fn scale_ecs(cx: &mut Ctx, p: &str, r: &RawScaleEcs) -> StepKind {
    for (field, v) in [("cluster", &r.cluster), ("service", &r.service)] {
        if !aws_name(v) {
            cx.add(
                format!("{p}.{field}"),
                format!("{v:?} is not an ECS name (1-255 letters, digits, '-' or '_')"),
            );
        }
    }
    if r.desired == 0 || r.desired > MAX_COUNT {
        cx.add(
            format!("{p}.desired"),
            format!("must be 1..={MAX_COUNT} (a promotion scales up)"),
        );
    }
    StepKind::ScaleEcs {
        cluster: r.cluster.clone(),
        service: r.service.clone(),
        desired: r.desired,
    }
}

/// `scale_eks_nodegroup`: its kind, after checking names and min <= desired <= max.
pub(super) fn scale_eks(cx: &mut Ctx, p: &str, r: &RawScaleEks) -> StepKind {
    for (field, v) in [("cluster", &r.cluster), ("nodegroup", &r.nodegroup)] {
        if !aws_name(v) {
            cx.add(
                format!("{p}.{field}"),
                format!("{v:?} is not an EKS name (1-255 letters, digits, '-' or '_')"),
            );
        }
    }
    if r.desired == 0 || r.desired > MAX_COUNT {
        cx.add(
            format!("{p}.desired"),
            format!("must be 1..={MAX_COUNT} (a promotion scales up)"),
        );
    }
    if let Some(min) = r.min
        && min > r.desired
    {
        cx.add(
            format!("{p}.min"),
            format!("{min} is more than desired ({})", r.desired),
        );
    }
    if let Some(max) = r.max
        && max < r.desired
    {
        cx.add(
            format!("{p}.max"),
            format!("{max} is less than desired ({})", r.desired),
        );
    }
    StepKind::ScaleEksNodegroup {
        cluster: r.cluster.clone(),
        nodegroup: r.nodegroup.clone(),
        desired: r.desired,
        min: r.min,
        max: r.max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rds_identifiers() {
        for ok in ["db-west", "a", "Replica1"] {
            assert!(rds_identifier(ok), "{ok}");
        }
        for bad in ["", "1db", "db--west", "db-", "db_west", &"a".repeat(64)] {
            assert!(!rds_identifier(bad), "{bad}");
        }
    }
}
