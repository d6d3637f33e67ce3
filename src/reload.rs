//! Live config reload for `floatover run`: the config file is re-read on SIGHUP and when
//! its content changes (checked every two seconds, so an edited file or an updated
//! Kubernetes ConfigMap takes effect without a signal). A new config that does not pass
//! every check is rejected whole: the running one stays, and the error is logged, shown
//! in status (`warnings`) and counted (`floatover_config_reloads_total{outcome="rejected"}`,
//! `floatover_config_valid` 0). A valid one is handed to the runtime, which stops the
//! controller in order (the lease is released, so a standby leads meanwhile) and starts
//! it again in the same process with the new groups, probes and settings.

use crate::config::{self, Spec};
use crate::metrics::Metrics;
use crate::status::StatusStore;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// How often the file's content is compared with the running one.
pub const POLL: Duration = Duration::from_secs(2);

/// Watches one config file.
pub struct ConfigWatch {
    path: PathBuf,
    /// Content hash of the running config, or of the last rejected one (so that a bad
    /// file is reported once, not every poll).
    seen: u64,
    hup: Option<Signal>,
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl ConfigWatch {
    /// Start watching `path`, whose current content is the running config. SIGHUP is
    /// caught from now on (it no longer ends the process).
    pub fn new(path: PathBuf) -> Self {
        let seen = std::fs::read(&path).map(|b| hash(&b)).unwrap_or(0);
        let hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; config changes are still picked up from the file");
                None
            }
        };
        ConfigWatch { path, seen, hup }
    }

    async fn tick(&mut self) -> bool {
        match &mut self.hup {
            Some(h) => tokio::select! {
                _ = h.recv() => true,
                _ = tokio::time::sleep(POLL) => false,
            },
            None => {
                tokio::time::sleep(POLL).await;
                false
            }
        }
    }

    /// Wait for a new valid config. Rejected ones are reported and waited past.
    pub async fn next(&mut self, metrics: &Metrics, status: &StatusStore) -> Arc<Spec> {
        loop {
            let hup = self.tick().await;
            let bytes = match std::fs::read(&self.path) {
                Ok(b) => b,
                Err(e) => {
                    if hup {
                        tracing::error!(path = %self.path.display(), error = %e, "config reload: cannot read the file; the running config stays");
                    }
                    continue;
                }
            };
            let h = hash(&bytes);
            if h == self.seen && !hup {
                continue;
            }
            self.seen = h;
            let text = String::from_utf8_lossy(&bytes);
            match config::from_yaml(&text) {
                Ok(spec) => {
                    tracing::info!(path = %self.path.display(), groups = spec.groups.len(), trigger = if hup { "SIGHUP" } else { "file changed" }, "config reload: new config accepted; restarting the controller in this process");
                    metrics.count_config_reload("applied");
                    status.set_warning("config", None);
                    return Arc::new(spec);
                }
                Err(e) => {
                    let msg = format!(
                        "config reload rejected, the previous config keeps running: {}: {e}",
                        self.path.display()
                    );
                    tracing::error!(path = %self.path.display(), error = %e, "config reload rejected; the previous config keeps running");
                    metrics.count_config_reload("rejected");
                    status.set_warning("config", Some(msg));
                }
            }
        }
    }
}
