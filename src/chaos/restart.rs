//! `restart`: a graceful stop and an immediate start on the same ports and store (a deploy of one
//! node). Proven by the node answering `/healthz` again with a new process; the journal still
//! records a start, in case the harness dies between stop and start.

use super::{Effect, FaultPlan};
use crate::cluster::ControlOp;

/// Restart `node`; revert (only needed if interrupted midway): start it.
pub fn plan(node: &str) -> FaultPlan {
    let node = node.to_string();
    FaultPlan::simple(
        ControlOp::Restart { node: node.clone() },
        vec![ControlOp::Start { node: node.clone() }],
        Effect::Back { node },
    )
}
