//! HTTP API: `/healthz`, `/readyz`, `/metrics`, `GET /api/v1/status`,
//! `POST /api/v1/groups/{group}/switchover`. Every replica serves it; a switchover sent to
//! a standby is answered 503 with the leader's identity and API address.
//!
//! Hardened for a hostile network: a client that does not finish its request headers
//! within 5 s is dropped, bodies over 8 KiB get 413, a body that is not JSON gets 415, and
//! no answer echoes more than a short prefix of what the client sent.

use crate::config::Spec;
use crate::engine::{Command, SwitchoverError};
use crate::leader::{LeaderState, Leadership};
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::model::{GroupName, Health, TargetId};
use crate::probe::{HealthBoard, TargetKey};
use crate::status::{AuditEvent, GroupStatus, StatusStore};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod sites;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    pub spec: Arc<Spec>,
    pub status: Arc<StatusStore>,
    pub metrics: Arc<Metrics>,
    pub leadership: Leadership,
    pub board: Arc<HealthBoard>,
    pub commands: mpsc::Sender<Command>,
    /// `/healthz` and `/readyz` answer 503 while any loop is stalled.
    pub liveness: Arc<Liveness>,
    /// The site loop (None: no sites configured).
    pub sites: Option<SiteHandle>,
}

/// How the API reaches the site loop (requests and approvals).
pub use crate::site::supervisor::SiteHandle;

/// Largest request body accepted.
pub const MAX_BODY: usize = 8 * 1024;
/// A client must send its request headers within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// At most `n` characters of client input in an answer.
pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// `GET /api/v1/status` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusBody {
    pub ready: bool,
    pub leader: LeaderView,
    pub lease: LeaseView,
    /// Process-wide problems (overload, a stalled loop).
    pub warnings: Vec<String>,
    pub observe_error: Option<String>,
    pub groups: Vec<GroupStatus>,
    pub audit: Vec<AuditEvent>,
    /// The provider's client-side queues: calls waiting for a token, by API, and the
    /// expected time to drain them (a mass failover at the provider's pace).
    #[serde(default)]
    pub queues: Vec<crate::pace::QueueStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LeaderView {
    pub identity: String,
    pub is_leader: bool,
    pub epoch: u64,
    pub holder: Option<String>,
}

/// This replica's own view of every target, before any vote: what its peers count
/// (health votes).
async fn health_view(State(s): State<ApiState>) -> Json<crate::probe::peers::HealthView> {
    let identity = s.leadership.state().identity;
    Json(crate::probe::peers::HealthView::of(&identity, &s.board))
}

/// How the lease store answers, as seen by this replica.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseView {
    /// API address of the current holder (from the lease record).
    pub holder_api: Option<String>,
    /// Milliseconds since the lease store last answered successfully.
    pub last_ok_ms_ago: Option<u64>,
    pub last_error: Option<String>,
    /// Quorum lease: each member as this replica last saw it (absent for one store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<crate::leader::MemberView>,
}

impl From<&LeaderState> for LeaseView {
    fn from(s: &LeaderState) -> Self {
        LeaseView {
            holder_api: s.holder_api.clone(),
            last_ok_ms_ago: s.store.last_ok.map(|t| {
                u64::try_from(
                    tokio::time::Instant::now()
                        .saturating_duration_since(t)
                        .as_millis(),
                )
                .unwrap_or(u64::MAX)
            }),
            last_error: s.store.last_error.clone(),
            members: s.members.clone(),
        }
    }
}

impl From<LeaderState> for LeaderView {
    fn from(s: LeaderState) -> Self {
        LeaderView {
            identity: s.identity,
            is_leader: s.is_leader,
            epoch: s.epoch.0,
            holder: s.holder,
        }
    }
}

/// `POST .../switchover` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchoverBody {
    pub to: String,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

