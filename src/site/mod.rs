//! Disaster-recovery sites: a site is a region's worth of targets with a tier (hot, warm,
//! cold), the traffic it takes and a promotion plan of steps, each with a budget, the
//! whole with an RTO. This module owns the config of sites ([`raw`], [`spec`],
//! [`resolve`]); promotion itself builds on it.

pub mod api;
pub mod hooks;
pub mod ops;
pub mod plan;
pub mod preflight;
pub mod promote;
pub mod raw;
pub mod report;
pub mod resolve;
pub mod run;
pub mod spec;
pub mod store;
pub mod supervisor;

pub use raw::{RawSite, RawSitePolicy, Tier};
pub use spec::{SitePolicy, SiteSpec, Step, StepKind};

#[cfg(test)]
mod tests;
