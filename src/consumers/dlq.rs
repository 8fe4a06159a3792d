//! The dead-letter queue: routing a poison event to `dlq.<stream>.<consumer>`, the router that
//! catches events a consumer gave up on (the server's max-deliveries advisory), and `dlq list` /
//! `dlq replay`.
//!
//! A dead letter carries the original payload and headers plus `Aivo-Dlq-*` headers naming the
//! original subject, stream, stream sequence, consumer, delivery count, reason and error. Its
//! `Nats-Msg-Id` is `dlq/<stream>/<seq>/<consumer>`, so the same event routed twice (by the consumer
//! and by the router, or on a redelivery after a crash) is stored once within the dedup window.
//! The original `Nats-Msg-Id` moves to `Aivo-Dlq-Msg-Id`: kept as is, the DLQ stream would drop the
//! second consumer's dead letter for the same event as a duplicate.
//!
//! Advisories are core NATS messages: one published while the router is disconnected is missed. So
//! the router is the second line: the consumers' workers route an event whose last delivery fails
//! themselves (reason `max_deliveries`) and terminate it, leaving the server nothing to give up on;
//! the router catches the rest (a worker that could not reach the DLQ, a consumer that is not ours).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use async_nats::{HeaderMap, HeaderValue};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::ConsumersError;
use crate::event::ledger;
use crate::event::poison::PoisonKind;

/// The stream that holds dead letters.
pub const DLQ_STREAM: &str = "DLQ";
/// Original subject.
pub const HEADER_SUBJECT: &str = "Aivo-Dlq-Subject";
/// Original stream.
pub const HEADER_STREAM: &str = "Aivo-Dlq-Stream";
/// Sequence of the event in its original stream.
pub const HEADER_STREAM_SEQ: &str = "Aivo-Dlq-Stream-Seq";
/// The durable consumer that gave up on it.
pub const HEADER_CONSUMER: &str = "Aivo-Dlq-Consumer";
/// How many times it had been delivered to that consumer.
pub const HEADER_DELIVERIES: &str = "Aivo-Dlq-Deliveries";
/// [`PoisonKind::as_str`]: `bad_json`, `bad_schema`, `unknown_type`, `max_deliveries`.
pub const HEADER_REASON: &str = "Aivo-Dlq-Reason";
/// The error in words.
pub const HEADER_ERROR: &str = "Aivo-Dlq-Error";
/// The original `Nats-Msg-Id`, if it had one.
pub const HEADER_MSG_ID: &str = "Aivo-Dlq-Msg-Id";
/// On a replayed event: the dead letter it came from (`DLQ/<seq>`).
pub const HEADER_REPLAYED_FROM: &str = "Aivo-Replayed-From";

/// Header values must not hold line breaks; errors are cut to a readable length.
const MAX_ERROR_LEN: usize = 500;
/// How long publishing a dead letter (or a replay) may wait for its ack.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a DLQ scan waits for the next message before concluding the stream is exhausted.
const SCAN_IDLE: Duration = Duration::from_secs(5);

/// The subject a consumer's dead letters from `stream` go to.
pub fn dlq_subject(stream: &str, consumer: &str) -> String {
    format!("dlq.{stream}.{consumer}")
}

/// An event on its way to the DLQ.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub subject: String,
    pub stream: String,
    pub stream_seq: u64,
    pub consumer: String,
    pub deliveries: i64,
    pub reason: PoisonKind,
    pub error: String,
    pub payload: Bytes,
    pub headers: Option<HeaderMap>,
}

fn header_safe(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !clean.is_char_boundary(cut) {
            cut -= 1;
        }
        clean.truncate(cut);
        clean.push('…');
    }
    clean
}

