//! Checks that end a run in a verdict (`streams.rs` runs the per-stream ones after the drain):
//! thresholds on the run's figures, the stream-count check
//! that ties the ledger to what JetStream holds, the ledger check (no_loss), the retention check on
//! streams with overridden limits, the indexer's catch-up check, and the DLQ check of injected
//! poison, the replicas check (each node's copy of a stream against the others, after faults),
//! the per-replica read-back (`replica_read.rs`: each replica read as leader in turn, message by
//! message, when the leader's count disagreed with the read-back or replicas may differ), the
//! disaster-recovery check of a drill's restored streams (`recovery.rs`);
//! and one finding that is no check: a stream replica stuck behind its leader after the
//! faults were reverted (`stuck.rs`).

pub mod catch_up;
pub mod dlq;
pub mod faults;
pub mod no_loss;
pub mod production;
pub mod recovery;
pub mod replica_read;
pub mod replicas;
pub mod retention;
pub mod safety;
pub mod security;
pub mod stream_count;
pub mod streams;
pub mod stuck;
pub mod thresholds;
