//! The ledger check (Jepsen's vocabulary, DESIGN.md §3): read back what the run wrote to a stream and
//! compare it with the publishers' ledgers.
//!
//! - `lost`: acknowledged, never read back;
//! - `duplicated`: read more than once (JetStream dedups on `Nats-Msg-Id`, so a stream holds each
//!   event at most once);
//! - `unexpected`: read, but carrying this run's ledger header for a sequence its publisher never
//!   attempted;
//! - `failed_but_read`: the publisher was told the event was refused, yet it is in the stream;
//! - `recovered`: unknown outcome (timeout, lost connection), read back.
//!
//! Reading uses an ordered consumer with `headers_only` from the stream's sequence before the load to
//! its last sequence after the drain, so the payloads never cross the wire again. What was read is kept
//! per publisher as range sets: memory follows the gaps, not the message count. Messages without this
//! run's header are counted as `foreign` (another writer on a shared cluster), not judged.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use futures::StreamExt;
use serde::Serialize;

use crate::load::engine::{parse_ledger_header, HEADER_LEDGER};
use crate::load::ledger::{PublisherLedger, RangeSet};

/// How long the read-back waits for the next message before it gives up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// Messages without this run's ledger header.
    pub foreign: u64,
    /// First and last stream sequence read.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Set when the read stopped before `to_seq`.
    pub incomplete: Option<String>,
}

/// One event named in a report.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct EventRef {
    pub publisher: u32,
    pub seq: u64,
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
    pub lost_events: Vec<EventRef>,
    pub unexpected_events: Vec<EventRef>,
    pub passed: bool,
    pub detail: String,
}

/// Reads stream sequences `from_seq..=to_seq` back (headers only) and sorts them by this run's ledger.
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
    let handle = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
    let consumer = handle
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from_seq,
            },
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("read-back consumer on {stream}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("read-back of {stream}: {e}"))?;
    loop {
        let next = match tokio::time::timeout(IDLE_TIMEOUT, messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => {
                back.incomplete = Some(format!("read-back of {stream} failed: {e}"));
                break;
            }
            Ok(None) => {
                back.incomplete = Some(format!("read-back of {stream} ended early"));
                break;
            }
            Err(_) => {
                back.incomplete = Some(format!(
                    "read-back of {stream} stalled for {IDLE_TIMEOUT:?} at sequence {} of {to_seq}",
                    back.last_seq.unwrap_or(from_seq)
                ));
                break;
            }
        };
        let stream_seq = next.info().map(|i| i.stream_sequence).unwrap_or(0);
        if stream_seq > to_seq {
            break;
        }
        back.read += 1;
        back.first_seq.get_or_insert(stream_seq);
        back.last_seq = Some(stream_seq);
        let ledger = next
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_LEDGER))
            .and_then(|v| parse_ledger_header(v.as_str()).map(|(run, p, s)| (run == run_id, p, s)));
        match ledger {
            Some((true, publisher, seq)) => {
                if !back.seen.entry(publisher).or_default().insert(seq) {
                    back.duplicated_count += 1;
                    if back.duplicated.len() < SAMPLES {
                        back.duplicated.push((publisher, seq));
                    }
                }
            }
            _ => back.foreign += 1,
        }
        if stream_seq >= to_seq {
            break;
        }
    }
    Ok(back)
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
    };
    let empty = RangeSet::new();
    let by_publisher: BTreeMap<u32, &PublisherLedger> =
        ledgers.iter().map(|l| (l.publisher, *l)).collect();
    for ledger in ledgers {
        let seen = back.seen.get(&ledger.publisher).unwrap_or(&empty);
        for (start, end) in ledger.acked.ranges() {
            for seq in start..=end {
                if !seen.contains(seq) {
                    check.lost += 1;
                    if check.lost_events.len() < SAMPLES {
                        check.lost_events.push(EventRef {
                            publisher: ledger.publisher,
                            seq,
                        });
                    }
                }
            }
        }
    }
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
    // Events retention removed before the read cannot be told from lost ones; say how many there were
    // and do not call them lost.
    let explained = check.lost.min(removed_by_retention);
    let lost = check.lost - explained;
    let mut problems = Vec::new();
    if lost > 0 {
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
        if removed_by_retention > 0 {
            text.push_str(&format!(
                ", {removed_by_retention} removed by retention not judged"
            ));
        }
        if check.foreign > 0 {
            text.push_str(&format!(", {} foreign message(s) ignored", check.foreign));
        }
        text
    } else {
        problems.join("; ")
    };
    if check.lost > 0 && explained > 0 {
        check.lost = lost;
    }
    check
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
        assert!(
            !lost.passed
                && lost.lost == 1
                && lost.lost_events
                    == vec![EventRef {
                        publisher: 0,
                        seq: 3
                    }]
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
    }
}
