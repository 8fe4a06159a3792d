//! The one cluster handle (DESIGN.md §2): [`Cluster`] is whatever a run, `chaos`, `heal` or `cluster
//! status` talks to, whichever backend is behind it. It gives the endpoints, applies one
//! [`ControlOp`] at a time (the vocabulary every fault plan is written in), saves logs and shuts
//! down; an external cluster refuses every change. The journal stores a [`ClusterRef`], which
//! [`ClusterRef::reattach`] turns back into a handle after the process that applied a fault died.
//!
//! This is the backend dispatch the rest of the harness uses: everything outside `src/cluster/`
//! calls methods of [`Cluster`], [`ClusterPlan`], [`ClusterRef`] and [`BackendKind`] (inside,
//! only the `cluster` verbs of `commands.rs` branch on the backend themselves).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::backend::{BackendKind, ClusterProfile};
use super::control::{self, ControlError};
use super::docker::{DockerCluster, DockerClusterConfig, DockerError, DockerSpec};
use super::endpoints::ClusterEndpoints;
use super::external::ExternalCluster;
use super::local::{LocalCluster, LocalClusterConfig, LocalError};
use super::monitor::ClusterStatus;
use super::op::ControlOp;
use super::state::{self, StateDir, StateError, StatePaths};
use crate::exit::AppError;

/// The file in a run's `cluster/` dir that says which backend owns the run's cluster and how to
/// reach it again (read by `heal RUN_DIR`).
pub const OWNER_FILE: &str = "owner.json";

/// Errors of a cluster, whichever its backend.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    State(#[from] StateError),
    /// A change asked of a cluster aivo-load does not manage.
    #[error("{0}")]
    Refused(String),
    /// The `cluster up` cluster a command needs is not running.
    #[error("{0}")]
    NotRunning(String),
    /// A segmented run's workers could not be started (`workers.rs`).
    #[error("{0}")]
    Workers(String),
}

impl From<ClusterError> for AppError {
    fn from(error: ClusterError) -> Self {
        match error {
            ClusterError::Refused(_) => AppError::usage(error),
            _ => AppError::environment(error),
        }
    }
}

/// A local cluster kept by a `cluster up` supervisor, changed through its control socket.
#[derive(Debug, Clone)]
pub struct Supervised {
    state_dir: PathBuf,
    socket: PathBuf,
    endpoints: ClusterEndpoints,
}

impl Supervised {
    /// The cluster a `cluster up` state file describes.
    pub(super) fn from_state(paths: &StatePaths, kept: state::ClusterState) -> Self {
        Self {
            socket: kept
                .control_socket
                .clone()
                .unwrap_or_else(|| paths.control_socket()),
            state_dir: paths.dir.clone(),
            endpoints: kept.endpoints,
        }
    }
}

/// A cluster the harness talks to; see the module header.
#[derive(Debug, Clone)]
pub enum Cluster {
    /// Three `nats-server` children of this process; they die with it.
    Local(Arc<LocalCluster>),
    /// A local cluster kept by a `cluster up` supervisor (which outlives this process).
    Supervised(Supervised),
    /// A docker-compose project: a run's own (removed when the run ends) or the `cluster up
    /// --backend docker` one (left running).
    Docker(Arc<DockerCluster>),
    /// Someone else's cluster: load and checks only.
    External(ExternalCluster),
}

