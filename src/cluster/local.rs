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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::binary::{self, BinaryError, NatsServerBinary};
use super::monitor::{self, Health};
use super::node::{DeadAddress, Node, NodePorts, PortReservation, Spawner};
use super::proxy::{MeshError, ProxyStats, RouteMesh};
use super::{ClusterEndpoints, NodeEndpoints};

/// The cluster name, as in the seed's docker-compose.
pub const CLUSTER_NAME: &str = "aivo";

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
}

impl LocalClusterConfig {
    /// Three nodes under `dir`, the binary found from the environment, 20 s to come up.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            nats_server: None,
            nodes: 3,
            startup_timeout: Duration::from_secs(20),
        }
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
    /// Dropped after the nodes are reaped (field order), so no death signal races the shutdown.
    spawner: Spawner,
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
        let spawner =
            Spawner::start().map_err(LocalError::io("cannot start the spawner thread"))?;
        let nodes: Vec<Node> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Node::new(
                    name.clone(),
                    config.dir.join(name),
                    ports[i],
                    dead_addresses[i].addr,
                    mesh.routes_of(i),
                )
            })
            .collect();
        for node in &nodes {
            node.write_config(CLUSTER_NAME)
                .map_err(LocalError::io(format!(
                    "cannot write {}",
                    node.config_path().display()
                )))?;
        }
        let mut cluster = Self {
            endpoints: ClusterEndpoints {
                nodes: nodes.iter().map(endpoints_of).collect(),
            },
            config,
            binary,
            nodes,
            mesh,
            _dead_addresses: dead_addresses,
            spawner,
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
        node.spawn(&self.binary.path, &self.spawner)
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

    /// Stops every node (SIGTERM, then SIGKILL after a grace period) and proxy. The run dir keeps the
    /// configs, logs and stores.
    pub async fn shutdown(self) {
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
