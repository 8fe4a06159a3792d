//! `summary.md`: the run for a pull request or a capacity review.

use std::fmt::Write as _;

use super::{cores, mark, mebibytes, resource_lines, RunReport};
use crate::checks::no_loss::LedgerCheck;
use crate::checks::thresholds::format_millis;

/// Renders the Markdown summary: one section after another, in the order a reviewer reads them.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    run_section(&mut out, report);
    events_section(&mut out, report);
    latency_section(&mut out, report);
    subjects_section(&mut out, report);
    faults_section(&mut out, report);
    safety_section(&mut out, report);
    resources_section(&mut out, report);
    checks_section(&mut out, report);
    retention_table(&mut out, report);
    timeline_section(&mut out, report);
    out
}

/// The title with the verdict, the description and the run's identity table.
fn run_section(out: &mut String, report: &RunReport) {
    let r = &report.run;
    let verdict = report.verdict_word();
    let _ = writeln!(out, "# {} — {verdict}\n", r.scenario);
    if !r.description.is_empty() {
        let _ = writeln!(out, "{}\n", r.description);
    }
    let _ = writeln!(out, "| run | |\n|---|---|");
    let _ = writeln!(out, "| id | `{}` |", r.id);
    let _ = writeln!(
        out,
        "| started / finished (UTC) | {} / {} |",
        r.started_at, r.finished_at
    );
    let _ = writeln!(out, "| load duration | {:.1} s |", r.duration_s);
    let _ = writeln!(out, "| seed / rate scale | {} / {} |", r.seed, r.rate_scale);
    let _ = writeln!(
        out,
        "| backend | {} ({}) |",
        r.backend,
        r.servers.join(", ")
    );
    let _ = writeln!(
        out,
        "| versions | aivo-load {}, async-nats {}, nats-server {} |",
        r.aivo_load_version, r.async_nats_version, r.nats_server_version
    );
    let _ = writeln!(
        out,
        "| publishers | {} × {} in flight, ack timeout {} ms |",
        r.publishers, r.in_flight_per_publisher, r.ack_timeout_ms
    );
    if r.interrupted {
        let _ = writeln!(
            out,
            "| interrupted | yes: the figures cover the run up to the interrupt |"
        );
    }
    match (r.state, r.checkpoint_s) {
        (super::RunState::Running, at) => {
            let _ = writeln!(
                out,
                "| state | running: a checkpoint at second {} of the load; if the run is gone, \
                 `aivo-load report recover` this directory |",
                at.unwrap_or(0)
            );
        }
        (super::RunState::Recovered, at) => {
            let _ = writeln!(
                out,
                "| state | recovered by `report recover` from the checkpoint at second {} of a \
                 run that died; checks cover what was acked up to it |",
                at.unwrap_or(0)
            );
        }
        (super::RunState::Partial, _) => {
            let _ = writeln!(
                out,
                "| state | partial: one worker's segment of a segmented run; `aivo-load report \
                 merge` the run's directory for its report and checks |"
            );
        }
        (super::RunState::Finished, _) => {}
    }
    if let Some(limit) = &report.load_generator {
        let _ = writeln!(out, "\n{}", warning_line(limit));
    }
    for stuck in &report.stuck_replicas {
        let _ = writeln!(
            out,
            "\nWARNING: {} (`aivo-load heal --restart-stuck` restarts the node; \
             docs/stuck-replica.md).",
            stuck.describe()
        );
    }
}

/// The self-check's warning, one line (report.html shows a line starting `WARNING:` as a banner).
pub(super) fn warning_line(limit: &super::LoadGeneratorLimit) -> String {
    format!(
        "WARNING: limited by the load generator, not the cluster (seconds {}–{}): {}. The figures \
         say nothing about what the cluster could take at this rate; {}.",
        limit.from_s, limit.to_s, limit.reason, limit.advice
    )
}

/// CPU and memory of the harness and of each node over the run, when they were sampled.
fn resources_section(out: &mut String, report: &RunReport) {
    let lines = resource_lines(&report.timeline);
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Resources\n\n| process | CPU median (cores) | CPU max | memory max | JetStream storage at end | unreachable s |\n|---|---:|---:|---:|---:|---:|"
    );
    for line in lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            line.name,
            cores(line.cpu_median),
            cores(line.cpu_max),
            mebibytes(line.mem_max),
            line.js_storage_last
                .map_or("–".to_string(), |b| mebibytes(Some(b))),
            line.unreachable_s
                .map_or("–".to_string(), |s| s.to_string())
        );
    }
}

