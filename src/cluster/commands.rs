//! `aivo-load cluster up|status|down` (and the hidden `serve`): flags checked here, the work done by
//! `state.rs` (background cluster) and `monitor.rs` (status).
//!
//! Exit codes: `up` and `down` 0 on success; `status` 0 when every node is healthy with full routes
//! and a meta leader exists, 1 when the cluster answers but is degraded, 3 when nothing answers or no
//! local cluster runs. Bad flag combinations are usage errors (2).

use crate::exit::{AppError, ExitStatus};

use super::backend::{BackendKind, ClusterProfile};
use super::external::ExternalCluster;
use super::handle::{Cluster, Supervised};
use super::local::CLUSTER_NAME;
use super::state::{self, ClusterState, StateDir};

/// One `cluster` verb, as the command line asked for it.
#[derive(Debug)]
pub enum ClusterRequest {
    Up(ClusterTarget),
    Status(ClusterTarget),
    Down(ClusterTarget),
    BuildImage,
    /// The hidden `cluster serve` (the supervisor of `cluster up`).
    Serve(ClusterTarget),
}

/// Which cluster a verb is about.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    pub backend: BackendKind,
    /// `--monitor`: monitoring URLs of an external cluster, comma-separated.
    pub monitor: Option<String>,
    pub state: StateDir,
    /// `--profile` (`up` and `serve` of the local backend).
    pub profile: ClusterProfile,
}

/// Runs one `cluster` subcommand.
pub async fn execute(cmd: ClusterRequest) -> Result<ExitStatus, AppError> {
    match cmd {
        ClusterRequest::Up(args) if args.backend == BackendKind::Docker => {
            no_monitor(&args)?;
            super::docker::commands::up(&args.state, args.profile).await
        }
        ClusterRequest::Down(args) if args.backend == BackendKind::Docker => {
            no_monitor(&args)?;
            super::docker::commands::down(&args.state).await
        }
        ClusterRequest::BuildImage => super::docker::commands::build_image().await,
        ClusterRequest::Up(args) => {
            local_only(&args, "up")?;
            let outcome = state::up(&args.state, args.profile).await?;
            if outcome.already_running {
                println!(
                    "A local cluster is already running (supervisor pid {}, started {}).",
                    outcome.state.supervisor_pid, outcome.state.started_at
                );
            } else {
                println!(
                    "Local NATS cluster \"{CLUSTER_NAME}\" is up ({} nodes, nats-server {}, supervisor pid {}).",
                    outcome.state.endpoints.nodes.len(),
                    outcome.state.nats_server_version,
                    outcome.state.supervisor_pid
                );
            }
            print!("{}", describe(&outcome.state, &args));
            Ok(ExitStatus::Success)
        }
        ClusterRequest::Status(args) => status(&args).await,
        ClusterRequest::Down(args) => {
            local_only(&args, "down")?;
            let outcome = state::stop(&args.state).await?;
            match (&outcome.state, outcome.stopped) {
                (Some(state), true) => println!(
                    "Stopped the local cluster (supervisor pid {}{}) and removed {}.",
                    state.supervisor_pid,
                    if outcome.killed {
                        ", killed after ignoring SIGTERM"
                    } else {
                        ""
                    },
                    state.dir.display()
                ),
                _ => println!("No local cluster is running; nothing to stop."),
            }
            Ok(ExitStatus::Success)
        }
        ClusterRequest::Serve(args) => {
            local_only(&args, "serve")?;
            state::serve(&args.state, args.profile).await?;
            Ok(ExitStatus::Success)
        }
    }
}

fn no_monitor(args: &ClusterTarget) -> Result<(), AppError> {
    if args.monitor.is_some() {
        return Err(AppError::usage(anyhow::anyhow!(
            "--monitor applies to --backend external only"
        )));
    }
    Ok(())
}

/// `up`, `down` and `serve` manage the embedded cluster; an external one belongs to someone else.
fn local_only(args: &ClusterTarget, verb: &str) -> Result<(), AppError> {
    if args.backend != BackendKind::Local {
        return Err(AppError::usage(anyhow::anyhow!(
            "`cluster {verb}` manages the local backend only; an external cluster is started and \
             stopped by whoever runs it"
        )));
    }
    if args.monitor.is_some() {
        return Err(AppError::usage(anyhow::anyhow!(
            "--monitor applies to --backend external only"
        )));
    }
    Ok(())
}

