//! The consumers as child processes of a run, so a scenario can kill them like a real service.
//!
//! [`ConsumerProcess::spawn`] starts `aivo-load indexer|analytics --server … --postgres-url …` with
//! stdout and stderr (its status lines) appended to a log file, in a process group of its own, with
//! `PR_SET_PDEATHSIG(SIGTERM)`: if the harness dies the consumer finishes its batch and exits.
//! Dropping the handle kills the child.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::service::ServiceKind;
use super::ConsumersError;
use crate::child::{signal, spawn_tied};

/// What a consumer child needs to start.
#[derive(Debug, Clone)]
pub struct ConsumerProcessSpec {
    pub kind: ServiceKind,
    /// The `aivo-load` binary (`std::env::current_exe()` in a run).
    pub exe: PathBuf,
    /// NATS URL(s), comma-separated.
    pub server: String,
    pub postgres_url: String,
    /// Appended to (created if missing): the child's stdout and stderr.
    pub log: PathBuf,
    /// More flags, e.g. `["--batch", "500", "--status-every", "1s"]`.
    pub extra_args: Vec<String>,
    /// Identity and TLS of the child's connections (passed as flags; a password in its
    /// environment, not on its command line).
    pub auth: crate::security::ClientAuth,
}

/// A running consumer child; dropping it kills the child.
#[derive(Debug)]
pub struct ConsumerProcess {
    kind: ServiceKind,
    child: Option<Child>,
}

impl ConsumerProcess {
    /// Starts the child. It connects, migrates and starts consuming on its own; watch its log or the
    /// consumer's lag to see it working.
    pub async fn spawn(spec: &ConsumerProcessSpec) -> Result<ConsumerProcess, ConsumersError> {
        let io = |what: String| move |source| ConsumersError::Io { what, source };
        if let Some(dir) = spec.log.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(io(format!("open {}", spec.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io(format!("open {}", spec.log.display())))?;
        let mut command = Command::new(&spec.exe);
        command
            .arg(spec.kind.command())
            .arg("--server")
            .arg(&spec.server)
            .arg("--postgres-url")
            .arg(&spec.postgres_url)
            .args(&spec.extra_args)
            .args(spec.auth.to_args())
            .env_remove("NATS_URL")
            .env_remove("NATS_CREDS")
            .env_remove("NATS_PASSWORD")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(password) = &spec.auth.password {
            command.env("NATS_PASSWORD", password);
        }
        let child = spawn_tied(command, libc::SIGTERM)
            .await
            .map_err(io(format!(
                "start {} {}",
                spec.exe.display(),
                spec.kind.command()
            )))?;
        Ok(ConsumerProcess {
            kind: spec.kind,
            child: Some(child),
        })
    }

    /// Which consumer this is.
    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, like a crash: unacknowledged messages come back after the consumer's ack wait.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns its exit code if it exited
    /// on its own.
    pub async fn terminate(&mut self, grace: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(child.id(), libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
