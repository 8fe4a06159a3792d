//! The stream-count check: every acknowledged event is in its stream, and nothing else is.
//!
//! Before the load the run notes each stream's last sequence; after the drain it reads it again. The
//! events appended in between must number at least the acked events (else some acked event is
//! missing) and at most acked + unknown (else something the ledger never attempted got in). It counts;
//! it does not identify events. It holds when the run is the only writer of its streams.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::load::ledger::PublisherLedger;

/// What the run's ledger says about one stream.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct LedgerTotals {
    pub attempted: u64,
    /// Acked and not flagged as a duplicate: each is one message appended.
    pub acked_new: u64,
    pub duplicate_acks: u64,
    pub failed: u64,
    pub unknown: u64,
}

/// The verdict for one stream.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StreamCount {
    pub stream: String,
    pub ledger: LedgerTotals,
    /// Stream last sequence before the load and after the drain.
    pub last_seq_before: u64,
    pub last_seq_after: u64,
    /// Messages the stream holds after the drain (retention may have removed some).
    pub messages_after: u64,
    /// `last_seq_after - last_seq_before`.
    pub appended: u64,
    pub passed: bool,
    pub detail: String,
}

/// Sums the ledgers per stream.
pub fn totals_by_stream(ledgers: &[PublisherLedger]) -> BTreeMap<String, LedgerTotals> {
    let mut totals: BTreeMap<String, LedgerTotals> = BTreeMap::new();
    for ledger in ledgers {
        let t = totals.entry(ledger.stream.clone()).or_default();
        t.attempted += ledger.attempted;
        t.acked_new += ledger.acked.len() - ledger.duplicate_acks.min(ledger.acked.len());
        t.duplicate_acks += ledger.duplicate_acks;
        t.failed += ledger.failed.len();
        t.unknown += ledger.unknown.len();
    }
    totals
}

/// Judges one stream.
pub fn judge(
    stream: &str,
    ledger: LedgerTotals,
    before: u64,
    after: u64,
    messages_after: u64,
) -> StreamCount {
    let appended = after.saturating_sub(before);
    let (passed, detail) = if appended < ledger.acked_new {
        (
            false,
            format!(
                "{} acknowledged event(s) missing: {} acked, only {} appended to {stream}",
                ledger.acked_new - appended,
                ledger.acked_new,
                appended
            ),
        )
    } else if appended > ledger.acked_new + ledger.unknown {
        (
            false,
            format!(
                "{} unexpected message(s) in {stream}: {appended} appended, but only {} acked + {} unknown",
                appended - ledger.acked_new - ledger.unknown,
                ledger.acked_new,
                ledger.unknown
            ),
        )
    } else {
        let recovered = appended - ledger.acked_new;
        (
            true,
            format!(
                "{appended} appended = {} acked + {recovered} of {} unknown",
                ledger.acked_new, ledger.unknown
            ),
        )
    };
    StreamCount {
        stream: stream.to_string(),
        ledger,
        last_seq_before: before,
        last_seq_after: after,
        messages_after,
        appended,
        passed,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(acked_new: u64, unknown: u64) -> LedgerTotals {
        LedgerTotals {
            attempted: acked_new + unknown,
            acked_new,
            unknown,
            ..LedgerTotals::default()
        }
    }

    #[test]
    fn exact_counts_pass() {
        assert!(judge("FOCUS", totals(100, 0), 10, 110, 100).passed);
        assert!(judge("FOCUS", totals(100, 5), 0, 103, 103).passed);
    }

    #[test]
    fn missing_or_foreign_messages_fail() {
        let lost = judge("FOCUS", totals(100, 0), 0, 99, 99);
        assert!(!lost.passed && lost.detail.contains("1 acknowledged event(s) missing"));
        let foreign = judge("FOCUS", totals(100, 2), 0, 103, 103);
        assert!(!foreign.passed && foreign.detail.contains("1 unexpected"));
    }
}
