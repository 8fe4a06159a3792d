//! `report trend --html FILE`: the trend on one self-contained page, as `report.html` is (no
//! script, nothing from the network). The same Markdown as stdout (turned into HTML by
//! `report::html::markdown_to_html`), then an inline SVG chart per figure: runs along x, the value
//! as a line with a point per run, the baseline median of each judged run as a dashed line inside
//! its tolerance band, and each regression as a ring (`circle.regression`, titled with what moved).
//! Axes, grid and lines are drawn by `report::html`'s `Plot`.

use std::fmt::Write as _;

use super::{Column, Kind, Trend};
use crate::report::escape_markup as escape;
use crate::report::html::{
    markdown_to_html, round_ceiling, Plot, Series, BOTTOM, HEIGHT, LEFT, STYLE, TOP, WIDTH,
};

/// The page.
pub(super) fn render(trend: &Trend) -> String {
    let markdown = trend.markdown();
    let title = markdown
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title>\n<style>{STYLE}{WIDER}</style></head><body>\n",
        escape(title)
    );
    out.push_str(&markdown_to_html(&markdown));
    out.push_str("<h2>Figures by run</h2>\n");
    for column in &trend.columns {
        out.push_str(&chart(trend, column));
    }
    out.push_str(
        "<p class=\"note\">Each run's figures: its report.json; dashed: the median of the \
         earlier runs, shaded: ± the tolerance around it, ringed: a regression.</p>\n",
    );
    out.push_str("</body></html>\n");
    out
}

/// The run report's style, but for a table a column per figure: wider, cells on one line.
const WIDER: &str = "body{max-width:1280px}figure{margin:.5em 0}td{white-space:nowrap}";

/// How a figure's values are drawn: scaled (fractions as percentages) and with which unit.
fn unit(kind: Kind) -> (f64, &'static str) {
    match kind {
        Kind::Percent(_) => (100.0, "%"),
        Kind::Millis => (1.0, "ms"),
        Kind::Seconds => (1.0, "s"),
        Kind::Rate => (1.0, "/s"),
        Kind::Count | Kind::CountLowerBetter | Kind::Text => (1.0, ""),
    }
}

/// One figure's chart, or a note when no run has it.
fn chart(trend: &Trend, column: &Column) -> String {
    let label = column.figure.label;
    let (scale, unit) = unit(column.figure.kind);
    let judged = column.figure.kind.lower_is_better().is_some();
    let points: Vec<Option<f64>> = column
        .cells
        .iter()
        .map(|c| c.number.map(|v| v * scale))
        .collect();
    // The baseline band of each judged run: ± the tolerance around the median.
    let bands: Vec<Option<(f64, f64, f64)>> = column
        .cells
        .iter()
        .map(|c| {
            let (m, _) = c.baseline.filter(|(m, _)| judged && m.is_finite())?;
            let m = m * scale;
            Some((
                (m * (1.0 - trend.tolerance)).max(0.0),
                m,
                m * (1.0 + trend.tolerance),
            ))
        })
        .collect();
    let max = points
        .iter()
        .flatten()
        .copied()
        .chain(bands.iter().flatten().map(|b| b.2))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    if points.iter().all(Option::is_none) {
        return format!(
            "<p class=\"note\">{}: no run has this figure.</p>\n",
            escape(label)
        );
    }
    let plot = Plot {
        seconds: trend.runs.len(),
        log: false,
        lo: 0.0,
        hi: if max > 0.0 { round_ceiling(max) } else { 1.0 },
        width: WIDTH - LEFT - 10.0,
        height: HEIGHT - TOP - BOTTOM,
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure><figcaption>{}{}</figcaption>\n<svg class=\"trend-chart\" data-figure=\"{}\" \
         xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" font-size=\"11\" role=\"img\">\n",
        escape(label),
        if judged { "" } else { " (shown, not judged)" },
        escape(label)
    );
    plot.grid(&mut out, unit);
    baseline(&plot, &mut out, &bands);
    run_axis(trend, &plot, &mut out);
    let series = Series {
        name: label.to_string(),
        color: "#1565c0",
        points: points.clone(),
    };
    plot.series_line(&mut out, (0, 1), &series);
    for (i, (point, cell)) in points.iter().zip(&column.cells).enumerate() {
        let Some(v) = point else { continue };
        let (x, y) = (plot.x(i as f64), plot.y(*v));
        let shown = column.figure.show(&cell.value);
        if cell.regressed {
            let _ = writeln!(
                out,
                "<circle class=\"regression\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"7\" fill=\"none\" \
                 stroke=\"#c62828\" stroke-width=\"2.5\"><title>{}</title></circle>",
                escape(&trend.regression_line(i, column))
            );
        }
        let _ = writeln!(
            out,
            "<circle class=\"run\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{}\">\
             <title>{}: {}</title></circle>",
            if cell.regressed { "#c62828" } else { "#1565c0" },
            escape(&trend.runs[i].name),
            escape(&shown)
        );
    }
    out.push_str("</svg></figure>\n");
    out
}

