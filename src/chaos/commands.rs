//! `aivo-load chaos FAULT` and `aivo-load heal`: faults by hand against the `cluster up` cluster,
//! through its supervisor, journaled in the state dir (`faults.jsonl`) like a run's.
//!
//! Exit codes: `chaos` 0 when the effect was confirmed (and, with `--for`, the cluster came back
//! whole), 1 when not, 2 for usage errors and any fault against `--backend external`, 3 when no
//! local cluster runs, 130 when interrupted (after reverting). `heal` 0 when everything was reverted
//! and any live cluster is whole, 1 otherwise.

use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;

use super::engine::{ChaosCluster, ChaosEngine, FaultEvent};
use super::guard::{self, RevertGuard};
use super::heal::{self, LiveSupervisor};
use super::schedule::fault_from;
use super::Target;
use crate::cli::{BackendKind, ChaosArgs, HealArgs, StateArgs};
use crate::cluster::control::ControlOp;
use crate::cluster::docker::{commands as docker_commands, DockerCluster};
use crate::cluster::state::{self, ClusterState};
use crate::exit::{AppError, ExitStatus};

fn live_cluster(args: &StateArgs) -> Result<(ClusterState, std::path::PathBuf), AppError> {
    let paths = state::paths(args)?;
    let Some(cluster) = state::load(args) else {
        return Err(AppError::environment(anyhow!(
            "no local cluster is running (state dir {}); start one with `aivo-load cluster up`",
            paths.dir.display()
        )));
    };
    let socket = cluster
        .control_socket
        .clone()
        .unwrap_or_else(|| paths.control_socket());
    Ok((cluster, socket))
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
pub async fn chaos(args: ChaosArgs) -> Result<ExitStatus, AppError> {
    let fault = fault_from(
        &args.fault,
        args.latency.as_deref(),
        args.bandwidth.as_deref(),
        args.mode.as_deref(),
    )
    .map_err(|e| AppError::usage(anyhow!(e)))?;
    let target: Target = args
        .target
        .parse()
        .map_err(|e: String| AppError::usage(anyhow!(e)))?;
    guard::refuse_external(args.backend, &[&fault])?;
    let (chaos_cluster, journal_path) = if args.backend == BackendKind::Docker {
        let dir = docker_commands::state_dir(&args.state)?;
        let cluster = DockerCluster::attach(&dir).await?;
        (
            ChaosCluster::Docker(Arc::new(cluster)),
            docker_commands::fault_journal(&args.state)?,
        )
    } else {
        let (cluster, socket) = live_cluster(&args.state)?;
        let paths = state::paths(&args.state)?;
        (
            ChaosCluster::Supervisor {
                state_dir: paths.dir.clone(),
                socket,
                endpoints: cluster.endpoints.clone(),
            },
            paths.fault_journal(),
        )
    };
    let engine = Arc::new(ChaosEngine::new(
        chaos_cluster,
        &journal_path,
        Instant::now(),
        args.seed,
    )?);
    let Some(hold) = args.hold else {
        let event = engine.inject(&fault, &target).await?;
        print_event(&event);
        println!(
            "The fault stays until `aivo-load heal{}` (journal {}).",
            if args.backend == BackendKind::Docker {
                " --backend docker"
            } else {
                ""
            },
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
pub async fn heal(args: HealArgs) -> Result<ExitStatus, AppError> {
    let docker = args.backend == BackendKind::Docker;
    let journal = match &args.run_dir {
        Some(dir) if dir.is_file() => dir.clone(),
        Some(dir) => dir.join("faults.jsonl"),
        None if docker => docker_commands::fault_journal(&args.state)?,
        None => state::paths(&args.state)?.fault_journal(),
    };
    let live = live_cluster(&args.state)
        .ok()
        .filter(|_| !docker)
        .map(|(cluster, socket)| LiveSupervisor {
            socket,
            endpoints: cluster.endpoints,
        });
    let mut report = heal::heal(&journal, live.as_ref()).await?;
    // A docker run killed with SIGKILL leaves its compose project running (containers do not get
    // the death signal local nodes get): remove it, as the run would have.
    if let Some(run_dir) = args.run_dir.as_ref().filter(|d| d.is_dir()) {
        let cluster_dir = run_dir.join("cluster");
        if cluster_dir.join("docker-cluster.json").is_file() {
            if let Ok(cluster) = DockerCluster::attach(&cluster_dir).await {
                match cluster.shutdown().await {
                    Ok(()) => report.lines.push(format!(
                        "removed the run's compose project {} (left by a killed harness)",
                        cluster.spec().project
                    )),
                    Err(err) => report.failures.push(err.to_string()),
                }
            }
        }
    }
    if docker {
        // The `cluster up --backend docker` cluster, if it runs: made whole like a supervisor's.
        if let Ok(cluster) = DockerCluster::attach(&docker_commands::state_dir(&args.state)?).await
        {
            if let Err(err) = cluster.apply(&ControlOp::MakeWhole).await {
                report.failures.push(err.to_string());
            }
            report.whole = Some(
                super::Effect::Whole
                    .wait(cluster.endpoints(), super::RECOVERY_TIMEOUT)
                    .await,
            );
        }
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
