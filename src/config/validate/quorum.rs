//! Rules for `leader.backend: quorum`: 3 or 5 members, each exactly one independent
//! store in a place that exists. Two members that are the same bucket or the same cluster
//! would fail together, which defeats the point of a quorum; an even count adds a store
//! to lose without surviving any more losses.

use super::Issues;
use super::service::{kubernetes_lease, s3_lease};
use crate::config::raw::{RawAws, RawQuorum};
use crate::config::spec::{LeaderBackend, QuorumMemberSpec};

pub(super) fn quorum_lease(
    q: &RawQuorum,
    aws: &RawAws,
    default_region: Option<&str>,
    is: &mut Issues,
) -> LeaderBackend {
    let n = q.members.len();
    let why = match n {
        3 | 5 => None,
        0..=2 => Some(format!(
            "with {n}, losing one member leaves no majority (3 members survive the loss of any one)"
        )),
        _ if n.is_multiple_of(2) => Some(format!(
            "{n} members survive the loss of {} like {} do, with one more store to lose",
            (n - 1) / 2,
            n - 1
        )),
        _ => Some(
            "5 members survive the loss of any two; more make every renewal wait for more answers"
                .to_string(),
        ),
    };
    if let Some(why) = why {
        is.add(
            "leader.quorum.members",
            format!("a quorum needs 3 or 5 members, not {n}: {why}"),
        );
    }
    let mut members: Vec<QuorumMemberSpec> = Vec::with_capacity(n);
    for (i, m) in q.members.iter().enumerate() {
        let at = format!("leader.quorum.members[{i}]");
        check_name(&at, &m.name, &members, is);
        let store = match (&m.s3, &m.kubernetes) {
            (Some(s3), None) => {
                if let Some(r) = &s3.region {
                    check_region(&format!("{at}.s3.region"), r, is);
                }
                s3_lease(&format!("{at}.s3"), s3, aws, default_region, is)
            }
            (None, Some(k)) => kubernetes_lease(&format!("{at}.kubernetes"), k.clone(), is),
            _ => {
                is.add(
                    at,
                    "needs exactly one store: s3 (bucket, region) or kubernetes (namespace, name, context)",
                );
                continue;
            }
        };
        if let Some(j) = members.iter().position(|o| same_place(&o.store, &store)) {
            is.add(
                at,
                format!(
                    "is the same {} as leader.quorum.members[{j}] ({}): a quorum needs independent stores, which do not fail together",
                    kind(&store),
                    place(&store)
                ),
            );
        }
        members.push(QuorumMemberSpec {
            name: m.name.clone(),
            store,
        });
    }
    LeaderBackend::Quorum { members }
}

/// Names appear in status and as a metric label: short, plain and unique.
fn check_name(at: &str, name: &str, earlier: &[QuorumMemberSpec], is: &mut Issues) {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plain {
        is.add(
            format!("{at}.name"),
            format!("{name:?} must be 1-63 letters, digits, '-' or '_'"),
        );
    } else if earlier.iter().any(|o| o.name == name) {
        is.add(
            format!("{at}.name"),
            format!("{name:?} names another member too"),
        );
    }
}

/// AWS region names: `<area>[-gov|-iso...]-<direction>-<number>` (us-east-1,
/// ap-southeast-2, us-gov-west-1, eu-central-2). A pattern, not a list, so a region AWS
/// opens later is accepted, while a typo (`us-est-1`, `useast1`) is refused before it
/// becomes a member nobody can reach.
pub(super) fn check_region(at: &str, region: &str, is: &mut Issues) {
    const DIRECTIONS: [&str; 9] = [
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    let parts: Vec<&str> = region.split('-').collect();
    let ok = match parts.as_slice() {
        [area, rest @ .., dir, num] if rest.len() <= 1 => {
            area.len() == 2
                && area.chars().all(|c| c.is_ascii_lowercase())
                && rest
                    .iter()
                    .all(|p| *p == "gov" || p.starts_with("iso") && p.len() <= 5)
                && DIRECTIONS.contains(dir)
                && !num.is_empty()
                && num.len() <= 2
                && num.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    if !ok {
        is.add(
            at,
            format!("{region:?} is not an AWS region name (like us-east-1, eu-central-2)"),
        );
    }
}

fn same_place(a: &LeaderBackend, b: &LeaderBackend) -> bool {
    match (a, b) {
        (
            LeaderBackend::S3 {
                bucket: b1,
                endpoint_url: e1,
                ..
            },
            LeaderBackend::S3 {
                bucket: b2,
                endpoint_url: e2,
                ..
            },
        ) => b1 == b2 && e1 == e2,
        (
            LeaderBackend::Kubernetes { context: c1, .. },
            LeaderBackend::Kubernetes { context: c2, .. },
        ) => c1 == c2,
        _ => false,
    }
}

fn kind(b: &LeaderBackend) -> &'static str {
    match b {
        LeaderBackend::S3 { .. } => "bucket",
        _ => "cluster",
    }
}

fn place(b: &LeaderBackend) -> String {
    match b {
        LeaderBackend::S3 { bucket, .. } => format!("s3://{bucket}"),
        LeaderBackend::Kubernetes { context, .. } => match context {
            Some(c) => format!("context {c}"),
            None => "the in-cluster or current context".into(),
        },
        _ => String::new(),
    }
}