impl Cluster {
    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Local(_) | Self::Supervised(_) => BackendKind::Local,
            Self::Docker(_) => BackendKind::Docker,
            Self::External(_) => BackendKind::External,
        }
    }

    /// Client and monitoring URLs of every node (an external cluster's monitoring URLs are known
    /// only when it was found through them).
    pub fn endpoints(&self) -> ClusterEndpoints {
        match self {
            Self::Local(cluster) => cluster.endpoints().clone(),
            Self::Supervised(kept) => kept.endpoints.clone(),
            Self::Docker(cluster) => cluster.endpoints().clone(),
            Self::External(cluster) => cluster.endpoints().clone(),
        }
    }

    /// Every node's client URL, for clients that fail over between them.
    pub fn client_urls(&self) -> Vec<String> {
        self.endpoints().client_urls()
    }

    /// How a client of `role` connects: on a production-profile cluster (an external one given
    /// `--profile-dir` too) its role's user and the CA, on another external one the options it
    /// was given (whatever the role), else none.
    pub fn client_auth(
        &self,
        role: &crate::security::Role,
    ) -> Result<crate::security::ClientAuth, crate::security::SecurityError> {
        match self {
            Self::External(cluster) if cluster.endpoints().security.is_none() => {
                Ok(cluster.auth().clone())
            }
            _ => self.endpoints().client_auth(role),
        }
    }

    /// Where the security check's rogue server can reach this cluster's route ports from: a
    /// docker cluster's routes are on its project's cluster network only, so the rogue runs as a
    /// container there; every other cluster's are tried from this machine.
    pub fn rogue_vantage(&self) -> super::rogue::RogueVantage {
        match self {
            Self::Docker(cluster) => {
                let spec = cluster.spec();
                super::rogue::RogueVantage::Container {
                    project: spec.project.clone(),
                    network: spec.cluster_network(),
                    image: spec.image.clone(),
                    routes: spec.in_network_route_addrs(),
                }
            }
            _ => super::rogue::RogueVantage::Host,
        }
    }

    /// Health, routes, JetStream usage and the meta leader of every node.
    pub async fn status(&self) -> ClusterStatus {
        ClusterStatus::gather(&self.endpoints()).await
    }

    /// Applies one change (a fault, or its revert). An external cluster refuses it.
    pub async fn apply(&self, op: &ControlOp) -> Result<(), ClusterError> {
        match self {
            Self::Local(cluster) => Ok(cluster.apply(op).await?),
            Self::Supervised(kept) => {
                control::request(&kept.socket, op).await?;
                Ok(())
            }
            Self::Docker(cluster) => Ok(cluster.apply(op).await?),
            Self::External(_) => Err(ClusterError::Refused(ExternalCluster::refusal(
                &op.describe(),
            ))),
        }
    }

    /// What the cluster is, for messages ("compose project aivo-x").
    pub fn name(&self) -> String {
        match self {
            Self::Local(cluster) => format!("local cluster in {}", cluster.dir().display()),
            Self::Supervised(kept) => format!(
                "local cluster of the supervisor in {}",
                kept.state_dir.display()
            ),
            Self::Docker(cluster) => format!("compose project {}", cluster.spec().project),
            Self::External(cluster) => {
                format!("external cluster {}", cluster.client_urls().join(","))
            }
        }
    }

    /// How changes reach the cluster, as `heal` reports it ("through the supervisor").
    pub fn channel(&self) -> String {
        match self {
            Self::Local(_) => "in process".to_string(),
            Self::Supervised(_) => "through the supervisor".to_string(),
            Self::Docker(cluster) => format!(
                "through the Docker API (compose project {})",
                cluster.spec().project
            ),
            Self::External(_) => "nowhere (an external cluster is never changed)".to_string(),
        }
    }

    /// How to reach this cluster again from another process (journaled with every fault).
    pub fn reference(&self) -> ClusterRef {
        match self {
            Self::Local(cluster) => ClusterRef::InProcess {
                dir: cluster.dir().to_path_buf(),
            },
            Self::Supervised(kept) => ClusterRef::Supervisor {
                state_dir: kept.state_dir.clone(),
                socket: kept.socket.clone(),
            },
            Self::Docker(cluster) => ClusterRef::Docker {
                dir: cluster.dir().to_path_buf(),
                project: cluster.spec().project.clone(),
                run: cluster.is_owned(),
            },
            Self::External(cluster) => ClusterRef::External {
                servers: cluster.client_urls(),
            },
        }
    }

    /// A node's JetStream `store_dir` where this machine can read and change its files: the
    /// local store, or, for a container, `jetstream/` in the host directory bind-mounted as its
    /// `/data` (the compose configs say `store_dir: "/data/jetstream"`). `None` for an external
    /// cluster (or a docker node not in the spec).
    pub fn store_on_host(&self, node: &str) -> Option<PathBuf> {
        match self {
            Self::Docker(cluster) => cluster
                .spec()
                .nodes
                .iter()
                .find(|n| n.name == node)
                .map(|n| n.store.join("jetstream")),
            _ => self.store_dir(node),
        }
    }

    /// A node's JetStream store on this machine, where a fault may mount over it (a container's
    /// store is its own tmpfs, an external node's is elsewhere).
    pub fn store_dir(&self, node: &str) -> Option<PathBuf> {
        match self {
            Self::Local(cluster) => Some(cluster.dir().join(node).join("store")),
            Self::Supervised(kept) => Some(kept.state_dir.join("cluster").join(node).join("store")),
            Self::Docker(_) | Self::External(_) => None,
        }
    }

    /// Rolls a down node's store back to what it had fsynced (`power-loss`): only a run's own
    /// local cluster serves its stores through the power-loss store.
    pub fn power_loss(&self, node: &str) -> Result<crate::durable_fs::PowerLoss, ClusterError> {
        match self {
            Self::Local(cluster) => Ok(cluster.power_loss(node)?),
            _ => Err(ClusterError::Refused(format!(
                "power-loss needs a run's own local cluster, whose stores it serves through the \
                 power-loss store; {} has none",
                self.name()
            ))),
        }
    }

    /// The recent part of what `node` logged (its last 256 KiB), where this machine can read it: a
    /// local node's `nats.log`, a container's Docker log. `None` for an external cluster, or when
    /// the log cannot be read.
    pub async fn node_log(&self, node: &str) -> Option<String> {
        let file = match self {
            Self::Local(cluster) => cluster.dir().join(node).join("nats.log"),
            Self::Supervised(kept) => kept.state_dir.join("cluster").join(node).join("nats.log"),
            Self::Docker(cluster) => return cluster.node_log(node).await.ok(),
            Self::External(_) => return None,
        };
        tail_of(&file, 256 * 1024)
    }

    /// Saves what the nodes logged into `cluster_dir` where it is not there already: a local node
    /// logs into its own dir, containers log to Docker (`containers.log`); an external cluster's
    /// logs are its owner's.
    pub async fn save_logs(&self, cluster_dir: &Path) {
        if let Self::Docker(cluster) = self {
            let logs = cluster_dir.join("containers.log");
            if let Err(err) = cluster.save_logs(&logs).await {
                eprintln!("aivo-load: cannot save the container logs: {err}");
            }
        }
    }

    /// Ends what this handle owns, at the end of a run: a run's own cluster stops (container logs
    /// saved, stores removed, the configs and logs stay in `cluster_dir`); a kept or attached one
    /// is left running; an external one is not ours to stop.
    pub async fn shutdown(self, cluster_dir: &Path) {
        match self {
            Self::Local(cluster) => {
                // Whoever else held the handle (the chaos engine) has let go by now; if not, the
                // last drop kills the nodes.
                if let Ok(cluster) = Arc::try_unwrap(cluster) {
                    cluster.shutdown().await;
                }
                remove_stores(cluster_dir);
            }
            Self::Supervised(kept) => eprintln!(
                "aivo-load: cluster left running at {} (stop it with `aivo-load cluster down`)",
                kept.endpoints.server_list()
            ),
            Self::Docker(ref cluster) if cluster.is_owned() => {
                self.save_logs(cluster_dir).await;
                if let Err(err) = cluster.shutdown().await {
                    eprintln!("aivo-load: {err}");
                }
            }
            Self::Docker(_) | Self::External(_) => {}
        }
    }

    /// [`Cluster::shutdown`] for a path that cannot wait (a panic unwinding): dropping the handle
    /// kills a run's local nodes (death by `Drop`) or removes its compose project, and a local
    /// run's stores are removed as `shutdown` would.
    pub fn abandon(self, cluster_dir: &Path) {
        let local = matches!(self, Self::Local(_));
        drop(self);
        if local {
            remove_stores(cluster_dir);
        }
    }

    /// Removes the cluster whoever started it (`heal` removing a killed run's compose project).
    /// An external cluster is refused.
    pub async fn remove(self) -> Result<(), ClusterError> {
        match self {
            Self::Local(cluster) => {
                if let Ok(cluster) = Arc::try_unwrap(cluster) {
                    cluster.shutdown().await;
                }
                Ok(())
            }
            Self::Supervised(kept) => {
                let dir = StateDir {
                    explicit: Some(kept.state_dir),
                };
                state::stop(&dir).await?;
                Ok(())
            }
            Self::Docker(cluster) => Ok(cluster.shutdown().await?),
            Self::External(_) => Err(ClusterError::Refused(ExternalCluster::refusal("remove"))),
        }
    }

    /// The `cluster up` cluster of `backend` in `state`, for `chaos` and `heal`. An external
    /// cluster keeps no state here, so `external` means the local one (as `heal --backend
    /// external` always did; `chaos` refuses external before it asks).
    pub async fn kept(backend: BackendKind, state: &StateDir) -> Result<Self, ClusterError> {
        match backend {
            BackendKind::Local | BackendKind::External => {
                let paths = state::paths(state)?;
                let kept = state::load(state).ok_or_else(|| {
                    ClusterError::NotRunning(format!(
                        "no local cluster is running (state dir {}); start one with `aivo-load \
                         cluster up`",
                        paths.dir.display()
                    ))
                })?;
                Ok(Self::Supervised(Supervised::from_state(&paths, kept)))
            }
            BackendKind::Docker => {
                let cluster = DockerCluster::attach(&kept_dir(backend, state)?).await?;
                Ok(Self::Docker(Arc::new(cluster)))
            }
        }
    }

    /// Where the `cluster up` cluster of `state` is reached, without contacting it: the local
    /// supervisor's cluster if one runs, else the docker one recorded there. Client verbs use it
    /// to find a production-profile cluster's credentials (`ClusterEndpoints::client_auth`).
    pub fn kept_endpoints(state: &StateDir) -> Option<ClusterEndpoints> {
        if let Some(kept) = state::load(state) {
            return Some(kept.endpoints);
        }
        let paths = state::paths(state).ok()?;
        DockerSpec::read(&paths.docker_dir())
            .ok()
            .map(|spec| spec.endpoints())
    }

    /// The fault journal of the `cluster up` cluster of `backend` (`chaos` writes it, `heal`
    /// reads it by default).
    pub fn kept_journal(backend: BackendKind, state: &StateDir) -> Result<PathBuf, ClusterError> {
        Ok(kept_dir(backend, state)?.join("faults.jsonl"))
    }
}

