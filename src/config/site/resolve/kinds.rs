//! Steps that call out: a command, a webhook, ARC routing controls, and steps run in
//! parallel.

use super::*;

pub(super) fn exec(cx: &mut Ctx, p: &str, e: &RawExec, names: &mut HashSet<String>) -> Parts {
    if e.command.first().is_none_or(|c| c.trim().is_empty()) {
        cx.add(
            format!("{p}.command"),
            "the program and its arguments, e.g. [/usr/local/bin/warm-cache, --site, dr]",
        );
    }
    if e.retries > 10 {
        cx.add(format!("{p}.retries"), "at most 10");
    }
    let kind = StepKind::Exec {
        command: e.command.clone(),
        retries: e.retries,
    };
    (
        name_of(cx, p, &e.name, "exec", names),
        kind,
        budget(cx, p, e.budget, Duration::from_secs(60), MAX_BUDGET),
        e.optional,
        e.idempotent,
    )
}

pub(super) fn webhook(cx: &mut Ctx, p: &str, w: &RawWebhook, names: &mut HashSet<String>) -> Parts {
    let secs = Duration::from_secs;
    match reqwest::Url::parse(&w.url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => cx.add(
            format!("{p}.url"),
            format!("{:?} is not an http(s) URL", w.url),
        ),
    }
    if w.secret_env.as_deref().is_some_and(|v| v.trim().is_empty()) {
        cx.add(
            format!("{p}.secret_env"),
            "must not be empty (or leave it out for unsigned calls)",
        );
    }
    if w.retries > 10 {
        cx.add(format!("{p}.retries"), "at most 10");
    }
    let timeout = w.timeout.map(|d| d.0).unwrap_or(secs(10));
    cx.bounded(&format!("{p}.timeout"), timeout, secs(600));
    let attempts = w.retries.saturating_add(1);
    // Every attempt, plus the backoff between them (1 s, 2 s, 4 s, ... capped).
    let default = timeout
        .saturating_mul(attempts)
        .saturating_add(secs(u64::from(attempts.saturating_sub(1)) * 4));
    let b = budget(cx, p, w.budget, default, MAX_BUDGET);
    if b < timeout {
        cx.add(
            format!("{p}.budget"),
            "must be at least one attempt's timeout",
        );
    }
    let kind = StepKind::Webhook {
        url: w.url.clone(),
        secret_env: w.secret_env.clone(),
        timeout,
        retries: w.retries,
    };
    (
        name_of(cx, p, &w.name, "webhook", names),
        kind,
        b,
        w.optional,
        w.idempotent,
    )
}

/// ARC routing controls: endpoints that are URLs in regions, controls that are routing
/// control ARNs, none both on and off. Setting states is idempotent (a resume sets them
/// again).
pub(super) fn routing_controls(
    cx: &mut Ctx,
    p: &str,
    r: &RawRoutingControls,
    names: &mut HashSet<String>,
) -> Parts {
    if r.cluster.is_empty() || r.cluster.len() > 5 {
        cx.add(
            format!("{p}.cluster"),
            "list the ARC cluster's regional endpoints (1 to 5; a cluster has five)",
        );
    }
    for (i, e) in r.cluster.iter().enumerate() {
        match reqwest::Url::parse(&e.endpoint) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
            _ => cx.add(
                format!("{p}.cluster[{i}].endpoint"),
                format!("{:?} is not an http(s) URL", e.endpoint),
            ),
        }
        if e.region.trim().is_empty() {
            cx.add(format!("{p}.cluster[{i}].region"), "must not be empty");
        }
    }
    if r.on.is_empty() && r.off.is_empty() {
        cx.add(
            p,
            "routing_controls needs at least one control in `on` or `off`",
        );
    }
    for (field, arns) in [
        ("on", &r.on),
        ("off", &r.off),
        ("override_safety_rules", &r.override_safety_rules),
    ] {
        for (i, a) in arns.iter().enumerate() {
            if !a.starts_with("arn:") {
                cx.add(format!("{p}.{field}[{i}]"), format!("{a:?} is not an ARN"));
            }
        }
    }
    for (i, a) in r.off.iter().enumerate() {
        if r.on.contains(a) {
            cx.add(format!("{p}.off[{i}]"), format!("{a:?} is also in `on`"));
        }
    }
    let kind = StepKind::RoutingControls {
        cluster: r
            .cluster
            .iter()
            .map(|e| crate::provider::aws::arc::ClusterEndpoint {
                url: e.endpoint.clone(),
                region: e.region.clone(),
            })
            .collect(),
        on: r.on.clone(),
        off: r.off.clone(),
        overrides: r.override_safety_rules.clone(),
    };
    (
        name_of(cx, p, &r.name, "routing_controls", names),
        kind,
        budget(cx, p, r.budget, Duration::from_secs(30), MAX_BUDGET),
        r.optional,
        true,
    )
}

pub(super) fn parallel(
    cx: &mut Ctx,
    p: &str,
    g: &RawParallel,
    w: &Within<'_>,
    names: &mut HashSet<String>,
) -> Parts {
    if w.nested {
        cx.add(p, "parallel groups do not nest");
    }
    if g.steps.is_empty() {
        cx.add(format!("{p}.steps"), "a parallel group needs steps");
    }
    let name = name_of(cx, p, &g.name, "parallel", names);
    let inner: Vec<Step> = g
        .steps
        .iter()
        .enumerate()
        .filter_map(|(k, st)| {
            step(
                cx,
                &format!("{p}.steps[{k}]"),
                st,
                w.site,
                w.targets,
                names,
                true,
            )
        })
        .collect();
    let longest = inner
        .iter()
        .map(|s| s.budget)
        .max()
        .unwrap_or(Duration::ZERO);
    let b = budget(cx, p, g.budget, longest, MAX_BUDGET);
    let idempotent = inner.iter().all(|s| s.idempotent);
    (name, StepKind::Parallel(inner), b, false, idempotent)
}
