//! The disaster-recovery check: after a drill (`run/drill.rs`) destroyed the cluster with its
//! stores and restored every stream from its snapshot on a fresh one, the ledger judges each
//! restored stream.
//!
//! For each publisher of a stream the drill cut its set of acknowledged sequences just before it
//! asked for the stream's snapshot (`load::engine::PublisherCell::acked_cut`). So:
//! - an event in the cut was acknowledged before the snapshot: it must be in the restored stream,
//!   exactly once; a missing or duplicated one fails the check and is named;
//! - an event acknowledged after the cut is the drill's expected cost: the ones the restored stream
//!   lacks are the **recovery point** (what a real outage at the moment of the destruction would
//!   have lost: so many events, acknowledged over so many seconds after the snapshot), reported,
//!   never counted as loss. (Those acked after the cut but before the leader took its snapshot are
//!   in it, and counted as restored.)
//!
//! Reading the restored stream back is `no_loss::read_back`'s.

use std::collections::BTreeMap;

use serde::Serialize;

use super::no_loss::ReadBack;
use crate::load::ledger::{PublisherLedger, RangeSet};

/// How many missing events a report names.
const SAMPLES: usize = 100;

/// An event acknowledged before its stream's snapshot that the restored stream lacks.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MissingEvent {
    pub publisher: u32,
    pub seq: u64,
    /// The ack happened within `[from, to)` seconds since the load's start.
    pub acked_between_s: Option<(u64, u64)>,
}

impl MissingEvent {
    /// "publisher 0 seq 12 (acked in 3–4 s)".
    pub fn describe(&self) -> String {
        match self.acked_between_s {
            Some((from, to)) => format!(
                "publisher {} seq {} (acked in {from}–{to} s)",
                self.publisher, self.seq
            ),
            None => format!("publisher {} seq {}", self.publisher, self.seq),
        }
    }
}

/// What one stream's snapshot and restore came to.
#[derive(Debug, Clone, Serialize)]
pub struct StreamRecovery {
    pub stream: String,
    /// When the snapshot was asked for, in seconds since the load's start.
    pub snapshot_at_s: f64,
    /// The stream's state the snapshot holds, and its size on disk.
    pub snapshot_messages: u64,
    pub snapshot_last_seq: u64,
    pub snapshot_bytes: u64,
    /// The restored stream's message count and last sequence (`None`: not restored).
    pub restored_messages: Option<u64>,
    pub restored_last_seq: Option<u64>,
    /// This run's events acknowledged before the snapshot (the cut).
    pub acked_before: u64,
    /// Of those, how many the restored stream lacks (each one fails the check).
    pub missing_before: u64,
    /// Read more than once from the restored stream.
    pub duplicated: u64,
    /// The first missing events (at most 100).
    pub missing_events: Vec<MissingEvent>,
    /// This run's events acknowledged after the cut.
    pub acked_after: u64,
    /// Of those, the ones in the snapshot anyway (acked between the cut and the snapshot).
    pub restored_after: u64,
    /// The recovery point in events: acknowledged after the snapshot, not in the restored stream.
    pub lost_after: u64,
    pub passed: bool,
    pub detail: String,
}

/// What the check is made from, for one stream.
pub struct StreamInputs<'a> {
    pub stream: &'a str,
    pub snapshot_at_s: f64,
    pub snapshot_messages: u64,
    pub snapshot_last_seq: u64,
    pub snapshot_bytes: u64,
    /// Each of the stream's publishers' acked set at the cut.
    pub cut: &'a BTreeMap<u32, RangeSet>,
    /// The final ledgers (every publisher; those of other streams are skipped).
    pub ledgers: &'a [PublisherLedger],
    /// The restored stream read back, or why it could not be.
    pub restored: Result<(&'a ReadBack, crate::topology::backup::RestoredState), String>,
}

/// Judges one restored stream against the cut and the final ledgers.
pub fn judge(input: StreamInputs<'_>) -> StreamRecovery {
    let mut result = StreamRecovery {
        stream: input.stream.to_string(),
        snapshot_at_s: input.snapshot_at_s,
        snapshot_messages: input.snapshot_messages,
        snapshot_last_seq: input.snapshot_last_seq,
        snapshot_bytes: input.snapshot_bytes,
        restored_messages: None,
        restored_last_seq: None,
        acked_before: 0,
        missing_before: 0,
        duplicated: 0,
        missing_events: Vec::new(),
        acked_after: 0,
        restored_after: 0,
        lost_after: 0,
        passed: false,
        detail: String::new(),
    };
    let empty = RangeSet::new();
    let ledgers = input.ledgers.iter().filter(|l| l.stream == input.stream);
    let (back, state) = match input.restored {
        Ok(restored) => restored,
        Err(why) => {
            for ledger in ledgers {
                let cut = input.cut.get(&ledger.publisher).unwrap_or(&empty);
                result.acked_before += cut.len();
                result.missing_before += cut.len();
                result.acked_after += ledger.acked.without(cut).len();
            }
            result.detail = format!("not restored: {why}");
            return result;
        }
    };
    result.restored_messages = Some(state.messages);
    result.restored_last_seq = Some(state.last_seq);
    result.duplicated = back.duplicated_count;
    for ledger in ledgers {
        let cut = input.cut.get(&ledger.publisher).unwrap_or(&empty);
        let seen = back.seen.get(&ledger.publisher).unwrap_or(&empty);
        let missing = cut.without(seen);
        let after = ledger.acked.without(cut);
        let lost_after = after.without(seen);
        result.acked_before += cut.len();
        result.missing_before += missing.len();
        result.acked_after += after.len();
        result.lost_after += lost_after.len();
        result.restored_after += after.len() - lost_after.len();
        for (low, high) in missing.ranges() {
            for seq in low..=high {
                if result.missing_events.len() >= SAMPLES {
                    break;
                }
                result.missing_events.push(MissingEvent {
                    publisher: ledger.publisher,
                    seq,
                    acked_between_s: ledger.ack_clock.window_of(seq),
                });
            }
        }
    }
    result.passed = result.missing_before == 0 && result.duplicated == 0;
    result.detail = if let Some(why) = &back.incomplete {
        result.passed = false;
        why.clone()
    } else if result.passed {
        format!(
            "all {} events acked before the snapshot restored once; recovery point {} events \
             acked after it",
            result.acked_before, result.lost_after
        )
    } else {
        let named: Vec<String> = result
            .missing_events
            .iter()
            .take(5)
            .map(MissingEvent::describe)
            .collect();
        let mut text = format!(
            "{} of {} events acked before the snapshot missing after the restore",
            result.missing_before, result.acked_before
        );
        if !named.is_empty() {
            text.push_str(&format!(": {}", named.join(", ")));
            if result.missing_before > named.len() as u64 {
                text.push_str(&format!(" and {} more", result.missing_before - 5));
            }
        }
        if result.duplicated > 0 {
            text.push_str(&format!("; {} read twice", result.duplicated));
        }
        text
    };
    result
}

