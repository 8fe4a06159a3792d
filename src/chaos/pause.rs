//! `pause`: SIGSTOP a node — its sockets stay open but nothing answers, like a long GC pause or a
//! hung VM; peers see it by missed heartbeats. Reverted by SIGCONT. Proven by `/healthz` accepting
//! the connection but never answering.

use super::{Effect, FaultPlan};
use crate::cluster::ControlOp;

/// Pause `node`; revert: resume it.
pub fn plan(node: &str) -> FaultPlan {
    let node = node.to_string();
    FaultPlan::simple(
        ControlOp::Pause { node: node.clone() },
        vec![ControlOp::Resume { node: node.clone() }],
        Effect::Frozen { node },
    )
}
