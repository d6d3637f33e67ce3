//! The leader's report on its FloatGroups: the status subresource (owner, each target's
//! health, last transition, epoch, the running generation, why a newer spec is refused)
//! and a Kubernetes Event on every move and every refused spec.
//!
//! Only the leader writes (standbys see the same objects but stay silent, so one move is
//! one Event, not one per replica). A status is written only when it differs from the
//! last one this leader wrote; a failed write is logged and tried again on the next round.
//! Nothing here can stop failover: the engine does not wait for it.

use super::source::{ObjectState, ObjectsState};
use super::{FloatGroup, FloatGroupStatus, TargetHealthStatus};
use crate::leader::Leadership;
use crate::model::{Health, Reason};
use crate::status::{AuditEvent, GroupStatus, StatusStore};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the leader compares what it would write with what it wrote.
pub const EVERY: Duration = Duration::from_secs(1);

/// Bound on one API call: a slow API server delays the report, never the controller.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One Event to write.
#[derive(Debug, Clone, PartialEq)]
pub struct EventNote {
    pub object: String,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The Event for an audit entry (None: nothing moved, e.g. a new leader's claim).
pub fn event_for(ev: &AuditEvent) -> Option<EventNote> {
    let (warning, reason) = match (ev.ok, &ev.to, ev.reason) {
        (_, _, Reason::Claim) => return None,
        (false, _, _) => (true, "MoveFailed"),
        (true, None, _) => (false, "Released"),
        (true, Some(_), Reason::Drift) => (true, "DriftReverted"),
        (true, Some(_), Reason::Failover) => (false, "FailedOver"),
        (true, Some(_), Reason::Failback) => (false, "FailedBack"),
        (true, Some(_), Reason::Switchover) => (false, "SwitchedOver"),
        (true, Some(_), Reason::Release) => (false, "Moved"),
    };
    let to = ev
        .to
        .as_ref()
        .map(|t| t.0.clone())
        .unwrap_or_else(|| "(released)".into());
    let mut message = format!(
        "{} {}: {} -> {to} ({}), epoch {}, {:.0} ms, replica {}",
        if ev.ok { "moved" } else { "could not move" },
        ev.float,
        ev.from,
        ev.reason,
        ev.epoch.0,
        ev.call_ms,
        ev.replica
    );
    if let Some(e) = &ev.error {
        message.push_str(&format!(": {e}"));
    }
    if let Some(d) = &ev.detail {
        message.push_str(&format!(" [{d}]"));
    }
    Some(EventNote {
        object: ev.group.0.clone(),
        warning,
        reason,
        message,
    })
}

/// Events about this replica itself (a refused config file), on its Pod: each replica
/// reads the file, so each says so on its own Pod. Best effort and bounded: the Event is
/// sent by a short task that gives up after [`CALL_TIMEOUT`].
#[derive(Clone)]
pub struct PodEvents {
    events: Api<Event>,
    namespace: String,
    pod: String,
}

impl PodEvents {
    /// None outside a pod (`$POD_NAME` unset).
    pub fn new(client: kube::Client, namespace: &str) -> Option<Self> {
        let pod = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty())?;
        Some(PodEvents {
            events: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            pod,
        })
    }

    /// Send a Warning Event on this Pod.
    pub fn warn(&self, reason: &'static str, message: String) {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", self.pod)),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(self.pod.clone()),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some("Warning".into()),
            source: Some(EventSource {
                component: Some("floatover".into()),
                host: None,
            }),
            reporting_component: Some("floatover.io/controller".into()),
            reporting_instance: Some(self.pod.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        let me = self.clone();
        tokio::spawn(async move {
            let pp = PostParams::default();
            match tokio::time::timeout(CALL_TIMEOUT, me.events.create(&pp, &ev)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    let (reason, message) = crate::leader::kube::reason_of(&e);
                    tracing::warn!(
                        "CreateEvent in namespace {}: {reason}: {message}",
                        me.namespace
                    );
                }
                Err(_) => tracing::warn!(
                    "CreateEvent in namespace {}: ConnectionError: no answer within {} s",
                    me.namespace,
                    CALL_TIMEOUT.as_secs()
                ),
            }
        });
    }
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::Up => "up",
        Health::Down => "down",
        Health::Unknown => "unknown",
    }
}

