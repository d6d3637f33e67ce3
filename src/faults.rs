//! Fault injection for the test suite: a fault armed by `FLOATOVER_FAULT` fires when the
//! process receives SIGUSR1, so a test decides exactly when a running controller breaks.
//!
//! These are the failures a controller must survive without going silent (see
//! `liveness`): a panic inside a reconcile, an engine that hangs, a probe loop that
//! stops. Nothing is armed unless the variable is set, and an armed process says so loudly
//! at start. Unknown values are refused at start rather than ignored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A fault the suite can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next reconcile panics.
    EnginePanic,
    /// The next reconcile never returns.
    EngineStall,
    /// Every probe loop stops at its next turn and never probes again.
    ProbeStall,
}

impl Fault {
    fn parse(s: &str) -> Option<Fault> {
        match s {
            "engine-panic" => Some(Fault::EnginePanic),
            "engine-stall" => Some(Fault::EngineStall),
            "probe-stall" => Some(Fault::ProbeStall),
            _ => None,
        }
    }
}

/// The armed fault (if any) and whether it fired.
/// `FLOATOVER_FAULT` names no fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FLOATOVER_FAULT={0:?} is not one of engine-panic, engine-stall, probe-stall")]
pub struct UnknownFault(pub String);

#[derive(Debug, Clone, Default)]
pub struct Faults {
    armed: Option<Fault>,
    fired: Arc<AtomicBool>,
}

impl Faults {
    /// Read `FLOATOVER_FAULT`. An unknown value is an error naming the accepted ones.
    pub fn from_env() -> Result<Faults, UnknownFault> {
        match std::env::var("FLOATOVER_FAULT") {
            Ok(v) if !v.is_empty() => match Fault::parse(&v) {
                Some(f) => Ok(Faults::armed(f)),
                None => Err(UnknownFault(v)),
            },
            _ => Ok(Faults::default()),
        }
    }

    /// A fault armed in-process (tests).
    pub fn armed(f: Fault) -> Faults {
        Faults {
            armed: Some(f),
            fired: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn armed_fault(&self) -> Option<Fault> {
        self.armed
    }

    /// Fire the armed fault (SIGUSR1, or a test).
    pub fn fire(&self) {
        if self.armed.is_some() {
            self.fired.store(true, Ordering::SeqCst);
        }
    }

    /// True once `f` is armed and fired.
    pub fn active(&self, f: Fault) -> bool {
        self.armed == Some(f) && self.fired.load(Ordering::SeqCst)
    }

    /// Listen for SIGUSR1 and fire on it (only when something is armed).
    pub fn listen(&self) {
        if self.armed.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut s) = signal(SignalKind::user_defined1()) else {
                return;
            };
            while s.recv().await.is_some() {
                tracing::warn!(fault = ?me.armed, "SIGUSR1: injecting the armed fault");
                me.fire();
            }
        });
    }
}
