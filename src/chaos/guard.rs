//! Guarantees that faults end (DESIGN.md §7), and refuses them where they must not start.
//!
//! [`RevertGuard`] owns an engine; [`RevertGuard::finish`] reverts the active faults at the end of a
//! run (Ctrl-C and SIGTERM end a run through its cancellation token and reach `finish` too). If the
//! guard is dropped without `finish` — a panic unwinding, an early `?` — `Drop` reverts on a thread of
//! its own with a fresh runtime, so it works from inside or outside any runtime. A SIGKILL leaves the
//! journal to `aivo-load heal`.

use std::sync::Arc;

use super::engine::{ChaosEngine, FaultEvent};
use super::Fault;
use crate::cluster::BackendKind;
use crate::exit::AppError;

/// Reverts an engine's active faults when its owner ends; see the module header.
#[derive(Debug)]
pub struct RevertGuard {
    engine: Option<Arc<ChaosEngine>>,
}

impl RevertGuard {
    /// Guards `engine`.
    pub fn new(engine: Arc<ChaosEngine>) -> Self {
        Self {
            engine: Some(engine),
        }
    }

    /// The guarded engine.
    pub fn engine(&self) -> Option<&Arc<ChaosEngine>> {
        self.engine.as_ref()
    }

    /// Reverts every active fault, newest first, and disarms the guard.
    pub async fn finish(mut self, by: &str) -> Vec<FaultEvent> {
        match self.engine.take() {
            Some(engine) => engine.revert_all(by).await,
            None => Vec::new(),
        }
    }
}

impl Drop for RevertGuard {
    fn drop(&mut self) {
        let Some(engine) = self.engine.take() else {
            return;
        };
        let by = if std::thread::panicking() {
            "guard (panic)"
        } else {
            "guard (drop)"
        };
        // A thread of its own: Drop may run inside a runtime, where blocking on another is refused.
        let reverted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(runtime.block_on(engine.revert_all(by)).len())
        })
        .join();
        match reverted {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => eprintln!("aivo-load: reverted {n} active fault(s) ({by})"),
            Ok(Err(err)) => eprintln!("aivo-load: cannot revert faults ({by}): {err}"),
            Err(_) => {
                eprintln!("aivo-load: reverting faults panicked ({by}); run `aivo-load heal`")
            }
        }
    }
}

/// Faults run only on clusters the harness manages ([`BackendKind::manages_faults`]): against
/// `--backend external` they are refused with a usage error (exit 2) that says why.
pub fn refuse_external(backend: BackendKind, faults: &[&Fault]) -> Result<(), AppError> {
    if backend.manages_faults() {
        return Ok(());
    }
    let destructive: Vec<&str> = faults
        .iter()
        .filter(|f| f.is_destructive())
        .map(|f| f.name())
        .collect();
    if destructive.is_empty() {
        return Ok(());
    }
    Err(AppError::usage(anyhow::anyhow!(
        "refusing chaos against --backend external ({}): faults kill, pause and partition nodes, and \
         aivo-load only does that to clusters it manages (--backend local or docker). Remove the [[chaos]] \
         entries or run against a local cluster",
        destructive.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitStatus;

    #[test]
    fn external_backend_refuses_faults_with_exit_2() {
        let err = refuse_external(BackendKind::External, &[&Fault::Kill]).expect_err("refused");
        assert_eq!(err.exit_status(), ExitStatus::Usage);
        assert!(err.to_string().contains("kill"), "{err}");
        assert!(refuse_external(BackendKind::Local, &[&Fault::Kill]).is_ok());
        assert!(refuse_external(BackendKind::External, &[]).is_ok());
    }
}
