//! The Kubernetes lease store: one `coordination.k8s.io/v1` Lease, changed only with
//! optimistic concurrency (create fails with 409 AlreadyExists if the Lease exists; replace
//! carries the `resourceVersion` read and fails with 409 Conflict if anyone wrote since).
//! The protocol, with its takeover and fencing rules, is [`super::protocol`], shared with the
//! S3 lease: this module only maps the record onto a Lease.
//!
//! Why not `kube-lease-manager`: it trusts the Lease's wall-clock `renewTime` for expiry
//! (clock skew between nodes shortens or stretches the lease), and it offers no fencing of
//! side effects outside Kubernetes. floatover's protocol takes over only after it has seen
//! the Lease *unchanged* for its duration on its own monotonic clock, and a holder stops
//! mutating at `last renewal sent + renew_deadline`, before anyone can take over.
//!
//! Mapping: `holderIdentity` is the holder, `leaseTransitions` is the epoch (so
//! `kubectl get lease` shows both), `leaseDurationSeconds` is the lease rounded up to a
//! second; the exact duration in milliseconds, the renewal counter, the release flag and
//! the holder's API URL live in `floatover.io/*` annotations. `renewTime` and
//! `acquireTime` are written for people reading the Lease; floatover never reads them.

use super::LeaderError;
use super::protocol::{CasLease, LeaseRecord, LeaseStore, LeaseTiming, Precondition, Put};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;
use std::time::Duration;

const LEASE_MS: &str = "floatover.io/lease-ms";
const RENEWALS: &str = "floatover.io/renewals";
const RELEASED: &str = "floatover.io/released";
const API: &str = "floatover.io/api";
const WRITER: &str = "floatover.io/writer";

/// The Kubernetes lease: the shared protocol over a Lease object.
pub type KubeLease = CasLease<KubeStore>;

impl KubeLease {
    /// A lease on Lease `name` in `namespace` for `identity`.
    pub fn kubernetes(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: String,
        timing: LeaseTiming,
    ) -> Self {
        // A store call must answer within the retry period (at least 300 ms).
        let store = KubeStore::new(client, namespace, name)
            .with_timeout(timing.retry.max(Duration::from_millis(300)));
        CasLease::new(store, identity, timing)
    }
}

/// One Lease object.
pub struct KubeStore {
    api: Api<Lease>,
    namespace: String,
    name: String,
    /// Every API call is bounded by this, whatever the client's own timeouts and retries:
    /// the protocol's next round is the retry, and a round must never hang.
    timeout: Duration,
}

impl KubeStore {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        KubeStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            timeout: Duration::from_secs(2),
        }
    }

    /// Bound every API call by `timeout` (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, (&'static str, kube::Error)> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e| (op, e)),
            Err(_) => Err((
                op,
                kube::Error::Service(
                    format!("no answer within {} ms", self.timeout.as_millis()).into(),
                ),
            )),
        }
    }

    fn error(&self, op: &'static str, e: kube::Error) -> LeaderError {
        let (code, message) = reason_of(&e);
        LeaderError::Store {
            op,
            region: format!("namespace {}", self.namespace),
            code,
            message: format!("{message} ({})", self.location()),
        }
    }

    fn corrupt(&self, message: impl Into<String>) -> LeaderError {
        LeaderError::Corrupt {
            location: self.location(),
            message: message.into(),
        }
    }
}

/// An API error as (reason, message), e.g. `("Conflict", "the object has been modified")`;
/// transport failures read `ConnectionError`.
pub fn reason_of(e: &kube::Error) -> (String, String) {
    match e {
        kube::Error::Api(s) => (
            if s.reason.is_empty() {
                format!("HTTP {}", s.code)
            } else {
                s.reason.clone()
            },
            s.message.clone(),
        ),
        kube::Error::Service(e) => ("ConnectionError".to_string(), e.to_string()),
        other => ("ConnectionError".to_string(), other.to_string()),
    }
}

/// A Lease that cannot carry, or does not hold, a lease record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseShapeError {
    #[error("epoch {0} does not fit leaseTransitions")]
    EpochTooLarge(u64),
    #[error("the Lease has no resourceVersion")]
    NoVersion,
    #[error("annotation {key}: {value:?} is not a number")]
    NotANumber { key: String, value: String },
    #[error("leaseTransitions is negative")]
    NegativeTransitions,
}

/// The Lease that stores `rec` (with `resource_version` for a conditional replace).
pub fn lease_of(
    rec: &LeaseRecord,
    namespace: &str,
    name: &str,
    resource_version: Option<String>,
) -> Result<Lease, LeaseShapeError> {
    let transitions =
        i32::try_from(rec.epoch).map_err(|_| LeaseShapeError::EpochTooLarge(rec.epoch))?;
    let seconds = i32::try_from(rec.lease_ms.div_ceil(1000).max(1)).unwrap_or(i32::MAX);
    let mut annotations = BTreeMap::from([
        (LEASE_MS.to_string(), rec.lease_ms.to_string()),
        (RENEWALS.to_string(), rec.renewals.to_string()),
    ]);
    if rec.released {
        annotations.insert(RELEASED.to_string(), "true".into());
    }
    if let Some(api) = &rec.api {
        annotations.insert(API.to_string(), api.clone());
    }
    if let Some(w) = &rec.writer {
        annotations.insert(WRITER.to_string(), w.clone());
    }
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    Ok(Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            resource_version,
            annotations: Some(annotations),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "floatover".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(rec.holder.clone()),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(transitions),
            renew_time: Some(now.clone()),
            acquire_time: (rec.renewals == 0).then_some(now),
            ..LeaseSpec::default()
        }),
    })
}

