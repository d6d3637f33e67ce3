//! The exit codes of every floatover command, in one place: scripts and supervisors
//! (systemd, Kubernetes) act on them.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// Invalid input (config, arguments) or a refused request; nothing was done.
    Invalid = 1,
    /// Usage error (unknown flag or command; clap's own code).
    Usage = 2,
    /// Runtime failure: a task ended on its own, the provider or the lease store could not
    /// be used, shutdown missed its deadline.
    Failure = 3,
    /// A panic: the process ended so that a standby takes over.
    Panic = 70,
    /// A second SIGTERM/SIGINT: exited at once, without the orderly shutdown.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}
