//! The embedded backend: three `nats-server` children on free loopback ports, routes through
//! harness-owned proxies (DESIGN.md §2, "Route partitions on the local backend").
//!
//! [`LocalCluster::start`] finds and checks the binary, reserves ports, starts the route proxies, writes
//! one config per node, starts the nodes and returns only when every node answers `/healthz`, has
//! routes to every peer and a JetStream meta leader exists. A node that loses its port to a race is
//! restarted on fresh ports; anything else that goes wrong fails within `startup_timeout` with the
//! failing node's name and the tail of its log.
//!
//! The proxies run on a runtime of their own (see `proxy.rs`), so a cluster works from any caller's
//! runtime, even one that blocks. Node process handling lives in `node.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::backend::ClusterProfile;
use super::binary::{self, BinaryError, NatsServerBinary};
use super::endpoints::{ClusterEndpoints, NodeEndpoints};
use super::monitor::{self, Health};
use super::node::{DeadAddress, Node, NodePorts, PortReservation};
use super::op::{ControlOp, NodeState};
use super::proxy::{LinkShape, MeshError, ProxyStats, RouteMesh};
use super::storage::{self, FillMode};
use crate::durable_fs::{DurableStore, PowerLoss};
use crate::security::Profile;

/// The cluster name, as in the seed's docker-compose.
pub const CLUSTER_NAME: &str = "aivo";

/// Where, in a node's dir, the power-loss store keeps the files it serves at `store/`.
pub const DURABLE_BACKING: &str = "store.durable";

/// How often `start` polls the nodes while waiting for them.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a node is restarted on fresh ports after losing one to another process.
const PORT_RETRIES: usize = 3;

/// How long `shutdown` gives a node to stop on SIGTERM before killing it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to start a local cluster.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// Run dir: each node gets `<dir>/nats1/{store,nats.conf,nats.log}`.
    pub dir: PathBuf,
    /// The `nats-server` binary; `None` finds it (`AIVO_NATS_SERVER`, then `PATH`).
    pub nats_server: Option<PathBuf>,
    /// Number of nodes (3 for the seed topology).
    pub nodes: usize,
    /// How long `start` waits for health, full routes and a meta leader.
    pub startup_timeout: Duration,
    /// Open, or the production profile (certificates and users made under `<dir>/security/`).
    pub profile: ClusterProfile,
    /// Every node's JetStream `sync_interval`; `None`: the server's default (2 minutes).
    pub sync_interval: Option<super::SyncInterval>,
    /// The production profile weakened on purpose (tests of the security probes only).
    pub loosen: Vec<crate::security::Loosening>,
    /// Serve each node's store through the power-loss store (`durable_fs`, a FUSE mount over
    /// `<node>/store.durable`), so a `power-loss` fault can roll it back to what was fsynced.
    pub durable_stores: bool,
}

impl LocalClusterConfig {
    /// Three nodes under `dir`, the binary found from the environment, 20 s to come up.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            nats_server: None,
            nodes: 3,
            startup_timeout: Duration::from_secs(20),
            profile: ClusterProfile::Open,
            sync_interval: None,
            loosen: Vec::new(),
            durable_stores: false,
        }
    }

    /// The same with `profile`.
    pub fn with_profile(mut self, profile: ClusterProfile) -> Self {
        self.profile = profile;
        self
    }
}

/// Errors of the local backend.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No usable `nats-server` (missing or too old).
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("a local cluster needs at least one node")]
    NoNodes,
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("no node named {0:?} in this cluster")]
    UnknownNode(String),
    #[error("{node}: {reason}")]
    Storage { node: String, reason: String },
    #[error("the production profile: {0}")]
    Security(#[from] crate::security::SecurityError),
    #[error(
        "{node} exited during startup ({status}); last lines of {}:\n{log_tail}",
        log.display()
    )]
    NodeExited {
        node: String,
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error(
        "{node} was not ready within {timeout:?}: {reason}; last lines of {}:\n{log_tail}",
        log.display()
    )]
    NotReady {
        node: String,
        reason: String,
        timeout: Duration,
        log: PathBuf,
        log_tail: String,
    },
}

impl LocalError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// True when the fix is to install `nats-server` (the CLI says how).
    pub fn is_missing_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }
}

