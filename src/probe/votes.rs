//! Health votes from several vantage points. Replicas in different regions can see
//! different things: a leader whose own network path to a target breaks would fail over
//! from a healthy target. With `health_votes`, each replica publishes its own view of every
//! target (`GET /api/v1/health/view`), polls its peers' views every probe interval, and a
//! target counts as down only when a share of the fresh views agree (default: more than
//! half). Its own view always counts; a peer's view older than `max_age` (default two
//! probe intervals) does not, so a peer that is gone stops counting and a replica alone
//! decides alone, as without votes.
//!
//! The rule is a pure function of the views and the clock ([`vote`]), tested on the
//! virtual clock; the board applies it to every reader (engine, sites, status).

pub use crate::config::VoteRule;
use crate::model::{Health, TargetKey};
use std::collections::HashMap;
use tokio::time::Instant;

/// One peer's view of every target, as last fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// The peer's identity (its lease identity), for status.
    pub who: String,
    /// When the answer arrived (our clock).
    pub at: Instant,
    pub targets: HashMap<TargetKey, Health>,
}

/// The tally behind one target's voted health, for status and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Fresh views that know the target (ours included).
    pub views: usize,
    pub down: usize,
    pub up: usize,
}

/// The voted health of `key`: down when enough fresh views say down; otherwise a target
/// this replica sees down but another fresh view sees up is up (one vantage point's
/// broken path is not a failure); otherwise our own view. Returns the tally too.
pub fn vote(
    rule: &VoteRule,
    key: &TargetKey,
    own: Health,
    peers: &[PeerView],
    now: Instant,
) -> (Health, Tally) {
    let mut t = Tally {
        views: 1,
        down: usize::from(own == Health::Down),
        up: usize::from(own == Health::Up),
    };
    for p in peers {
        if now.saturating_duration_since(p.at) > rule.max_age {
            continue;
        }
        let Some(h) = p.targets.get(key) else {
            continue;
        };
        t.views += 1;
        t.down += usize::from(*h == Health::Down);
        t.up += usize::from(*h == Health::Up);
    }
    let health = if t.down >= rule.needed(t.views) {
        Health::Down
    } else if own == Health::Down && t.up > 0 {
        Health::Up
    } else {
        own
    };
    (health, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupName, TargetId};
    use std::time::Duration;

    fn key() -> TargetKey {
        TargetKey {
            group: GroupName("web".into()),
            target: TargetId("a".into()),
        }
    }

    fn peer(who: &str, at: Instant, h: Health) -> PeerView {
        PeerView {
            who: who.into(),
            at,
            targets: HashMap::from([(key(), h)]),
        }
    }

    const RULE: VoteRule = VoteRule {
        share: 0.5,
        max_age: Duration::from_secs(2),
    };

    #[test]
    fn a_majority_is_more_than_half() {
        assert_eq!(RULE.needed(1), 1);
        assert_eq!(RULE.needed(2), 2);
        assert_eq!(RULE.needed(3), 2);
        assert_eq!(RULE.needed(4), 3);
        assert_eq!(RULE.needed(5), 3);
        let any = VoteRule { share: 0.0, ..RULE };
        assert_eq!(any.needed(3), 1, "share 0: one down view is enough");
    }

    #[tokio::test(start_paused = true)]
    async fn only_we_see_it_down_it_stays_up() {
        let now = Instant::now();
        let peers = [peer("b", now, Health::Up), peer("c", now, Health::Up)];
        let (h, t) = vote(&RULE, &key(), Health::Down, &peers, now);
        assert_eq!(h, Health::Up);
        assert_eq!(
            t,
            Tally {
                views: 3,
                down: 1,
                up: 2
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_majority_down_is_down_even_when_we_see_it_up() {
        let now = Instant::now();
        let peers = [peer("b", now, Health::Down), peer("c", now, Health::Down)];
        assert_eq!(vote(&RULE, &key(), Health::Up, &peers, now).0, Health::Down);
        let one = [peer("b", now, Health::Down), peer("c", now, Health::Up)];
        assert_eq!(
            vote(&RULE, &key(), Health::Down, &one, now).0,
            Health::Down,
            "2 of 3"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stale_views_stop_counting_exactly_at_max_age() {
        let t0 = Instant::now();
        let peers = [peer("b", t0, Health::Up)];
        assert_eq!(
            vote(&RULE, &key(), Health::Down, &peers, t0 + RULE.max_age).0,
            Health::Up
        );
        let late = t0 + RULE.max_age + Duration::from_millis(1);
        let (h, t) = vote(&RULE, &key(), Health::Down, &peers, late);
        assert_eq!(h, Health::Down, "alone, our own view decides");
        assert_eq!(t.views, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_does_not_know_the_target_does_not_vote() {
        let now = Instant::now();
        let peers = [PeerView {
            who: "b".into(),
            at: now,
            targets: HashMap::new(),
        }];
        assert_eq!(
            vote(&RULE, &key(), Health::Down, &peers, now).0,
            Health::Down
        );
        assert_eq!(
            vote(&RULE, &key(), Health::Unknown, &peers, now).0,
            Health::Unknown
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_views_count_as_views_but_not_as_down() {
        let now = Instant::now();
        let peers = [
            peer("b", now, Health::Unknown),
            peer("c", now, Health::Unknown),
        ];
        // 1 down of 3 views: not down; nobody else sees it up: our own view stands.
        assert_eq!(
            vote(&RULE, &key(), Health::Down, &peers, now).0,
            Health::Down
        );
    }
}