/// Where the `cluster up` cluster of `backend` keeps its files (`external`: the local one's, see
/// [`Cluster::kept`]).
fn kept_dir(backend: BackendKind, state: &StateDir) -> Result<PathBuf, ClusterError> {
    let paths = state::paths(state)?;
    match backend {
        BackendKind::Local | BackendKind::External => Ok(paths.dir),
        BackendKind::Docker => Ok(paths.docker_dir()),
    }
}

/// A local run's stores (and the power-loss store's backing files) go with the run; configs and
/// logs stay with the report.
fn remove_stores(cluster_dir: &Path) {
    if let Ok(nodes) = std::fs::read_dir(cluster_dir) {
        for node in nodes.flatten() {
            let _ = std::fs::remove_dir_all(node.path().join("store"));
            let _ = std::fs::remove_dir_all(node.path().join(super::local::DURABLE_BACKING));
        }
    }
}

/// How to reach a cluster from another process, i.e. how to revert a fault on it: journaled with
/// every fault (`begin.owner`) and written beside a run's cluster (`cluster/owner.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClusterRef {
    /// Local nodes inside the harness process: they die with it (PR_SET_PDEATHSIG), so after a
    /// SIGKILL only files (mounts) are left to clean.
    InProcess { dir: PathBuf },
    /// A local cluster's `cluster up` supervisor, which outlives the harness: reverts go through
    /// its socket.
    Supervisor { state_dir: PathBuf, socket: PathBuf },
    /// A docker-compose project (its dir holds `docker-cluster.json`), reached through the Docker
    /// API; `run` when a run owned it (and `heal` should remove it once reverted).
    Docker {
        dir: PathBuf,
        project: String,
        #[serde(default)]
        run: bool,
    },
    /// Someone else's cluster: in a run's `owner.json`, never in the fault journal (faults on it
    /// are refused).
    External { servers: Vec<String> },
}

