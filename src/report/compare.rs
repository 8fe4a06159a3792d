//! `aivo-load report compare A B`: two runs side by side — the same scenario on two backends, before
//! and after a change, two nightly soaks — with B's change against A for every headline figure.
//!
//! Reads each run's `report.json` as JSON (any schema-1 report, whichever aivo-load wrote it), so
//! a field a newer report adds or an older one lacks shows as `-`, never as an error.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::figures::{load, Cpu, Figure, Kind, Source};
use crate::exit::{AppError, ExitStatus};

/// The rows of the comparison, in order.
const ROWS: &[Figure] = &[
    Figure::new("scenario", Source::At("/run/scenario"), Kind::Text),
    Figure::new("backend", Source::At("/run/backend"), Kind::Text),
    Figure::new(
        "nats-server",
        Source::At("/run/nats_server_version"),
        Kind::Text,
    ),
    Figure::new(
        "sync_interval",
        Source::At("/run/sync_interval"),
        Kind::Text,
    ),
    Figure::new("verdict", Source::Verdict, Kind::Text),
    Figure::new(
        "load duration s",
        Source::At("/run/duration_s"),
        Kind::Count,
    ),
    Figure::new("intended", Source::At("/counts/intended"), Kind::Count),
    Figure::new("acked", Source::At("/counts/acked"), Kind::Count),
    Figure::new(
        "failed",
        Source::At("/counts/failed"),
        Kind::CountLowerBetter,
    ),
    Figure::new(
        "unknown",
        Source::At("/counts/unknown"),
        Kind::CountLowerBetter,
    ),
    Figure::new(
        "never sent",
        Source::At("/counts/never_sent"),
        Kind::CountLowerBetter,
    ),
    Figure::new("error rate", Source::ErrorRate, Kind::Percent(false)),
    Figure::new("achieved", Source::Achieved, Kind::Percent(true)),
    Figure::new(
        "throughput mean",
        Source::At("/throughput/achieved_mean"),
        Kind::Rate,
    ),
    Figure::new(
        "throughput peak",
        Source::At("/throughput/achieved_peak"),
        Kind::Rate,
    ),
    Figure::new(
        "latency p50",
        Source::At("/latency/corrected/p50"),
        Kind::Millis,
    ),
    Figure::new(
        "latency p90",
        Source::At("/latency/corrected/p90"),
        Kind::Millis,
    ),
    Figure::new(
        "latency p99",
        Source::At("/latency/corrected/p99"),
        Kind::Millis,
    ),
    Figure::new(
        "latency p99.9",
        Source::At("/latency/corrected/p99.9"),
        Kind::Millis,
    ),
    Figure::new(
        "latency max",
        Source::At("/latency/corrected/max"),
        Kind::Millis,
    ),
    Figure::new(
        "service time p99",
        Source::At("/latency/service_time/p99"),
        Kind::Millis,
    ),
    Figure::new(
        "send delay p99",
        Source::At("/latency/send_delay/p99"),
        Kind::Millis,
    ),
    // CPU milliseconds per acknowledged event (the cost of TLS and accounts shows here).
    Figure::new(
        "harness cpu/event",
        Source::CpuPerEvent(Cpu::Harness),
        Kind::Millis,
    ),
    Figure::new(
        "servers cpu/event",
        Source::CpuPerEvent(Cpu::Servers),
        Kind::Millis,
    ),
    Figure::new("faults applied", Source::FaultsApplied, Kind::Count),
    Figure::new(
        "ledger lost",
        Source::LedgerSum("lost"),
        Kind::CountLowerBetter,
    ),
    Figure::new(
        "acked writes lost s",
        Source::SafetySum("lost_seconds"),
        Kind::CountLowerBetter,
    ),
    Figure::new(
        "ledger duplicated",
        Source::LedgerSum("duplicated"),
        Kind::CountLowerBetter,
    ),
    Figure::new(
        "indexer end-to-end p99",
        Source::At("/indexer/end_to_end/p99"),
        Kind::Millis,
    ),
    Figure::new("indexer catch-up", Source::CatchUp, Kind::Seconds),
];

/// B against A: a ratio for latencies and rates, a difference for counts and percentages, and a
/// word when B is worse.
fn change(a: &Option<Value>, b: &Option<Value>, kind: Kind) -> String {
    let (Some(a), Some(b)) = (a, b) else {
        return String::new();
    };
    if let Kind::Text = kind {
        return if a == b {
            String::new()
        } else {
            "differs".into()
        };
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return String::new();
    };
    let worse = match kind {
        Kind::Millis | Kind::Seconds | Kind::CountLowerBetter => y > x * 1.1 && y - x > 0.0,
        Kind::Rate => y < x * 0.9,
        Kind::Percent(higher_better) => (if higher_better { x - y } else { y - x }) > 0.001,
        Kind::Count | Kind::Text => false,
    };
    let text = match kind {
        Kind::Millis | Kind::Seconds | Kind::Rate if x > 0.0 => format!("×{:.2}", y / x),
        Kind::Percent(_) => format!("{:+.3} pt", (y - x) * 100.0),
        _ if y == x => String::new(),
        _ if (y - x).fract() == 0.0 => format!("{:+}", y - x),
        _ => format!("{:+.1}", y - x),
    };
    if worse {
        format!("{text}  worse")
    } else {
        text
    }
}

