//! Where a cluster can be reached: each node's name, client URL and monitoring URL. Everything
//! outside `src/cluster/` talks to a cluster through these (and the [`Cluster`](super::Cluster)
//! handle that gives them).

use serde::{Deserialize, Serialize};

/// Where one node can be reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeEndpoints {
    /// `nats1`, `nats2`, ... (the server_name).
    pub name: String,
    /// `nats://127.0.0.1:PORT`.
    pub client_url: String,
    /// `http://127.0.0.1:PORT` (monitoring).
    pub monitor_url: String,
}

/// Where a whole cluster can be reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ClusterEndpoints {
    /// In node order (`nats1` first).
    pub nodes: Vec<NodeEndpoints>,
}

impl ClusterEndpoints {
    /// Every node's client URL, for a client that should fail over between them.
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_url.clone()).collect()
    }

    /// The client URLs joined with commas, as `--server` and `NATS_URL` take them. (`async_nats::connect`
    /// does not split this form; give it [`ClusterEndpoints::client_urls`].)
    pub fn server_list(&self) -> String {
        self.client_urls().join(",")
    }
}
