//! Every check and threshold of a run in one list, each with pass/fail, the figures judged and why:
//! `checks` in `report.json`, the test cases of `junit.xml`, and the source of the verdict's failure
//! lines. The per-check sections of the report (`ledger`, `retention`, `dlq`, …) keep the detail.

use serde::Serialize;

use crate::checks::catch_up::CatchUpCheck;
use crate::checks::dlq::DlqCheck;
use crate::checks::faults::FaultsCheck;
use crate::checks::no_loss::LedgerCheck;
use crate::checks::recovery::DisasterRecovery;
use crate::checks::replica_read::ReplicaRead;
use crate::checks::replicas::ReplicaCheck;
use crate::checks::retention::RetentionCheck;
use crate::checks::security::SecurityCheck;
use crate::checks::stream_count::StreamCount;
use crate::checks::thresholds::ThresholdResult;

/// A check (holds in every run where it applies) or a threshold (the scenario's own limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Check,
    Threshold,
}

/// One line of the list.
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    pub kind: CheckKind,
    /// `ledger FOCUS`, `indexer catch-up`, `publish.latency.p99 < 250ms`, …
    pub name: String,
    pub passed: bool,
    /// The figures judged.
    pub measured: String,
    /// Why it passed or failed.
    pub detail: String,
}

impl CheckLine {
    /// The verdict's line for it when it failed.
    pub fn failure(&self) -> String {
        match self.kind {
            CheckKind::Check => format!("{}: {}", self.name, self.detail),
            CheckKind::Threshold => format!("✗ {} ({})", self.name, self.measured),
        }
    }
}

/// What the list is made from.
pub struct CheckSources<'a> {
    pub streams: &'a [StreamCount],
    pub ledgers: &'a [LedgerCheck],
    /// The ledger check of the `events` table, when the run had an indexer.
    pub events: Option<&'a LedgerCheck>,
    pub retention: &'a [RetentionCheck],
    pub replicas: &'a [ReplicaCheck],
    pub replica_reads: &'a [ReplicaRead],
    pub security: Option<&'a SecurityCheck>,
    pub dlq: Option<&'a DlqCheck>,
    pub catch_up: Option<&'a CatchUpCheck>,
    pub faults: Option<&'a FaultsCheck>,
    pub thresholds: &'a [ThresholdResult],
}

fn check(name: String, passed: bool, measured: String, detail: &str) -> CheckLine {
    CheckLine {
        kind: CheckKind::Check,
        name,
        passed,
        measured,
        detail: detail.to_string(),
    }
}

fn ledger_measured(c: &LedgerCheck) -> String {
    format!(
        "read {}: lost {}, duplicated {}, unexpected {}, recovered {}, removed by retention {}",
        c.read, c.lost, c.duplicated, c.unexpected, c.recovered, c.removed_by_retention
    )
}

/// The list, checks first (streams, ledgers, retention, DLQ, catch-up, faults), then thresholds.
pub fn check_lines(s: &CheckSources<'_>) -> Vec<CheckLine> {
    let mut lines: Vec<CheckLine> = s.streams.iter().map(stream_line).collect();
    for c in s.ledgers {
        lines.push(ledger_line(format!("ledger {}", c.stream), c));
    }
    if let Some(c) = s.events {
        lines.push(ledger_line("ledger events (Postgres)".into(), c));
    }
    lines.extend(s.retention.iter().map(retention_line));
    lines.extend(s.replicas.iter().map(replicas_line));
    lines.extend(s.replica_reads.iter().map(replica_read_line));
    lines.extend(s.security.map(security_lines).unwrap_or_default());
    lines.extend(s.dlq.map(dlq_line));
    lines.extend(s.catch_up.map(catch_up_line));
    lines.extend(s.faults.map(faults_line));
    lines.extend(s.thresholds.iter().map(threshold_line));
    lines
}

fn stream_line(c: &StreamCount) -> CheckLine {
    check(
        format!("stream {}", c.stream),
        c.passed,
        format!(
            "appended {}, acked {} new + {} duplicate, {} unknown",
            c.appended, c.ledger.acked_new, c.ledger.duplicate_acks, c.ledger.unknown
        ),
        &c.detail,
    )
}

fn ledger_line(name: String, c: &LedgerCheck) -> CheckLine {
    check(name, c.passed, ledger_measured(c), &c.detail)
}

