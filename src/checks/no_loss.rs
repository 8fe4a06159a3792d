//! The ledger check (Jepsen's vocabulary, DESIGN.md §3): read back what the run wrote to a stream and
//! compare it with the publishers' ledgers.
//!
//! - `lost`: acknowledged, never read back;
//! - `duplicated`: read more than once (JetStream dedups on `Nats-Msg-Id`, so a stream holds each
//!   event at most once);
//! - `unexpected`: read, but carrying this run's ledger identity for a sequence its publisher never
//!   attempted;
//! - `failed_but_read`: the publisher was told the event was refused, yet it is in the stream;
//! - `recovered`: unknown outcome (timeout, lost connection), read back.
//!
//! Reading uses an ordered consumer from the stream's sequence before the load to its last sequence
//! after the drain. Each message is known by its ledger identity (`event::ledger::identity`): its
//! `Nats-Msg-Id` when the run sent one (`[publishers] message_id = true`), else its payload's
//! `producer`. So the read starts `headers_only` (the payloads never cross the wire again) and, at
//! the first message whose headers name no identity (a run without message ids, or a copy published
//! under another id), reopens from that message with payloads and stays so: exact in both modes,
//! and as cheap as before where the ids suffice. What was read is kept per publisher as range sets:
//! memory follows the gaps, not the message count. Messages without this run's identity are counted
//! as `foreign` (another writer on a shared cluster), not judged.
//!
//! **Retention.** Missing acked events are split like Jepsen's: a publisher's *prefix* (before the
//! first of its events read back) and the rest. Retention removes the oldest messages first and a
//! publisher's events are stored in its order, so as many prefix events as retention removed
//! messages are counted as `removed_by_retention`, never as lost; a gap after a publisher's first
//! event read back is lost whatever the limits.
//!
//! **Naming lost events without per-event memory.** The first 100 lost events are listed with
//! publisher, sequence, subject, event id, ack time and the faults active then:
//! - the ack time comes from the ledger's [`AckClock`](crate::load::ledger::AckClock): per publisher
//!   and second, the lowest and highest sequence acked (16 bytes a second, whatever the rate), so a
//!   lost sequence's ack lies in the seconds whose range holds it;
//! - subject and event id are not stored at all: sources are deterministic (seed, publisher,
//!   sequence, intended time), so after the check the run replays only the publishers with a lost
//!   event, up to their highest lost sequence, skipping what the engine skipped (the ledger keeps one
//!   entry per stall), within a 30 s budget (`run::load::replay_events`);
//! - the faults are those whose active window (confirmed → revert requested) meets the ack window.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use futures::StreamExt;
use serde::Serialize;

use crate::event::ledger;
use crate::load::ledger::{PublisherLedger, RangeSet};

/// How long the read-back waits for the next message before it starts again on a new consumer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read-back may go without reading anything before it gives up (it resumes on a new
/// consumer after each stall).
const STALL_LIMIT: Duration = Duration::from_secs(90);
/// How many lost / unexpected events a report lists.
const SAMPLES: usize = 100;

/// What reading a stream back found, before it is compared with the ledgers.
#[derive(Debug, Default)]
pub struct ReadBack {
    pub read: u64,
    /// Sequences of this run seen, per publisher.
    pub seen: BTreeMap<u32, RangeSet>,
    /// (publisher, seq) read a second time.
    pub duplicated: Vec<(u32, u64)>,
    pub duplicated_count: u64,
    /// Messages without this run's ledger identity (`event::ledger::identity`).
    pub foreign: u64,
    /// Every stream sequence read (the run's and foreign), to compare with what the leader says
    /// it holds.
    pub stream_seqs: RangeSet,
    /// First and last stream sequence read.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Set when the read stopped before `to_seq`.
    pub incomplete: Option<String>,
}

