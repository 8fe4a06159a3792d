//! The per-replica read-back: each replica's copy of a stream, read through the JetStream API
//! while it is the leader, compared message by message with the others.
//!
//! A consumer reads one copy (its stream's leader's, or whichever replica serves it), so the
//! ledger read-back cannot see a replica that lacks messages until leadership moves there — and
//! then the loss is real. Jepsen's NATS 2.12.1 analysis found replicas left permanently
//! disagreeing; `monitor /jsz` gives each node's interior-gap *count* (the `replicas` check), but
//! not which messages, and not at all on a cluster whose monitoring this machine cannot reach.
//!
//! Method: for each replica in turn, a leader stepdown naming it as the preferred successor
//! (nats-server 2.11+; the same API `nats stream cluster step-down --preferred` uses) makes it the
//! leader, and a stream info with `deleted_details` lists every sequence that copy lacks inside
//! its range. That is exact (sequences, not counts), reads no payloads, and works on every backend,
//! external included; it moves leadership but changes no data, and the original leader gets
//! leadership back at the end. A sequence one copy lacks and another holds is a divergence named
//! against the node lacking it; one no copy holds is gone from every replica. For a few samples of
//! each, the event's ledger identity is read from a copy that holds it.
//!
//! It runs after the drain when the leader's count disagreed with the read-back, when the
//! `replicas` check found a difference, or when the run applied a safety fault (one that damages
//! stores), since those are when the replicas can disagree.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::ledger;
use crate::topology::{leader_copy, move_leader, LeaderCopy};

/// How long a replica may take to become the leader when asked.
const MOVE_WITHIN: Duration = Duration::from_secs(20);
/// How many missing sequences each difference lists (and names the events of).
const SAMPLES: usize = 5;

/// One replica's copy, as it answered while it was the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaCopy {
    pub node: String,
    /// Messages of the compared sequences it holds (`None`: it could not be read).
    pub holds: Option<u64>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stream sequence a replica lacks, with the event it carries where a copy holding it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingMessage {
    pub stream_seq: u64,
    /// The ledger identity (`run/publisher/seq`) of the message, read from a copy that holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// Messages one replica lacks that another holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub node: String,
    pub missing: u64,
    /// The replicas that hold them.
    pub held_by: Vec<String>,
    pub samples: Vec<MissingMessage>,
}

/// The per-replica read-back of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRead {
    pub stream: String,
    /// The sequences compared: the run's, from the highest first sequence of any copy (retention)
    /// to the lowest last sequence.
    pub from_seq: u64,
    pub to_seq: u64,
    pub copies: Vec<ReplicaCopy>,
    pub divergences: Vec<Divergence>,
    /// Sequences in the range that no copy holds.
    pub on_no_replica: u64,
    pub on_no_replica_samples: Vec<u64>,
    /// Why it ran: a leader count that disagreed, a replicas-check difference, a safety fault.
    pub reason: String,
    pub passed: bool,
    pub detail: String,
}

/// Reads every replica's copy of `stream` for sequences `from..=to` and compares them.
pub async fn read_each_replica(
    js: &async_nats::jetstream::Context,
    stream: &str,
    from: u64,
    to: u64,
    reason: &str,
) -> ReplicaRead {
    let mut copies: Vec<(String, Result<LeaderCopy, String>)> = Vec::new();
    let first = leader_copy(js, stream).await;
    let original = first.as_ref().ok().and_then(|c| c.leader.clone());
    let peers = first.as_ref().map(|c| c.peers.clone()).unwrap_or_default();
    if let Err(e) = &first {
        return unread(stream, from, to, reason, format!("{e:#}"));
    }
    for peer in &peers {
        let copy = async {
            move_leader(js, stream, peer, MOVE_WITHIN).await?;
            let copy = leader_copy(js, stream).await?;
            match copy.leader.as_deref() {
                Some(leader) if leader == peer => Ok(copy),
                other => Err(anyhow::anyhow!(
                    "{} answered as leader instead",
                    other.unwrap_or("no server")
                )),
            }
        }
        .await
        .map_err(|e| format!("{e:#}"));
        copies.push((peer.clone(), copy));
    }
    let mut read = compare(stream, from, to, reason, &copies);
    name_samples(js, stream, &copies, &mut read).await;
    if let Some(original) = original {
        if let Err(e) = move_leader(js, stream, &original, MOVE_WITHIN).await {
            eprintln!("aivo-load: {stream}: leadership not given back to {original}: {e:#}");
        }
    }
    read
}

fn unread(stream: &str, from: u64, to: u64, reason: &str, why: String) -> ReplicaRead {
    ReplicaRead {
        stream: stream.to_string(),
        from_seq: from,
        to_seq: to,
        copies: Vec::new(),
        divergences: Vec::new(),
        on_no_replica: 0,
        on_no_replica_samples: Vec::new(),
        reason: reason.to_string(),
        passed: false,
        detail: format!("the replicas could not be read: {why}"),
    }
}

