//! The embedded backend: three `nats-server` children on free loopback ports.
//! (Skeleton; filled in by the local-backend work.)

use std::path::PathBuf;
use std::time::Duration;

use super::ClusterEndpoints;

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
    #[error("not built yet")]
    NotBuilt,
}

/// A running local cluster; dropping it kills the nodes.
#[derive(Debug)]
pub struct LocalCluster {
    endpoints: ClusterEndpoints,
    version: String,
}

impl LocalCluster {
    pub async fn start(_config: LocalClusterConfig) -> Result<Self, LocalError> {
        Err(LocalError::NotBuilt)
    }
    pub fn endpoints(&self) -> &ClusterEndpoints {
        &self.endpoints
    }
    /// `nats-server --version` of the binary the nodes run, e.g. `v2.15.1`.
    pub fn nats_server_version(&self) -> &str {
        &self.version
    }
    /// Stops every node and proxy and removes nothing (the run dir keeps the logs).
    pub async fn shutdown(self) {}
}
