//! The compact end-of-run summary printed to the terminal (k6-like: one metric a line).

use std::fmt::Write as _;

use super::{cores, mark, mebibytes, resource_lines, RunReport};
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

/// Renders the summary: header, publish metrics, subjects, faults, checks, thresholds, verdict.
pub fn render(report: &RunReport, report_dir: &str) -> String {
    let mut out = String::new();
    header(&mut out, report, report_dir);
    publish_lines(&mut out, report);
    resources_lines(&mut out, report);
    subject_table(&mut out, report);
    fault_lines(&mut out, report);
    safety_lines(&mut out, report);
    check_lines(&mut out, report);
    indexer_lines(&mut out, report);
    optional_check_lines(&mut out, report);
    verdict_lines(&mut out, report);
    out
}

/// Which scenario ran where, and where its report is.
fn header(out: &mut String, report: &RunReport, report_dir: &str) {
    let r = &report.run;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  scenario: {} ({}), seed {}, {:.0}s, backend {} (nats-server {})",
        r.scenario, r.origin, r.seed, r.duration_s, r.backend, r.nats_server_version
    );
    let _ = writeln!(out, "  report:   {report_dir}");
    let _ = writeln!(out);
}

/// Counts, rates, errors and the three latency histograms of the publishes.
fn publish_lines(out: &mut String, report: &RunReport) {
    let r = &report.run;
    let c = &report.counts;
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
    for (name, p, span) in [
        (
            "publish.latency",
            &report.latency.corrected,
            "intended → ack",
        ),
        (
            "publish.service_time",
            &report.latency.service_time,
            "sent → ack",
        ),
        (
            "publish.send_delay",
            &report.latency.send_delay,
            "intended → sent",
        ),
    ] {
        let _ = writeln!(out, "  {} {}  ({span})", dotted(name), percentiles(p));
    }
}

/// CPU and memory of the harness and the nodes, one line each, when they were sampled.
fn resources_lines(out: &mut String, report: &RunReport) {
    for line in resource_lines(&report.timeline) {
        let unreachable = match line.unreachable_s {
            Some(s) if s > 0 => format!(", unreachable {s}s"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} cpu median {} max {} cores, mem max {}{unreachable}",
            dotted(&format!("resources.{}", line.name)),
            cores(line.cpu_median),
            cores(line.cpu_max),
            mebibytes(line.mem_max)
        );
    }
}

/// Acked, rate, latency and size by subject, when there is more than one subject.
fn subject_table(out: &mut String, report: &RunReport) {
    if report.subjects.len() <= 1 {
        return;
    }
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

/// Each fault applied or reverted, with when it was confirmed, when the run had faults.
fn fault_lines(out: &mut String, report: &RunReport) {
    if report.faults.is_empty() {
        return;
    }
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

/// What each safety fault did and cost, when the run applied any.
fn safety_lines(out: &mut String, report: &RunReport) {
    if report.safety.is_empty() {
        return;
    }
    let _ = writeln!(out, "  safety");
    for (label, done, cost) in report.safety_lines() {
        let _ = writeln!(out, "    {label}: {done}");
        let _ = writeln!(out, "      → {cost}");
    }
    let _ = writeln!(out);
}

/// The stream, ledger, retention, replicas and replica read-back checks, one a line.
fn check_lines(out: &mut String, report: &RunReport) {
    for s in &report.streams {
        let name = format!("stream {}", s.stream);
        let _ = writeln!(out, "  {} {} {}", dotted(&name), mark(s.passed), s.detail);
    }
    for c in &report.ledger {
        let name = format!("ledger {}", c.stream);
        let _ = writeln!(out, "  {} {} {}", dotted(&name), mark(c.passed), c.detail);
        lost_lines(out, c);
    }
    for (name, passed, detail) in report.replica_and_retention_checks() {
        let _ = writeln!(out, "  {} {} {detail}", dotted(&name), mark(passed));
    }
    if let Some(c) = &report.security {
        let _ = writeln!(
            out,
            "  {} {} {}",
            dotted("security"),
            mark(c.passed),
            c.detail
        );
        for p in &c.probes {
            let name = format!("security {}", p.name);
            let _ = writeln!(out, "  {} {} {}", dotted(&name), mark(p.passed), p.detail);
        }
    }
    if let Some(d) = &report.disaster_recovery {
        let _ = writeln!(
            out,
            "  {} {} {}",
            dotted("disaster-recovery"),
            mark(d.passed),
            d.detail
        );
        let _ = writeln!(
            out,
            "  {} snapshot at {:.1} s, destroyed at {:.1} s: recovery point {} events / {:.1} s; \
             fresh cluster {:.1} s, recovery time {:.1} s",
            dotted("  recovery"),
            d.snapshot_at_s,
            d.destroyed_at_s,
            d.recovery_point_events,
            d.recovery_point_s,
            d.fresh_cluster_s,
            d.recovery_time_s
        );
        for s in d
            .streams
            .iter()
            .filter(|s| s.acked_before + s.acked_after > 0 || !s.passed)
        {
            let name = format!("  restored {}", s.stream);
            let _ = writeln!(
                out,
                "  {} {} acked before the snapshot {} (missing {}), after it {} (not restored: {})",
                dotted(&name),
                mark(s.passed),
                s.acked_before,
                s.missing_before,
                s.acked_after,
                s.lost_after
            );
            for e in s.missing_events.iter().take(10) {
                let _ = writeln!(out, "      missing: {}", e.describe());
            }
        }
    }
}

/// Rows, catch-up, recovery, end-to-end latency and the ledger of the indexer, when it ran.
fn indexer_lines(out: &mut String, report: &RunReport) {
    let Some(ix) = &report.indexer else {
        return;
    };
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
    let _ = writeln!(
        out,
        "  {} {} {}",
        dotted("ledger events (Postgres)"),
        mark(ix.ledger.passed),
        ix.ledger.detail
    );
    lost_lines(out, &ix.ledger);
}

/// The checks only some runs have (indexer catch-up, DLQ, faults), each when the run had it.
fn optional_check_lines(out: &mut String, report: &RunReport) {
    let checks = [
        (
            "indexer catch-up",
            report.catch_up.as_ref().map(|c| (c.passed, &c.detail)),
        ),
        ("dlq", report.dlq.as_ref().map(|c| (c.passed, &c.detail))),
        (
            "faults",
            report.fault_check.as_ref().map(|c| (c.passed, &c.detail)),
        ),
    ];
    for (name, check) in checks {
        if let Some((passed, detail)) = check {
            let _ = writeln!(out, "  {} {} {detail}", dotted(name), mark(passed));
        }
    }
}

/// The thresholds, then PASS or FAIL with one line per failure.
fn verdict_lines(out: &mut String, report: &RunReport) {
    if !report.thresholds.is_empty() {
        let _ = writeln!(out, "\n  thresholds");
        for t in &report.thresholds {
            let _ = writeln!(out, "    {t}");
        }
    }
    let _ = writeln!(out);
    if let Some(limit) = &report.load_generator {
        let _ = writeln!(
            out,
            "  WARNING: limited by the load generator, not the cluster (seconds {}–{}):\n    {}\n    {}",
            limit.from_s, limit.to_s, limit.reason, limit.advice
        );
    }
    for stuck in &report.stuck_replicas {
        let _ = writeln!(out, "  WARNING: {}", stuck.describe());
    }
    if report.verdict.passed {
        let _ = writeln!(out, "  PASS: every check and threshold held");
    } else {
        let _ = writeln!(out, "  FAIL:");
        for f in &report.verdict.failures {
            let _ = writeln!(out, "    - {f}");
        }
    }
}
