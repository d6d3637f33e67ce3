//! Validation of `sites:`: every problem named by its path, all at once.

use super::raw::*;
use super::spec::*;
use crate::config::{GroupSpec, Issue};
use crate::model::{GroupName, TargetId};
use std::collections::HashSet;
use std::time::Duration;

mod kinds;
use kinds::{exec, parallel, routing_controls, webhook};

const MIN_BUDGET: Duration = Duration::from_secs(1);
const MAX_BUDGET: Duration = Duration::from_secs(24 * 3600);
const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) struct Ctx<'a> {
    issues: Vec<Issue>,
    groups: &'a [GroupSpec],
}

impl Ctx<'_> {
    pub(crate) fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.issues.push(Issue {
            path: path.into(),
            reason: reason.into(),
        });
    }

    fn bounded(&mut self, path: &str, d: Duration, max: Duration) {
        if d < MIN_BUDGET || d > max {
            self.add(
                path,
                format!(
                    "must be between 1s and {}",
                    floatover_core::human::duration(max)
                ),
            );
        }
    }

    /// `group/target` that names a target of a configured group.
    fn target_ref(&mut self, path: &str, s: &str) -> Option<(GroupName, TargetId)> {
        let Some((g, t)) = s.split_once('/') else {
            self.add(path, format!("{s:?}: write group/target, e.g. web/primary"));
            return None;
        };
        self.member(path, g, t)
    }

    fn member(&mut self, path: &str, g: &str, t: &str) -> Option<(GroupName, TargetId)> {
        let Some(group) = self.groups.iter().find(|x| x.name.0 == g) else {
            self.add(path, format!("no group named {g:?}"));
            return None;
        };
        if !group.targets.iter().any(|x| x.id.0 == t) {
            self.add(path, format!("group {g:?} has no target named {t:?}"));
            return None;
        }
        Some((GroupName(g.into()), TargetId(t.into())))
    }
}

/// Resolve `sites` against the resolved groups. Returns the sites, the policy and every
/// problem found.
pub fn resolve(
    raw: &[RawSite],
    policy: &RawSitePolicy,
    groups: &[GroupSpec],
    default_region: Option<&str>,
) -> (Vec<SiteSpec>, SitePolicy, Vec<Issue>) {
    let mut cx = Ctx {
        issues: Vec::new(),
        groups,
    };
    cx.bounded(
        "site_policy.grace",
        policy.grace.0,
        Duration::from_secs(3600),
    );
    cx.bounded(
        "site_policy.preflight_interval",
        policy.preflight_interval.0,
        Duration::from_secs(24 * 3600),
    );
    let pol = SitePolicy {
        automatic: policy.automatic,
        grace: policy.grace.0,
        automatic_failback: policy.automatic_failback,
        preflight_interval: policy.preflight_interval.0,
    };
    let mut names = HashSet::new();
    let mut sites = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let p = format!("sites[{i}]");
        if !valid_name(&s.name) {
            cx.add(
                format!("{p}.name"),
                "must be 1-63 characters of a-z, 0-9, '-' or '_' (it appears in URLs and metrics)",
            );
        } else if !names.insert(s.name.clone()) {
            cx.add(
                format!("{p}.name"),
                format!("duplicate site name {:?}", s.name),
            );
        }
        if let Some(site) = site(&mut cx, &p, s, default_region) {
            sites.push(site);
        }
    }
    let primaries = raw.iter().filter(|s| s.primary).count();
    if !raw.is_empty() && primaries != 1 {
        cx.add(
            "sites",
            format!("exactly one site must be `primary: true` (the one that takes the traffic normally); found {primaries}"),
        );
    }
    (sites, pol, cx.issues)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn site(cx: &mut Ctx, p: &str, s: &RawSite, default_region: Option<&str>) -> Option<SiteSpec> {
    let region = s
        .region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .or(default_region.map(str::to_string));
    if region.is_none() {
        cx.add(format!("{p}.region"), "required (or set aws.region)");
    }
    let targets: Vec<_> = s
        .targets
        .iter()
        .enumerate()
        .filter_map(|(j, t)| cx.target_ref(&format!("{p}.targets[{j}]"), t))
        .collect();
    if !(s.quorum > 0.0 && s.quorum <= 1.0) {
        cx.add(
            format!("{p}.quorum"),
            "a fraction of the site's targets: more than 0, at most 1 (0.5 = half must be up)",
        );
    }
    let traffic: Vec<_> = s
        .traffic
        .iter()
        .enumerate()
        .filter_map(|(j, t)| cx.member(&format!("{p}.traffic[{j}]"), &t.group, &t.target))
        .collect();
    if s.traffic.is_empty() {
        cx.add(
            format!("{p}.traffic"),
            "name the traffic this site takes (group and its target here), or it has nothing to promote",
        );
    }
    if let Some(r) = s.rto {
        cx.bounded(&format!("{p}.rto"), r.0, MAX_WAIT);
    }
    super::capacity::check(cx, p, s);
    let raw_steps = match &s.steps {
        Some(v) => v.clone(),
        None => default_steps(s),
    };
    if raw_steps.is_empty() {
        cx.add(
            format!("{p}.steps"),
            "a promotion needs at least a `shift` step",
        );
    }
    let mut names = HashSet::new();
    let data = super::data::rpo(cx, p, s.rpo, s.replication_lag.as_ref());
    super::data::aurora(cx, p, s.aurora.as_ref());
    // With an RPO, the plan starts at the gate (before any database is promoted).
    let gate = data.as_ref().filter(|d| d.rpo.is_some()).map(|_| {
        names.insert("rpo".to_string());
        Step {
            name: "rpo".into(),
            kind: StepKind::RpoGate,
            budget: Duration::from_secs(3600),
            optional: false,
            idempotent: true,
        }
    });
    let steps: Vec<Step> = raw_steps
        .iter()
        .enumerate()
        .filter_map(|(j, st)| {
            step(
                cx,
                &format!("{p}.steps[{j}]"),
                st,
                s,
                targets.len(),
                &mut names,
                false,
            )
        })
        .collect();
    let steps: Vec<Step> = gate.into_iter().chain(steps).collect();
    if !raw_steps.is_empty()
        && !raw_steps
            .iter()
            .any(|s| matches!(s, RawStep::Shift(_) | RawStep::RoutingControls(_)))
    {
        cx.add(
            format!("{p}.steps"),
            "no `shift` or `routing_controls` step: a promotion that never moves the traffic recovers nothing",
        );
    }
    Some(SiteSpec {
        name: s.name.clone(),
        region: region?,
        tier: s.tier,
        primary: s.primary,
        targets,
        quorum: s.quorum,
        traffic,
        rto: s.rto.map(|d| d.0),
        abort_over_budget: s.abort_over_budget,
        instances: s.instances.clone(),
        auto_scaling: s.auto_scaling.as_ref().map(|a| (a.name.clone(), a.desired)),
        launch: s.launch.as_ref().map(|l| LaunchSpec {
            launch_template: l.launch_template.clone(),
            version: l.version.clone(),
            image_id: l.image_id.clone(),
            instance_type: l.instance_type.clone(),
            subnet_id: l.subnet_id.clone(),
            count: l.count,
            tags: l.tags.clone(),
            // Resolved with the probe defaults by config::validate.
            probe: None,
            min_healthy: l.min_healthy.unwrap_or(l.count),
        }),
        steps,
        data,
    })
}

