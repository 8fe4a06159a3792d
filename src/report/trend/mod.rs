//! `aivo-load report trend DIR...`: how last night compares with the nights before. One row per
//! run, oldest first, with the headline figures of each; a figure is flagged where it moved past the
//! tolerance from the median of the previous runs in the worse direction (latency, errors, lost up;
//! throughput down). The median, not the mean or the last run: one bad night neither hides the next
//! one nor becomes the baseline.
//!
//! Runs are read as JSON through `report::figures` (as `report compare` reads them), so a figure a
//! run lacks shows `-` and is not judged. Finding the runs is `runs.rs`; the HTML page with a chart
//! per figure is `html.rs`. The exit status says whether any run regressed (1) or not (0).

mod html;
mod runs;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use super::figures::{show, Figure, Kind, Source};
use crate::exit::{AppError, ExitStatus};
use runs::Run;

/// `report trend`, validated.
#[derive(Debug, Clone)]
pub struct TrendPlan {
    /// Run directories, their parents, or unexpanded glob patterns.
    pub inputs: Vec<PathBuf>,
    /// How far a figure may move in the worse direction from the baseline median (0.2 = 20 %).
    pub tolerance: f64,
    /// Previous runs (with the figure) a baseline needs; earlier runs are shown, not judged. ≥ 1.
    pub min_history: usize,
    /// Where to write the HTML page with a chart per figure.
    pub html: Option<PathBuf>,
}

/// The figures of the trend, in column order, with their column headers.
const FIGURES: &[(&str, Figure)] = &[
    (
        "throughput",
        Figure::new(
            "throughput",
            Source::At("/throughput/achieved_mean"),
            Kind::Rate,
        ),
    ),
    (
        "p50",
        Figure::new(
            "latency p50",
            Source::At("/latency/corrected/p50"),
            Kind::Millis,
        ),
    ),
    (
        "p99",
        Figure::new(
            "latency p99",
            Source::At("/latency/corrected/p99"),
            Kind::Millis,
        ),
    ),
    (
        "p99.9",
        Figure::new(
            "latency p99.9",
            Source::At("/latency/corrected/p99.9"),
            Kind::Millis,
        ),
    ),
    (
        "errors",
        Figure::new("error rate", Source::ErrorRate, Kind::Percent(false)),
    ),
    // What the nemesis did, not how the cluster coped: shown, never judged (`Kind::Count`).
    (
        "faults",
        Figure::new("faults applied", Source::FaultsApplied, Kind::Count),
    ),
    (
        "lost",
        Figure::new(
            "ledger lost",
            Source::LedgerSum("lost"),
            Kind::CountLowerBetter,
        ),
    ),
    (
        "dup",
        Figure::new(
            "ledger duplicated",
            Source::LedgerSum("duplicated"),
            Kind::CountLowerBetter,
        ),
    ),
    (
        "catch-up",
        Figure::new("indexer catch-up", Source::CatchUp, Kind::Seconds),
    ),
    (
        "e2e p99",
        Figure::new(
            "indexer end-to-end p99",
            Source::At("/indexer/end_to_end/p99"),
            Kind::Millis,
        ),
    ),
];

/// One figure of one run, judged.
#[derive(Debug, Clone)]
struct Cell {
    value: Option<Value>,
    /// The value as a number (`never` is infinite).
    number: Option<f64>,
    /// The median of the previous runs' values and how many there were; `None` before
    /// `min_history` of them.
    baseline: Option<(f64, usize)>,
    regressed: bool,
}

/// One figure over all runs.
struct Column {
    header: &'static str,
    figure: Figure,
    cells: Vec<Cell>,
}

/// The runs and every figure judged.
struct Trend {
    runs: Vec<Run>,
    columns: Vec<Column>,
    tolerance: f64,
    min_history: usize,
}

impl Trend {
    fn judge(runs: Vec<Run>, tolerance: f64, min_history: usize) -> Self {
        let columns = FIGURES
            .iter()
            .map(|&(header, figure)| {
                let values: Vec<Option<Value>> =
                    runs.iter().map(|r| figure.value(&r.report)).collect();
                let numbers: Vec<Option<f64>> =
                    runs.iter().map(|r| figure.number(&r.report)).collect();
                let judged = judge(
                    &numbers,
                    figure.kind.lower_is_better(),
                    tolerance,
                    min_history,
                );
                let cells = values
                    .into_iter()
                    .zip(numbers)
                    .zip(judged)
                    .map(|((value, number), (baseline, regressed))| Cell {
                        value,
                        number,
                        baseline,
                        regressed,
                    })
                    .collect();
                Column {
                    header,
                    figure,
                    cells,
                }
            })
            .collect();
        Self {
            runs,
            columns,
            tolerance,
            min_history,
        }
    }

