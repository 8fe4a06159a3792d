//! The safety section of a report: for each safety fault the run applied (`corrupt-store`,
//! `power-loss`), what was done to the stores, what was lost or diverged afterwards, and the
//! window of acknowledged writes that disappeared. It judges nothing itself (the ledger,
//! stream-count and replica checks fail the run); it explains the loss in the terms a platform
//! team acts on: which fault, how many events, how many seconds of acknowledged writes.
//!
//! **Attribution.** A safety fault destroys what was acknowledged *before* it (a power loss takes
//! what was not fsynced yet; a corrupted block takes what it held). So each lost event goes to the
//! first safety fault that took effect at or after the second its ack began in (the ledger's ack
//! clock). A lost event acknowledged after the last safety fault is attributed to none here: the
//! ledger names the faults active while it was acknowledged instead.

use std::collections::BTreeMap;

use serde::Serialize;

use super::no_loss::LedgerCheck;
use super::replica_read::ReplicaRead;
use crate::chaos::engine::Phase;
use crate::chaos::{is_safety_fault, FaultEvent};

/// What one safety fault did and cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SafetyFinding {
    pub id: String,
    pub fault: String,
    /// The node, or `all` (a coordinated power failure).
    pub node: String,
    /// Seconds since the start: when it was requested, and when its effect was seen.
    pub applied_s: f64,
    pub confirmed_s: Option<f64>,
    /// What was done, as the fault journaled it (bytes discarded per node, bytes changed).
    pub done: Option<String>,
    /// Acknowledged events lost that were acknowledged before it (and after any earlier one).
    pub lost: u64,
    pub lost_by_stream: BTreeMap<String, u64>,
    /// The acknowledged window that disappeared: `[from, to)` seconds since the start, the
    /// first and last ack second of the events attributed to it.
    pub lost_window_s: Option<(u64, u64)>,
    /// Seconds of acknowledged writes lost: the seconds in that window that lost any event.
    pub lost_seconds: u64,
    /// Streams the cluster no longer had at all afterwards.
    pub streams_gone: Vec<String>,
    /// What the per-replica read-back found on the nodes it hit ("nats1 lacks 7734 of FOCUS").
    pub diverged: Vec<String>,
    pub summary: String,
}

/// The safety findings of a run: one per safety fault applied, in order.
pub fn findings(
    faults: &[FaultEvent],
    ledgers: &[LedgerCheck],
    replica_reads: &[ReplicaRead],
) -> Vec<SafetyFinding> {
    let gone: Vec<String> = ledgers
        .iter()
        .filter(|c| c.stream_gone)
        .map(|c| c.stream.clone())
        .collect();
    let applied: Vec<&FaultEvent> = faults
        .iter()
        .filter(|e| e.phase == Phase::Apply && is_safety_fault(&e.fault))
        .collect();
    let mut found: Vec<SafetyFinding> = applied
        .iter()
        .map(|e| SafetyFinding {
            id: e.id.clone(),
            fault: e.fault.clone(),
            node: e.node.clone(),
            applied_s: e.requested_s,
            confirmed_s: e.confirmed_s,
            done: e.note.clone(),
            lost: 0,
            lost_by_stream: BTreeMap::new(),
            lost_window_s: None,
            lost_seconds: 0,
            streams_gone: Vec::new(),
            diverged: Vec::new(),
            summary: String::new(),
        })
        .collect();
    if found.is_empty() {
        return found;
    }
    let mut seconds: Vec<std::collections::BTreeSet<u64>> = vec![Default::default(); found.len()];
    for check in ledgers {
        for (&second, &count) in &check.lost_by_ack_second {
            let Some(i) = attributed(&applied, second) else {
                continue;
            };
            let finding = &mut found[i];
            finding.lost += count;
            *finding
                .lost_by_stream
                .entry(check.stream.clone())
                .or_default() += count;
            seconds[i].insert(second);
        }
    }
    let last = found.len() - 1;
    for (i, finding) in found.iter_mut().enumerate() {
        let lost_in = &seconds[i];
        if let (Some(first), Some(last)) = (lost_in.first(), lost_in.last()) {
            finding.lost_window_s = Some((*first, last + 1));
        }
        finding.lost_seconds = lost_in.len() as u64;
        // A stream gone is the last safety fault's doing (nothing brings a stream back).
        if i == last {
            finding.streams_gone = gone.clone();
        }
        for read in replica_reads {
            for d in &read.divergences {
                if finding.node == crate::chaos::power_loss::ALL_NODES || finding.node == d.node {
                    finding.diverged.push(format!(
                        "{} lacks {} message(s) of {} that {} hold(s)",
                        d.node,
                        d.missing,
                        read.stream,
                        d.held_by.join(", ")
                    ));
                }
            }
            if read.on_no_replica > 0 && i == last {
                finding.diverged.push(format!(
                    "{} message(s) of {} on no replica",
                    read.on_no_replica, read.stream
                ));
            }
        }
        finding.summary = summary(finding);
    }
    found
}

