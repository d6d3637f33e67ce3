//! The health board: the current rise/fall state of every probe of every target, and a
//! generation counter that wakes the engine when any target's health changes.

use super::check::Outcome;
use super::state::{RiseFall, combine};
use crate::config::Spec;
use crate::model::{Health, TargetKey};
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
    view: TargetHealth,
}

/// Shared between probe tasks (writers), the engine and the API (readers).
pub struct HealthBoard {
    entries: Mutex<HashMap<TargetKey, Entry>>,
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
                    },
                );
            }
        }
        HealthBoard {
            entries: Mutex::new(entries),
            changed: watch::channel(0).0,
        }
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
        let changed = (|| {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries.get_mut(key)?;
            let machine = entry.probes.get_mut(probe)?;
            if let Some(why) = outcome.failure() {
                entry.view.last_error = Some(why);
            }
            machine.record(outcome == Outcome::Ok);
            transitional = machine.transitional();
            let new = combine(entry.probes.iter().map(RiseFall::state));
            if new != entry.view.health {
                entry.view.health = new;
                entry.view.since = now;
                if new == Health::Up {
                    entry.view.last_error = None;
                }
                Some(new)
            } else {
                None
            }
        })();
        if changed.is_some() {
            self.changed.send_modify(|g| *g += 1);
        }
        (changed, transitional)
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

    /// Copy of every target's health.
    pub fn snapshot(&self) -> HashMap<TargetKey, TargetHealth> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|(k, e)| (k.clone(), e.view.clone()))
            .collect()
    }

    /// Health of one target (Unknown when not configured).
    pub fn get(&self, key: &TargetKey) -> Health {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .map(|e| e.view.health)
            .unwrap_or(Health::Unknown)
    }

    /// A receiver that changes whenever any target's health changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
