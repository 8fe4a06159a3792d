//! The publisher engine: open-model JetStream publishing with a bounded in-flight window.
//!
//! Each publisher walks its schedule of intended send times. Whatever is due is sent at once (a
//! publisher that fell behind catches up as fast as the window allows); acks are awaited
//! concurrently, at most `in_flight` at a time. Every outcome lands in the publisher's ledger and
//! histograms; an error is a counted sample, never the end of the run.
//!
//! Each event names the run, its publisher and its sequence, so checks can tie anything read back
//! to the ledger (`event/ledger.rs`): in the payload's `producer` always, and, with
//! `message_id` on, as its `Nats-Msg-Id` too (so JetStream dedups a retry, as AIVO's own
//! publishers have it do). No header of its own: an event without a message id and without poison
//! goes out without headers at all, as a plain publish does.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, publish::PublishAck};
use async_nats::HeaderMap;
use futures::stream::{FuturesUnordered, StreamExt};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ledger::PublisherLedger;
use super::metrics::{IntervalStats, SubjectTable};
use crate::event::ledger::MsgIdText;
use crate::event::poison::HEADER_POISON;
use crate::traffic::EventSource;

/// Settings shared by every publisher of a run.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Unacknowledged publishes a publisher may have at once.
    pub in_flight: usize,
    /// How long to wait for an ack before the outcome is "unknown".
    pub ack_timeout: Duration,
    /// How late a publisher may still send an event (catching up after a stall); events overdue by
    /// more are skipped and counted as never sent.
    pub send_grace: Duration,
    /// Send each event's ledger identity as its `Nats-Msg-Id` (JetStream dedup on).
    pub message_id: bool,
    /// How long the schedule runs (the ledger's per-second marks are reserved for it).
    pub run_length: Duration,
}

/// One publisher: a connection, a schedule and a source of events.
pub struct PublisherPlan {
    pub id: u32,
    /// The stream its subjects land in (for the ledger).
    pub stream: String,
    pub client: async_nats::Client,
    /// Intended send times, as offsets from the run's start.
    pub arrivals: Box<dyn Iterator<Item = Duration> + Send>,
    pub source: Box<dyn EventSource>,
}

/// Where a publisher's live figures go as they happen; the sampler swaps the interval out each
/// second. Each publisher has a cell of its own, so the lock is contended only by that swap; an
/// uncontended lock per send and per batch of acks costs far less than handing batches over
/// (which allocated, zeroed and added whole histograms twenty times a second per publisher).
pub type SharedStats = Arc<Mutex<PublisherCell>>;

/// What a publisher shares with the sampler: its figures since the last sample, and, when a
/// checkpoint asks for it, a copy of its ledger.
#[derive(Debug, Default)]
pub struct PublisherCell {
    /// Swapped out by the sampler each second.
    pub interval: IntervalStats,
    /// Set by the sampler: the publisher copies its ledger and subject table into `snapshot` the
    /// next time it takes the lock (after a send or a batch of acks), so a checkpoint costs the
    /// publishers one copy each per checkpoint and nothing in between.
    pub snapshot_wanted: bool,
    pub snapshot: Option<Box<PublisherSnapshot>>,
    /// Set by the sampler each second while live metrics are served: the publisher copies its
    /// per-subject counters into `subject_counts` (a handful of subjects) at its next lock.
    pub subjects_wanted: bool,
    pub subject_counts: Vec<SubjectCount>,
    /// Set by a disaster-recovery drill (`run/drill.rs`) just before it snapshots the publisher's
    /// stream: the publisher copies the set of sequences acknowledged so far into `acked_cut` at
    /// its next lock, so the drill knows exactly which events were acked before the snapshot.
    pub cut_wanted: bool,
    pub acked_cut: Option<crate::load::ledger::RangeSet>,
}

/// A subject's counters of one publisher, cumulative.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectCount {
    pub subject: String,
    pub attempted: u64,
    pub acked: u64,
}