    /// `(run index, column)` of every regressed figure, oldest run first.
    fn regressions(&self) -> Vec<(usize, &Column)> {
        (0..self.runs.len())
            .flat_map(|i| {
                self.columns
                    .iter()
                    .filter(move |c| c.cells[i].regressed)
                    .map(move |c| (i, c))
            })
            .collect()
    }

    /// The run's name, with its position (`run 4`) for a reader of the regression list.
    fn run_label(&self, i: usize) -> String {
        format!("{} (run {})", self.runs[i].name, i + 1)
    }

    /// One regressed figure in a sentence: the value, the baseline, by how much.
    fn regression_line(&self, i: usize, column: &Column) -> String {
        let cell = &column.cells[i];
        let (median, previous) = cell.baseline.unwrap_or((0.0, 0));
        let by = match cell.number {
            Some(v) if median > 0.0 && v.is_finite() => format!(", ×{:.2} the median", v / median),
            _ => String::new(),
        };
        format!(
            "{}: {} {} against a median of {} over {previous} earlier runs{by}",
            self.run_label(i),
            column.figure.label,
            column.figure.show(&cell.value),
            show(&Some(Value::from(median)), column.figure.kind),
        )
    }

    /// The table, the regressions and the verdict, as Markdown (what stdout shows and the HTML
    /// page's tables are made of).
    fn markdown(&self) -> String {
        let regressions = self.regressions();
        let verdict = if regressions.is_empty() {
            "PASS"
        } else {
            "FAIL"
        };
        let mut out = String::new();
        let _ = writeln!(out, "# Trend of {} runs: {verdict}\n", self.runs.len());
        let _ = writeln!(
            out,
            "Oldest first. From the run with {} earlier runs on, each figure is judged against the \
             median of the earlier runs: ✗ where it is worse by more than {} (a count over a \
             median of 0: any increase). Faults are what the nemesis did, shown, not judged.\n",
            self.min_history,
            percent(self.tolerance)
        );
        let scenarios = self.scenarios();
        if scenarios.len() > 1 {
            let _ = writeln!(
                out,
                "Note: the runs are of different scenarios ({}); their figures may not compare.\n",
                scenarios.join(", ")
            );
        }
        out.push_str(&self.table());
        out.push('\n');
        if regressions.is_empty() {
            let _ = writeln!(
                out,
                "PASS: no figure moved past {} from its baseline in the worse direction.",
                percent(self.tolerance)
            );
        } else {
            let _ = writeln!(out, "## Regressions\n");
            for (i, column) in &regressions {
                let _ = writeln!(out, "- {}", self.regression_line(*i, column));
            }
            let runs = {
                let mut runs: Vec<usize> = regressions.iter().map(|(i, _)| *i).collect();
                runs.dedup();
                runs.len()
            };
            let _ = writeln!(
                out,
                "\nFAIL: {} figure(s) in {runs} run(s) moved past {} from the baseline.",
                regressions.len(),
                percent(self.tolerance)
            );
        }
        out
    }

