//! What an EC2 float and an EC2 target are, and how their config is checked. The EC2 ids
//! (`eipalloc-`, `rtb-`, `i-`, `eni-`) live here and nowhere else: the model, the planner
//! and the engine only see a float's id and a target's name, so another provider's floats
//! (DNS records, an L2 VIP) travel the same paths.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// An EC2 float. Each has at most one holder and is moved onto a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ec2Float {
    /// An Elastic IP, moved with AssociateAddress (reassociation allowed).
    Eip { allocation_id: String },
    /// A secondary private IPv4 address, moved between ENIs with
    /// AssignPrivateIpAddresses (reassignment allowed).
    SecondaryIp { address: String },
    /// A route-table entry (usually a /32) whose next hop follows the owner.
    Route {
        route_table_id: String,
        destination: String,
        via: RouteVia,
    },
}

impl Ec2Float {
    /// The stable id used in logs, metrics, audit events and plans.
    pub fn id(&self) -> String {
        match self {
            Ec2Float::Eip { allocation_id } => format!("eip:{allocation_id}"),
            Ec2Float::SecondaryIp { address } => format!("ip:{address}"),
            Ec2Float::Route {
                route_table_id,
                destination,
                ..
            } => format!("route:{route_table_id}:{destination}"),
        }
    }

    /// EIPs can be moved as a compare-and-set (disassociate exactly the observed
    /// association, then associate without reassociation); other EC2 floats cannot.
    pub fn compare_and_set(&self) -> bool {
        matches!(self, Ec2Float::Eip { .. })
    }

    /// Which target fields a move of this float needs.
    pub fn needs(&self) -> Needs {
        match self {
            Ec2Float::Eip { .. } => Needs::InstanceOrEni,
            Ec2Float::SecondaryIp { .. } => Needs::Eni,
            Ec2Float::Route { via, .. } => match via {
                RouteVia::Instance => Needs::Instance,
                RouteVia::Eni => Needs::Eni,
            },
        }
    }
}

/// Next-hop flavour of a route float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RouteVia {
    /// Route to the target's instance id.
    #[default]
    Instance,
    /// Route to the target's network interface.
    Eni,
}

/// An EC2 attachment point: what a target offers to EC2 floats, and what EC2 reports as
/// a float's holder. One type for both, so that matching a holder to a target is a plain
/// comparison of ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Ec2Endpoint {
    pub instance_id: Option<String>,
    pub eni_id: Option<String>,
}

impl Ec2Endpoint {
    /// Emulators report "not attached" as empty strings rather than absent fields.
    pub fn attached(instance: Option<&str>, eni: Option<&str>) -> Option<Ec2Endpoint> {
        let (instance, eni) = (
            instance.filter(|s| !s.is_empty()),
            eni.filter(|s| !s.is_empty()),
        );
        if instance.is_none() && eni.is_none() {
            return None;
        }
        Some(Ec2Endpoint {
            instance_id: instance.map(str::to_string),
            eni_id: eni.map(str::to_string),
        })
    }

    /// True when `holder` is this endpoint (same ENI or same instance).
    pub fn matches(&self, holder: &Ec2Endpoint) -> bool {
        let eni = matches!((&self.eni_id, &holder.eni_id), (Some(a), Some(b)) if a == b);
        let inst = matches!((&self.instance_id, &holder.instance_id), (Some(a), Some(b)) if a == b);
        eni || inst
    }

    /// A short label for logs and status (`foreign:i-…`).
    pub fn label(&self) -> String {
        self.instance_id
            .clone()
            .or(self.eni_id.clone())
            .unwrap_or_default()
    }
}

/// Which target fields a group's EC2 floats require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    InstanceOrEni,
    Instance,
    Eni,
}

// --- config ------------------------------------------------------------------------------

/// The EC2 part of a float in the config: exactly one of `eip`, `secondary_ip`, `route`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct RawEc2Float {
    pub eip: Option<RawEip>,
    pub secondary_ip: Option<RawSecondaryIp>,
    pub route: Option<RawRoute>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEip {
    pub allocation_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecondaryIp {
    pub address: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub route_table_id: String,
    pub destination: String,
    #[serde(default)]
    pub via: RouteVia,
}

/// A config problem: the field (relative to the float or target) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub reason: String,
}