impl ClusterRef {
    /// Which backend owns the cluster.
    pub fn backend(&self) -> BackendKind {
        match self {
            Self::InProcess { .. } | Self::Supervisor { .. } => BackendKind::Local,
            Self::Docker { .. } => BackendKind::Docker,
            Self::External { .. } => BackendKind::External,
        }
    }

    /// A live handle on the cluster, or why there is none to revert anything on.
    pub async fn reattach(&self) -> Result<Cluster, String> {
        match self {
            Self::Supervisor { state_dir, socket } if socket.exists() => {
                let paths = StatePaths {
                    dir: state_dir.clone(),
                };
                let endpoints = state::read_state(&paths)
                    .map(|s| s.endpoints)
                    .unwrap_or_default();
                Ok(Cluster::Supervised(Supervised {
                    state_dir: state_dir.clone(),
                    socket: socket.clone(),
                    endpoints,
                }))
            }
            Self::Supervisor { .. } => Err("its supervisor is gone and its nodes with it".into()),
            Self::InProcess { .. } => {
                Err("its nodes died with the harness (death signal); nothing runs to revert".into())
            }
            Self::Docker { dir, project, .. } => match DockerCluster::attach(dir).await {
                Ok(cluster) => Ok(Cluster::Docker(Arc::new(cluster))),
                Err(err) => Err(format!("its compose project {project} is gone ({err})")),
            },
            Self::External { .. } => Err("an external cluster: aivo-load changed nothing".into()),
        }
    }

