//! floatover: a floating-IP failover controller.
//!
//! Every replica probes targets ([`probe`]) and observes provider state ([`provider`]);
//! one replica, elected and fenced ([`leader`]), executes what the pure planner ([`plan`])
//! decides, from the loop in [`engine`]. The README says what it guarantees and how (sections "Policy" and "Leader election and fencing").

pub mod api;
pub mod app;
pub mod aws;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod crd;
pub mod engine;
pub mod exit;
pub mod faults;
pub mod leader;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pace;
pub mod plan;
pub mod probe;
pub mod provider;
pub mod reload;
pub mod sidecar;
pub mod site;
pub mod status;
