//! What the engine last saw and did, for the status API, the CLI and tests: the observed
//! holder of every float, the plan's notes, and an audit trail of every decision.
//! Written by the engine only; read by anyone.

use crate::model::{Epoch, GroupName, Holder, MoveStamp, Reason, TargetId};
use crate::plan::Note;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many audit events the status API keeps (the log keeps all of them).
pub const AUDIT_KEEP: usize = 1000;

/// One decision and what came of it. Also logged as one line with message `audit`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Wall-clock times (for humans and cross-replica comparison), milliseconds since epoch.
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub replica: String,
    pub group: GroupName,
    pub float: String,
    pub from: Holder,
    /// None for a release.
    pub to: Option<TargetId>,
    pub reason: Reason,
    pub epoch: Epoch,
    /// Threshold crossing (or switchover request, or failback-delay expiry) → first
    /// provider call issued, in milliseconds. None when the trigger is not known (a move
    /// found necessary on resync).
    pub decision_ms: Option<f64>,
    /// Duration of the provider calls (stamp + move), milliseconds.
    pub call_ms: f64,
    pub ok: bool,
    pub error: Option<String>,
}

/// Observed state of one float.
#[derive(Debug, Clone, Serialize)]
pub struct FloatStatus {
    pub id: String,
    pub holder: Holder,
    pub stamp: Option<MoveStamp>,
}

/// Health of one target for display.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: TargetId,
    pub priority: u32,
    pub health: &'static str,
    pub for_ms: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct GroupStatus {
    pub name: String,
    pub desired: Option<TargetId>,
    pub targets: Vec<TargetStatus>,
    pub floats: Vec<FloatStatus>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Default)]
struct Inner {
    ready: bool,
    observe_error: Option<String>,
    groups: BTreeMap<String, GroupStatus>,
    audit: VecDeque<AuditEvent>,
}

/// Shared status.
#[derive(Debug, Default)]
pub struct StatusStore {
    inner: RwLock<Inner>,
}

/// Wall-clock milliseconds (only for display and cross-process audit comparison).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl StatusStore {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready once the first full observation succeeded.
    pub fn ready(&self) -> bool {
        self.read().ready
    }

    pub fn set_observed(&self, groups: Vec<GroupStatus>) {
        let mut w = self.write();
        w.ready = true;
        w.observe_error = None;
        for g in groups {
            w.groups.insert(g.name.clone(), g);
        }
    }

    pub fn set_observe_error(&self, e: String) {
        self.write().observe_error = Some(e);
    }

    pub fn record(&self, ev: AuditEvent) {
        tracing::info!(
            target: "floatover::audit",
            group = %ev.group, float = %ev.float, from = %ev.from,
            to = %ev.to.as_ref().map(|t| t.0.as_str()).unwrap_or("(released)"),
            reason = %ev.reason, epoch = ev.epoch.0, replica = %ev.replica,
            decision_ms = ev.decision_ms, call_ms = ev.call_ms,
            started_unix_ms = ev.started_unix_ms, finished_unix_ms = ev.finished_unix_ms,
            ok = ev.ok, error = ev.error.as_deref().unwrap_or(""),
            "audit"
        );
        let mut w = self.write();
        if w.audit.len() >= AUDIT_KEEP {
            w.audit.pop_front();
        }
        w.audit.push_back(ev);
    }

    pub fn audit(&self) -> Vec<AuditEvent> {
        self.read().audit.iter().cloned().collect()
    }

    pub fn groups(&self) -> Vec<GroupStatus> {
        self.read().groups.values().cloned().collect()
    }

    pub fn observe_error(&self) -> Option<String> {
        self.read().observe_error.clone()
    }
}
