//! Where [`SiteRuns`] lives: beside the lease, written only with conditional writes by the
//! leader under its epoch, so that a new leader resumes what the old one started and a
//! deposed one cannot overwrite it.

use super::record::SiteRuns;
use crate::leader::s3::S3Store;
use crate::leader::{LeaderError, Precondition, Put};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The record was written under a newer epoch: this replica no longer leads.
    #[error(
        "the site record at {location} was written by a newer leader (epoch {found} > ours {ours}); not writing"
    )]
    Fenced {
        location: String,
        found: u64,
        ours: u64,
    },
    /// Someone wrote between our read and our write.
    #[error("the site record at {0} changed while we wrote it; read it again")]
    Conflict(String),
    /// The S3 object could not be read or written (`op in region: Code: message`).
    #[error(transparent)]
    S3(Arc<LeaderError>),
    /// The API server answered with an error.
    #[error("{op} {location}: {reason}: {message}")]
    Kube {
        op: &'static str,
        location: String,
        reason: String,
        message: String,
    },
    /// No answer from the API server.
    #[error("{op} {location}: {source}")]
    KubeTransport {
        op: &'static str,
        location: String,
        #[source]
        source: Arc<kube::Error>,
    },
    #[error("the site record at {location} is not readable: {message}")]
    Corrupt { location: String, message: String },
    /// The record on a quorum of stores: too few copies answered (each named with its
    /// error), or a version that is not one of this record's.
    #[error("{message}")]
    Quorum { message: String },
}

/// A versioned read and a conditional write of the record.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
    async fn load(&self) -> Result<(SiteRuns, Option<String>), StoreError>;
    /// Write `runs` if the record is still at `version` (None: absent).
    async fn save(&self, runs: &SiteRuns, version: Option<&str>) -> Result<String, StoreError>;
    fn location(&self) -> String;
}

/// Read, change and write the record under `epoch`: refused when the stored epoch is
/// newer; a concurrent write makes it fail with `Conflict` (nothing half-done).
pub async fn update<T>(
    store: &dyn RunStore,
    epoch: u64,
    f: impl FnOnce(&mut SiteRuns) -> T,
) -> Result<(SiteRuns, T), StoreError> {
    let (mut runs, version) = store.load().await?;
    if runs.epoch > epoch {
        return Err(StoreError::Fenced {
            location: store.location(),
            found: runs.epoch,
            ours: epoch,
        });
    }
    let out = f(&mut runs);
    runs.epoch = epoch;
    runs.revision = runs.revision.saturating_add(1);
    store.save(&runs, version.as_deref()).await?;
    Ok((runs, out))
}

/// The record in S3, next to the lease object.
pub struct S3RunStore(pub S3Store);

#[async_trait::async_trait]
impl RunStore for S3RunStore {
    #[tracing::instrument(level = "debug", skip(self), fields(record = %self.0.location()))]
    async fn load(&self) -> Result<(SiteRuns, Option<String>), StoreError> {
        match self.0.get_bytes().await {
            Ok(None) => Ok((SiteRuns::default(), None)),
            Ok(Some((body, etag))) => serde_json::from_slice(&body)
                .map(|r| (r, Some(etag)))
                .map_err(|e| StoreError::Corrupt {
                    location: self.location(),
                    message: e.to_string(),
                }),
            Err(e) => Err(StoreError::S3(Arc::new(e))),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, runs), fields(record = %self.0.location(), epoch = runs.epoch))]
    async fn save(&self, runs: &SiteRuns, version: Option<&str>) -> Result<String, StoreError> {
        let body = serde_json::to_vec(runs).map_err(|e| StoreError::Corrupt {
            location: self.location(),
            message: e.to_string(),
        })?;
        let pre = match version {
            Some(v) => Precondition::Matches(v),
            None => Precondition::Absent,
        };
        match self.0.put_bytes(body, pre).await {
            Ok(Put::Done(v)) => Ok(v),
            Ok(Put::Conflict) => Err(StoreError::Conflict(self.location())),
            Err(e) => Err(StoreError::S3(Arc::new(e))),
        }
    }

    fn location(&self) -> String {
        self.0.location()
    }
}

