//! The docker backend (DESIGN.md §2): the seed's docker-compose cluster (`compose/`) in containers,
//! created and removed by compose, changed through the Docker API (bollard).
//!
//! [`DockerCluster::start`] builds the `FROM scratch` NATS image if needed (`image.rs`), writes the
//! compose files next to the cluster's data (`compose.rs`), mounts one size-limited tmpfs per node as
//! its JetStream store (as root; bind-mounted at `/data`, so a store survives its container's
//! restarts like the seed's volumes do), runs `docker-compose up -d` with the cluster's ports and
//! project name, and returns once every node is healthy with full routes and a meta leader, read from
//! the published monitoring ports. [`DockerCluster::apply`] carries out the chaos vocabulary
//! ([`ControlOp`]) the local backend understands:
//!
//! | op | Docker API call |
//! |---|---|
//! | kill / stop / start / restart | `POST /containers/{id}/kill` (SIGKILL), `/stop`, `/start` |
//! | pause / resume | `POST /containers/{id}/pause`, `/unpause` (cgroup freezer) |
//! | isolate / end isolation | `POST /networks/{project}-cluster/disconnect`, `/connect` (alias kept) |
//! | cut / block a link | `iptables -j DROP` in the container's netns (`netem.rs`; host tools, not an API call) |
//! | shape a link | `tc` htb (bandwidth) + netem (latency) in the container's netns (`netem.rs`) |
//! | fill / drain storage | `PUT /containers/{id}/archive` (a ballast file filling `/data`); drain removes it and restarts |
//!
//! The operations live in `faults.rs`, the ballast archive in `ballast.rs`.
//!
//! The cluster a process started is torn down (`docker-compose down -v`, stores unmounted) when it is
//! dropped; one found by [`DockerCluster::attach`] (a `cluster up` cluster) is left running.

mod ballast;
pub mod commands;
pub mod compose;
pub mod container;
mod faults;
pub mod harness_image;
pub mod image;
pub mod netem;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use serde::{Deserialize, Serialize};

use super::binary::{self, BinaryError};
use super::endpoints::{ClusterEndpoints, NodeEndpoints};
use super::monitor::ClusterStatus;
use super::storage;

/// Where the JetStream store is inside each container (the seed's `/data`).
pub const CONTAINER_STORE: &str = "/data";

/// Name of the ballast file the fill-storage fault writes into a store.
pub const BALLAST: &str = "aivo-ballast";

/// The spec file in a docker cluster's dir: how `attach` finds the cluster again.
const SPEC_FILE: &str = "docker-cluster.json";

/// Default size of each node's tmpfs store.
pub const DEFAULT_STORE_BYTES: u64 = 1 << 30;

/// How long one Docker API call may take (a stop waits for its grace period).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an upload of ballast may take (up to the store's size, through the API socket).
const FILL_TIMEOUT: Duration = Duration::from_secs(120);

/// Grace period of a graceful stop before Docker sends SIGKILL.
const STOP_GRACE_S: i32 = 5;

