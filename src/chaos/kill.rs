//! `kill`: SIGKILL a node, as a power cut or an OOM kill does; reverted by starting it again on the
//! same ports, config and store. Proven by `/healthz` refusing connections.

use super::{Effect, FaultPlan};
use crate::cluster::ControlOp;

/// Kill `node`; revert: start it.
pub fn plan(node: &str) -> FaultPlan {
    let node = node.to_string();
    FaultPlan::simple(
        ControlOp::Kill { node: node.clone() },
        vec![ControlOp::Start { node: node.clone() }],
        Effect::Down { node },
    )
}
