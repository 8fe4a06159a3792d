//! The loop both consumers share: pull a batch from one stream, sort out poison, write the rest to
//! Postgres in one transaction, and only then acknowledge.
//!
//! - **Poison** (see `envelope.rs`) is routed to `dlq.<stream>.<consumer>` and terminated (AckTerm),
//!   never retried. If the DLQ cannot take it, the event is nak'ed and comes back later.
//! - **Postgres unreachable** (connection closed, admin shutdown, cannot connect): the batch is nak'ed
//!   with a delay that grows with its delivery count, the pull subscription is dropped, and nothing
//!   more is pulled until Postgres answers again. Pulling only when rows can be written is what keeps
//!   the consumer's place: an outage of any length costs each event at most a delivery or two of its
//!   max deliver, not one per retry.
//! - **Postgres refuses some rows** (an error with a data SQLSTATE): the batch is split in halves until
//!   the failing events stand alone; the others are written and acknowledged, the failing ones nak'ed
//!   with backoff; on its last delivery (max deliver) the worker routes such an event to the DLQ
//!   itself (reason `max_deliveries`) and terminates it, so no advisory has to be caught.
//! - **NATS restarts**: the client reconnects by itself; a pull subscription that errors is rebuilt.
//!
//! Batches are written on tasks of their own (the indexer's two at a time, each on its own
//! connection) while the next batch is pulled; pulls are sized so that everything in flight fits in
//! the consumer's `max_ack_pending`, and go through the server that leads the consumer when the
//! service knows which URL reaches it (`affinity.rs`).
//!
//! This file is the loop (subscribing, pulling, the writer tasks, pausing and handing back);
//! `delivery.rs` is what happens to the messages of one batch (poison, writes, acks and naks);
//! `stats.rs` the counters they keep.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, Message};
use futures::{FutureExt, StreamExt};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::affinity::Near;
use super::delivery::{nak_or_give_up, process, Place, Shared, NAK_DELAY_BASE};
use super::sink::Sink;
use super::{analytics, indexer, postgres};

/// Indexer batches of one stream written at once, each on its own Postgres connection.
const INDEXER_WRITERS: usize = 2;
/// How long a batch waits for more messages after its first one.
const LINGER: Duration = Duration::from_millis(10);
/// A pull request lives this long at the server; short, so a dropped subscription's requests die soon.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// First and longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(BACKOFF_MIN)
    }
    async fn wait(&mut self, cancel: &CancellationToken) {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(self.0) => {}
        }
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
    }
    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

/// Connects to Postgres and readies the connection for `sink` (temporary staging tables).
pub(crate) async fn open_writer(shared: &Shared) -> Result<Client, String> {
    let client = postgres::connect(&shared.postgres_url)
        .await
        .map_err(|e| e.to_string())?;
    let setup = match shared.sink {
        Sink::Indexer => indexer::prepare(&client).await,
        Sink::Analytics => analytics::prepare(&client).await,
    };
    setup.map_err(|e| format!("prepare the connection: {e}"))?;
    Ok(client)
}

/// Consumes `stream` for `shared.consumer` until `cancel`.
pub(crate) async fn consume_stream(shared: Arc<Shared>, stream: String, cancel: CancellationToken) {
    let mut worker = StreamWorker {
        shared,
        stream,
        backoff: Backoff::new(),
        warned_db: false,
        warned_nats: false,
        near: Near::default(),
    };
    let mut client: Option<Client> = None;
    while !cancel.is_cancelled() {
        // Postgres first: there is no point pulling what cannot be written.
        let Some(pg) = worker.writer(client.take(), &cancel).await else {
            continue;
        };
        let Some(subscription) = worker.subscribe(&cancel).await else {
            client = Some(pg);
            continue;
        };
        client = worker.pull_and_write(pg, subscription, &cancel).await;
    }
}

/// One stream's worker between subscriptions: what it needs to resubscribe and what it has warned
/// about.
struct StreamWorker {
    shared: Arc<Shared>,
    stream: String,
    backoff: Backoff,
    /// Postgres was reported unavailable (and not yet back).
    warned_db: bool,
    /// The consumer or its pull was reported unavailable since the last subscription.
    warned_nats: bool,
    near: Near,
}

