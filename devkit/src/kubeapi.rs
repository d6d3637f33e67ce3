//! A test double of the Kubernetes API server, for Lease objects only
//! (`coordination.k8s.io/v1`). No real API server can be installed on these machines
//! (no kind, k3s or envtest), so the Lease store is tested against this: it enforces what
//! the lease protocol relies on, the way the API server does: a create of an existing
//! Lease is refused with 409 AlreadyExists, a replace whose `metadata.resourceVersion` is
//! not the current one with 409 Conflict, a replace without one is unconditional, and
//! every write gets a new resourceVersion.
//!
//! It serves two ways: in process, as the transport of a `kube::Client` (no sockets, so
//! paused-time tests work), and over HTTP on a loopback port (a real client, real
//! requests). Per-replica handles can be cut off (their calls fail with 503), and every
//! successful write is logged with its (tokio) time.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

const PREFIX: &str = "/apis/coordination.k8s.io/v1/namespaces/";

#[derive(Default)]
struct Inner {
    /// Leases by (namespace, name).
    objects: BTreeMap<(String, String), Value>,
    resource_version: u64,
    cut_off: Vec<String>,
    /// Identities whose requests are never answered (a black hole).
    frozen: Vec<String>,
    log: Vec<(Instant, Value)>,
    requests: u64,
}

/// The fake API server. Clone it per replica with [`FakeKube::for_replica`].
#[derive(Clone, Default)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
    who: String,
}

fn status(code: u16, reason: &str, message: String) -> (u16, Value) {
    (
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code,
        }),
    )
}

