//! Rules for `health_votes`: peers that are URLs, a share that is a share, and a freshness
//! window a probe interval can fit in.

use super::Issues;
use super::service::check_endpoint;
use crate::config::raw::RawHealthVotes;
use crate::config::spec::{VoteRule, VotesSpec};
use std::time::Duration;

pub(super) fn resolve_votes(v: &RawHealthVotes, interval: Duration, is: &mut Issues) -> VotesSpec {
    if v.peers.is_empty() {
        is.add(
            "health_votes.peers",
            "list the other replicas' API URLs (their api.advertise); with no peer there is nothing to vote with",
        );
    }
    for (i, p) in v.peers.iter().enumerate() {
        check_endpoint(&format!("health_votes.peers[{i}]"), &Some(p.clone()), is);
        if v.peers[..i].contains(p) {
            is.add(
                format!("health_votes.peers[{i}]"),
                format!("{p:?} is listed twice: one replica would vote twice"),
            );
        }
    }
    if !(0.0..1.0).contains(&v.share) || v.share.is_nan() {
        is.add(
            "health_votes.share",
            format!(
                "{} is not a share in [0, 1): a target is down when more than this share of the views say so (0.5: a majority)",
                v.share
            ),
        );
    }
    let max_age = v
        .max_age
        .map(|d| d.0)
        .unwrap_or_else(|| interval.saturating_mul(2));
    if max_age < interval || max_age > Duration::from_secs(3600) {
        is.add(
            "health_votes.max_age",
            format!(
                "must be between the probe interval ({}) and 1h",
                floatover_core::human::duration(interval)
            ),
        );
    }
    VotesSpec {
        peers: v
            .peers
            .iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .collect(),
        rule: VoteRule {
            share: v.share,
            max_age,
        },
        poll: interval,
    }
}
