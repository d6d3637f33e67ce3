//! The other half of health votes: fetch every peer's own view of the targets each probe
//! interval (`GET /api/v1/health/view`) and hand it to the board, which counts the votes
//! ([`super::votes`]). A peer that does not answer is left to age out of the count: it
//! stops counting after `max_age`, so a replica cut off from its peers decides alone, as
//! it would without votes.

use super::HealthBoard;
use super::votes::PeerView;
use crate::config::VotesSpec;
use crate::metrics::Metrics;
use crate::model::{GroupName, Health, TargetId, TargetKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// What `GET /api/v1/health/view` answers: this replica's own view, before any vote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthView {
    /// The replica's identity (its lease identity).
    pub identity: String,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetView {
    pub group: String,
    pub target: String,
    pub health: Health,
}

impl HealthView {
    /// This replica's own view, from its board.
    pub fn of(identity: &str, board: &HealthBoard) -> Self {
        let mut targets: Vec<TargetView> = board
            .local_snapshot()
            .into_iter()
            .map(|(k, h)| TargetView {
                group: k.group.0,
                target: k.target.0,
                health: h.health,
            })
            .collect();
        targets.sort_by(|a, b| (&a.group, &a.target).cmp(&(&b.group, &b.target)));
        HealthView {
            identity: identity.to_string(),
            targets,
        }
    }

    fn into_peer(self, at: Instant) -> PeerView {
        PeerView {
            who: self.identity,
            at,
            targets: self
                .targets
                .into_iter()
                .map(|t| {
                    (
                        TargetKey {
                            group: GroupName(t.group),
                            target: TargetId(t.target),
                        },
                        t.health,
                    )
                })
                .collect(),
        }
    }
}

/// Why a peer's view could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: answered {status}")]
    Status { url: String, status: u16 },
}

async fn fetch(client: &reqwest::Client, base: &str) -> Result<HealthView, PeerError> {
    let url = format!("{base}/api/v1/health/view");
    let answer = client
        .get(&url)
        .send()
        .await
        .map_err(|source| PeerError::Http {
            url: url.clone(),
            source,
        })?;
    if !answer.status().is_success() {
        return Err(PeerError::Status {
            url,
            status: answer.status().as_u16(),
        });
    }
    answer
        .json::<HealthView>()
        .await
        .map_err(|source| PeerError::Http { url, source })
}

/// Poll the peers until `stop`. Supervised as a sidecar (it ending is fatal), with a
/// heart (a poll is bounded by its timeout, so silence past a few polls is a stall: the
/// replica then stops renewing its lease and `/healthz` names the loop). Were it ever
/// to stop, the peers' views would age out and every replica would judge by its own
/// probes, as without votes: never a failover on a view that is not fresh.
pub async fn run(
    spec: VotesSpec,
    board: Arc<HealthBoard>,
    metrics: Arc<Metrics>,
    liveness: Arc<crate::liveness::Liveness>,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(spec.poll).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "health votes: no HTTP client; every replica's view is its own");
            stop.cancelled().await;
            return;
        }
    };
    let heart = liveness.register(
        "health votes",
        spec.poll
            .saturating_mul(5)
            .saturating_add(std::time::Duration::from_secs(2)),
    );
    let mut tick = tokio::time::interval(spec.poll);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing: HashMap<String, bool> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        heart.beat();
        let answers = futures::future::join_all(spec.peers.iter().map(|p| fetch(&client, p))).await;
        let now = Instant::now();
        for (peer, answer) in spec.peers.iter().zip(answers) {
            let was_failing = failing.get(peer).copied().unwrap_or(false);
            match answer {
                Ok(view) => {
                    if was_failing {
                        tracing::info!(%peer, "health votes: peer answers again");
                    }
                    failing.insert(peer.clone(), false);
                    metrics.set_vote_peer(peer, true);
                    board.set_peer_view(view.into_peer(now), now);
                }
                Err(e) => {
                    if !was_failing {
                        tracing::warn!(%peer, error = %e, "health votes: peer does not answer; its view stops counting once older than max_age");
                    }
                    failing.insert(peer.clone(), true);
                    metrics.set_vote_peer(peer, false);
                }
            }
        }
        board.refresh(now);
        heart.beat();
    }
}
