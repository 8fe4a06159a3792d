//! The chaos engine (DESIGN.md §7): faults against a cluster aivo-load manages, always reverted.
//!
//! - [`Fault`] is the enum; each variant's plan (what to apply, how to revert, which effect proves it
//!   happened) lives in its own file: `kill.rs`, `stop.rs`, `restart.rs`, `pause.rs`,
//!   `partition.rs`, `latency.rs`, `bandwidth.rs`, `fill_storage.rs`, `rolling_restart.rs`,
//!   `corrupt_store.rs` (a fault that changes a store's bytes, journaled, never reverted),
//!   `power_loss.rs` (a node loses what it did not fsync, on the power-loss store),
//!   and `kill_indexer.rs` (the run's indexer process rather than a node);
//! - `target.rs` turns `nats2`, `random`, `leader:STREAM`, `meta-leader` into a node;
//! - `effect.rs` confirms a fault's effect, and the cluster's recovery, from the monitoring endpoints
//!   and real client traffic, with the moment it was seen;
//! - `journal.rs` appends (and fsyncs) every fault's revert before applying it; `engine.rs` applies and
//!   reverts; `guard.rs` reverts what is still active when its owner ends, panics included;
//!   `heal.rs` reverts what a SIGKILLed harness left behind;
//! - `schedule.rs` (fixed times from the scenario) and `nemesis.rs` (seeded random faults) drive it.
//!
//! Faults reach the cluster as [`ControlOp`]s through the one [`Cluster`](crate::cluster::Cluster)
//! handle, whichever backend is behind it (in process, a `cluster up` supervisor's control socket,
//! the Docker API); an external cluster refuses them. Load, checks and reports are left to others; they receive
//! [`FaultEvent`]s for the timeline.

pub mod bandwidth;
pub mod commands;
pub mod corrupt_store;
pub mod effect;
pub mod engine;
pub mod fill_storage;
pub mod guard;
pub mod heal;
pub mod journal;
pub mod kill;
pub mod kill_indexer;
pub mod latency;
pub mod nemesis;
pub mod partition;
pub mod pause;
pub mod power_loss;
pub mod restart;
pub mod rolling_restart;
pub mod run_hook;
pub mod schedule;
pub mod stop;
pub mod target;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::storage::FillMode;
use crate::cluster::{ClusterError, ControlOp};
pub use effect::Effect;
pub use engine::{ChaosEngine, FaultEvent};
pub use partition::PartitionMode;
pub use target::Target;

/// One fault, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL the node; revert: start it on the same ports and store.
    Kill,
    /// SIGTERM the node (graceful); revert: start it.
    Stop,
    /// Stop and start the node at once; nothing to revert.
    Restart,
    /// SIGSTOP the node; revert: SIGCONT.
    Pause,
    /// Cut the node off its peers' routes (clients still reach it).
    Partition { mode: PartitionMode },
    /// Added latency on every route link of the node.
    Latency { latency_ms: u64 },
    /// A bandwidth limit on every route link of the node.
    Bandwidth { bytes_per_second: u64 },
    /// The node's store runs out of space.
    FillStorage { mode: FillMode },
    /// Every node restarted in turn, waiting for the cluster to be whole between nodes (the target
    /// goes last).
    RollingRestart,
    /// SIGKILL the run's indexer process (target `indexer`); revert: start a new one.
    KillIndexer,
    /// Kill the node, damage one class of a stream's store files, start it; cannot be reverted.
    CorruptStore(corrupt_store::CorruptSpec),
    /// Kill the node (or all, target `all`), lose every write not fsynced, start it; cannot be
    /// reverted.
    PowerLoss,
}

/// Whether the fault named `name` damages what a node has stored (a safety fault, after which
/// replicas may disagree): the run then reads every replica's copy (`checks::replica_read`).
pub fn is_safety_fault(name: &str) -> bool {
    name == "corrupt-store" || name == "power-loss"
}