/// What happened to the events: counts, errors by kind, throughput.
fn events_section(out: &mut String, report: &RunReport) {
    let c = &report.counts;
    let _ = writeln!(out, "\n## Events\n\n| intended | attempted | acked | duplicate acks | failed | unknown | never sent | error rate |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {:.3}% |",
        c.intended,
        c.attempted,
        c.acked,
        c.duplicate_acks,
        c.failed,
        c.unknown,
        c.never_sent,
        c.error_rate() * 100.0
    );
    if !c.errors.is_empty() {
        let _ = writeln!(
            out,
            "\nErrors by kind: {}",
            c.errors
                .iter()
                .map(|(k, v)| format!("`{k}` {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let t = &report.throughput;
    let _ = writeln!(
        out,
        "\nThroughput: target {:.1}/s mean, achieved {:.1}/s mean, {:.0}/s peak; mean payload {:.0} B.",
        t.target_mean, t.achieved_mean, t.achieved_peak, t.mean_payload_bytes
    );
}

/// The three latency histograms of acknowledged publishes.
fn latency_section(out: &mut String, report: &RunReport) {
    let _ = writeln!(out, "\n## Latency of acknowledged publishes\n\n| | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|");
    for (name, p) in [
        ("corrected (intended → ack)", &report.latency.corrected),
        ("service time (sent → ack)", &report.latency.service_time),
        ("send delay (intended → sent)", &report.latency.send_delay),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            format_millis(p.p50),
            format_millis(p.p90),
            format_millis(p.p99),
            format_millis(p.p999),
            format_millis(p.max)
        );
    }
}

/// Rates, latency and sizes by subject.
fn subjects_section(out: &mut String, report: &RunReport) {
    let _ = writeln!(out, "\n## By subject\n\n| subject | attempted | acked | not acked | acked/s | p50 | p99 | max | size p50 | size p99 | size max |");
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in &report.subjects {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {:.1} | {} | {} | {} | {} B | {} B | {} B |",
            s.subject,
            s.attempted,
            s.acked,
            s.not_acked,
            s.acked_per_second,
            format_millis(s.latency.p50),
            format_millis(s.latency.p99),
            format_millis(s.latency.max),
            s.size_bytes.p50,
            s.size_bytes.p99,
            s.size_bytes.max
        );
    }
}

/// Faults applied and reverted, when the run had any.
fn faults_section(out: &mut String, report: &RunReport) {
    if report.faults.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Faults\n\n| requested | confirmed | phase | fault | node | observed |\n|---:|---:|---|---|---|---|");
    for f in &report.faults {
        let _ = writeln!(
            out,
            "| {:.1} s | {} | {:?} | {} | {} | {} |",
            f.requested_s,
            f.confirmed_s
                .map_or("not confirmed".to_string(), |t| format!("{t:.1} s")),
            f.phase,
            f.fault,
            f.node,
            f.detail
        );
    }
}

/// What each safety fault did and cost, when the run applied any.
fn safety_section(out: &mut String, report: &RunReport) {
    if report.safety.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Safety\n\nEach acknowledged event lost is put down to the first safety fault that \
         took effect after its ack.\n\n| fault | what was done | what it cost |\n|---|---|---|"
    );
    for (label, done, cost) in report.safety_lines() {
        let _ = writeln!(out, "| {label} | {done} | {cost} |");
    }
}

/// Every check and threshold, one bullet each, with the lost events and DLQ problems under theirs.
fn checks_section(out: &mut String, report: &RunReport) {
    let _ = writeln!(out, "\n## Checks\n");
    for s in &report.streams {
        let _ = writeln!(
            out,
            "- {} stream {}: {}",
            mark(s.passed),
            s.stream,
            s.detail
        );
    }
    for c in &report.ledger {
        let _ = writeln!(
            out,
            "- {} ledger {}: {} (read {}, lost {}, duplicated {}, unexpected {}, recovered {})",
            mark(c.passed),
            c.stream,
            c.detail,
            c.read,
            c.lost,
            c.duplicated,
            c.unexpected,
            c.recovered
        );
        lost_lines(out, c);
    }
    for (name, passed, detail) in report.replica_and_retention_checks() {
        let _ = writeln!(out, "- {} {name}: {detail}", mark(passed));
    }
    if let Some(c) = &report.security {
        let _ = writeln!(out, "- {} security: {}", mark(c.passed), c.detail);
        for p in &c.probes {
            let _ = writeln!(out, "  - {} {}: {}", mark(p.passed), p.name, p.detail);
        }
    }
    if let Some(d) = &report.disaster_recovery {
        let _ = writeln!(out, "- {} disaster-recovery: {}", mark(d.passed), d.detail);
        let _ = writeln!(
            out,
            "  - snapshots at {:.1} s into `{}`, cluster destroyed at {:.1} s; **recovery point** \
             {} events / {:.1} s; fresh cluster up in {:.1} s; **recovery time** {:.1} s",
            d.snapshot_at_s,
            d.backup_dir,
            d.destroyed_at_s,
            d.recovery_point_events,
            d.recovery_point_s,
            d.fresh_cluster_s,
            d.recovery_time_s
        );
        for s in &d.streams {
            let _ = writeln!(
                out,
                "  - {} {}: snapshot {} messages ({} bytes); acked before it {}, missing {}, \
                 duplicated {}; acked after it {}, restored anyway {}, not restored {}",
                mark(s.passed),
                s.stream,
                s.snapshot_messages,
                s.snapshot_bytes,
                s.acked_before,
                s.missing_before,
                s.duplicated,
                s.acked_after,
                s.restored_after,
                s.lost_after
            );
            for e in s.missing_events.iter().take(20) {
                let _ = writeln!(out, "    - missing: {}", e.describe());
            }
        }
    }
    indexer_line(out, report);
    if let Some(c) = &report.catch_up {
        let _ = writeln!(out, "- {} indexer catch-up: {}", mark(c.passed), c.detail);
    }
    if let Some(c) = &report.fault_check {
        let _ = writeln!(out, "- {} faults: {}", mark(c.passed), c.detail);
    }
    dlq_lines(out, report);
    for th in &report.thresholds {
        let _ = writeln!(out, "- {th}");
    }
}

/// Every lost event of a ledger check (the report keeps at most 100), one sub-bullet each.
fn lost_lines(out: &mut String, check: &LedgerCheck) {
    for event in &check.lost_events {
        let _ = writeln!(out, "  - lost: {}", event.describe());
    }
}

/// The indexer's bullet (rows, lag, catch-up, end-to-end latency, its ledger), when it ran.
fn indexer_line(out: &mut String, report: &RunReport) {
    let Some(ix) = &report.indexer else {
        return;
    };
    let _ = writeln!(
        out,
        "- {} indexer (Postgres {}): {} rows; lag at load end {}; caught up after {}; end-to-end p50 {} p99 {} max {}; {}",
        mark(ix.ledger.passed),
        ix.postgres,
        ix.rows,
        ix.lag_at_load_end,
        ix.catch_up_s.map_or("never".to_string(), |s| format!("{s:.1} s")),
        format_millis(ix.end_to_end.p50),
        format_millis(ix.end_to_end.p99),
        format_millis(ix.end_to_end.max),
        ix.ledger.detail
    );
    lost_lines(out, &ix.ledger);
}

/// The DLQ check's bullet and its first 10 problems, when the scenario runs a consumer.
fn dlq_lines(out: &mut String, report: &RunReport) {
    let Some(dlq) = &report.dlq else {
        return;
    };
    let _ = writeln!(
        out,
        "- {} DLQ: {} (injected {}, expected {}, entries {}, missing {}, unexpected {}, duplicated {}, wrong headers {})",
        mark(dlq.passed),
        dlq.detail,
        dlq.injected,
        dlq.expected,
        dlq.entries,
        dlq.missing,
        dlq.unexpected,
        dlq.duplicated,
        dlq.bad_headers
    );
    for p in dlq.problems.iter().take(10) {
        let _ = writeln!(
            out,
            "  - publisher {} seq {} ({}{}): {}",
            p.publisher,
            p.seq,
            p.consumer,
            p.dlq_seq.map_or(String::new(), |s| format!(", DLQ#{s}")),
            p.why
        );
    }
}

/// One row a second; with an indexer, its lag and the end-to-end latency of each second's events
/// too.
fn timeline_section(out: &mut String, report: &RunReport) {
    let indexed = report.indexer.is_some();
    let _ = write!(
        out,
        "\n## Timeline\n\n| s | phase | target | acked | errors | never sent | p50 | p99 | max | send delay p99 |"
    );
    let _ = writeln!(
        out,
        "{} faults |",
        if indexed {
            " indexer lag | end-to-end p50 | end-to-end p99 |"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|{}---|",
        if indexed { "---:|---:|---:|" } else { "" }
    );
    let optional = |v: Option<f64>| v.map_or("–".to_string(), format_millis);
    for row in &report.timeline {
        let consumer = if indexed {
            format!(
                " {} | {} | {} |",
                row.indexer_lag.map_or("–".to_string(), |l| l.to_string()),
                optional(row.end_to_end_p50_ms),
                optional(row.end_to_end_p99_ms)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |{consumer} {} |",
            row.second,
            row.phase,
            row.target,
            row.acked,
            row.failed + row.unknown,
            row.never_sent,
            format_millis(row.p50_ms),
            format_millis(row.p99_ms),
            format_millis(row.max_ms),
            format_millis(row.send_delay_p99_ms),
            row.faults.join(", ")
        );
    }
}

/// Bytes, messages and age of the oldest message of each stream with retention limits, every 5 s.
fn retention_table(out: &mut String, report: &RunReport) {
    if report.retention.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Retention over time\n\n| s | stream | bytes | messages | first seq | oldest age |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|");
    for check in &report.retention {
        let mut next = 0.0;
        for sample in &check.samples {
            if sample.second + 0.5 < next {
                continue;
            }
            next = sample.second.floor() + 5.0;
            let _ = writeln!(
                out,
                "| {:.0} | {} | {} | {} | {} | {} |",
                sample.second,
                check.stream,
                sample.bytes,
                sample.messages,
                sample.first_seq,
                sample
                    .oldest_age_s
                    .map_or("empty".to_string(), |a| format!("{a:.1} s"))
            );
        }
    }
}
