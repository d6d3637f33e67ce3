//! What the engine last saw and did, for the status API, the CLI and tests: the observed
//! holder of every float, the plan's notes, and an audit trail of every decision.
//! Written by the engine only; read by anyone.

use crate::model::{Epoch, GroupName, Health, Holder, MoveStamp, Reason, TargetId};
use crate::plan::Note;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many audit events the status API keeps (the log keeps all of them).
pub const AUDIT_KEEP: usize = 1000;

/// One decision and what came of it. Also logged as one line with message `audit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Time until the float was on its new holder (the move call, plus the stamp when it
    /// is written first), milliseconds.
    pub call_ms: f64,
    /// Mutating round trips until the float was on its new holder.
    pub calls: u32,
    pub ok: bool,
    pub error: Option<String>,
    /// What was found (drift) or what else happened (a stamp not written after a move).
    pub detail: Option<String>,
    /// How long the move waited for the provider's token (more moves were due than the
    /// provider allows at once), milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_wait_ms: Option<f64>,
}

/// Observed state of one float.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloatStatus {
    pub id: String,
    pub holder: Holder,
    /// Weighted floats (DNS): each target's weight as read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub weights: std::collections::BTreeMap<TargetId, u32>,
    pub stamp: Option<MoveStamp>,
    /// How far the float's last change has spread (DNS: PENDING or INSYNC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<crate::provider::Propagation>,
}

/// Health of one target for display.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetStatus {
    pub name: TargetId,
    pub priority: u32,
    /// The health the planner uses (voted, with health votes).
    pub health: Health,
    pub for_ms: u64,
    pub last_error: Option<String>,
    /// With health votes: the fresh views behind `health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub votes: Option<VoteCount>,
}

/// How many fresh views (this replica's and its peers') see a target down or up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct VoteCount {
    pub views: usize,
    pub down: usize,
    pub up: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct GroupStatus {
    pub name: String,
    pub desired: Option<TargetId>,
    /// Who holds the group's floats now (the first float held by a target).
    pub owner: Option<TargetId>,
    pub targets: Vec<TargetStatus>,
    pub floats: Vec<FloatStatus>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Set by the engine when it starts (zero groups is a valid, idle controller).
    expected_groups: Option<usize>,
    observe_errors: BTreeMap<String, String>,
    warnings: BTreeMap<String, String>,
    groups: BTreeMap<String, GroupStatus>,
    audit: VecDeque<AuditEvent>,
    /// Sites as the site loop last published them (JSON array).
    sites: serde_json::Value,
    /// Audit events recorded so far in this process (the sequence number of the next).
    audit_seq: u64,
    /// The provider's client-side queues, as the engine last saw them.
    queues: Vec<crate::pace::QueueStatus>,
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

    /// A new run of the controller in this process (a config reload): forget every
    /// group's view (it is published again, and readiness waits for it); keep the audit
    /// trail and the warnings.
    pub fn restart(&self) {
        let mut w = self.write();
        w.groups.clear();
        w.observe_errors.clear();
        w.expected_groups = None;
    }

    /// How many groups must publish before the replica is ready.
    pub fn expect_groups(&self, n: usize) {
        self.write().expected_groups = Some(n);
    }

    /// Ready once every group has been observed and planned once.
    pub fn ready(&self) -> bool {
        let r = self.read();
        r.expected_groups.is_some_and(|n| r.groups.len() >= n)
    }

    /// Publish one group's view.
    pub fn set_group(&self, g: GroupStatus) {
        self.write().groups.insert(g.name.clone(), g);
    }

    pub fn set_observe_error(&self, group: &str, e: String) {
        self.write().observe_errors.insert(group.to_string(), e);
    }

    /// Why reading this group's floats fails, if it does.
    pub fn observe_error_of(&self, group: &str) -> Option<String> {
        self.read().observe_errors.get(group).cloned()
    }

    pub fn clear_observe_error(&self, group: &str) {
        let mut w = self.write();
        if w.observe_errors.contains_key(group) {
            w.observe_errors.remove(group);
        }
    }

    pub fn record(&self, ev: AuditEvent) {
        tracing::info!(
            target: "floatover::audit",
            group = %ev.group, float = %ev.float, from = %ev.from,
            to = %ev.to.as_ref().map(|t| t.0.as_str()).unwrap_or("(released)"),
            reason = %ev.reason, epoch = ev.epoch.0, replica = %ev.replica,
            decision_ms = ev.decision_ms, call_ms = ev.call_ms,
            started_unix_ms = ev.started_unix_ms, finished_unix_ms = ev.finished_unix_ms,
            calls = ev.calls, ok = ev.ok, error = ev.error.as_deref().unwrap_or(""),
            detail = ev.detail.as_deref().unwrap_or(""),
            "audit"
        );
        let mut w = self.write();
        if w.audit.len() >= AUDIT_KEEP {
            w.audit.pop_front();
        }
        w.audit.push_back(ev);
        w.audit_seq += 1;
    }

    /// Publish the provider's queues (every second, by the engine).
    pub fn set_queues(&self, q: Vec<crate::pace::QueueStatus>) {
        self.write().queues = q;
    }

    /// The provider's queues: what waits for a token, and how long it will take.
    pub fn queues(&self) -> Vec<crate::pace::QueueStatus> {
        self.read().queues.clone()
    }

    pub fn set_sites(&self, v: serde_json::Value) {
        self.write().sites = v;
    }

    /// Sites as last published (JSON array; null when there are none).
    pub fn sites(&self) -> serde_json::Value {
        self.read().sites.clone()
    }

    /// The sequence number the next audit event will get.
    pub fn audit_seq(&self) -> u64 {
        self.read().audit_seq
    }

    /// Audit events numbered `from` and later that are still kept, and the next number.
    pub fn audit_since(&self, from: u64) -> (Vec<AuditEvent>, u64) {
        let r = self.read();
        let first = r.audit_seq - r.audit.len() as u64;
        let skip = from.saturating_sub(first) as usize;
        (r.audit.iter().skip(skip).cloned().collect(), r.audit_seq)
    }

    pub fn audit(&self) -> Vec<AuditEvent> {
        self.read().audit.iter().cloned().collect()
    }

    pub fn groups(&self) -> Vec<GroupStatus> {
        self.read().groups.values().cloned().collect()
    }

    /// Set or clear a process-wide warning shown in status (overload, stalls).
    pub fn set_warning(&self, key: &str, msg: Option<String>) {
        let mut w = self.write();
        match msg {
            Some(m) => {
                w.warnings.insert(key.to_string(), m);
            }
            None => {
                w.warnings.remove(key);
            }
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.read().warnings.values().cloned().collect()
    }

    /// Groups whose observation is failing, as "group: error" lines.
    pub fn observe_error(&self) -> Option<String> {
        let r = self.read();
        if r.observe_errors.is_empty() {
            return None;
        }
        Some(
            r.observe_errors
                .iter()
                .map(|(g, e)| format!("group {g}: {e}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}