/// Errors of the docker backend.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine: {reason}. Start Docker (e.g. `sudo systemctl start docker`, \
         or Docker Desktop) and check that this user may use /var/run/docker.sock (DOCKER_HOST), or \
         use --backend local"
    )]
    Engine { reason: String },
    #[error("Docker API call `{call}` failed: {source}")]
    Api {
        call: String,
        source: bollard::errors::Error,
    },
    #[error("Docker API call `{call}` did not answer within {timeout:?}")]
    Timeout { call: String, timeout: Duration },
    #[error("docker-compose: {0}")]
    Compose(String),
    #[error("{0}")]
    Image(String),
    #[error("tc/netem: {0}")]
    Netem(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("no node named {0:?} in this cluster")]
    UnknownNode(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the production profile: {0}")]
    Security(#[from] crate::security::SecurityError),
    #[error("no docker cluster in {} ({reason}); start one with `aivo-load cluster up --backend docker`", dir.display())]
    NotFound { dir: PathBuf, reason: String },
    #[error("the docker cluster was not ready within {timeout:?}: {reason}\nlast container logs:\n{logs}")]
    NotReady {
        timeout: Duration,
        reason: String,
        logs: String,
    },
}

impl DockerError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// Every docker-backend failure is the environment's (exit 3): no engine, no image, no tool.
impl From<DockerError> for crate::exit::AppError {
    fn from(error: DockerError) -> Self {
        crate::exit::AppError::environment(error)
    }
}

/// One node's container, as recorded in the spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerNode {
    /// `nats1` (the compose service and server_name).
    pub name: String,
    /// `{project}-nats-1`.
    pub container: String,
    pub client_port: u16,
    pub monitor_port: u16,
    /// Host directory bind-mounted at `/data`.
    pub store: PathBuf,
    /// A size-limited tmpfs is mounted on `store` (root only); fill-storage needs it.
    pub store_tmpfs: bool,
}

/// Everything needed to find and drive a docker cluster again (`docker-cluster.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerSpec {
    /// Compose project name: containers, networks and volumes are named after it.
    pub project: String,
    /// Where the compose files, stores and spec live.
    pub dir: PathBuf,
    /// The NATS image the compose file runs.
    pub image: String,
    /// Size of each tmpfs store.
    pub store_bytes: u64,
    pub nodes: Vec<DockerNode>,
    /// The production profile's dir on the host (`security::Profile`), if the cluster has one:
    /// its certificates are mounted into the nodes and its users are how clients connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<PathBuf>,
}

impl DockerSpec {
    /// The compose file written for this cluster.
    pub fn compose_file(&self) -> PathBuf {
        self.dir.join("compose").join("docker-compose.yml")
    }

    /// Every compose file the cluster runs on: the compose file, and with the production profile
    /// its override that mounts the certificates (`compose -f A -f B`).
    pub fn compose_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.compose_file()];
        if self.security.is_some() {
            files.push(self.dir.join("compose").join(compose::PRODUCTION_FILE));
        }
        files
    }

    /// The network clients use (`networks.client.name`): the worker containers join it.
    pub fn client_network(&self) -> String {
        format!("{}-client", self.project)
    }

    /// Every node's client URL inside the project's networks (`nats://nats1:4222`, the compose
    /// service names), for a container on [`DockerSpec::client_network`].
    pub fn in_network_client_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://{}:4222", n.name))
            .collect()
    }

    /// Every node's route URL on the cluster network (`nats1-route:6222`, the aliases the node
    /// configs' routes name and their certificates carry).
    pub fn in_network_route_addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("{}-route:6222", n.name))
            .collect()
    }

    /// The network routes use (`networks.cluster.name` in the compose file).
    pub fn cluster_network(&self) -> String {
        format!("{}-cluster", self.project)
    }

    /// Client and monitoring URLs on the published loopback ports.
    pub fn endpoints(&self) -> ClusterEndpoints {
        ClusterEndpoints {
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeEndpoints {
                    name: n.name.clone(),
                    client_url: format!("nats://127.0.0.1:{}", n.client_port),
                    monitor_url: format!("http://127.0.0.1:{}", n.monitor_port),
                })
                .collect(),
            security: self.security.clone(),
        }
    }

    /// The spec a cluster recorded in `dir` (`docker-cluster.json`).
    pub fn read(dir: &Path) -> Result<Self, DockerError> {
        let path = dir.join(SPEC_FILE);
        let not_found = |reason: String| DockerError::NotFound {
            dir: dir.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| not_found(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| not_found(format!("{}: {e}", path.display())))
    }

    fn write(&self) -> Result<(), DockerError> {
        let path = self.dir.join(SPEC_FILE);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| DockerError::io(format!("cannot write {}", path.display()))(e.into()))?;
        std::fs::write(&path, text + "\n")
            .map_err(DockerError::io(format!("cannot write {}", path.display())))
    }
}

