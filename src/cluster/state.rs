//! A local cluster that outlives the command that started it (`cluster up`, `run --keep-cluster`).
//!
//! The route proxies live inside the process that owns the cluster, so a background cluster needs a
//! background owner: `cluster up` starts a detached supervisor (the hidden `cluster serve`, in its own
//! session, stdio to `supervisor.log`) that runs [`LocalCluster`], writes the state file and waits for
//! SIGTERM/SIGINT. The supervisor carries no death signal tied to `up` (it must outlive it), but its
//! `nats-server` children die with it.
//!
//! Layout of the state dir (`--state-dir`, `AIVO_STATE_DIR`, `$XDG_STATE_HOME/aivo-load`,
//! `~/.local/state/aivo-load`):
//!
//! ```text
//! cluster.json      the ClusterState of the running supervisor (written last, removed on stop)
//! supervisor.lock   flock held by the running supervisor: one cluster per state dir
//! supervisor.log    the supervisor's output
//! control.sock      the supervisor's control socket (faults and heal go through it, `control.rs`)
//! faults.jsonl      the fault journal of `aivo-load chaos` commands against this cluster
//! cluster/          node configs, logs and JetStream stores (removed by `cluster down`)
//! ```

use std::fs::{self, File};
use std::io;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backend::ClusterProfile;
use super::binary::{self, BinaryError, NATS_SERVER_ENV};
use super::endpoints::ClusterEndpoints;
use super::local::{LocalCluster, LocalClusterConfig, LocalError};
use super::node::log_tail;
use crate::exit::AppError;

/// Where commands go when given no `--server` and no local cluster runs: the seed's first node.
pub const SEED_SERVER: &str = "nats://127.0.0.1:4222";

/// Overrides the binary `cluster up` starts as supervisor (defaults to the running executable; tests
/// and embedders whose executable is not `aivo-load` set it).
pub const SUPERVISOR_BIN_ENV: &str = "AIVO_LOAD_BIN";

/// How long `up` waits for the supervisor to report a healthy cluster (startup itself gives up at 20 s).
pub const UP_TIMEOUT: Duration = Duration::from_secs(25);

/// How long `down` waits for the supervisor to stop on SIGTERM before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: u32 = 1;

/// The state file: everything needed to find, use and stop a background cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Version of this file's layout.
    pub schema: u32,
    pub endpoints: ClusterEndpoints,
    /// The `cluster serve` process owning the nodes and proxies.
    pub supervisor_pid: u32,
    /// The cluster dir (node configs, logs, stores).
    pub dir: PathBuf,
    pub nats_server: PathBuf,
    pub nats_server_version: String,
    /// Pids of the `nats-server` processes, by node name.
    pub nodes: Vec<NodeProcess>,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The supervisor's control socket (absent in state files of older supervisors).
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
}

/// One node process of a background cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProcess {
    pub name: String,
    pub pid: Option<u32>,
}

/// Errors of the background cluster.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no state dir: pass --state-dir or set AIVO_STATE_DIR (neither XDG_STATE_HOME nor HOME is set)")]
    NoStateDir,
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(
        "the cluster supervisor exited ({status}) before the cluster came up; last lines of {}:\n{tail}",
        log.display()
    )]
    SupervisorExited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "the cluster did not come up within {timeout:?}; last lines of {}:\n{tail}",
        log.display()
    )]
    SupervisorTimeout {
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "a local cluster with the {running} profile already runs; `aivo-load cluster down` it \
         first to start one with the {wanted} profile"
    )]
    ProfileMismatch {
        running: &'static str,
        wanted: &'static str,
    },
    #[error("another cluster supervisor already owns {}", dir.display())]
    AlreadyServing { dir: PathBuf },
}

impl StateError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// Every failure here is the environment's (binary, ports, processes, files).
impl From<StateError> for AppError {
    fn from(error: StateError) -> Self {
        AppError::environment(error)
    }
}

/// The state dir as the command line gave it (`--state-dir`); resolved by [`paths`] only when a
/// command needs it, so commands that never touch it work without HOME.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDir {
    /// `--state-dir`; `None` falls back to `AIVO_STATE_DIR`, `$XDG_STATE_HOME`, `~/.local/state`.
    pub explicit: Option<PathBuf>,
}

/// The files of one state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    pub dir: PathBuf,
}

impl StatePaths {
    /// `cluster.json`.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }
    /// `cluster/`, the local cluster's run dir.
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.join("cluster")
    }
    /// `supervisor.log`.
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
    /// `supervisor.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }
    /// `control.sock`.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    /// `docker/`, the dir of the `cluster up --backend docker` cluster (its compose files, stores,
    /// spec and fault journal).
    pub fn docker_dir(&self) -> PathBuf {
        self.dir.join("docker")
    }
}

