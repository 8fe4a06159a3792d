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
//!
//! A live cluster that is not whole afterwards is looked at for stuck replicas
//! ([`crate::cluster::stuck`]): a stream replica still behind its leader. With `--restart-stuck`
//! (`restart_stuck: Some(bound)`) a node whose replica is still behind `bound` after the reverts
//! is restarted (a [`ControlOp::Restart`], whatever the backend); if its replica is still behind
//! `bound` later, the stream's leader is restarted; then the cluster is confirmed whole, with
//! every replica caught up, again.

use std::path::Path;
use std::time::{Duration, Instant};

use super::effect::{Confirmation, Effect};
use super::journal::{self, Cleanup, FaultJournal, JournalEntry};
use super::{ChaosError, RECOVERY_TIMEOUT};
use crate::cluster::storage;
use crate::cluster::stuck::{self, StuckReplica};
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
    /// Replicas found behind their leader after the reverts (the `stuck-replica` finding).
    pub stuck: Vec<StuckReplica>,
    /// Nodes restarted because of them (`--restart-stuck`).
    pub restarted: Vec<String>,
}

/// Replays the reverts of every active fault in `journal_path` (newest first), cleans what they left
/// on disk, then makes `live` (the `cluster up` cluster, if one runs) whole; with `restart_stuck`,
/// restarts the nodes whose replicas are still behind that long after the reverts.
pub async fn heal(
    journal_path: &Path,
    live: Option<&Cluster>,
    restart_stuck: Option<Duration>,
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
        let reverted_at = Instant::now();
        let timeout = restart_stuck.map_or(RECOVERY_TIMEOUT, |bound| bound.min(RECOVERY_TIMEOUT));
        let whole = make_whole(live, timeout, &mut report.failures).await;
        if !whole.confirmed || restart_stuck.is_some() {
            // Without the remedy one look names them; with it, they get the whole bound.
            let bound = restart_stuck.unwrap_or(Duration::ZERO);
            report.stuck = stuck::watch(live, reverted_at, bound).await;
        }
        report.whole = Some(whole);
        if let Some(bound) = restart_stuck.filter(|_| !report.stuck.is_empty()) {
            restart_nodes_of(live, bound, &mut report).await;
        }
    }
    Ok(report)
}

/// `--restart-stuck`: restarts each node with a stuck replica and gives it the bound to catch up;
/// a replica still behind then has its stream's leader restarted (measured: the follower's restart
/// alone left it stuck, the leader keeps sending a catch-up without the snapshot the follower
/// expects, docs/stuck-replica.md). Then waits for a whole cluster with every replica caught up.
async fn restart_nodes_of(live: &Cluster, bound: Duration, report: &mut HealReport) {
    let followers: Vec<String> = report.stuck.iter().map(|s| s.node.clone()).collect();
    restart_each(live, followers, "a stuck replica", report).await;
    let mut still = settle(live, bound, report).await;
    if !still.is_empty() {
        let leaders: Vec<String> = still
            .iter()
            .map(|s| s.leader.clone())
            .filter(|l| !l.is_empty())
            .collect();
        restart_each(live, leaders, "the leader of a stuck replica", report).await;
        still = settle(live, RECOVERY_TIMEOUT, report).await;
    }
    if let Some(whole) = report
        .whole
        .as_mut()
        .filter(|w| w.confirmed && !still.is_empty())
    {
        whole.confirmed = false;
        whole.detail = still
            .iter()
            .map(StuckReplica::describe)
            .collect::<Vec<_>>()
            .join("; ");
    }
}

/// Restarts each named node once (in order, duplicates skipped) through the cluster's backend.
async fn restart_each(live: &Cluster, mut nodes: Vec<String>, why: &str, report: &mut HealReport) {
    nodes.sort();
    nodes.dedup();
    for node in nodes {
        match live.apply(&ControlOp::Restart { node: node.clone() }).await {
            Ok(()) => {
                report.lines.push(format!(
                    "restarted {node} ({why}, --restart-stuck) {}",
                    live.channel()
                ));
                report.restarted.push(node);
            }
            Err(err) => report
                .failures
                .push(format!("cannot restart {node}: {err}")),
        }
    }
}

/// After restarts: waits up to `within` for a whole cluster, then up to `within` from the restart
/// for every replica to catch up; returns the replicas still behind.
async fn settle(live: &Cluster, within: Duration, report: &mut HealReport) -> Vec<StuckReplica> {
    let restarted_at = Instant::now();
    report.whole = Some(make_whole(live, within, &mut report.failures).await);
    stuck::watch(live, restarted_at, within).await
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
async fn make_whole(
    cluster: &Cluster,
    timeout: Duration,
    failures: &mut Vec<String>,
) -> Confirmation {
    if let Err(err) = cluster.apply(&ControlOp::MakeWhole).await {
        failures.push(err.to_string());
    }
    Effect::Whole.wait(&cluster.endpoints(), timeout).await
}

fn describe_ops(ops: &[ControlOp]) -> String {
    ops.iter()
        .map(ControlOp::describe)
        .collect::<Vec<_>>()
        .join(", ")
}
