//! `aivo-load report compare A B`: two runs side by side — the same scenario on two backends, before
//! and after a change, two nightly soaks — with B's change against A for every headline figure.
//!
//! Reads each run's `report.json` as JSON (any schema-1 report, whichever aivo-load wrote it), so
//! a field a newer report adds or an older one lacks shows as `-`, never as an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::exit::{AppError, ExitStatus};

/// How a figure is shown and whether less or more is better.
#[derive(Clone, Copy)]
enum Kind {
    /// A count; lower is not better or worse (intended, acked).
    Count,
    /// A count where any increase is worse (errors, lost).
    CountLowerBetter,
    /// Milliseconds; lower is better.
    Millis,
    /// Events per second; higher is better.
    Rate,
    /// A fraction shown as a percentage; `true`: higher is better.
    Percent(bool),
    /// Text (scenario, backend, verdict).
    Text,
}

/// `(label, JSON pointer into report.json, kind)`.
const ROWS: &[(&str, &str, Kind)] = &[
    ("scenario", "/run/scenario", Kind::Text),
    ("backend", "/run/backend", Kind::Text),
    ("nats-server", "/run/nats_server_version", Kind::Text),
    ("verdict", "", Kind::Text),
    ("load duration s", "/run/duration_s", Kind::Count),
    ("intended", "/counts/intended", Kind::Count),
    ("acked", "/counts/acked", Kind::Count),
    ("failed", "/counts/failed", Kind::CountLowerBetter),
    ("unknown", "/counts/unknown", Kind::CountLowerBetter),
    ("never sent", "/counts/never_sent", Kind::CountLowerBetter),
    ("error rate", "", Kind::Percent(false)),
    ("achieved", "", Kind::Percent(true)),
    ("throughput mean", "/throughput/achieved_mean", Kind::Rate),
    ("throughput peak", "/throughput/achieved_peak", Kind::Rate),
    ("latency p50", "/latency/corrected/p50", Kind::Millis),
    ("latency p90", "/latency/corrected/p90", Kind::Millis),
    ("latency p99", "/latency/corrected/p99", Kind::Millis),
    ("latency p99.9", "/latency/corrected/p99.9", Kind::Millis),
    ("latency max", "/latency/corrected/max", Kind::Millis),
    (
        "service time p99",
        "/latency/service_time/p99",
        Kind::Millis,
    ),
    ("send delay p99", "/latency/send_delay/p99", Kind::Millis),
    ("ledger lost", "", Kind::CountLowerBetter),
    (
        "indexer end-to-end p99",
        "/indexer/end_to_end/p99",
        Kind::Millis,
    ),
    ("indexer catch-up s", "/indexer/catch_up_s", Kind::Count),
];

/// Finds `report.json` given a run directory or the file itself.
fn report_path(arg: &Path) -> PathBuf {
    if arg.is_dir() {
        arg.join("report.json")
    } else {
        arg.to_path_buf()
    }
}

fn load(arg: &Path) -> Result<Value, AppError> {
    let path = report_path(arg);
    let bytes = std::fs::read(&path).map_err(|e| {
        AppError::usage(anyhow::anyhow!(
            "cannot read {}: {e} (give a run directory under reports/ or its report.json)",
            path.display()
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        AppError::usage(anyhow::anyhow!(
            "{} is not a report.json: {e}",
            path.display()
        ))
    })
}

/// A figure that is derived rather than read.
fn value(report: &Value, label: &str, pointer: &str) -> Option<Value> {
    let number = |p: &str| report.pointer(p).and_then(Value::as_f64);
    match label {
        "verdict" => report
            .pointer("/verdict/passed")
            .and_then(Value::as_bool)
            .map(|p| Value::from(if p { "PASS" } else { "FAIL" })),
        "error rate" => {
            let attempted = number("/counts/attempted")?;
            let bad = number("/counts/failed")? + number("/counts/unknown")?;
            Some(Value::from(if attempted > 0.0 {
                bad / attempted
            } else {
                0.0
            }))
        }
        "achieved" => {
            let intended = number("/counts/intended")?;
            Some(Value::from(if intended > 0.0 {
                number("/counts/acked")? / intended
            } else {
                1.0
            }))
        }
        "ledger lost" => {
            let checks = report.pointer("/ledger")?.as_array()?;
            Some(Value::from(
                checks
                    .iter()
                    .filter_map(|c| c.get("lost").and_then(Value::as_u64))
                    .sum::<u64>(),
            ))
        }
        _ => report.pointer(pointer).cloned().filter(|v| !v.is_null()),
    }
}

fn show(v: &Option<Value>, kind: Kind) -> String {
    let Some(v) = v else {
        return "-".to_string();
    };
    match (kind, v.as_f64()) {
        (Kind::Millis, Some(ms)) => crate::checks::thresholds::format_millis(ms),
        (Kind::Rate, Some(r)) => format!("{r:.1}/s"),
        (Kind::Percent(_), Some(f)) => format!("{:.3}%", f * 100.0),
        (Kind::Count | Kind::CountLowerBetter, Some(n)) if n.fract() == 0.0 => format!("{n:.0}"),
        (Kind::Count | Kind::CountLowerBetter, Some(n)) => format!("{n:.1}"),
        _ => v.as_str().map_or_else(|| v.to_string(), str::to_string),
    }
}

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
        Kind::Millis | Kind::CountLowerBetter => y > x * 1.1 && y - x > 0.0,
        Kind::Rate => y < x * 0.9,
        Kind::Percent(higher_better) => (if higher_better { x - y } else { y - x }) > 0.001,
        Kind::Count | Kind::Text => false,
    };
    let text = match kind {
        Kind::Millis | Kind::Rate if x > 0.0 => format!("×{:.2}", y / x),
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
    for (label, pointer, kind) in ROWS {
        let (x, y) = (value(a, label, pointer), value(b, label, pointer));
        if x.is_none() && y.is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "{label:<24} {:>18} {:>18}  {}",
            show(&x, *kind),
            show(&y, *kind),
            change(&x, &y, *kind)
        );
    }
    out
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

    #[test]
    fn a_missing_report_is_a_usage_error_naming_the_file() {
        let err = load(Path::new("/nonexistent/run")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/run"), "{err}");
    }
}
