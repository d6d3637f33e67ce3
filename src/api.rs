//! HTTP API: `/healthz`, `/readyz`, `/metrics`, `GET /api/v1/status`,
//! `POST /api/v1/groups/{group}/switchover`. Every replica serves it; a switchover sent to
//! a standby is answered 503 with the leader's identity.

use crate::config::Spec;
use crate::engine::{Command, SwitchoverError};
use crate::leader::{LeaderState, Leadership};
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

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    pub spec: Arc<Spec>,
    pub status: Arc<StatusStore>,
    pub metrics: Arc<Metrics>,
    pub leadership: Leadership,
    pub board: Arc<HealthBoard>,
    pub commands: mpsc::Sender<Command>,
}

/// `GET /api/v1/status` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusBody {
    pub ready: bool,
    pub leader: LeaderView,
    pub observe_error: Option<String>,
    pub groups: Vec<serde_json::Value>,
    pub audit: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LeaderView {
    pub identity: String,
    pub is_leader: bool,
    pub epoch: u64,
    pub holder: Option<String>,
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

fn err(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(ErrorBody { error: msg.into() })).into_response()
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/groups/{group}/switchover", post(switchover))
        .with_state(state)
}

async fn readyz(State(s): State<ApiState>) -> Response {
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

fn to_values<T: Serialize>(v: Vec<T>) -> Vec<serde_json::Value> {
    v.into_iter()
        .filter_map(|x| serde_json::to_value(x).ok())
        .collect()
}

async fn status(State(s): State<ApiState>) -> Json<StatusBody> {
    let groups: Vec<GroupStatus> = s.status.groups();
    let audit: Vec<AuditEvent> = s.status.audit();
    let skip = audit.len().saturating_sub(100);
    Json(StatusBody {
        ready: s.status.ready(),
        leader: s.leadership.state().into(),
        observe_error: s.status.observe_error(),
        groups: to_values(groups),
        audit: to_values(audit.into_iter().skip(skip).collect()),
    })
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn token_ok(expected: &str, headers: &HeaderMap) -> bool {
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
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("body must be {{\"to\": \"<target>\"}}: {e}"),
            );
        }
    };
    let Some(g) = s.spec.groups.iter().find(|g| g.name.0 == group) else {
        return err(
            StatusCode::NOT_FOUND,
            SwitchoverError::UnknownGroup(group).to_string(),
        );
    };
    let to = TargetId(body.to.clone());
    if g.target(&to).is_none() {
        return err(
            StatusCode::NOT_FOUND,
            SwitchoverError::UnknownTarget {
                group,
                target: body.to,
            }
            .to_string(),
        );
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
    match tokio::time::timeout(Duration::from_secs(35), rx).await {
        Ok(Ok(Ok(events))) => {
            (StatusCode::OK, Json(serde_json::json!({ "moved": events }))).into_response()
        }
        Ok(Ok(Err(e))) => {
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
        _ => err(
            StatusCode::GATEWAY_TIMEOUT,
            "no answer from the controller within 35s",
        ),
    }
}

/// Bind and serve until `stop` is cancelled.
pub async fn serve(
    state: ApiState,
    listener: tokio::net::TcpListener,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}
