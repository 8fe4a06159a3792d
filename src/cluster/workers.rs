//! Where a segmented run's workers run (`run --workers N`): the backend decides, as it decides
//! where the nodes run. [`Cluster::launch_workers`] starts N workers of this binary, each with
//! the coordinator's arguments plus `--server` naming the nodes as the worker reaches them:
//!
//! - a local (or supervised, or external) cluster: N child processes on this machine, on the
//!   nodes' loopback URLs, tied to the coordinator (`PR_SET_PDEATHSIG`);
//! - a docker cluster: N containers of the worker image (`docker/harness_image.rs`) on the
//!   project's client network, on the nodes' in-network URLs (`nats://nats1:4222`), the run dir
//!   bind-mounted at its own path so each writes its partial report where the merge reads it
//!   (`docker/container.rs`).
//!
//! [`WorkerFleet::wait`] waits for all of them, passes Ctrl-C / SIGTERM on as SIGTERM (each worker
//! stops its publishers and still writes its partial report), and gives up on a worker that has
//! not ended by the deadline (SIGKILL: it is then lost). A worker that dies is not retried: the
//! merge names its segment. Containers are removed when the fleet has ended, and by `Drop` on
//! every other path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::docker::container::{ContainerEnd, ContainerPlan, ProjectContainer};
use super::docker::{harness_image, DockerError};
use super::handle::{Cluster, ClusterError};
use crate::security::ClientAuth;

/// How often the containers' states are polled while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Lines of a container's log saved beside the run (`worker-I-of-N.log`).
const LOG_LINES: usize = 5000;

/// What every worker runs.
#[derive(Debug, Clone)]
pub struct WorkerLaunch {
    /// Each worker's arguments after the binary, without `--server` (in worker order).
    pub args: Vec<Vec<String>>,
    /// The run dir the workers write under (absolute): bind-mounted into containers.
    pub run_dir: PathBuf,
    /// A scenario file given by path (mounted read-only into containers); `None` for a catalog
    /// name.
    pub scenario_file: Option<PathBuf>,
    /// The credential files or dirs the workers' `args` name (absolute paths): bind-mounted
    /// read-only at those paths into containers.
    pub read_only: Vec<PathBuf>,
    /// A `--password`, handed over as `NATS_PASSWORD` in each worker's environment, never as an
    /// argument (the process list would show it).
    pub password: Option<String>,
}

/// The flags that tell a worker how to connect, and the files they name.
#[derive(Debug, Clone, Default)]
pub struct WorkerCredentials {
    pub args: Vec<String>,
    pub files: Vec<PathBuf>,
}

impl WorkerCredentials {
    /// For a cluster with the production profile in `profile_dir`: `--profile-dir DIR` (each
    /// role its own user); else the client options `auth` as flags (paths, never contents).
    pub fn of(profile_dir: &Option<PathBuf>, auth: &ClientAuth) -> Result<Self, ClusterError> {
        let absolute = |path: &Path| {
            std::path::absolute(path).map_err(|e| {
                ClusterError::Workers(format!("cannot resolve {}: {e}", path.display()))
            })
        };
        let utf8 = |path: &Path| {
            path.to_str().map(str::to_owned).ok_or_else(|| {
                ClusterError::Workers(format!(
                    "{} is not UTF-8 (it would be a worker's argument)",
                    path.display()
                ))
            })
        };
        if let Some(dir) = profile_dir {
            let dir = absolute(dir)?;
            return Ok(Self {
                args: vec!["--profile-dir".into(), utf8(&dir)?],
                files: vec![dir],
            });
        }
        let auth = auth
            .clone()
            .with_absolute_paths()
            .map_err(|e| ClusterError::Workers(format!("cannot resolve a credential file: {e}")))?;
        let args = auth
            .to_args()
            .iter()
            .map(|arg| utf8(Path::new(arg)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            args,
            files: auth.files().into_iter().map(Path::to_path_buf).collect(),
        })
    }
}

/// The running workers.
#[derive(Debug)]
pub enum WorkerFleet {
    Processes(Vec<Child>),
    Containers {
        containers: Vec<ProjectContainer>,
        run_dir: PathBuf,
    },
}

impl Cluster {
    /// What must be ready before the workers' common start is chosen: a docker cluster's worker
    /// image (built once per build of this binary; a debug build's 250 MB take seconds), nothing
    /// for processes.
    pub async fn prepare_workers(&self) -> Result<(), ClusterError> {
        if let Self::Docker(_) = self {
            let docker = super::docker::connect().await?;
            let exe =
                std::env::current_exe().map_err(DockerError::io("cannot find this binary"))?;
            harness_image::ensure(&docker, &exe).await?;
        }
        Ok(())
    }