/// A publisher's ledger and subjects as they stood at a moment of the run.
#[derive(Debug, Clone)]
pub struct PublisherSnapshot {
    pub ledger: PublisherLedger,
    pub subjects: SubjectTable,
}

impl PublisherCell {
    /// Answers a pending snapshot request from the publisher's current state.
    fn answer(&mut self, ledger: &PublisherLedger, subjects: &SubjectTable) {
        if self.subjects_wanted {
            self.subjects_wanted = false;
            self.subject_counts.clear();
            self.subject_counts
                .extend(subjects.subjects.iter().map(|s| SubjectCount {
                    subject: s.subject.clone(),
                    attempted: s.attempted,
                    acked: s.acked,
                }));
        }
        if self.cut_wanted {
            self.cut_wanted = false;
            self.acked_cut = Some(ledger.acked.clone());
        }
        if self.snapshot_wanted {
            self.snapshot_wanted = false;
            self.snapshot = Some(Box::new(PublisherSnapshot {
                ledger: ledger.clone(),
                subjects: subjects.clone(),
            }));
        }
    }
}

/// The instant a run starts, on the monotonic clock and on the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    pub start: Instant,
    pub start_wall: OffsetDateTime,
}

impl RunClock {
    pub fn now() -> Self {
        Self {
            start: Instant::now(),
            start_wall: OffsetDateTime::now_utc(),
        }
    }

    /// A clock whose second 0 is the wall-clock moment `at`, once it has come (`--start-at`: every
    /// worker of a segmented run counts intended times from the same instant, so their events and
    /// timeline seconds line up as one run's). A moment already past starts now, counted from `at`.
    pub async fn at(at: OffsetDateTime) -> Self {
        let wait = at - OffsetDateTime::now_utc();
        if let Ok(wait) = Duration::try_from(wait) {
            tokio::time::sleep(wait).await;
        }
        let late = Duration::try_from(OffsetDateTime::now_utc() - at).unwrap_or_default();
        let now = Instant::now();
        Self {
            start: now.checked_sub(late).unwrap_or(now),
            start_wall: at,
        }
    }
}

/// An ack on its way: the client's ack future and what the publisher needs when it lands. A plain
/// future rather than an `async` block boxed again: the client's future is boxed already, and a
/// second box per event was one more allocation and free on the hot path.
struct AckInFlight {
    ack: <PublishAckFuture as IntoFuture>::IntoFuture,
    seq: u64,
    subject: usize,
    intended: Instant,
    sent: Instant,
}

impl Future for AckInFlight {
    type Output = Completion;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        // Every field is `Unpin` (the client's future is a `Pin<Box<..>>`).
        let this = self.get_mut();
        let result = ready!(this.ack.as_mut().poll(cx));
        Poll::Ready(Completion {
            seq: this.seq,
            subject: this.subject,
            intended: this.intended,
            sent: this.sent,
            acked_at: Instant::now(),
            result,
        })
    }
}

struct Completion {
    seq: u64,
    subject: usize,
    intended: Instant,
    sent: Instant,
    acked_at: Instant,
    result: Result<PublishAck, async_nats::jetstream::context::PublishError>,
}

/// What a publisher hands back when it is done.
#[derive(Debug, Clone)]
pub struct PublisherOutcome {
    pub ledger: PublisherLedger,
    pub subjects: SubjectTable,
}

