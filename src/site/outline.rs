//! A site's promotion plan as people and programs read it (`floatover plan`): each step,
//! what it does and its budget, the total against the RTO. Pure.

use super::spec::{SiteSpec, Step, StepKind};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SitePlan {
    pub site: String,
    pub tier: String,
    pub region: String,
    pub primary: bool,
    pub rto_ms: Option<u64>,
    /// Sum of the top-level steps' budgets.
    pub expected_ms: u64,
    pub over_rto: bool,
    pub steps: Vec<StepPlan>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepPlan {
    pub name: String,
    pub kind: String,
    pub budget_ms: u64,
    pub optional: bool,
    pub idempotent: bool,
    /// What it does, in a few words.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepPlan>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn detail(site: &SiteSpec, s: &Step) -> String {
    let targets = || {
        site.targets
            .iter()
            .map(|(g, t)| format!("{g}/{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &s.kind {
        StepKind::StartInstances => format!("start {}", site.instances.join(", ")),
        StepKind::ScaleUp => match &site.auto_scaling {
            Some((n, d)) => format!("raise Auto Scaling group {n} to {d}"),
            None => String::new(),
        },
        StepKind::Launch => match &site.launch {
            Some(l) => format!(
                "run {} instance(s) from {}",
                l.count,
                l.launch_template
                    .as_deref()
                    .map(|t| format!("launch template {t}"))
                    .or_else(|| l.image_id.as_deref().map(|i| format!("AMI {i}")))
                    .unwrap_or_default()
            ),
            None => String::new(),
        },
        StepKind::WaitHealthy { min } => {
            format!(
                "{min} of {} target(s) up ({})",
                site.targets.len(),
                targets()
            )
        }
        StepKind::Shift => site
            .traffic
            .iter()
            .map(|(g, t)| format!("{g} -> {t}"))
            .collect::<Vec<_>>()
            .join(", "),
        StepKind::Exec { command, retries } => {
            format!("run {} ({} attempt(s))", command.join(" "), retries + 1)
        }
        StepKind::Webhook {
            url,
            secret_env,
            retries,
            ..
        } => format!(
            "POST {url} ({} attempt(s), {})",
            retries + 1,
            if secret_env.is_some() {
                "signed"
            } else {
                "unsigned"
            }
        ),
        StepKind::Approval => "wait for `floatover promote SITE --approve`".into(),
        StepKind::Verify => "the site holds its traffic and is healthy".into(),
        StepKind::Parallel(v) => format!("{} steps at once", v.len()),
        StepKind::RoutingControls {
            cluster, on, off, ..
        } => format!(
            "ARC routing controls: on {}, off {} (through {} cluster endpoint(s) in turn)",
            on.len(),
            off.len(),
            cluster.len()
        ),
        StepKind::RpoGate => match &site.data {
            Some(d) => format!(
                "replication lag ({}) within the RPO of {}, else an automatic promotion waits for approval",
                lag_source(&d.lag),
                d.rpo
                    .map(floatover_core::human::duration)
                    .unwrap_or_default()
            ),
            None => String::new(),
        },
        StepKind::PromoteCluster {
            global_cluster,
            cluster,
            mode,
            allow_data_loss,
        } => format!(
            "make Aurora cluster {cluster} the writer of {global_cluster} ({}{})",
            mode.word(),
            if *allow_data_loss {
                ", data loss allowed"
            } else {
                ""
            }
        ),
        StepKind::PromoteReplica { instance } => {
            format!("promote RDS read replica {instance}, wait until available")
        }
        StepKind::ScaleEcs {
            cluster,
            service,
            desired,
        } => format!("ECS service {cluster}/{service} to {desired} running task(s)"),
        StepKind::ScaleEksNodegroup {
            cluster,
            nodegroup,
            desired,
            ..
        } => format!("EKS node group {cluster}/{nodegroup} to {desired} node(s), ACTIVE"),
    }
}

fn lag_source(l: &crate::config::site::spec::LagSource) -> String {
    use crate::config::site::spec::LagSource;
    match l {
        LagSource::Http { url } => format!("GET {url}"),
        LagSource::Exec { command } => command.join(" "),
        LagSource::Rds { instance } => format!("RDS ReplicaLag of {instance}"),
        LagSource::AuroraGlobal { cluster } => {
            format!("AuroraGlobalDBReplicationLag of {cluster}")
        }
    }
}

fn step_plan(site: &SiteSpec, s: &Step) -> StepPlan {
    StepPlan {
        name: s.name.clone(),
        kind: s.kind.word().into(),
        budget_ms: ms(s.budget),
        optional: s.optional,
        idempotent: s.idempotent,
        detail: detail(site, s),
        steps: match &s.kind {
            StepKind::Parallel(v) => v.iter().map(|c| step_plan(site, c)).collect(),
            _ => vec![],
        },
    }
}

pub fn site_plan(site: &SiteSpec) -> SitePlan {
    let expected = site.expected();
    SitePlan {
        site: site.name.clone(),
        tier: site.tier.as_str().into(),
        region: site.region.clone(),
        primary: site.primary,
        rto_ms: site.rto.map(ms),
        expected_ms: ms(expected),
        over_rto: site.rto.is_some_and(|r| expected > r),
        steps: site.steps.iter().map(|s| step_plan(site, s)).collect(),
    }
}

fn human(ms: u64) -> String {
    floatover_core::human::duration(Duration::from_millis(ms))
}

/// The plans for people.
pub fn text(plans: &[SitePlan]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for p in plans {
        let rto = p
            .rto_ms
            .map(|r| format!(", RTO {}", human(r)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "site {} ({}, {}{}): promotion expected within {}{rto}",
            p.site,
            p.tier,
            p.region,
            if p.primary { ", primary" } else { "" },
            human(p.expected_ms)
        );
        for (i, s) in p.steps.iter().enumerate() {
            write_step(&mut out, &format!("{}.", i + 1), s);
            for (j, c) in s.steps.iter().enumerate() {
                write_step(
                    &mut out,
                    &format!("   {}{}", i + 1, (b'a' + (j % 26) as u8) as char),
                    c,
                );
            }
        }
        if p.over_rto {
            let _ = writeln!(
                out,
                "  WARNING: the step budgets add up to {}, over the RTO of {}",
                human(p.expected_ms),
                human(p.rto_ms.unwrap_or(0))
            );
        }
    }
    out
}

fn write_step(out: &mut String, num: &str, s: &StepPlan) {
    use std::fmt::Write;
    let mut flags = Vec::new();
    if s.optional {
        flags.push("optional");
    }
    if !s.idempotent {
        flags.push("not repeated after a leader change");
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(", "))
    };
    let _ = writeln!(
        out,
        "  {num:<5} {:<16} {:<15} budget {:<8} {}{flags}",
        s.name,
        s.kind,
        human(s.budget_ms),
        s.detail
    );
}
