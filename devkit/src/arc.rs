//! A test double of a Route 53 ARC cluster's data plane: no emulator serves ARC, so tests
//! run the real SDK against this. It speaks ARC's JSON protocol for the three calls
//! floatover makes (`ListRoutingControls`, `GetRoutingControlState`,
//! `UpdateRoutingControlStates`), keeps the controls' states shared by every endpoint of
//! the cluster (as ARC does), applies an update as a whole, and enforces one safety rule
//! when asked (at least one control on, ARC's most common assertion rule). Each endpoint
//! can be told to answer as an unavailable one would; [`black_hole`] is one that never
//! answers. Every request is logged with the endpoint that got it.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How one endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// As ARC does: reads and updates on the shared state.
    Serve,
    /// `EndpointTemporarilyUnavailableException` (503) to everything.
    Unavailable,
    /// Every update refused by the named safety rule (409 `ConflictException`).
    Refuse(String),
}

/// One request as an endpoint saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub endpoint: usize,
    /// `ToggleCustomerAPI.<Operation>`.
    pub target: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    /// Routing control ARN -> on.
    controls: BTreeMap<String, bool>,
    panel: String,
    at_least_one_on: bool,
    answers: Vec<Answer>,
    log: Vec<Call>,
}

/// A cluster: shared routing-control states behind several endpoints.
#[derive(Clone)]
pub struct FakeArc {
    state: Arc<Mutex<State>>,
    /// The endpoints' URLs, in the order they were started.
    pub urls: Vec<String>,
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

fn refuse(rule: &str) -> Response {
    json_answer(
        StatusCode::CONFLICT,
        json!({"__type": "ConflictException",
               "message": format!("The update would violate safety rule {rule}"),
               "resourceId": rule, "resourceType": "SafetyRule"}),
    )
}

impl FakeArc {
    /// A cluster of `control_panel` with these controls (ARN, on), and no endpoint yet.
    pub fn new(control_panel: &str, controls: &[(&str, bool)]) -> Self {
        let state = State {
            controls: controls
                .iter()
                .map(|(a, on)| ((*a).to_string(), *on))
                .collect(),
            panel: control_panel.to_string(),
            ..State::default()
        };
        FakeArc {
            state: Arc::new(Mutex::new(state)),
            urls: Vec::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuse any update that would leave every control off.
    pub fn at_least_one_on(self) -> Self {
        self.lock().at_least_one_on = true;
        self
    }

    /// Start one more endpoint answering `answer`; returns its URL.
    pub async fn endpoint(&mut self, answer: Answer) -> std::io::Result<String> {
        let index = {
            let mut s = self.lock();
            s.answers.push(answer);
            s.answers.len() - 1
        };
        let state = self.state.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(&state, index, &headers, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        self.urls.push(url.clone());
        Ok(url)
    }

    /// Change how endpoint `index` answers from now on.
    pub fn answer(&self, index: usize, answer: Answer) {
        if let Some(a) = self.lock().answers.get_mut(index) {
            *a = answer;
        }
    }

    /// Whether `arn` is on (false for an unknown control).
    pub fn is_on(&self, arn: &str) -> bool {
        self.lock().controls.get(arn).copied().unwrap_or(false)
    }

    /// Set a control's state behind floatover's back (a person in the console).
    pub fn set(&self, arn: &str, on: bool) {
        self.lock().controls.insert(arn.to_string(), on);
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Call> {
        self.lock().log.clone()
    }

    /// Updates that were applied (answered 200), in order.
    pub fn updates(&self) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|c| {
                c.target.ends_with("UpdateRoutingControlStates") && c.body["applied"] == true
            })
            .count()
    }
}

fn handle(state: &Mutex<State>, index: usize, headers: &HeaderMap, body: &[u8]) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let answer = s.answers.get(index).cloned().unwrap_or(Answer::Serve);
    let out = match (&answer, target.rsplit('.').next().unwrap_or("")) {
        (Answer::Unavailable, _) => json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"__type": "EndpointTemporarilyUnavailableException",
                   "message": "try another endpoint"}),
        ),
        (_, "ListRoutingControls") => {
            let panel = body["ControlPanelArn"].as_str().unwrap_or("");
            let controls: Vec<Value> = s
                .controls
                .iter()
                .filter(|(arn, _)| arn.starts_with(panel) && panel == s.panel)
                .map(|(arn, on)| {
                    json!({"ControlPanelArn": s.panel, "RoutingControlArn": arn,
                           "RoutingControlName": arn.rsplit('/').next().unwrap_or(""),
                           "RoutingControlState": if *on { "On" } else { "Off" }})
                })
                .collect();
            json_answer(StatusCode::OK, json!({ "RoutingControls": controls }))
        }
        (_, "GetRoutingControlState") => {
            let arn = body["RoutingControlArn"].as_str().unwrap_or("");
            match s.controls.get(arn) {
                Some(on) => json_answer(
                    StatusCode::OK,
                    json!({"RoutingControlArn": arn,
                           "RoutingControlState": if *on { "On" } else { "Off" }}),
                ),
                None => not_found(arn),
            }
        }
        (Answer::Refuse(rule), "UpdateRoutingControlStates") => refuse(rule),
        (Answer::Serve, "UpdateRoutingControlStates") => {
            let mut next = s.controls.clone();
            let mut missing = None;
            for e in body["UpdateRoutingControlStateEntries"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let arn = e["RoutingControlArn"].as_str().unwrap_or("").to_string();
                let on = e["RoutingControlState"] == "On";
                match next.get_mut(&arn) {
                    Some(v) => *v = on,
                    None => missing = Some(arn),
                }
            }
            if let Some(arn) = missing {
                not_found(&arn)
            } else if s.at_least_one_on && !next.values().any(|on| *on) {
                refuse("at-least-one-on")
            } else {
                s.controls = next;
                body["applied"] = Value::Bool(true);
                json_answer(StatusCode::OK, json!({}))
            }
        }
        _ => json_answer(
            StatusCode::BAD_REQUEST,
            json!({"__type": "ValidationException", "message": format!("unknown operation {target}")}),
        ),
    };
    s.log.push(Call {
        endpoint: index,
        target,
        body,
    });
    out
}

fn not_found(arn: &str) -> Response {
    json_answer(
        StatusCode::NOT_FOUND,
        json!({"__type": "ResourceNotFoundException",
               "message": format!("routing control {arn} not found"),
               "resourceId": arn, "resourceType": "RoutingControl"}),
    )
}

/// An endpoint that accepts connections and never answers (an unreachable region).
pub async fn black_hole() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    Ok(format!("http://{addr}"))
}