    /// A handle to read the cluster through (`report recover`): [`ClusterRef::reattach`], and an
    /// external cluster by its URLs (nothing to revert there, but its streams can be read).
    pub async fn reach(&self) -> Result<Cluster, String> {
        match self {
            Self::External { servers } => {
                Ok(Cluster::External(ExternalCluster::by_servers(servers)))
            }
            _ => self.reattach().await,
        }
    }

    /// Whether a run owned the cluster, so that `heal` removes it once its faults are reverted
    /// (as the run would have, had it not been killed). Local nodes died with their run already.
    pub fn owned_by_run(&self) -> bool {
        matches!(self, Self::Docker { run: true, .. })
    }

    /// Writes `cluster_dir/owner.json`.
    pub fn write(&self, cluster_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(cluster_dir)?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(cluster_dir.join(OWNER_FILE), text + "\n")
    }

    /// Reads `cluster_dir/owner.json`, if the run wrote one. A run dir of an earlier version has
    /// none; its docker cluster is known by the spec it left (`docker-cluster.json`).
    pub fn read(cluster_dir: &Path) -> Option<Self> {
        match std::fs::read_to_string(cluster_dir.join(OWNER_FILE)) {
            Ok(text) => serde_json::from_str(&text).ok(),
            Err(_) => DockerSpec::read(cluster_dir).ok().map(|spec| Self::Docker {
                dir: cluster_dir.to_path_buf(),
                project: spec.project,
                run: true,
            }),
        }
    }
}

/// Where a run's cluster comes from: validated flags, started by [`ClusterPlan::start`].
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub backend: BackendKind,
    /// Client URLs of an external cluster.
    pub servers: Vec<String>,
    /// Leave a local cluster running after the run (through a `cluster up` supervisor).
    pub keep: bool,
    /// The `cluster up` state dir (for `keep`).
    pub state: StateDir,
    /// Open, or the production profile (local backend; an external cluster is what it is).
    pub profile: ClusterProfile,
    /// Identity and TLS of every connection to an external cluster (its flags or context).
    pub auth: crate::security::ClientAuth,
    /// `--profile-dir`: an external cluster secured by this aivo-load production profile (each
    /// role its own user).
    pub profile_dir: Option<std::path::PathBuf>,
    /// Every node's JetStream `sync_interval` (the scenario's `[cluster]`), for a cluster the
    /// run starts itself; `None`: the server's default (2 minutes).
    pub sync_interval: Option<super::SyncInterval>,
    /// The production profile weakened on purpose (the hidden, test-only `run --loosen`): what a
    /// test of the security probes starts to show a probe failing.
    pub loosen: Vec<crate::security::Loosening>,
    /// Serve every store through the power-loss store (a scenario with a `power-loss` fault):
    /// a run's own local cluster only.
    pub durable_stores: bool,
}