/// The record in memory: a single replica (nothing to survive) and tests.
#[derive(Default)]
pub struct MemRunStore {
    inner: Mutex<Option<(SiteRuns, u64)>>,
}

#[async_trait::async_trait]
impl RunStore for MemRunStore {
    async fn load(&self) -> Result<(SiteRuns, Option<String>), StoreError> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match &*g {
            Some((r, v)) => (r.clone(), Some(v.to_string())),
            None => (SiteRuns::default(), None),
        })
    }

    async fn save(&self, runs: &SiteRuns, version: Option<&str>) -> Result<String, StoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let cur = g.as_ref().map(|(_, v)| v.to_string());
        if cur.as_deref() != version {
            return Err(StoreError::Conflict(self.location()));
        }
        let next = g.as_ref().map_or(1, |(_, v)| v + 1);
        *g = Some((runs.clone(), next));
        Ok(next.to_string())
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

/// The record in a ConfigMap next to the Kubernetes Lease (`<lease>-sites`, key
/// `sites.json`), written with the object's resourceVersion as the precondition: the API
/// server refuses a write over a newer version (409), as S3 refuses a stale ETag.
pub struct ConfigMapRunStore {
    api: kube::Api<k8s_openapi::api::core::v1::ConfigMap>,
    namespace: String,
    name: String,
}

/// The ConfigMap's data key.
pub const CONFIGMAP_KEY: &str = "sites.json";

impl ConfigMapRunStore {
    /// The store for the Lease `lease` in `namespace`.
    pub fn new(client: kube::Client, namespace: &str, lease: &str) -> Self {
        ConfigMapRunStore {
            api: kube::Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: format!("{lease}-sites"),
        }
    }

    fn kube_error(&self, op: &'static str, e: kube::Error) -> StoreError {
        match e {
            kube::Error::Api(s) if s.code == 409 || s.code == 404 && op == "replace" => {
                StoreError::Conflict(self.location())
            }
            kube::Error::Api(s) => StoreError::Kube {
                op,
                location: self.location(),
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            other => StoreError::KubeTransport {
                op,
                location: self.location(),
                source: Arc::new(other),
            },
        }
    }
}

#[async_trait::async_trait]
impl RunStore for ConfigMapRunStore {
    #[tracing::instrument(level = "debug", skip(self), fields(record = %self.location()))]
    async fn load(&self) -> Result<(SiteRuns, Option<String>), StoreError> {
        let cm = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.kube_error("get", e))?;
        let Some(cm) = cm else {
            return Ok((SiteRuns::default(), None));
        };
        let version = cm.metadata.resource_version.clone();
        match cm.data.as_ref().and_then(|d| d.get(CONFIGMAP_KEY)) {
            None => Ok((SiteRuns::default(), version)),
            Some(body) => serde_json::from_str(body)
                .map(|r| (r, version))
                .map_err(|e| StoreError::Corrupt {
                    location: self.location(),
                    message: e.to_string(),
                }),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, runs), fields(record = %self.location(), epoch = runs.epoch))]
    async fn save(&self, runs: &SiteRuns, version: Option<&str>) -> Result<String, StoreError> {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let body = serde_json::to_string(runs).map_err(|e| StoreError::Corrupt {
            location: self.location(),
            message: e.to_string(),
        })?;
        let cm = k8s_openapi::api::core::v1::ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                resource_version: version.map(str::to_string),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "floatover".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            data: Some([(CONFIGMAP_KEY.to_string(), body)].into()),
            ..Default::default()
        };
        let pp = kube::api::PostParams::default();
        let written = match version {
            None => self
                .api
                .create(&pp, &cm)
                .await
                .map_err(|e| self.kube_error("create", e))?,
            Some(_) => self
                .api
                .replace(&self.name, &pp, &cm)
                .await
                .map_err(|e| self.kube_error("replace", e))?,
        };
        Ok(written.metadata.resource_version.unwrap_or_default())
    }

    fn location(&self) -> String {
        format!("configmap {}/{}", self.namespace, self.name)
    }
}