/// A pull subscription and how it is to be consumed.
struct Subscription {
    messages: jetstream::consumer::pull::Stream,
    place: Place,
    batch: usize,
    writers_at_once: usize,
}

impl StreamWorker {
    /// `kept` if it is still open, else a new connection; `None` (after a backoff) when Postgres
    /// does not answer.
    async fn writer(&mut self, kept: Option<Client>, cancel: &CancellationToken) -> Option<Client> {
        if let Some(c) = kept.filter(|c| !c.is_closed()) {
            return Some(c);
        }
        let (shared, stream) = (&self.shared, &self.stream);
        match open_writer(shared).await {
            Ok(c) => {
                if self.warned_db {
                    tracing::warn!("{}/{stream}: Postgres is back", shared.consumer);
                }
                self.warned_db = false;
                shared.stats.db_up.store(true, Ordering::Relaxed);
                Some(c)
            }
            Err(e) => {
                shared.stats.db_up.store(false, Ordering::Relaxed);
                if !self.warned_db {
                    tracing::warn!(
                        "{}/{stream}: Postgres unavailable ({e}); retrying",
                        shared.consumer
                    );
                    self.warned_db = true;
                }
                self.backoff.wait(cancel).await;
                None
            }
        }
    }

    /// Subscribes to the stream's consumer, through its leader's server when known, with pulls
    /// sized to its `max_ack_pending`; `None` (after a backoff) when NATS does not let it.
    async fn subscribe(&mut self, cancel: &CancellationToken) -> Option<Subscription> {
        let (shared, stream) = (&self.shared, &self.stream);
        let consumer: PullConsumer = match shared
            .js
            .get_consumer_from_stream(&shared.consumer, stream)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.nats_unavailable(format!("consumer unavailable ({e})"), cancel)
                    .await;
                return None;
            }
        };
        let consumer = match self.near.rebind(&shared.nodes, stream, &consumer).await {
            Some(on_leader) => on_leader,
            None => consumer,
        };
        let max_ack_pending = consumer.cached_info().config.max_ack_pending;
        let max_deliver = consumer.cached_info().config.max_deliver;
        let place = Place {
            stream: stream.clone(),
            max_deliver,
        };
        let writers_at_once = writer_limit(shared.sink);
        let batch = batch_size(shared.batch, max_ack_pending, writers_at_once);
        let messages = match consumer
            .stream()
            .max_messages_per_batch(batch)
            .expires(PULL_EXPIRES)
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.nats_unavailable(format!("cannot pull ({e})"), cancel)
                    .await;
                return None;
            }
        };
        self.warned_nats = false;
        self.backoff.reset();
        Some(Subscription {
            messages,
            place,
            batch,
            writers_at_once,
        })
    }

    /// Warns (once until the next subscription) that NATS did not let the worker subscribe, and
    /// backs off.
    async fn nats_unavailable(&mut self, what: String, cancel: &CancellationToken) {
        if !self.warned_nats {
            tracing::warn!("{}/{}: {what}; retrying", self.shared.consumer, self.stream);
            self.warned_nats = true;
        }
        self.backoff.wait(cancel).await;
    }

    /// Pulls batches and writes them, starting with connection `pg`, until Postgres goes away, the
    /// pull fails or `cancel`. Returns a connection still good to keep, if any.
    async fn pull_and_write(
        &mut self,
        pg: Client,
        subscription: Subscription,
        cancel: &CancellationToken,
    ) -> Option<Client> {
        let Subscription {
            mut messages,
            place,
            batch,
            writers_at_once,
        } = subscription;
        let (shared, stream) = (&self.shared, self.stream.as_str());
        // Writes run on tasks of their own while the next batch is pulled and parsed, so the
        // pull's round trips overlap the database's work (see [`Writers`]).
        let mut writers = Writers::new(pg, writers_at_once);
        loop {
            let (batch_messages, pull_error) = collect(&mut messages, batch, cancel).await;
            let db_up = writers.make_room(shared, stream).await;
            if !db_up {
                // Postgres went away: return this batch and what is buffered, stop pulling.
                writers.drain(shared, stream).await;
                for m in &batch_messages {
                    nak_or_give_up(
                        shared,
                        &place,
                        m,
                        Some(NAK_DELAY_BASE),
                        "Postgres unavailable",
                    )
                    .await;
                }
                give_back(shared, &place, messages, Some(NAK_DELAY_BASE)).await;
                shared.stats.db_up.store(false, Ordering::Relaxed);
                self.warned_db = true;
                tracing::warn!(
                    "{}/{stream}: Postgres unavailable; paused until it answers",
                    shared.consumer
                );
                return None;
            }
            if !batch_messages.is_empty() {
                writers.start(shared, &place, batch_messages).await;
            }
            if cancel.is_cancelled() || pull_error.is_some() {
                let client = writers.drain(shared, stream).await;
                if cancel.is_cancelled() {
                    // Hand back what arrived but was not processed, so the next instance gets it
                    // now rather than after the ack wait.
                    give_back(shared, &place, messages, None).await;
                } else if let Some(e) = pull_error {
                    tracing::warn!(
                        "{}/{stream}: pull failed ({e}); resubscribing",
                        shared.consumer
                    );
                    self.backoff.wait(cancel).await;
                }
                return client;
            }
        }
    }
}