/// The whole drill: every stream's result, with the recovery point and the recovery time.
#[derive(Debug, Clone, Serialize)]
pub struct DisasterRecovery {
    /// Where the snapshots are (`<run dir>/backup/<STREAM>/`).
    pub backup_dir: String,
    /// The earliest snapshot request, in seconds since the load's start.
    pub snapshot_at_s: f64,
    /// When the cluster was destroyed (every node stopped, every store deleted), same clock.
    pub destroyed_at_s: f64,
    /// The recovery point in seconds: how old the snapshots were when the cluster was destroyed
    /// (what an outage then loses is what was acknowledged over these seconds).
    pub recovery_point_s: f64,
    /// The recovery point in events: acknowledged after their stream's snapshot, not restored.
    pub recovery_point_events: u64,
    /// How long the fresh cluster took to come up on empty stores.
    pub fresh_cluster_s: f64,
    /// The recovery time: from the first restore request until every stream was restored and its
    /// replicas current.
    pub recovery_time_s: f64,
    /// Every stream snapshotted and restored, the run's own and the others.
    pub streams: Vec<StreamRecovery>,
    /// Set when the drill could not be done at all (no snapshot, the cluster would not come up).
    pub error: Option<String>,
    pub passed: bool,
    pub detail: String,
}

impl DisasterRecovery {
    /// Sums the streams into the drill's verdict and detail.
    pub fn conclude(mut self) -> Self {
        self.recovery_point_events = self.streams.iter().map(|s| s.lost_after).sum();
        let failed: Vec<&StreamRecovery> = self.streams.iter().filter(|s| !s.passed).collect();
        self.passed = self.error.is_none() && failed.is_empty() && !self.streams.is_empty();
        let acked_before: u64 = self.streams.iter().map(|s| s.acked_before).sum();
        self.detail = if let Some(error) = &self.error {
            format!("drill not completed: {error}")
        } else if self.streams.is_empty() {
            "no stream was snapshotted".to_string()
        } else if failed.is_empty() {
            format!(
                "{} streams restored in {:.1} s (recovery time); all {acked_before} events acked \
                 before the snapshots present once; recovery point {} events, {:.1} s",
                self.streams.len(),
                self.recovery_time_s,
                self.recovery_point_events,
                self.recovery_point_s
            )
        } else {
            failed
                .iter()
                .map(|s| format!("{}: {}", s.stream, s.detail))
                .collect::<Vec<_>>()
                .join("; ")
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::backup::RestoredState;

    fn range(from: u64, to: u64) -> RangeSet {
        let mut set = RangeSet::new();
        for seq in from..=to {
            set.insert(seq);
        }
        set
    }

    fn ledger(acked: RangeSet) -> PublisherLedger {
        PublisherLedger {
            publisher: 0,
            stream: "FOCUS".into(),
            attempted: acked.len(),
            acked,
            ..PublisherLedger::default()
        }
    }

    fn judged(cut_to: u64, acked_to: u64, seen: RangeSet) -> StreamRecovery {
        let cut = BTreeMap::from([(0, range(1, cut_to))]);
        let ledgers = [ledger(range(1, acked_to))];
        let back = ReadBack {
            seen: BTreeMap::from([(0, seen)]),
            ..ReadBack::default()
        };
        let state = RestoredState {
            messages: 0,
            first_seq: 1,
            last_seq: 0,
        };
        judge(StreamInputs {
            stream: "FOCUS",
            snapshot_at_s: 5.0,
            snapshot_messages: 0,
            snapshot_last_seq: 0,
            snapshot_bytes: 0,
            cut: &cut,
            ledgers: &ledgers,
            restored: Ok((&back, state)),
        })
    }

    #[test]
    fn what_was_acked_after_the_snapshot_is_the_recovery_point_not_a_loss() {
        let r = judged(100, 150, range(1, 110));
        assert!(r.passed, "{}", r.detail);
        assert_eq!((r.acked_before, r.acked_after), (100, 50));
        assert_eq!((r.restored_after, r.lost_after), (10, 40));
    }

    #[test]
    fn an_event_acked_before_the_snapshot_and_missing_fails_and_is_named() {
        let mut seen = range(1, 110);
        seen = seen.without(&range(7, 8));
        let r = judged(100, 150, seen);
        assert!(!r.passed);
        assert_eq!(r.missing_before, 2);
        assert_eq!(
            r.missing_events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [7, 8]
        );
        assert!(r.detail.contains("publisher 0 seq 7"), "{}", r.detail);
    }
}
