//! What a stream worker does with the messages of one batch (the loop around it is `worker.rs`):
//! poison is routed to the DLQ and terminated; valid events are written to the sink (`indexer.rs`,
//! `analytics.rs`) in one transaction, the batch split in halves around rows Postgres refuses; what
//! was committed is acknowledged, the rest nak'ed with a backoff, or, on its last delivery, routed to
//! the DLQ by the worker itself (reason `max_deliveries`). The indexer records the DLQ stream's own
//! messages as `dead_letters` rows.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, Message};
use tokio_postgres::Client;

use super::affinity::Nodes;
use super::dlq::{self, DeadLetter, DLQ_STREAM};
use super::envelope::{self, Poison};
use super::sink::{Parsed, Sink, WriteError};
use super::stats::ConsumerStats;
use super::{analytics, indexer};
use crate::event::poison::PoisonKind;

/// Nak delay for the first delivery; doubled per delivery, capped at [`NAK_DELAY_MAX`].
pub(crate) const NAK_DELAY_BASE: Duration = Duration::from_secs(1);
const NAK_DELAY_MAX: Duration = Duration::from_secs(30);

/// The nak delay for a message delivered `delivered` times: 1 s, 2 s, 4 s, ... up to 30 s.
pub fn nak_delay(delivered: i64) -> Duration {
    let exponent = delivered.clamp(1, 16) as u32 - 1;
    NAK_DELAY_BASE
        .saturating_mul(1u32 << exponent)
        .min(NAK_DELAY_MAX)
}

/// What every stream worker of one consumer process shares. It lives here, below the loop in
/// `worker.rs`, because the handling of each batch reads it as well.
pub(crate) struct Shared {
    pub js: jetstream::Context,
    pub consumer: String,
    pub sink: Sink,
    pub postgres_url: String,
    pub batch: usize,
    pub stats: Arc<ConsumerStats>,
    /// The cluster's servers by name, for pulling through the consumer leader's server.
    pub nodes: Nodes,
}

fn delivered(message: &Message) -> i64 {
    message.info().map(|i| i.delivered).unwrap_or(1)
}

fn stream_seq(message: &Message) -> u64 {
    message.info().map(|i| i.stream_sequence).unwrap_or(0)
}

/// The stream a worker reads and its consumer's max deliver.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub stream: String,
    pub max_deliver: i64,
}

async fn nak_with_backoff(shared: &Shared, place: &Place, message: &Message, why: &str) {
    let delay = nak_delay(delivered(message));
    nak_or_give_up(shared, place, message, Some(delay), why).await;
}

