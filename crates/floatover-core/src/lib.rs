//! floatover's provider-neutral core: what the controller decides, with no I/O.
//!
//! - [`model`]: the domain words (groups, targets, floats, holders, epochs, assignments),
//!   which every provider translates its own types into at its boundary.
//! - [`plan`]: the pure planner. Its input is a group's view, the targets' health, what
//!   the provider holds, the epoch, its memory and `now`; its output is actions and notes.
//! - [`health`]: the rise/fall machine of one probe, and how a target's probes combine.
//! - [`human`]: durations written for a person, in every message.
//!
//! Its only dependency is serde: no runtime, no SDK, no clock (clippy refuses
//! `Instant::now` here; time is passed in). Adding a provider never edits this crate.

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod health;
pub mod human;
pub mod model;
pub mod plan;