/// Resolves the state dir: `--state-dir` / `AIVO_STATE_DIR`, else `$XDG_STATE_HOME/aivo-load`, else
/// `~/.local/state/aivo-load`. Relative paths are made absolute (the supervisor records them).
pub fn paths(state: &StateDir) -> Result<StatePaths, StateError> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = state
        .explicit
        .clone()
        .or_else(|| non_empty("AIVO_STATE_DIR").map(PathBuf::from))
        .or_else(|| non_empty("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("aivo-load")))
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".local/state/aivo-load")))
        .ok_or(StateError::NoStateDir)?;
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(StateError::io("cannot read the current directory"))?
            .join(dir)
    };
    Ok(StatePaths { dir })
}

/// The state of the running background cluster, if one runs (a state file whose supervisor is gone
/// counts as none).
pub fn load(state: &StateDir) -> Option<ClusterState> {
    let paths = paths(state).ok()?;
    read_state(&paths).filter(|s| supervisor_alive(s.supervisor_pid))
}

/// The server list commands use when given no `--server`: the local cluster from `cluster up` if one
/// runs, else the seed's `nats://127.0.0.1:4222`.
pub fn default_server(state: &StateDir) -> String {
    load(state)
        .map(|s| s.endpoints.server_list())
        .unwrap_or_else(|| SEED_SERVER.to_string())
}

/// What [`up`] found or did.
#[derive(Debug, Clone)]
pub struct UpOutcome {
    pub state: ClusterState,
    /// True if a cluster was already running and nothing was started.
    pub already_running: bool,
}

/// Starts a background cluster (as `cluster up` does) and returns its state once it is healthy; if
/// one already runs for this state dir, returns that one.
pub async fn spawn_background(
    state: &StateDir,
    profile: ClusterProfile,
) -> Result<ClusterState, StateError> {
    up(state, profile).await.map(|outcome| outcome.state)
}

