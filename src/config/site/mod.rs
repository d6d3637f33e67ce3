//! The config of disaster-recovery sites (`sites:`, `site_policy:`): as written, as
//! resolved and the checks between. Promotion itself lives in the `site` module.

mod capacity;
pub mod data;
pub mod raw;
pub mod resolve;
pub mod spec;
pub mod template;

pub use raw::{RawSite, RawSitePolicy, Tier};
pub use spec::{SitePolicy, SiteSpec, Step, StepKind};