/// Naks `message` (after `delay`), unless this was its last delivery: then the worker routes it to
/// the DLQ itself (reason `max_deliveries`, `why` as the error) and terminates it. Left to the
/// server, an exhausted event is announced only by an advisory, a core NATS message that a router
/// disconnected at that moment never sees, and the event would stay behind unrouted. The router
/// still catches what the worker could not route (the DLQ unavailable); both use the same DLQ
/// message id, so an event routed by both is stored once.
pub(crate) async fn nak_or_give_up(
    shared: &Shared,
    place: &Place,
    message: &Message,
    delay: Option<Duration>,
    why: &str,
) {
    let deliveries = delivered(message);
    let last = place.max_deliver > 0 && deliveries >= place.max_deliver;
    if last && place.stream != DLQ_STREAM {
        let letter = DeadLetter {
            subject: message.subject.to_string(),
            stream: place.stream.clone(),
            stream_seq: stream_seq(message),
            consumer: shared.consumer.clone(),
            deliveries,
            reason: PoisonKind::MaxDeliveries,
            error: format!(
                "{} gave up after {deliveries} deliveries: {why}",
                shared.consumer
            ),
            payload: message.payload.clone(),
            headers: message.headers.clone(),
        };
        match dlq::route(&shared.js, &letter).await {
            Ok(()) => {
                let _ = message.ack_with(AckKind::Term).await;
                shared.stats.exhausted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!("{e}; leaving it to the max-deliveries router"),
        }
    }
    let _ = message.ack_with(AckKind::Nak(delay)).await;
    shared.stats.naks.fetch_add(1, Ordering::Relaxed);
}

/// Handles one batch. `Err(())` means Postgres is unavailable (the batch has been nak'ed).
pub(crate) async fn process(
    shared: &Shared,
    place: &Place,
    pg: &mut Client,
    batch: Vec<Message>,
) -> Result<(), ()> {
    let stream = place.stream.as_str();
    if stream == DLQ_STREAM {
        return match shared.sink {
            Sink::Indexer => record_dead_letters(shared, place, pg, batch).await,
            // Nothing else reads the DLQ; acknowledge rather than loop on it.
            Sink::Analytics => {
                for m in &batch {
                    let _ = m.ack().await;
                }
                Ok(())
            }
        };
    }
    // Sort the batch: valid events to write, poison to the DLQ.
    let Sorted { valid, poison } = sort(&batch, stream);
    route_poison(shared, place, &batch, poison).await;
    if valid.is_empty() {
        return Ok(());
    }
    let written = write_valid(shared, place, pg, &batch, &valid).await?;
    let started = std::time::Instant::now();
    for (k, (i, _)) in valid.iter().enumerate() {
        if written.committed[k] {
            let _ = batch[*i].ack().await;
        }
    }
    shared
        .stats
        .ack_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    for (k, why) in &written.refused {
        nak_with_backoff(shared, place, &batch[valid[*k].0], why).await;
    }
    Ok(())
}

/// A batch sorted by the envelope checks, each event with its index in the batch.
struct Sorted<'a> {
    valid: Vec<(usize, Parsed<'a>)>,
    poison: Vec<(usize, Poison)>,
}

/// Splits `batch` into the events that pass the envelope checks and the poison.
fn sort<'a>(batch: &'a [Message], stream: &'a str) -> Sorted<'a> {
    let mut valid: Vec<(usize, Parsed<'_>)> = Vec::with_capacity(batch.len());
    let mut poison: Vec<(usize, Poison)> = Vec::new();
    for (i, message) in batch.iter().enumerate() {
        let msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str());
        match envelope::parse(&message.subject, stream, msg_id, &message.payload) {
            Ok(envelope) => valid.push((
                i,
                Parsed {
                    subject: message.subject.as_str(),
                    stream,
                    stream_seq: stream_seq(message),
                    envelope,
                    payload: &message.payload,
                },
            )),
            Err(p) => poison.push((i, p)),
        }
    }
    Sorted { valid, poison }
}

/// Routes each poison event of `batch` to the DLQ and terminates it; naks it with backoff if the
/// DLQ does not take it.
async fn route_poison(
    shared: &Shared,
    place: &Place,
    batch: &[Message],
    poison: Vec<(usize, Poison)>,
) {
    for (i, p) in poison {
        let message = &batch[i];
        let letter = DeadLetter {
            subject: message.subject.to_string(),
            stream: place.stream.clone(),
            stream_seq: stream_seq(message),
            consumer: shared.consumer.clone(),
            deliveries: delivered(message),
            reason: p.kind,
            error: p.error,
            payload: message.payload.clone(),
            headers: message.headers.clone(),
        };
        match dlq::route(&shared.js, &letter).await {
            Ok(()) => {
                let _ = message.ack_with(AckKind::Term).await;
                shared.stats.poison.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!("{e}; will retry");
                nak_with_backoff(shared, place, message, "the DLQ did not take the poison").await;
            }
        }
    }
}

/// What writing a batch's valid events came to, Postgres reachable throughout.
struct Written {
    /// Per valid event: committed (to be acknowledged).
    committed: Vec<bool>,
    /// The valid events Postgres refused on their own (their index in `valid`), and why.
    refused: Vec<(usize, String)>,
}

/// Writes the `valid` events of `batch`, splitting around rows Postgres refuses. `Err(())` when
/// Postgres became unavailable: what was committed has been acknowledged, the rest nak'ed.
async fn write_valid(
    shared: &Shared,
    place: &Place,
    pg: &mut Client,
    batch: &[Message],
    valid: &[(usize, Parsed<'_>)],
) -> Result<Written, ()> {
    // A batch of first deliveries is unlikely to hold known events (the indexer's fast path).
    let maybe_seen = valid.iter().any(|(i, _)| delivered(&batch[*i]) > 1);
    // (start, end) index ranges of `valid` still to write.
    let mut pending: Vec<(usize, usize)> = vec![(0, valid.len())];
    let mut written = Written {
        committed: vec![false; valid.len()],
        refused: Vec::new(),
    };
    while let Some((start, end)) = pending.pop() {
        let range = start..end;
        match write_range(shared, pg, &valid[range.clone()], maybe_seen).await {
            Ok(new_rows) => {
                shared.stats.written.fetch_add(new_rows, Ordering::Relaxed);
                shared
                    .stats
                    .duplicates
                    .fetch_add(range.len() as u64 - new_rows, Ordering::Relaxed);
                for w in &mut written.committed[range] {
                    *w = true;
                }
            }
            Err(WriteError::Unavailable(e)) => {
                shared.stats.db_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("write failed, Postgres unavailable: {e}");
                // Acknowledge what was committed; nak the rest with backoff.
                settle_unavailable(shared, place, batch, valid, &written.committed).await;
                return Err(());
            }
            Err(WriteError::Refused(e)) => {
                shared.stats.db_errors.fetch_add(1, Ordering::Relaxed);
                if range.len() == 1 {
                    tracing::warn!(
                        "{}/{}#{}: Postgres refused the event: {e}",
                        shared.consumer,
                        place.stream,
                        valid[range.start].1.stream_seq
                    );
                    written.refused.push((range.start, refusal(&e)));
                } else {
                    let mid = range.start + range.len() / 2;
                    pending.push((mid, range.end));
                    pending.push((range.start, mid));
                }
            }
        }
    }
    Ok(written)
}

/// Acknowledges the `valid` events of `batch` that were `committed` before Postgres went away and
/// naks the rest with backoff.
async fn settle_unavailable(
    shared: &Shared,
    place: &Place,
    batch: &[Message],
    valid: &[(usize, Parsed<'_>)],
    committed: &[bool],
) {
    for (k, (i, _)) in valid.iter().enumerate() {
        if committed[k] {
            let _ = batch[*i].ack().await;
        } else {
            nak_with_backoff(shared, place, &batch[*i], "Postgres unavailable").await;
        }
    }
}

/// Writes `events` into the sink in one transaction, timing it; returns how many were new.
async fn write_range(
    shared: &Shared,
    pg: &mut Client,
    events: &[(usize, Parsed<'_>)],
    maybe_seen: bool,
) -> Result<u64, WriteError> {
    let events: Vec<&Parsed<'_>> = events.iter().map(|(_, p)| p).collect();
    let started = std::time::Instant::now();
    let result = match shared.sink {
        Sink::Indexer => indexer::write_events(pg, &events, maybe_seen).await,
        Sink::Analytics => analytics::write_events(pg, &events).await,
    };
    shared
        .stats
        .write_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    result
}

/// Why Postgres refused an event, for its nak and, on its last delivery, its dead letter.
fn refusal(e: &tokio_postgres::Error) -> String {
    format!(
        "Postgres refused the event: {}",
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string())
    )
}

/// The indexer's handling of the DLQ stream: each dead letter becomes a `dead_letters` row.
async fn record_dead_letters(
    shared: &Shared,
    place: &Place,
    pg: &mut Client,
    batch: Vec<Message>,
) -> Result<(), ()> {
    let letters: Vec<(u64, &Message)> = batch.iter().map(|m| (stream_seq(m), m)).collect();
    match indexer::write_dead_letters(pg, &letters).await {
        Ok(new_rows) => {
            shared
                .stats
                .dead_letters
                .fetch_add(new_rows, Ordering::Relaxed);
            for m in &batch {
                let _ = m.ack().await;
            }
            Ok(())
        }
        Err(WriteError::Unavailable(_)) => {
            shared.stats.db_errors.fetch_add(1, Ordering::Relaxed);
            for m in &batch {
                nak_with_backoff(shared, place, m, "dead letter not recorded").await;
            }
            Err(())
        }
        Err(WriteError::Refused(e)) => {
            shared.stats.db_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("dead letters refused by Postgres: {e}");
            for m in &batch {
                nak_with_backoff(shared, place, m, "dead letter not recorded").await;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nak_delay_doubles_and_caps() {
        assert_eq!(nak_delay(1), Duration::from_secs(1));
        assert_eq!(nak_delay(2), Duration::from_secs(2));
        assert_eq!(nak_delay(4), Duration::from_secs(8));
        assert_eq!(nak_delay(10), NAK_DELAY_MAX);
        assert_eq!(nak_delay(0), Duration::from_secs(1));
    }
}
