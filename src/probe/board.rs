//! The health board: the current rise/fall state of every probe of every target, and a
//! generation counter that wakes the engine when any target's health changes.

use super::check::Outcome;
use super::votes::{PeerView, Tally, VoteRule, vote};
use crate::config::Spec;
use crate::model::{Health, TargetKey};
use floatover_core::health::{RiseFall, combine};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the planner needs to know about one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealth {
    pub health: Health,
    /// When `health` took its current value (monotonic).
    pub since: Instant,
    /// Last failure reason, for status output.
    pub last_error: Option<String>,
}

struct Entry {
    probes: Vec<RiseFall>,
    /// This replica's own view (its probes).
    view: TargetHealth,
    /// The view every reader gets: `view`, or with health votes the voted health.
    voted: TargetHealth,
    tally: Option<Tally>,
}

/// Shared between probe tasks (writers), the engine and the API (readers).
pub struct HealthBoard {
    entries: Mutex<HashMap<TargetKey, Entry>>,
    /// Health votes (docs/leader-election.md, "Surviving a region"): None, one vantage point.
    votes: Option<VoteRule>,
    /// The peers' views, as last fetched (lock order: `entries`, then `peers`).
    peers: Mutex<Vec<PeerView>>,
    changed: watch::Sender<u64>,
}

impl HealthBoard {
    pub fn new(spec: &Spec, now: Instant) -> Self {
        let mut entries = HashMap::new();
        for g in &spec.groups {
            for t in &g.targets {
                entries.insert(
                    TargetKey {
                        group: g.name.clone(),
                        target: t.id.clone(),
                    },
                    Entry {
                        probes: t
                            .probes
                            .iter()
                            .map(|p| RiseFall::new(p.rise, p.fall))
                            .collect(),
                        view: TargetHealth {
                            health: Health::Unknown,
                            since: now,
                            last_error: None,
                        },
                        voted: TargetHealth {
                            health: Health::Unknown,
                            since: now,
                            last_error: None,
                        },
                        tally: None,
                    },
                );
            }
        }
        HealthBoard {
            entries: Mutex::new(entries),
            votes: spec.health_votes.as_ref().map(|v| v.rule.clone()),
            peers: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        }
    }

    /// Recompute one entry's voted view; true when its health changed.
    fn revote(&self, key: &TargetKey, e: &mut Entry, peers: &[PeerView], now: Instant) -> bool {
        let (health, tally) = match &self.votes {
            Some(rule) => {
                let (h, t) = vote(rule, key, e.view.health, peers, now);
                (h, Some(t))
            }
            None => (e.view.health, None),
        };
        e.tally = tally;
        e.voted.last_error = e.view.last_error.clone();
        if health == e.voted.health {
            return false;
        }
        e.voted.health = health;
        e.voted.since = now;
        true
    }

    /// Replace one peer's view (health votes) and recompute every target; wakes the
    /// readers when a voted health changed.
    pub fn set_peer_view(&self, view: PeerView, now: Instant) {
        {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.retain(|p| p.who != view.who);
            peers.push(view);
        }
        self.refresh(now);
    }

    /// Recompute every voted view at `now` (a peer's view may have aged out).
    pub fn refresh(&self, now: Instant) {
        let changed = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            let mut changed = false;
            for (k, e) in entries.iter_mut() {
                changed |= self.revote(k, e, &peers, now);
            }
            changed
        };
        if changed {
            self.changed.send_modify(|g| *g += 1);
        }
    }

    /// This replica's own view of every target (what it publishes to its peers).
    pub fn local_snapshot(&self) -> HashMap<TargetKey, TargetHealth> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|(k, e)| (k.clone(), e.view.clone()))
            .collect()
    }

    /// The tally behind each target's voted health (None without health votes).
    pub fn tallies(&self) -> HashMap<TargetKey, Tally> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter_map(|(k, e)| e.tally.map(|t| (k.clone(), t)))
            .collect()
    }

    /// Record one probe result. Returns the target's new health when it changed, and in
    /// that case wakes every subscriber.
    pub fn record(
        &self,
        key: &TargetKey,
        probe: usize,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Health> {
        self.record_probe(key, probe, outcome, now).0
    }

    /// [`HealthBoard::record`], also saying whether this probe is now
    /// [transitional](HealthBoard::transitional) (one lock instead of two).
    pub fn record_probe(
        &self,
        key: &TargetKey,
        probe: usize,
        outcome: Outcome,
        now: Instant,
    ) -> (Option<Health>, bool) {
        let mut transitional = false;
        let mut voted_changed = false;
        let changed = (|| {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries.get_mut(key)?;
            let out = Self::apply(entry, probe, outcome, now, &mut transitional);
            let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            voted_changed = self.revote(key, entry, &peers, now);
            out
        })();
        if changed.is_some() || voted_changed {
            self.changed.send_modify(|g| *g += 1);
        }
        (changed, transitional)
    }

    /// One probe result into its rise/fall machine and the target's own view.
    fn apply(
        entry: &mut Entry,
        probe: usize,
        outcome: Outcome,
        now: Instant,
        transitional: &mut bool,
    ) -> Option<Health> {
        let machine = entry.probes.get_mut(probe)?;
        if let Some(why) = outcome.failure() {
            entry.view.last_error = Some(why);
        }
        machine.record(outcome == Outcome::Ok);
        *transitional = machine.transitional();
        let new = combine(entry.probes.iter().map(RiseFall::state));
        if new == entry.view.health {
            return None;
        }
        entry.view.health = new;
        entry.view.since = now;
        if new == Health::Up {
            entry.view.last_error = None;
        }
        Some(new)
    }

    /// True while this probe's last result has not yet been confirmed by rise or fall (a
    /// failure while not down, a success while not up): the time to re-probe at
    /// `fast_interval`.
    pub fn transitional(&self, key: &TargetKey, probe: usize) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .and_then(|e| e.probes.get(probe))
            .is_some_and(RiseFall::transitional)
    }

    /// Copy of every target's health (voted, with health votes).
    pub fn snapshot(&self) -> HashMap<TargetKey, TargetHealth> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|(k, e)| (k.clone(), e.voted.clone()))
            .collect()
    }

    /// [`HealthBoard::snapshot`] of some targets only (one group's): a group worker copies
    /// its own targets, not the whole board, so 500 groups cost 500 times one group rather
    /// than 500 times 500.
    pub fn snapshot_of(&self, keys: &[TargetKey]) -> HashMap<TargetKey, TargetHealth> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| entries.get(k).map(|e| (k.clone(), e.voted.clone())))
            .collect()
    }

    /// [`HealthBoard::tallies`] of some targets only.
    pub fn tallies_of(&self, keys: &[TargetKey]) -> HashMap<TargetKey, Tally> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| entries.get(k).and_then(|e| e.tally.map(|t| (k.clone(), t))))
            .collect()
    }

    /// Health of one target (voted, with health votes; Unknown when not configured).
    pub fn get(&self, key: &TargetKey) -> Health {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .map(|e| e.voted.health)
            .unwrap_or(Health::Unknown)
    }

    /// A receiver that changes whenever any target's health changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