impl ReadBack {
    /// Forgets the events of each publisher past `last[publisher]` (a dead run's checkpoint: what
    /// it sent after its last checkpoint is in the stream but in no ledger); returns how many.
    pub fn only_up_to(&mut self, last: &BTreeMap<u32, u64>) -> u64 {
        let mut removed = 0;
        for (publisher, seen) in &mut self.seen {
            removed += seen.truncate_after(last.get(publisher).copied().unwrap_or(0));
        }
        self.read = self.read.saturating_sub(removed);
        removed
    }
}

/// One event named in a report.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct EventRef {
    pub publisher: u32,
    pub seq: u64,
}

/// A lost event, named so it can be looked for: who published it, its subject, when it was acked
/// and which faults were active then.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LostEvent {
    pub publisher: u32,
    pub seq: u64,
    /// Derived after the check by replaying the publisher's deterministic source (see
    /// [`crate::run`]); `None` when the replay was not possible within its budget.
    pub subject: Option<String>,
    /// Its `Nats-Msg-Id` / `event_id`, derived the same way.
    pub event_id: Option<String>,
    /// The ack happened within `[from, to)` seconds since the run's start (from the ledger's
    /// [`AckClock`](crate::load::ledger::AckClock)).
    pub acked_between_s: Option<(u64, u64)>,
    /// Faults active at any moment of that window ("kill nats2").
    pub faults_at_ack: Vec<String>,
    /// The safety fault that destroyed it: the first to take effect after its ack
    /// (`checks::safety`), e.g. "power-loss all at 30.0s".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_to: Option<String>,
}

impl LostEvent {
    /// "publisher 0 seq 10 focus.ping (0190...) acked in 3–4 s during kill nats2".
    pub fn describe(&self) -> String {
        let mut text = format!("publisher {} seq {}", self.publisher, self.seq);
        if let Some(subject) = &self.subject {
            text.push_str(&format!(" {subject}"));
        }
        if let Some(id) = &self.event_id {
            text.push_str(&format!(" ({id})"));
        }
        match self.acked_between_s {
            Some((from, to)) => text.push_str(&format!(" acked in {from}–{to} s")),
            None => text.push_str(" ack time unknown"),
        }
        if self.faults_at_ack.is_empty() {
            text.push_str(", no fault active");
        } else {
            text.push_str(&format!(" during {}", self.faults_at_ack.join(", ")));
        }
        if let Some(fault) = &self.lost_to {
            text.push_str(&format!("; lost to {fault}"));
        }
        text
    }
}

/// The verdict of the ledger check on one stream.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerCheck {
    pub stream: String,
    pub read: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub failed_but_read: u64,
    pub recovered: u64,
    pub foreign: u64,
    /// Messages retention removed before the read (their events cannot be judged).
    pub removed_by_retention: u64,
    /// First lost events (at most 100).
    pub lost_events: Vec<LostEvent>,
    pub unexpected_events: Vec<EventRef>,
    pub passed: bool,
    pub detail: String,
    /// Every lost event by the second its ack began in (from the ledger's ack clock; events
    /// whose ack second is unknown are left out): what the safety section attributes to faults.
    #[serde(skip)]
    pub lost_by_ack_second: BTreeMap<u64, u64>,
    /// The cluster no longer had the stream at all (every acknowledged event of it is lost).
    #[serde(skip)]
    pub stream_gone: bool,
}