/// Which host ports the nodes publish (always on 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortChoice {
    /// The seed's 4222-4224 / 8222-8224, each overridable by `NATSn_CLIENT_PORT` /
    /// `NATSn_MONITOR_PORT` as in the compose file.
    Seed,
    /// Free loopback ports (runs and tests: no collision with a seed cluster or each other).
    Free,
}

/// How to start a docker cluster.
#[derive(Debug, Clone)]
pub struct DockerClusterConfig {
    /// Compose files, stores and the spec go here.
    pub dir: PathBuf,
    /// Compose project name (made safe: lowercase letters, digits, `-`, `_`).
    pub project: String,
    pub ports: PortChoice,
    /// The NATS image; `None` builds and uses [`image::LOCAL_IMAGE`]. Default from `AIVO_NATS_IMAGE`.
    pub image: Option<String>,
    /// The `nats-server` binary for the local image; `None` finds it as the local backend does.
    pub nats_server: Option<PathBuf>,
    /// Size of each node's tmpfs store. Default from `AIVO_DOCKER_STORE_SIZE` (e.g. `512MiB`), else 1 GiB.
    pub store_bytes: u64,
    /// How long `start` waits for health, full routes and a meta leader.
    pub startup_timeout: Duration,
    /// Every node's JetStream `sync_interval`, written into its config; `None`: the default.
    pub sync_interval: Option<super::SyncInterval>,
    /// Open, or the production profile (its files made under `<dir>/security/`, mounted into
    /// the nodes by the compose file's production variant).
    pub profile: super::ClusterProfile,
    /// The production profile weakened on purpose (tests of the security probes only).
    pub loosen: Vec<crate::security::Loosening>,
}

impl DockerClusterConfig {
    /// Free ports, image and store size from the environment, 90 s to come up.
    pub fn new(dir: PathBuf, project: &str) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            dir,
            project: project_name(project),
            ports: PortChoice::Free,
            image: env("AIVO_NATS_IMAGE"),
            nats_server: None,
            store_bytes: env("AIVO_DOCKER_STORE_SIZE")
                .and_then(|s| crate::units::parse_size(&s).ok())
                .unwrap_or(DEFAULT_STORE_BYTES),
            startup_timeout: Duration::from_secs(90),
            sync_interval: None,
            profile: super::ClusterProfile::Open,
            loosen: Vec::new(),
        }
    }
}

/// A compose project name Docker accepts.
pub fn project_name(raw: &str) -> String {
    let name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "aivo".into()
    } else {
        name
    }
}

/// Connects to the local Docker engine (`DOCKER_HOST` or the default socket) and checks it answers.
pub async fn connect() -> Result<Docker, DockerError> {
    let engine = |reason: String| DockerError::Engine { reason };
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| engine(format!("Docker::connect_with_local_defaults: {e}")))?;
    // The engine may speak an older API than bollard's default (20.10 speaks 1.41).
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| engine("GET /version: no answer within 10s".into()))?
        .map_err(|e| engine(format!("GET /version: {e}")))?;
    tokio::time::timeout(Duration::from_secs(10), docker.ping())
        .await
        .map_err(|_| engine("GET /_ping: no answer within 10s".into()))?
        .map_err(|e| engine(format!("GET /_ping: {e}")))?;
    Ok(docker)
}

/// Runs one Docker API call with a deadline, naming it in any error.
async fn call<T>(
    what: impl Into<String>,
    timeout: Duration,
    future: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, DockerError> {
    let what = what.into();
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(DockerError::Api { call: what, source }),
        Err(_) => Err(DockerError::Timeout {
            call: what,
            timeout,
        }),
    }
}

/// One container as the Docker API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    pub paused: bool,
    /// Host pid of the container's init (0 when not running).
    pub pid: i64,
    /// Address on the cluster network, if connected.
    pub cluster_ip: Option<String>,
    /// Image the container runs.
    pub image: String,
}