    /// Starts the workers where this backend runs them (see the module header), after
    /// [`Cluster::prepare_workers`].
    pub async fn launch_workers(&self, launch: &WorkerLaunch) -> Result<WorkerFleet, ClusterError> {
        let count = launch.args.len();
        let Self::Docker(cluster) = self else {
            let urls = self.client_urls().join(",");
            let exe = std::env::current_exe().map_err(|e| {
                ClusterError::Workers(format!("cannot find this binary to start workers: {e}"))
            })?;
            let mut children = Vec::new();
            for (i, args) in launch.args.iter().enumerate() {
                let mut command = Command::new(&exe);
                command
                    .args(args)
                    .args(["--server", &urls])
                    // Each worker's summary is in its own dir; its progress stays on stderr.
                    .stdout(Stdio::null())
                    .env_remove("NATS_URL");
                if let Some(password) = &launch.password {
                    command.env("NATS_PASSWORD", password);
                }
                let child = crate::child::spawn_tied(command, libc::SIGTERM)
                    .await
                    .map_err(|e| {
                        ClusterError::Workers(format!("cannot start worker {}: {e}", i + 1))
                    })?;
                eprintln!(
                    "aivo-load: worker {}/{count} started (pid {})",
                    i + 1,
                    child.id()
                );
                children.push(child);
            }
            return Ok(WorkerFleet::Processes(children));
        };
        let spec = cluster.spec();
        let docker = super::docker::connect().await?;
        let urls = spec.in_network_client_urls().join(",");
        let mut binds = vec![format!(
            "{}:{}",
            launch.run_dir.display(),
            launch.run_dir.display()
        )];
        if let Some(file) = &launch.scenario_file {
            binds.push(format!("{}:{}:ro", file.display(), file.display()));
        }
        // The credential files the workers' flags name (absolute paths), each read-only there.
        for file in &launch.read_only {
            binds.push(format!("{}:{}:ro", file.display(), file.display()));
        }
        // SAFETY: geteuid(2) and getegid(2) have no preconditions and cannot fail.
        let user = unsafe { format!("{}:{}", libc::geteuid(), libc::getegid()) };
        // What the harness reads from its environment (AIVO_*) and its log filter go along.
        let mut env: Vec<String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AIVO_") || k == "RUST_LOG")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if let Some(password) = &launch.password {
            env.push(format!("NATS_PASSWORD={password}"));
        }
        let mut containers = Vec::new();
        for (i, args) in launch.args.iter().enumerate() {
            let mut args = args.clone();
            args.extend(["--server".to_string(), urls.clone()]);
            let plan = ContainerPlan {
                name: format!("{}-worker-{}", spec.project, i + 1),
                image: harness_image::HARNESS_IMAGE.to_string(),
                args,
                env: env.clone(),
                binds: binds.clone(),
                network: spec.client_network(),
                user: Some(user.clone()),
                role: "worker",
            };
            let container = ProjectContainer::start(&docker, &spec.project, plan).await?;
            eprintln!(
                "aivo-load: worker {}/{count} started (container {})",
                i + 1,
                container.name()
            );
            containers.push(container);
        }
        Ok(WorkerFleet::Containers {
            containers,
            run_dir: launch.run_dir.clone(),
        })
    }
}

impl WorkerFleet {
    /// Waits until every worker has ended (see the module header); each worker's exit code, `None`
    /// for one ended by a signal or given up on.
    pub async fn wait(self, cancel: &CancellationToken, deadline: Duration) -> Vec<Option<i32>> {
        match self {
            Self::Processes(children) => wait_processes(children, cancel, deadline).await,
            Self::Containers {
                containers,
                run_dir,
            } => wait_containers(containers, &run_dir, cancel, deadline).await,
        }
    }
}

async fn wait_processes(
    children: Vec<Child>,
    cancel: &CancellationToken,
    deadline: Duration,
) -> Vec<Option<i32>> {
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let count = pids.len();
    let waited = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|mut child| child.wait().ok().and_then(|s| s.code()))
            .collect::<Vec<_>>()
    });
    tokio::pin!(waited);
    let signal_all = |signal| {
        for pid in &pids {
            crate::child::signal(*pid, signal);
        }
    };
    let codes = tokio::select! {
        codes = &mut waited => codes,
        _ = cancel.cancelled() => {
            signal_all(libc::SIGTERM);
            waited.await
        }
        _ = tokio::time::sleep(deadline) => {
            eprintln!("aivo-load: workers still running after {deadline:?}: killed");
            signal_all(libc::SIGKILL);
            waited.await
        }
    };
    codes.unwrap_or_else(|_| vec![None; count])
}

async fn wait_containers(
    containers: Vec<ProjectContainer>,
    run_dir: &Path,
    cancel: &CancellationToken,
    deadline: Duration,
) -> Vec<Option<i32>> {
    let count = containers.len();
    let until = Instant::now() + deadline;
    let mut codes: Vec<Option<Option<i32>>> = vec![None; count];
    let mut asked_to_stop = false;
    while codes.iter().any(Option::is_none) {
        for (i, container) in containers.iter().enumerate() {
            if codes[i].is_some() {
                continue;
            }
            match container.end().await {
                ContainerEnd::Running => {}
                ContainerEnd::Exited(code) => codes[i] = Some(i32::try_from(code).ok()),
                ContainerEnd::Gone(reason) => {
                    eprintln!("aivo-load: worker {}/{count}: {reason}", i + 1);
                    codes[i] = Some(None);
                }
            }
        }
        if codes.iter().all(Option::is_some) {
            break;
        }
        if Instant::now() >= until {
            eprintln!("aivo-load: workers still running after {deadline:?}: killed");
            for (i, container) in containers.iter().enumerate() {
                if codes[i].is_none() {
                    container.signal("SIGKILL").await;
                    codes[i] = Some(None);
                }
            }
            break;
        }
        tokio::select! {
            _ = cancel.cancelled(), if !asked_to_stop => {
                asked_to_stop = true;
                for container in &containers {
                    container.signal("SIGTERM").await;
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    for (i, container) in containers.into_iter().enumerate() {
        let log = run_dir.join(format!("worker-{}-of-{count}.log", i + 1));
        if let Err(err) = std::fs::write(&log, container.log_tail(LOG_LINES).await) {
            eprintln!("aivo-load: cannot write {}: {err}", log.display());
        }
        if let Err(err) = container.remove().await {
            eprintln!("aivo-load: {err}");
        }
    }
    codes
        .into_iter()
        .map(|code| {
            // A container killed by a signal exits 128 + the signal's number.
            code.flatten().filter(|c| *c < 128)
        })
        .collect()
}
