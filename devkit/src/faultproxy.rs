//! A fault-injecting HTTP proxy between a floatover replica and LocalStack, one per replica
//! and service, so a test can throttle, fail, slow down, black-hole or hold exactly the
//! calls it wants, and read back every request it saw.
//!
//! Rules are matched in order on the operation (EC2 `Action=` parameter, or `GetObject` /
//! `PutObject` for S3) and on the region in the SigV4 credential scope. Faults answer the
//! way AWS does (EC2 `RequestLimitExceeded` with HTTP 503, S3 `SlowDown`, `InternalError`
//! with 500), so the SDK's retry and throttling logic sees the real thing. Route 53 requests
//! (signed for `route53`) are named by their REST path (`ChangeResourceRecordSets`, ...) and
//! throttled with `Throttling` and `PriorRequestNotComplete` (HTTP 400), as Route 53 does.

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What a matching rule does to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Forward unchanged.
    Pass,
    /// Answer this fraction of requests with the service's throttling error.
    Throttle(f64),
    /// Answer this fraction of requests with HTTP 500 InternalError.
    ServerError(f64),
    /// Wait, then forward.
    Latency(Duration),
    /// Never answer (the client times out).
    Blackhole,
    /// Keep the request until [`FaultProxy::release`], then forward it (a write that
    /// lands late, as from a paused process).
    Hold,
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Ops {
    All,
    /// EC2 calls that change state, and S3 PutObject.
    Mutating,
    Named(Vec<String>),
    /// Every request except those signed for this service (`route53`): a region lost
    /// while a global control plane signed for it stays up.
    AllBut(String),
}

/// One rule: requests matching `ops` (and `region`, if set) get `mode`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub ops: Ops,
    pub region: Option<String>,
    pub mode: Mode,
}

/// One request as the proxy saw it. Times are wall-clock milliseconds so that they
/// compare with the replicas' audit events.
#[derive(Debug, Clone)]
pub struct Seen {
    pub op: String,
    pub region: String,
    /// `Name=value` parameters of a form-encoded body (EC2).
    pub params: Vec<(String, String)>,
    /// SDK attempt number (`amz-sdk-request: attempt=N`), 1 for the first.
    pub attempt: u32,
    pub received_ms: u64,
    /// When it was sent upstream (None: never).
    pub forwarded_ms: Option<u64>,
    /// When the answer was sent back (None: never).
    pub answered_ms: Option<u64>,
    pub status: Option<u16>,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn is_mutating(&self) -> bool {
        is_mutating(&self.op)
    }
}

/// Operations that change state.
pub fn is_mutating(op: &str) -> bool {
    !(op.starts_with("Describe")
        || op.starts_with("Get")
        || op.starts_with("List")
        || op == "HeadObject")
}

struct Inner {
    rules: Vec<Rule>,
    log: Vec<Seen>,
    /// Held requests still waiting; a release bumps the generation.
    generation: u64,
    drop_held: bool,
}

/// A running proxy.
pub struct FaultProxy {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    released: Arc<Notify>,
    task: JoinHandle<()>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn region_of(h: &HeaderMap) -> String {
    // Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, ...
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("")
        .to_string()
}

/// The signing service (`ec2`, `s3`, `route53`) from the credential scope.
fn service_of(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("")
        .to_string()
}

/// Route 53's REST operations, by method and path.
fn route53_op(method: &Method, path: &str) -> String {
    let p = path.trim_end_matches('/');
    match (method.as_str(), p) {
        ("POST", p) if p.ends_with("/rrset") => "ChangeResourceRecordSets",
        ("GET", p) if p.ends_with("/rrset") => "ListResourceRecordSets",
        ("GET", p) if p.contains("/change/") => "GetChange",
        ("POST", p) if p.ends_with("/hostedzone") => "CreateHostedZone",
        _ => "Route53Other",
    }
    .to_string()
}

/// Route 53's throttling answers, alternating: `Throttling` and `PriorRequestNotComplete`
/// (HTTP 400, Route 53's `<ErrorResponse>` document).
fn route53_throttle(n: u64) -> Response {
    let (code, message) = if n.is_multiple_of(2) {
        ("Throttling", "Rate exceeded")
    } else {
        (
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        )
    };
    let body = format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    );
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "text/xml")],
        body,
    )
        .into_response()
}

fn attempt_of(h: &HeaderMap) -> u32 {
    h.get("amz-sdk-request")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body)))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn op_of(method: &Method, params: &[(String, String)], path: &str) -> String {
    if let Some((_, a)) = params.iter().find(|(k, _)| k == "Action") {
        return a.clone();
    }
    let object = path.trim_start_matches('/').contains('/');
    match (method.as_str(), object) {
        ("GET", true) => "GetObject",
        ("PUT", true) => "PutObject",
        ("HEAD", true) => "HeadObject",
        ("DELETE", true) => "DeleteObject",
        ("PUT", false) => "CreateBucket",
        ("GET", false) => "ListObjects",
        _ => "Unknown",
    }
    .to_string()
}

/// An error answer in the service's own format: S3's `<Error>` document or EC2's
/// `<Response><Errors>` document, with the HTTP status the service uses for that code.
fn error_answer(s3: bool, status: StatusCode, code: &str, message: &str) -> Response {
    let body = if s3 {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        )
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
        )
    };
    (status, [("content-type", "text/xml")], body).into_response()
}