/// Reads stream sequences `from_seq..=to_seq` back (headers only while the message ids name each
/// event, with payloads from the first that does not) and sorts them by this run's ledger.
pub async fn read_back(
    js: &async_nats::jetstream::Context,
    stream: &str,
    run_id: &str,
    from_seq: u64,
    to_seq: u64,
) -> Result<ReadBack, String> {
    let mut back = ReadBack::default();
    if to_seq < from_seq {
        return Ok(back);
    }
    let mut handle = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
    // Retention may have removed everything the run wrote (a short max_age): nothing to read.
    if gone_by_retention(&mut handle, to_seq).await {
        return Ok(back);
    }
    // A stream that is between leaders or whose replicas are catching up (right after a fault) can
    // stop delivering for a while: the read resumes after the last sequence it got, on a new
    // ordered consumer, and gives up only after STALL_LIMIT without progress.
    let mut cursor = Cursor {
        next_seq: from_seq,
        progress: tokio::time::Instant::now(),
        payloads: false,
        reopen_now: false,
    };
    let mut why = String::new();
    loop {
        if cursor.progress.elapsed() >= STALL_LIMIT {
            back.incomplete = Some(format!(
                "read-back of {stream} made no progress for {STALL_LIMIT:?} at sequence {} \
                 of {to_seq} ({why}): the events after it are not verified",
                cursor.next_seq
            ));
            break;
        }
        if cursor.next_seq > from_seq && !std::mem::take(&mut cursor.reopen_now) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if gone_by_retention(&mut handle, to_seq).await {
                break;
            }
        }
        let mut messages = match open_reader(&handle, cursor.next_seq, cursor.payloads).await {
            Ok(messages) => messages,
            Err(e) => {
                why = e;
                continue;
            }
        };
        let end = read_from(
            &mut back,
            &mut handle,
            &mut messages,
            run_id,
            to_seq,
            &mut cursor,
        )
        .await;
        match end {
            ReadEnd::Complete => break,
            ReadEnd::Stalled(reason) => why = reason,
        }
    }
    Ok(back)
}

/// Where a read-back stands: the next sequence to read, when it last read one, and whether it
/// reads payloads.
struct Cursor {
    next_seq: u64,
    progress: tokio::time::Instant,
    /// Set at the first message whose headers name no ledger identity; never cleared.
    payloads: bool,
    /// Reopen without the pause a stalled read takes (the reader switched to payloads).
    reopen_now: bool,
}

/// How reading on one ordered consumer ended.
enum ReadEnd {
    /// Everything up to `to_seq` was read, or retention removed the rest.
    Complete,
    /// The consumer stopped delivering, for this reason; the read resumes on a new one.
    Stalled(String),
}

/// An ordered consumer of the stream from `start_sequence` on, headers only unless `payloads`.
async fn open_reader(
    handle: &async_nats::jetstream::stream::Stream,
    start_sequence: u64,
    payloads: bool,
) -> Result<Ordered, String> {
    let consumer = handle
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
            headers_only: !payloads,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("read-back consumer: {e}"))?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// Reads `messages` into `back` until `to_seq`, moving `cursor` along, or until they stop coming.
async fn read_from(
    back: &mut ReadBack,
    handle: &mut async_nats::jetstream::stream::Stream,
    messages: &mut Ordered,
    run_id: &str,
    to_seq: u64,
    cursor: &mut Cursor,
) -> ReadEnd {
    loop {
        let next = match tokio::time::timeout(IDLE_TIMEOUT, messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => return ReadEnd::Stalled(e.to_string()),
            Ok(None) => return ReadEnd::Stalled("ended early".into()),
            // The rest expired while it was being read: the read is complete.
            Err(_) if gone_by_retention(handle, to_seq).await => return ReadEnd::Complete,
            Err(_) => {
                return ReadEnd::Stalled(format!("nothing delivered for {IDLE_TIMEOUT:?}"));
            }
        };
        let stream_seq = next.info().map(|i| i.stream_sequence).unwrap_or(0);
        if stream_seq > to_seq {
            return ReadEnd::Complete;
        }
        cursor.progress = tokio::time::Instant::now();
        let identity = ledger::identity_of(next.headers.as_ref(), &next.payload);
        if identity.is_none() && !cursor.payloads {
            // Headers only, and they name no identity: the payload may. Read on from here with
            // payloads (a reopened consumer, not a stall).
            cursor.next_seq = stream_seq;
            cursor.payloads = true;
            cursor.reopen_now = true;
            return ReadEnd::Stalled("switching to payloads".into());
        }
        cursor.next_seq = stream_seq + 1;
        back.record(stream_seq, identity, run_id);
        if stream_seq >= to_seq {
            return ReadEnd::Complete;
        }
    }
}

