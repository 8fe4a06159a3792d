//! The DLQ check (issue 6): exactly the poison events the run injected reach the dead-letter queue,
//! once per consumer that reads their stream, each with the right headers; valid events never do.
//!
//! After the drain (and the consumers' catch-up) the run reads the DLQ stream from its last sequence
//! before the load, keeps the dead letters that carry this run's ledger identity, and compares
//! them with the publishers' ledgers, where every injected poison event is recorded with its kind:
//!
//! - `missing`: an acknowledged poison event without a dead letter from a consumer that reads its
//!   stream;
//! - `unexpected`: a dead letter for a valid event (or one the publisher never attempted, or was told
//!   was refused);
//! - `duplicated`: the same event routed twice by the same consumer;
//! - `bad_headers`: `Aivo-Dlq-Stream` is not the publisher's stream, `Aivo-Dlq-Consumer` is not a
//!   consumer of that stream, `Aivo-Dlq-Reason` is not the injected kind, `Aivo-Dlq-Deliveries` is not
//!   within 1..=max deliver, `Aivo-Dlq-Error` is empty, or the original message at
//!   `Aivo-Dlq-Stream-Seq` (fetched from its stream) is not this event on `Aivo-Dlq-Subject`;
//! - `recovered`: poison of unknown publish outcome found in the DLQ (it was stored after all).
//!
//! Dead letters without this run's header are counted as foreign and ignored. Memory follows the
//! dead letters of the run (a few percent of its events), never the whole run.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::consumers::dlq::{self, DlqEntry, DlqFilter};
use crate::event::ledger;
use crate::event::poison::PoisonKind;
use crate::load::ledger::{PublisherLedger, RangeSet};
use crate::topology::ConsumerDecl;

/// How many dead letters have their original fetched from its stream to check subject and sequence
/// (one request each); the rest are checked on their headers alone.
const VERIFY_LIMIT: usize = 5_000;
/// How many problems a report lists.
const SAMPLES: usize = 100;

/// One dead letter of this run, as read from the DLQ stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRecord {
    pub dlq_seq: u64,
    pub publisher: u32,
    pub seq: u64,
    pub subject: String,
    pub stream: String,
    pub stream_seq: Option<u64>,
    pub consumer: String,
    pub deliveries: Option<i64>,
    pub reason: String,
    pub error: String,
    /// What the original stream holds at `stream_seq`: `Some(Ok((subject, ledger identity)))`, an error
    /// if the fetch failed other than by the message being gone, `None` if not fetched.
    pub original: Option<Result<(String, String), String>>,
}

/// What reading the DLQ found.
#[derive(Debug, Default)]
pub struct DlqRead {
    pub records: Vec<DeadLetterRecord>,
    /// Dead letters of other writers or runs.
    pub foreign: u64,
}

/// A dead letter named in a report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DlqRef {
    pub publisher: u32,
    pub seq: u64,
    pub consumer: String,
    /// Its DLQ sequence, if it is in the DLQ.
    pub dlq_seq: Option<u64>,
    /// What is wrong.
    pub why: String,
}

/// The verdict of the DLQ check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DlqCheck {
    /// Poison events acknowledged by JetStream (each must reach the DLQ).
    pub injected: u64,
    /// Dead letters expected: each injected event once per consumer that reads its stream.
    pub expected: u64,
    /// Dead letters of this run read from the DLQ.
    pub entries: u64,
    pub missing: u64,
    pub unexpected: u64,
    pub duplicated: u64,
    pub bad_headers: u64,
    pub recovered: u64,
    pub foreign: u64,
    /// Dead letters whose original was fetched to check its subject and sequence.
    pub verified_by_fetch: u64,
    /// The first problems (at most 100).
    pub problems: Vec<DlqRef>,
    pub passed: bool,
    pub detail: String,
}