/// Node URLs and how to use them, after `up`.
fn describe(state: &ClusterState, args: &ClusterTarget) -> String {
    let mut out = String::new();
    let width = state
        .endpoints
        .nodes
        .iter()
        .map(|n| n.client_url.len())
        .max()
        .unwrap_or(0);
    for node in &state.endpoints.nodes {
        out.push_str(&format!(
            "  {}  {:<width$}  monitor {}\n",
            node.name, node.client_url, node.monitor_url
        ));
    }
    let state_flag = args
        .state
        .explicit
        .as_ref()
        .map(|d| format!(" --state-dir {}", d.display()))
        .unwrap_or_default();
    out.push_str(&format!("Data and logs: {}\n", state.dir.display()));
    out.push_str("Use it:\n");
    out.push_str(&format!(
        "  export NATS_URL={}\n",
        state.endpoints.server_list()
    ));
    if let Some(production) = super::profile_usage::production_usage(&state.endpoints) {
        out.push_str(&production);
    }
    out.push_str(&format!("  aivo-load cluster status{state_flag}\n"));
    out.push_str(&format!("  aivo-load cluster down{state_flag}\n"));
    out
}

async fn status(args: &ClusterTarget) -> Result<ExitStatus, AppError> {
    let (title, cluster) = match args.backend {
        BackendKind::Docker => {
            no_monitor(args)?;
            return super::docker::commands::status(&args.state).await;
        }
        BackendKind::External => {
            let urls = monitor_urls(args.monitor.as_deref())?;
            let cluster = ExternalCluster::by_monitors(&urls).await;
            (
                format!(
                    "External cluster ({} nodes)",
                    cluster.endpoints().nodes.len()
                ),
                Cluster::External(cluster),
            )
        }
        BackendKind::Local => {
            if args.monitor.is_some() {
                return Err(AppError::usage(anyhow::anyhow!(
                    "--monitor applies to --backend external only"
                )));
            }
            let paths = state::paths(&args.state)?;
            let Some(state) = state::load(&args.state) else {
                return Err(AppError::environment(anyhow::anyhow!(
                    "no local cluster is running (state dir {}); start one with `aivo-load cluster up`, \
                     or pass --backend external --monitor URLS",
                    paths.dir.display()
                )));
            };
            (
                format!(
                    "Local cluster \"{CLUSTER_NAME}\" (nats-server {}, supervisor pid {}, started {})",
                    state.nats_server_version, state.supervisor_pid, state.started_at
                ),
                Cluster::Supervised(Supervised::from_state(&paths, state)),
            )
        }
    };
    let status = cluster.status().await;
    println!("{title}");
    print!("{}", status.render_table());
    for line in super::stuck::status_lines(&cluster).await {
        println!("{line}");
    }
    if status.all_unreachable() {
        return Err(AppError::environment(anyhow::anyhow!(
            "no node answered on its monitoring port"
        )));
    }
    Ok(if status.is_healthy() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// Splits `--monitor http://a:8222,http://b:8222`.
fn monitor_urls(flag: Option<&str>) -> Result<Vec<String>, AppError> {
    let flag = flag.ok_or_else(|| {
        AppError::usage(anyhow::anyhow!(
            "--backend external needs --monitor http://HOST:PORT[,...] (the nodes' monitoring URLs)"
        ))
    })?;
    let urls: Vec<String> = flag
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(AppError::usage(anyhow::anyhow!("--monitor names no URL")));
    }
    if let Some(bad) = urls.iter().find(|u| !u.starts_with("http://")) {
        return Err(AppError::usage(anyhow::anyhow!(
            "--monitor URL {bad:?} must look like http://HOST:PORT"
        )));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_flag_is_checked() {
        assert!(monitor_urls(None).is_err());
        assert!(monitor_urls(Some(" , ")).is_err());
        let bad = monitor_urls(Some("localhost:8222")).expect_err("no scheme");
        assert_eq!(bad.exit_status(), ExitStatus::Usage);
        assert_eq!(
            monitor_urls(Some("http://a:1, http://b:2")).expect("ok"),
            ["http://a:1", "http://b:2"]
        );
    }
}
