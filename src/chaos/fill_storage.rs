//! `fill-storage`: the target's JetStream store runs out of space (`cluster/storage.rs` says how:
//! a size-limited tmpfs plus ballast as root, else a lowered `max_file_store`; the note in the
//! report names the one used). Both restart the node. Proven by the node's `/jsz` reporting
//! JetStream disabled or its `/healthz` failing (tmpfs mode), or by its `/jsz` reporting a
//! `max_storage` with almost no room left above what it stores (quota mode, where the node stays up
//! and the traffic fills the rest).

use super::{Effect, FaultPlan};
use crate::cluster::storage::FillMode;
use crate::cluster::ControlOp;

/// Fill `node`'s store; revert: give the space back.
pub fn plan(node: &str, mode: FillMode) -> FaultPlan {
    let node = node.to_string();
    let effect = match mode {
        FillMode::Tmpfs => Effect::StorageFull { node: node.clone() },
        FillMode::MaxFileStore => Effect::StorageCapped { node: node.clone() },
    };
    let mut plan = FaultPlan::simple(
        ControlOp::FillStorage {
            node: node.clone(),
            mode,
        },
        vec![ControlOp::DrainStorage { node }],
        effect,
    );
    plan.note = Some(mode.describe().to_string());
    plan
}