    /// The Markdown table, padded so that it also reads in a terminal.
    fn table(&self) -> String {
        let mut header: Vec<String> = vec!["run".into(), "started (UTC)".into()];
        header.extend(self.columns.iter().map(|c| c.header.to_string()));
        header.push("judged".into());
        let rows: Vec<Vec<String>> = (0..self.runs.len()).map(|i| self.row(i)).collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|k| {
                rows.iter()
                    .map(|r| r[k].chars().count())
                    .chain([header[k].chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut line = String::from("|");
            for (k, cell) in cells.iter().enumerate() {
                let pad = widths[k].saturating_sub(cell.chars().count());
                // Figures right-aligned, names and the judgement left-aligned.
                if (2..cells.len() - 1).contains(&k) {
                    let _ = write!(line, " {}{cell} |", " ".repeat(pad));
                } else {
                    let _ = write!(line, " {cell}{} |", " ".repeat(pad));
                }
            }
            line
        };
        let mut out = line(&header);
        out.push('\n');
        out.push('|');
        for (k, width) in widths.iter().enumerate() {
            if (2..widths.len() - 1).contains(&k) {
                let _ = write!(out, "{}:|", "-".repeat(width + 1));
            } else {
                let _ = write!(out, "{}|", "-".repeat(width + 2));
            }
        }
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    fn row(&self, i: usize) -> Vec<String> {
        let run = &self.runs[i];
        let mut row = vec![run.name.clone(), started(run)];
        let mut regressed = 0;
        let mut judged = false;
        for column in &self.columns {
            let cell = &column.cells[i];
            let mut text = column.figure.show(&cell.value);
            if cell.regressed {
                text.push_str(" ✗");
                regressed += 1;
            }
            judged |= cell.baseline.is_some() && cell.number.is_some();
            row.push(text);
        }
        row.push(match (judged, regressed) {
            (false, _) => format!("no (< {} earlier)", self.min_history),
            (true, 0) => "ok".into(),
            (true, n) => format!("{n} regressed"),
        });
        row
    }

    /// The distinct scenarios of the runs, in order of appearance.
    fn scenarios(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for run in &self.runs {
            if let Some(s) = run.report.pointer("/run/scenario").and_then(Value::as_str) {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
        }
        out
    }
}

/// `2026-11-27 11:24`, or `-`.
fn started(run: &Run) -> String {
    run.started.map_or("-".into(), |t| {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    })
}

/// `0.2` → `20%`.
fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 1000.0).round() / 10.0)
}

/// Judges one figure over the runs, oldest first: for each run, the median of the earlier runs'
/// values (once at least `min_history` of them have the figure) and whether the run's value is worse
/// than it by more than `tolerance`. `lower_is_better`: `None` for a figure no direction of which is
/// worse (never regressed).
fn judge(
    values: &[Option<f64>],
    lower_is_better: Option<bool>,
    tolerance: f64,
    min_history: usize,
) -> Vec<(Option<(f64, usize)>, bool)> {
    let mut earlier: Vec<f64> = Vec::with_capacity(values.len());
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let baseline = (earlier.len() >= min_history.max(1))
            .then(|| median(&earlier))
            .map(|m| (m, earlier.len()));
        let regressed = match (value, baseline, lower_is_better) {
            // Over a median of 0 any increase is worse: 0 × (1 + tolerance) is still 0.
            (Some(v), Some((m, _)), Some(true)) => *v > m * (1.0 + tolerance),
            (Some(v), Some((m, _)), Some(false)) => *v < m * (1.0 - tolerance),
            _ => false,
        };
        out.push((baseline, regressed));
        if let Some(v) = value {
            earlier.push(*v);
        }
    }
    out
}