/// The plan a tier implies when `steps` is not written.
pub fn default_steps(s: &RawSite) -> Vec<RawStep> {
    let mut v = Vec::new();
    match s.tier {
        Tier::Hot => {}
        Tier::Warm => {
            if !s.instances.is_empty() {
                v.push(RawStep::StartInstances(RawBasic::default()));
            }
            if s.auto_scaling.is_some() {
                v.push(RawStep::ScaleUp(RawBasic::default()));
            }
            v.push(RawStep::WaitHealthy(RawWait::default()));
        }
        Tier::Cold => {
            v.push(RawStep::Launch(RawBasic::default()));
            v.push(RawStep::WaitHealthy(RawWait::default()));
        }
    }
    v.push(RawStep::Shift(RawBasic::default()));
    v
}

fn name_of(
    cx: &mut Ctx,
    p: &str,
    given: &Option<String>,
    word: &str,
    names: &mut HashSet<String>,
) -> String {
    let name = match given {
        Some(n) => {
            if !valid_name(n) {
                cx.add(
                    format!("{p}.name"),
                    "must be 1-63 characters of a-z, 0-9, '-' or '_'",
                );
            }
            n.clone()
        }
        None => {
            let mut n = word.to_string();
            let mut k = 2;
            while names.contains(&n) {
                n = format!("{word}-{k}");
                k += 1;
            }
            n
        }
    };
    if !names.insert(name.clone()) {
        cx.add(
            format!("{p}.name"),
            format!("duplicate step name {name:?} in this plan"),
        );
    }
    name
}

fn budget(
    cx: &mut Ctx,
    p: &str,
    given: Option<crate::config::Dur>,
    default: Duration,
    max: Duration,
) -> Duration {
    match given {
        Some(d) => {
            cx.bounded(&format!("{p}.budget"), d.0, max);
            d.0
        }
        None => default,
    }
}

/// A step before it is put together: name, kind, budget, optional, idempotent.
type Parts = (String, StepKind, Duration, bool, bool);

/// What a step is resolved against: its site, the site's target count, and whether it
/// sits in a parallel group.
struct Within<'a> {
    site: &'a RawSite,
    targets: usize,
    nested: bool,
}

