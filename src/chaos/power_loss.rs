//! `power-loss`: a node loses every write it did not fsync, as a machine losing power does (the
//! page cache is gone, the disk keeps what was synced). Jepsen's NATS 2.12.1 analysis lost
//! acknowledged writes this way under coordinated power failure, because JetStream acknowledges at
//! once and fsyncs only every `sync_interval` (two minutes by default).
//!
//! A run whose scenario has this fault serves each node's store through the power-loss store
//! (`durable_fs`, a FUSE passthrough that journals what each fsync made durable), so the fault is
//! real: kill the node, roll every file of its store back to its last fsynced state, start it.
//! The bytes discarded are journaled and confirm the fault; nothing can revert it, so `heal` only
//! starts the nodes. Targets: one node (a name, `random`, `leader:STREAM`, …), `minority` (one
//! node of three), or `all` (a coordinated power failure: every node down before any is rolled
//! back, then all started together). Only the local backend's own run cluster has the mounts;
//! without root or `/dev/fuse` the run is refused with the reason before the cluster starts.

use super::{Effect, FaultPlan, Step};
use crate::cluster::ControlOp;

/// The node name a fault plan gets for target `all`.
pub const ALL_NODES: &str = "all";

/// Kill `node` (or every node of `nodes` for [`ALL_NODES`]), lose what it did not fsync, start it.
pub fn plan(node: &str, nodes: &[String]) -> FaultPlan {
    let targets: Vec<String> = if node == ALL_NODES {
        nodes.to_vec()
    } else {
        vec![node.to_string()]
    };
    let mut steps = Vec::new();
    steps.extend(
        targets
            .iter()
            .map(|n| Step::Op(ControlOp::Kill { node: n.clone() })),
    );
    steps.extend(
        targets
            .iter()
            .map(|n| Step::Await(Effect::Down { node: n.clone() })),
    );
    steps.extend(targets.iter().map(|n| Step::PowerLoss { node: n.clone() }));
    let starts: Vec<ControlOp> = targets
        .iter()
        .map(|n| ControlOp::Start { node: n.clone() })
        .collect();
    steps.extend(starts.iter().cloned().map(Step::Op));
    FaultPlan {
        steps,
        revert: starts,
        effect: Effect::Running {
            node: node.to_string(),
        },
        note: Some(
            "every write not fsynced is lost; cannot be reverted (heal only starts the nodes)"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinated_power_failure_takes_every_node_down_before_any_is_rolled_back() {
        let nodes: Vec<String> = (1..=3).map(|i| format!("nats{i}")).collect();
        let plan = plan(ALL_NODES, &nodes);
        let kinds: Vec<&str> = plan
            .steps
            .iter()
            .map(|s| match s {
                Step::Op(ControlOp::Kill { .. }) => "kill",
                Step::Await(_) => "await",
                Step::PowerLoss { .. } => "loss",
                Step::Op(ControlOp::Start { .. }) => "start",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "kill", "kill", "kill", "await", "await", "await", "loss", "loss", "loss", "start",
                "start", "start"
            ]
        );
        assert_eq!(plan.revert.len(), 3);
        assert_eq!(
            plan.effect,
            Effect::Running {
                node: ALL_NODES.into()
            }
        );
        let one = super::plan("nats2", &nodes);
        assert_eq!(one.steps.len(), 4);
        assert_eq!(
            one.effect,
            Effect::Running {
                node: "nats2".into()
            }
        );
    }
}
