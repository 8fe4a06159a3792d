//! Checks that end a run in a verdict: thresholds on the run's figures, and the stream-count check
//! that ties the ledger to what JetStream holds, the DLQ check of injected poison.

pub mod dlq;
pub mod no_loss;
pub mod stream_count;
pub mod thresholds;
