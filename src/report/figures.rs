//! A finished run's headline figures, read from its `report.json` as JSON (any schema-1 report,
//! whichever aivo-load wrote it): where each figure sits, how it is shown, and which way is worse.
//! `report compare` and `report trend` read runs through this module, so a field a newer report adds
//! or an older one lacks shows as `-` in both, never as an error.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::exit::AppError;

/// How a figure is shown and whether less or more is better.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    /// A count; lower is not better or worse (intended, acked, faults applied).
    Count,
    /// A count where any increase is worse (errors, lost).
    CountLowerBetter,
    /// Milliseconds; lower is better.
    Millis,
    /// Seconds; lower is better (the indexer's catch-up).
    Seconds,
    /// Events per second; higher is better.
    Rate,
    /// A fraction shown as a percentage; `true`: higher is better.
    Percent(bool),
    /// Text (scenario, backend, verdict).
    Text,
}

impl Kind {
    /// `Some(true)` when a lower value is better, `Some(false)` when a higher one is, `None` when
    /// neither direction is worse.
    pub(super) fn lower_is_better(self) -> Option<bool> {
        match self {
            Kind::CountLowerBetter | Kind::Millis | Kind::Seconds => Some(true),
            Kind::Percent(higher_better) => Some(!higher_better),
            Kind::Rate => Some(false),
            Kind::Count | Kind::Text => None,
        }
    }
}