/// `cluster up`: see [`spawn_background`].
pub async fn up(state: &StateDir, profile: ClusterProfile) -> Result<UpOutcome, StateError> {
    let paths = paths(state)?;
    if let Some(state) = read_state(&paths).filter(|s| supervisor_alive(s.supervisor_pid)) {
        let running = if state.endpoints.security.is_some() {
            ClusterProfile::Production
        } else {
            ClusterProfile::Open
        };
        if running != profile {
            return Err(StateError::ProfileMismatch {
                running: running.name(),
                wanted: profile.name(),
            });
        }
        return Ok(UpOutcome {
            state,
            already_running: true,
        });
    }
    // Fail here, with the install hint, rather than in the supervisor's log.
    let binary = binary::probe(None).await?;
    fs::create_dir_all(&paths.dir).map_err(StateError::io(format!(
        "cannot create state dir {}",
        paths.dir.display()
    )))?;
    let _ = fs::remove_file(paths.state_file());
    let log_path = paths.supervisor_log();
    let log = File::create(&log_path).map_err(StateError::io(format!(
        "cannot create {}",
        log_path.display()
    )))?;
    let log_err = log.try_clone().map_err(StateError::io(format!(
        "cannot open {}",
        log_path.display()
    )))?;
    let exe = match std::env::var_os(SUPERVISOR_BIN_ENV).filter(|v| !v.is_empty()) {
        Some(exe) => PathBuf::from(exe),
        None => std::env::current_exe()
            .map_err(StateError::io("cannot find the aivo-load executable"))?,
    };
    let mut command = Command::new(&exe);
    command
        .args([
            "-v",
            "cluster",
            "serve",
            "--profile",
            profile.name(),
            "--state-dir",
        ])
        .arg(&paths.dir)
        .env(NATS_SERVER_ENV, &binary.path)
        // The log is a file: no terminal colour codes in it.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    // SAFETY: setsid(2) is async-signal-safe. A new session detaches the supervisor from the
    // terminal (no SIGINT/SIGHUP from it) and from `up`'s process group.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(StateError::io(format!(
        "cannot start the cluster supervisor {}",
        exe.display()
    )))?;
    let pid = child.id();
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            return Err(StateError::SupervisorExited {
                status: status.to_string(),
                tail: log_tail(&log_path, 20),
                log: log_path,
            });
        }
        if let Some(state) = read_state(&paths).filter(|s| s.supervisor_pid == pid) {
            // Reap the supervisor whenever it ends, should this process live that long.
            std::thread::spawn(move || child.wait());
            return Ok(UpOutcome {
                state,
                already_running: false,
            });
        }
        if Instant::now() >= deadline {
            // The supervisor's nodes die with it (death signal).
            let _ = child.kill();
            let _ = child.wait();
            return Err(StateError::SupervisorTimeout {
                timeout: UP_TIMEOUT,
                tail: log_tail(&log_path, 20),
                log: log_path,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The hidden `cluster serve`: owns a local cluster until SIGTERM/SIGINT, publishing its state file
/// meanwhile.
pub async fn serve(state: &StateDir, profile: ClusterProfile) -> Result<(), StateError> {
    use tokio::signal::unix::{signal, SignalKind};
    let paths = paths(state)?;
    fs::create_dir_all(&paths.dir).map_err(StateError::io(format!(
        "cannot create state dir {}",
        paths.dir.display()
    )))?;
    let _lock = SupervisorLock::acquire(&paths)?;
    let _ = fs::remove_file(paths.state_file());
    // Each cluster starts from empty stores, like the docker-compose seed after `down -v`.
    match fs::remove_dir_all(paths.cluster_dir()) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(StateError::Io {
                context: format!("cannot clear {}", paths.cluster_dir().display()),
                source: err,
            })
        }
        _ => {}
    }
    let mut terminate =
        signal(SignalKind::terminate()).map_err(StateError::io("cannot watch SIGTERM"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(StateError::io("cannot watch SIGINT"))?;
    let config = LocalClusterConfig::new(paths.cluster_dir()).with_profile(profile);
    let cluster = tokio::select! {
        started = LocalCluster::start(config) => started?,
        _ = terminate.recv() => return Ok(()),
        _ = interrupt.recv() => return Ok(()),
    };
    let cluster = std::sync::Arc::new(cluster);
    let state = state_of(&cluster, &paths);
    write_state(&paths, &state)?;
    let control_stop = tokio_util::sync::CancellationToken::new();
    let control = {
        let paths = paths.clone();
        tokio::spawn(super::control::serve(
            paths.control_socket(),
            cluster.clone(),
            control_stop.clone(),
            move |cluster| {
                // New pids after a restart: `cluster down` must find the live nodes.
                if let Err(err) = write_state(&paths, &state_of(cluster, &paths)) {
                    tracing::warn!("cannot update the state file: {err}");
                }
            },
        ))
    };
    println!(
        "supervisor {}: cluster up ({}), waiting for SIGTERM",
        state.supervisor_pid,
        state.endpoints.server_list()
    );
    tokio::select! {
        _ = terminate.recv() => println!("SIGTERM: stopping the cluster"),
        _ = interrupt.recv() => println!("SIGINT: stopping the cluster"),
    }
    control_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), control).await;
    match std::sync::Arc::try_unwrap(cluster) {
        Ok(cluster) => cluster.shutdown().await,
        // A control request still holds it: dropping the last handle kills the nodes.
        Err(cluster) => drop(cluster),
    }
    let _ = fs::remove_file(paths.state_file());
    let _ = fs::remove_file(paths.control_socket());
    println!("cluster stopped");
    Ok(())
}

fn state_of(cluster: &LocalCluster, paths: &StatePaths) -> ClusterState {
    ClusterState {
        schema: SCHEMA,
        endpoints: cluster.endpoints().clone(),
        supervisor_pid: std::process::id(),
        dir: cluster.dir().to_path_buf(),
        nats_server: cluster.nats_server_path().to_path_buf(),
        nats_server_version: cluster.nats_server_version().to_string(),
        nodes: cluster
            .node_states()
            .into_iter()
            .map(|n| NodeProcess {
                name: n.name,
                pid: n.pid,
            })
            .collect(),
        started_at: STARTED_AT.get_or_init(now_rfc3339).clone(),
        control_socket: Some(paths.control_socket()),
    }
}

/// When this process's cluster started (one supervisor per process).
static STARTED_AT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// What [`stop`] did.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    /// The state file found, if any.
    pub state: Option<ClusterState>,
    /// A live supervisor was stopped.
    pub stopped: bool,
    /// The supervisor ignored SIGTERM and was killed.
    pub killed: bool,
}

