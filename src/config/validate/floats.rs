//! A group's floats: each resolved by its provider's spec, what they ask of the targets,
//! and the limits of one decision's change batch.

use super::*;

/// A group's floats, and what they ask of its targets.
pub(super) struct Floats {
    pub(super) floats: Vec<FloatRef>,
    pub(super) needs: Vec<ec2::Needs>,
    pub(super) dns_types: Vec<String>,
    /// Control panels of the group's `routing_control` floats.
    pub(super) panels: Vec<String>,
    /// A `routing_control` float that did not resolve: its targets' controls are not
    /// checked against it (one error, not one per target).
    pub(super) arc_broken: bool,
}

/// What the group's floats need of each target.
pub(super) struct FloatNeeds<'a> {
    pub(super) region: &'a str,
    pub(super) needs: &'a [ec2::Needs],
    pub(super) dns_types: &'a [String],
    pub(super) panels: &'a [String],
    pub(super) arc_broken: bool,
}

/// The floats first: their kinds decide which target fields are required.
pub(super) fn resolve_floats(g: &RawGroup, p: &str, region: &str, is: &mut Issues) -> Floats {
    let pol = &g.policy;
    let mut floats = Vec::new();
    let mut seen = HashSet::new();
    let mut needs = Vec::new();
    let mut dns_types = Vec::new();
    let mut panels = Vec::new();
    let mut arc_broken = false;
    for (fi, f) in g.floats.iter().enumerate() {
        let fp = format!("{p}.floats[{fi}]");
        let raw_ec2 = ec2::RawEc2Float {
            eip: f.eip.clone(),
            secondary_ip: f.secondary_ip.clone(),
            route: f.route.clone(),
        };
        let kinds = usize::from(f.dns.is_some())
            + usize::from(f.routing_control.is_some())
            + usize::from(raw_ec2.is_set());
        let resolved = match (&f.dns, &f.routing_control) {
            _ if kinds > 1 => Err(vec![ec2::Problem {
                field: String::new(),
                reason: "set one of eip, secondary_ip, route, dns or routing_control, not several"
                    .into(),
            }]),
            (Some(d), _) => d.resolve().map(|r| {
                dns_types.push(r.rtype.clone());
                FloatKind::Dns(r)
            }),
            (None, Some(a)) => a.resolve().map(|a| {
                panels.push(a.control_panel.clone());
                FloatKind::Arc(a)
            }),
            (None, None) => raw_ec2.resolve().map(|e| {
                needs.push(e.needs());
                FloatKind::Ec2(e)
            }),
        };
        let kind = match resolved {
            Ok(k) => k,
            Err(problems) => {
                arc_broken |= f.routing_control.is_some();
                add_problems(is, &fp, problems);
                continue;
            }
        };
        if pol.mode == Mode::ActiveActive && !kind.weighted() {
            is.add(
                fp.clone(),
                "mode active-active spreads weight over targets: only dns floats can do that (an EIP or route has one holder)",
            );
        }
        if kind.roles_only() {
            if pol.mode == Mode::ActiveActive {
                is.add(
                    format!("{fp}.dns.routing"),
                    "a failover record set has one PRIMARY: use mode active-standby, or weighted routing for active-active",
                );
            }
            if g.targets.len() != 2 {
                is.add(
                    format!("{fp}.dns.routing"),
                    format!(
                        "a Route 53 failover record set is a pair (one PRIMARY, one SECONDARY): this group has {} targets, it needs exactly 2 (use weighted routing for more)",
                        g.targets.len()
                    ),
                );
            }
        }
        let id = kind.id();
        if !seen.insert(id.clone()) {
            is.add(fp, format!("duplicate float {id}"));
        }
        floats.push(FloatRef {
            id,
            region: region.to_string(),
            kind,
        });
    }

    Floats {
        floats,
        needs,
        dns_types,
        panels,
        arc_broken,
    }
}

/// The N+1 checks must be reachable at all.
pub(super) fn check_capacity(g: &RawGroup, p: &str, is: &mut Issues) {
    let pol = &g.policy;
    if usize::try_from(pol.min_healthy).unwrap_or(usize::MAX) > g.targets.len() {
        is.add(
            format!("{p}.policy.min_healthy"),
            format!(
                "{} is more than the group's {} targets",
                pol.min_healthy,
                g.targets.len()
            ),
        );
    }

    let capacity = g
        .targets
        .iter()
        .fold(0u32, |sum, t| sum.saturating_add(t.weight));
    if pol.min_capacity > capacity {
        is.add(
            format!("{p}.policy.min_capacity"),
            format!(
                "{} is more than the group's whole capacity ({capacity}, the sum of its targets' weights)",
                pol.min_capacity
            ),
        );
    }
}

/// One atomic batch per zone per decision: its worst case must fit Route 53's limits.
pub(super) fn check_batches(p: &str, targets: &[TargetSpec], floats: &[FloatRef], is: &mut Issues) {
    let members: Vec<&dns::DnsMember> = targets
        .iter()
        .filter_map(|t| t.bindings.dns.as_ref())
        .collect();
    let mut per_zone: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in floats {
        if let Some(d) = f.kind.dns() {
            *per_zone.entry(d.zone_id.as_str()).or_default() += 1;
        }
    }
    for (zone, n) in per_zone {
        if let Err(reason) = dns::check_batch_limits(zone, n, &members) {
            is.add(format!("{p}.floats"), reason.to_string());
        }
    }
}