impl Fault {
    /// The name used in scenario files and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Pause => "pause",
            Self::Partition { .. } => "partition",
            Self::Latency { .. } => "latency",
            Self::Bandwidth { .. } => "bandwidth",
            Self::FillStorage { .. } => "fill-storage",
            Self::RollingRestart => "rolling-restart",
            Self::KillIndexer => kill_indexer::NAME,
            Self::CorruptStore(_) => "corrupt-store",
            Self::PowerLoss => "power-loss",
        }
    }

    /// True for every fault: each one changes a cluster, so none may run against a cluster the
    /// harness does not own (`guard::refuse_external`). Kept as a method so a future read-only
    /// fault (e.g. a probe) can say otherwise.
    pub fn is_destructive(&self) -> bool {
        true
    }

    /// What to do against `node` of a cluster whose nodes are `nodes`.
    pub fn plan(&self, node: &str, nodes: &[String]) -> FaultPlan {
        match self {
            Self::Kill => kill::plan(node),
            Self::Stop => stop::plan(node),
            Self::Restart => restart::plan(node),
            Self::Pause => pause::plan(node),
            Self::Partition { mode } => partition::plan(node, nodes, *mode),
            Self::Latency { latency_ms } => latency::plan(node, nodes, *latency_ms),
            Self::Bandwidth { bytes_per_second } => bandwidth::plan(node, nodes, *bytes_per_second),
            Self::FillStorage { mode } => fill_storage::plan(node, *mode),
            Self::RollingRestart => rolling_restart::plan(node, nodes),
            Self::KillIndexer => kill_indexer::plan(),
            Self::CorruptStore(spec) => corrupt_store::plan(node, spec),
            Self::PowerLoss => power_loss::plan(node, nodes),
        }
    }
}

/// A fault at a time on the run's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    pub at: Duration,
    pub fault: Fault,
    pub target: Target,
    /// Revert after this long; `None`: at the end of the run.
    pub hold: Option<Duration>,
    /// How long its revert may take to leave a whole cluster; `None`: [`RECOVERY_TIMEOUT`].
    pub recovery: Option<Duration>,
}

/// One step of applying a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Change the cluster.
    Op(ControlOp),
    /// Wait (bounded) until the cluster is whole again.
    AwaitWhole,
    /// Wait until an effect shows, then go on.
    Await(Effect),
    /// Damage the (down) node's store files on this machine, journaling every changed byte.
    CorruptStore(corrupt_store::CorruptSpec),
    /// Roll the (down) node's store back to what it had fsynced, journaling what was discarded.
    PowerLoss { node: String },
}

/// How one fault is applied, proven and reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    pub steps: Vec<Step>,
    /// Journaled before the first step; applied in order to revert.
    pub revert: Vec<ControlOp>,
    /// What shows the fault took effect.
    pub effect: Effect,
    /// Said in the report next to the fault (e.g. how storage is filled).
    pub note: Option<String>,
}

impl FaultPlan {
    fn simple(op: ControlOp, revert: Vec<ControlOp>, effect: Effect) -> Self {
        Self {
            steps: vec![Step::Op(op)],
            revert,
            effect,
            note: None,
        }
    }
}

/// How long an effect may take to show after a fault is applied. Generous: on a busy 2-core machine
/// a route drop or a JetStream shutdown can take seconds.
pub const EFFECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a revert may take to give a whole cluster back (a restarted node catches up first).
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of the chaos engine.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("fault journal {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot resolve target {target}: {reason}")]
    Target { target: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("no active fault with id {0}")]
    UnknownFault(String),
}

impl From<ChaosError> for crate::exit::AppError {
    fn from(error: ChaosError) -> Self {
        match error {
            ChaosError::Usage(_) => crate::exit::AppError::usage(error),
            ChaosError::Cluster(error) => error.into(),
            _ => crate::exit::AppError::environment(error),
        }
    }
}