/// `cluster down`: stops the supervisor (SIGTERM, then SIGKILL), makes sure no node survives, removes
/// the state file and the cluster dir. Idempotent.
pub async fn stop(state: &StateDir) -> Result<StopOutcome, StateError> {
    let paths = paths(state)?;
    let state = read_state(&paths);
    let mut outcome = StopOutcome {
        state: state.clone(),
        stopped: false,
        killed: false,
    };
    if let Some(state) = &state {
        let pid = state.supervisor_pid;
        if supervisor_alive(pid) {
            outcome.stopped = true;
            send_signal(pid, libc::SIGTERM);
            if !wait_gone(pid, STOP_TIMEOUT).await {
                send_signal(pid, libc::SIGKILL);
                outcome.killed = true;
                wait_gone(pid, Duration::from_secs(2)).await;
            }
        }
        // The nodes die with their supervisor; this catches any that did not.
        for pid in state.nodes.iter().filter_map(|n| n.pid) {
            let is_node = cmdline(pid)
                .first()
                .is_some_and(|exe| exe.ends_with("nats-server"));
            if process_alive(pid) && is_node {
                send_signal(pid, libc::SIGKILL);
                wait_gone(pid, Duration::from_secs(2)).await;
            }
        }
    }
    for file in [paths.state_file()] {
        match fs::remove_file(&file) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(StateError::Io {
                    context: format!("cannot remove {}", file.display()),
                    source: err,
                })
            }
            _ => {}
        }
    }
    let cluster_dir = state
        .as_ref()
        .map(|s| s.dir.clone())
        .unwrap_or_else(|| paths.cluster_dir());
    match fs::remove_dir_all(&cluster_dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(StateError::Io {
            context: format!("cannot remove {}", cluster_dir.display()),
            source: err,
        }),
        _ => Ok(outcome),
    }
}

/// The state file as written, without checking that its supervisor lives.
pub fn read_state(paths: &StatePaths) -> Option<ClusterState> {
    let text = fs::read_to_string(paths.state_file()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the state file atomically (rename), so readers never see half of it.
fn write_state(paths: &StatePaths, state: &ClusterState) -> Result<(), StateError> {
    let file = paths.state_file();
    let temp = file.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(state).map_err(|e| StateError::Io {
        context: "cannot encode the state file".to_string(),
        source: io::Error::other(e),
    })?;
    fs::write(&temp, text + "\n")
        .and_then(|()| fs::rename(&temp, &file))
        .map_err(StateError::io(format!("cannot write {}", file.display())))
}

/// An exclusive `flock` on `supervisor.lock`, held while a supervisor runs.
struct SupervisorLock {
    _file: File,
}

impl SupervisorLock {
    fn acquire(paths: &StatePaths) -> Result<Self, StateError> {
        let path = paths.lock_file();
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StateError::io(format!("cannot open {}", path.display())))?;
        // SAFETY: flock(2) on a descriptor we own; the lock goes with the file.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StateError::AlreadyServing {
                dir: paths.dir.clone(),
            });
        }
        Ok(Self { _file: file })
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// True if `pid` is a live process (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The arguments a process was started with.
fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A live process that is an aivo-load supervisor (guards against a recycled pid).
fn supervisor_alive(pid: u32) -> bool {
    process_alive(pid) && cmdline(pid).windows(2).any(|w| w == ["cluster", "serve"])
}

fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a pid checked just before to be ours; a recycled pid in between is the
    // remaining (tiny) risk every pid-file tool takes.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_state_dir_wins_and_is_absolute() {
        let args = StateDir {
            explicit: Some(PathBuf::from("rel/state")),
        };
        let paths = paths(&args).expect("paths");
        assert!(paths.dir.is_absolute());
        assert!(paths.dir.ends_with("rel/state"));
        assert!(paths.state_file().ends_with("rel/state/cluster.json"));
    }

    #[test]
    fn no_state_means_the_seed_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = StateDir {
            explicit: Some(dir.path().to_path_buf()),
        };
        assert!(load(&args).is_none());
        assert_eq!(default_server(&args), SEED_SERVER);
    }

    #[test]
    fn a_state_file_without_a_live_supervisor_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = StatePaths {
            dir: dir.path().to_path_buf(),
        };
        let state = ClusterState {
            schema: SCHEMA,
            endpoints: ClusterEndpoints::default(),
            // Our own pid is alive but not a supervisor.
            supervisor_pid: std::process::id(),
            dir: paths.cluster_dir(),
            nats_server: PathBuf::from("nats-server"),
            nats_server_version: "v2.15.1".into(),
            nodes: Vec::new(),
            started_at: now_rfc3339(),
            control_socket: None,
        };
        write_state(&paths, &state).expect("write");
        assert_eq!(read_state(&paths), Some(state));
        let args = StateDir {
            explicit: Some(paths.dir.clone()),
        };
        assert!(load(&args).is_none());
    }

    #[test]
    fn a_zombie_or_missing_pid_is_not_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX / 2));
    }
}
