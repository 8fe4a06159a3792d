//! `aivo-load chaos FAULT` and `aivo-load heal`: faults by hand against the `cluster up` cluster,
//! through its supervisor, journaled in the state dir (`faults.jsonl`) like a run's.
//!
//! Exit codes: `chaos` 0 when the effect was confirmed (and, with `--for`, the cluster came back
//! whole), 1 when not, 2 for usage errors and any fault against `--backend external`, 3 when no
//! local cluster runs, 130 when interrupted (after reverting). `heal` 0 when everything was reverted
//! and any live cluster is whole, 1 otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::engine::{ChaosEngine, FaultEvent};
use super::guard::{self, RevertGuard};
use super::heal;
use super::schedule::{fault_from, FaultParams};
use super::Target;
use crate::cluster::{BackendKind, Cluster, ClusterRef, StateDir};
use crate::exit::{AppError, ExitStatus};

/// `aivo-load chaos FAULT`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct ChaosRequest {
    /// The fault's name and parameters, checked by [`fault_from`].
    pub fault: String,
    pub params: FaultParams,
    pub target: String,
    /// Revert after this long; `None` leaves the fault to `heal`.
    pub hold: Option<Duration>,
    pub seed: u64,
    /// Which `cluster up` cluster.
    pub backend: BackendKind,
    pub state: StateDir,
}

/// `aivo-load heal [RUN_DIR]`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct HealRequest {
    /// A run's report dir (or its journal file); `None` for the `cluster up` cluster's journal.
    pub run_dir: Option<PathBuf>,
    /// Which `cluster up` cluster to make whole afterwards.
    pub backend: BackendKind,
    pub state: StateDir,
    /// `--restart-stuck --stuck-after D`: restart a node whose replica is still behind after D.
    pub restart_stuck: Option<std::time::Duration>,
}

fn print_event(event: &FaultEvent) {
    let verdict = match (&event.error, event.confirmed) {
        (Some(err), _) => format!("FAILED: {err}"),
        (None, true) => format!(
            "confirmed after {:.2}s: {}",
            event.confirmed_s.unwrap_or(event.requested_s) - event.requested_s,
            event.detail
        ),
        (None, false) => format!("NOT confirmed: {}", event.detail),
    };
    println!(
        "{:?} {} on {} ({}): {verdict}",
        event.phase, event.fault, event.node, event.target
    );
    if let Some(note) = &event.note {
        println!("  {note}");
    }
}

/// `aivo-load chaos`.
pub async fn chaos(args: ChaosRequest) -> Result<ExitStatus, AppError> {
    let fault = fault_from(&args.fault, &args.params).map_err(|e| AppError::usage(anyhow!(e)))?;
    let target: Target = args
        .target
        .parse()
        .map_err(|e: String| AppError::usage(anyhow!(e)))?;
    guard::refuse_external(args.backend, &[&fault])?;
    let cluster = Cluster::kept(args.backend, &args.state).await?;
    let journal_path = Cluster::kept_journal(args.backend, &args.state)?;
    let engine = Arc::new(ChaosEngine::new(
        cluster,
        &journal_path,
        Instant::now(),
        args.seed,
    )?);
    let Some(hold) = args.hold else {
        let event = engine.inject(&fault, &target).await?;
        print_event(&event);
        println!(
            "The fault stays until `aivo-load heal{}` (journal {}).",
            args.backend.flag(),
            journal_path.display()
        );
        return Ok(if event.confirmed && event.error.is_none() {
            ExitStatus::Success
        } else {
            ExitStatus::Failed
        });
    };
    let guard = RevertGuard::new(engine.clone());
    let applied = engine.inject(&fault, &target).await?;
    print_event(&applied);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AppError::environment(anyhow!("cannot watch SIGTERM: {e}")))?;
    let interrupted = tokio::select! {
        _ = tokio::time::sleep(hold) => false,
        _ = tokio::signal::ctrl_c() => true,
        _ = term.recv() => true,
    };
    let by = if interrupted {
        "interrupted"
    } else {
        "chaos --for"
    };
    let reverted = guard.finish(by).await;
    for event in &reverted {
        print_event(event);
    }
    let whole = reverted.iter().all(|e| e.confirmed && e.error.is_none());
    Ok(if interrupted {
        ExitStatus::Interrupted
    } else if applied.confirmed && whole {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// `aivo-load heal`.
pub async fn heal(args: HealRequest) -> Result<ExitStatus, AppError> {
    let journal = match &args.run_dir {
        Some(dir) if dir.is_file() => dir.clone(),
        Some(dir) => dir.join("faults.jsonl"),
        None => Cluster::kept_journal(args.backend, &args.state)?,
    };
    let live = Cluster::kept(args.backend, &args.state).await.ok();
    let mut report = heal::heal(&journal, live.as_ref(), args.restart_stuck).await?;
    // A run killed with SIGKILL may leave its own cluster behind (containers do not get the death
    // signal local nodes get): remove it, as the run would have. Its `cluster/owner.json` says
    // which backend owns it.
    if let Some(run_dir) = args.run_dir.as_ref().filter(|d| d.is_dir()) {
        remove_orphan(&run_dir.join("cluster"), &mut report).await;
    }
    if report.active == 0 {
        println!("No active fault in {}.", journal.display());
    } else {
        println!(
            "Reverted {} active fault(s) from {}:",
            report.active,
            journal.display()
        );
    }
    for line in &report.lines {
        println!("  {line}");
    }
    for failure in &report.failures {
        println!("  FAILED: {failure}");
    }
    for stuck in &report.stuck {
        println!("  {}", stuck.describe());
    }
    if !report.stuck.is_empty() && report.restarted.is_empty() && args.restart_stuck.is_none() {
        println!(
            "  (`aivo-load heal --restart-stuck` restarts a node whose replica stays behind; \
             docs/stuck-replica.md)"
        );
    }
    match &report.whole {
        Some(whole) if whole.confirmed => println!(
            "Cluster whole after {:.1}s: {}",
            whole.after.as_secs_f64(),
            whole.detail
        ),
        Some(whole) => println!("Cluster NOT whole: {}", whole.detail),
        None => println!("No `cluster up` cluster runs; nothing else to make whole."),
    }
    let whole = report.whole.as_ref().is_none_or(|w| w.confirmed);
    Ok(if report.failures.is_empty() && whole {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// Removes a killed run's own cluster if it outlived the run (a compose project).
async fn remove_orphan(cluster_dir: &std::path::Path, report: &mut heal::HealReport) {
    let Some(owner) = ClusterRef::read(cluster_dir).filter(ClusterRef::owned_by_run) else {
        return;
    };
    let Ok(cluster) = owner.reattach().await else {
        return;
    };
    let name = cluster.name();
    match cluster.remove().await {
        Ok(()) => report.lines.push(format!(
            "removed the run's {name} (left by a killed harness)"
        )),
        Err(err) => report.failures.push(err.to_string()),
    }
}
