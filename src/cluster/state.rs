//! State of a background local cluster started by `cluster up` (skeleton).

use crate::cli::StateArgs;
use crate::cluster::ClusterEndpoints;

/// The server list commands use when given no `--server`: the local cluster from `cluster up` if one
/// runs, else the seed's `nats://127.0.0.1:4222`.
pub fn default_server(_state: &StateArgs) -> String {
    "nats://127.0.0.1:4222".to_string()
}

pub struct ClusterState {
    pub endpoints: ClusterEndpoints,
}

pub fn spawn_background(_state: &StateArgs) -> anyhow::Result<ClusterState> {
    anyhow::bail!("not built")
}
