//! `stop`: SIGTERM a node (graceful shutdown: it leaves the cluster cleanly and flushes its store);
//! reverted by starting it again. Proven by `/healthz` refusing connections.

use super::{Effect, FaultPlan};
use crate::cluster::ControlOp;

/// Stop `node` gracefully; revert: start it.
pub fn plan(node: &str) -> FaultPlan {
    let node = node.to_string();
    FaultPlan::simple(
        ControlOp::Stop { node: node.clone() },
        vec![ControlOp::Start { node: node.clone() }],
        Effect::Down { node },
    )
}