impl FakeKube {
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle whose requests come from replica `who` (for [`FakeKube::cut_off`]).
    pub fn for_replica(&self, who: &str) -> Self {
        FakeKube {
            inner: self.inner.clone(),
            who: who.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the API server unreachable for `who` (true) or reachable again (false).
    pub fn cut_off(&self, who: &str, cut: bool) {
        let mut g = self.lock();
        g.cut_off.retain(|i| i != who);
        if cut {
            g.cut_off.push(who.to_string());
        }
    }

    /// Never answer `who`'s requests (true), or answer again (false).
    pub fn freeze(&self, who: &str, frozen: bool) {
        let mut g = self.lock();
        g.frozen.retain(|i| i != who);
        if frozen {
            g.frozen.push(who.to_string());
        }
    }

    fn is_frozen(&self) -> bool {
        self.lock().frozen.contains(&self.who)
    }

    /// The stored Lease, as JSON.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Put an object in place as another writer would (a new resourceVersion).
    pub fn plant(&self, namespace: &str, name: &str, mut obj: Value) {
        let mut g = self.lock();
        g.resource_version += 1;
        obj["metadata"]["resourceVersion"] = json!(g.resource_version.to_string());
        g.objects
            .insert((namespace.to_string(), name.to_string()), obj);
    }

    pub fn delete(&self, namespace: &str, name: &str) {
        self.lock()
            .objects
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Every successful write so far, with its time.
    pub fn writes(&self) -> Vec<(Instant, Value)> {
        self.lock().log.clone()
    }

    /// How many requests were answered (any outcome).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Answer one request: the API server's semantics for Leases.
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let mut g = self.lock();
        g.requests += 1;
        if g.cut_off.contains(&self.who) {
            return status(503, "ServiceUnavailable", "cut off by the test".into());
        }
        let Some(rest) = path.split('?').next().and_then(|p| p.strip_prefix(PREFIX)) else {
            return status(404, "NotFound", format!("the server could not find {path}"));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (ns, name) = match parts[..] {
            [ns, "leases"] => (ns.to_string(), None),
            [ns, "leases", name] => (ns.to_string(), Some(name.to_string())),
            _ => return status(404, "NotFound", format!("the server could not find {path}")),
        };
        let parsed = || serde_json::from_slice::<Value>(body);
        match (method, name) {
            ("GET", Some(name)) => match g.objects.get(&(ns, name.clone())) {
                Some(o) => (200, o.clone()),
                None => status(
                    404,
                    "NotFound",
                    format!("leases.coordination.k8s.io \"{name}\" not found"),
                ),
            },
            ("POST", None) => {
                let Ok(mut obj) = parsed() else {
                    return status(400, "BadRequest", "body is not JSON".into());
                };
                let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string) else {
                    return status(422, "Invalid", "metadata.name: Required value".into());
                };
                if !obj["metadata"]["resourceVersion"].is_null() {
                    return status(
                        422,
                        "Invalid",
                        "metadata.resourceVersion: may not be set on create".into(),
                    );
                }
                let key = (ns, name.clone());
                if g.objects.contains_key(&key) {
                    return status(
                        409,
                        "AlreadyExists",
                        format!("leases.coordination.k8s.io \"{name}\" already exists"),
                    );
                }
                g.resource_version += 1;
                obj["metadata"]["resourceVersion"] = json!(g.resource_version.to_string());
                obj["metadata"]["uid"] = json!(format!("uid-{}", g.resource_version));
                g.objects.insert(key, obj.clone());
                g.log.push((Instant::now(), obj.clone()));
                (201, obj)
            }
            ("PUT", Some(name)) => {
                let Ok(mut obj) = parsed() else {
                    return status(400, "BadRequest", "body is not JSON".into());
                };
                let key = (ns, name.clone());
                let Some(cur) = g.objects.get(&key) else {
                    return status(
                        404,
                        "NotFound",
                        format!("leases.coordination.k8s.io \"{name}\" not found"),
                    );
                };
                let want = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
                if !want.is_empty() && cur["metadata"]["resourceVersion"].as_str() != Some(want) {
                    return status(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                        ),
                    );
                }
                let uid = cur["metadata"]["uid"].clone();
                g.resource_version += 1;
                obj["metadata"]["resourceVersion"] = json!(g.resource_version.to_string());
                obj["metadata"]["uid"] = uid;
                g.objects.insert(key, obj.clone());
                g.log.push((Instant::now(), obj.clone()));
                (200, obj)
            }
            ("DELETE", Some(name)) => match g.objects.remove(&(ns, name)) {
                Some(_) => (200, json!({"kind": "Status", "status": "Success"})),
                None => status(404, "NotFound", "not found".into()),
            },
            _ => status(405, "MethodNotAllowed", format!("{method} {path}")),
        }
    }

    /// A `kube::Client` whose transport is this fake, in process.
    pub fn client(&self) -> kube::Client {
        let me = self.clone();
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let me = me.clone();
            async move {
                if me.is_frozen() {
                    std::future::pending::<()>().await;
                }
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let (code, v) = me.handle(parts.method.as_str(), parts.uri.path(), &bytes);
                let resp = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(v.to_string())))
                    .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())));
                Ok::<_, Infallible>(resp)
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Serve over HTTP on a free loopback port; returns the base URL. The server runs until
    /// the runtime ends.
    pub async fn serve(&self) -> Result<String, crate::DevkitError> {
        use axum::extract::Request;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| crate::DevkitError::Seed {
                op: "bind",
                message: e.to_string(),
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| crate::DevkitError::Seed {
                op: "bind",
                message: e.to_string(),
            })?;
        let me = self.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let (code, v) = me.handle(parts.method.as_str(), parts.uri.path(), &bytes);
                (
                    axum::http::StatusCode::from_u16(code)
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                    [("content-type", "application/json")],
                    v.to_string(),
                )
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}"))
    }

    /// A `kube::Client` that talks HTTP to [`FakeKube::serve`]'s URL.
    pub fn http_client(url: &str) -> Result<kube::Client, crate::DevkitError> {
        let uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| crate::DevkitError::Seed {
                op: "kube client",
                message: e.to_string(),
            })?;
        let mut config = kube::Config::new(uri);
        // As the controller does: no retries inside a lease round.
        config.default_retry = false;
        kube::Client::try_from(config).map_err(|e| crate::DevkitError::Seed {
            op: "kube client",
            message: e.to_string(),
        })
    }
}
