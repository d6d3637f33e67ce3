//! A group's targets: bindings and probes, and how long their probes take to decide.

use super::*;

/// One target with its bindings and probes.
pub(super) fn resolve_target(
    t: &RawTarget,
    tp: &str,
    kinds: &FloatNeeds<'_>,
    raw: &RawConfig,
    is: &mut Issues,
) -> TargetSpec {
    let (region, needs, dns_types) = (kinds.region, kinds.needs, kinds.dns_types);
    let ec2 = ec2::endpoint(t.instance_id.as_deref(), t.eni_id.as_deref(), needs).unwrap_or_else(
        |problems| {
            add_problems(is, tp, problems);
            None
        },
    );
    let dns = dns::member(t.dns.as_ref(), &t.name, dns_types).unwrap_or_else(|problems| {
        add_problems(is, tp, problems);
        None
    });
    let arc = if kinds.arc_broken {
        None
    } else {
        crate::provider::aws::arc::spec::member(t.routing_control.as_deref(), kinds.panels)
            .unwrap_or_else(|problems| {
                add_problems(is, tp, problems);
                None
            })
    };
    if !(1..=255).contains(&t.weight) {
        is.add(
            format!("{tp}.weight"),
            "must be 1..=255 (Route 53 weights; 0 is what floatover writes for a down target)",
        );
    }
    not_blank(&format!("{tp}.region"), t.region.as_deref(), is);
    let tregion = t
        .region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| region.to_string());
    // EC2 floats live in one region; DNS is global, so DNS-only groups span regions.
    if tregion != region && !needs.is_empty() {
        is.add(
            format!("{tp}.region"),
            format!("{tregion:?} differs from the group's region {region:?}; EC2 floats cannot cross regions"),
        );
    }
    if t.probes.is_empty() {
        is.add(
            format!("{tp}.probes"),
            "at least one probe is required (a target without probes is never healthy)",
        );
    }
    let mut probes = Vec::new();
    for (pi, pr) in t.probes.iter().enumerate() {
        if let Some(ps) = resolve_probe(pr, &format!("{tp}.probes[{pi}]"), &raw.probe_defaults, is)
        {
            probes.push(ps);
        }
    }
    TargetSpec {
        id: TargetId(t.name.clone()),
        bindings: Bindings { ec2, dns, arc },
        region: tregion,
        priority: t.priority,
        weight: t.weight,
        probes,
    }
}

/// The longest a probe takes to decide (rise or fall).
pub(super) fn settle_time(targets: &[TargetSpec]) -> Duration {
    // Bounded above (interval <= 1h, rise/fall <= 100), but computed with checked
    // arithmetic anyway: a config must never be able to panic the controller.
    targets
        .iter()
        .flat_map(|t| t.probes.iter())
        .map(|p| {
            p.interval
                .checked_mul(p.rise.max(p.fall))
                .and_then(|d| d.checked_add(p.timeout))
                .unwrap_or(crate::config::duration::MAX)
        })
        .max()
        .unwrap_or_default()
}