pub(crate) fn err(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(ErrorBody { error: msg.into() })).into_response()
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/health/view", get(health_view))
        .route("/api/v1/groups/{group}/switchover", post(switchover))
        .route("/api/v1/sites", get(sites::sites))
        .route("/api/v1/sites/{site}/promote", post(sites::promote))
        .route("/api/v1/sites/{site}/approve", post(sites::approve))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn healthz(State(s): State<ApiState>) -> Response {
    match s.liveness.check() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("stalled: {e}\n")).into_response(),
    }
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if let Err(e) = s.liveness.check() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: stalled: {e}\n"),
        )
            .into_response();
    }
    if s.status.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no full observation of the provider yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn status(State(s): State<ApiState>) -> Json<StatusBody> {
    let groups: Vec<GroupStatus> = s.status.groups();
    let audit: Vec<AuditEvent> = s.status.audit();
    let skip = audit.len().saturating_sub(100);
    let leader = s.leadership.state();
    Json(StatusBody {
        ready: s.status.ready() && s.liveness.check().is_ok(),
        lease: (&leader).into(),
        warnings: s.status.warnings(),
        leader: leader.into(),
        observe_error: s.status.observe_error(),
        groups,
        queues: s.status.queues(),
        audit: audit.into_iter().skip(skip).collect(),
    })
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
pub(crate) fn token_ok(expected: &str, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), given.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn switchover(
    State(s): State<ApiState>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Result<Json<SwitchoverBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(expected) = s.spec.api.token.as_deref() else {
        return err(
            StatusCode::FORBIDDEN,
            "switchover is disabled: no api.token or api.token_env configured",
        );
    };
    if !token_ok(expected, &headers) {
        return err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_switchover_body(&e),
    };
    let Some(g) = s.spec.groups.iter().find(|g| g.name.0 == group) else {
        return err(
            StatusCode::NOT_FOUND,
            SwitchoverError::UnknownGroup(clip(&group, 64)).to_string(),
        );
    };
    let to = TargetId(body.to.clone());
    if g.target(&to).is_none() {
        return err(
            StatusCode::NOT_FOUND,
            SwitchoverError::UnknownTarget {
                group,
                target: clip(&body.to, 64),
            }
            .to_string(),
        );
    }
    let leader = s.leadership.state();
    if !leader.is_leader {
        return ask_the_leader(&leader);
    }
    let health = s.board.get(&TargetKey {
        group: g.name.clone(),
        target: to.clone(),
    });
    if health != Health::Up {
        return err(
            StatusCode::CONFLICT,
            SwitchoverError::Unhealthy(body.to, health.as_str()).to_string(),
        );
    }
    let (tx, rx) = oneshot::channel();
    let cmd = Command::Switchover {
        group: GroupName(group),
        to,
        reply: tx,
    };
    if s.commands.send(cmd).await.is_err() {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "controller is shutting down",
        );
    }
    let wait = s
        .spec
        .switchover_timeout
        .saturating_add(Duration::from_secs(5));
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(r)) => switchover_answer(r),
        _ => err(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "no answer from the controller within {}",
                floatover_core::human::duration(wait)
            ),
        ),
    }
}

/// A switchover body that is not `{"to": "<target>"}`: the reason in words.
fn bad_switchover_body(e: &axum::extract::rejection::JsonRejection) -> Response {
    // Malformed and ill-shaped JSON are both a bad request here (axum says 422 for
    // the latter); size and content type keep their own codes.
    let code = match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        c => c,
    };
    let why = match code {
        StatusCode::PAYLOAD_TOO_LARGE => format!("body larger than {MAX_BODY} bytes"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send the body as JSON (Content-Type: application/json)".to_string()
        }
        _ => clip(&e.body_text(), 160),
    };
    err(
        code,
        format!("body must be {{\"to\": \"<target>\"}}: {why}"),
    )
}

/// A standby answers 503 and names the leader and its API.
fn ask_the_leader(leader: &crate::leader::LeaderState) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "error": format!(
                "this replica is not the leader; send the switchover to the leader {} at {}",
                leader.holder.as_deref().unwrap_or("(unknown)"),
                leader.holder_api.as_deref().unwrap_or("(unknown address)")
            ),
            "leader": leader.holder,
            "leader_api": leader.holder_api,
        })),
    )
        .into_response()
}

fn switchover_answer(r: Result<Vec<crate::status::AuditEvent>, SwitchoverError>) -> Response {
    match r {
        Ok(events) => {
            (StatusCode::OK, Json(serde_json::json!({ "moved": events }))).into_response()
        }
        Err(e) => {
            let code = match e {
                SwitchoverError::NotLeader(_) => StatusCode::SERVICE_UNAVAILABLE,
                SwitchoverError::Unhealthy(..) => StatusCode::CONFLICT,
                SwitchoverError::UnknownGroup(_) | SwitchoverError::UnknownTarget { .. } => {
                    StatusCode::NOT_FOUND
                }
                SwitchoverError::Failed(_) => StatusCode::BAD_GATEWAY,
            };
            err(code, e.to_string())
        }
    }
}

/// Serve until `stop` is cancelled. Each connection must send its request headers within
/// [`HEADER_TIMEOUT`] (slow-header clients are dropped); on stop, open connections finish
/// their current request (at most 2 s).
pub async fn serve(
    state: ApiState,
    listener: tokio::net::TcpListener,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let app = router(state);
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let svc = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}
