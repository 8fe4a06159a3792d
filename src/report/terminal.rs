//! The compact end-of-run summary printed to the terminal (k6-like: one metric a line).

use std::fmt::Write as _;

use super::RunReport;
use crate::checks::thresholds::format_millis;
use crate::load::metrics::Percentiles;

fn dotted(name: &str) -> String {
    format!("{name} {}", ".".repeat(28usize.saturating_sub(name.len())))
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "p50={} p90={} p99={} p99.9={} max={}",
        format_millis(p.p50),
        format_millis(p.p90),
        format_millis(p.p99),
        format_millis(p.p999),
        format_millis(p.max)
    )
}

/// The first few lost events of a ledger check, one a line.
fn lost_lines(out: &mut String, check: &crate::checks::no_loss::LedgerCheck) {
    for event in check.lost_events.iter().take(5) {
        let _ = writeln!(out, "      lost: {}", event.describe());
    }
    if check.lost > 5 {
        let _ = writeln!(
            out,
            "      ... {} more (report.json lists the first 100)",
            check.lost - 5
        );
    }
}

/// Renders the summary.
pub fn render(report: &RunReport, report_dir: &str) -> String {
    let r = &report.run;
    let c = &report.counts;
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  scenario: {} ({}), seed {}, {:.0}s, backend {} (nats-server {})",
        r.scenario, r.origin, r.seed, r.duration_s, r.backend, r.nats_server_version
    );
    let _ = writeln!(out, "  report:   {report_dir}");
    let _ = writeln!(out);
    let per_s = |n: u64| {
        if r.duration_s > 0.0 {
            n as f64 / r.duration_s
        } else {
            0.0
        }
    };
    let _ = writeln!(
        out,
        "  {} {} intended, {:.1}/s target",
        dotted("publish.intended"),
        c.intended,
        report.throughput.target_mean
    );
    let _ = writeln!(
        out,
        "  {} {} ({:.1}/s)",
        dotted("publish.attempted"),
        c.attempted,
        per_s(c.attempted)
    );
    let _ = writeln!(
        out,
        "  {} {} ({:.1}/s mean, {:.0}/s peak, {:.3}% of intended)",
        dotted("publish.acked"),
        c.acked,
        report.throughput.achieved_mean,
        report.throughput.achieved_peak,
        c.achieved_ratio() * 100.0
    );
    let errors: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "  {} failed={} unknown={} never_sent={} ({:.3}%){}{}",
        dotted("publish.errors"),
        c.failed,
        c.unknown,
        c.never_sent,
        c.error_rate() * 100.0,
        if errors.is_empty() { "" } else { " " },
        errors.join(" ")
    );
    let _ = writeln!(
        out,
        "  {} {}  (intended → ack)",
        dotted("publish.latency"),
        percentiles(&report.latency.corrected)
    );
    let _ = writeln!(
        out,
        "  {} {}  (sent → ack)",
        dotted("publish.service_time"),
        percentiles(&report.latency.service_time)
    );
    let _ = writeln!(
        out,
        "  {} {}  (intended → sent)",
        dotted("publish.send_delay"),
        percentiles(&report.latency.send_delay)
    );
    if report.subjects.len() > 1 {
        let _ = writeln!(
            out,
            "\n  {:<28} {:>9} {:>9} {:>10} {:>10} {:>9}",
            "by subject", "acked", "acked/s", "p99", "max", "mean size"
        );
        for s in &report.subjects {
            let _ = writeln!(
                out,
                "  {:<28} {:>9} {:>9.1} {:>10} {:>10} {:>7.0} B",
                s.subject,
                s.acked,
                s.acked_per_second,
                format_millis(s.latency.p99),
                format_millis(s.latency.max),
                s.size_bytes.mean
            );
        }
        let _ = writeln!(out);
    }
    if !report.faults.is_empty() {
        let _ = writeln!(out, "  faults");
        for f in &report.faults {
            let seen = match f.confirmed_s {
                Some(t) => format!("confirmed at {t:.1}s"),
                None => "NOT confirmed".to_string(),
            };
            let _ = writeln!(
                out,
                "    {:>6.1}s {:<6} {} {} ({seen}): {}",
                f.requested_s,
                format!("{:?}", f.phase).to_lowercase(),
                f.fault,
                f.node,
                f.detail
            );
        }
        let _ = writeln!(out);
    }
    for s in &report.streams {
        let mark = if s.passed { "✓" } else { "✗" };
        let _ = writeln!(
            out,
            "  {} {mark} {}",
            dotted(&format!("stream {}", s.stream)),
            s.detail
        );
    }
    for c in &report.ledger {
        let mark = if c.passed { "✓" } else { "✗" };
        let _ = writeln!(
            out,
            "  {} {mark} {}",
            dotted(&format!("ledger {}", c.stream)),
            c.detail
        );
        lost_lines(&mut out, c);
    }
    for c in &report.retention {
        let mark = if c.passed { "✓" } else { "✗" };
        let _ = writeln!(
            out,
            "  {} {mark} {}",
            dotted(&format!("retention {}", c.stream)),
            c.detail
        );
    }
    if let Some(ix) = &report.indexer {
        let catch_up = match (ix.catch_up_s, ix.catch_up_rate) {
            (Some(s), Some(rate)) => format!(
                "caught up {s:.1}s after the load ({} behind, {rate:.0} ev/s)",
                ix.lag_at_load_end
            ),
            (Some(s), None) => format!("caught up {s:.1}s after the load"),
            (None, _) => "did NOT catch up".to_string(),
        };
        let _ = writeln!(out, "  {} {} rows, {catch_up}", dotted("indexer"), ix.rows);
        if let (Some(s), Some(rate)) = (ix.recovery_s, ix.recovery_rate) {
            let _ = writeln!(
                out,
                "  {} {s:.0}s from its start at {:.0}s to under 1 s behind (peak lag {}, {rate:.0} ev/s)",
                dotted("indexer.recovery"),
                ix.started_s,
                ix.peak_lag
            );
        }
        let _ = writeln!(
            out,
            "  {} {}  (intended → row in Postgres)",
            dotted("indexer.end_to_end"),
            percentiles(&ix.end_to_end)
        );
        let mark = if ix.ledger.passed { "✓" } else { "✗" };
        let _ = writeln!(
            out,
            "  {} {mark} {}",
            dotted("ledger events (Postgres)"),
            ix.ledger.detail
        );
        lost_lines(&mut out, &ix.ledger);
    }
    if let Some(c) = &report.catch_up {
        let mark = if c.passed { "✓" } else { "✗" };
        let _ = writeln!(out, "  {} {mark} {}", dotted("indexer catch-up"), c.detail);
    }
    if let Some(dlq) = &report.dlq {
        let mark = if dlq.passed { "✓" } else { "✗" };
        let _ = writeln!(out, "  {} {mark} {}", dotted("dlq"), dlq.detail);
    }
    if let Some(c) = &report.fault_check {
        let mark = if c.passed { "✓" } else { "✗" };
        let _ = writeln!(out, "  {} {mark} {}", dotted("faults"), c.detail);
    }
    if !report.thresholds.is_empty() {
        let _ = writeln!(out, "\n  thresholds");
        for t in &report.thresholds {
            let _ = writeln!(out, "    {t}");
        }
    }
    let _ = writeln!(out);
    if report.verdict.passed {
        let _ = writeln!(out, "  PASS: every check and threshold held");
    } else {
        let _ = writeln!(out, "  FAIL:");
        for f in &report.verdict.failures {
            let _ = writeln!(out, "    - {f}");
        }
    }
    out
}