/// The comparison table.
pub fn render(a: &Value, b: &Value, a_name: &str, b_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {a_name}\nB: {b_name}\n");
    let _ = writeln!(out, "{:<24} {:>18} {:>18}  B against A", "", "A", "B");
    for figure in ROWS {
        let (x, y) = (figure.value(a), figure.value(b));
        if x.is_none() && y.is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<24} {:>18} {:>18}  {}",
            figure.label,
            figure.show(&x),
            figure.show(&y),
            change(&x, &y, figure.kind)
        );
    }
    out
}

/// The figures of the durability decision table, in its column order.
const DECISION: &[Figure] = &[
    Figure::new("verdict", Source::Verdict, Kind::Text),
    Figure::new("acked", Source::At("/counts/acked"), Kind::Count),
    Figure::new("acked but lost", Source::LedgerSum("lost"), Kind::Count),
    Figure::new(
        "seconds of acked writes lost",
        Source::SafetySum("lost_seconds"),
        Kind::Count,
    ),
    Figure::new(
        "steady p50 (median second)",
        Source::PhaseMedian {
            phase: "steady",
            field: "p50_ms",
        },
        Kind::Millis,
    ),
    Figure::new(
        "steady p99 (median second)",
        Source::PhaseMedian {
            phase: "steady",
            field: "p99_ms",
        },
        Kind::Millis,
    ),
    Figure::new(
        "saturation acked/s (best second)",
        Source::PhaseMax {
            phase: "saturation",
            field: "acked",
        },
        Kind::Rate,
    ),
];

/// The decision table of runs that differ in one setting (`durability-compare`: one row per
/// `sync_interval`): what each lost against what it cost, as a Markdown table.
pub fn decision_table(setting: &str, runs: &[(String, Value)]) -> String {
    let mut out = format!("| {setting} |");
    for figure in DECISION {
        out.push_str(&format!(" {} |", figure.label));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(DECISION.len()));
    out.push('\n');
    for (name, report) in runs {
        out.push_str(&format!("| {name} |"));
        for figure in DECISION {
            out.push_str(&format!(" {} |", figure.show(&figure.value(report))));
        }
        out.push('\n');
    }
    out
}

/// A run's `report.json` as JSON (a run dir or the file), for [`render`] and [`decision_table`].
pub fn load_report(path: &Path) -> Result<Value, AppError> {
    load(path)
}

/// `report compare A B`.
pub fn compare_command(a: &Path, b: &Path) -> Result<ExitStatus, AppError> {
    let (x, y) = (load(a)?, load(b)?);
    print!(
        "{}",
        render(&x, &y, &a.display().to_string(), &b.display().to_string())
    );
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(p99: f64, acked: u64, failed: u64, lost: u64) -> Value {
        json!({
            "run": {"scenario": "node-kill", "backend": "local", "duration_s": 90.0},
            "counts": {"intended": 1000, "attempted": 1000, "acked": acked, "failed": failed, "unknown": 0},
            "latency": {"corrected": {"p99": p99}},
            "throughput": {"achieved_mean": acked as f64 / 90.0},
            "ledger": [{"lost": lost}, {"lost": 0}],
            "verdict": {"passed": lost == 0}
        })
    }

    #[test]
    fn worse_figures_are_flagged_and_missing_ones_skipped() {
        let a = report(10.0, 1000, 0, 0);
        let mut b = report(25.0, 990, 10, 2);
        b["run"]["backend"] = json!("docker");
        let table = render(&a, &b, "a", "b");
        let line = |label: &str| {
            table
                .lines()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no {label} row in\n{table}"))
                .to_string()
        };
        assert!(line("backend").contains("differs"), "{table}");
        assert!(line("latency p99").contains("×2.50  worse"), "{table}");
        assert!(line("failed").contains("+10  worse"), "{table}");
        assert!(line("error rate").contains("+1.000 pt  worse"), "{table}");
        assert!(line("ledger lost").contains("+2  worse"), "{table}");
        assert!(line("verdict").contains("PASS") && line("verdict").contains("FAIL"));
        assert!(
            !table.contains("indexer"),
            "absent in both: no row\n{table}"
        );
    }
}
