//! `GET /api/v1/sites`, `POST /api/v1/sites/{site}/promote` and
//! `POST /api/v1/sites/{site}/approve` (both with the bearer token).

use super::{ApiState, clip, err, token_ok};
use crate::site::decide::Request;
use crate::site::record::RunKind;
use crate::site::supervisor::SiteRequest;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::oneshot;

/// `POST .../promote` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// Show the plan, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// A drill: promote, verify, fail back (the report comes from `floatover drill`).
    #[serde(default)]
    pub drill: bool,
}

pub async fn sites(State(s): State<ApiState>) -> Response {
    let plans: Vec<_> = s
        .spec
        .sites
        .iter()
        .map(crate::site::outline::site_plan)
        .collect();
    let status = match s.status.sites() {
        serde_json::Value::Null => serde_json::json!([]),
        v => v,
    };
    Json(serde_json::json!({ "sites": status, "plans": plans })).into_response()
}

/// Auth, the site, leadership: the checks both mutating calls share.
fn gate(s: &ApiState, site: &str, headers: &HeaderMap, what: &str) -> Option<Response> {
    let Some(expected) = s.spec.api.token.as_deref() else {
        return Some(err(
            StatusCode::FORBIDDEN,
            format!("{what} is disabled: no api.token or api.token_env configured"),
        ));
    };
    if !token_ok(expected, headers) {
        return Some(err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ));
    }
    if !s.spec.sites.iter().any(|x| x.name == site) {
        return Some(err(
            StatusCode::NOT_FOUND,
            format!("no site named {:?}", clip(site, 64)),
        ));
    }
    None
}

fn not_leader(s: &ApiState, what: &str) -> Option<Response> {
    let leader = s.leadership.state();
    if leader.is_leader {
        return None;
    }
    Some(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "error": format!(
                    "this replica is not the leader; send the {what} to the leader {} at {}",
                    leader.holder.as_deref().unwrap_or("(unknown)"),
                    leader.holder_api.as_deref().unwrap_or("(unknown address)")
                ),
                "leader": leader.holder,
                "leader_api": leader.holder_api,
            })),
        )
            .into_response(),
    )
}

pub async fn promote(
    State(s): State<ApiState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = gate(&s, &site, &headers, "promotion") {
        return r;
    }
    let body: PromoteBody = if body.iter().all(u8::is_ascii_whitespace) {
        PromoteBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return err(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "body must be empty or {{\"dry_run\": true|false, \"drill\": true|false}}: {}",
                        clip(&e.to_string(), 160)
                    ),
                );
            }
        }
    };
    let warnings = rpo_warnings(&s, &site);
    if body.dry_run {
        let plan = s
            .spec
            .sites
            .iter()
            .find(|x| x.name == site)
            .map(crate::site::outline::site_plan);
        return Json(serde_json::json!({ "dry_run": true, "plan": plan, "warnings": warnings }))
            .into_response();
    }
    if let Some(r) = not_leader(&s, "promotion") {
        return r;
    }
    let Some(h) = &s.sites else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the site loop is not running",
        );
    };
    let (reply, rx) = oneshot::channel();
    let (kind, trigger) = if body.drill {
        (RunKind::Drill, "drill requested through the API")
    } else {
        (RunKind::Promotion, "requested through the API")
    };
    let req = SiteRequest {
        request: Request {
            site: site.clone(),
            kind,
            trigger: trigger.into(),
        },
        reply,
    };
    if h.requests.send(req).await.is_err() {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "controller is shutting down",
        );
    }
    match tokio::time::timeout(Duration::from_secs(15), rx).await {
        Ok(Ok(Ok(id))) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "run": id, "site": site, "warnings": warnings })),
        )
            .into_response(),
        Ok(Ok(Err(e))) => err(StatusCode::CONFLICT, e.to_string()),
        _ => err(
            StatusCode::GATEWAY_TIMEOUT,
            "no answer from the site loop within 15s",
        ),
    }
}

/// What a person should know before promoting `site`: its replication lag at the last
/// pre-flight is over its RPO, or could not be read.
fn rpo_warnings(s: &ApiState, site: &str) -> Vec<String> {
    let sites = s.status.sites();
    let Some(st) = sites
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == site)
    else {
        return vec![];
    };
    let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    match (
        st["lag_ms"].as_u64(),
        st["rpo_ms"].as_u64(),
        st["lag_error"].as_str(),
    ) {
        (Some(lag), Some(rpo), _) if lag > rpo => vec![format!(
            "replication lag {} (at the last pre-flight) is over the RPO of {}: writes not yet replicated may be lost",
            secs(lag),
            secs(rpo)
        )],
        (None, Some(rpo), Some(e)) => vec![format!(
            "replication lag unknown ({e}); the RPO is {}",
            secs(rpo)
        )],
        _ => vec![],
    }
}

pub async fn approve(
    State(s): State<ApiState>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &site, &headers, "approval") {
        return r;
    }
    if let Some(r) = not_leader(&s, "approval") {
        return r;
    }
    let Some(h) = &s.sites else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the site loop is not running",
        );
    };
    // Only an approval step that is waiting takes it.
    let waiting = s
        .status
        .sites()
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == site.as_str())
        .filter_map(|x| x["run"]["steps"].as_array())
        .flatten()
        .any(|st| {
            matches!(
                st["kind"].as_str(),
                Some("approval" | "rpo_gate" | "promote_cluster")
            ) && st["state"] == "running"
        });
    if !waiting {
        return err(
            StatusCode::CONFLICT,
            format!("no approval is waiting for site {site}"),
        );
    }
    h.approvals.approve(&site);
    Json(serde_json::json!({ "approved": site })).into_response()
}
