//! A test double of the Kubernetes API server, for the objects floatover uses: Leases
//! (`coordination.k8s.io/v1`), FloatGroups (`floatover.io/v1alpha1`, with their status
//! subresource) and Events (`v1`). No real API server can be installed on these machines
//! (no kind, k3s or envtest), so the Lease store and the FloatGroup source are tested
//! against this. It enforces what floatover relies on, the way the API server does: a
//! create of an existing object is refused with 409 AlreadyExists, a replace whose
//! `metadata.resourceVersion` is not the current one with 409 Conflict, a replace without
//! one is unconditional, every write gets a new resourceVersion, a FloatGroup's `generation`
//! moves only when its spec changes, and a status patch (JSON merge patch on
//! `/status`) changes only the status.
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

/// The resources served: (URL prefix before the namespace, plural, list kind, group label).
const KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "/apis/coordination.k8s.io/v1/namespaces/",
        "leases",
        "LeaseList",
        "leases.coordination.k8s.io",
    ),
    (
        "/apis/floatover.io/v1alpha1/namespaces/",
        "floatgroups",
        "FloatGroupList",
        "floatgroups.floatover.io",
    ),
    ("/api/v1/namespaces/", "events", "EventList", "events"),
    (
        "/api/v1/namespaces/",
        "configmaps",
        "ConfigMapList",
        "configmaps",
    ),
];

/// Objects are stored by (plural, namespace, name).
type Key = (String, String, String);

#[derive(Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
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