impl ReadBack {
    /// Counts the message read at `stream_seq` with ledger `identity`: under its publisher and
    /// sequence if that is `run_id`'s, as foreign if not.
    fn record(&mut self, stream_seq: u64, identity: Option<ledger::Identity<'_>>, run_id: &str) {
        // A stream sequence delivered again (a consumer recreated after a stall or a reset
        // redelivers from where it thinks it was) is the same stored copy, not a second one.
        if !self.stream_seqs.insert(stream_seq) {
            return;
        }
        self.read += 1;
        self.first_seq.get_or_insert(stream_seq);
        self.last_seq = Some(stream_seq);
        let ledger = identity.map(|i| (i.run == run_id, i.publisher, i.seq));
        match ledger {
            Some((true, publisher, seq)) => {
                if !self.seen.entry(publisher).or_default().insert(seq) {
                    self.duplicated_count += 1;
                    if self.duplicated.len() < SAMPLES {
                        self.duplicated.push((publisher, seq));
                    }
                }
            }
            _ => self.foreign += 1,
        }
    }
}

/// True when the stream's first sequence is past `to_seq`: every message up to it was removed.
async fn gone_by_retention(
    handle: &mut async_nats::jetstream::stream::Stream,
    to_seq: u64,
) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), handle.info()).await,
        Ok(Ok(info)) if info.state.first_sequence > to_seq
    )
}

/// Compares what was read with the ledgers of the publishers that wrote to `stream`.
pub fn judge(
    stream: &str,
    ledgers: &[&PublisherLedger],
    back: &ReadBack,
    removed_by_retention: u64,
) -> LedgerCheck {
    let mut check = LedgerCheck {
        stream: stream.to_string(),
        read: back.read,
        lost: 0,
        duplicated: back.duplicated_count,
        unexpected: 0,
        failed_but_read: 0,
        recovered: 0,
        foreign: back.foreign,
        removed_by_retention,
        lost_events: Vec::new(),
        unexpected_events: Vec::new(),
        passed: true,
        detail: String::new(),
        lost_by_ack_second: BTreeMap::new(),
        stream_gone: false,
    };
    let prefix = count_missing(&mut check, ledgers, back);
    count_read(&mut check, ledgers, back);
    // Events retention removed before the read cannot be told from a lost prefix one by one; as
    // many prefix events as retention removed messages are not called lost.
    let explained = prefix.lost.min(removed_by_retention);
    check.lost += prefix.lost - explained;
    // The prefix events retention explains are the oldest: the rest are lost.
    let mut unexplained = explained;
    for (second, count) in prefix.by_ack_second {
        let taken = count.min(unexplained);
        unexplained -= taken;
        if count > taken {
            *check.lost_by_ack_second.entry(second).or_default() += count - taken;
        }
    }
    if prefix.lost > explained {
        let room = SAMPLES.saturating_sub(check.lost_events.len());
        check
            .lost_events
            .extend(prefix.samples.into_iter().take(room));
    }
    conclude(&mut check, back);
    check
}

/// Acked events missing from the read-back before the first event of their publisher read back.
struct LostPrefix {
    lost: u64,
    /// The first of them (at most [`SAMPLES`]).
    samples: Vec<LostEvent>,
    /// All of them by ack second, as [`LedgerCheck::lost_by_ack_second`].
    by_ack_second: BTreeMap<u64, u64>,
}