/// Where a figure comes from in `report.json`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source {
    /// The value at a JSON pointer.
    At(&'static str),
    /// `PASS` or `FAIL`.
    Verdict,
    /// (failed + unknown) / attempted.
    ErrorRate,
    /// acked / intended.
    Achieved,
    /// A count summed over the ledger check of every stream (`lost`, `duplicated`).
    LedgerSum(&'static str),
    /// A count summed over the safety section's findings (`lost_seconds`).
    SafetySum(&'static str),
    /// The median over the timeline's seconds of one phase of a per-second field (`p99_ms` of
    /// the `steady` seconds): a phase's typical second, not an exact percentile of its events.
    PhaseMedian {
        phase: &'static str,
        field: &'static str,
    },
    /// The highest per-second value of one phase (`acked` of the `saturation` seconds).
    PhaseMax {
        phase: &'static str,
        field: &'static str,
    },
    /// Faults applied (the `apply` events of `faults`).
    FaultsApplied,
    /// The indexer's catch-up time; `never` when the run had an indexer that never caught up.
    CatchUp,
    /// CPU time per acknowledged event, in milliseconds: the timeline's per-second CPU (cores
    /// busy over that second) summed over the run, over `counts.acked`.
    CpuPerEvent(Cpu),
}

/// Whose CPU a [`Source::CpuPerEvent`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cpu {
    /// The harness process (`timeline[].harness_cpu`).
    Harness,
    /// Every node together (`timeline[].nodes[].cpu`, from `/varz`).
    Servers,
}

/// One headline figure: its label, where it is read from, how it is shown.
#[derive(Clone, Copy, Debug)]
pub(super) struct Figure {
    pub(super) label: &'static str,
    pub(super) source: Source,
    pub(super) kind: Kind,
}

/// A per-second field over the timeline's seconds of `phase` that have it (`None`: none).
fn phase_values(report: &Value, phase: &str, field: &str) -> Option<Vec<f64>> {
    let values: Vec<f64> = report
        .pointer("/timeline")?
        .as_array()?
        .iter()
        .filter(|row| row.get("phase").and_then(Value::as_str) == Some(phase))
        .filter_map(|row| row.get(field).and_then(Value::as_f64))
        .collect();
    (!values.is_empty()).then_some(values)
}

/// `field` summed over the objects of the list at `list` (`None`: no such list).
fn sum_over(report: &Value, list: &str, field: &str) -> Option<Value> {
    let items = report.pointer(list)?.as_array()?;
    Some(Value::from(
        items
            .iter()
            .filter_map(|c| c.get(field).and_then(Value::as_u64))
            .sum::<u64>(),
    ))
}

/// What [`Figure::value`] gives for an indexer that never caught up.
pub(super) const NEVER: &str = "never";

impl Figure {
    pub(super) const fn new(label: &'static str, source: Source, kind: Kind) -> Self {
        Self {
            label,
            source,
            kind,
        }
    }

    /// The figure in `report`, `None` where the report does not have it.
    pub(super) fn value(&self, report: &Value) -> Option<Value> {
        let number = |p: &str| report.pointer(p).and_then(Value::as_f64);
        match self.source {
            Source::At(pointer) => report.pointer(pointer).cloned().filter(|v| !v.is_null()),
            Source::Verdict => report
                .pointer("/verdict/passed")
                .and_then(Value::as_bool)
                .map(|p| Value::from(if p { "PASS" } else { "FAIL" })),
            Source::ErrorRate => {
                let attempted = number("/counts/attempted")?;
                let bad = number("/counts/failed")? + number("/counts/unknown")?;
                Some(Value::from(if attempted > 0.0 {
                    bad / attempted
                } else {
                    0.0
                }))
            }
            Source::Achieved => {
                let intended = number("/counts/intended")?;
                Some(Value::from(if intended > 0.0 {
                    number("/counts/acked")? / intended
                } else {
                    1.0
                }))
            }
            Source::LedgerSum(field) => sum_over(report, "/ledger", field),
            Source::SafetySum(field) => sum_over(report, "/safety", field),
            Source::PhaseMedian { phase, field } => {
                let mut values = phase_values(report, phase, field)?;
                values.sort_by(f64::total_cmp);
                Some(Value::from(values[values.len() / 2]))
            }
            Source::PhaseMax { phase, field } => phase_values(report, phase, field)?
                .into_iter()
                .max_by(f64::total_cmp)
                .map(Value::from),
            Source::FaultsApplied => {
                let events = report.pointer("/faults")?.as_array()?;
                Some(Value::from(
                    events
                        .iter()
                        .filter(|e| e.get("phase").and_then(Value::as_str) == Some("apply"))
                        .count(),
                ))
            }
            Source::CpuPerEvent(whose) => {
                let acked = number("/counts/acked")?;
                let rows = report.pointer("/timeline")?.as_array()?;
                let mut seen = false;
                let mut core_seconds = 0.0;
                for row in rows {
                    let cpu = match whose {
                        Cpu::Harness => row.get("harness_cpu").and_then(Value::as_f64),
                        Cpu::Servers => row.get("nodes").and_then(Value::as_array).map(|nodes| {
                            nodes
                                .iter()
                                .filter_map(|n| n.get("cpu").and_then(Value::as_f64))
                                .sum()
                        }),
                    };
                    if let Some(cpu) = cpu {
                        seen = true;
                        core_seconds += cpu;
                    }
                }
                (seen && acked > 0.0).then(|| Value::from(core_seconds * 1000.0 / acked))
            }
            Source::CatchUp => {
                let indexer = report.pointer("/indexer").filter(|i| i.is_object())?;
                match indexer.get("catch_up_s") {
                    Some(Value::Null) => Some(Value::from(NEVER)),
                    Some(v) => Some(v.clone()),
                    // An older report without the field.
                    None => None,
                }
            }
        }
    }

    /// The figure as a number to compare runs by: `NEVER` is infinitely late, text is `None`.
    pub(super) fn number(&self, report: &Value) -> Option<f64> {
        match self.value(report)? {
            Value::String(s) if s == NEVER => Some(f64::INFINITY),
            v => v.as_f64(),
        }
    }

    /// The value for people: `9.78ms`, `3250.0/s`, `0.120%`, `3`; `-` when missing.
    pub(super) fn show(&self, v: &Option<Value>) -> String {
        show(v, self.kind)
    }
}

/// A value of `kind` for people; `-` when missing.
pub(super) fn show(v: &Option<Value>, kind: Kind) -> String {
    let Some(v) = v else {
        return "-".to_string();
    };
    match (kind, v.as_f64()) {
        (Kind::Millis, Some(ms)) => crate::checks::thresholds::format_millis(ms),
        (Kind::Seconds, Some(s)) => format!("{s:.1}s"),
        (Kind::Rate, Some(r)) => format!("{r:.1}/s"),
        (Kind::Percent(_), Some(f)) => format!("{:.3}%", f * 100.0),
        (Kind::Count | Kind::CountLowerBetter, Some(n)) if n.fract() == 0.0 => format!("{n:.0}"),
        (Kind::Count | Kind::CountLowerBetter, Some(n)) => format!("{n:.1}"),
        _ => v.as_str().map_or_else(|| v.to_string(), str::to_string),
    }
}

/// Finds `report.json` given a run directory or the file itself.
pub(super) fn report_path(arg: &Path) -> PathBuf {
    if arg.is_dir() {
        arg.join("report.json")
    } else {
        arg.to_path_buf()
    }
}

/// Reads a run's `report.json` (given the run directory or the file); a usage error naming the
/// file when it cannot be read or is not JSON.
pub(super) fn load(arg: &Path) -> Result<Value, AppError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_figures_are_computed_and_missing_ones_are_none() {
        let report = json!({
            "counts": {"intended": 100, "attempted": 80, "acked": 76, "failed": 3, "unknown": 1},
            "ledger": [{"lost": 2, "duplicated": 0}, {"lost": 1, "duplicated": 4}],
            "faults": [{"phase": "apply"}, {"phase": "revert"}, {"phase": "apply"}],
            "indexer": {"catch_up_s": null},
            "verdict": {"passed": false}
        });
        let of = |source, kind| Figure::new("x", source, kind).number(&report);
        assert_eq!(of(Source::ErrorRate, Kind::Percent(false)), Some(0.05));
        assert_eq!(of(Source::Achieved, Kind::Percent(true)), Some(0.76));
        assert_eq!(of(Source::LedgerSum("lost"), Kind::Count), Some(3.0));
        assert_eq!(of(Source::LedgerSum("duplicated"), Kind::Count), Some(4.0));
        assert_eq!(of(Source::FaultsApplied, Kind::Count), Some(2.0));
        assert_eq!(of(Source::CatchUp, Kind::Seconds), Some(f64::INFINITY));
        // Two seconds at 0.5 and 0.3 cores for 80 acked events: 10 ms each; the nodes summed a second.
        let timed = json!({
            "counts": {"acked": 80},
            "timeline": [
                {"harness_cpu": 0.5, "nodes": [{"cpu": 0.2}, {"cpu": 0.2}]},
                {"harness_cpu": 0.3, "nodes": [{"cpu": 0.4}, {"cpu": null}]}
            ]
        });
        let per_event = |whose| {
            Figure::new("x", Source::CpuPerEvent(whose), Kind::Millis)
                .number(&timed)
                .expect("a figure")
        };
        assert!((per_event(Cpu::Harness) - 10.0).abs() < 1e-9);
        assert!((per_event(Cpu::Servers) - 10.0).abs() < 1e-9);
        let verdict = Figure::new("verdict", Source::Verdict, Kind::Text);
        assert_eq!(verdict.show(&verdict.value(&report)), "FAIL");
        let catch_up = Figure::new("catch-up", Source::CatchUp, Kind::Seconds);
        assert_eq!(catch_up.show(&catch_up.value(&report)), "never");
        // No indexer, no faults list, no such pointer: missing, shown as "-".
        let bare = json!({"counts": {}});
        for source in [
            Source::CatchUp,
            Source::FaultsApplied,
            Source::ErrorRate,
            Source::At("/latency/corrected/p99"),
        ] {
            let figure = Figure::new("x", source, Kind::Millis);
            assert_eq!(figure.value(&bare), None, "{source:?}");
            assert_eq!(figure.show(&figure.value(&bare)), "-");
        }
    }

    #[test]
    fn a_missing_report_is_a_usage_error_naming_the_file() {
        let err = load(Path::new("/nonexistent/run")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/run"), "{err}");
        assert_eq!(err.exit_status(), crate::exit::ExitStatus::Usage);
    }
}
