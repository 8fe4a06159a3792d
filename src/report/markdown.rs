//! `summary.md`: the run for a pull request or a capacity review.

use std::fmt::Write as _;

use super::RunReport;
use crate::checks::thresholds::format_millis;

/// Renders the Markdown summary.
pub fn render(report: &RunReport) -> String {
    let r = &report.run;
    let c = &report.counts;
    let mut out = String::new();
    let verdict = if report.verdict.passed {
        "PASS"
    } else {
        "FAIL"
    };
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

    if !report.faults.is_empty() {
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

    let _ = writeln!(out, "\n## Checks\n");
    for s in &report.streams {
        let _ = writeln!(
            out,
            "- {} stream {}: {}",
            if s.passed { "✓" } else { "✗" },
            s.stream,
            s.detail
        );
    }
    for c in &report.ledger {
        let _ = writeln!(
            out,
            "- {} ledger {}: {} (read {}, lost {}, duplicated {}, unexpected {}, recovered {})",
            if c.passed { "✓" } else { "✗" },
            c.stream,
            c.detail,
            c.read,
            c.lost,
            c.duplicated,
            c.unexpected,
            c.recovered
        );
        for event in &c.lost_events {
            let _ = writeln!(out, "  - lost: {}", event.describe());
        }
    }
    for c in &report.retention {
        let _ = writeln!(
            out,
            "- {} retention {}: {}",
            if c.passed { "✓" } else { "✗" },
            c.stream,
            c.detail
        );
    }
    if let Some(ix) = &report.indexer {
        let _ = writeln!(
            out,
            "- {} indexer (Postgres {}): {} rows; lag at load end {}; caught up after {}; end-to-end p50 {} p99 {} max {}; {}",
            if ix.ledger.passed { "✓" } else { "✗" },
            ix.postgres,
            ix.rows,
            ix.lag_at_load_end,
            ix.catch_up_s.map_or("never".to_string(), |s| format!("{s:.1} s")),
            format_millis(ix.end_to_end.p50),
            format_millis(ix.end_to_end.p99),
            format_millis(ix.end_to_end.max),
            ix.ledger.detail
        );
        for event in &ix.ledger.lost_events {
            let _ = writeln!(out, "  - lost: {}", event.describe());
        }
    }
    if let Some(c) = &report.catch_up {
        let mark = if c.passed { "✓" } else { "✗" };
        let _ = writeln!(out, "- {mark} indexer catch-up: {}", c.detail);
    }
    if let Some(c) = &report.fault_check {
        let mark = if c.passed { "✓" } else { "✗" };
        let _ = writeln!(out, "- {mark} faults: {}", c.detail);
    }
    if let Some(dlq) = &report.dlq {
        let _ = writeln!(
            out,
            "- {} DLQ: {} (injected {}, expected {}, entries {}, missing {}, unexpected {}, duplicated {}, wrong headers {})",
            if dlq.passed { "✓" } else { "✗" },
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
    for th in &report.thresholds {
        let _ = writeln!(out, "- {th}");
    }

    retention_table(&mut out, report);
    // With an indexer, its lag and the end-to-end latency of each second's events too.
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
    out
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