impl ClusterPlan {
    /// An external cluster needs its URLs (`servers`, comma-separated); the others ignore them.
    pub fn new(
        backend: BackendKind,
        servers: Option<&str>,
        state: StateDir,
    ) -> Result<Self, String> {
        let servers: Vec<String> = match servers {
            Some(list) if backend.needs_servers() => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        if backend.needs_servers() && servers.is_empty() {
            return Err(
                "--backend external needs the cluster's URLs: --server nats://host:4222[,...] or \
                 NATS_URL"
                    .into(),
            );
        }
        Ok(Self {
            backend,
            servers,
            keep: false,
            state,
            profile: ClusterProfile::Open,
            auth: crate::security::ClientAuth::default(),
            profile_dir: None,
            sync_interval: None,
            loosen: Vec::new(),
            durable_stores: false,
        })
    }

    /// The client options an external cluster is reached with (the other backends know theirs).
    pub fn with_auth(mut self, auth: crate::security::ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// `--profile`: the production profile is made by the local backend and by the docker
    /// backend (the compose file's production variant); an external cluster brings its own
    /// security, reached with the client options.
    pub fn with_profile(mut self, profile: ClusterProfile) -> Result<Self, String> {
        if profile == ClusterProfile::Production && !self.backend.makes_profiles() {
            return Err(format!(
                "--profile production makes a local or docker cluster; with --backend {} give \
                 the cluster's credentials instead (--creds, --nkey, --user, --tls-ca, --context)",
                self.backend.name()
            ));
        }
        self.profile = profile;
        Ok(self)
    }

    /// `--profile-dir DIR`: an external cluster secured by the aivo-load production profile in
    /// `DIR` (its `profile.json` must open), instead of one set of client options.
    pub fn with_profile_dir(mut self, dir: Option<std::path::PathBuf>) -> Result<Self, String> {
        let Some(dir) = dir else { return Ok(self) };
        if self.backend != BackendKind::External {
            return Err(format!(
                "--profile-dir names the profile of an external cluster; with --backend {} use \
                 --profile production (the run makes the profile itself)",
                self.backend.name()
            ));
        }
        crate::security::Profile::open(&dir).map_err(|e| format!("--profile-dir: {e}"))?;
        self.profile_dir = Some(dir);
        Ok(self)
    }

    /// `--keep-cluster`: only a local cluster can be kept.
    pub fn keeping(mut self, keep: bool) -> Result<Self, String> {
        if keep && !self.backend.can_keep() {
            return Err(
                "--keep-cluster applies to the local backend only (for docker: `aivo-load cluster \
                 up --backend docker`, then `run --backend external --server \
                 nats://127.0.0.1:4222,...`)"
                    .into(),
            );
        }
        self.keep = keep;
        Ok(self)
    }

    /// Starts (or finds) the run's cluster, its files under `run_dir/cluster/`, and records which
    /// backend owns it there (`owner.json`).
    pub async fn start(&self, run_dir: &Path) -> Result<Cluster, ClusterError> {
        let cluster_dir = run_dir.join("cluster");
        if self.durable_stores && (self.backend != BackendKind::Local || self.keep) {
            return Err(ClusterError::Refused(format!(
                "the scenario's power-loss fault needs a run's own local cluster (--backend \
                 local without --keep-cluster), whose stores it serves through a FUSE mount; \
                 {} cannot lose unsynced writes on purpose",
                if self.keep {
                    "a kept cluster".to_string()
                } else {
                    format!("--backend {}", self.backend.name())
                }
            )));
        }
        if let (Some(sync), true) = (
            self.sync_interval,
            self.backend == BackendKind::External || self.keep,
        ) {
            eprintln!(
                "aivo-load: warning: the scenario's sync_interval {sync} is not applied: this \
                 run does not start its cluster (it keeps the one it finds, with its own setting)"
            );
        }
        let cluster = match self.backend {
            BackendKind::External => Cluster::External(
                ExternalCluster::by_servers(&self.servers)
                    .with_auth(self.auth.clone())
                    .with_profile_dir(self.profile_dir.clone()),
            ),
            BackendKind::Local if self.keep => {
                let kept = state::spawn_background(&self.state, self.profile).await?;
                let paths = state::paths(&self.state)?;
                Cluster::Supervised(Supervised::from_state(&paths, kept))
            }
            BackendKind::Local => {
                eprintln!(
                    "aivo-load: starting a local 3-node cluster in {}",
                    cluster_dir.display()
                );
                let mut config =
                    LocalClusterConfig::new(cluster_dir.clone()).with_profile(self.profile);
                config.sync_interval = self.sync_interval;
                config.loosen = self.loosen.clone();
                config.durable_stores = self.durable_stores;
                let cluster = LocalCluster::start(config).await?;
                Cluster::Local(Arc::new(cluster))
            }
            BackendKind::Docker => {
                let run_id = run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut config =
                    DockerClusterConfig::new(cluster_dir.clone(), &format!("aivo-{run_id}"));
                config.sync_interval = self.sync_interval;
                config.profile = self.profile;
                config.loosen = self.loosen.clone();
                eprintln!(
                    "aivo-load: starting the compose project {} (docker backend) in {}; Postgres \
                     and consumers, if any, run as host processes",
                    config.project,
                    cluster_dir.display()
                );
                // Said before the containers exist: a harness killed while they start leaves a
                // project that `heal RUN_DIR` must still find and remove.
                let starting = ClusterRef::Docker {
                    dir: cluster_dir.clone(),
                    project: config.project.clone(),
                    run: true,
                };
                write_owner(&starting, &cluster_dir);
                Cluster::Docker(Arc::new(DockerCluster::start(config).await?))
            }
        };
        write_owner(&cluster.reference(), &cluster_dir);
        Ok(cluster)
    }
}

/// Writes `owner.json`; a failure is said, not fatal (only a later `heal RUN_DIR` needs it).
fn write_owner(owner: &ClusterRef, cluster_dir: &Path) {
    if let Err(err) = owner.write(cluster_dir) {
        eprintln!(
            "aivo-load: cannot write {}: {err}",
            cluster_dir.join(OWNER_FILE).display()
        );
    }
}

/// The last `bytes` of a file as text (lossy; a cut first line is dropped).
fn tail_of(path: &Path, bytes: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(bytes);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    Some(match (start, text.find('\n')) {
        (0, _) | (_, None) => text,
        (_, Some(newline)) => text[newline + 1..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_check_flags_together() {
        let state = StateDir::default();
        let external = ClusterPlan::new(
            BackendKind::External,
            Some(" nats://127.0.0.1:4222, ,nats://127.0.0.1:4223"),
            state.clone(),
        )
        .expect("external with servers");
        assert_eq!(
            external.servers,
            ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        );
        assert!(ClusterPlan::new(BackendKind::External, None, state.clone()).is_err());
        let docker = ClusterPlan::new(BackendKind::Docker, None, state.clone()).expect("docker");
        assert!(docker.keeping(true).is_err());
        let local = ClusterPlan::new(BackendKind::Local, Some("nats://x:1"), state)
            .and_then(|plan| plan.keeping(true))
            .expect("local keep");
        assert!(local.servers.is_empty(), "servers only for external");
    }

    #[test]
    fn references_round_trip_and_name_their_backend() {
        let docker = ClusterRef::Docker {
            dir: PathBuf::from("/tmp/run/cluster"),
            project: "aivo-run".into(),
            run: true,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        docker.write(dir.path()).expect("write");
        let back = ClusterRef::read(dir.path()).expect("read");
        assert_eq!(back, docker);
        assert_eq!(back.backend(), BackendKind::Docker);
        assert!(back.owned_by_run());
        // The journal's owner of earlier versions reads the same.
        let old: ClusterRef =
            serde_json::from_str(r#"{"kind":"supervisor","state_dir":"/s","socket":"/s/c.sock"}"#)
                .expect("old form");
        assert_eq!(old.backend(), BackendKind::Local);
        assert!(!old.owned_by_run());
    }

    #[test]
    fn a_run_dir_of_an_earlier_version_is_known_by_its_docker_spec() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            ClusterRef::read(dir.path()),
            None,
            "no owner, no spec: nothing"
        );
        let spec = serde_json::json!({
            "project": "aivo-20261201t000000z-node-kill",
            "dir": dir.path(),
            "image": "aivo-load/nats-server:local",
            "store_bytes": 1,
            "nodes": [],
        });
        std::fs::write(dir.path().join("docker-cluster.json"), spec.to_string()).expect("spec");
        let owner = ClusterRef::read(dir.path()).expect("known by its spec");
        assert!(owner.owned_by_run());
        assert_eq!(owner.backend(), BackendKind::Docker);
    }
}
