//! One interface over the lease stores the protocol tests run against, so that every
//! timing and conflict rule is checked on each store: the in-memory store and the
//! Kubernetes Lease store over the fake API server (both in process, so paused time works).

use crate::kubeapi::FakeKube;
use crate::memlease::MemLease;
use floatover::leader::kube::{KubeStore, lease_of, record_of};
use floatover::leader::{LeaseRecord, LeaseStore};
use tokio::time::Instant;

const NS: &str = "default";
const NAME: &str = "floatover";

/// A shared lease record and the switches the protocol tests need.
pub trait LeaseWorld: Clone + Send + Sync + 'static {
    type Store: LeaseStore + 'static;
    /// Replica `who`'s handle on the shared record.
    fn store(&self, who: &str) -> Self::Store;
    /// Make the store unreachable for `who` (true) or reachable again.
    fn cut_off(&self, who: &str, cut: bool);
    /// Remove the record (the lease object was deleted).
    fn delete(&self);
    /// Put a record in place as another writer would.
    fn plant(&self, rec: LeaseRecord);
    fn record(&self) -> Option<LeaseRecord>;
    /// Every successful write, with its time.
    fn writes(&self) -> Vec<(Instant, LeaseRecord)>;
}

impl LeaseWorld for MemLease {
    type Store = MemLease;
    fn store(&self, who: &str) -> MemLease {
        self.for_replica(who)
    }
    fn cut_off(&self, who: &str, cut: bool) {
        MemLease::cut_off(self, who, cut);
    }
    fn delete(&self) {
        MemLease::delete(self);
    }
    fn plant(&self, rec: LeaseRecord) {
        MemLease::plant(self, rec);
    }
    fn record(&self) -> Option<LeaseRecord> {
        MemLease::record(self)
    }
    fn writes(&self) -> Vec<(Instant, LeaseRecord)> {
        MemLease::writes(self)
            .into_iter()
            .map(|w| (w.at, w.record))
            .collect()
    }
}

fn decode(v: &serde_json::Value) -> Option<LeaseRecord> {
    let lease = serde_json::from_value(v.clone()).ok()?;
    record_of(&lease).ok().map(|(r, _)| r)
}

impl LeaseWorld for FakeKube {
    type Store = KubeStore;
    fn store(&self, who: &str) -> KubeStore {
        KubeStore::new(self.for_replica(who).client(), NS, NAME)
    }
    fn cut_off(&self, who: &str, cut: bool) {
        FakeKube::cut_off(self, who, cut);
    }
    fn delete(&self) {
        FakeKube::delete(self, NS, NAME);
    }
    fn plant(&self, rec: LeaseRecord) {
        let lease = lease_of(&rec, NS, NAME, None).unwrap_or_default();
        FakeKube::plant(
            self,
            NS,
            NAME,
            serde_json::to_value(lease).unwrap_or_default(),
        );
    }
    fn record(&self) -> Option<LeaseRecord> {
        self.get(NS, NAME).as_ref().and_then(decode)
    }
    fn writes(&self) -> Vec<(Instant, LeaseRecord)> {
        FakeKube::writes(self)
            .into_iter()
            .filter_map(|(at, v)| decode(&v).map(|r| (at, r)))
            .collect()
    }
}
