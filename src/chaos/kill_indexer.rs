//! `kill-indexer` (target `indexer`): SIGKILL the run's indexer child, as a crash or an OOM kill
//! does; reverted by starting a new indexer on the same durable consumer. Proven by the process
//! being gone (apply) and, after the revert, by a new process running while the indexer's lag
//! falls again.
//!
//! The indexer is not a cluster node, so this fault does not go through [`ControlOp`]s: the engine
//! applies it to the run's [`ConsumerSlot`] (`ChaosEngine::with_indexer`). Its journal entry has no
//! revert operations: the indexer is a child of the run and dies with it, so `heal` has nothing to
//! undo.
//!
//! [`ControlOp`]: crate::cluster::ControlOp
//! [`ConsumerSlot`]: crate::consumers::ConsumerSlot

use std::time::{Duration, Instant};

use super::effect::Confirmation;
use super::{Effect, FaultPlan};
use crate::consumers::ConsumerSlot;

/// The fault's name in scenarios and reports.
pub const NAME: &str = "kill-indexer";

/// The node-level plan: nothing (the engine applies this fault to the indexer itself).
pub fn plan() -> FaultPlan {
    FaultPlan {
        steps: Vec::new(),
        revert: Vec::new(),
        effect: Effect::Whole,
        note: Some("the run's indexer process, not a node".into()),
    }
}

/// Kills the indexer and confirms its process is gone.
pub async fn apply(slot: &ConsumerSlot) -> (Confirmation, Option<String>) {
    let started = Instant::now();
    match slot.kill().await {
        Some(pid) => {
            let gone = !process_exists(pid);
            let confirmation = Confirmation {
                confirmed: gone,
                after: started.elapsed(),
                detail: if gone {
                    format!("indexer pid {pid} killed (SIGKILL) and gone")
                } else {
                    format!("indexer pid {pid} still exists after SIGKILL")
                },
            };
            (confirmation, None)
        }
        None => (
            Confirmation {
                confirmed: false,
                after: started.elapsed(),
                detail: "not applied".into(),
            },
            Some("the indexer was not running".into()),
        ),
    }
}

/// Starts a new indexer and waits (up to `timeout`) until it runs and its lag falls (or is zero).
pub async fn revert(slot: &ConsumerSlot, timeout: Duration) -> (Confirmation, Option<String>) {
    let started = Instant::now();
    let before = slot.lag().await;
    let pid = match slot.start().await {
        Ok(pid) => pid,
        Err(e) => {
            let confirmation = Confirmation {
                confirmed: false,
                after: started.elapsed(),
                detail: "not restarted".into(),
            };
            return (confirmation, Some(format!("cannot start the indexer: {e}")));
        }
    };
    let mut last = before;
    while started.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if slot.pid().await.is_none() {
            let confirmation = Confirmation {
                confirmed: false,
                after: started.elapsed(),
                detail: format!("the new indexer (pid {pid}) exited"),
            };
            return (confirmation, None);
        }
        last = slot.lag().await.or(last);
        let falling = match (before, last) {
            (_, Some(0)) => true,
            (Some(b), Some(now)) => now < b,
            _ => false,
        };
        if falling {
            return (
                Confirmation {
                    confirmed: true,
                    after: started.elapsed(),
                    detail: format!(
                        "indexer back (pid {pid}); lag {} → {}",
                        before.map_or("?".into(), |b| b.to_string()),
                        last.unwrap_or(0)
                    ),
                },
                None,
            );
        }
    }
    (
        Confirmation {
            confirmed: false,
            after: started.elapsed(),
            detail: format!(
                "indexer back (pid {pid}) but its lag did not fall within {timeout:?} ({} → {})",
                before.map_or("?".into(), |b| b.to_string()),
                last.map_or("?".into(), |l| l.to_string())
            ),
        },
        None,
    )
}

/// Whether a process with this pid exists (a reaped child no longer does).
fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