fn step(
    cx: &mut Ctx,
    p: &str,
    st: &RawStep,
    s: &RawSite,
    targets: usize,
    names: &mut HashSet<String>,
    nested: bool,
) -> Option<Step> {
    let secs = Duration::from_secs;
    let w = Within {
        site: s,
        targets,
        nested,
    };
    let (name, kind, budget, optional, idempotent) = match st {
        RawStep::StartInstances(b) => {
            if s.instances.is_empty() {
                cx.add(p, "start_instances needs the site's `instances`");
            }
            let kind = StepKind::StartInstances;
            basic(cx, p, b, ("start_instances", kind, secs(120)), names)
        }
        RawStep::ScaleUp(b) => {
            if s.auto_scaling.is_none() {
                cx.add(p, "scale_up needs the site's `auto_scaling`");
            }
            basic(cx, p, b, ("scale_up", StepKind::ScaleUp, secs(60)), names)
        }
        RawStep::Launch(b) => {
            if s.launch.is_none() {
                cx.add(p, "launch needs the site's `launch`");
            }
            basic(cx, p, b, ("launch", StepKind::Launch, secs(180)), names)
        }
        RawStep::WaitHealthy(r) => wait_healthy(cx, p, r, &w, names),
        RawStep::Shift(b) => {
            if nested {
                cx.add(p, "shift cannot run in parallel with other steps");
            }
            basic(cx, p, b, ("shift", StepKind::Shift, secs(60)), names)
        }
        RawStep::Exec(e) => exec(cx, p, e, names),
        RawStep::Webhook(r) => webhook(cx, p, r, names),
        RawStep::Approval(a) => {
            if nested {
                cx.add(p, "an approval cannot run in parallel with other steps: put it before or after the parallel group");
            }
            let t = a.timeout.map(|d| d.0).unwrap_or(secs(3600));
            cx.bounded(&format!("{p}.timeout"), t, MAX_WAIT);
            let name = name_of(cx, p, &a.name, "approval", names);
            (name, StepKind::Approval, t, false, true)
        }
        RawStep::Parallel(g) => parallel(cx, p, g, &w, names),
        RawStep::RoutingControls(r) => routing_controls(cx, p, r, names),
        RawStep::PromoteReplica(r) => {
            let kind = super::data::promote_replica(cx, p, r);
            let b = budget(cx, p, r.budget, secs(1800), MAX_BUDGET);
            let name = name_of(cx, p, &r.name, "promote_replica", names);
            (name, kind, b, r.optional, true)
        }
        RawStep::PromoteCluster(r) => {
            let kind = super::data::promote_cluster(cx, p, r, s.aurora.as_ref());
            let b = budget(cx, p, r.budget, secs(1800), MAX_BUDGET);
            let name = name_of(cx, p, &r.name, "promote_cluster", names);
            (name, kind, b, r.optional, true)
        }
        RawStep::ScaleEcs(r) => {
            let kind = super::data::scale_ecs(cx, p, r);
            let b = budget(cx, p, r.budget, secs(600), MAX_BUDGET);
            let name = name_of(cx, p, &r.name, "scale_ecs", names);
            (name, kind, b, r.optional, true)
        }
        RawStep::ScaleEksNodegroup(r) => {
            let kind = super::data::scale_eks(cx, p, r);
            let b = budget(cx, p, r.budget, secs(900), MAX_BUDGET);
            let name = name_of(cx, p, &r.name, "scale_eks_nodegroup", names);
            (name, kind, b, r.optional, true)
        }
    };
    Some(Step {
        name,
        kind,
        budget,
        optional,
        idempotent,
    })
}

/// A built-in step with a name and a budget only (`word`, its kind, its default budget).
fn basic(
    cx: &mut Ctx,
    p: &str,
    b: &RawBasic,
    (word, kind, default): (&str, StepKind, Duration),
    names: &mut HashSet<String>,
) -> Parts {
    let name = name_of(cx, p, &b.name, word, names);
    (
        name,
        kind,
        budget(cx, p, b.budget, default, MAX_BUDGET),
        false,
        true,
    )
}

fn wait_healthy(
    cx: &mut Ctx,
    p: &str,
    r: &RawWait,
    w: &Within<'_>,
    names: &mut HashSet<String>,
) -> Parts {
    let (s, targets) = (w.site, w.targets);
    let probed = s.launch.as_ref().is_some_and(|l| l.probe.is_some());
    if targets == 0 && !probed {
        cx.add(
            p,
            "wait_healthy needs the site's `targets` or `launch.probe` (what to wait for)",
        );
    }
    let quorum = ((targets as f64 * s.quorum).ceil() as usize).clamp(1, targets.max(1));
    let min = r.min.unwrap_or(quorum);
    if r.min.is_some() && (min == 0 || (targets > 0 && min > targets)) {
        cx.add(
            format!("{p}.min"),
            format!("between 1 and the site's {targets} target(s)"),
        );
    }
    let name = name_of(cx, p, &r.name, "wait_healthy", names);
    let b = budget(cx, p, r.budget, Duration::from_secs(300), MAX_BUDGET);
    (name, StepKind::WaitHealthy { min }, b, false, true)
}