/// Compares the copies that answered over the sequences all of them still cover.
pub fn compare(
    stream: &str,
    from: u64,
    to: u64,
    reason: &str,
    copies: &[(String, Result<LeaderCopy, String>)],
) -> ReplicaRead {
    let read: Vec<(&str, &LeaderCopy)> = copies
        .iter()
        .filter_map(|(n, c)| c.as_ref().ok().map(|c| (n.as_str(), c)))
        .collect();
    let lo = read.iter().map(|(_, c)| c.first_seq).fold(from, u64::max);
    let hi = read.iter().map(|(_, c)| c.last_seq).fold(to, u64::min);
    // Every sequence some copy lacks inside lo..=hi (a copy lacks what it lists as deleted).
    let lacked: BTreeSet<u64> = read
        .iter()
        .flat_map(|(_, c)| c.deleted.iter().copied())
        .filter(|s| (lo..=hi).contains(s))
        .collect();
    let mut divergences = Vec::new();
    let mut on_none = Vec::new();
    let mut by_node: Vec<(String, Vec<u64>, BTreeSet<String>)> = read
        .iter()
        .map(|(n, _)| (n.to_string(), Vec::new(), BTreeSet::new()))
        .collect();
    for &seq in &lacked {
        let holders: Vec<&str> = read
            .iter()
            .filter(|(_, c)| c.holds(seq))
            .map(|(n, _)| *n)
            .collect();
        if holders.is_empty() {
            on_none.push(seq);
            continue;
        }
        for ((_, copy), (_, missing, held_by)) in read.iter().zip(by_node.iter_mut()) {
            if !copy.holds(seq) {
                missing.push(seq);
                held_by.extend(holders.iter().map(|h| h.to_string()));
            }
        }
    }
    for (node, missing, held_by) in by_node {
        if missing.is_empty() {
            continue;
        }
        divergences.push(Divergence {
            node,
            missing: missing.len() as u64,
            held_by: held_by.into_iter().collect(),
            samples: missing
                .iter()
                .take(SAMPLES)
                .map(|&stream_seq| MissingMessage {
                    stream_seq,
                    event: None,
                })
                .collect(),
        });
    }
    let copies: Vec<ReplicaCopy> = copies
        .iter()
        .map(|(node, c)| match c {
            Ok(c) => ReplicaCopy {
                node: node.clone(),
                holds: Some(c.held_between(lo, hi)),
                first_seq: c.first_seq,
                last_seq: c.last_seq,
                error: None,
            },
            Err(e) => ReplicaCopy {
                node: node.clone(),
                holds: None,
                first_seq: 0,
                last_seq: 0,
                error: Some(e.clone()),
            },
        })
        .collect();
    let unreadable: Vec<String> = copies
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.node)))
        .collect();
    let passed = divergences.is_empty() && on_none.is_empty() && unreadable.is_empty();
    let mut problems: Vec<String> = divergences
        .iter()
        .map(|d| {
            format!(
                "{} lacks {} message(s) of sequences {lo}-{hi} that {} hold(s) (first: {})",
                d.node,
                d.missing,
                d.held_by.join(", "),
                d.samples
                    .iter()
                    .map(|s| s.stream_seq.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    if !on_none.is_empty() {
        problems.push(format!(
            "{} sequence(s) of {lo}-{hi} on no replica (first: {})",
            on_none.len(),
            on_none
                .iter()
                .take(SAMPLES)
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !unreadable.is_empty() {
        problems.push(format!("not read: {}", unreadable.join("; ")));
    }
    let detail = if passed {
        format!(
            "{} replica(s) read one by one as leader hold the same {} message(s) of sequences {lo}-{hi}",
            copies.len(),
            copies.first().and_then(|c| c.holds).unwrap_or(0)
        )
    } else {
        problems.join("; ")
    };
    ReplicaRead {
        stream: stream.to_string(),
        from_seq: lo,
        to_seq: hi,
        copies,
        divergences,
        on_no_replica: on_none.len() as u64,
        on_no_replica_samples: on_none.into_iter().take(SAMPLES).collect(),
        reason: reason.to_string(),
        passed,
        detail,
    }
}

/// Reads the ledger identity of each sampled missing message from a copy that holds it (that
/// copy made leader first: a message is read from the leader's store).
async fn name_samples(
    js: &async_nats::jetstream::Context,
    stream: &str,
    copies: &[(String, Result<LeaderCopy, String>)],
    read: &mut ReplicaRead,
) {
    for divergence in &mut read.divergences {
        let Some(holder) = divergence.held_by.first() else {
            continue;
        };
        if copies.iter().all(|(n, c)| n != holder || c.is_err()) {
            continue;
        }
        if move_leader(js, stream, holder, MOVE_WITHIN).await.is_err() {
            continue;
        }
        let Ok(handle) = js.get_stream(stream).await else {
            continue;
        };
        for sample in &mut divergence.samples {
            let got = tokio::time::timeout(
                Duration::from_secs(5),
                handle.get_raw_message(sample.stream_seq),
            )
            .await;
            if let Ok(Ok(message)) = got {
                let payload = message.payload;
                sample.event = ledger::identity_of(Some(&message.headers), &payload)
                    .map(|i| format!("{}/{}/{}", i.run, i.publisher, i.seq));
            }
        }
    }
}

/// The per-replica read-back of every stream whose replicas may disagree: its leader's count
/// differed from the read-back, the replicas check found a node lacking messages, or the run
/// applied a safety fault (then every stream the run wrote).
pub async fn where_replicas_may_differ(
    js: &async_nats::jetstream::Context,
    counts: &[super::stream_count::StreamCount],
    replica_checks: &[super::replicas::ReplicaCheck],
    fault_events: &[crate::chaos::FaultEvent],
) -> Vec<ReplicaRead> {
    let safety_fault = fault_events
        .iter()
        .find(|e| crate::chaos::is_safety_fault(&e.fault))
        .map(|e| format!("after {} on {}", e.fault, e.node));
    let mut reads = Vec::new();
    for count in counts.iter().filter(|c| c.appended > 0) {
        let replicas_differ = replica_checks
            .iter()
            .any(|r| r.stream == count.stream && !r.differences.is_empty());
        let reason = if count.leader_disagrees() {
            "the leader's count disagreed with the read-back".to_string()
        } else if replicas_differ {
            "the replicas check found a node lacking messages".to_string()
        } else if let Some(fault) = &safety_fault {
            fault.clone()
        } else {
            continue;
        };
        eprintln!(
            "aivo-load: reading each replica of {} ({reason})",
            count.stream
        );
        reads.push(
            read_each_replica(
                js,
                &count.stream,
                count.last_seq_before + 1,
                count.last_seq_after,
                &reason,
            )
            .await,
        );
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(first_seq: u64, last_seq: u64, deleted: &[u64]) -> LeaderCopy {
        LeaderCopy {
            first_seq,
            last_seq,
            messages: last_seq + 1 - first_seq - deleted.len() as u64,
            deleted: deleted.to_vec(),
            ..LeaderCopy::default()
        }
    }

    #[test]
    fn a_replica_lacking_what_others_hold_is_named_with_the_sequences() {
        let copies = vec![
            ("nats1".to_string(), Ok(copy(1, 100, &[]))),
            ("nats2".to_string(), Ok(copy(1, 100, &[40, 41, 42]))),
            ("nats3".to_string(), Ok(copy(1, 100, &[42, 90]))),
        ];
        let read = compare("FOCUS", 1, 100, "test", &copies);
        assert!(!read.passed);
        assert_eq!(read.on_no_replica, 0);
        let nats2 = &read.divergences[0];
        assert_eq!((nats2.node.as_str(), nats2.missing), ("nats2", 3));
        assert_eq!(
            nats2.held_by,
            vec!["nats1".to_string(), "nats3".to_string()]
        );
        let nats3 = &read.divergences[1];
        assert_eq!((nats3.node.as_str(), nats3.missing), ("nats3", 2));
        assert!(read.detail.contains("nats2 lacks 3"), "{}", read.detail);
        assert_eq!(read.copies[1].holds, Some(97));
    }

    #[test]
    fn a_sequence_no_replica_holds_is_counted_apart() {
        let copies = vec![
            ("nats1".to_string(), Ok(copy(1, 50, &[7]))),
            ("nats2".to_string(), Ok(copy(1, 50, &[7]))),
        ];
        let read = compare("FOCUS", 1, 50, "test", &copies);
        assert!(!read.passed && read.divergences.is_empty());
        assert_eq!(read.on_no_replica, 1);
        assert_eq!(read.on_no_replica_samples, vec![7]);
    }

    #[test]
    fn agreeing_copies_pass_over_the_range_all_of_them_cover() {
        // Retention moved one copy's first sequence: the gap below it is not a difference.
        let copies = vec![
            ("nats1".to_string(), Ok(copy(11, 100, &[]))),
            ("nats2".to_string(), Ok(copy(1, 100, &[5]))),
        ];
        let read = compare("FOCUS", 1, 100, "test", &copies);
        assert!(read.passed, "{}", read.detail);
        assert_eq!((read.from_seq, read.to_seq), (11, 100));
        // A copy that could not be read fails it: nothing unverified passes.
        let copies = vec![
            ("nats1".to_string(), Ok(copy(1, 100, &[]))),
            (
                "nats2".to_string(),
                Err("did not become leader".to_string()),
            ),
        ];
        let read = compare("FOCUS", 1, 100, "test", &copies);
        assert!(
            !read.passed && read.detail.contains("not read: nats2"),
            "{}",
            read.detail
        );
    }
}