/// Publishes a dead letter to `dlq.<stream>.<consumer>` and waits for the DLQ stream's ack.
pub async fn route(js: &jetstream::Context, letter: &DeadLetter) -> Result<(), ConsumersError> {
    let mut headers = HeaderMap::new();
    if let Some(original) = &letter.headers {
        for (name, values) in original.iter() {
            let name: &str = name.as_ref();
            if name.eq_ignore_ascii_case(async_nats::header::NATS_MESSAGE_ID.as_ref()) {
                if let Some(value) = values.first() {
                    headers.insert(HEADER_MSG_ID, value.clone());
                }
                continue;
            }
            if name.starts_with("Aivo-Dlq-") || name.starts_with("Nats-") {
                continue;
            }
            for value in values {
                headers.append(name, value.clone());
            }
        }
    }
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!(
            "dlq/{}/{}/{}",
            letter.stream, letter.stream_seq, letter.consumer
        )
        .as_str(),
    );
    headers.insert(HEADER_SUBJECT, header_safe(&letter.subject).as_str());
    headers.insert(HEADER_STREAM, letter.stream.as_str());
    headers.insert(HEADER_STREAM_SEQ, letter.stream_seq.to_string().as_str());
    headers.insert(HEADER_CONSUMER, letter.consumer.as_str());
    headers.insert(HEADER_DELIVERIES, letter.deliveries.to_string().as_str());
    headers.insert(HEADER_REASON, letter.reason.as_str());
    headers.insert(HEADER_ERROR, header_safe(&letter.error).as_str());
    let subject = dlq_subject(&letter.stream, &letter.consumer);
    let nats = |e: &dyn std::fmt::Display| ConsumersError::Nats {
        what: format!("route {}#{} to {subject}", letter.stream, letter.stream_seq),
        reason: e.to_string(),
    };
    let ack = js
        .publish_with_headers(subject.clone(), headers, letter.payload.clone())
        .await
        .map_err(|e| nats(&e))?;
    tokio::time::timeout(PUBLISH_TIMEOUT, ack)
        .await
        .map_err(|_| nats(&"no ack from the DLQ stream"))?
        .map_err(|e| nats(&e))?;
    Ok(())
}

/// The body of `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`.
#[derive(Debug, Deserialize)]
struct MaxDeliveriesAdvisory {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: i64,
}

/// What the router did, for tests and status lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouterStats {
    /// Advisories received for the watched consumer.
    pub advisories: u64,
    /// Events fetched by sequence and routed to the DLQ.
    pub routed: u64,
    /// Advisories that could not be acted on (event gone, DLQ unavailable after retries).
    pub failed: u64,
}

/// Watches the max-deliveries advisories of `consumer` on every stream and routes each event the
/// consumer gave up on to the DLQ (fetched by its stream sequence), until `cancel`.
///
/// Advisories about the DLQ stream itself are logged and skipped: routing a dead letter into the
/// queue it came from would loop.
pub async fn run_router(
    client: async_nats::Client,
    consumer: String,
    cancel: CancellationToken,
    stats: std::sync::Arc<std::sync::Mutex<RouterStats>>,
) -> Result<(), ConsumersError> {
    let js = jetstream::new(client.clone());
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.*.{consumer}");
    let mut advisories =
        client
            .subscribe(subject.clone())
            .await
            .map_err(|e| ConsumersError::Nats {
                what: format!("subscribe to {subject}"),
                reason: e.to_string(),
            })?;
    let bump = |f: fn(&mut RouterStats)| {
        if let Ok(mut s) = stats.lock() {
            f(&mut s);
        }
    };
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            next = advisories.next() => match next {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveriesAdvisory>(&message.payload) else {
            tracing::warn!("unreadable max-deliveries advisory on {}", message.subject);
            continue;
        };
        if advisory.consumer != consumer {
            continue;
        }
        bump(|s| s.advisories += 1);
        if advisory.stream == DLQ_STREAM {
            tracing::warn!(
                "{consumer} gave up on dead letter DLQ#{} after {} deliveries; it stays in DLQ",
                advisory.stream_seq,
                advisory.deliveries
            );
            continue;
        }
        match route_exhausted(&js, &advisory).await {
            Ok(()) => bump(|s| s.routed += 1),
            Err(err) => {
                bump(|s| s.failed += 1);
                tracing::error!(
                    "cannot route {}#{} (gave up by {}) to DLQ: {err}",
                    advisory.stream,
                    advisory.stream_seq,
                    advisory.consumer
                );
            }
        }
    }
}

