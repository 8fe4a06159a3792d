//! Exit codes (DESIGN.md §6) and the top-level error that carries one.
//!
//! Subsystems keep their own typed errors; at the top every failure becomes an [`AppError`] that knows
//! which exit code it means, so `main` stays a one-line mapping.

use std::process::ExitCode;

/// What the process tells its caller, as DESIGN.md §6 fixes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every check and threshold passed (or the command simply succeeded).
    Success = 0,
    /// A check, threshold or `verify` found a failure.
    Failed = 1,
    /// Bad usage or a bad scenario file.
    Usage = 2,
    /// The environment is not usable: a binary is missing, a server is unreachable.
    Environment = 3,
    /// Interrupted by Ctrl-C / SIGTERM, after reverting what the run changed.
    Interrupted = 130,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

/// A failure that ends a command, with the exit code it maps to.
#[derive(Debug)]
pub struct AppError {
    status: ExitStatus,
    error: anyhow::Error,
}

impl AppError {
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            status: ExitStatus::Usage,
            error: error.into(),
        }
    }
    pub fn environment(error: impl Into<anyhow::Error>) -> Self {
        Self {
            status: ExitStatus::Environment,
            error: error.into(),
        }
    }
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self {
            status: ExitStatus::Failed,
            error: error.into(),
        }
    }
    pub fn exit_status(&self) -> ExitStatus {
        self.status
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.error)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

/// Errors that do not say otherwise are environment errors: something outside the harness failed.
impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        Self::environment(error)
    }
}