fn not_found(label: &str, name: &str) -> (u16, Value) {
    status(404, "NotFound", format!("{label} \"{name}\" not found"))
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

const LEASES: &str = "leases";
const FLOATGROUPS: &str = "floatgroups";
const EVENTS: &str = "events";

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

    fn key(plural: &str, namespace: &str, name: &str) -> Key {
        (plural.to_string(), namespace.to_string(), name.to_string())
    }

    /// The stored Lease, as JSON.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&Self::key(LEASES, namespace, name))
            .cloned()
    }

    /// Put a Lease in place as another writer would (a new resourceVersion).
    pub fn plant(&self, namespace: &str, name: &str, mut obj: Value) {
        let mut g = self.lock();
        g.resource_version += 1;
        obj["metadata"]["resourceVersion"] = json!(g.resource_version.to_string());
        g.objects.insert(Self::key(LEASES, namespace, name), obj);
    }

    /// A ConfigMap as stored (None: absent).
    pub fn configmap(&self, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&Self::key("configmaps", namespace, name))
            .cloned()
    }

    /// Put a ConfigMap in place as another writer would (a new resourceVersion).
    pub fn plant_configmap(&self, namespace: &str, name: &str, mut obj: Value) {
        let mut g = self.lock();
        g.resource_version += 1;
        obj["metadata"]["resourceVersion"] = json!(g.resource_version.to_string());
        obj["metadata"]["name"] = json!(name);
        obj["metadata"]["namespace"] = json!(namespace);
        g.objects
            .insert(Self::key("configmaps", namespace, name), obj);
    }

    /// Delete the Lease.
    pub fn delete(&self, namespace: &str, name: &str) {
        self.lock()
            .objects
            .remove(&Self::key(LEASES, namespace, name));
    }

    /// Create or replace a FloatGroup as `kubectl apply` would: the spec is `spec` (JSON),
    /// the status is kept, `generation` moves when the spec changed.
    pub fn apply_floatgroup(&self, namespace: &str, name: &str, spec: Value) {
        let mut g = self.lock();
        g.resource_version += 1;
        let rv = g.resource_version;
        let key = Self::key(FLOATGROUPS, namespace, name);
        let obj = match g.objects.get(&key) {
            Some(cur) => {
                let mut o = cur.clone();
                if o["spec"] != spec {
                    let gen_ = o["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
                    o["metadata"]["generation"] = json!(gen_);
                    o["spec"] = spec;
                }
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                o
            }
            None => json!({
                "apiVersion": "floatover.io/v1alpha1", "kind": "FloatGroup",
                "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{rv}"),
                             "generation": 1, "resourceVersion": rv.to_string()},
                "spec": spec,
            }),
        };
        g.log.push((Instant::now(), obj.clone()));
        g.objects.insert(key, obj);
    }

    /// Delete a FloatGroup.
    pub fn delete_floatgroup(&self, namespace: &str, name: &str) {
        self.lock()
            .objects
            .remove(&Self::key(FLOATGROUPS, namespace, name));
    }

    /// A FloatGroup as stored (status included).
    pub fn floatgroup(&self, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&Self::key(FLOATGROUPS, namespace, name))
            .cloned()
    }

    /// Every Event created in `namespace`, oldest first.
    pub fn events(&self, namespace: &str) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .lock()
            .objects
            .iter()
            .filter(|((p, ns, _), _)| p == EVENTS && ns == namespace)
            .map(|(_, o)| o.clone())
            .collect();
        v.sort_by_key(|o| {
            o["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0)
        });
        v
    }

    /// Every successful write so far, with its time.
    pub fn writes(&self) -> Vec<(Instant, Value)> {
        self.lock().log.clone()
    }

    /// How many requests were answered (any outcome).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Answer one request with the API server's semantics.
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let mut g = self.lock();
        g.requests += 1;
        if g.cut_off.contains(&self.who) {
            return status(503, "ServiceUnavailable", "cut off by the test".into());
        }
        let path = path.split('?').next().unwrap_or("");
        let Some((rest, plural, list_kind, label)) =
            KINDS.iter().find_map(|(pre, plural, kind, label)| {
                // Core kinds share a prefix: the plural after the namespace decides.
                path.strip_prefix(pre)
                    .filter(|r| r.split('/').nth(1) == Some(*plural))
                    .map(|r| (r, *plural, *kind, *label))
            })
        else {
            return status(404, "NotFound", format!("the server could not find {path}"));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (ns, name, sub) = match parts[..] {
            [ns, p] if p == plural => (ns.to_string(), None, None),
            [ns, p, name] if p == plural => (ns.to_string(), Some(name.to_string()), None),
            [ns, p, name, "status"] if p == plural && plural == FLOATGROUPS => {
                (ns.to_string(), Some(name.to_string()), Some("status"))
            }
            _ => return status(404, "NotFound", format!("the server could not find {path}")),
        };
        let parsed = || serde_json::from_slice::<Value>(body);
        match (method, name, sub) {
            ("GET", None, None) => {
                let items: Vec<Value> = g
                    .objects
                    .iter()
                    .filter(|((p, n, _), _)| p == plural && *n == ns)
                    .map(|(_, o)| o.clone())
                    .collect();
                (
                    200,
                    json!({"kind": list_kind, "apiVersion": "v1",
                           "metadata": {"resourceVersion": g.resource_version.to_string()},
                           "items": items}),
                )
            }
            ("GET", Some(name), _) => match g.objects.get(&Self::key(plural, &ns, &name)) {
                Some(o) => (200, o.clone()),
                None => not_found(label, &name),
            },
            ("POST", None, None) => {
                let Ok(mut obj) = parsed() else {
                    return status(400, "BadRequest", "body is not JSON".into());
                };
                let name = match (
                    obj["metadata"]["name"].as_str(),
                    obj["metadata"]["generateName"].as_str(),
                ) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(prefix)) => format!("{prefix}{:05}", g.resource_version + 1),
                    (None, None) => {
                        return status(422, "Invalid", "metadata.name: Required value".into());
                    }
                };
                if !obj["metadata"]["resourceVersion"].is_null() {
                    return status(
                        422,
                        "Invalid",
                        "metadata.resourceVersion: may not be set on create".into(),
                    );
                }
                let key = Self::key(plural, &ns, &name);
                if g.objects.contains_key(&key) {
                    return status(
                        409,
                        "AlreadyExists",
                        format!("{label} \"{name}\" already exists"),
                    );
                }
                g.resource_version += 1;
                obj["metadata"]["name"] = json!(name);
                obj["metadata"]["namespace"] = json!(ns);
                obj["metadata"]["resourceVersion"] = json!(g.resource_version.to_string());
                obj["metadata"]["uid"] = json!(format!("uid-{}", g.resource_version));
                g.objects.insert(key, obj.clone());
                g.log.push((Instant::now(), obj.clone()));
                (201, obj)
            }
            ("PUT", Some(name), None) => {
                let Ok(mut obj) = parsed() else {
                    return status(400, "BadRequest", "body is not JSON".into());
                };
                let key = Self::key(plural, &ns, &name);
                let Some(cur) = g.objects.get(&key) else {
                    return not_found(label, &name);
                };
                let want = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
                if !want.is_empty() && cur["metadata"]["resourceVersion"].as_str() != Some(want) {
                    return status(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {label} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
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
            ("PATCH", Some(name), Some("status")) => {
                let Ok(patch) = parsed() else {
                    return status(400, "BadRequest", "body is not JSON".into());
                };
                g.resource_version += 1;
                let rv = g.resource_version;
                let key = Self::key(plural, &ns, &name);
                let Some(cur) = g.objects.get_mut(&key) else {
                    return not_found(label, &name);
                };
                // The status subresource ignores everything but the status.
                merge(&mut cur["status"], &patch["status"]);
                cur["metadata"]["resourceVersion"] = json!(rv.to_string());
                let obj = cur.clone();
                g.log.push((Instant::now(), obj.clone()));
                (200, obj)
            }
            ("DELETE", Some(name), None) => {
                match g.objects.remove(&Self::key(plural, &ns, &name)) {
                    Some(_) => (200, json!({"kind": "Status", "status": "Success"})),
                    None => not_found(label, &name),
                }
            }
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
