//! Tasks that run beside the controller (the FloatGroup status publisher, the site
//! supervisor): what they get from it. Its own module so that the controller (`app`)
//! and the sidecars depend on it, not on each other.

use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::probe::HealthBoard;
use crate::status::StatusStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a [`Sidecar`] gets from the running controller.
#[derive(Clone)]
pub struct SidecarCtx {
    pub leadership: Leadership,
    pub board: Arc<HealthBoard>,
    /// The engine's command channel (switchovers).
    pub commands: tokio::sync::mpsc::Sender<crate::engine::Command>,
    pub status: Arc<StatusStore>,
    pub metrics: Arc<Metrics>,
    /// Where a sidecar that must keep going registers its heart: a stalled one stops the
    /// replica from renewing its lease and shows on `/healthz`.
    pub liveness: Arc<crate::liveness::Liveness>,
    /// Fires when the controller stops; the sidecar must return then.
    pub stop: CancellationToken,
}

/// A task that runs beside the controller for as long as it runs (the FloatGroup status
/// publisher, the site supervisor): supervised like the others (ending before a shutdown
/// is fatal), and it must return once `stop` fires.
pub type Sidecar = Box<dyn FnOnce(SidecarCtx) -> futures::future::BoxFuture<'static, ()> + Send>;
