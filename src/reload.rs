//! Live config reload for `floatover run`: the config file is re-read on SIGHUP and when
//! its content changes (checked every two seconds, so an edited file or an updated
//! Kubernetes ConfigMap takes effect without a signal). A new config that does not pass
//! every check is rejected whole: the running one stays, and the error is logged, shown
//! in status (`warnings`) and counted (`floatover_config_reloads_total{outcome="rejected"}`,
//! `floatover_config_valid` 0). A valid one is handed to the runtime, which stops the
//! controller in order (the lease is released, so a standby leads meanwhile) and starts
//! it again in the same process with the new groups, probes and settings.
//!
//! With `group_source: kubernetes` the FloatGroups are listed at every poll too; an
//! object whose new spec is refused keeps its previous spec running (see
//! [`crate::crd::source`]), shown as a status warning `floatgroup/NAME`, counted as a
//! rejected reload, and reported on the object by the leader (status `message`, Event).

use crate::config::{self, GroupSource, RawConfig, Spec};
use crate::crd::publish::PodEvents;
use crate::crd::source::{Found, ObjectSource, SourceError};
use crate::metrics::Metrics;
use crate::status::StatusStore;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// How often the file's content (and the FloatGroups) are compared with the running ones.
pub const POLL: Duration = Duration::from_secs(2);

/// Watches one config file, and the FloatGroup objects when they are the group source.
pub struct ConfigWatch {
    path: PathBuf,
    /// Hash of the inputs last looked at (file bytes and objects), so that an unchanged
    /// input, or a bad one already reported, is not processed again every poll.
    seen: u64,
    /// Hash of what runs (file bytes and the accepted groups): a refused object edit that
    /// leaves it unchanged restarts nothing.
    applied: u64,
    hup: Option<Signal>,
    objects: Option<ObjectSource>,
    /// Objects whose refusal is shown (status warnings `floatgroup/NAME`).
    refused: BTreeSet<String>,
    /// The last error listing the objects (reported once until it changes).
    list_error: Option<String>,
    /// Where a refused config file is also reported in a cluster (an Event on the Pod).
    events: Option<PodEvents>,
}

fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Why a config (file and objects) cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Config {
        path: String,
        #[source]
        source: config::ConfigError,
    },
    /// Without the file's path: the reload's own message names it.
    #[error(transparent)]
    Invalid(#[from] config::ConfigError),
    #[error(transparent)]
    Objects(#[from] SourceError),
    #[error("internal: no object source")]
    NoObjectSource,
}

fn found_bytes(found: &[Found]) -> Vec<u8> {
    let v: Vec<_> = found
        .iter()
        .map(|f| (&f.name, f.generation, &f.raw))
        .collect();
    serde_json::to_vec(&v).unwrap_or_default()
}

impl ConfigWatch {
    /// Load the config to start with: the file, and with `group_source: kubernetes` the
    /// FloatGroups read through `objects` (built by the caller from the file's settings).
    /// SIGHUP is caught from now on (it no longer ends the process).
    pub async fn start(
        path: PathBuf,
        objects: Option<ObjectSource>,
        metrics: &Metrics,
        status: &StatusStore,
    ) -> Result<(Self, Spec), ReloadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|source| ReloadError::Read {
            path: shown.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes).to_string();
        let spec = config::from_yaml(&text).map_err(|source| ReloadError::Config {
            path: shown.clone(),
            source,
        })?;
        let hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; config changes are still picked up from the file");
                None
            }
        };
        let mut w = ConfigWatch {
            path,
            seen: hash(&[&bytes]),
            applied: 0,
            hup,
            objects,
            refused: BTreeSet::new(),
            list_error: None,
            events: None,
        };
        let spec = match w.objects.is_some() {
            false => spec,
            true => {
                let found = match &w.objects {
                    Some(o) => o.list().await?,
                    None => Vec::new(),
                };
                let base = config::parse_raw(&text)?;
                w.seen = hash(&[&bytes, &found_bytes(&found)]);
                let (spec, _) = w.take(&bytes, &base, &found, metrics, status)?;
                spec
            }
        };
        Ok((w, spec))
    }

    /// Also report a refused config file as a Warning Event on this Pod.
    pub fn with_events(mut self, events: Option<PodEvents>) -> Self {
        self.events = events;
        self
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

    /// Assemble the objects with the file's settings; report refusals. Returns the spec
    /// and whether it differs from the one applied before.
    fn take(
        &mut self,
        bytes: &[u8],
        base: &RawConfig,
        found: &[Found],
        metrics: &Metrics,
        status: &StatusStore,
    ) -> Result<(Spec, bool), ReloadError> {
        let Some(src) = self.objects.as_mut() else {
            return Err(ReloadError::NoObjectSource);
        };
        let a = src.accept(base, found, &env);
        let spec = a.spec?;
        let mut now_refused = BTreeSet::new();
        for (name, o) in &a.objects {
            if let Some(why) = &o.rejected {
                now_refused.insert(name.clone());
                let key = format!("floatgroup/{name}");
                let shown = format!("{why} (the previous spec keeps running)");
                if !self.refused.contains(name) || status.warnings().iter().all(|w| w != &shown) {
                    tracing::error!(object = %name, reason = %why, "FloatGroup refused; its previous spec keeps running");
                    metrics.count_config_reload("rejected");
                }
                status.set_warning(&key, Some(shown));
            }
        }
        for gone in self.refused.difference(&now_refused) {
            status.set_warning(&format!("floatgroup/{gone}"), None);
        }
        self.refused = now_refused;
        let applied = hash(&[bytes, &serde_json::to_vec(&a.running).unwrap_or_default()]);
        let changed = applied != self.applied;
        self.applied = applied;
        if self.refused.is_empty() && changed {
            metrics.set_config_valid(true);
        } else if !self.refused.is_empty() {
            metrics.set_config_valid(false);
        }
        Ok((spec, changed))
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
            let found = match &self.objects {
                None => None,
                Some(o) => {
                    match o.list().await {
                        Ok(f) => {
                            if self.list_error.take().is_some() {
                                tracing::info!("FloatGroups readable again");
                                status.set_warning("floatgroups", None);
                            }
                            Some(f)
                        }
                        Err(e) => {
                            let msg = e.to_string();
                            if self.list_error.as_ref() != Some(&msg) {
                                tracing::error!(error = %msg, "cannot read the FloatGroups; the running config stays");
                                status.set_warning(
                                "floatgroups",
                                Some(format!("cannot read the FloatGroups, the running config stays: {msg}")),
                            );
                                self.list_error = Some(msg);
                            }
                            continue;
                        }
                    }
                }
            };
            let h = match &found {
                Some(f) => hash(&[&bytes, &found_bytes(f)]),
                None => hash(&[&bytes]),
            };
            if h == self.seen && !hup {
                continue;
            }
            self.seen = h;
            let text = String::from_utf8_lossy(&bytes).to_string();
            let trigger = if hup { "SIGHUP" } else { "changed" };
            let checked = config::from_yaml(&text).and_then(|spec| {
                let was_objects = self.objects.is_some();
                let is_objects = matches!(spec.group_source, GroupSource::Kubernetes { .. });
                if was_objects != is_objects {
                    return Err(config::ConfigError::Invalid(vec![config::Issue {
                        path: "group_source".into(),
                        reason: "cannot change while running (one source is chosen at start): restart floatover to switch".into(),
                    }]));
                }
                Ok(spec)
            });
            let spec = match (checked, found) {
                (Ok(spec), None) => spec,
                (Ok(_), Some(found)) => {
                    let taken = config::parse_raw(&text)
                        .map_err(ReloadError::from)
                        .and_then(|base| self.take(&bytes, &base, &found, metrics, status));
                    match taken {
                        Ok((spec, true)) => spec,
                        Ok((_, false)) => {
                            // Back to what runs (e.g. a refused file restored): nothing
                            // to restart, but the refusal no longer holds.
                            status.set_warning("config", None);
                            if self.refused.is_empty() {
                                metrics.set_config_valid(true);
                            }
                            continue;
                        }
                        Err(e) => {
                            self.reject(&e.to_string(), metrics, status);
                            continue;
                        }
                    }
                }
                (Err(e), _) => {
                    self.reject(&e.to_string(), metrics, status);
                    continue;
                }
            };
            tracing::info!(path = %self.path.display(), groups = spec.groups.len(), trigger, "config reload: new config accepted; restarting the controller in this process");
            metrics.count_config_reload("applied");
            if !self.refused.is_empty() {
                metrics.set_config_valid(false);
            }
            status.set_warning("config", None);
            return Arc::new(spec);
        }
    }

    fn reject(&self, e: &str, metrics: &Metrics, status: &StatusStore) {
        let msg = format!(
            "config reload rejected, the previous config keeps running: {}: {e}",
            self.path.display()
        );
        tracing::error!(path = %self.path.display(), error = %e, "config reload rejected; the previous config keeps running");
        metrics.count_config_reload("rejected");
        if let Some(ev) = &self.events {
            ev.warn("ConfigRejected", msg.clone());
        }
        status.set_warning("config", Some(msg));
    }
}