/// How many batches of one stream may be written at once. The indexer's rows are independent
/// (idempotent on the event id), so two connections keep Postgres busy while one batch's acks go out
/// and the next batch arrives; analytics batches update shared aggregate rows, so they go one at a
/// time (in order, and no two transactions wait on each other's rows).
fn writer_limit(sink: Sink) -> usize {
    match sink {
        Sink::Indexer => INDEXER_WRITERS,
        Sink::Analytics => 1,
    }
}

/// The indexer's batch for a consumer with `max_ack_pending`, when `wanted` is asked for.
pub fn indexer_batch(wanted: usize, max_ack_pending: i64) -> usize {
    batch_size(wanted, max_ack_pending, INDEXER_WRITERS)
}

/// The pull and write batch: `wanted`, but small enough that the batches being written, the one
/// being collected and the one on its way all fit within `max_ack_pending` (the server stops
/// delivering at that many unacknowledged messages, and the pipeline would stall on itself).
fn batch_size(wanted: usize, max_ack_pending: i64, writers: usize) -> usize {
    let fits = match usize::try_from(max_ack_pending) {
        Ok(n) if n > 0 => n / (writers + 2),
        _ => usize::MAX, // no limit (-1) or unknown
    };
    wanted.min(fits).max(1)
}

type WriteTask = tokio::task::JoinHandle<(Client, Result<(), ()>)>;

/// The writes of one stream worker: each batch on its own task, up to `limit` at once, each with a
/// Postgres connection of its own (opened when first needed, kept while Postgres answers).
struct Writers {
    idle: Vec<Client>,
    inflight: std::collections::VecDeque<WriteTask>,
    opened: usize,
    limit: usize,
    /// A finished write found Postgres unavailable (its batch was nak'ed); not yet reported.
    down: bool,
}

impl Writers {
    fn new(first: Client, limit: usize) -> Self {
        Writers {
            idle: vec![first],
            inflight: Default::default(),
            opened: 1,
            limit: limit.max(1),
            down: false,
        }
    }

    /// Collects finished writes and, if all writers are busy, waits for the oldest. `false` when a
    /// write found Postgres unavailable since the last call (that batch has been nak'ed).
    async fn make_room(&mut self, shared: &Shared, stream: &str) -> bool {
        while let Some(front) = self.inflight.front() {
            if !front.is_finished() && self.inflight.len() < self.limit {
                break;
            }
            if let Some(task) = self.inflight.pop_front() {
                self.finish(task, shared, stream).await;
            }
        }
        !std::mem::take(&mut self.down)
    }

    async fn finish(&mut self, task: WriteTask, shared: &Shared, stream: &str) {
        match task.await {
            Ok((c, Ok(()))) => self.idle.push(c),
            Ok((_, Err(()))) => {
                self.opened -= 1;
                self.down = true;
            }
            Err(e) => {
                tracing::error!("{}/{stream}: writer task failed: {e}", shared.consumer);
                self.opened -= 1;
                self.down = true;
            }
        }
    }