async fn route_exhausted(
    js: &jetstream::Context,
    advisory: &MaxDeliveriesAdvisory,
) -> Result<(), ConsumersError> {
    let nats = |what: &str, e: &dyn std::fmt::Display| ConsumersError::Nats {
        what: format!("{what} {}#{}", advisory.stream, advisory.stream_seq),
        reason: e.to_string(),
    };
    // A leader change can make the first attempts fail; the event stays in the stream meanwhile.
    let mut last = String::new();
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let stream = match js.get_stream_no_info(&advisory.stream).await {
            Ok(s) => s,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let message = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(m) => m,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let letter = DeadLetter {
            subject: message.subject.to_string(),
            stream: advisory.stream.clone(),
            stream_seq: advisory.stream_seq,
            consumer: advisory.consumer.clone(),
            deliveries: advisory.deliveries,
            reason: PoisonKind::MaxDeliveries,
            error: format!(
                "{} gave up after {} deliveries",
                advisory.consumer, advisory.deliveries
            ),
            payload: message.payload,
            headers: Some(message.headers),
        };
        match route(js, &letter).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(nats("fetch and route", &last))
}

/// Which dead letters a `dlq list` / `dlq replay` looks at; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqFilter {
    pub stream: Option<String>,
    pub consumer: Option<String>,
    pub reason: Option<PoisonKind>,
    /// A NATS subject pattern (`*` one token, `>` the rest) on the original subject.
    pub subject: Option<String>,
    /// Inclusive range of DLQ stream sequences.
    pub dlq_seqs: Option<(u64, u64)>,
}

impl DlqFilter {
    /// Parses `key=value` terms (`stream`, `consumer`, `reason`, `subject`, `seq` as `N` or `N-M`),
    /// each term given once or comma-separated.
    pub fn parse(terms: &[String]) -> Result<DlqFilter, ConsumersError> {
        let mut filter = DlqFilter::default();
        let usage = |msg: String| ConsumersError::Usage(msg);
        for term in terms.iter().flat_map(|t| t.split(',')).map(str::trim) {
            if term.is_empty() {
                continue;
            }
            let (key, value) = term.split_once('=').ok_or_else(|| {
                usage(format!(
                    "filter {term:?} is not key=value (keys: stream, consumer, reason, subject, seq)"
                ))
            })?;
            match key.trim() {
                "stream" => filter.stream = Some(value.to_string()),
                "consumer" => filter.consumer = Some(value.to_string()),
                "subject" => filter.subject = Some(value.to_string()),
                "reason" => {
                    filter.reason = Some(PoisonKind::parse(value).ok_or_else(|| {
                        usage(format!(
                            "unknown reason {value:?}; known: bad_json, bad_schema, unknown_type, max_deliveries"
                        ))
                    })?)
                }
                "seq" => {
                    let bad = || usage(format!("seq {value:?} is not N or N-M"));
                    let (a, b) = value.split_once('-').unwrap_or((value, value));
                    let a: u64 = a.trim().parse().map_err(|_| bad())?;
                    let b: u64 = b.trim().parse().map_err(|_| bad())?;
                    if b < a {
                        return Err(bad());
                    }
                    filter.dlq_seqs = Some((a, b));
                }
                other => {
                    return Err(usage(format!(
                        "unknown filter key {other:?} (keys: stream, consumer, reason, subject, seq)"
                    )))
                }
            }
        }
        Ok(filter)
    }

    fn matches(&self, entry: &DlqEntry) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.stream, &entry.stream)
            && eq(&self.consumer, &entry.consumer)
            && self.reason.is_none_or(|r| entry.reason == r.as_str())
            && self
                .subject
                .as_deref()
                .is_none_or(|p| subject_matches(p, &entry.subject))
            && self
                .dlq_seqs
                .is_none_or(|(a, b)| (a..=b).contains(&entry.dlq_seq))
    }
}

