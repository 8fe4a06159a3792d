//! `aivo-load heal [RUN_DIR | --state-dir DIR]`: reverts what a harness killed with SIGKILL left
//! behind, from its fault journal.
//!
//! - Faults on a `cluster up` cluster went through its supervisor, which outlives the harness: their
//!   journaled reverts are replayed through the supervisor's control socket (resume paused nodes,
//!   start killed ones, heal proxies, give storage back), and then the supervisor is asked to make
//!   the cluster whole, which catches anything a torn journal missed.
//! - Faults on an in-process cluster died with it: its nodes got the death signal when the harness
//!   died, so there is no process to resume or proxy to heal. Only files can outlive it: a tmpfs
//!   mounted over a node's store is unmounted and the real store put back.
//!
//! - Faults on a docker cluster are replayed through the Docker API if its compose project still
//!   exists (a run's own project, which outlived its SIGKILLed harness, is then removed).
//!
//! Every fault handled gets a `reverted` entry (by `heal`), so a second `heal` finds nothing to do.

use std::path::{Path, PathBuf};

use super::effect::{Confirmation, Effect};
use super::journal::{self, Cleanup, ClusterOwner, FaultJournal, JournalEntry};
use super::{ChaosError, RECOVERY_TIMEOUT};
use crate::cluster::control::{self, ControlOp};
use crate::cluster::storage;
use crate::cluster::ClusterEndpoints;

/// A live `cluster up` cluster to make whole after the journal is replayed.
#[derive(Debug, Clone)]
pub struct LiveSupervisor {
    pub socket: PathBuf,
    pub endpoints: ClusterEndpoints,
}

/// What `heal` did.
#[derive(Debug, Clone, Default)]
pub struct HealReport {
    /// One line per fault handled, and per cleanup.
    pub lines: Vec<String>,
    /// Faults found active in the journal.
    pub active: usize,
    /// The final check of the live cluster, if there was one.
    pub whole: Option<Confirmation>,
    /// Reverts that failed.
    pub failures: Vec<String>,
}

/// Replays the reverts of every active fault in `journal_path` (newest first), cleans what they left
/// on disk, then makes `supervisor`'s cluster whole.
pub async fn heal(
    journal_path: &Path,
    supervisor: Option<&LiveSupervisor>,
) -> Result<HealReport, ChaosError> {
    let entries = journal::read(journal_path)?;
    let mut active = journal::active(&entries);
    active.reverse();
    let mut report = HealReport {
        active: active.len(),
        ..HealReport::default()
    };
    let mut journal = if active.is_empty() {
        None
    } else {
        Some(FaultJournal::open(journal_path)?)
    };
    for entry in active {
        let JournalEntry::Begin {
            id,
            fault,
            node,
            owner,
            revert,
            cleanup,
            ..
        } = entry
        else {
            continue;
        };
        let mut problems = Vec::new();
        let how = match &owner {
            ClusterOwner::Supervisor { socket, .. } => {
                if socket.exists() {
                    for op in &revert {
                        if let Err(err) = control::request(socket, op).await {
                            problems.push(err.to_string());
                        }
                    }
                    format!("replayed {} through the supervisor", describe_ops(&revert))
                } else {
                    "its supervisor is gone and its nodes with it".to_string()
                }
            }
            ClusterOwner::InProcess { .. } => {
                "its nodes died with the harness (death signal); nothing runs to revert".to_string()
            }
            ClusterOwner::Docker { dir, project, run } => {
                match crate::cluster::docker::DockerCluster::attach(dir).await {
                    Ok(cluster) => {
                        for op in &revert {
                            if let Err(err) = cluster.apply(op).await {
                                problems.push(err.to_string());
                            }
                        }
                        let mut how = format!(
                            "replayed {} through the Docker API (compose project {project})",
                            describe_ops(&revert)
                        );
                        // A run's own project outlived its harness: remove it, as the run would have.
                        if *run {
                            match cluster.shutdown().await {
                                Ok(()) => how.push_str("; removed the run's compose project"),
                                Err(err) => problems.push(err.to_string()),
                            }
                        }
                        how
                    }
                    Err(err) => format!("its compose project {project} is gone ({err})"),
                }
            }
        };
        // Mounts of a live supervisor's node were handled by its drain-storage revert.
        let cluster_gone =
            !matches!(&owner, ClusterOwner::Supervisor { socket, .. } if socket.exists());
        for item in &cleanup {
            match item {
                Cleanup::Mount { store } if cluster_gone => match storage::uncover(store, false) {
                    Ok(()) => report
                        .lines
                        .push(format!("  removed the tmpfs over {}", store.display())),
                    Err(err) => problems.push(format!(
                        "cannot remove the tmpfs over {}: {err}",
                        store.display()
                    )),
                },
                Cleanup::Mount { .. } => {}
            }
        }
        report
            .lines
            .push(format!("{fault} on {node} ({id}): {how}"));
        if let Some(journal) = journal.as_mut() {
            journal.append(&JournalEntry::Reverted {
                id: id.clone(),
                at: journal::now(),
                by: "heal".into(),
                confirmed: problems.is_empty(),
                detail: if problems.is_empty() {
                    how.clone()
                } else {
                    problems.join("; ")
                },
            })?;
        }
        report.failures.extend(problems);
    }
    if let Some(live) = supervisor {
        if let Err(err) = control::request(&live.socket, &ControlOp::MakeWhole).await {
            report.failures.push(err.to_string());
        }
        report.whole = Some(Effect::Whole.wait(&live.endpoints, RECOVERY_TIMEOUT).await);
    }
    Ok(report)
}

fn describe_ops(ops: &[ControlOp]) -> String {
    ops.iter()
        .map(ControlOp::describe)
        .collect::<Vec<_>>()
        .join(", ")
}
