//! floatover: a floating-IP failover controller.
//!
//! Every replica probes targets ([`probe`]) and observes provider state ([`provider`]);
//! one replica, elected and fenced ([`leader`]), executes what the pure planner ([`plan`])
//! decides, from the loop in [`engine`]. `docs/policy.md` and `docs/leader-election.md` say what it guarantees and how.

// A controller must not panic on what it did not make: errors go up as values. Tests may
// unwrap (clippy.toml allows it there).
#![deny(clippy::unwrap_used, clippy::expect_used)]

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
/// The domain model and the planner live in `floatover-core` (no I/O, no clock).
pub use floatover_core::{model, plan};
pub mod pace;
pub mod probe;
pub mod provider;
pub mod reload;
pub mod sidecar;
pub mod site;
pub mod status;
