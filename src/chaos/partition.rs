//! `partition`: route partitions through the harness's proxies (DESIGN.md §2). Clients still reach
//! every node; only routes are affected.
//!
//! - `isolate` (default): the target loses every route; the others form the majority. Proven by
//!   `/routez` on the target showing 0 routes.
//! - `one-way`: the target's bytes stop reaching its peers while theirs still reach it. Proven by
//!   the peers losing their routes to the target (its pongs never arrive) or their meta group
//!   marking it not current.
//! - `bridge`: the two other nodes lose the route between them and only the target still talks to
//!   both (Jepsen's "bridge"). Proven by `/routez` on one of them no longer listing the other.

use serde::{Deserialize, Serialize};

use super::{Effect, FaultPlan, Step};
use crate::cluster::ControlOp;

/// Which partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionMode {
    #[default]
    Isolate,
    OneWay,
    Bridge,
}

impl std::str::FromStr for PartitionMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "isolate" => Ok(Self::Isolate),
            "one-way" => Ok(Self::OneWay),
            "bridge" => Ok(Self::Bridge),
            other => Err(format!(
                "unknown partition mode {other:?}: expected isolate, one-way or bridge"
            )),
        }
    }
}

/// Partition around `node`.
pub fn plan(node: &str, nodes: &[String], mode: PartitionMode) -> FaultPlan {
    let peers: Vec<&String> = nodes.iter().filter(|n| *n != node).collect();
    let node = node.to_string();
    match mode {
        PartitionMode::Isolate => FaultPlan::simple(
            ControlOp::CutNode { node: node.clone() },
            vec![ControlOp::HealNode { node: node.clone() }],
            Effect::Isolated { node },
        ),
        PartitionMode::OneWay => FaultPlan {
            steps: peers
                .iter()
                .map(|p| {
                    Step::Op(ControlOp::Block {
                        from: node.clone(),
                        to: p.to_string(),
                    })
                })
                .collect(),
            revert: peers
                .iter()
                .map(|p| ControlOp::Unblock {
                    from: node.clone(),
                    to: p.to_string(),
                })
                .collect(),
            effect: Effect::Unheard { node },
            note: None,
        },
        PartitionMode::Bridge => {
            let (a, b) = match peers.as_slice() {
                [a, b, ..] => (a.to_string(), b.to_string()),
                // Fewer than three nodes: nothing to bridge; cut the node off instead.
                _ => return plan(&node, nodes, PartitionMode::Isolate),
            };
            FaultPlan::simple(
                ControlOp::CutLink {
                    a: a.clone(),
                    b: b.clone(),
                },
                vec![ControlOp::HealLink {
                    a: a.clone(),
                    b: b.clone(),
                }],
                Effect::Split { a, b },
            )
        }
    }
}