/// Runs one publisher to the end of its schedule (or until `cancel`), returning its ledger.
pub async fn run_publisher(
    plan: PublisherPlan,
    settings: EngineSettings,
    run_id: Arc<str>,
    clock: RunClock,
    stats: SharedStats,
    cancel: CancellationToken,
) -> PublisherOutcome {
    let mut publisher = Publisher::new(plan, settings, &run_id, clock, stats);
    // One cancellation wait and one timer for the whole run, re-armed rather than rebuilt on every
    // wake: at everyday rates a publisher wakes once or twice per event, and a fresh timer entry
    // and token registration each time were a visible share of its CPU. The wait is on a child
    // token of the publisher's own: polling a token locks its node (and its `Notify`'s waiters), and
    // on the run's token that was one mutex shared by every publisher, taken on every wake.
    let cancel = cancel.child_token();
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let timer = tokio::time::sleep_until(clock.start);
    tokio::pin!(timer);
    loop {
        // Send whatever is due while the window has room.
        publisher.send_due().await;

        let schedule_done = publisher.next.is_none();
        if schedule_done && publisher.in_flight.is_empty() {
            break;
        }
        let wake = publisher
            .next
            .filter(|_| publisher.in_flight.len() < publisher.settings.in_flight)
            .map(|offset| publisher.clock.start + offset);
        if let Some(wake) = wake {
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
        }
        tokio::select! {
            biased;
            _ = &mut cancelled => break,
            Some(done) = publisher.in_flight.next(), if !publisher.in_flight.is_empty() => {
                publisher.record_acks(done);
            }
            _ = &mut timer, if wake.is_some() => {}
        }
        publisher.skip_overdue();
    }
    publisher.finish()
}

/// One publisher while it runs: its schedule, its window of acks in flight and what it has counted.
struct Publisher {
    settings: EngineSettings,
    clock: RunClock,
    context: jetstream::Context,
    arrivals: Box<dyn Iterator<Item = Duration> + Send>,
    source: Box<dyn EventSource>,
    /// The next intended send time, `None` when the schedule is done.
    next: Option<Duration>,
    /// Acks awaited concurrently, at most `settings.in_flight`.
    in_flight: FuturesUnordered<AckInFlight>,
    ledger: PublisherLedger,
    /// The `Nats-Msg-Id` value, reused: `<run id>/<publisher>/` and the sequence of the last event.
    msg_id: MsgIdText,
    stats: SharedStats,
    /// Sends of the current batch, added to `stats` at its end (one lock per batch, not per event).
    unshared: UnsharedSends,
    subjects: SubjectTable,
}

/// What a batch of sends adds to the shared interval figures.
#[derive(Debug, Default)]
struct UnsharedSends {
    attempted: u64,
    payload_bytes: u64,
}

impl Publisher {
    fn new(
        plan: PublisherPlan,
        settings: EngineSettings,
        run_id: &str,
        clock: RunClock,
        stats: SharedStats,
    ) -> Self {
        let PublisherPlan {
            id,
            stream,
            client,
            mut arrivals,
            source,
        } = plan;
        let context = jetstream::ContextBuilder::new()
            .timeout(settings.ack_timeout)
            // Our own window bounds what is in flight; keep the client's limit out of the way.
            .max_ack_inflight(settings.in_flight.saturating_mul(2).max(16))
            .build(client);
        let clock_seconds = (settings.run_length + settings.send_grace).as_secs() + 60;
        Publisher {
            settings,
            clock,
            context,
            next: arrivals.next(),
            arrivals,
            source,
            in_flight: FuturesUnordered::new(),
            ledger: {
                let mut ledger = PublisherLedger {
                    publisher: id,
                    stream,
                    ..PublisherLedger::default()
                };
                ledger.ack_clock.reserve(clock_seconds);
                ledger
            },
            msg_id: MsgIdText::new(run_id, id),
            stats,
            unshared: UnsharedSends::default(),
            subjects: SubjectTable::default(),
        }
    }

    /// Sends every event that is due, as long as the window has room, then hands the batch's
    /// counts to the sampler under one lock.
    async fn send_due(&mut self) {
        // The clock is read again only when the last reading says the next event is not due yet:
        // a publisher that is behind (every event due) reads it once per event, at the send.
        let mut now = Instant::now();
        while let Some(offset) = self.next {
            if self.in_flight.len() >= self.settings.in_flight {
                break;
            }
            let intended = self.clock.start + offset;
            if intended > now {
                now = Instant::now();
                if intended > now {
                    break;
                }
            }
            now = self.send(offset, intended).await;
            self.next = self.arrivals.next();
        }
        self.share_sends();
    }

