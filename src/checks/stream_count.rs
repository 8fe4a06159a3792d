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
    /// The stream's leader's own count of the run's sequences against what the read-back found
    /// (`None`: not compared, e.g. the read-back stopped early).
    pub leader_count: Option<LeaderCount>,
    pub passed: bool,
    pub detail: String,
}

/// What the stream's leader says it holds of sequences `from_seq..=to_seq`, and how many of them
/// the read-back's consumer delivered. A consumer may be served by another replica than the
/// leader, so a leader short of messages can go unseen by the read-back: the two must agree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaderCount {
    pub leader: Option<String>,
    pub from_seq: u64,
    pub to_seq: u64,
    pub leader_holds: u64,
    pub read: u64,
}

impl StreamCount {
    /// Adds the leader's count; a disagreement with the read-back fails the stream.
    pub fn compare_leader(&mut self, count: LeaderCount) {
        let leader = count.leader.as_deref().unwrap_or("the server");
        let (lo, hi) = (count.from_seq, count.to_seq);
        let problem = if count.leader_holds < count.read {
            Some(format!(
                "the leader {leader} holds {} message(s) of sequences {lo}-{hi}, the read-back \
                 found {}: {} message(s) missing on at least one replica",
                count.leader_holds,
                count.read,
                count.read - count.leader_holds
            ))
        } else if count.leader_holds > count.read {
            Some(format!(
                "the leader {leader} says it holds {} message(s) of sequences {lo}-{hi}, the \
                 read-back found only {}",
                count.leader_holds, count.read
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            if self.passed {
                self.detail = problem;
            } else {
                self.detail = format!("{}; {problem}", self.detail);
            }
            self.passed = false;
        }
        self.leader_count = Some(count);
    }

    /// True when the leader's count disagreed with the read-back.
    pub fn leader_disagrees(&self) -> bool {
        self.leader_count
            .as_ref()
            .is_some_and(|c| c.leader_holds != c.read)
    }
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
        leader_count: None,
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
    fn a_leader_holding_fewer_than_the_read_back_found_fails() {
        let count = |leader_holds, read| LeaderCount {
            leader: Some("nats1".into()),
            from_seq: 1,
            to_seq: 108_125,
            leader_holds,
            read,
        };
        // What a Jepsen-style minority corruption left: every event read once, the leader short.
        let mut short = judge("FOCUS", totals(108_125, 0), 0, 108_125, 93_479);
        short.compare_leader(count(93_479, 108_125));
        assert!(!short.passed && short.leader_disagrees());
        assert!(
            short.detail.contains("14646 message(s) missing"),
            "{}",
            short.detail
        );
        let mut agreed = judge("FOCUS", totals(100, 0), 0, 100, 100);
        agreed.compare_leader(count(100, 100));
        assert!(
            agreed.passed && !agreed.leader_disagrees(),
            "{}",
            agreed.detail
        );
        let mut over = judge("FOCUS", totals(100, 0), 0, 100, 100);
        over.compare_leader(count(100, 90));
        assert!(
            !over.passed && over.detail.contains("found only 90"),
            "{}",
            over.detail
        );
    }

    #[test]
    fn missing_or_foreign_messages_fail() {
        let lost = judge("FOCUS", totals(100, 0), 0, 99, 99);
        assert!(!lost.passed && lost.detail.contains("1 acknowledged event(s) missing"));
        let foreign = judge("FOCUS", totals(100, 2), 0, 103, 103);
        assert!(!foreign.passed && foreign.detail.contains("1 unexpected"));
    }
}
