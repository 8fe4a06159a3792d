//! Clusters the harness runs against (DESIGN.md §2): one handle, one file per backend.
//!
//! - [`Cluster`] (`handle.rs`) is the handle everything else uses: endpoints, status, applying a
//!   [`ControlOp`] (`op.rs`, the vocabulary fault plans are written in), logs, shutdown;
//!   [`ClusterPlan`] starts a run's cluster, [`ClusterRef`] reaches one again for `heal`;
//! - `local`: three embedded `nats-server` children (`node.rs`, binary lookup in `binary.rs`) with
//!   routes through harness-owned, cuttable proxies (`proxy.rs`, latency and bandwidth in
//!   `link_shaping.rs`), stores in `storage.rs`;
//! - `state` / `control`: a local cluster kept in the background by a supervisor process for
//!   `cluster up|status|down` and `run --keep-cluster`, changed through its control socket;
//! - `docker`: the seed's docker-compose cluster in containers, driven through the Docker API
//!   (`docker/`);
//! - `external`: any cluster given by URL; load and checks only;
//! - `commands`: the `cluster` verbs.
//!
//! Health and status come from the monitoring endpoints (`monitor.rs`); `stuck.rs` finds a stream
//! replica that stays behind its leader after the faults were reverted (the `stuck-replica` finding). Nothing outside this folder
//! branches on the backend: it asks [`Cluster`] or [`BackendKind`].

mod backend;
pub mod binary;
pub mod commands;
pub mod control;
pub mod docker;
pub mod durability;
mod endpoints;
pub mod external;
mod handle;
mod link_shaping;
pub mod local;
pub mod monitor;
mod node;
pub mod op;
mod profile_usage;
pub mod proxy;
pub mod rogue;
pub mod state;
pub mod storage;
pub mod stuck;
pub mod workers;

pub use backend::{BackendKind, ClusterProfile};
pub use durability::SyncInterval;
pub use endpoints::{ClusterEndpoints, NodeEndpoints};
pub use handle::{Cluster, ClusterError, ClusterPlan, ClusterRef, Supervised, OWNER_FILE};
pub use op::{ControlOp, NodeState};
pub use state::StateDir;
