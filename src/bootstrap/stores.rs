//! Where the controller keeps what replicas share, built once per backend: the lease
//! (one store, or one per quorum member) and, beside each lease store, the record of DR
//! promotions. S3: the lease object and `<key>.sites.json`; Kubernetes: the Lease and the
//! ConfigMap `<lease>-sites`; `single`: no lease store and the record in memory; `quorum`:
//! the pair per member, the record good while a majority of its copies answers
//! ([`crate::site::quorum_store`]).

use super::BootstrapError;
use crate::config::{LeaderBackend, Spec};
use crate::leader::kube::KubeStore;
use crate::leader::s3::S3Store;
use crate::leader::{CasLease, LeaseBackend, LeaseStore, QuorumLease, QuorumMember, SingleLease};
use crate::provider::aws::sdk_config;
use crate::site::quorum_store::{QuorumRunStore, RecordCopy};
use crate::site::store::{ConfigMapRunStore, MemRunStore, RunStore, S3RunStore};
use std::sync::Arc;
use std::time::Duration;

/// The lease and the promotion record of one config.
pub(super) struct Stores {
    pub lease: Box<dyn LeaseBackend>,
    pub runs: Arc<dyn RunStore>,
}

/// What one store (an S3 bucket or a Kubernetes namespace) keeps: the whole lease with
/// one store, or one member of a quorum.
struct Member {
    lease: Arc<dyn LeaseStore>,
    runs: Arc<dyn RunStore>,
}

/// Build the lease backend and the promotion record the config asks for.
pub(super) async fn build(spec: &Spec) -> Result<Stores, BootstrapError> {
    let identity = super::identity(spec);
    let timing = spec.leader.timing();
    let api = Some(spec.api.advertise.clone());
    Ok(match &spec.leader.backend {
        LeaderBackend::Single => {
            tracing::warn!(
                "leader backend `single`: this replica is always leader; there is no high availability of the controller itself"
            );
            Stores {
                lease: Box::new(SingleLease::new(identity)),
                runs: Arc::new(MemRunStore::default()),
            }
        }
        LeaderBackend::Quorum { members } => {
            let mut leases = Vec::with_capacity(members.len());
            let mut copies = Vec::with_capacity(members.len());
            for m in members {
                let pair = member(spec, &m.store).await?;
                leases.push(QuorumMember {
                    name: m.name.clone(),
                    store: pair.lease,
                });
                copies.push(RecordCopy {
                    member: m.name.clone(),
                    store: pair.runs,
                });
            }
            tracing::info!(
                members = members.len(),
                "leader election on a quorum of lease stores"
            );
            Stores {
                lease: Box::new(QuorumLease::new(leases, identity, timing, api)),
                runs: Arc::new(QuorumRunStore::new(copies)),
            }
        }
        one => {
            let pair = member(spec, one).await?;
            tracing::info!(lease = %pair.lease.location(), "leader election on one lease store");
            Stores {
                lease: Box::new(CasLease::new(pair.lease, identity, timing).advertise(api)),
                runs: pair.runs,
            }
        }
    })
}

/// One store's lease and record. The lease's calls get one attempt within the retry
/// period (the next round is the retry); the record's get the provider's timeout and
/// retries. Without sites nothing reads the record: it stays in memory, and no second
/// client is built at start-up.
async fn member(spec: &Spec, backend: &LeaderBackend) -> Result<Member, BootstrapError> {
    let creds = spec.aws.credentials.clone();
    let sites = !spec.sites.is_empty();
    match backend {
        LeaderBackend::S3 {
            bucket,
            key,
            region,
            endpoint_url,
        } => {
            let endpoint = endpoint_url.as_deref();
            let lease =
                s3_client(region, endpoint, lease_call_timeout(spec), 1, creds.clone()).await;
            let runs: Arc<dyn RunStore> = if sites {
                let record = s3_client(
                    region,
                    endpoint,
                    spec.aws.call_timeout,
                    spec.aws.max_attempts,
                    creds,
                )
                .await;
                let key = format!("{key}.sites.json");
                Arc::new(S3RunStore(S3Store::new(record, bucket.clone(), key)))
            } else {
                Arc::new(MemRunStore::default())
            };
            Ok(Member {
                lease: Arc::new(S3Store::new(lease, bucket.clone(), key.clone())),
                runs,
            })
        }
        LeaderBackend::Kubernetes {
            namespace,
            name,
            context,
        } => {
            let (ns, ctx) = (namespace.as_deref(), context.as_deref());
            let (lease, lease_ns) = kube_client(
                "leader.backend kubernetes",
                ns,
                ctx,
                lease_call_timeout(spec),
            )
            .await?;
            let runs: Arc<dyn RunStore> = if sites {
                let (record, record_ns) =
                    kube_client("the site record", ns, ctx, spec.aws.call_timeout).await?;
                Arc::new(ConfigMapRunStore::new(record, &record_ns, name))
            } else {
                Arc::new(MemRunStore::default())
            };
            Ok(Member {
                lease: Arc::new(KubeStore::new(lease, &lease_ns, name)),
                runs,
            })
        }
        LeaderBackend::Single | LeaderBackend::Quorum { .. } => Err(BootstrapError::NotAMember),
    }
}

/// Lease calls must answer well within the retry period; one attempt per round (the next
/// round is the retry).
fn lease_call_timeout(spec: &Spec) -> Duration {
    spec.leader.retry_period.max(Duration::from_millis(300))
}

/// An S3 client for the lease bucket (path-style with an endpoint override: LocalStack
/// and other emulators serve no virtual hosts).
async fn s3_client(
    region: &str,
    endpoint_url: Option<&str>,
    timeout: Duration,
    attempts: u32,
    credentials: Option<aws_credential_types::Credentials>,
) -> aws_sdk_s3::Client {
    let base = sdk_config(region, endpoint_url, timeout, attempts, credentials).await;
    let conf = aws_sdk_s3::config::Builder::from(&base)
        .force_path_style(endpoint_url.is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A Kubernetes client (in-cluster service account or KUBECONFIG) whose calls give up
/// after `timeout` and are not retried inside (the caller's next round is the retry), and
/// the namespace to use: `namespace`, else `$POD_NAMESPACE`, else the client's own.
pub(super) async fn kube_client(
    what: &'static str,
    namespace: Option<&str>,
    context: Option<&str>,
    timeout: Duration,
) -> Result<(kube::Client, String), BootstrapError> {
    let mut config = match context {
        None => kube::Config::infer()
            .await
            .map_err(|source| BootstrapError::NoCluster { what, source })?,
        Some(c) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(c.to_string()),
            ..Default::default()
        })
        .await
        .map_err(|source| BootstrapError::NoContext {
            what,
            context: c.to_string(),
            source,
        })?,
    };
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    config.connect_timeout = Some(timeout);
    config.default_retry = false;
    let ns = namespace
        .map(str::to_string)
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)
        .map_err(|source| BootstrapError::KubeClient { what, source })?;
    Ok((client, ns))
}