    /// Starts writing `batch` on an idle connection, opening one if the limit allows and Postgres
    /// answers, else waiting for a busy one.
    async fn start(&mut self, shared: &Arc<Shared>, place: &Place, batch: Vec<Message>) {
        if self.idle.is_empty() && self.opened < self.limit {
            if let Ok(c) = open_writer(shared).await {
                self.idle.push(c);
                self.opened += 1;
            }
        }
        while self.idle.is_empty() {
            let Some(task) = self.inflight.pop_front() else {
                break;
            };
            self.finish(task, shared, &place.stream).await;
        }
        let Some(mut c) = self.idle.pop() else {
            // No connection left (each write found Postgres gone): hand the batch back.
            for m in &batch {
                nak_or_give_up(
                    shared,
                    place,
                    m,
                    Some(NAK_DELAY_BASE),
                    "Postgres unavailable",
                )
                .await;
            }
            return;
        };
        let (shared, place) = (shared.clone(), place.clone());
        self.inflight.push_back(tokio::spawn(async move {
            let result = process(&shared, &place, &mut c, batch).await;
            (c, result)
        }));
    }

    /// Waits for every write in flight; returns a connection to keep, if one is still good.
    async fn drain(&mut self, shared: &Shared, stream: &str) -> Option<Client> {
        while let Some(task) = self.inflight.pop_front() {
            self.finish(task, shared, stream).await;
        }
        self.idle.pop()
    }
}

/// Waits for a first message (or `cancel`), then takes whatever else arrives within [`LINGER`], up to
/// `max`. Returns the messages and the pull error that ended the batch, if any.
async fn collect(
    messages: &mut jetstream::consumer::pull::Stream,
    max: usize,
    cancel: &CancellationToken,
) -> (Vec<Message>, Option<String>) {
    let mut batch = Vec::with_capacity(max);
    let first = tokio::select! {
        _ = cancel.cancelled() => return (batch, None),
        next = messages.next() => next,
    };
    match first {
        Some(Ok(m)) => batch.push(m),
        Some(Err(e)) => return (batch, Some(e.to_string())),
        None => return (batch, Some("the pull subscription ended".into())),
    }
    let deadline = tokio::time::Instant::now() + LINGER;
    while batch.len() < max {
        // What has arrived already is taken without a timer (a backlog arrives faster than a
        // timer per message costs); only an empty buffer waits, until the deadline.
        let next = match messages.next().now_or_never() {
            Some(ready) => Ok(ready),
            None => tokio::time::timeout_at(deadline, messages.next()).await,
        };
        match next {
            Ok(Some(Ok(m))) => batch.push(m),
            Ok(Some(Err(e))) => return (batch, Some(e.to_string())),
            Ok(None) => return (batch, Some("the pull subscription ended".into())),
            Err(_) => break,
        }
    }
    (batch, None)
}

/// Gives back whatever the subscription already holds: takes it for a moment, drops the
/// subscription, then naks each message (after `delay`, if given). Naking while still subscribed would
/// have the server redeliver into the same subscription at once, burning deliveries in a loop.
async fn give_back(
    shared: &Shared,
    place: &Place,
    mut messages: jetstream::consumer::pull::Stream,
    delay: Option<Duration>,
) {
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, messages.next()).await {
        held.push(message);
    }
    while let Some(Some(Ok(message))) = messages.next().now_or_never() {
        held.push(message);
    }
    drop(messages);
    for message in held {
        nak_or_give_up(shared, place, &message, delay, "handed back unprocessed").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_in_flight_fit_in_max_ack_pending() {
        // Two writing, one collecting, one on its way.
        assert_eq!(batch_size(2500, 10_000, 2), 2500);
        assert_eq!(batch_size(5000, 10_000, 2), 2500);
        assert_eq!(batch_size(5000, 1000, 1), 333);
        assert_eq!(batch_size(5000, -1, 2), 5000);
        assert_eq!(batch_size(100, 1, 2), 1);
    }
}
