//! The `stuck-replica` finding after a run's drain: a stream replica still behind its leader a
//! bound after the run's faults were reverted (`cluster::stuck` looks; this names it for the
//! report). A warning beside the verdict, never a failed check: the run's data is whole on the
//! majority (the ledger check says so), and a restart of the node mends it
//! (`aivo-load heal --restart-stuck` on a kept cluster).

use std::time::{Duration, Instant};

pub use crate::cluster::stuck::StuckReplica;
use crate::cluster::Cluster;

/// The replicas of `cluster` still behind `bound` after `reverted_at`; returns at once when none is.
pub async fn after_faults(
    cluster: &Cluster,
    reverted_at: Instant,
    bound: Duration,
) -> Vec<StuckReplica> {
    let stuck = crate::cluster::stuck::watch(cluster, reverted_at, bound).await;
    for replica in &stuck {
        eprintln!("aivo-load: WARNING: {}", replica.describe());
    }
    stuck
}