    /// Adds the sends not yet counted in the shared cell, and answers a pending snapshot request.
    fn share_sends(&mut self) {
        if self.unshared.attempted == 0 {
            return;
        }
        let mut cell = lock(&self.stats);
        cell.interval.attempted += self.unshared.attempted;
        cell.interval.payload_bytes += self.unshared.payload_bytes;
        self.unshared = UnsharedSends::default();
        cell.answer(&self.ledger, &self.subjects);
    }

    /// Sends the next event of the source, intended at `offset` (`intended` on the clock), and puts
    /// its ack in the window; returns the moment it was handed to the client.
    async fn send(&mut self, offset: Duration, intended: Instant) -> Instant {
        self.ledger.attempted += 1;
        let seq = self.ledger.attempted;
        let occurred_at = self.clock.start_wall + offset;
        let event = self.source.next_event(seq, occurred_at);
        let mut message = PublishMessage::build();
        if self.settings.message_id || event.poison.is_some() {
            let mut headers = HeaderMap::new();
            if self.settings.message_id {
                headers.insert(async_nats::header::NATS_MESSAGE_ID, self.msg_id.value(seq));
            }
            if let Some(kind) = event.poison {
                self.ledger.poison.insert(kind, seq);
                headers.insert(HEADER_POISON, kind.as_str());
            }
            message = message.headers(headers);
        }
        let payload_len = event.payload.len() as u64;
        let subject = self.subjects.index_of(event.subject.as_str());
        self.subjects.subjects[subject].record_size(event.payload.len());
        let message = message.payload(event.payload);
        let sent = Instant::now();
        match self.context.send_publish(event.subject, message).await {
            Ok(ack) => self.in_flight.push(AckInFlight {
                ack: ack.into_future(),
                seq,
                subject,
                intended,
                sent,
            }),
            Err(err) => {
                // Never handed to the server: a definite failure.
                self.ledger.failed.insert(seq);
                let mut cell = lock(&self.stats);
                let s = &mut cell.interval;
                s.attempted += 1;
                s.failed += 1;
                *s.errors
                    .entry(format!("send_{}", kind_name(err.kind())))
                    .or_default() += 1;
                cell.answer(&self.ledger, &self.subjects);
                // One attempt per intended event: move on (retrying here would spin).
                return sent;
            }
        }
        self.unshared.attempted += 1;
        self.unshared.payload_bytes += payload_len;
        sent
    }

    /// Records the ack `done` and every other that is already in.
    fn record_acks(&mut self, done: Completion) {
        let start = self.clock.start;
        let mut shared = lock(&self.stats);
        let mut next = Some(done);
        while let Some(done) = next {
            record(
                &mut self.ledger,
                &mut shared.interval,
                &mut self.subjects,
                start,
                done,
            );
            // Take every other ack that is already in, without waiting.
            next = futures::FutureExt::now_or_never(self.in_flight.next()).flatten();
        }
        shared.answer(&self.ledger, &self.subjects);
    }

    /// Skips the events overdue by more than the send grace, if the publisher is that far behind.
    fn skip_overdue(&mut self) {
        let Some(offset) = self.next else {
            return;
        };
        let now = Instant::now();
        if now <= self.clock.start + offset + self.settings.send_grace {
            return;
        }
        // Behind by more than the grace (the cluster stalled the window, or the harness could
        // not keep up): events overdue by more than the grace are dropped and counted as never
        // sent, and the schedule goes on from there rather than chasing the past.
        let cutoff = now
            .duration_since(self.clock.start)
            .saturating_sub(self.settings.send_grace);
        let mut skipped = 0u64;
        while self.next.is_some_and(|o| o < cutoff) {
            skipped += 1;
            self.next = self.arrivals.next();
        }
        if skipped > 0 {
            self.ledger.never_sent += skipped;
            self.ledger.skips.push((self.ledger.attempted, skipped));
            lock(&self.stats).interval.never_sent += skipped;
        }
    }