/// A docker-compose cluster; see the module header.
#[derive(Debug)]
pub struct DockerCluster {
    docker: Docker,
    spec: DockerSpec,
    endpoints: ClusterEndpoints,
    /// Tear the project down on drop (this process started it).
    owned: AtomicBool,
    /// One change at a time, as the local supervisor serialises them.
    serial: tokio::sync::Mutex<()>,
}

impl DockerCluster {
    /// Builds the image if needed, starts the compose project and waits until the cluster is whole.
    /// On failure everything created is removed again.
    pub async fn start(config: DockerClusterConfig) -> Result<Self, DockerError> {
        let docker = connect().await?;
        let image = match &config.image {
            Some(image) => image.clone(),
            None => {
                let binary = binary::probe(config.nats_server.as_deref()).await?;
                if let image::ImageOutcome::Built(id) =
                    image::ensure(&docker, &binary, false).await?
                {
                    eprintln!(
                        "aivo-load: built {} (nats-server {}, FROM scratch): {id}",
                        image::LOCAL_IMAGE,
                        binary.version
                    );
                }
                image::LOCAL_IMAGE.to_string()
            }
        };
        std::fs::create_dir_all(&config.dir).map_err(DockerError::io(format!(
            "cannot create {}",
            config.dir.display()
        )))?;
        let dir = std::fs::canonicalize(&config.dir).map_err(DockerError::io(format!(
            "cannot resolve {}",
            config.dir.display()
        )))?;
        let security = match config.profile {
            super::ClusterProfile::Open => None,
            super::ClusterProfile::Production => Some(production_profile(&dir, &config.loosen)?),
        };
        let settings = compose::NodeSettings {
            sync_interval: config.sync_interval,
            security: security.as_ref(),
        };
        compose::write_files(&dir.join("compose"), &settings)?;
        let ports = pick_ports(&config.ports, 3)?;
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let mut nodes = Vec::new();
        for (i, (client_port, monitor_port)) in ports.into_iter().enumerate() {
            let name = format!("nats{}", i + 1);
            let store = dir.join(&name).join("store");
            std::fs::create_dir_all(&store).map_err(DockerError::io(format!(
                "cannot create {}",
                store.display()
            )))?;
            let store_tmpfs = root
                && (storage::is_mount_point(&store)
                    || match storage::mount_tmpfs(&store, config.store_bytes) {
                        Ok(()) => true,
                        Err(err) => {
                            tracing::warn!(
                                "cannot mount a tmpfs store on {}: {err}",
                                store.display()
                            );
                            false
                        }
                    });
            nodes.push(DockerNode {
                container: format!("{}-nats-{}", config.project, i + 1),
                name,
                client_port,
                monitor_port,
                store,
                store_tmpfs,
            });
        }
        let spec = DockerSpec {
            project: config.project.clone(),
            dir,
            image,
            store_bytes: config.store_bytes,
            nodes,
            security: security.map(|p| p.dir().to_path_buf()),
        };
        spec.write()?;
        // From here on, dropping the cluster removes what was made.
        let cluster = Self::new(docker, spec, true);
        compose::run(&cluster.spec, &["up", "-d", "--no-build"]).await?;
        cluster.wait_ready(config.startup_timeout).await?;
        Ok(cluster)
    }

    /// Finds the cluster whose spec is in `dir` (a `cluster up` cluster, or a run's); it is left
    /// running when dropped.
    pub async fn attach(dir: &Path) -> Result<Self, DockerError> {
        let spec = DockerSpec::read(dir)?;
        let docker = connect().await?;
        let cluster = Self::new(docker, spec, false);
        if let Some(first) = cluster.spec.nodes.first() {
            cluster
                .state(&first.name)
                .await
                .map_err(|e| DockerError::NotFound {
                    dir: dir.to_path_buf(),
                    reason: e.to_string(),
                })?;
        }
        Ok(cluster)
    }