/// Counts the acked events not read back: those after their publisher's first event read back as
/// lost in `check`, those before it (its prefix) in the result.
fn count_missing(
    check: &mut LedgerCheck,
    ledgers: &[&PublisherLedger],
    back: &ReadBack,
) -> LostPrefix {
    // Missing acked events split like Jepsen's: a publisher's *prefix* (before the first of its
    // events read back) and the rest. Retention removes a stream's oldest messages first, and a
    // publisher's events are stored in its order, so only a prefix can be retention's doing.
    let empty = RangeSet::new();
    let mut prefix = LostPrefix {
        lost: 0,
        samples: Vec::new(),
        by_ack_second: BTreeMap::new(),
    };
    for ledger in ledgers {
        let seen = back.seen.get(&ledger.publisher).unwrap_or(&empty);
        let first_seen = seen.ranges().next().map_or(u64::MAX, |(start, _)| start);
        for (start, end) in ledger.acked.ranges() {
            for seq in (start..=end).filter(|&seq| !seen.contains(seq)) {
                let (count, samples, by_second) = if seq < first_seen {
                    (
                        &mut prefix.lost,
                        &mut prefix.samples,
                        &mut prefix.by_ack_second,
                    )
                } else {
                    (
                        &mut check.lost,
                        &mut check.lost_events,
                        &mut check.lost_by_ack_second,
                    )
                };
                *count += 1;
                let window = ledger.ack_clock.window_of(seq);
                if let Some((from, _)) = window {
                    *by_second.entry(from).or_default() += 1;
                }
                if samples.len() < SAMPLES {
                    samples.push(LostEvent {
                        publisher: ledger.publisher,
                        seq,
                        subject: None,
                        event_id: None,
                        acked_between_s: window,
                        faults_at_ack: Vec::new(),
                        lost_to: None,
                    });
                }
            }
        }
    }
    prefix
}