    /// Settles what the run left open and hands the figures over.
    fn finish(mut self) -> PublisherOutcome {
        self.share_sends();
        // Cancelled: whatever is still in flight has an unknown outcome, the rest was never sent.
        let pending = self.in_flight.len() as u64;
        drop(self.in_flight);
        let ledger = &mut self.ledger;
        if pending > 0 {
            ledger.settle_in_flight();
        }
        let rest = match self.next {
            Some(_) => 1 + self.arrivals.count() as u64,
            None => 0,
        };
        ledger.never_sent += rest;
        let mut cell = lock(&self.stats);
        let stats = &mut cell.interval;
        stats.never_sent += rest;
        if pending > 0 {
            stats.unknown += pending;
            *stats.errors.entry("cancelled".into()).or_default() += pending;
        }
        drop(cell);
        PublisherOutcome {
            ledger: self.ledger,
            subjects: self.subjects,
        }
    }
}

fn record(
    ledger: &mut PublisherLedger,
    s: &mut IntervalStats,
    subjects: &mut SubjectTable,
    start: Instant,
    done: Completion,
) {
    match done.result {
        Ok(ack) => {
            ledger.acked.insert(done.seq);
            ledger
                .ack_clock
                .record(done.acked_at.duration_since(start).as_secs(), done.seq);
            if let Some(subject) = subjects.subjects.get_mut(done.subject) {
                subject.acked += 1;
                subject.latency.record(done.acked_at - done.intended);
            }
            if ack.duplicate {
                ledger.duplicate_acks += 1;
            }
            s.acked += 1;
            s.histograms.latency.record(done.acked_at - done.intended);
            s.histograms.service.record(done.acked_at - done.sent);
            s.histograms
                .send_delay
                .record(done.sent.saturating_duration_since(done.intended));
        }
        Err(err) => {
            let (kind, definite) = classify(&err);
            if definite {
                ledger.failed.insert(done.seq);
                s.failed += 1;
            } else {
                ledger.unknown.insert(done.seq);
                s.unknown += 1;
            }
            *s.errors.entry(kind).or_default() += 1;
        }
    }
}

/// Names an ack error and says whether the event was certainly not stored.
fn classify(err: &async_nats::jetstream::context::PublishError) -> (String, bool) {
    match err.kind() {
        // Nobody answered the subject: no stream took it.
        PublishErrorKind::StreamNotFound => ("no_responders".into(), true),
        PublishErrorKind::Other => {
            let api_error = std::error::Error::source(err)
                .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>());
            match api_error {
                // JetStream answered with an error: it refused the event.
                Some(api) => (format!("jetstream_{}", api.error_code().0), true),
                None => ("bad_ack".into(), false),
            }
        }
        // Timeouts and lost connections: the event may or may not have been stored.
        other => (kind_name(other).into(), false),
    }
}

fn kind_name(kind: PublishErrorKind) -> &'static str {
    match kind {
        PublishErrorKind::StreamNotFound => "no_responders",
        PublishErrorKind::WrongLastMessageId => "wrong_last_msg_id",
        PublishErrorKind::WrongLastSequence => "wrong_last_sequence",
        PublishErrorKind::TimedOut => "timeout",
        PublishErrorKind::BrokenPipe => "connection_lost",
        PublishErrorKind::MaxAckPending => "max_ack_pending",
        PublishErrorKind::MaxPayloadExceeded => "max_payload",
        PublishErrorKind::Other => "other",
    }
}

/// Locks a stats cell; a poisoned lock (a panicked sampler) still holds valid counters.
pub fn lock(stats: &SharedStats) -> std::sync::MutexGuard<'_, PublisherCell> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
