//! Meaning checks over a parsed config. Every rule pushes an [`Issue`] with the field path
//! and the reason; nothing stops at the first problem, so `floatover check` shows all of
//! them in one go. Only a config without issues is turned into a [`Spec`].

use super::raw::*;
use super::spec::*;
use super::{ConfigError, Issue};
use crate::model::{GroupName, Mode, TargetId};
use crate::provider::aws::ec2::spec as ec2;
use crate::provider::aws::route53::spec as dns;
use crate::provider::{Bindings, FloatKind, FloatRef};
use std::collections::HashSet;
use std::time::Duration;

mod floats;
mod probe;
mod quorum;
mod service;
mod targets;
mod votes;
use floats::{FloatNeeds, Floats, check_batches, check_capacity, resolve_floats};
use targets::{resolve_target, settle_time};

use probe::{check_probe_defaults, resolve_probe, resolve_template_probe};
use service::{resolve_api, resolve_aws, resolve_leader};

struct Issues(Vec<Issue>);

impl Issues {
    fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Issue {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

/// Validate `raw` and resolve defaults. `env` looks up environment variables (injected so
/// that tests do not depend on the process environment).
pub fn resolve(raw: &RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Spec, ConfigError> {
    resolve_from(raw, env, Origin::File)
}

/// Where `raw.groups` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The file as written: its `groups:` must match its `group_source`.
    File,
    /// The file's settings with the groups of FloatGroup objects put in (any number,
    /// zero included: a namespace without FloatGroups runs an idle controller).
    Objects,
}

pub fn resolve_from(
    raw: &RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
    origin: Origin,
) -> Result<Spec, ConfigError> {
    let mut is = Issues(Vec::new());

    let api = resolve_api(&raw.api, env, &mut is);
    for (path, v) in [
        ("aws.region", &raw.aws.region),
        ("api.token_env", &raw.api.token_env),
        ("api.advertise", &raw.api.advertise),
        ("aws.endpoint_url", &raw.aws.endpoint_url),
    ] {
        not_blank(path, v.as_deref(), &mut is);
    }
    let default_region = raw
        .aws
        .region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| env("AWS_REGION").filter(|r| !r.trim().is_empty()))
        .or_else(|| env("AWS_DEFAULT_REGION").filter(|r| !r.trim().is_empty()));
    let aws = resolve_aws(&raw.aws, &mut is);
    let leader = resolve_leader(&raw.leader, &raw.aws, default_region.as_deref(), &mut is);
    check_probe_defaults(&raw.probe_defaults, &mut is);
    bounded(
        "resync_interval",
        raw.resync_interval.0,
        ms(100),
        hours(1),
        &mut is,
    );
    bounded("drift_check", raw.drift_check.0, ms(100), hours(1), &mut is);
    bounded(
        "switchover_timeout",
        raw.switchover_timeout.0,
        ms(100),
        hours(1),
        &mut is,
    );

    let group_source = resolve_group_source(raw, origin, &mut is);
    let mut groups = resolve_groups(raw, default_region.as_deref(), &mut is);
    let (sites, site_policy) = resolve_sites(
        raw,
        &group_source,
        &mut groups,
        default_region.as_deref(),
        &mut is,
    );

    let health_votes = raw
        .health_votes
        .as_ref()
        .map(|v| votes::resolve_votes(v, raw.probe_defaults.interval.0, &mut is));
    if !is.0.is_empty() {
        return Err(ConfigError::Invalid(is.0));
    }
    // Every Option below is Some when no issue was recorded.
    match (api, aws, leader, default_region) {
        (Some(api), Some(mut aws), Some(leader), region) => {
            aws.default_region = region.unwrap_or_default();
            Ok(Spec {
                api,
                aws,
                leader,
                resync_interval: raw.resync_interval.0,
                drift_check: raw.drift_check.0,
                switchover_timeout: raw.switchover_timeout.0,
                group_source,
                groups,
                sites,
                site_policy,
                health_votes,
            })
        }
        _ => Err(ConfigError::Invalid(vec![Issue {
            path: "(document)".into(),
            reason: "internal: incomplete resolution".into(),
        }])),
    }
}

/// `group_source`, and whether `groups:` fits it.
fn resolve_group_source(raw: &RawConfig, origin: Origin, is: &mut Issues) -> GroupSource {
    let group_source = match &raw.group_source {
        RawGroupSource::File => GroupSource::File,
        RawGroupSource::Kubernetes(k) => {
            not_blank(
                "group_source.kubernetes.namespace",
                k.namespace.as_deref(),
                is,
            );
            GroupSource::Kubernetes {
                namespace: k.namespace.clone(),
            }
        }
    };
    match (origin, &group_source) {
        (Origin::File, GroupSource::File) if raw.groups.is_empty() => {
            is.add("groups", "at least one group is required (or set group_source: kubernetes to read FloatGroup objects)");
        }
        (Origin::File, GroupSource::Kubernetes { .. }) if !raw.groups.is_empty() => {
            is.add("groups", "must be empty when group_source is kubernetes: the groups come from FloatGroup objects (one source is chosen at start)");
        }
        _ => {}
    }
    group_source
}

/// Every group, with the floats that belong to more than one refused.
fn resolve_groups(
    raw: &RawConfig,
    default_region: Option<&str>,
    is: &mut Issues,
) -> Vec<GroupSpec> {
    let mut names = HashSet::new();
    let mut groups = Vec::new();
    let mut float_owners: std::collections::HashMap<String, String> = Default::default();
    for (gi, g) in raw.groups.iter().enumerate() {
        let p = format!("groups[{gi}]");
        if !valid_name(&g.name) {
            is.add(
                format!("{p}.name"),
                "must be 1-63 characters of a-z, 0-9, '-' or '_' (it appears in URLs and metrics)",
            );
        } else if !names.insert(g.name.clone()) {
            is.add(
                format!("{p}.name"),
                format!("duplicate group name {:?}", g.name),
            );
        }
        if let Some(gs) = resolve_group(g, &p, raw, default_region, is) {
            for f in &gs.floats {
                if let Some(other) = float_owners.insert(f.id.clone(), g.name.clone()) {
                    is.add(
                        format!("{p}.floats"),
                        format!(
                            "float {} is also in group {other:?}; a float belongs to one group",
                            f.id
                        ),
                    );
                }
            }
            groups.push(gs);
        }
    }

    groups
}

/// The sites (not with FloatGroups yet), their launch probes, and the groups they steer
/// (marked site-managed; they must be active-standby).
fn resolve_sites(
    raw: &RawConfig,
    group_source: &GroupSource,
    groups: &mut [GroupSpec],
    default_region: Option<&str>,
    is: &mut Issues,
) -> (
    Vec<crate::config::site::SiteSpec>,
    crate::config::site::SitePolicy,
) {
    if !raw.sites.is_empty() && matches!(group_source, GroupSource::Kubernetes { .. }) {
        is.add(
            "sites",
            "not supported with group_source kubernetes yet: sites refer to groups by name, and FloatGroups come and go",
        );
        (Vec::new(), Default::default())
    } else {
        let (mut sites, policy, issues) = crate::config::site::resolve::resolve(
            &raw.sites,
            &raw.site_policy,
            groups,
            default_region,
        );
        is.0.extend(issues);
        for (i, rs) in raw.sites.iter().enumerate() {
            let Some(pr) = rs.launch.as_ref().and_then(|l| l.probe.as_ref()) else {
                continue;
            };
            let probe = resolve_template_probe(
                pr,
                &format!("sites[{i}].launch.probe"),
                &raw.probe_defaults,
                is,
            );
            if let Some(l) = sites
                .iter_mut()
                .find(|s| s.name == rs.name)
                .and_then(|s| s.launch.as_mut())
            {
                l.probe = probe;
            }
        }
        for g in groups.iter_mut() {
            if sites
                .iter()
                .any(|s| s.traffic.iter().any(|(tg, _)| *tg == g.name))
            {
                if g.policy.mode != Mode::ActiveStandby {
                    is.add(
                        "sites",
                        format!("group {} is a site's traffic, so it must be active-standby (a promotion moves its owner)", g.name),
                    );
                }
                g.policy.site_managed = true;
            }
        }
        (sites, policy)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

/// A duration between `min` and `max`, inclusive.
fn bounded(path: &str, d: Duration, min: Duration, max: Duration, is: &mut Issues) {
    let f = |d| floatover_core::human::duration(d);
    if d < min {
        is.add(path, format!("must be at least {}", f(min)));
    } else if d > max {
        is.add(path, format!("must be at most {}", f(max)));
    }
}

/// A value that, when given, must not be empty or blank.
fn not_blank(path: &str, v: Option<&str>, is: &mut Issues) {
    if v.is_some_and(|v| v.trim().is_empty()) {
        is.add(
            path,
            "must not be empty (remove the key to use the default)",
        );
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn resolve_group(
    g: &RawGroup,
    p: &str,
    raw: &RawConfig,
    default_region: Option<&str>,
    is: &mut Issues,
) -> Option<GroupSpec> {
    let before = is.0.len();
    not_blank(&format!("{p}.region"), g.region.as_deref(), is);
    let group_region = g
        .region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .or(default_region.map(str::to_string));
    if group_region.is_none() {
        is.add(
            format!("{p}.region"),
            "no region: set groups[].region or aws.region",
        );
    }
    let region = group_region.unwrap_or_default();
    let pol = &g.policy;
    bounded(
        &format!("{p}.policy.min_hold"),
        pol.min_hold.0,
        ms(0),
        hours(1),
        is,
    );
    bounded(
        &format!("{p}.policy.failback_delay"),
        pol.failback_delay.0,
        ms(0),
        hours(24),
        is,
    );
    if g.targets.is_empty() {
        is.add(format!("{p}.targets"), "at least one target is required");
    }
    if g.floats.is_empty() {
        is.add(format!("{p}.floats"), "at least one float is required");
    }

    let Floats {
        mut floats,
        needs,
        dns_types,
        panels,
        arc_broken,
    } = resolve_floats(g, p, &region, is);
    check_capacity(g, p, is);
    let mut targets = Vec::new();
    let mut tnames = HashSet::new();
    for (ti, t) in g.targets.iter().enumerate() {
        let tp = format!("{p}.targets[{ti}]");
        if !valid_name(&t.name) {
            is.add(
                format!("{tp}.name"),
                "must be 1-63 characters of a-z, 0-9, '-' or '_'",
            );
        } else if !tnames.insert(t.name.clone()) {
            is.add(
                format!("{tp}.name"),
                format!("duplicate target name {:?} in this group", t.name),
            );
        }
        let kinds = FloatNeeds {
            region: &region,
            needs: &needs,
            dns_types: &dns_types,
            panels: &panels,
            arc_broken,
        };
        targets.push(resolve_target(t, &tp, &kinds, raw, is));
    }
    // A routing-control move turns every other target's control off: it needs them all.
    for f in &mut floats {
        if let FloatKind::Arc(a) = &mut f.kind {
            a.controls = targets
                .iter()
                .filter_map(|t| t.bindings.arc.clone())
                .collect();
        }
    }
    check_batches(p, &targets, &floats, is);

    if is.0.len() != before {
        return None;
    }
    let settle = settle_time(&targets);
    Some(GroupSpec {
        settle,
        name: GroupName(g.name.clone()),
        policy: Policy {
            mode: pol.mode,
            preempt: pol.preempt,
            failback_delay: pol.failback_delay.0,
            min_hold: pol.min_hold.0,
            on_all_unhealthy: pol.on_all_unhealthy,
            on_drift: pol.on_drift,
            fencing: pol.fencing,
            min_healthy: pol.min_healthy,
            min_capacity: pol.min_capacity,
            site_managed: false,
            priority: pol.priority,
        },
        targets,
        floats,
    })
}

/// Report a provider's config problems under the float's or target's path.
fn add_problems(is: &mut Issues, prefix: &str, problems: Vec<ec2::Problem>) {
    for pr in problems {
        let path = if pr.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", pr.field)
        };
        is.add(path, pr.reason);
    }
}