fn rfc3339(unix_ms: u64) -> Option<String> {
    let ms = i64::try_from(unix_ms).ok()?;
    k8s_openapi::jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

/// The status the leader reports for one object. Pure.
pub fn status_for(
    group: Option<&GroupStatus>,
    object: &ObjectState,
    epoch: u64,
    last_transition: Option<String>,
) -> FloatGroupStatus {
    FloatGroupStatus {
        owner: group.and_then(|g| g.owner.as_ref().map(|t| t.0.clone())),
        epoch: Some(epoch),
        targets: group
            .map(|g| {
                g.targets
                    .iter()
                    .map(|t| TargetHealthStatus {
                        name: t.name.0.clone(),
                        health: health_word(t.health).into(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        last_transition,
        observed_generation: object.running_generation,
        message: object.rejected.clone(),
    }
}

/// Writes the status and Events of one namespace's FloatGroups while leader.
pub struct Publisher {
    groups: Api<FloatGroup>,
    events: Api<Event>,
    namespace: String,
    identity: String,
    state: Arc<ObjectsState>,
    status: Arc<StatusStore>,
    /// What this leader last wrote, per object.
    written: BTreeMap<String, FloatGroupStatus>,
    /// When each group's owner last changed (from the moves seen).
    transitions: BTreeMap<String, String>,
    /// The refusal each object was last told about (one Event per distinct refusal).
    told: BTreeMap<String, String>,
    /// Next audit sequence number to turn into Events.
    cursor: u64,
}

impl Publisher {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        identity: &str,
        state: Arc<ObjectsState>,
        status: Arc<StatusStore>,
    ) -> Self {
        Publisher {
            groups: Api::namespaced(client.clone(), namespace),
            events: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            state,
            cursor: status.audit_seq(),
            status,
            written: BTreeMap::new(),
            transitions: BTreeMap::new(),
            told: BTreeMap::new(),
        }
    }

    /// Report while leader until `stop`.
    pub async fn run(mut self, leadership: Leadership, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            let st = leadership.state();
            if !st.is_leader {
                // A later term starts afresh: another leader may have written meanwhile.
                self.written.clear();
                self.told.clear();
                self.cursor = self.status.audit_seq();
                continue;
            }
            self.round(st.epoch.0).await;
        }
    }

    /// One round: Events for new moves and refusals, then changed statuses.
    pub async fn round(&mut self, epoch: u64) {
        let objects = self.state.get();
        let (moves, next) = self.status.audit_since(self.cursor);
        self.cursor = next;
        for ev in &moves {
            if ev.ok
                && ev.to.is_some()
                && ev.reason != Reason::Claim
                && let Some(t) = rfc3339(ev.finished_unix_ms)
            {
                self.transitions.insert(ev.group.0.clone(), t);
            }
            if let Some(note) = event_for(ev) {
                self.event(&objects, note).await;
            }
        }
        for (name, o) in &objects {
            match &o.rejected {
                Some(why) if self.told.get(name) != Some(why) => {
                    let note = EventNote {
                        object: name.clone(),
                        warning: true,
                        reason: "SpecRejected",
                        message: format!("{why}; the previous spec keeps running"),
                    };
                    self.event(&objects, note).await;
                    self.told.insert(name.clone(), why.clone());
                }
                Some(_) => {}
                None => {
                    self.told.remove(name);
                }
            }
        }
        let groups: BTreeMap<String, GroupStatus> = self
            .status
            .groups()
            .into_iter()
            .map(|g| (g.name.clone(), g))
            .collect();
        for (name, o) in &objects {
            let want = status_for(
                groups.get(name),
                o,
                epoch,
                self.transitions.get(name).cloned(),
            );
            if self.written.get(name) == Some(&want) {
                continue;
            }
            if self.patch(name, &want).await {
                self.written.insert(name.clone(), want);
            }
        }
        self.written.retain(|n, _| objects.contains_key(n));
    }

    #[tracing::instrument(skip(self, want), fields(namespace = %self.namespace))]
    async fn patch(&self, name: &str, want: &FloatGroupStatus) -> bool {
        let mut body = serde_json::json!({ "status": want });
        // A refusal that cleared must clear on the object too; an unknown transition must
        // not wipe the one a previous leader wrote.
        if want.message.is_none() {
            body["status"]["message"] = serde_json::Value::Null;
        }
        if want.last_transition.is_none()
            && let Some(s) = body["status"].as_object_mut()
        {
            s.remove("lastTransition");
        }
        let (pp, patch) = (PatchParams::default(), Patch::Merge(&body));
        let call = self.groups.patch_status(name, &pp, &patch);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                let (reason, message) = crate::leader::kube::reason_of(&e);
                tracing::warn!(
                    object = name,
                    "PatchFloatGroupStatus in namespace {}: {reason}: {message}",
                    self.namespace
                );
                false
            }
            Err(_) => {
                tracing::warn!(
                    object = name,
                    "PatchFloatGroupStatus in namespace {}: ConnectionError: no answer within {} s",
                    self.namespace,
                    CALL_TIMEOUT.as_secs()
                );
                false
            }
        }
    }

    #[tracing::instrument(skip(self, objects, note), fields(namespace = %self.namespace, object = %note.object, reason = note.reason))]
    async fn event(&self, objects: &BTreeMap<String, ObjectState>, note: EventNote) {
        let Some(o) = objects.get(&note.object) else {
            return;
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", note.object)),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("floatover.io/v1alpha1".into()),
                kind: Some("FloatGroup".into()),
                name: Some(note.object.clone()),
                namespace: Some(self.namespace.clone()),
                uid: o.uid.clone(),
                ..Default::default()
            },
            reason: Some(note.reason.into()),
            message: Some(note.message.clone()),
            type_: Some(if note.warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some("floatover".into()),
                host: None,
            }),
            reporting_component: Some("floatover.io/controller".into()),
            reporting_instance: Some(self.identity.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        let pp = PostParams::default();
        let call = self.events.create(&pp, &ev);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let (reason, message) = crate::leader::kube::reason_of(&e);
                tracing::warn!(
                    event = note.reason,
                    "CreateEvent in namespace {}: {reason}: {message}",
                    self.namespace
                );
            }
            Err(_) => {
                tracing::warn!(
                    event = note.reason,
                    "CreateEvent in namespace {}: ConnectionError: no answer within {} s",
                    self.namespace,
                    CALL_TIMEOUT.as_secs()
                );
            }
        }
    }
}