/// Sorts every event read back by its publisher's ledger: recovered (unknown outcome), refused yet
/// stored, or unexpected (never attempted, or of no publisher of the stream).
fn count_read(check: &mut LedgerCheck, ledgers: &[&PublisherLedger], back: &ReadBack) {
    let by_publisher: BTreeMap<u32, &PublisherLedger> =
        ledgers.iter().map(|l| (l.publisher, *l)).collect();
    for (publisher, seen) in &back.seen {
        let ledger = by_publisher.get(publisher);
        for (start, end) in seen.ranges() {
            for seq in start..=end {
                match ledger {
                    Some(l) if seq <= l.attempted => {
                        if l.unknown.contains(seq) {
                            check.recovered += 1;
                        } else if l.failed.contains(seq) {
                            check.failed_but_read += 1;
                        }
                    }
                    _ => {
                        check.unexpected += 1;
                        if check.unexpected_events.len() < SAMPLES {
                            check.unexpected_events.push(EventRef {
                                publisher: *publisher,
                                seq,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Sets the verdict and its one-line detail from the counts and whether the read was complete.
fn conclude(check: &mut LedgerCheck, back: &ReadBack) {
    let lost = check.lost;
    let mut problems = Vec::new();
    if lost > 0 && back.incomplete.is_some() {
        problems.push(format!(
            "{lost} acknowledged event(s) not read back (lost, or beyond an incomplete read)"
        ));
    } else if lost > 0 {
        problems.push(format!("{lost} acknowledged event(s) lost"));
    }
    if check.duplicated > 0 {
        problems.push(format!("{} event(s) read more than once", check.duplicated));
    }
    if check.unexpected > 0 {
        problems.push(format!(
            "{} unexpected event(s) (never attempted)",
            check.unexpected
        ));
    }
    if check.failed_but_read > 0 {
        problems.push(format!(
            "{} event(s) reported as refused are stored",
            check.failed_but_read
        ));
    }
    if let Some(reason) = &back.incomplete {
        problems.push(reason.clone());
    }
    check.passed = problems.is_empty();
    check.detail = if check.passed {
        let mut text = format!(
            "read back {}: every acked event present once, {} recovered of unknown outcome",
            check.read, check.recovered
        );
        if check.removed_by_retention > 0 {
            text.push_str(&format!(
                ", {} removed by retention not judged",
                check.removed_by_retention
            ));
        }
        if check.foreign > 0 {
            text.push_str(&format!(", {} foreign message(s) ignored", check.foreign));
        }
        text
    } else {
        problems.join("; ")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(
        publisher: u32,
        attempted: u64,
        acked: &[u64],
        unknown: &[u64],
        failed: &[u64],
    ) -> PublisherLedger {
        let mut l = PublisherLedger {
            publisher,
            stream: "FOCUS".into(),
            attempted,
            ..PublisherLedger::default()
        };
        for &s in acked {
            l.acked.insert(s);
        }
        for &s in unknown {
            l.unknown.insert(s);
        }
        for &s in failed {
            l.failed.insert(s);
        }
        l
    }

    fn read(pairs: &[(u32, u64)]) -> ReadBack {
        let mut back = ReadBack::default();
        for &(p, s) in pairs {
            back.read += 1;
            if !back.seen.entry(p).or_default().insert(s) {
                back.duplicated_count += 1;
            }
        }
        back
    }

    #[test]
    fn a_stream_sequence_delivered_again_is_one_copy_and_another_sequence_a_duplicate() {
        let id = |seq| {
            Some(ledger::Identity {
                run: "r".into(),
                publisher: 0,
                seq,
            })
        };
        let mut back = ReadBack::default();
        back.record(1, id(1), "r");
        back.record(2, id(2), "r");
        // A recreated consumer redelivers sequence 2: the same stored message.
        back.record(2, id(2), "r");
        assert_eq!((back.read, back.duplicated_count), (2, 0));
        // The same event stored again at sequence 3: a real duplicate.
        back.record(3, id(2), "r");
        assert_eq!((back.read, back.duplicated_count), (3, 1));
    }

    #[test]
    fn a_clean_read_passes_and_counts_recovered() {
        let l = ledger(0, 4, &[1, 2, 3], &[4], &[]);
        let check = judge("FOCUS", &[&l], &read(&[(0, 1), (0, 2), (0, 3), (0, 4)]), 0);
        assert!(check.passed, "{}", check.detail);
        assert_eq!((check.recovered, check.lost), (1, 0));
    }

    #[test]
    fn each_anomaly_fails_with_its_name() {
        let l = ledger(0, 5, &[1, 2, 3, 4], &[], &[5]);
        let lost = judge("FOCUS", &[&l], &read(&[(0, 1), (0, 2), (0, 4)]), 0);
        assert!(!lost.passed && lost.lost == 1);
        assert_eq!(
            (lost.lost_events[0].publisher, lost.lost_events[0].seq),
            (0, 3)
        );
        let dup = judge(
            "FOCUS",
            &[&l],
            &read(&[(0, 1), (0, 2), (0, 3), (0, 4), (0, 4)]),
            0,
        );
        assert!(!dup.passed && dup.duplicated == 1, "{}", dup.detail);
        let unexpected = judge(
            "FOCUS",
            &[&l],
            &read(&[(0, 1), (0, 2), (0, 3), (0, 4), (0, 9), (7, 1)]),
            0,
        );
        assert!(
            !unexpected.passed && unexpected.unexpected == 2,
            "{}",
            unexpected.detail
        );
        let refused = judge(
            "FOCUS",
            &[&l],
            &read(&[(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]),
            0,
        );
        assert!(
            !refused.passed && refused.failed_but_read == 1,
            "{}",
            refused.detail
        );
    }

    #[test]
    fn retention_removals_are_not_called_lost() {
        let l = ledger(0, 4, &[1, 2, 3, 4], &[], &[]);
        let check = judge("FOCUS", &[&l], &read(&[(0, 3), (0, 4)]), 2);
        assert!(check.passed, "{}", check.detail);
        assert_eq!(check.removed_by_retention, 2);
        assert!(check.lost_events.is_empty());
        // A gap after the first event read back is not retention's doing.
        let gap = judge("FOCUS", &[&l], &read(&[(0, 1), (0, 2), (0, 4)]), 1);
        assert!(!gap.passed && gap.lost == 1, "{}", gap.detail);
        assert_eq!(gap.lost_events[0].seq, 3);
    }
}