/// Every local-backend failure is the environment's: a missing or old binary, ports, processes.
impl From<LocalError> for crate::exit::AppError {
    fn from(error: LocalError) -> Self {
        crate::exit::AppError::environment(error)
    }
}

/// What one node looks like to the harness, for tests and the fault code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNodeInfo {
    pub name: String,
    /// `None` if the process is not running.
    pub pid: Option<u32>,
    pub client_addr: SocketAddr,
    pub monitor_addr: SocketAddr,
    /// Route listen address; only the proxies connect to it.
    pub cluster_addr: SocketAddr,
    /// The proxies this node's `routes` name, one per peer.
    pub route_proxies: Vec<SocketAddr>,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// A running local cluster; dropping it kills the nodes and stops the proxies.
#[derive(Debug)]
pub struct LocalCluster {
    config: LocalClusterConfig,
    binary: NatsServerBinary,
    endpoints: ClusterEndpoints,
    nodes: Vec<Node>,
    mesh: RouteMesh,
    /// Held so that no one can listen on the advertised route addresses.
    _dead_addresses: Vec<DeadAddress>,
    /// Nodes whose store is filled, and how (see `storage.rs`).
    filled: Mutex<BTreeMap<usize, FillMode>>,
    /// Each node's power-loss store, when the config asked for them (unmounted on drop, after the
    /// nodes are killed).
    durable: Vec<DurableStore>,
}