/// The safety fault a lost event acknowledged in `second` goes to: the first to take effect at or
/// after that second.
fn attributed(applied: &[&FaultEvent], second: u64) -> Option<usize> {
    applied
        .iter()
        .position(|e| e.confirmed_s.unwrap_or(e.requested_s) >= second as f64)
}

/// The fault's label as the ledger names faults ("power-loss all").
pub fn label(finding: &SafetyFinding) -> String {
    format!(
        "{} {} at {:.1}s",
        finding.fault, finding.node, finding.applied_s
    )
}

fn summary(f: &SafetyFinding) -> String {
    let mut parts = Vec::new();
    if f.lost == 0 {
        parts.push("no acknowledged event lost".to_string());
    } else {
        let streams: Vec<String> = f
            .lost_by_stream
            .iter()
            .map(|(s, n)| format!("{n} of {s}"))
            .collect();
        let window = f
            .lost_window_s
            .map(|(a, b)| format!(", acknowledged in {a}–{b} s"))
            .unwrap_or_default();
        parts.push(format!(
            "{} acknowledged event(s) lost ({}){window}: {} second(s) of acknowledged writes",
            f.lost,
            streams.join(", "),
            f.lost_seconds
        ));
    }
    if !f.streams_gone.is_empty() {
        parts.push(format!("stream(s) gone: {}", f.streams_gone.join(", ")));
    }
    if !f.diverged.is_empty() {
        parts.push(format!("replicas diverged: {}", f.diverged.join("; ")));
    }
    parts.join("; ")
}

/// Which safety finding a lost event acknowledged in `second` belongs to, as its label.
pub fn lost_to(found: &[SafetyFinding], second: u64) -> Option<String> {
    found
        .iter()
        .find(|f| f.confirmed_s.unwrap_or(f.applied_s) >= second as f64)
        .map(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, fault: &str, node: &str, at: f64, confirmed: f64) -> FaultEvent {
        FaultEvent {
            id: id.into(),
            phase: Phase::Apply,
            fault: fault.into(),
            target: node.into(),
            node: node.into(),
            requested_s: at,
            confirmed_s: Some(confirmed),
            confirmed: true,
            detail: String::new(),
            note: Some("power loss: nats1: 10 bytes discarded".into()),
            error: None,
        }
    }

    fn ledger(stream: &str, lost: &[(u64, u64)]) -> LedgerCheck {
        LedgerCheck {
            stream: stream.into(),
            read: 0,
            lost: lost.iter().map(|(_, n)| n).sum(),
            duplicated: 0,
            unexpected: 0,
            failed_but_read: 0,
            recovered: 0,
            foreign: 0,
            removed_by_retention: 0,
            lost_events: Vec::new(),
            unexpected_events: Vec::new(),
            passed: false,
            detail: String::new(),
            lost_by_ack_second: lost.iter().copied().collect(),
            stream_gone: false,
        }
    }

    #[test]
    fn each_lost_event_goes_to_the_first_safety_fault_after_its_ack() {
        let faults = vec![
            event("f1", "kill", "nats2", 5.0, 6.0),
            event("f2", "power-loss", "all", 30.0, 34.5),
            event("f3", "power-loss", "nats1", 50.0, 52.0),
        ];
        let mut gone = ledger("FOCUS", &[(0, 10), (29, 5), (34, 1), (40, 3), (55, 7)]);
        gone.stream_gone = true;
        let ledgers = vec![gone, ledger("LEARNING", &[(12, 2)])];
        let found = findings(&faults, &ledgers, &[]);
        assert_eq!(found.len(), 2, "the kill is no safety fault");
        assert_eq!(found[0].lost, 10 + 5 + 1 + 2);
        assert_eq!(found[0].lost_window_s, Some((0, 35)));
        assert_eq!(found[0].lost_seconds, 4);
        assert_eq!(found[0].lost_by_stream["LEARNING"], 2);
        assert!(found[0].streams_gone.is_empty());
        assert_eq!(
            found[1].lost, 3,
            "acked at 40 s, lost to the power loss at 50 s"
        );
        assert_eq!(found[1].lost_window_s, Some((40, 41)));
        assert_eq!(found[1].streams_gone, ["FOCUS"]);
        assert!(found[1]
            .summary
            .contains("3 acknowledged event(s) lost (3 of FOCUS)"));
        // The 7 acked at 55 s, after the last safety fault, go to none.
        assert_eq!(lost_to(&found, 55), None);
        assert_eq!(
            lost_to(&found, 29).as_deref(),
            Some("power-loss all at 30.0s")
        );
    }

    #[test]
    fn a_run_without_safety_faults_has_no_findings() {
        let faults = vec![event("f1", "kill", "nats2", 5.0, 6.0)];
        assert!(findings(&faults, &[ledger("FOCUS", &[(1, 1)])], &[]).is_empty());
    }
}