/// Each judged run's tolerance band (a column one run wide) and the median through them (dashed,
/// broken where a run has no baseline).
fn baseline(plot: &Plot, out: &mut String, bands: &[Option<(f64, f64, f64)>]) {
    let half = if plot.seconds > 1 {
        (plot.x(1.0) - plot.x(0.0)) / 2.0
    } else {
        plot.width / 2.0
    };
    let mut median = String::new();
    let mut pen_down = false;
    for (i, band) in bands.iter().enumerate() {
        let Some((low, m, high)) = band else {
            pen_down = false;
            continue;
        };
        let x = plot.x(i as f64);
        let (x0, x1) = ((x - half).max(LEFT), (x + half).min(LEFT + plot.width));
        let _ = writeln!(
            out,
            "<rect class=\"baseline-band\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\" fill=\"#c8e6c9\" opacity=\"0.6\"/>",
            plot.y(*high),
            x1 - x0,
            (plot.y(*low) - plot.y(*high)).max(1.0)
        );
        let _ = write!(
            median,
            "{}{x0:.1},{y:.1} L{x1:.1},{y:.1} ",
            if pen_down { "L" } else { "M" },
            y = plot.y(*m)
        );
        pen_down = true;
    }
    if !median.is_empty() {
        let _ = writeln!(
            out,
            "<path class=\"baseline-median\" d=\"{}\" fill=\"none\" stroke=\"#2e7d32\" \
             stroke-dasharray=\"4 3\"/>",
            median.trim_end()
        );
    }
}

/// A label under each run (about twelve at most): its start date, else its position.
fn run_axis(trend: &Trend, plot: &Plot, out: &mut String) {
    let step = trend.runs.len().div_ceil(12).max(1);
    for (i, run) in trend.runs.iter().enumerate().step_by(step) {
        let text = run.started.map_or_else(
            || format!("#{}", i + 1),
            |t| format!("{:02}-{:02}", u8::from(t.month()), t.day()),
        );
        // The last label ends at the plot's right edge rather than running past the chart.
        let anchor = if i + 1 == trend.runs.len() && i > 0 {
            "end"
        } else {
            "middle"
        };
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{text}<title>{}</title></text>",
            plot.x(i as f64),
            HEIGHT - 6.0,
            escape(&run.name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::runs::Run;
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_has_a_chart_per_figure_with_the_regression_ringed() {
        let runs = [10.0, 11.0, 9.0, 30.0, 10.0]
            .iter()
            .enumerate()
            .map(|(i, p99)| Run {
                name: format!("night-{i}"),
                started: None,
                report: json!({
                    "counts": {"attempted": 100, "failed": 0, "unknown": 0},
                    "latency": {"corrected": {"p99": p99}},
                    "ledger": [{"lost": 0, "duplicated": 0}],
                }),
            })
            .collect();
        let trend = Trend::judge(runs, 0.2, 3);
        let page = render(&trend);
        assert!(page.starts_with("<!doctype html>"), "{page}");
        assert!(
            page.contains("<title>Trend of 5 runs: FAIL</title>"),
            "{page}"
        );
        let regressions: Vec<&str> = page
            .lines()
            .filter(|l| l.starts_with("<circle class=\"regression\""))
            .collect();
        assert_eq!(regressions.len(), 1, "{page}");
        assert!(
            regressions[0].contains("night-3 (run 4): latency p99 30.00ms"),
            "{page}"
        );
        assert_eq!(
            page.matches("data-figure=\"latency p99\"").count(),
            1,
            "{page}"
        );
        // Runs 4 and 5 are judged: two bands per judged chart, and a dashed median.
        let p99 = &page[page.find("data-figure=\"latency p99\"").expect("p99 chart")..];
        let p99 = &p99[..p99.find("</svg>").expect("end")];
        assert_eq!(p99.matches("class=\"baseline-band\"").count(), 2, "{p99}");
        assert!(p99.contains("class=\"baseline-median\""), "{p99}");
        assert_eq!(p99.matches("<circle class=\"run\"").count(), 5, "{p99}");
        // No run has an indexer: a note, not an empty chart.
        assert!(
            page.contains("indexer catch-up: no run has this figure."),
            "{page}"
        );
    }
}
