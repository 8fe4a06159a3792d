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
//! - Faults on a docker cluster are replayed through the Docker API if its compose project still
//!   exists (a run's own project, which outlived its SIGKILLed harness, is then removed).
//!
//! The journal names each fault's cluster as a [`ClusterRef`]; [`ClusterRef::reattach`] gives a
//! live handle or says why there is none, so nothing here depends on the backend.
//!
//! Every fault handled gets a `reverted` entry (by `heal`), so a second `heal` finds nothing to do.

use std::path::Path;

use super::effect::{Confirmation, Effect};
use super::journal::{self, Cleanup, FaultJournal, JournalEntry};
use super::{ChaosError, RECOVERY_TIMEOUT};
use crate::cluster::storage;
use crate::cluster::{Cluster, ClusterRef, ControlOp};

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
/// on disk, then makes `live` (the `cluster up` cluster, if one runs) whole.
pub async fn heal(journal_path: &Path, live: Option<&Cluster>) -> Result<HealReport, ChaosError> {
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
        let (how, cluster_gone) = replay(&owner, &revert, &mut problems).await;
        // Mounts of a live supervisor's node were handled by its drain-storage revert.
        if cluster_gone {
            clean(&cleanup, &mut report.lines, &mut problems);
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
    if let Some(live) = live {
        report.whole = Some(make_whole(live, &mut report.failures).await);
    }
    Ok(report)
}

/// Replays one fault's reverts on its cluster, if it still runs (a run's own docker project is
/// then removed, as the run would have). Says how, and whether the cluster was gone.
async fn replay(
    owner: &ClusterRef,
    revert: &[ControlOp],
    problems: &mut Vec<String>,
) -> (String, bool) {
    let cluster = match owner.reattach().await {
        Ok(cluster) => cluster,
        Err(why) => return (why, true),
    };
    for op in revert {
        if let Err(err) = cluster.apply(op).await {
            problems.push(err.to_string());
        }
    }
    let mut how = format!("replayed {} {}", describe_ops(revert), cluster.channel());
    if owner.owned_by_run() {
        match cluster.remove().await {
            Ok(()) => how.push_str("; removed the run's compose project"),
            Err(err) => problems.push(err.to_string()),
        }
    }
    (how, false)
}

/// Removes what a fault left on disk whose cluster is gone (a tmpfs over a node's store).
fn clean(cleanup: &[Cleanup], lines: &mut Vec<String>, problems: &mut Vec<String>) {
    for item in cleanup {
        match item {
            Cleanup::Mount { store } => match storage::uncover(store, false) {
                Ok(()) => lines.push(format!("  removed the tmpfs over {}", store.display())),
                Err(err) => problems.push(format!(
                    "cannot remove the tmpfs over {}: {err}",
                    store.display()
                )),
            },
        }
    }
}

/// Asks a live cluster to make itself whole (what a torn journal missed) and waits for it.
async fn make_whole(cluster: &Cluster, failures: &mut Vec<String>) -> Confirmation {
    if let Err(err) = cluster.apply(&ControlOp::MakeWhole).await {
        failures.push(err.to_string());
    }
    Effect::Whole
        .wait(&cluster.endpoints(), RECOVERY_TIMEOUT)
        .await
}

fn describe_ops(ops: &[ControlOp]) -> String {
    ops.iter()
        .map(ControlOp::describe)
        .collect::<Vec<_>>()
        .join(", ")
}