/// Reads the dead letters of `run_id` from DLQ sequence `from_seq` on, and fetches the originals of
/// the first [`VERIFY_LIMIT`] from their streams.
pub async fn read(
    js: &async_nats::jetstream::Context,
    run_id: &str,
    from_seq: u64,
) -> Result<DlqRead, String> {
    let mut out = DlqRead::default();
    let filter = DlqFilter {
        dlq_seqs: Some((from_seq.max(1), u64::MAX)),
        ..DlqFilter::default()
    };
    dlq::scan(js, &filter, |entry: DlqEntry| {
        let ledger = entry
            .identity()
            .filter(|i| i.run == run_id)
            .map(|i| (i.publisher, i.seq));
        match ledger {
            Some((publisher, seq)) => out.records.push(DeadLetterRecord {
                dlq_seq: entry.dlq_seq,
                publisher,
                seq,
                subject: entry.subject,
                stream: entry.stream,
                stream_seq: entry.stream_seq,
                consumer: entry.consumer,
                deliveries: entry.deliveries,
                reason: entry.reason,
                error: entry.error,
                original: None,
            }),
            None => out.foreign += 1,
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut streams = BTreeMap::new();
    for record in out.records.iter_mut().take(VERIFY_LIMIT) {
        let Some(stream_seq) = record.stream_seq else {
            continue;
        };
        if !streams.contains_key(&record.stream) {
            match js.get_stream_no_info(&record.stream).await {
                Ok(s) => {
                    streams.insert(record.stream.clone(), s);
                }
                Err(e) => {
                    record.original = Some(Err(format!("stream {}: {e}", record.stream)));
                    continue;
                }
            }
        }
        let Some(stream) = streams.get(&record.stream) else {
            continue;
        };
        record.original = match stream.get_raw_message(stream_seq).await {
            Ok(m) => Some(Ok((
                m.subject.to_string(),
                ledger::identity_of(Some(&m.headers), &m.payload)
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
            ))),
            // Retention may have removed it: nothing to compare with.
            Err(e) if e.to_string().to_lowercase().contains("not found") => None,
            Err(e) => Some(Err(e.to_string())),
        };
    }
    Ok(out)
}

/// Compares the dead letters of the run with the poison its publishers injected. `consumers` are
/// the consumers that ran (each with the stream it reads and its max deliver).
pub fn judge(
    run_id: &str,
    ledgers: &[PublisherLedger],
    consumers: &[ConsumerDecl],
    read: &DlqRead,
) -> DlqCheck {
    let mut check = DlqCheck {
        entries: read.records.len() as u64,
        foreign: read.foreign,
        ..DlqCheck::default()
    };
    let by_publisher: BTreeMap<u32, &PublisherLedger> =
        ledgers.iter().map(|l| (l.publisher, l)).collect();
    // (publisher, consumer) → sequences seen in the DLQ.
    let mut seen: BTreeMap<(u32, String), RangeSet> = BTreeMap::new();
    for r in &read.records {
        if !seen
            .entry((r.publisher, r.consumer.clone()))
            .or_default()
            .insert(r.seq)
        {
            check.duplicated += 1;
            check.sample(r.named("routed more than once".into()));
            continue;
        }
        judge_record(&mut check, run_id, &by_publisher, consumers, r);
    }
    count_missing(&mut check, ledgers, consumers, &seen);
    conclude(&mut check);
    check
}

impl DlqCheck {
    /// Lists `problem` in the report, if fewer than [`SAMPLES`] are listed yet.
    fn sample(&mut self, problem: DlqRef) {
        if self.problems.len() < SAMPLES {
            self.problems.push(problem);
        }
    }
}

impl DeadLetterRecord {
    /// This dead letter as a problem of the report, `why` saying what is wrong.
    fn named(&self, why: String) -> DlqRef {
        DlqRef {
            publisher: self.publisher,
            seq: self.seq,
            consumer: self.consumer.clone(),
            dlq_seq: Some(self.dlq_seq),
            why,
        }
    }
}

/// Judges one dead letter seen for the first time from its consumer: is it poison the run injected
/// and stored, and are its headers right?
fn judge_record(
    check: &mut DlqCheck,
    run_id: &str,
    by_publisher: &BTreeMap<u32, &PublisherLedger>,
    consumers: &[ConsumerDecl],
    r: &DeadLetterRecord,
) {
    let ledger = by_publisher.get(&r.publisher);
    let kind = ledger.and_then(|l| l.poison.kind_of(r.seq));
    let Some((ledger, kind)) = ledger.zip(kind) else {
        check.unexpected += 1;
        check.sample(r.named(format!("a valid event in the DLQ ({})", r.reason)));
        return;
    };
    if ledger.failed.contains(r.seq) || r.seq > ledger.attempted {
        check.unexpected += 1;
        check.sample(r.named("never stored, yet in the DLQ".into()));
        return;
    }
    if ledger.unknown.contains(r.seq) {
        check.recovered += 1;
    }
    let consumer = consumers
        .iter()
        .find(|c| c.stream == ledger.stream && c.name == r.consumer);
    let mut wrong = wrong_headers(r, ledger, kind, consumer);
    if let Some(mismatch) = wrong_original(check, run_id, r) {
        wrong.push(mismatch);
    }
    if !wrong.is_empty() {
        check.bad_headers += 1;
        check.sample(r.named(wrong.join("; ")));
    }
}

/// What is wrong with the headers of `r`, a dead letter of `ledger`'s poison of `kind`, routed by
/// `consumer` (`None` if no consumer of that name reads the stream).
fn wrong_headers(
    r: &DeadLetterRecord,
    ledger: &PublisherLedger,
    kind: PoisonKind,
    consumer: Option<&ConsumerDecl>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    if r.stream != ledger.stream {
        wrong.push(format!("stream {:?}, expected {}", r.stream, ledger.stream));
    }
    match consumer {
        None => wrong.push(format!(
            "consumer {:?} does not read {}",
            r.consumer, ledger.stream
        )),
        Some(c) => {
            if !r
                .deliveries
                .is_some_and(|d| (1..=c.max_deliver).contains(&d))
            {
                wrong.push(format!(
                    "deliveries {:?}, expected 1..={}",
                    r.deliveries, c.max_deliver
                ));
            }
        }
    }
    if r.reason != kind.as_str() {
        wrong.push(format!("reason {:?}, injected {}", r.reason, kind));
    }
    if r.error.trim().is_empty() {
        wrong.push("no error".into());
    }
    wrong
}

/// What is wrong with the original `r` points at (its stream sequence and what the stream holds
/// there), if anything; counts the dead letters checked against a fetched original.
fn wrong_original(check: &mut DlqCheck, run_id: &str, r: &DeadLetterRecord) -> Option<String> {
    match (&r.original, r.stream_seq) {
        (_, None) => Some("no stream sequence".into()),
        (Some(Ok((subject, header))), Some(seq)) => {
            check.verified_by_fetch += 1;
            let expected = format!("{run_id}/{}/{}", r.publisher, r.seq);
            if *header != expected {
                Some(format!(
                    "{}#{seq} holds {header:?}, not this event",
                    r.stream
                ))
            } else if *subject != r.subject {
                Some(format!("subject {:?}, original {subject:?}", r.subject))
            } else {
                None
            }
        }
        (Some(Err(e)), _) => Some(format!("original not readable: {e}")),
        (None, _) => None,
    }
}

/// Counts every acknowledged poison event, once per consumer of its stream, and the dead letters
/// among them that `seen` lacks.
fn count_missing(
    check: &mut DlqCheck,
    ledgers: &[PublisherLedger],
    consumers: &[ConsumerDecl],
    seen: &BTreeMap<(u32, String), RangeSet>,
) {
    for ledger in ledgers {
        let readers: Vec<&ConsumerDecl> = consumers
            .iter()
            .filter(|c| c.stream == ledger.stream)
            .collect();
        for (start, end) in ledger.poison.all().ranges() {
            for seq in (start..=end).filter(|&seq| ledger.acked.contains(seq)) {
                check.injected += 1;
                for consumer in &readers {
                    check.expected += 1;
                    let found = seen
                        .get(&(ledger.publisher, consumer.name.clone()))
                        .is_some_and(|s| s.contains(seq));
                    if !found {
                        check.missing += 1;
                        check.sample(missing(ledger, seq, consumer));
                    }
                }
            }
        }
    }
}

/// The problem of a poison event of `ledger` that `consumer` did not route.
fn missing(ledger: &PublisherLedger, seq: u64, consumer: &ConsumerDecl) -> DlqRef {
    DlqRef {
        publisher: ledger.publisher,
        seq,
        consumer: consumer.name.clone(),
        dlq_seq: None,
        why: format!(
            "{} poison not in the DLQ",
            ledger.poison.kind_of(seq).map_or("", PoisonKind::as_str)
        ),
    }
}

/// Sets the verdict and its one-line detail from the counts.
fn conclude(check: &mut DlqCheck) {
    let mut problems = Vec::new();
    if check.missing > 0 {
        problems.push(format!(
            "{} of {} expected dead letter(s) missing",
            check.missing, check.expected
        ));
    }
    if check.unexpected > 0 {
        problems.push(format!("{} valid event(s) in the DLQ", check.unexpected));
    }
    if check.duplicated > 0 {
        problems.push(format!(
            "{} event(s) routed more than once",
            check.duplicated
        ));
    }
    if check.bad_headers > 0 {
        problems.push(format!(
            "{} dead letter(s) with wrong headers",
            check.bad_headers
        ));
    }
    check.passed = problems.is_empty();
    check.detail = if check.passed {
        format!(
            "{} poison event(s) → {} dead letter(s), each once with its headers ({} checked against \
             the original); no valid event in the DLQ",
            check.injected, check.entries, check.verified_by_fetch
        )
    } else {
        let first = check
            .problems
            .first()
            .map(|p| {
                format!(
                    " (first: publisher {} seq {} {}: {})",
                    p.publisher, p.seq, p.consumer, p.why
                )
            })
            .unwrap_or_default();
        format!("{}{first}", problems.join("; "))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    fn ledger() -> PublisherLedger {
        let mut l = PublisherLedger {
            publisher: 2,
            stream: "FOCUS".into(),
            attempted: 10,
            ..PublisherLedger::default()
        };
        for seq in 1..=10 {
            l.acked.insert(seq);
        }
        l.poison.insert(PoisonKind::BadJson, 3);
        l.poison.insert(PoisonKind::UnknownType, 8);
        l
    }

    fn consumers() -> Vec<ConsumerDecl> {
        Topology::seed(3)
            .consumers
            .into_iter()
            .filter(|c| c.stream == "FOCUS")
            .collect()
    }

    fn letter(seq: u64, consumer: &str, reason: &str) -> DeadLetterRecord {
        DeadLetterRecord {
            dlq_seq: seq * 10,
            publisher: 2,
            seq,
            subject: "focus.ping".into(),
            stream: "FOCUS".into(),
            stream_seq: Some(100 + seq),
            consumer: consumer.into(),
            deliveries: Some(1),
            reason: reason.into(),
            error: "EOF while parsing".into(),
            original: Some(Ok(("focus.ping".into(), format!("r/2/{seq}")))),
        }
    }

    fn clean() -> DlqRead {
        DlqRead {
            records: vec![
                letter(3, "indexer", "bad_json"),
                letter(3, "analytics", "bad_json"),
                letter(8, "indexer", "unknown_type"),
                letter(8, "analytics", "unknown_type"),
            ],
            foreign: 1,
        }
    }

    #[test]
    fn exactly_the_poison_once_per_consumer_passes() {
        let check = judge("r", &[ledger()], &consumers(), &clean());
        assert!(check.passed, "{}", check.detail);
        assert_eq!((check.injected, check.expected, check.entries), (2, 4, 4));
        assert_eq!(check.verified_by_fetch, 4);
    }

    #[test]
    fn each_anomaly_fails_with_its_name() {
        let run = |read: DlqRead| judge("r", &[ledger()], &consumers(), &read);
        let mut missing = clean();
        missing.records.remove(1);
        let check = run(missing);
        assert!(!check.passed && check.missing == 1, "{}", check.detail);
        assert_eq!(check.problems[0].consumer, "analytics");

        let mut valid = clean();
        valid.records.push(letter(5, "indexer", "max_deliveries"));
        let check = run(valid);
        assert!(!check.passed && check.unexpected == 1, "{}", check.detail);
        assert!(check.detail.contains("valid event"), "{}", check.detail);

        let mut twice = clean();
        twice.records.push(letter(3, "indexer", "bad_json"));
        let check = run(twice);
        assert!(!check.passed && check.duplicated == 1, "{}", check.detail);

        for (field, mutate) in [
            (
                "reason",
                Box::new(|r: &mut DeadLetterRecord| r.reason = "bad_schema".into())
                    as Box<dyn Fn(&mut DeadLetterRecord)>,
            ),
            (
                "stream",
                Box::new(|r: &mut DeadLetterRecord| r.stream = "LEARNING".into()),
            ),
            (
                "consumer",
                Box::new(|r: &mut DeadLetterRecord| r.consumer = "billing".into()),
            ),
            (
                "deliveries",
                Box::new(|r: &mut DeadLetterRecord| r.deliveries = Some(9)),
            ),
            (
                "error",
                Box::new(|r: &mut DeadLetterRecord| r.error.clear()),
            ),
            (
                "sequence",
                Box::new(|r: &mut DeadLetterRecord| {
                    r.original = Some(Ok(("focus.ping".into(), "r/2/4".into())))
                }),
            ),
            (
                "subject",
                Box::new(|r: &mut DeadLetterRecord| r.subject = "focus.pong".into()),
            ),
        ] {
            let mut read = clean();
            mutate(&mut read.records[0]);
            let check = run(read);
            assert!(
                !check.passed && check.bad_headers == 1,
                "{field}: {}",
                check.detail
            );
        }
    }

    #[test]
    fn refused_poison_is_not_expected_and_unknown_poison_may_appear() {
        let mut l = ledger();
        l.acked = l.acked.without(&{
            let mut s = RangeSet::new();
            s.insert(8);
            s
        });
        l.unknown.insert(8);
        let check = judge("r", &[l.clone()], &consumers(), &clean());
        assert!(check.passed, "{}", check.detail);
        assert_eq!((check.injected, check.recovered), (1, 2));
        let mut read = clean();
        read.records.truncate(2);
        assert!(judge("r", &[l], &consumers(), &read).passed);
    }
}
