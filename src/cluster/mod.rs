//! Clusters the harness runs against (DESIGN.md §2): one enum, one file per backend.
//!
//! - `local`: three embedded `nats-server` children (`node.rs`, binary lookup in `binary.rs`) with
//!   routes through harness-owned, cuttable proxies (`proxy.rs`);
//! - `state` / `commands`: a local cluster kept in the background by a supervisor process for
//!   `cluster up|status|down` and `run --keep-cluster`;
//! - `docker`: the seed's docker-compose cluster in containers, driven through the Docker API
//!   (`docker/`);
//! - `external`: any cluster given by URL; load and checks only.
//!
//! Everything else talks to a cluster through [`ClusterEndpoints`]: the client and monitoring URLs of
//! each node. Health and status come from the monitoring endpoints (`monitor.rs`).

pub mod binary;
pub mod commands;
pub mod control;
pub mod docker;
mod link_shaping;
pub mod local;
pub mod monitor;
mod node;
pub mod proxy;
pub mod state;
pub mod storage;

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
