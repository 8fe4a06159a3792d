//! The checks of every stream a run wrote, after its drain: the stream-count cross-check and the
//! ledger read-back, with what retention removed meanwhile worked out per stream. `run` gives
//! where each stream stood before the load; this reads where it stands now, reads the run's range
//! back and judges it against the publishers' ledgers.

use std::collections::BTreeMap;

use anyhow::anyhow;

use super::no_loss::{self, LedgerCheck};
use super::stream_count::{self, LeaderCount, StreamCount};
use crate::load::ledger::PublisherLedger;
use crate::topology::{leader_copy, stream_position_if_any, wait_until_replicated, StreamPosition};

/// One stream the run wrote, and where it stood before the load.
#[derive(Debug, Clone)]
pub struct StreamWindow {
    pub stream: &'static str,
    pub before: StreamPosition,
    /// The scenario set a `max_age`, so messages keep expiring during the read itself. A
    /// `max_bytes` or `max_msgs` limit discards only as a message is stored, and nothing is stored
    /// after the drain: the first sequence after the drain is where retention stopped.
    pub expiring: bool,
}

/// Both checks of every stream.
#[derive(Debug, Default)]
pub struct StreamChecks {
    pub counts: Vec<StreamCount>,
    pub ledgers: Vec<LedgerCheck>,
}

/// Reads every stream back and judges it. After faults, each stream is first given its leader and
/// replicas back (an idle stream's leader reports followers "not current" until the next write,
/// so only online replicas are awaited; if even that fails, the read-back says what it could not
/// read). An error is a stream that could not be read at all.
///
/// `up_to` judges a dead run from its last checkpoint: each publisher's events past the sequence
/// it had attempted then are in the stream but in no ledger, so they are left out of the ledger
/// check, and the stream-count cross-check (which needs the whole run) is not made.
pub async fn check_streams(
    js: &async_nats::jetstream::Context,
    windows: &[StreamWindow],
    run_id: &str,
    ledgers: &[PublisherLedger],
    after_faults: bool,
    up_to: Option<&BTreeMap<u32, u64>>,
) -> anyhow::Result<StreamChecks> {
    let totals = stream_count::totals_by_stream(ledgers);
    let mut checks = StreamChecks::default();
    for window in windows {
        let stream = window.stream;
        if after_faults {
            if let Err(e) = wait_until_replicated(js, stream, false).await {
                eprintln!("aivo-load: {e:#}; reading back anyway");
            }
        }
        let Some(after) = stream_position_if_any(js, stream).await? else {
            eprintln!("aivo-load: stream {stream} no longer exists: nothing to read back");
            let ledger = totals.get(stream).copied().unwrap_or_default();
            checks.counts.extend(
                up_to
                    .is_none()
                    .then(|| stream_count::judge(stream, ledger, window.before.last_seq, 0, 0)),
            );
            let writers: Vec<_> = ledgers.iter().filter(|l| l.stream == stream).collect();
            let mut check = no_loss::judge(stream, &writers, &no_loss::ReadBack::default(), 0);
            check.passed = false;
            check.stream_gone = true;
            check.detail = format!("the stream no longer exists: {}", check.detail);
            checks.ledgers.push(check);
            continue;
        };
        let ledger = totals.get(stream).copied().unwrap_or_default();
        let mut count = up_to.is_none().then(|| {
            stream_count::judge(
                stream,
                ledger,
                window.before.last_seq,
                after.last_seq,
                after.messages,
            )
        });
        eprintln!(
            "aivo-load: reading {stream} back ({} messages)",
            after.last_seq.saturating_sub(window.before.last_seq)
        );
        let from = window.before.last_seq + 1;
        let mut back = no_loss::read_back(js, stream, run_id, from, after.last_seq)
            .await
            .map_err(|e| anyhow!(e))?;
        if let Some(last) = up_to {
            let later = back.only_up_to(last);
            eprintln!("aivo-load: {stream}: {later} events sent after the checkpoint left out");
        }
        if let Some(count) = count.as_mut().filter(|_| back.incomplete.is_none()) {
            match leader_count(
                js,
                stream,
                window.before.last_seq + 1,
                after.last_seq,
                &back,
            )
            .await
            {
                Ok(leader) => count.compare_leader(leader),
                Err(e) => eprintln!("aivo-load: {e:#}; the leader's count is not compared"),
            }
        }
        checks.counts.extend(count);
        let writers: Vec<_> = ledgers.iter().filter(|l| l.stream == stream).collect();
        let removed = removed_by_retention(window, after, back.first_seq);
        checks
            .ledgers
            .push(no_loss::judge(stream, &writers, &back, removed));
    }
    Ok(checks)
}

/// The leader's own count of `from..=to` (read after the read-back, so what expired meanwhile
/// is below its first sequence and left out of both sides) against what the read-back found.
async fn leader_count(
    js: &async_nats::jetstream::Context,
    stream: &str,
    from: u64,
    to: u64,
    back: &no_loss::ReadBack,
) -> anyhow::Result<LeaderCount> {
    let copy = leader_copy(js, stream).await?;
    let lo = from.max(copy.first_seq);
    let hi = to.min(copy.last_seq);
    Ok(LeaderCount {
        leader: copy.leader.clone(),
        from_seq: lo,
        to_seq: hi,
        leader_holds: copy.held_between(lo, hi),
        read: back.stream_seqs.count_between(lo, hi),
    })
}

/// How many of the run's messages retention removed before the read: everything below the first
/// sequence kept. Where the scenario set a `max_age`, messages keep expiring during the read itself,
/// so the first sequence the read found counts too.
fn removed_by_retention(
    window: &StreamWindow,
    after: StreamPosition,
    first_read: Option<u64>,
) -> u64 {
    let mut first_kept = after.first_seq;
    if window.expiring {
        first_kept = first_kept.max(first_read.unwrap_or(after.last_seq + 1));
    }
    let before = window.before.last_seq;
    first_kept
        .saturating_sub(before + 1)
        .min(after.last_seq.saturating_sub(before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(last_seq: u64, expiring: bool) -> StreamWindow {
        StreamWindow {
            stream: "FOCUS",
            before: StreamPosition {
                last_seq,
                ..StreamPosition::default()
            },
            expiring,
        }
    }

    #[test]
    fn retention_removes_what_lies_below_the_first_sequence_kept() {
        let after = StreamPosition {
            last_seq: 200,
            messages: 50,
            first_seq: 151,
        };
        // The run wrote 101..=200; 101..=150 were gone when the read began.
        assert_eq!(
            removed_by_retention(&window(100, false), after, Some(151)),
            50
        );
        // With max_age, what expired during the read counts too.
        assert_eq!(
            removed_by_retention(&window(100, true), after, Some(161)),
            60
        );
        // Without max_age (no limit, or only max_bytes / max_msgs, which discard only when a
        // message is stored) the first sequence read does not count (a gap after it is a loss).
        assert_eq!(
            removed_by_retention(&window(100, false), after, Some(161)),
            50
        );
        // Never more than the run wrote.
        assert_eq!(removed_by_retention(&window(100, true), after, None), 100);
        let untouched = StreamPosition {
            first_seq: 1,
            ..after
        };
        assert_eq!(
            removed_by_retention(&window(100, false), untouched, Some(101)),
            0
        );
    }
}
