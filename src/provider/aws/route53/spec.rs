//! What a Route 53 float and a DNS target are, and how their config is checked. A DNS
//! float is a record set (`name`, `type` in a hosted zone) with one record per target, told
//! apart by its `SetIdentifier`. With `weighted` routing each record has a weight and
//! floatover steers the weights; with `failover` routing there are exactly two records,
//! one `PRIMARY` and one `SECONDARY`, and floatover makes the owner the `PRIMARY`.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// A weighted record set steered by floatover.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsRecord {
    pub zone_id: String,
    /// Fully qualified, lower case, with the trailing dot (as Route 53 returns it).
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    pub rtype: String,
    pub ttl: u32,
    pub routing: Routing,
}

/// The Route 53 routing policy of a steered record set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Weighted records: the planner's weights are written as they are.
    #[default]
    Weighted,
    /// A failover pair: the target with weight is the `PRIMARY`, the other the
    /// `SECONDARY`. Health check ids on the records are kept as they are.
    Failover,
}

impl DnsRecord {
    /// The stable id used in logs, metrics, audit events and plans.
    pub fn id(&self) -> String {
        format!("dns:{}:{}:{}", self.zone_id, self.name, self.rtype)
    }

    /// The TXT record beside the set that holds the fence stamp (the epoch). Swapped in
    /// the same batch as every weight change, so a batch built on a stale view fails.
    pub fn stamp_name(&self) -> String {
        format!("_floatover.{}", self.name)
    }

    /// The TXT record beside the set that counts its changes: the compare-and-set that
    /// holds on every backend (see `route53`).
    pub fn version_name(&self) -> String {
        format!("_floatover-v.{}", self.name)
    }
}

/// A target's record in a weighted set: its `SetIdentifier` and the value it answers
/// with. Also what Route 53 reports as a member of the set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct DnsMember {
    pub set_identifier: String,
    pub value: String,
}

/// Lower case with exactly one trailing dot.
pub fn normalize_name(name: &str) -> String {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

// --- config ------------------------------------------------------------------------------

/// A DNS float in the config.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDnsRecord {
    pub zone_id: String,
    pub name: String,
    #[serde(rename = "type", default = "default_type")]
    pub rtype: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// `weighted` (default) or `failover` (a PRIMARY/SECONDARY pair, active-standby only).
    #[serde(default)]
    pub routing: Routing,
}

fn default_type() -> String {
    "A".into()
}

fn default_ttl() -> u32 {
    60
}

/// A target's DNS binding in the config.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDnsMember {
    /// Defaults to the target's name.
    pub set_identifier: Option<String>,
    /// The address (A/AAAA) or host name (CNAME) this target's record answers with.
    pub value: String,
}

pub use crate::provider::aws::ec2::spec::Problem;

fn problem(field: &str, reason: impl Into<String>) -> Problem {
    Problem {
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl RawDnsRecord {
    pub fn resolve(&self) -> Result<DnsRecord, Vec<Problem>> {
        let mut out = Vec::new();
        let zone = self.zone_id.trim_start_matches("/hostedzone/");
        if zone.is_empty() || !zone.chars().all(|c| c.is_ascii_alphanumeric()) {
            out.push(problem(
                "dns.zone_id",
                format!(
                    "{:?} is not a hosted zone id such as Z0123456789ABC",
                    self.zone_id
                ),
            ));
        }
        if !valid_host(&self.name) {
            out.push(problem(
                "dns.name",
                format!("{:?} is not a DNS name such as www.example.com", self.name),
            ));
        }
        let rtype = self.rtype.to_ascii_uppercase();
        if !["A", "AAAA", "CNAME"].contains(&rtype.as_str()) {
            out.push(problem(
                "dns.type",
                format!(
                    "{:?}: floatover steers A, AAAA and CNAME records",
                    self.rtype
                ),
            ));
        }
        if self.ttl == 0 || self.ttl > 86_400 {
            out.push(problem(
                "dns.ttl",
                "must be 1..=86400 seconds (a low TTL, 60 or less, makes failover visible sooner)",
            ));
        }
        if !out.is_empty() {
            return Err(out);
        }
        Ok(DnsRecord {
            zone_id: zone.to_string(),
            name: normalize_name(&self.name),
            rtype,
            ttl: self.ttl,
            routing: self.routing,
        })
    }
}

/// Check a target's DNS binding against the record types of its group's DNS floats.
pub fn member(
    raw: Option<&RawDnsMember>,
    target_name: &str,
    types: &[String],
) -> Result<Option<DnsMember>, Vec<Problem>> {
    let Some(raw) = raw else {
        if types.is_empty() {
            return Ok(None);
        }
        return Err(vec![problem(
            "dns",
            "required: the group has a dns float (set dns.value to this target's address)",
        )]);
    };
    let mut out = Vec::new();
    let set_identifier = raw
        .set_identifier
        .clone()
        .unwrap_or_else(|| target_name.to_string());
    if set_identifier.is_empty() || set_identifier.len() > 128 {
        out.push(problem("dns.set_identifier", "must be 1-128 characters"));
    }
    for t in types {
        let ok = match t.as_str() {
            "A" => raw.value.parse::<Ipv4Addr>().is_ok(),
            "AAAA" => raw.value.parse::<Ipv6Addr>().is_ok(),
            _ => valid_host(&raw.value),
        };
        if !ok {
            out.push(problem(
                "dns.value",
                format!(
                    "{:?} is not a valid value for a record of type {t}",
                    raw.value
                ),
            ));
        }
    }
    if !out.is_empty() {
        return Err(out);
    }
    Ok(Some(DnsMember {
        set_identifier,
        value: raw.value.clone(),
    }))
}

/// Route 53's limits on one `ChangeResourceRecordSets` request.
pub const MAX_BATCH_RECORDS: usize = 1_000;
pub const MAX_BATCH_CHARS: usize = 32_000;
/// A stamp or version TXT value, at most (`"epoch/reason/target vN"` with a 63-character
/// target name and 20-digit numbers).
const MAX_TXT_CHARS: usize = 120;

/// A group whose worst-case change batch does not fit Route 53's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchLimitError {
    #[error(
        "zone {zone}: a decision could change {records} records in one batch ({floats} float(s) x ({targets} targets x 2 + 4)); Route 53 takes at most {MAX_BATCH_RECORDS} per request. Use fewer targets or floats per group in this zone"
    )]
    Records {
        zone: String,
        records: usize,
        floats: usize,
        targets: usize,
    },
    #[error(
        "zone {zone}: a decision could send {chars} characters of record values in one batch; Route 53 takes at most {MAX_BATCH_CHARS} per request. Use fewer targets or floats per group in this zone"
    )]
    Chars { zone: String, chars: usize },
}