fn retention_line(c: &RetentionCheck) -> CheckLine {
    let age = c
        .max_oldest_age_s
        .map_or("no message".into(), |a| format!("{a:.1} s"));
    check(
        format!("retention {}", c.stream),
        c.passed,
        format!(
            "oldest message at most {age}, peak {} bytes, peak {} messages, first sequence advanced {}",
            c.peak_bytes, c.peak_messages, c.first_seq_advance
        ),
        &c.detail,
    )
}

fn replica_read_line(c: &ReplicaRead) -> CheckLine {
    let copies: Vec<String> = c
        .copies
        .iter()
        .map(|r| match r.holds {
            Some(holds) => format!("{} {holds}", r.node),
            None => format!("{} unread", r.node),
        })
        .collect();
    check(
        format!("replica read-back {}", c.stream),
        c.passed,
        format!(
            "messages of sequences {}-{} held: {}",
            c.from_seq,
            c.to_seq,
            copies.join(", ")
        ),
        &c.detail,
    )
}

fn replicas_line(c: &ReplicaCheck) -> CheckLine {
    let copies: Vec<String> = c
        .replicas
        .iter()
        .map(|r| {
            format!(
                "{}{} {} msgs (seq {}..{}, {} gaps)",
                r.node,
                if r.leader { "*" } else { "" },
                r.messages,
                r.first_seq,
                r.last_seq,
                r.num_deleted
            )
        })
        .collect();
    check(
        format!("replicas {}", c.stream),
        c.passed,
        copies.join(", "),
        &c.detail,
    )
}

/// One line per probe; one failed line when the probes could not run at all.
fn security_lines(c: &SecurityCheck) -> Vec<CheckLine> {
    if c.probes.is_empty() {
        return vec![check("security".into(), false, String::new(), &c.detail)];
    }
    c.probes
        .iter()
        .map(|p| {
            let measured = if p.passed { "refused" } else { "not refused" };
            check(
                format!("security {}", p.name),
                p.passed,
                measured.into(),
                &p.detail,
            )
        })
        .collect()
}

/// The drill's line (recovery point and time), then one per restored stream.
pub fn recovery_lines(c: &DisasterRecovery) -> Vec<CheckLine> {
    let mut lines = vec![check(
        "disaster-recovery".into(),
        c.passed,
        format!(
            "recovery point {} events / {:.1} s, recovery time {:.1} s",
            c.recovery_point_events, c.recovery_point_s, c.recovery_time_s
        ),
        &c.detail,
    )];
    lines.extend(c.streams.iter().map(|s| {
        check(
            format!("disaster-recovery {}", s.stream),
            s.passed,
            format!(
                "acked before the snapshot {}, missing {}, duplicated {}; acked after {}, not \
                 restored {}",
                s.acked_before, s.missing_before, s.duplicated, s.acked_after, s.lost_after
            ),
            &s.detail,
        )
    }));
    lines
}

fn dlq_line(c: &DlqCheck) -> CheckLine {
    check(
        "dlq".into(),
        c.passed,
        format!(
            "{} entries for {} expected: missing {}, unexpected {}, duplicated {}, bad headers {}",
            c.entries, c.expected, c.missing, c.unexpected, c.duplicated, c.bad_headers
        ),
        &c.detail,
    )
}

fn catch_up_line(c: &CatchUpCheck) -> CheckLine {
    let zero = c
        .time_to_zero_s
        .map_or("never".into(), |t| format!("{t:.1} s"));
    check(
        "indexer catch-up".into(),
        c.passed,
        format!(
            "lag {} at {} reached 0 after {zero} (limit {:.0} s)",
            c.lag_at_reference, c.reference, c.timeout_s
        ),
        &c.detail,
    )
}

fn faults_line(c: &FaultsCheck) -> CheckLine {
    check(
        "faults".into(),
        c.passed,
        format!(
            "{} applied, {} effects unseen, {} recovered, {} unrecovered",
            c.applied, c.unconfirmed, c.recovered, c.unrecovered
        ),
        &c.detail,
    )
}

fn threshold_line(t: &ThresholdResult) -> CheckLine {
    CheckLine {
        kind: CheckKind::Threshold,
        name: format!("{} {}", t.metric, t.expression),
        passed: t.passed,
        measured: format!("measured {}", t.measured_text),
        detail: if t.passed {
            "within the limit".into()
        } else {
            "outside the limit".into()
        },
    }
}