/// NATS wildcard match: `*` is one token, a final `>` one or more.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for want in pattern.split('.') {
        match (want, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (w, Some(t)) if w == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// One dead letter as read back from the DLQ stream.
#[derive(Debug, Clone)]
pub struct DlqEntry {
    /// Its sequence in the DLQ stream.
    pub dlq_seq: u64,
    pub subject: String,
    pub stream: String,
    pub stream_seq: Option<u64>,
    pub consumer: String,
    pub deliveries: Option<i64>,
    pub reason: String,
    pub error: String,
    pub payload: Bytes,
    pub headers: HeaderMap,
}

impl DlqEntry {
    /// Reads the `Aivo-Dlq-*` headers of a DLQ message (missing ones become empty / `None`).
    pub fn from_message(dlq_seq: u64, headers: HeaderMap, payload: Bytes) -> DlqEntry {
        let text = |name: &str| {
            headers
                .get(name)
                .map(|v: &HeaderValue| v.as_str().to_string())
                .unwrap_or_default()
        };
        DlqEntry {
            dlq_seq,
            subject: text(HEADER_SUBJECT),
            stream: text(HEADER_STREAM),
            stream_seq: text(HEADER_STREAM_SEQ).parse().ok(),
            consumer: text(HEADER_CONSUMER),
            deliveries: text(HEADER_DELIVERIES).parse().ok(),
            reason: text(HEADER_REASON),
            error: text(HEADER_ERROR),
            payload,
            headers,
        }
    }

    /// The ledger identity of the event this dead letter holds: from the original `Nats-Msg-Id`
    /// (kept as `Aivo-Dlq-Msg-Id`), else from the original payload (`event::ledger::identity`).
    pub fn identity(&self) -> Option<ledger::Identity<'_>> {
        let msg_id = self.headers.get(HEADER_MSG_ID).map(|v| v.as_str());
        ledger::identity(msg_id, &self.payload)
    }
}

/// Reads every dead letter now in the DLQ stream (from its first to its last sequence at the start),
/// handing those that match `filter` to `visit`. Memory stays bounded: entries are not collected.
pub async fn scan(
    js: &jetstream::Context,
    filter: &DlqFilter,
    mut visit: impl FnMut(DlqEntry),
) -> Result<u64, ConsumersError> {
    let nats = |what: &str, e: &dyn std::fmt::Display| ConsumersError::Nats {
        what: what.to_string(),
        reason: e.to_string(),
    };
    let mut stream = js
        .get_stream(DLQ_STREAM)
        .await
        .map_err(|e| nats("open the DLQ stream", &e))?;
    let state = stream
        .info()
        .await
        .map_err(|e| nats("read the DLQ stream", &e))?
        .state
        .clone();
    if state.messages == 0 {
        return Ok(0);
    }
    let start = filter
        .dlq_seqs
        .map_or(state.first_sequence, |(a, _)| a.max(state.first_sequence));
    let last = filter
        .dlq_seqs
        .map_or(state.last_sequence, |(_, b)| b.min(state.last_sequence));
    if start > last {
        return Ok(0);
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| nats("read the DLQ stream", &e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats("read the DLQ stream", &e))?;
    let mut matched = 0;
    loop {
        let message = match tokio::time::timeout(SCAN_IDLE, messages.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(nats("read the DLQ stream", &e)),
            // Deleted messages near the end leave nothing more to read.
            Ok(None) | Err(_) => break,
        };
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        if seq > last {
            break;
        }
        let entry = DlqEntry::from_message(
            seq,
            message.headers.clone().unwrap_or_default(),
            message.payload.clone(),
        );
        if filter.matches(&entry) {
            matched += 1;
            visit(entry);
        }
        if seq >= last {
            break;
        }
    }
    Ok(matched)
}

/// A group of dead letters with the same reason, stream and consumer.
#[derive(Debug, Clone, Default)]
pub struct DlqGroup {
    pub count: u64,
    /// The first few, for a look at what went wrong.
    pub samples: Vec<DlqEntry>,
}

/// `dlq list`: dead letters grouped by (reason, stream, consumer), with counts and samples.
pub async fn list(
    js: &jetstream::Context,
    filter: &DlqFilter,
    samples: usize,
) -> Result<BTreeMap<(String, String, String), DlqGroup>, ConsumersError> {
    let mut groups: BTreeMap<(String, String, String), DlqGroup> = BTreeMap::new();
    scan(js, filter, |entry| {
        let group = groups
            .entry((
                entry.reason.clone(),
                entry.stream.clone(),
                entry.consumer.clone(),
            ))
            .or_default();
        group.count += 1;
        if group.samples.len() < samples {
            group.samples.push(entry);
        }
    })
    .await?;
    Ok(groups)
}

/// What `dlq replay` did.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Republished and acked, per original subject.
    pub replayed: BTreeMap<String, u64>,
    /// Dead letters removed from the DLQ after their replay was acked.
    pub removed: u64,
    /// (DLQ sequence, why) for entries that could not be replayed.
    pub failed: Vec<(u64, String)>,
}