fn problem(field: &str, reason: impl Into<String>) -> Problem {
    Problem {
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl RawEc2Float {
    /// True when any EC2 float kind is set (the float belongs to this provider).
    pub fn is_set(&self) -> bool {
        self.eip.is_some() || self.secondary_ip.is_some() || self.route.is_some()
    }

    /// Check and resolve. Every problem is reported, not only the first.
    pub fn resolve(&self) -> Result<Ec2Float, Vec<Problem>> {
        let mut out = Vec::new();
        let kinds = [
            self.eip.is_some(),
            self.secondary_ip.is_some(),
            self.route.is_some(),
        ];
        if kinds.iter().filter(|x| **x).count() != 1 {
            return Err(vec![problem(
                "",
                "exactly one of eip, secondary_ip, route must be set",
            )]);
        }
        let float = if let Some(e) = &self.eip {
            if !e.allocation_id.starts_with("eipalloc-") {
                out.push(problem("eip.allocation_id", "must look like eipalloc-…"));
            }
            Ec2Float::Eip {
                allocation_id: e.allocation_id.clone(),
            }
        } else if let Some(s) = &self.secondary_ip {
            if s.address.parse::<Ipv4Addr>().is_err() {
                out.push(problem(
                    "secondary_ip.address",
                    format!("{:?} is not an IPv4 address", s.address),
                ));
            }
            Ec2Float::SecondaryIp {
                address: s.address.clone(),
            }
        } else if let Some(r) = &self.route {
            if !r.route_table_id.starts_with("rtb-") {
                out.push(problem("route.route_table_id", "must look like rtb-…"));
            }
            if !valid_cidr(&r.destination) {
                out.push(problem(
                    "route.destination",
                    format!(
                        "{:?} is not an IPv4 CIDR such as 10.9.0.1/32",
                        r.destination
                    ),
                ));
            }
            Ec2Float::Route {
                route_table_id: r.route_table_id.clone(),
                destination: r.destination.clone(),
                via: r.via,
            }
        } else {
            return Err(out);
        };
        if out.is_empty() { Ok(float) } else { Err(out) }
    }
}

/// Whether `s` looks like an EC2 instance id.
pub fn is_instance_id(s: &str) -> bool {
    s.starts_with("i-")
}

/// Check a target's EC2 fields against what the group's EC2 floats need. Returns the
/// endpoint (None when the target has no EC2 fields) or every problem found.
pub fn endpoint(
    instance_id: Option<&str>,
    eni_id: Option<&str>,
    needs: &[Needs],
) -> Result<Option<Ec2Endpoint>, Vec<Problem>> {
    let mut out = Vec::new();
    if let Some(i) = instance_id
        && !is_instance_id(i)
    {
        out.push(problem("instance_id", "must look like i-…"));
    }
    if let Some(e) = eni_id
        && !e.starts_with("eni-")
    {
        out.push(problem("eni_id", "must look like eni-…"));
    }
    if needs.contains(&Needs::Eni) && eni_id.is_none() {
        out.push(problem(
            "eni_id",
            "required: the group has a secondary_ip float or a route via eni",
        ));
    }
    if needs.contains(&Needs::Instance) && instance_id.is_none() {
        out.push(problem(
            "instance_id",
            "required: the group has a route via instance",
        ));
    }
    if needs.contains(&Needs::InstanceOrEni) && instance_id.is_none() && eni_id.is_none() {
        out.push(problem(
            "instance_id",
            "required (or eni_id): the group has an eip float",
        ));
    }
    if !out.is_empty() {
        return Err(out);
    }
    Ok(Ec2Endpoint::attached(instance_id, eni_id))
}

/// `a.b.c.d/n` with n in 0..=32.
pub fn valid_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    ip.parse::<Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_kind() {
        let none = RawEc2Float::default();
        assert_eq!(none.resolve().unwrap_err()[0].field, "");
    }

    #[test]
    fn prefixes_are_checked_together() {
        let raw = RawEc2Float {
            route: Some(RawRoute {
                route_table_id: "table-1".into(),
                destination: "10.0.0.1".into(),
                via: RouteVia::Eni,
            }),
            ..Default::default()
        };
        let fields: Vec<String> = raw
            .resolve()
            .unwrap_err()
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["route.route_table_id", "route.destination"]);
    }

    #[test]
    fn target_fields_follow_needs() {
        let e = endpoint(Some("i-1"), None, &[Needs::Eni]).unwrap_err();
        assert_eq!(e[0].field, "eni_id");
        let ok = endpoint(Some("i-1"), Some("eni-1"), &[Needs::Eni, Needs::Instance]);
        assert_eq!(
            ok.unwrap().unwrap().label(),
            "i-1",
            "an instance id is the label"
        );
        assert_eq!(endpoint(None, None, &[]).unwrap(), None);
    }

    #[test]
    fn holder_matches_on_either_id() {
        let t = Ec2Endpoint::attached(Some("i-1"), Some("eni-1")).unwrap();
        assert!(t.matches(&Ec2Endpoint::attached(None, Some("eni-1")).unwrap()));
        assert!(t.matches(&Ec2Endpoint::attached(Some("i-1"), Some("")).unwrap()));
        assert!(!t.matches(&Ec2Endpoint::attached(Some("i-2"), Some("eni-2")).unwrap()));
        assert_eq!(Ec2Endpoint::attached(Some(""), Some("")), None);
    }

    #[test]
    fn cidr() {
        assert!(valid_cidr("10.9.0.1/32"));
        assert!(!valid_cidr("10.9.0.1/33"));
        assert!(!valid_cidr("10.9.0.1"));
    }
}
