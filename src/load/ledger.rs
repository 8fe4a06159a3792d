//! The ledger: what each publisher attempted and what became of it (DESIGN.md §3).
//!
//! Sequences are assigned 1, 2, 3... per publisher and attempted in order, so "attempted" is a single
//! number; outcomes are kept as sets of ranges. Acks arrive nearly in order, so the sets stay a handful
//! of ranges and memory does not grow with the message count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::poison::PoisonKind;

/// A set of u64 kept as disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSet {
    /// start → end (inclusive).
    ranges: BTreeMap<u64, u64>,
    len: u64,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`; returns false if it was already present.
    pub fn insert(&mut self, value: u64) -> bool {
        // Above every value present (an ack in order, the usual case): extend or open the last
        // range with one lookup instead of the general path's four.
        if let Some(mut last) = self.ranges.last_entry() {
            let end = *last.get();
            if value > end {
                if value == end + 1 {
                    *last.get_mut() = value;
                } else {
                    self.ranges.insert(value, value);
                }
                self.len += 1;
                return true;
            }
        }
        if self.contains(value) {
            return false;
        }
        let below = self
            .ranges
            .range(..value)
            .next_back()
            .map(|(&s, &e)| (s, e));
        let above = value
            .checked_add(1)
            .and_then(|next| self.ranges.get(&next).map(|&e| (next, e)));
        match (below, above) {
            (Some((s, e)), Some((next, end))) if e + 1 == value => {
                self.ranges.remove(&next);
                self.ranges.insert(s, end);
            }
            (Some((s, e)), _) if e + 1 == value => {
                self.ranges.insert(s, value);
            }
            (_, Some((next, end))) => {
                self.ranges.remove(&next);
                self.ranges.insert(value, end);
            }
            _ => {
                self.ranges.insert(value, value);
            }
        }
        self.len += 1;
        true
    }

    pub fn contains(&self, value: u64) -> bool {
        self.ranges
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| value <= end)
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many values lie in `lo..=hi` (cost follows the ranges that overlap it).
    pub fn count_between(&self, lo: u64, hi: u64) -> u64 {
        if hi < lo {
            return 0;
        }
        let first = self.ranges.range(..=lo).next_back().map_or(lo, |(&s, _)| s);
        self.ranges
            .range(first..=hi)
            .map(|(&s, &e)| {
                let (s, e) = (s.max(lo), e.min(hi));
                if e < s {
                    0
                } else {
                    e - s + 1
                }
            })
            .sum()
    }

    /// Number of ranges (the memory the set holds).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// The ranges in order, inclusive.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// The values of `self` not in `other`, range by range (cost follows the ranges, not the values).
    pub fn without(&self, other: &RangeSet) -> RangeSet {
        let mut out = RangeSet::new();
        for (start, end) in self.ranges() {
            let mut from = start;
            // Only the ranges of `other` that can overlap: from the one holding `start` on.
            let lo = other
                .ranges
                .range(..=start)
                .next_back()
                .map_or(start, |(&s, _)| s);
            for (s, e) in other.ranges.range(lo..=end).map(|(&s, &e)| (s, e)) {
                if e < from {
                    continue;
                }
                if s > from {
                    out.push_range(from, s - 1);
                }
                from = match e.checked_add(1) {
                    Some(next) => next,
                    None => return out,
                };
                if from > end {
                    break;
                }
            }
            if from <= end {
                out.push_range(from, end);
            }
        }
        out
    }

    /// Removes every value above `last`; returns how many there were.
    pub fn truncate_after(&mut self, last: u64) -> u64 {
        let mut removed = 0;
        let above: Vec<(u64, u64)> = self
            .ranges
            .range(..)
            .filter(|(_, &end)| end > last)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (start, end) in above {
            self.ranges.remove(&start);
            if start <= last {
                self.ranges.insert(start, last);
                removed += end - last;
            } else {
                removed += end - start + 1;
            }
        }
        self.len -= removed;
        removed
    }

    /// Appends a range above every value present.
    fn push_range(&mut self, start: u64, end: u64) {
        match self.ranges.iter_mut().next_back() {
            Some((_, last)) if last.checked_add(1) == Some(start) => *last = end,
            _ => {
                self.ranges.insert(start, end);
            }
        }
        self.len += end - start + 1;
    }
}

/// The sequences a publisher made poison on purpose (`traffic/poison.rs`), by kind.
///
/// Poison is scattered (each sequence its own range), so this holds one entry per poison event: a
/// share of a few percent of a run, and nothing at all in runs without poison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonSeqs {
    pub bad_json: RangeSet,
    pub bad_schema: RangeSet,
    pub unknown_type: RangeSet,
}

impl PoisonSeqs {
    /// Records `seq` as poison of `kind` (max-deliveries is not a kind a publisher injects).
    pub fn insert(&mut self, kind: PoisonKind, seq: u64) {
        let set = match kind {
            PoisonKind::BadJson => &mut self.bad_json,
            PoisonKind::BadSchema => &mut self.bad_schema,
            PoisonKind::UnknownType | PoisonKind::MaxDeliveries => &mut self.unknown_type,
        };
        set.insert(seq);
    }

    /// The kind `seq` was made, if it is poison.
    pub fn kind_of(&self, seq: u64) -> Option<PoisonKind> {
        [
            (PoisonKind::BadJson, &self.bad_json),
            (PoisonKind::BadSchema, &self.bad_schema),
            (PoisonKind::UnknownType, &self.unknown_type),
        ]
        .into_iter()
        .find(|(_, set)| set.contains(seq))
        .map(|(kind, _)| kind)
    }

    /// Every poison sequence, whatever its kind.
    pub fn all(&self) -> RangeSet {
        let mut all = self.bad_json.clone();
        for set in [&self.bad_schema, &self.unknown_type] {
            for (start, end) in set.ranges() {
                for seq in start..=end {
                    all.insert(seq);
                }
            }
        }
        all
    }

    pub fn len(&self) -> u64 {
        self.bad_json.len() + self.bad_schema.len() + self.unknown_type.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What became of one publisher's events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublisherLedger {
    pub publisher: u32,
    /// The stream the publisher writes to.
    pub stream: String,
    /// Sequences 1..=attempted were handed to the client.
    pub attempted: u64,
    /// Sequences the schedule intended but the run ended before they were attempted.
    pub never_sent: u64,
    /// Acknowledged by JetStream (stored, or recognised as a duplicate of a stored event).
    pub acked: RangeSet,
    /// Refused for certain (no stream, a JetStream error): not stored.
    pub failed: RangeSet,
    /// No answer (timeout, connection lost): may or may not be stored.
    pub unknown: RangeSet,
    /// Acks that JetStream flagged as duplicates (the Nats-Msg-Id was already stored).
    pub duplicate_acks: u64,
    /// When each acked sequence was acknowledged, to the second (see [`AckClock`]).
    #[serde(default)]
    pub ack_clock: AckClock,
    /// Intended events skipped as overdue, as (last sequence attempted before the skip, events
    /// skipped): with these a checker can replay the publisher's schedule and name the subject of
    /// any sequence. One entry per stall, not per event.
    #[serde(default)]
    pub skips: Vec<(u64, u64)>,
    /// Sequences sent as poison on purpose, whatever their outcome.
    #[serde(default)]
    pub poison: PoisonSeqs,
}

impl PublisherLedger {
    /// Marks every attempted sequence without an outcome yet (still in flight) as unknown;
    /// returns how many there were. What a cancelled publisher and a checkpoint's copy both do.
    pub fn settle_in_flight(&mut self) -> u64 {
        let decided = self.acked.len() + self.failed.len() + self.unknown.len();
        if decided >= self.attempted {
            return 0;
        }
        let mut settled = 0;
        for seq in 1..=self.attempted {
            if !(self.acked.contains(seq)
                || self.failed.contains(seq)
                || self.unknown.contains(seq))
            {
                self.unknown.insert(seq);
                settled += 1;
            }
        }
        settled
    }

    /// This ledger as the `events` table should reflect it: poison events are not written there
    /// (they go to the DLQ), so they are neither acked nor unknown for that check.
    pub fn without_poison(&self) -> PublisherLedger {
        if self.poison.is_empty() {
            return self.clone();
        }
        let poison = self.poison.all();
        PublisherLedger {
            acked: self.acked.without(&poison),
            unknown: self.unknown.without(&poison),
            failed: self.failed.without(&poison),
            ..self.clone()
        }
    }
}

/// For each second of the run, the lowest and highest sequence a publisher had acknowledged in it.
///
/// A lost event's ack time is then bounded without a timestamp per event: it lies in the seconds
/// whose [lowest, highest] contains its sequence (acks arrive nearly in order, so usually one or two
/// seconds). Memory follows the run's duration (16 bytes a second), not its message count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckClock {
    /// Index = second since the run's start; `None` for a second without acks.
    seconds: Vec<Option<(u64, u64)>>,
}

impl AckClock {
    /// Notes that `seq` was acked during `second`.
    /// Reserves room for `seconds` seconds (a run's length), so the clock grows without
    /// reallocating as the run goes.
    pub fn reserve(&mut self, seconds: u64) {
        let seconds = usize::try_from(seconds.min(2 * 24 * 3_600)).unwrap_or(0);
        self.seconds
            .reserve(seconds.saturating_sub(self.seconds.len()));
    }

    pub fn record(&mut self, second: u64, seq: u64) {
        let index = usize::try_from(second).unwrap_or(usize::MAX);
        // A clock that jumps absurdly far (a suspended machine) must not allocate without bound.
        if index > 30 * 24 * 3_600 {
            return;
        }
        if self.seconds.len() <= index {
            self.seconds.resize(index + 1, None);
        }
        let slot = &mut self.seconds[index];
        *slot = Some(match *slot {
            Some((low, high)) => (low.min(seq), high.max(seq)),
            None => (seq, seq),
        });
    }

    /// The seconds `[from, to)` within which `seq` was acked, if any second's range contains it.
    pub fn window_of(&self, seq: u64) -> Option<(u64, u64)> {
        let mut found: Option<(u64, u64)> = None;
        for (second, range) in self.seconds.iter().enumerate() {
            if let Some((low, high)) = range {
                if (*low..=*high).contains(&seq) {
                    let second = second as u64;
                    found = Some(match found {
                        Some((from, _)) => (from, second + 1),
                        None => (second, second + 1),
                    });
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_in_any_order() {
        let mut set = RangeSet::new();
        for v in [5, 3, 4, 1, 2, 10, 9, 11] {
            assert!(set.insert(v));
        }
        assert!(!set.insert(4));
        assert_eq!(set.len(), 8);
        assert_eq!(set.ranges().collect::<Vec<_>>(), vec![(1, 5), (9, 11)]);
        assert!(set.contains(10) && !set.contains(6) && !set.contains(0));
    }

    proptest::proptest! {
        /// Whatever the order (runs in order, gaps, late values, repeats), the set holds exactly
        /// the values inserted, as disjoint non-adjacent ranges.
        #[test]
        fn ranges_hold_what_was_inserted(values in proptest::collection::vec(0u64..200, 0..300)) {
            let mut set = RangeSet::new();
            let mut model = std::collections::BTreeSet::new();
            for v in values {
                proptest::prop_assert_eq!(set.insert(v), model.insert(v));
            }
            proptest::prop_assert_eq!(set.len(), model.len() as u64);
            let held: Vec<u64> = set.ranges().flat_map(|(s, e)| s..=e).collect();
            proptest::prop_assert_eq!(held, model.iter().copied().collect::<Vec<_>>());
            let ranges: Vec<(u64, u64)> = set.ranges().collect();
            for pair in ranges.windows(2) {
                proptest::prop_assert!(pair[0].1 + 1 < pair[1].0, "{:?}", pair);
            }
        }
    }

    #[test]
    fn truncating_keeps_what_lies_at_or_below_the_bound() {
        let mut set = RangeSet::new();
        for v in [1, 2, 3, 7, 8, 9, 12] {
            set.insert(v);
        }
        assert_eq!(set.truncate_after(8), 2);
        assert_eq!(set.ranges().collect::<Vec<_>>(), vec![(1, 3), (7, 8)]);
        assert_eq!(set.len(), 5);
        assert_eq!(set.truncate_after(100), 0);
        assert_eq!(set.truncate_after(0), 5);
        assert!(set.is_empty());
    }

    #[test]
    fn the_ack_clock_bounds_an_ack_to_its_seconds() {
        let mut clock = AckClock::default();
        for seq in 1..=100 {
            clock.record(seq / 40, seq);
        }
        // Out of order: 85 acked late, in second 3.
        clock.record(3, 85);
        assert_eq!(clock.window_of(10), Some((0, 1)));
        assert_eq!(clock.window_of(50), Some((1, 2)));
        assert_eq!(clock.window_of(85), Some((2, 4)));
        assert_eq!(clock.window_of(101), None);
    }

    #[test]
    fn count_between_counts_only_the_window() {
        let mut set = RangeSet::new();
        for v in (1..=10).chain(20..=30).chain([40]) {
            set.insert(v);
        }
        assert_eq!(set.count_between(1, 40), 22);
        assert_eq!(set.count_between(5, 25), 12);
        assert_eq!(set.count_between(11, 19), 0);
        assert_eq!(set.count_between(40, 40), 1);
        assert_eq!(set.count_between(41, u64::MAX), 0);
        assert_eq!(set.count_between(9, 8), 0);
    }

    #[test]
    fn without_subtracts_by_ranges() {
        let set = |values: &[u64]| {
            let mut s = RangeSet::new();
            for v in values {
                s.insert(*v);
            }
            s
        };
        let a = set(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 21, 22, u64::MAX]);
        let b = set(&[0, 3, 5, 6, 10, 11, 19, 20, u64::MAX]);
        let diff = a.without(&b);
        let values: Vec<u64> = diff.ranges().flat_map(|(s, e)| s..=e).collect();
        assert_eq!(values, vec![1, 2, 4, 7, 8, 9, 21, 22]);
        assert_eq!(diff.len(), 8);
        assert_eq!(a.without(&RangeSet::new()), a);
        assert!(b.without(&b).is_empty());
    }

    #[test]
    fn poison_is_kept_by_kind_and_left_out_of_the_events_ledger() {
        let mut ledger = PublisherLedger::default();
        for seq in 1..=10 {
            ledger.acked.insert(seq);
        }
        ledger.poison.insert(PoisonKind::BadJson, 3);
        ledger.poison.insert(PoisonKind::UnknownType, 7);
        assert_eq!(ledger.poison.kind_of(7), Some(PoisonKind::UnknownType));
        assert_eq!(ledger.poison.kind_of(4), None);
        let events = ledger.without_poison();
        assert_eq!(events.acked.len(), 8);
        assert!(!events.acked.contains(3) && !events.acked.contains(7));
    }

    #[test]
    fn a_million_nearly_ordered_acks_stay_small() {
        let mut set = RangeSet::new();
        // Acks arrive out of order within windows of 64, as with a bounded in-flight window.
        for base in (0..1_000_000u64).step_by(64) {
            for offset in (0..64).rev() {
                set.insert(base + offset + 1);
            }
        }
        assert_eq!(set.len(), 1_000_000);
        assert_eq!(set.range_count(), 1);
    }
}