/// The largest batch one decision of a group can send to one zone: every member of every
/// float in the zone replaced (DELETE and CREATE), and each float's stamp and version
/// swapped. floatover sends one batch per zone per decision, atomically, so a group whose
/// worst case does not fit Route 53's limits is refused at config time rather than split
/// (a split batch would no longer be one compare-and-set).
pub fn check_batch_limits(
    zone: &str,
    floats: usize,
    members: &[&DnsMember],
) -> Result<(), BatchLimitError> {
    let records = floats.saturating_mul(members.len().saturating_mul(2).saturating_add(4));
    let value_chars: usize = members.iter().map(|m| m.value.len()).sum();
    let chars = floats.saturating_mul(
        value_chars
            .saturating_mul(2)
            .saturating_add(4 * MAX_TXT_CHARS),
    );
    let zone = zone.to_string();
    if records > MAX_BATCH_RECORDS {
        let targets = members.len();
        return Err(BatchLimitError::Records {
            zone,
            records,
            floats,
            targets,
        });
    }
    if chars > MAX_BATCH_CHARS {
        return Err(BatchLimitError::Chars { zone, chars });
    }
    Ok(())
}

fn valid_host(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_normalized() {
        let r = RawDnsRecord {
            zone_id: "/hostedzone/Z123".into(),
            name: "WWW.Example.com".into(),
            rtype: "a".into(),
            ttl: 30,
            routing: Routing::Weighted,
        }
        .resolve()
        .unwrap();
        assert_eq!(r.id(), "dns:Z123:www.example.com.:A");
        assert_eq!(r.stamp_name(), "_floatover.www.example.com.");
    }

    #[test]
    fn every_problem_is_reported() {
        let e = RawDnsRecord {
            zone_id: "zone 1".into(),
            name: "bad name".into(),
            rtype: "MX".into(),
            ttl: 0,
            routing: Routing::Failover,
        }
        .resolve()
        .unwrap_err();
        let fields: Vec<_> = e.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["dns.zone_id", "dns.name", "dns.type", "dns.ttl"]);
    }

    #[test]
    fn batch_limits_count_the_worst_case() {
        let m = DnsMember {
            set_identifier: "a".into(),
            value: "10.0.0.1".into(),
        };
        let many: Vec<&DnsMember> = std::iter::repeat_n(&m, 498).collect();
        assert!(
            check_batch_limits("Z1", 1, &many).is_ok(),
            "498 x 2 + 4 = 1000"
        );
        let too_many: Vec<&DnsMember> = std::iter::repeat_n(&m, 499).collect();
        let e = check_batch_limits("Z1", 1, &too_many).unwrap_err();
        assert!(e.to_string().contains("1002 records"), "{e}");
        assert!(check_batch_limits("Z1", 3, &many[..100]).is_ok());
        assert!(check_batch_limits("Z1", 5, &many[..100]).is_err());
    }

    #[test]
    fn member_value_matches_type() {
        let raw = RawDnsMember {
            set_identifier: None,
            value: "10.0.0.1".into(),
        };
        let m = member(Some(&raw), "a", &["A".into()]).unwrap().unwrap();
        assert_eq!(m.set_identifier, "a");
        assert!(member(Some(&raw), "a", &["AAAA".into()]).is_err());
        assert!(member(None, "a", &["A".into()]).is_err());
        assert_eq!(member(None, "a", &[]).unwrap(), None);
    }
}