/// The record a Lease stores, and its version. A Lease written by someone else (without
/// floatover's annotations) reads as held by its `holderIdentity` for
/// `leaseDurationSeconds`.
pub fn record_of(lease: &Lease) -> Result<(LeaseRecord, String), LeaseShapeError> {
    let version = lease
        .metadata
        .resource_version
        .clone()
        .filter(|v| !v.is_empty())
        .ok_or(LeaseShapeError::NoVersion)?;
    let spec = lease.spec.clone().unwrap_or_default();
    let ann = lease.metadata.annotations.clone().unwrap_or_default();
    let number = |key: &str| -> Result<Option<u64>, LeaseShapeError> {
        ann.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| LeaseShapeError::NotANumber {
                    key: key.into(),
                    value: v.clone(),
                })
            })
            .transpose()
    };
    let epoch = u64::try_from(spec.lease_transitions.unwrap_or(0))
        .map_err(|_| LeaseShapeError::NegativeTransitions)?;
    let lease_ms = match number(LEASE_MS)? {
        Some(ms) => ms,
        None => u64::try_from(spec.lease_duration_seconds.unwrap_or(0))
            .unwrap_or(0)
            .saturating_mul(1000),
    };
    Ok((
        LeaseRecord {
            holder: spec.holder_identity.unwrap_or_default(),
            epoch,
            lease_ms,
            renewals: number(RENEWALS)?.unwrap_or(0),
            released: ann.get(RELEASED).is_some_and(|v| v == "true"),
            api: ann.get(API).cloned(),
            writer: ann.get(WRITER).cloned(),
        },
        version,
    ))
}

#[async_trait::async_trait]
impl LeaseStore for KubeStore {
    #[tracing::instrument(level = "debug", skip(self), fields(lease = %self.location()))]
    async fn get(&self) -> Result<Option<(LeaseRecord, String)>, LeaderError> {
        let lease = self
            .bounded("GetLease", self.api.get_opt(&self.name))
            .await
            .map_err(|(op, e)| self.error(op, e))?;
        lease
            .map(|l| record_of(&l).map_err(|m| self.corrupt(m.to_string())))
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip(self, rec), fields(lease = %self.location(), epoch = rec.epoch))]
    async fn put(&self, rec: &LeaseRecord, pre: Precondition<'_>) -> Result<Put, LeaderError> {
        let version = match pre {
            Precondition::Absent => None,
            Precondition::Matches(v) => Some(v.to_string()),
        };
        let lease = lease_of(rec, &self.namespace, &self.name, version.clone())
            .map_err(|m| self.corrupt(m.to_string()))?;
        let pp = PostParams::default();
        let res = match version {
            None => {
                self.bounded("CreateLease", self.api.create(&pp, &lease))
                    .await
            }
            Some(_) => {
                self.bounded("ReplaceLease", self.api.replace(&self.name, &pp, &lease))
                    .await
            }
        };
        match res {
            Ok(written) => written
                .metadata
                .resource_version
                .map(Put::Done)
                .ok_or_else(|| self.corrupt("the API server returned no resourceVersion")),
            // 409: AlreadyExists on create, Conflict on a stale resourceVersion; 404: the
            // Lease was deleted since it was read. Either way someone else wrote first.
            Err((_, kube::Error::Api(s))) if s.code == 409 || s.code == 404 => Ok(Put::Conflict),
            Err((op, e)) => Err(self.error(op, e)),
        }
    }

    fn location(&self) -> String {
        format!("lease {}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> LeaseRecord {
        LeaseRecord {
            holder: "floatover-0".into(),
            epoch: 7,
            lease_ms: 2_500,
            renewals: 3,
            released: false,
            api: Some("http://10.0.0.5:9090".into()),
            writer: Some("00ff".into()),
        }
    }

    #[test]
    fn a_record_round_trips_through_a_lease() {
        let mut l = lease_of(&rec(), "ns", "floatover", None).unwrap();
        l.metadata.resource_version = Some("42".into());
        let spec = l.spec.clone().unwrap();
        assert_eq!(
            spec.lease_transitions,
            Some(7),
            "the epoch, visible to kubectl"
        );
        assert_eq!(spec.lease_duration_seconds, Some(3), "rounded up");
        assert_eq!(record_of(&l).unwrap(), (rec(), "42".to_string()));
    }

    #[test]
    fn a_foreign_lease_reads_with_its_own_duration() {
        let l = Lease {
            metadata: ObjectMeta {
                resource_version: Some("9".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("someone".into()),
                lease_duration_seconds: Some(15),
                lease_transitions: Some(2),
                ..LeaseSpec::default()
            }),
        };
        let (r, v) = record_of(&l).unwrap();
        assert_eq!(
            (r.holder.as_str(), r.epoch, r.lease_ms, v.as_str()),
            ("someone", 2, 15_000, "9")
        );
    }

    #[test]
    fn bad_leases_are_refused_not_misread() {
        let mut l = lease_of(&rec(), "ns", "x", Some("1".into())).unwrap();
        l.spec.as_mut().unwrap().lease_transitions = Some(-1);
        assert!(record_of(&l).is_err());
        let mut l = lease_of(&rec(), "ns", "x", Some("1".into())).unwrap();
        l.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(LEASE_MS.into(), "soon".into());
        assert!(record_of(&l).unwrap_err().to_string().contains("lease-ms"));
        let big = LeaseRecord {
            epoch: u64::MAX,
            ..rec()
        };
        assert!(lease_of(&big, "ns", "x", None).is_err());
    }
}