impl LocalCluster {
    /// Starts the nodes and returns once the cluster is fully formed (see the module header).
    pub async fn start(config: LocalClusterConfig) -> Result<Self, LocalError> {
        if config.nodes == 0 {
            return Err(LocalError::NoNodes);
        }
        let binary = binary::probe(config.nats_server.as_deref()).await?;
        std::fs::create_dir_all(&config.dir).map_err(LocalError::io(format!(
            "cannot create cluster dir {}",
            config.dir.display()
        )))?;
        let n = config.nodes;
        let names: Vec<String> = (1..=n).map(|i| format!("nats{i}")).collect();
        let reservation =
            PortReservation::new(3 * n).map_err(LocalError::io("cannot reserve loopback ports"))?;
        let ports = reservation
            .ports()
            .map_err(LocalError::io("cannot reserve loopback ports"))?;
        let ports: Vec<NodePorts> = ports.chunks(3).map(NodePorts::from_slice).collect();
        let dead_addresses = (0..n)
            .map(|_| DeadAddress::new())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(LocalError::io("cannot reserve advertise addresses"))?;
        let targets: Vec<SocketAddr> = ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p.cluster)))
            .collect();
        let mesh = RouteMesh::start(&names, &targets)?;
        let security = match config.profile {
            ClusterProfile::Open => None,
            ClusterProfile::Production => Some(Arc::new(Profile::create_loosened(
                &config.dir.join("security"),
                &names,
                &config.loosen,
            )?)),
        };
        let nodes: Vec<Node> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let node = Node::new(
                    name.clone(),
                    config.dir.join(name),
                    ports[i],
                    dead_addresses[i].addr,
                    mesh.routes_of(i),
                );
                let node = node.syncing(config.sync_interval);
                match &security {
                    Some(profile) => node.secured(profile.clone()),
                    None => node,
                }
            })
            .collect();
        for node in &nodes {
            node.write_config(CLUSTER_NAME)
                .map_err(LocalError::io(format!(
                    "cannot write {}",
                    node.config_path().display()
                )))?;
        }
        let durable = if config.durable_stores {
            nodes
                .iter()
                .map(|node| {
                    let store = node.store_dir();
                    DurableStore::mount(&node.dir.join(DURABLE_BACKING), &store).map_err(|e| {
                        LocalError::Storage {
                            node: node.name.clone(),
                            reason: format!(
                                "cannot serve the store {} through the power-loss store (a FUSE \
                                 mount: needs root, /dev/fuse and fusermount3 from the fuse3 \
                                 package): {e}",
                                store.display()
                            ),
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let mut cluster = Self {
            endpoints: ClusterEndpoints {
                nodes: nodes.iter().map(endpoints_of).collect(),
                security: security.as_ref().map(|p| p.dir().to_path_buf()),
            },
            config,
            binary,
            nodes,
            mesh,
            _dead_addresses: dead_addresses,
            filled: Mutex::new(BTreeMap::new()),
            durable,
        };
        reservation.release();
        for i in 0..n {
            cluster.spawn_node(i).await?;
        }
        cluster.wait_ready().await?;
        tracing::info!(
            dir = %cluster.config.dir.display(),
            servers = %cluster.endpoints.server_list(),
            "local cluster up"
        );
        Ok(cluster)
    }

    async fn spawn_node(&self, i: usize) -> Result<(), LocalError> {
        let node = &self.nodes[i];
        node.spawn(&self.binary.path)
            .await
            .map_err(LocalError::io(format!(
                "cannot start {} ({})",
                node.name,
                self.binary.path.display()
            )))
    }

    /// Moves node `i` to fresh ports after it lost one to another process.
    fn rebind_node(&mut self, i: usize) -> Result<(), LocalError> {
        let reservation =
            PortReservation::new(3).map_err(LocalError::io("cannot reserve loopback ports"))?;
        let ports = reservation
            .ports()
            .map_err(LocalError::io("cannot reserve loopback ports"))?;
        let node = &mut self.nodes[i];
        node.ports = NodePorts::from_slice(&ports);
        node.write_config(CLUSTER_NAME)
            .map_err(LocalError::io(format!(
                "cannot write {}",
                node.config_path().display()
            )))?;
        self.mesh.retarget(i, node.cluster_addr());
        self.endpoints.nodes[i] = endpoints_of(node);
        reservation.release();
        Ok(())
    }

    /// Polls until every node is healthy with full routes and a meta leader exists.
    async fn wait_ready(&mut self) -> Result<(), LocalError> {
        let timeout = self.config.startup_timeout;
        let deadline = Instant::now() + timeout;
        let mut retries = vec![0; self.nodes.len()];
        loop {
            for (i, retried) in retries.iter_mut().enumerate() {
                let Some(status) = self.nodes[i].exited() else {
                    continue;
                };
                let lost_port = self.nodes[i]
                    .log_since_spawn()
                    .contains("address already in use");
                if lost_port && *retried < PORT_RETRIES {
                    *retried += 1;
                    tracing::info!(node = %self.nodes[i].name, "port taken meanwhile; restarting on fresh ports");
                    self.rebind_node(i)?;
                    self.spawn_node(i).await?;
                    continue;
                }
                let node = &self.nodes[i];
                return Err(LocalError::NodeExited {
                    node: node.name.clone(),
                    status: status.to_string(),
                    log: node.log_path(),
                    log_tail: node.log_tail(),
                });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe = futures::future::join_all(
                self.endpoints
                    .nodes
                    .iter()
                    .map(|node| readiness(node, &self.endpoints)),
            );
            let verdicts = tokio::time::timeout(remaining.max(POLL_INTERVAL), probe)
                .await
                .unwrap_or_else(|_| {
                    vec![Err("monitoring did not answer in time".to_string()); self.nodes.len()]
                });
            let failing = verdicts.iter().position(Result::is_err);
            let leader = verdicts
                .iter()
                .find_map(|v| v.as_ref().ok().cloned().flatten());
            if failing.is_none() && leader.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let (i, reason) = match failing {
                    Some(i) => (i, verdicts[i].clone().err().unwrap_or_default()),
                    None => (0, "no JetStream meta leader was elected".to_string()),
                };
                let node = &self.nodes[i];
                return Err(LocalError::NotReady {
                    node: node.name.clone(),
                    reason,
                    timeout,
                    log: node.log_path(),
                    log_tail: node.log_tail(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Client and monitoring URLs of every node.
    pub fn endpoints(&self) -> &ClusterEndpoints {
        &self.endpoints
    }

    /// `nats-server --version` of the binary the nodes run, e.g. `v2.15.1`.
    pub fn nats_server_version(&self) -> &str {
        &self.binary.version
    }

    /// The `nats-server` binary the nodes run.
    pub fn nats_server_path(&self) -> &Path {
        &self.binary.path
    }

    /// The run dir holding every node's config, log and store.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Ports, pids and files of every node.
    pub fn nodes(&self) -> Vec<LocalNodeInfo> {
        self.nodes
            .iter()
            .map(|node| LocalNodeInfo {
                name: node.name.clone(),
                pid: node.pid(),
                client_addr: SocketAddr::from(([127, 0, 0, 1], node.ports.client)),
                monitor_addr: SocketAddr::from(([127, 0, 0, 1], node.ports.monitor)),
                cluster_addr: node.cluster_addr(),
                route_proxies: node.routes.clone(),
                dir: node.dir.clone(),
                log: node.log_path(),
            })
            .collect()
    }

    /// Isolates a node from its peers: every route proxy to or from it refuses new connections and
    /// closes its live ones. Clients still reach the node.
    pub fn cut_node(&self, node: &str) -> Result<(), LocalError> {
        self.mesh.cut_node(node)?;
        tracing::info!(node, "routes cut");
        Ok(())
    }

    /// Ends a node's isolation; the nodes' route retries reconnect within about a second.
    pub fn heal_node(&self, node: &str) -> Result<(), LocalError> {
        self.mesh.heal_node(node)?;
        tracing::info!(node, "routes healed");
        Ok(())
    }

    /// Cuts the routes between two nodes (both directions).
    pub fn cut_link(&self, a: &str, b: &str) -> Result<(), LocalError> {
        Ok(self.mesh.cut_link(a, b)?)
    }

    /// Restores the routes between two nodes.
    pub fn heal_link(&self, a: &str, b: &str) -> Result<(), LocalError> {
        Ok(self.mesh.heal_link(a, b)?)
    }

    /// Removes every cut.
    pub fn heal_all(&self) {
        self.mesh.heal_all();
    }

    /// Counters of every route proxy.
    pub fn proxy_stats(&self) -> Vec<ProxyStats> {
        self.mesh.stats()
    }

    fn index(&self, node: &str) -> Result<usize, LocalError> {
        self.nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| LocalError::UnknownNode(node.to_string()))
    }

    /// Kills a node with SIGKILL (no chance to flush or say goodbye) and reaps it.
    pub fn kill_node(&self, node: &str) -> Result<(), LocalError> {
        self.nodes[self.index(node)?].kill_and_reap();
        tracing::info!(node, "killed");
        Ok(())
    }

    /// Rolls a node's store back to what it had fsynced (`power-loss`). The node must be down,
    /// and the cluster started with `durable_stores`.
    pub fn power_loss(&self, node: &str) -> Result<PowerLoss, LocalError> {
        let i = self.index(node)?;
        let refused = |reason: String| LocalError::Storage {
            node: node.to_string(),
            reason,
        };
        let store = self.durable.get(i).ok_or_else(|| {
            refused(
                "its store is not on the power-loss store (the cluster was started without it; \
                 a run whose scenario has a power-loss fault starts it so)"
                    .into(),
            )
        })?;
        if self.nodes[i].is_running() {
            return Err(refused("a power loss needs the node down first".into()));
        }
        let loss = store
            .power_loss()
            .map_err(|e| refused(format!("the power loss failed: {e}")))?;
        tracing::info!(node, ?loss, "power loss");
        Ok(loss)
    }

    /// Stops a node gracefully (SIGTERM; SIGKILL after a grace period).
    pub async fn stop_node(&self, node: &str) -> Result<(), LocalError> {
        self.nodes[self.index(node)?].stop(STOP_GRACE).await;
        tracing::info!(node, "stopped");
        Ok(())
    }

    /// Starts a node that is not running, on the same ports, config and store; a no-op if it runs.
    /// Returns without waiting for it to be healthy (the caller confirms from `/healthz`).
    pub async fn start_node(&self, node: &str) -> Result<(), LocalError> {
        let i = self.index(node)?;
        let handle = &self.nodes[i];
        if handle.is_running() {
            return Ok(());
        }
        handle
            .write_config(CLUSTER_NAME)
            .map_err(LocalError::io(format!(
                "cannot write {}",
                handle.config_path().display()
            )))?;
        self.spawn_node(i).await?;
        tracing::info!(node, "started");
        Ok(())
    }

    /// Stops a node gracefully and starts it again.
    pub async fn restart_node(&self, node: &str) -> Result<(), LocalError> {
        self.stop_node(node).await?;
        self.start_node(node).await
    }

    /// Freezes a node with SIGSTOP.
    pub fn pause_node(&self, node: &str) -> Result<(), LocalError> {
        self.nodes[self.index(node)?].pause();
        tracing::info!(node, "paused");
        Ok(())
    }

    /// Thaws a paused node with SIGCONT.
    pub fn resume_node(&self, node: &str) -> Result<(), LocalError> {
        self.nodes[self.index(node)?].resume();
        tracing::info!(node, "resumed");
        Ok(())
    }

    /// Holds every byte `from` sends to `to` on their routes (one-way partition).
    pub fn block_link(&self, from: &str, to: &str) -> Result<(), LocalError> {
        Ok(self.mesh.block(from, to)?)
    }

    /// Ends a one-way partition.
    pub fn unblock_link(&self, from: &str, to: &str) -> Result<(), LocalError> {
        Ok(self.mesh.unblock(from, to)?)
    }

    /// Sets latency and bandwidth on the route link between two nodes.
    pub fn shape_link(&self, a: &str, b: &str, shape: LinkShape) -> Result<(), LocalError> {
        Ok(self.mesh.shape_link(a, b, shape)?)
    }

    /// Makes a node's store run out of space (see `storage.rs`); the node is restarted.
    pub async fn fill_storage(&self, node: &str, mode: FillMode) -> Result<(), LocalError> {
        let i = self.index(node)?;
        let handle = &self.nodes[i];
        let failed = |reason: String| LocalError::Storage {
            node: node.to_string(),
            reason,
        };
        if self.filled_mode(i).is_some() {
            return Err(failed("storage is already filled".into()));
        }
        let store = handle.store_dir();
        let used = storage::tree_size(&store).unwrap_or(0);
        handle.stop(STOP_GRACE).await;
        match mode {
            FillMode::Tmpfs => storage::cover_with_tmpfs(&store).map_err(|e| {
                failed(format!(
                    "cannot mount a tmpfs over {}: {e}",
                    store.display()
                ))
            })?,
            FillMode::MaxFileStore => {
                handle.set_max_file_store(Some(used + storage::QUOTA_HEADROOM))
            }
        }
        self.filled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(i, mode);
        self.start_node(node).await?;
        if mode == FillMode::Tmpfs {
            // Give the node a moment to open its store before the last byte goes.
            self.wait_node_answers(i, Duration::from_secs(10)).await;
            let ballast = storage::write_ballast(&store)
                .map_err(|e| failed(format!("cannot write the ballast file: {e}")))?;
            tracing::info!(node, ballast, "storage filled");
        }
        Ok(())
    }

    /// Gives a node's store its space back (the node is restarted); a no-op if it is not filled.
    pub async fn drain_storage(&self, node: &str) -> Result<(), LocalError> {
        let i = self.index(node)?;
        let Some(mode) = self.filled_mode(i) else {
            return Ok(());
        };
        let handle = &self.nodes[i];
        handle.stop(STOP_GRACE).await;
        match mode {
            FillMode::Tmpfs => {
                storage::uncover(&handle.store_dir(), true).map_err(|e| LocalError::Storage {
                    node: node.to_string(),
                    reason: format!("cannot restore the store: {e}"),
                })?
            }
            FillMode::MaxFileStore => handle.set_max_file_store(None),
        }
        self.filled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&i);
        self.start_node(node).await
    }

    fn filled_mode(&self, i: usize) -> Option<FillMode> {
        self.filled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&i)
            .copied()
    }

    /// Waits (bounded) until a node's monitoring port answers at all.
    async fn wait_node_answers(&self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = self.endpoints.nodes[i].monitor_url.clone();
        while Instant::now() < deadline {
            if monitor::healthz(&url).await.is_ok() {
                return;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Heals every link, resumes paused nodes, gives filled storage back and starts stopped nodes.
    pub async fn make_whole(&self) -> Result<(), LocalError> {
        self.mesh.heal_all();
        let mut first_error = None;
        for node in &self.nodes {
            node.resume();
        }
        for i in 0..self.nodes.len() {
            let name = self.nodes[i].name.clone();
            if let Err(err) = self.drain_storage(&name).await {
                first_error.get_or_insert(err);
            }
            if let Err(err) = self.start_node(&name).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Applies one control operation (see `control.rs`).
    pub async fn apply(&self, op: &ControlOp) -> Result<(), LocalError> {
        match op {
            ControlOp::Kill { node } => self.kill_node(node),
            ControlOp::Stop { node } => self.stop_node(node).await,
            ControlOp::Start { node } => self.start_node(node).await,
            ControlOp::Restart { node } => self.restart_node(node).await,
            ControlOp::Pause { node } => self.pause_node(node),
            ControlOp::Resume { node } => self.resume_node(node),
            ControlOp::CutNode { node } => self.cut_node(node),
            ControlOp::HealNode { node } => self.heal_node(node),
            ControlOp::CutLink { a, b } => self.cut_link(a, b),
            ControlOp::HealLink { a, b } => self.heal_link(a, b),
            ControlOp::Block { from, to } => self.block_link(from, to),
            ControlOp::Unblock { from, to } => self.unblock_link(from, to),
            ControlOp::Shape { a, b, shape } => self.shape_link(a, b, *shape),
            ControlOp::FillStorage { node, mode } => self.fill_storage(node, *mode).await,
            ControlOp::DrainStorage { node } => self.drain_storage(node).await,
            ControlOp::MakeWhole => self.make_whole().await,
            ControlOp::Status => Ok(()),
        }
    }

    /// Process state of every node.
    pub fn node_states(&self) -> Vec<NodeState> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| NodeState {
                name: node.name.clone(),
                pid: node.is_running().then(|| node.pid()).flatten(),
                running: node.is_running(),
                paused: node.is_paused(),
                storage_filled: self.filled_mode(i).is_some(),
            })
            .collect()
    }

    /// Stops every node (SIGTERM, then SIGKILL after a grace period) and proxy. The run dir keeps the
    /// configs, logs and stores.
    pub async fn shutdown(self) {
        // A filled store is given back first so no tmpfs stays mounted over a node's dir.
        for i in 0..self.nodes.len() {
            if self.filled_mode(i) == Some(FillMode::Tmpfs) {
                self.nodes[i].kill_and_reap();
                let _ = storage::uncover(&self.nodes[i].store_dir(), true);
            }
        }
        futures::future::join_all(self.nodes.iter().map(|node| node.stop(STOP_GRACE))).await;
        self.mesh.stop();
        tracing::info!(dir = %self.config.dir.display(), "local cluster stopped");
        // Drop finds nothing left to kill.
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill_and_reap();
        }
        for (i, mode) in std::mem::take(
            self.filled
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            if mode == FillMode::Tmpfs {
                let _ = storage::uncover(&self.nodes[i].store_dir(), true);
            }
        }
        self.mesh.stop();
    }
}

fn endpoints_of(node: &Node) -> NodeEndpoints {
    NodeEndpoints {
        name: node.name.clone(),
        client_url: node.client_url(),
        monitor_url: node.monitor_url(),
    }
}

/// `Ok(meta leader)` if the node is healthy with routes to every peer, else why not.
async fn readiness(
    node: &NodeEndpoints,
    cluster: &ClusterEndpoints,
) -> Result<Option<String>, String> {
    let base = node.monitor_url.as_str();
    let (health, routes, jsz) = tokio::join!(
        monitor::healthz(base),
        monitor::routez(base),
        monitor::jsz(base)
    );
    let routes = routes.map_err(|e| format!("monitoring does not answer: {e}"))?;
    let have = routes.peers();
    let missing: Vec<&str> = cluster
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .filter(|&peer| peer != node.name && !have.iter().any(|h| h == peer))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no route to {} (routes to: {})",
            missing.join(", "),
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        ));
    }
    match health.map_err(|e| format!("/healthz does not answer: {e}"))? {
        Health::Ok => {}
        Health::Unhealthy(reason) => return Err(format!("/healthz: {reason}")),
    }
    let jsz = jsz.map_err(|e| format!("/jsz does not answer: {e}"))?;
    Ok(jsz.meta_leader().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs, chaos and reports share a cluster across tasks (`Arc<LocalCluster>`).
    #[test]
    fn a_cluster_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<LocalCluster>();
    }
}