/// The median (the mean of the middle two of an even count); `values` is not empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// `report trend`: the table on stdout, the HTML page if asked; exit 1 when a figure regressed.
pub fn trend_command(plan: &TrendPlan) -> Result<ExitStatus, AppError> {
    let runs = runs::find(&plan.inputs)?;
    let trend = Trend::judge(runs, plan.tolerance, plan.min_history);
    print!("{}", trend.markdown());
    if let Some(path) = &plan.html {
        std::fs::write(path, html::render(&trend)).map_err(|e| {
            AppError::usage(anyhow::anyhow!(
                "cannot write the HTML page {}: {e}",
                path.display()
            ))
        })?;
        eprintln!("aivo-load: wrote {}", path.display());
    }
    Ok(if trend.regressions().is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_figure_is_judged_against_the_median_of_the_earlier_runs() {
        let lower = |values: &[Option<f64>]| -> Vec<bool> {
            judge(values, Some(true), 0.2, 3)
                .into_iter()
                .map(|(_, r)| r)
                .collect()
        };
        // The first three are not judged, however they move; then 12 is not above 10 × 1.2, and
        // 14 is above the median of (10, 50, 9, 12), 11, × 1.2.
        assert_eq!(
            lower(&[Some(10.0), Some(50.0), Some(9.0), Some(12.0), Some(14.0)]),
            [false, false, false, false, true]
        );
        // A missing value is not judged and does not count toward the history.
        let judged = judge(
            &[Some(1.0), None, Some(1.0), Some(1.0), Some(5.0)],
            Some(true),
            0.2,
            3,
        );
        assert_eq!(judged[3].0, None, "two earlier values only");
        assert_eq!(judged[4], (Some((1.0, 3)), true));
        // Counts over a median of 0: any increase.
        assert_eq!(
            lower(&[Some(0.0), Some(0.0), Some(0.0), Some(1.0)]),
            [false, false, false, true]
        );
        // Higher is better: a drop past the tolerance.
        let higher: Vec<bool> = judge(&[Some(100.0), Some(85.0), Some(70.0)], Some(false), 0.2, 1)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            higher,
            [false, false, true],
            "70 < median(100, 85) × 0.8 = 74"
        );
        // Never caught up (infinite) over a finite median is a regression.
        assert_eq!(
            lower(&[Some(3.0), Some(4.0), Some(3.0), Some(f64::INFINITY)]),
            [false, false, false, true]
        );
        // No direction is worse: never flagged.
        assert!(judge(&[Some(1.0), Some(9.0)], None, 0.2, 1)
            .iter()
            .all(|(_, r)| !r));
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    fn run(name: &str, p99: f64, lost: u64, indexer: Option<Value>) -> Run {
        Run {
            name: name.into(),
            started: None,
            report: json!({
                "run": {"scenario": "chaos-soak"},
                "counts": {"attempted": 1000, "failed": 0, "unknown": 0},
                "throughput": {"achieved_mean": 100.0},
                "latency": {"corrected": {"p50": 1.0, "p99": p99, "p99.9": 20.0}},
                "ledger": [{"lost": lost, "duplicated": 0}],
                "faults": [{"phase": "apply"}, {"phase": "revert"}],
                "indexer": indexer,
            }),
        }
    }

    #[test]
    fn the_table_flags_the_regressed_figures_and_names_them() {
        let indexer = |s: Option<f64>| Some(json!({"catch_up_s": s, "end_to_end": {"p99": 50.0}}));
        let runs = vec![
            run("n1", 10.0, 0, indexer(Some(2.0))),
            run("n2", 11.0, 0, None),
            run("n3", 9.0, 0, indexer(Some(2.5))),
            run("n4", 30.0, 0, indexer(Some(2.2))),
            run("n5", 10.0, 2, indexer(None)),
        ];
        let trend = Trend::judge(runs, 0.2, 2);
        let text = trend.markdown();
        assert!(text.starts_with("# Trend of 5 runs: FAIL"), "{text}");
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("| {name} ")))
                .unwrap_or_else(|| panic!("no row {name}\n{text}"))
                .to_string()
        };
        assert!(row("n2").contains("no (< 2 earlier)"), "{text}");
        assert_eq!(row("n3").matches('✗').count(), 0, "{text}");
        assert!(row("n4").contains("30.00ms ✗"), "{text}");
        assert!(row("n4").contains("1 regressed"), "{text}");
        // n5: lost 2 over a median of 0; the indexer never caught up.
        assert!(
            row("n5").contains(" 2 ✗") && row("n5").contains("never ✗"),
            "{text}"
        );
        // Missing indexer: `-`, not judged.
        assert!(row("n2").contains(" - |"), "{text}");
        let regressions: Vec<&str> = text.lines().filter(|l| l.starts_with("- ")).collect();
        assert_eq!(regressions.len(), 3, "{text}");
        assert!(
            regressions[0].starts_with("- n4 (run 4): latency p99 30.00ms against a median of")
                && regressions[0].contains("×"),
            "{text}"
        );
        assert!(text.contains("FAIL: 3 figure(s) in 2 run(s)"), "{text}");
        // Faults are shown, never judged, though 2 applied each time.
        assert!(!text.contains("faults applied"), "{text}");
    }

    #[test]
    fn steady_runs_pass() {
        let runs = (1..=5).map(|i| run(&format!("n{i}"), 10.0 + i as f64 * 0.1, 0, None));
        let trend = Trend::judge(runs.collect(), 0.2, 3);
        assert!(trend.regressions().is_empty());
        let text = trend.markdown();
        assert!(text.contains("PASS: no figure moved past 20%"), "{text}");
        assert!(!text.contains(" ✗ |"), "{text}");
    }
}
