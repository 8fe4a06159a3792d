//! `rolling-restart`: every node restarted in turn (the target last), waiting for the cluster to be
//! whole — every node healthy, full routes, a meta leader — before the next one, as a careful
//! operator upgrades a cluster. Proven by the cluster being whole after the last node; the revert
//! (only needed if interrupted) starts every node.

use super::{Effect, FaultPlan, Step};
use crate::cluster::ControlOp;

/// Restart every node, `node` last.
pub fn plan(node: &str, nodes: &[String]) -> FaultPlan {
    let mut order: Vec<&String> = nodes.iter().filter(|n| *n != node).collect();
    let last = node.to_string();
    order.push(&last);
    let mut steps = Vec::new();
    for name in &order {
        steps.push(Step::Op(ControlOp::Restart {
            node: name.to_string(),
        }));
        steps.push(Step::AwaitWhole);
    }
    FaultPlan {
        steps,
        revert: nodes
            .iter()
            .map(|n| ControlOp::Start { node: n.clone() })
            .collect(),
        effect: Effect::Whole,
        note: Some(format!(
            "order: {}",
            order
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
