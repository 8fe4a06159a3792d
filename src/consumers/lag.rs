//! How far a durable consumer is behind its streams, from JetStream's consumer info.
//!
//! This is what the run's timeline records for the indexer (and what `aivo-load indexer` prints every
//! few seconds): `num_pending` (in the stream, not yet delivered), `num_ack_pending` (delivered, not
//! yet acknowledged) and `num_redelivered`. A consumer is caught up when both pending counts are 0.

use async_nats::jetstream;
use serde::Serialize;

use super::ConsumersError;

/// One consumer on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerLag {
    pub stream: String,
    pub consumer: String,
    /// Messages in the stream not yet delivered to the consumer.
    pub num_pending: u64,
    /// Delivered, not yet acknowledged.
    pub num_ack_pending: u64,
    /// Delivered more than once and not yet acknowledged.
    pub num_redelivered: u64,
    /// Highest stream sequence delivered.
    pub delivered_stream_seq: u64,
    /// Every stream sequence up to this one is acknowledged.
    pub ack_floor_stream_seq: u64,
}

/// A consumer across the streams it reads (the indexer reads five).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexerLag {
    pub streams: Vec<ConsumerLag>,
}

impl IndexerLag {
    /// Undelivered messages, all streams.
    pub fn pending(&self) -> u64 {
        self.streams.iter().map(|s| s.num_pending).sum()
    }

    /// Delivered but unacknowledged messages, all streams.
    pub fn ack_pending(&self) -> u64 {
        self.streams.iter().map(|s| s.num_ack_pending).sum()
    }

    /// Redelivered, unacknowledged messages, all streams.
    pub fn redelivered(&self) -> u64 {
        self.streams.iter().map(|s| s.num_redelivered).sum()
    }

    /// Nothing waits to be delivered or acknowledged.
    pub fn is_caught_up(&self) -> bool {
        self.pending() == 0 && self.ack_pending() == 0
    }
}

/// Reads `consumer`'s lag on each of `streams` (one consumer-info request each, bounded by the
/// context's request timeout).
pub async fn read_lag(
    js: &jetstream::Context,
    consumer: &str,
    streams: &[&str],
) -> Result<IndexerLag, ConsumersError> {
    let mut lag = IndexerLag::default();
    for stream in streams {
        let nats = |e: &dyn std::fmt::Display| ConsumersError::Nats {
            what: format!("read consumer {stream}/{consumer}"),
            reason: e.to_string(),
        };
        let handle = js.get_stream_no_info(*stream).await.map_err(|e| nats(&e))?;
        let info = handle.consumer_info(consumer).await.map_err(|e| nats(&e))?;
        lag.streams.push(ConsumerLag {
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            num_pending: info.num_pending,
            num_ack_pending: info.num_ack_pending as u64,
            num_redelivered: info.num_redelivered as u64,
            delivered_stream_seq: info.delivered.stream_sequence,
            ack_floor_stream_seq: info.ack_floor.stream_sequence,
        });
    }
    Ok(lag)
}