/// The service's own throttling answer (`SlowDown` for S3, `RequestLimitExceeded` for EC2).
fn throttle_answer(s3: bool) -> Response {
    let code = if s3 {
        "SlowDown"
    } else {
        "RequestLimitExceeded"
    };
    error_answer(
        s3,
        StatusCode::SERVICE_UNAVAILABLE,
        code,
        "Please reduce your request rate.",
    )
}

fn server_error(s3: bool) -> Response {
    error_answer(
        s3,
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "We encountered an internal error. Please try again.",
    )
}

impl FaultProxy {
    /// Start on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner {
            rules: Vec::new(),
            log: Vec::new(),
            generation: 0,
            drop_held: false,
        }));
        let released = Arc::new(Notify::new());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?;
        let upstream = upstream.trim_end_matches('/').to_string();
        let (i2, r2) = (inner.clone(), released.clone());
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let (inner, released, client, upstream) =
                (i2.clone(), r2.clone(), client.clone(), upstream.clone());
            async move {
                // Detached: a held write still lands after its client gave up, as a
                // paused process's write would.
                tokio::spawn(handle(req, inner, released, client, upstream))
                    .await
                    .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FaultProxy {
            url: format!("http://{addr}"),
            inner,
            released,
            task,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace the rules (first match wins; no match: pass).
    pub fn set(&self, rules: Vec<Rule>) {
        self.lock().rules = rules;
    }

    /// One rule for every request.
    pub fn set_all(&self, mode: Mode) {
        self.set(vec![Rule {
            ops: Ops::All,
            region: None,
            mode,
        }]);
    }

    pub fn pass(&self) {
        self.set(Vec::new());
    }

    /// Forward every held request now.
    pub fn release(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.drop_held = false;
        drop(g);
        self.released.notify_waiters();
    }

    /// Answer every held request with a 500 without forwarding it (its client is gone).
    pub fn drop_held(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.drop_held = true;
        drop(g);
        self.released.notify_waiters();
    }

    /// Everything seen so far.
    pub fn log(&self) -> Vec<Seen> {
        self.lock().log.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    req: Request<Body>,
    inner: Arc<Mutex<Inner>>,
    released: Arc<Notify>,
    client: reqwest::Client,
    upstream: String,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, 16 * 1024 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let is_form = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("x-www-form-urlencoded"));
    let params = if is_form { form(&bytes) } else { Vec::new() };
    let path = parts.uri.path().to_string();
    let service = service_of(&parts.headers);
    let route53 = service == "route53";
    let op = if route53 {
        route53_op(&parts.method, &path)
    } else {
        op_of(&parts.method, &params, &path)
    };
    let region = region_of(&parts.headers);
    let s3 = !is_form;
    let (mode, idx, generation) = {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        let mode = g
            .rules
            .iter()
            .find(|r| {
                let op_ok = match &r.ops {
                    Ops::All => true,
                    Ops::Mutating => is_mutating(&op),
                    Ops::Named(v) => v.iter().any(|o| o == &op),
                    Ops::AllBut(svc) => *svc != service,
                };
                op_ok && r.region.as_ref().is_none_or(|x| x == &region)
            })
            .map(|r| r.mode.clone())
            .unwrap_or(Mode::Pass);
        g.log.push(Seen {
            op: op.clone(),
            region: region.clone(),
            params: params.clone(),
            attempt: attempt_of(&parts.headers),
            received_ms: now_ms(),
            forwarded_ms: None,
            answered_ms: None,
            status: None,
        });
        (mode, g.log.len() - 1, g.generation)
    };
    let finish = |status: u16, forwarded: bool| {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.log.get_mut(idx) {
            s.answered_ms = Some(now_ms());
            s.status = Some(status);
            if forwarded && s.forwarded_ms.is_none() {
                s.forwarded_ms = s.answered_ms;
            }
        }
    };
    let roll = |f: f64| rand::random::<f64>() < f;
    match mode {
        Mode::Throttle(f) if roll(f) && route53 => {
            finish(400, false);
            return route53_throttle(idx as u64);
        }
        Mode::Throttle(f) if roll(f) => {
            finish(503, false);
            return throttle_answer(s3);
        }
        Mode::ServerError(f) if roll(f) => {
            finish(500, false);
            return server_error(s3);
        }
        Mode::Latency(d) => tokio::time::sleep(d).await,
        Mode::Blackhole => std::future::pending::<()>().await,
        Mode::Hold => loop {
            let notified = released.notified();
            {
                let g = inner.lock().unwrap_or_else(|e| e.into_inner());
                if g.generation != generation {
                    if g.drop_held {
                        drop(g);
                        finish(500, false);
                        return server_error(s3);
                    }
                    break;
                }
            }
            notified.await;
        },
        _ => {}
    }
    {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.log.get_mut(idx) {
            s.forwarded_ms = Some(now_ms());
        }
    }
    let url = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut rb = client.request(method, &url).body(bytes.to_vec());
    for (k, v) in parts.headers.iter() {
        if k != "host" && k != "content-length" {
            rb = rb.header(k.as_str(), v.as_bytes());
        }
    }
    match rb.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let mut headers = Vec::new();
            for (k, v) in r.headers().iter() {
                if k != "transfer-encoding" && k != "content-length" && k != "connection" {
                    headers.push((k.as_str().to_string(), v.as_bytes().to_vec()));
                }
            }
            let body = r.bytes().await.unwrap_or_default();
            finish(status, true);
            let mut resp = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
            for (k, v) in headers {
                resp = resp.header(k, v);
            }
            resp.body(Body::from(body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            finish(502, false);
            (
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: upstream: {e}"),
            )
                .into_response()
        }
    }
}