    fn new(docker: Docker, spec: DockerSpec, owned: bool) -> Self {
        let endpoints = spec.endpoints();
        Self {
            docker,
            spec,
            endpoints,
            owned: AtomicBool::new(owned),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Client and monitoring URLs of the nodes.
    pub fn endpoints(&self) -> &ClusterEndpoints {
        &self.endpoints
    }

    /// What identifies the cluster.
    pub fn spec(&self) -> &DockerSpec {
        &self.spec
    }

    /// The cluster's dir (compose files, stores, spec).
    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }

    /// Leave the cluster running when this handle is dropped (`cluster up`).
    pub fn keep(&self) {
        self.owned.store(false, Ordering::SeqCst);
    }

    /// Whether dropping this handle tears the cluster down.
    pub fn is_owned(&self) -> bool {
        self.owned.load(Ordering::SeqCst)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), DockerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = ClusterStatus::gather(&self.endpoints).await;
            if status.is_healthy() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let reason = status
                    .nodes
                    .iter()
                    .filter(|n| !n.is_healthy())
                    .map(|n| format!("{}: {:?}", n.name, n.health))
                    .chain(
                        status
                            .meta_leader
                            .is_none()
                            .then(|| "no meta leader".to_string()),
                    )
                    .collect::<Vec<_>>()
                    .join("; ");
                let logs = compose::run(&self.spec, &["logs", "--no-color", "--tail", "15"])
                    .await
                    .unwrap_or_else(|e| e.to_string());
                return Err(DockerError::NotReady {
                    timeout,
                    reason: if reason.is_empty() {
                        "routes incomplete".into()
                    } else {
                        reason
                    },
                    logs,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The last lines `node`'s container logged (`docker-compose logs --tail 2000 SERVICE`).
    pub async fn node_log(&self, node: &str) -> Result<String, DockerError> {
        compose::run(&self.spec, &["logs", "--no-color", "--tail", "2000", node]).await
    }

    /// Writes the containers' logs (`docker-compose logs`) to `path`.
    pub async fn save_logs(&self, path: &Path) -> Result<(), DockerError> {
        let logs = compose::run(&self.spec, &["logs", "--no-color", "--timestamps"]).await?;
        std::fs::write(path, logs)
            .map_err(DockerError::io(format!("cannot write {}", path.display())))
    }

    /// `docker-compose down -v` (containers, networks, volumes), then the stores are unmounted and
    /// removed. The handle no longer tears down on drop.
    pub async fn shutdown(&self) -> Result<(), DockerError> {
        self.owned.store(false, Ordering::SeqCst);
        let down = compose::run(&self.spec, &["down", "-v", "--remove-orphans", "-t", "2"]).await;
        remove_stores(&self.spec);
        down.map(|_| ())
    }

    fn node(&self, name: &str) -> Result<(usize, &DockerNode), DockerError> {
        self.spec
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == name)
            .ok_or_else(|| DockerError::UnknownNode(name.to_string()))
    }

    /// The container of `node` as the Docker API reports it (`GET /containers/{id}/json`).
    pub async fn state(&self, node: &str) -> Result<ContainerState, DockerError> {
        let (_, n) = self.node(node)?;
        let inspect = call(
            format!("inspect container {}", n.container),
            CALL_TIMEOUT,
            self.docker.inspect_container(&n.container, None),
        )
        .await?;
        let state = inspect.state.unwrap_or_default();
        let network = self.spec.cluster_network();
        Ok(ContainerState {
            running: state.running.unwrap_or(false),
            paused: state.paused.unwrap_or(false),
            pid: state.pid.unwrap_or(0),
            cluster_ip: inspect
                .network_settings
                .and_then(|s| s.networks)
                .and_then(|mut nets| nets.remove(&network))
                .and_then(|e| e.ip_address)
                .filter(|ip| !ip.is_empty()),
            image: inspect.config.and_then(|c| c.image).unwrap_or_default(),
        })
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if self.owned.swap(false, Ordering::SeqCst) {
            // Blocking is fine here: a few seconds of `docker-compose down`, once, at the end.
            if let Err(err) = compose::down_blocking(&self.spec) {
                eprintln!(
                    "aivo-load: cannot remove compose project {}: {err}",
                    self.spec.project
                );
            }
            remove_stores(&self.spec);
        }
    }
}

/// The production profile of a docker cluster in `dir`: its files under `<dir>/security/`, each
/// node's certificate naming it as the client network does (`nats1`) and as its peers' routes do
/// on the cluster network (`nats1-route`), besides the published loopback address.
fn production_profile(
    dir: &Path,
    loosen: &[crate::security::Loosening],
) -> Result<crate::security::Profile, DockerError> {
    let names: Vec<String> = (1..=3).map(|i| format!("nats{i}")).collect();
    crate::security::Profile::create_with_aliases(
        &dir.join("security"),
        &names,
        |node| vec![format!("{node}-route")],
        loosen,
    )
    .map_err(DockerError::from)
}

/// Unmounts and removes every node's store dir.
fn remove_stores(spec: &DockerSpec) {
    for node in &spec.nodes {
        if storage::is_mount_point(&node.store) {
            if let Err(err) = storage::unmount(&node.store) {
                eprintln!("aivo-load: cannot unmount {}: {err}", node.store.display());
            }
        }
        let _ = std::fs::remove_dir_all(&node.store);
    }
}

/// Host ports for `n` nodes: (client, monitor) each.
fn pick_ports(choice: &PortChoice, n: usize) -> Result<Vec<(u16, u16)>, DockerError> {
    match choice {
        PortChoice::Seed => Ok((1..=n)
            .map(|i| {
                let env = |name: String, default: u16| {
                    std::env::var(name)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(default)
                };
                (
                    env(format!("NATS{i}_CLIENT_PORT"), 4221 + i as u16),
                    env(format!("NATS{i}_MONITOR_PORT"), 8221 + i as u16),
                )
            })
            .collect()),
        PortChoice::Free => {
            // Hold all listeners at once so no two ports repeat; Docker binds them a moment later.
            let listeners = (0..2 * n)
                .map(|_| TcpListener::bind(("127.0.0.1", 0)))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(DockerError::io("cannot find free loopback ports"))?;
            let ports = listeners
                .iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(DockerError::io("cannot find free loopback ports"))?;
            Ok(ports.chunks(2).map(|p| (p[0], p[1])).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_what_compose_accepts() {
        assert_eq!(
            project_name("aivo-20261127T110444Z-node-kill"),
            "aivo-20261127t110444z-node-kill"
        );
        assert_eq!(project_name("a b/c"), "a-b-c");
        assert_eq!(project_name(""), "aivo");
    }

    #[test]
    fn compose_environment_names_every_port_and_store() {
        let spec = DockerSpec {
            project: "p".into(),
            dir: PathBuf::from("/x"),
            image: "img".into(),
            store_bytes: 1,
            nodes: vec![DockerNode {
                name: "nats1".into(),
                container: "p-nats-1".into(),
                client_port: 1,
                monitor_port: 2,
                store: PathBuf::from("/x/nats1/store"),
                store_tmpfs: false,
            }],
            security: None,
        };
        let env = compose::environment(&spec);
        assert!(env.contains(&("NATS1_CLIENT_PORT".into(), "1".into())));
        assert!(env.contains(&("NATS1_STORE".into(), "/x/nats1/store".into())));
        assert!(env.contains(&("COMPOSE_PROJECT_NAME".into(), "p".into())));
        assert_eq!(spec.endpoints().nodes[0].monitor_url, "http://127.0.0.1:2");
    }
}
