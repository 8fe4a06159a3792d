//! The `replicas` check: do a stream's replicas hold the same messages? A consumer reads from the
//! stream's leader, so the ledger read-back sees only the leader's copy; a follower whose store lost
//! messages (a corrupted or truncated block, writes lost with the page cache) can say it is current
//! and still hold fewer, and the loss shows only when leadership moves to it. Jepsen's NATS 2.12.1
//! analysis found replicas left permanently disagreeing; we saw it after `corrupt-store --mode
//! truncate` on a FOCUS follower: 8,292 messages for sequences 1–16,250 on nats2 while its leader
//! and the third replica held all 16,250, every replica reported current, and the cluster passed as
//! whole.
//!
//! Each node's `/jsz?streams=true` gives its own copy's state: messages, first and last sequence,
//! and `num_deleted`, the sequences missing *inside* that range. Retention removes from the front
//! (the first sequence moves), never from the middle, and the streams a run writes are never
//! purged or trimmed by hand, so once every replica has reached the same last sequence they must
//! have the same interior gaps. A replica with more than the fewest any replica has is missing
//! that many messages the others hold: the check fails and names it. It runs after the drain of
//! every run whose nodes' monitoring this machine reaches (faults or none: a damaged store may be
//! someone else's doing), waiting (bounded) for the replicas to reach the highest last sequence.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::monitor;
use crate::cluster::ClusterEndpoints;

/// One node's copy of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub node: String,
    pub leader: bool,
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Sequences missing between first and last.
    pub num_deleted: u64,
}

/// A replica that holds fewer messages than another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDifference {
    pub node: String,
    /// Messages the replica lacks that another replica holds.
    pub missing: u64,
    /// The replica holding the most (the one compared against).
    pub compared_with: String,
}

/// The check of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaCheck {
    pub stream: String,
    pub passed: bool,
    pub replicas: Vec<ReplicaState>,
    pub differences: Vec<ReplicaDifference>,
    /// Replicas still short of the highest last sequence when the wait ended (not a failure:
    /// see the stuck-replica warning).
    pub behind: Vec<String>,
    pub detail: String,
}

