//! Disaster-recovery sites: a site is a region's worth of targets with a tier (hot, warm,
//! cold), the traffic it takes and a promotion plan of steps, each with a budget, the
//! whole with an RTO. The config of sites is [`crate::config::site`]; this module runs
//! promotions (record, executor, supervisor, pre-flight, drills and their report).

pub mod decide;
pub mod hooks;
pub mod lag;
/// What a promotion asks of the provider (the trait lives with the provider's own).
pub mod ops {
    pub use crate::provider::sites::SiteOps;
}
pub mod outline;
pub mod preflight;
pub mod promote;
pub mod quorum_store;
pub mod record;
pub mod report;
pub mod store;
pub mod supervisor;

pub use crate::config::site::{RawSite, RawSitePolicy, SitePolicy, SiteSpec, Step, StepKind, Tier};
pub use crate::config::site::{raw, resolve, spec};

#[cfg(test)]
mod tests;
