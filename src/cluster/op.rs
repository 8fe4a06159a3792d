//! The vocabulary of changes to a cluster: one [`ControlOp`] per change (kill a node, cut a link,
//! add latency, fill a store...), and [`NodeState`], a node as its owner sees it.
//!
//! Fault plans are written in this vocabulary and every backend interprets it: the local cluster in
//! process (`local.rs`) or through its supervisor's socket (`control.rs`), the docker backend through
//! the Docker API (`docker/faults.rs`). The same value is written into the fault journal as the way
//! to revert a fault, so `aivo-load heal` can replay it long after the process that applied it died.

use serde::{Deserialize, Serialize};

use super::proxy::LinkShape;
use super::storage::FillMode;

/// One change to a local cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum ControlOp {
    /// SIGKILL the node and reap it.
    Kill { node: String },
    /// SIGTERM the node and wait for it to exit (SIGKILL after a grace period).
    Stop { node: String },
    /// Start the node on its ports, config and store, if it is not running.
    Start { node: String },
    /// Stop, then start.
    Restart { node: String },
    /// SIGSTOP.
    Pause { node: String },
    /// SIGCONT.
    Resume { node: String },
    /// Isolate the node from its peers (clients still reach it).
    CutNode { node: String },
    /// End an isolation.
    HealNode { node: String },
    /// Cut the routes between two nodes.
    CutLink { a: String, b: String },
    /// Restore the routes between two nodes.
    HealLink { a: String, b: String },
    /// Hold every byte `from` sends to `to` (one-way partition).
    Block { from: String, to: String },
    /// End a one-way partition.
    Unblock { from: String, to: String },
    /// Set latency and bandwidth on a link (a clear shape removes them).
    Shape {
        a: String,
        b: String,
        shape: LinkShape,
    },
    /// Make the node's store run out of space.
    FillStorage { node: String, mode: FillMode },
    /// Give the node's store its space back.
    DrainStorage { node: String },
    /// Heal every link, resume paused nodes, give storage back and start stopped nodes.
    MakeWhole,
    /// Change nothing; the reply lists the nodes.
    Status,
}

impl ControlOp {
    /// A short human form, for logs and the timeline.
    pub fn describe(&self) -> String {
        match self {
            Self::Kill { node } => format!("kill {node}"),
            Self::Stop { node } => format!("stop {node}"),
            Self::Start { node } => format!("start {node}"),
            Self::Restart { node } => format!("restart {node}"),
            Self::Pause { node } => format!("pause {node}"),
            Self::Resume { node } => format!("resume {node}"),
            Self::CutNode { node } => format!("isolate {node}"),
            Self::HealNode { node } => format!("end isolation of {node}"),
            Self::CutLink { a, b } => format!("cut {a}<->{b}"),
            Self::HealLink { a, b } => format!("heal {a}<->{b}"),
            Self::Block { from, to } => format!("block {from}->{to}"),
            Self::Unblock { from, to } => format!("unblock {from}->{to}"),
            Self::Shape { a, b, shape } if shape.is_clear() => format!("unshape {a}<->{b}"),
            Self::Shape { a, b, shape } => format!(
                "shape {a}<->{b} latency {}ms bandwidth {}",
                shape.latency_ms,
                shape
                    .bandwidth
                    .map_or("unlimited".to_string(), |b| format!("{b} B/s"))
            ),
            Self::FillStorage { node, mode } => format!("fill storage of {node} ({mode:?})"),
            Self::DrainStorage { node } => format!("drain storage of {node}"),
            Self::MakeWhole => "make whole".to_string(),
            Self::Status => "status".to_string(),
        }
    }
}

/// One node as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    /// `None` when no process runs.
    pub pid: Option<u32>,
    pub running: bool,
    pub paused: bool,
    /// Storage is filled (tmpfs mounted or quota lowered).
    pub storage_filled: bool,
}