/// Judges one stream from its replicas' states.
pub fn judge(stream: &str, replicas: Vec<ReplicaState>) -> ReplicaCheck {
    let Some(top) = replicas.iter().map(|r| r.last_seq).max() else {
        return ReplicaCheck {
            stream: stream.to_string(),
            passed: false,
            replicas,
            differences: Vec::new(),
            behind: Vec::new(),
            detail: "no node reported the stream".into(),
        };
    };
    let (current, behind): (Vec<&ReplicaState>, Vec<&ReplicaState>) =
        replicas.iter().partition(|r| r.last_seq == top);
    let fewest = current.iter().map(|r| r.num_deleted).min().unwrap_or(0);
    let fullest = current
        .iter()
        .min_by_key(|r| (r.num_deleted, !r.leader))
        .map(|r| r.node.clone())
        .unwrap_or_default();
    let differences: Vec<ReplicaDifference> = current
        .iter()
        .filter(|r| r.num_deleted > fewest)
        .map(|r| ReplicaDifference {
            node: r.node.clone(),
            missing: r.num_deleted - fewest,
            compared_with: fullest.clone(),
        })
        .collect();
    let behind: Vec<String> = behind.iter().map(|r| r.node.clone()).collect();
    let passed = differences.is_empty();
    let mut detail = if passed {
        format!(
            "{} replica(s) at sequence {top} hold the same messages",
            current.len()
        )
    } else {
        differences
            .iter()
            .map(|d| {
                let role = if replicas.iter().any(|r| r.node == d.node && r.leader) {
                    " (the leader)"
                } else {
                    ""
                };
                format!(
                    "{}{role} lacks {} message(s) of sequences up to {top} that {} holds",
                    d.node, d.missing, d.compared_with
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !behind.is_empty() {
        detail.push_str(&format!(
            "; still behind sequence {top}: {}",
            behind.join(", ")
        ));
    }
    ReplicaCheck {
        stream: stream.to_string(),
        passed,
        replicas,
        differences,
        behind,
        detail,
    }
}

/// Each node's copy of each of `streams`, waiting up to `within` for every replica to reach the
/// highest last sequence, then judged. A stream fewer than two nodes report (an R1 stream, a
/// cluster whose monitoring this machine cannot reach) is left out: there is nothing to compare.
pub async fn check(
    endpoints: &ClusterEndpoints,
    streams: &[&str],
    within: Duration,
) -> Vec<ReplicaCheck> {
    let deadline = Instant::now() + within;
    loop {
        let states = gather(endpoints, streams).await;
        let caught_up = states.iter().all(|(_, replicas)| {
            let top = replicas.iter().map(|r| r.last_seq).max().unwrap_or(0);
            replicas.iter().all(|r| r.last_seq == top)
        });
        if caught_up || Instant::now() >= deadline {
            return states
                .into_iter()
                .filter(|(_, replicas)| replicas.len() >= 2)
                .map(|(stream, replicas)| judge(&stream, replicas))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn gather(
    endpoints: &ClusterEndpoints,
    streams: &[&str],
) -> Vec<(String, Vec<ReplicaState>)> {
    let mut out: Vec<(String, Vec<ReplicaState>)> = streams
        .iter()
        .map(|s| (s.to_string(), Vec::new()))
        .collect();
    for node in &endpoints.nodes {
        let Ok(jsz) = monitor::jsz_streams(&node.monitor_url).await else {
            continue;
        };
        for detail in jsz.account_details.iter().flat_map(|a| &a.stream_detail) {
            let Some((_, replicas)) = out.iter_mut().find(|(s, _)| *s == detail.name) else {
                continue;
            };
            replicas.push(ReplicaState {
                node: node.name.clone(),
                leader: detail
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.leader == node.name),
                messages: detail.state.messages,
                first_seq: detail.state.first_seq,
                last_seq: detail.state.last_seq,
                num_deleted: detail.state.num_deleted,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(node: &str, leader: bool, last_seq: u64, num_deleted: u64) -> ReplicaState {
        ReplicaState {
            node: node.into(),
            leader,
            messages: last_seq - num_deleted,
            first_seq: 1,
            last_seq,
            num_deleted,
        }
    }

    #[test]
    fn a_follower_with_holes_fails_and_is_named() {
        // What nats-server 2.15.1 showed after a follower's FOCUS blocks were cut to half.
        let check = judge(
            "FOCUS",
            vec![
                replica("nats1", false, 16250, 0),
                replica("nats2", false, 16250, 7958),
                replica("nats3", true, 16250, 0),
            ],
        );
        assert!(!check.passed);
        assert_eq!(
            check.differences,
            vec![ReplicaDifference {
                node: "nats2".into(),
                missing: 7958,
                compared_with: "nats3".into(),
            }]
        );
        assert!(
            check.detail.contains("nats2 lacks 7958"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn a_leader_with_holes_is_named_as_the_leader() {
        let check = judge(
            "FOCUS",
            vec![
                replica("nats1", true, 100, 40),
                replica("nats2", false, 100, 0),
            ],
        );
        assert!(!check.passed);
        assert!(
            check.detail.contains("nats1 (the leader) lacks 40"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn agreeing_replicas_pass_and_a_lagging_one_is_only_noted() {
        let check = judge(
            "FOCUS",
            vec![
                replica("nats1", true, 100, 2),
                replica("nats2", false, 100, 2),
                replica("nats3", false, 90, 0),
            ],
        );
        assert!(check.passed, "{}", check.detail);
        assert_eq!(check.behind, vec!["nats3".to_string()]);
        assert!(check.detail.contains("behind"), "{}", check.detail);
        assert!(!judge("X", Vec::new()).passed);
    }
}