impl ReplayReport {
    /// Total events republished.
    pub fn total(&self) -> u64 {
        self.replayed.values().sum()
    }
}

/// `dlq replay`: republishes matching dead letters to their original subjects with their original
/// payload and headers, and with `remove`, deletes each from the DLQ once its replay is acked.
///
/// The replay's `Nats-Msg-Id` is `<original id>/replay/<dlq seq>`: the original id would be dropped
/// as a duplicate while the original is inside the dedup window, and a fixed suffix keeps a repeated
/// replay of the same dead letter idempotent within it. The indexer dedups on the event id anyway.
pub async fn replay(
    js: &jetstream::Context,
    filter: &DlqFilter,
    remove: bool,
) -> Result<ReplayReport, ConsumersError> {
    let mut entries = Vec::new();
    // Collect first (sequences and payloads of the matching entries only): republishing while the
    // scan runs would be fine too, but a replayed event that fails again lands back in the DLQ and
    // must not be picked up by the same replay.
    scan(js, filter, |entry| entries.push(entry)).await?;
    let mut report = ReplayReport::default();
    let dlq = if remove {
        Some(
            js.get_stream_no_info(DLQ_STREAM)
                .await
                .map_err(|e| ConsumersError::Nats {
                    what: "open the DLQ stream".into(),
                    reason: e.to_string(),
                })?,
        )
    } else {
        None
    };
    for entry in entries {
        if entry.subject.is_empty() {
            report
                .failed
                .push((entry.dlq_seq, "no Aivo-Dlq-Subject header".into()));
            continue;
        }
        let mut headers = HeaderMap::new();
        for (name, values) in entry.headers.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Aivo-Dlq-") || name.starts_with("Nats-") {
                continue;
            }
            for value in values {
                headers.append(name, value.clone());
            }
        }
        let original_id = entry
            .headers
            .get(HEADER_MSG_ID)
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| format!("{}/{}", entry.stream, entry.stream_seq.unwrap_or(0)));
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{original_id}/replay/{}", entry.dlq_seq).as_str(),
        );
        headers.insert(
            HEADER_REPLAYED_FROM,
            format!("{DLQ_STREAM}/{}", entry.dlq_seq).as_str(),
        );
        let outcome = match js
            .publish_with_headers(entry.subject.clone(), headers, entry.payload.clone())
            .await
        {
            Ok(ack) => match tokio::time::timeout(PUBLISH_TIMEOUT, ack).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no ack".to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                *report.replayed.entry(entry.subject.clone()).or_default() += 1;
                if let Some(dlq) = &dlq {
                    match dlq.delete_message(entry.dlq_seq).await {
                        Ok(_) => report.removed += 1,
                        Err(e) => report
                            .failed
                            .push((entry.dlq_seq, format!("replayed, but not removed: {e}"))),
                    }
                }
            }
            Err(e) => report.failed.push((entry.dlq_seq, e)),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(subject_matches("focus.>", "focus.loss.idle"));
        assert!(subject_matches("focus.*", "focus.ping"));
        assert!(!subject_matches("focus.*", "focus.loss.idle"));
        assert!(!subject_matches("focus.>", "focus"));
        assert!(subject_matches("focus.ping", "focus.ping"));
        assert!(!subject_matches("focus.ping", "focus.ping.x"));
    }

    #[test]
    fn filter_parses_terms_and_refuses_junk() {
        let filter = DlqFilter::parse(&["stream=FOCUS,reason=bad_json".into(), "seq=3-9".into()])
            .expect("valid");
        assert_eq!(filter.stream.as_deref(), Some("FOCUS"));
        assert_eq!(filter.reason, Some(PoisonKind::BadJson));
        assert_eq!(filter.dlq_seqs, Some((3, 9)));
        assert!(DlqFilter::parse(&["reason=oops".into()]).is_err());
        assert!(DlqFilter::parse(&["colour=red".into()]).is_err());
        assert!(DlqFilter::parse(&["seq=9-3".into()]).is_err());
        assert!(DlqFilter::parse(&["stream".into()]).is_err());
    }

    #[test]
    fn header_values_stay_on_one_line() {
        assert_eq!(header_safe("a\nb\r\tc"), "a b  c");
        assert!(header_safe(&"é".repeat(400)).len() <= MAX_ERROR_LEN + 3);
    }
}
