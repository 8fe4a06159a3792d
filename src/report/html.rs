//! `report.html`: the run on one self-contained page (DESIGN.md §6) — inline SVG charts of the
//! timeline (throughput and errors, latency, indexer lag and end-to-end latency) with fault windows
//! shaded, followed by the same tables as `summary.md`. No script, no stylesheet or font from the
//! network: the file opens from a CI artifact store or an e-mail as it is.
//!
//! The tables are not written twice: the Markdown summary is the one source, and [`markdown_to_html`]
//! turns the subset it uses (headings, paragraphs, lists, pipe tables, inline code) into HTML.

use std::fmt::Write as _;

use super::{escape_markup as escape, markdown, RunReport, TimelineRow};

// The chart geometry and helpers below are shared with `report trend`'s page (`trend/html.rs`).
pub(super) const WIDTH: f64 = 900.0;
pub(super) const HEIGHT: f64 = 220.0;
/// Room for the axis labels.
pub(super) const LEFT: f64 = 64.0;
pub(super) const BOTTOM: f64 = 24.0;
pub(super) const TOP: f64 = 10.0;

/// Renders the page.
pub fn render(report: &RunReport) -> String {
    let summary = markdown::render(report);
    // The per-second table is what the charts show; the page keeps it in timeline.csv.
    let summary = match summary.find("\n## Timeline") {
        Some(at) => &summary[..at],
        None => summary.as_str(),
    };
    let mut out = String::new();
    let verdict = report.verdict_word();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} — {verdict}</title>\n<style>{STYLE}</style></head><body>\n",
        escape(&report.run.scenario)
    );
    let body = markdown_to_html(summary);
    // Charts go right after the run's identity table, before the detail tables.
    let split = body.find("<h2>").unwrap_or(body.len());
    out.push_str(&body[..split]);
    out.push_str("<h2>Timeline</h2>\n");
    out.push_str(&charts(report));
    out.push_str(&body[split..]);
    out.push_str(
        "<p class=\"note\">Per-second figures: timeline.csv; everything: report.json.</p>\n",
    );
    out.push_str("</body></html>\n");
    out
}

pub(super) const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px}\
td.r,th.r{text-align:right}code{background:#f4f4f4;padding:0 3px}h1.fail{color:#b00}h1.pass{color:#070}\
svg{display:block;margin:.3em 0 1.2em}.note{color:#666}figcaption{font-weight:600}\
p.warning{background:#fff3cd;border-left:4px solid #e6a700;padding:.4em .8em}";

/// The three charts of the timeline.
fn charts(report: &RunReport) -> String {
    let rows = &report.timeline;
    if rows.is_empty() {
        return "<p>No timeline: the load did not run.</p>\n".to_string();
    }
    let mut faults = fault_windows(rows);
    faults.extend(lost_windows(report, rows.len()));
    let mut out = String::new();
    let rate = Chart {
        title: "Events per second: target, acked, errors (failed + unknown)",
        log: false,
        unit: "/s",
        series: vec![
            Series::of(rows, "target", "#999", |r| Some(r.target)),
            Series::of(rows, "acked", "#1565c0", |r| Some(r.acked as f64)),
            Series::of(rows, "errors", "#c62828", |r| {
                Some((r.failed + r.unknown) as f64)
            }),
        ],
    };
    out.push_str(&rate.svg(rows.len(), &faults));
    let latency = Chart {
        title: "Latency of the second's acks, intended → ack (log scale)",
        log: true,
        unit: "ms",
        series: vec![
            Series::of(rows, "p50", "#2e7d32", |r| positive(r.p50_ms)),
            Series::of(rows, "p99", "#ef6c00", |r| positive(r.p99_ms)),
            Series::of(rows, "max", "#6a1b9a", |r| positive(r.max_ms)),
        ],
    };
    out.push_str(&latency.svg(rows.len(), &faults));
    if let Some(percentiles) = super::percentiles::chart(report) {
        out.push_str(&percentiles);
    }
    if let Some(cpu) = cpu_chart(rows) {
        out.push_str(&cpu.svg(rows.len(), &faults));
    }
    if rows.iter().any(|r| r.indexer_lag.is_some()) {
        let lag = Chart {
            title: "Indexer lag (events not yet in Postgres)",
            log: false,
            unit: "",
            series: vec![Series::of(rows, "lag", "#00838f", |r| {
                r.indexer_lag.map(|l| l as f64)
            })],
        };
        out.push_str(&lag.svg(rows.len(), &faults));
        let end_to_end = Chart {
            title: "End-to-end latency, intended publish → row in Postgres, by intended second (log scale)",
            log: true,
            unit: "ms",
            series: vec![
                Series::of(rows, "p50", "#2e7d32", |r| r.end_to_end_p50_ms.and_then(positive)),
                Series::of(rows, "p99", "#ef6c00", |r| r.end_to_end_p99_ms.and_then(positive)),
            ],
        };
        out.push_str(&end_to_end.svg(rows.len(), &faults));
    }
    out
}

/// Cores used per second by the harness and by each node, when any was measured.
fn cpu_chart(rows: &[TimelineRow]) -> Option<Chart> {
    const NODE_COLORS: [&str; 5] = ["#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#795548"];
    if rows.iter().all(|r| r.harness_cpu.is_none()) {
        return None;
    }
    let mut series = vec![Series::of(rows, "harness", "#c62828", |r| r.harness_cpu)];
    let names: Vec<String> = rows
        .iter()
        .find(|r| !r.nodes.is_empty())
        .map(|r| r.nodes.iter().map(|n| n.name.clone()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        series.push(Series::of(
            rows,
            name.as_str(),
            NODE_COLORS[i % NODE_COLORS.len()],
            |r| r.nodes.iter().find(|n| n.name == *name).and_then(|n| n.cpu),
        ));
    }
    Some(Chart {
        title: "CPU per second, cores: the harness process and each node (/varz)",
        log: false,
        unit: "",
        series,
    })
}

fn positive(ms: f64) -> Option<f64> {
    (ms > 0.0).then_some(ms)
}

/// A fault active from `from` to `to` (seconds, end exclusive), or (`lost`) the acknowledged
/// writes of those seconds that a safety fault destroyed.
struct Window {
    from: usize,
    to: usize,
    label: String,
    lost: bool,
}

/// The acknowledged window each safety fault destroyed (`report.safety`), within the timeline.
fn lost_windows(report: &RunReport, seconds: usize) -> Vec<Window> {
    report
        .safety
        .iter()
        .filter_map(|f| {
            let (from, to) = f.lost_window_s?;
            let from = usize::try_from(from).ok()?.min(seconds.saturating_sub(1));
            let to = usize::try_from(to)
                .ok()?
                .clamp(from + 1, seconds.max(from + 1));
            Some(Window {
                from,
                to,
                label: format!(
                    "{} acked, then lost to {}",
                    f.lost,
                    crate::checks::safety::label(f)
                ),
                lost: true,
            })
        })
        .collect()
}

/// Consecutive seconds with the same non-empty fault list make one window.
fn fault_windows(rows: &[TimelineRow]) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if row.faults.is_empty() {
            continue;
        }
        let label = row.faults.join(", ");
        match out.last_mut() {
            Some(last) if last.to == i && last.label == label => last.to = i + 1,
            _ => out.push(Window {
                from: i,
                to: i + 1,
                label,
                lost: false,
            }),
        }
    }
    out
}

pub(super) struct Series {
    pub(super) name: String,
    pub(super) color: &'static str,
    pub(super) points: Vec<Option<f64>>,
}

impl Series {
    fn of(
        rows: &[TimelineRow],
        name: impl Into<String>,
        color: &'static str,
        value: impl Fn(&TimelineRow) -> Option<f64>,
    ) -> Self {
        Self {
            name: name.into(),
            color,
            points: rows.iter().map(value).collect(),
        }
    }
}

struct Chart {
    title: &'static str,
    log: bool,
    unit: &'static str,
    series: Vec<Series>,
}

/// Where a chart's values and seconds land on the page: the plot area and the value range.
pub(super) struct Plot {
    /// Points along x (seconds of a timeline, runs of a trend).
    pub(super) seconds: usize,
    pub(super) log: bool,
    /// The value range shown (decades on a log scale).
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) width: f64,
    pub(super) height: f64,
}

impl Plot {
    pub(super) fn x(&self, second: f64) -> f64 {
        LEFT + self.width * second / (self.seconds.max(2) - 1) as f64
    }

    pub(super) fn y(&self, value: f64) -> f64 {
        let v = if self.log { value.log10() } else { value };
        TOP + self.height * (1.0 - ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0))
    }

    /// Each fault window as a shaded band labelled with the fault; each lost window (acknowledged
    /// writes a safety fault destroyed) as a hatched purple band labelled below it.
    fn fault_windows(&self, out: &mut String, faults: &[Window]) {
        for window in faults {
            let (fill, ink, label_y) = if window.lost {
                ("#7b1fa2", "#4a148c", TOP + self.height - 4.0)
            } else {
                ("#ffcdd2", "#b71c1c", TOP + 11.0)
            };
            let (x0, x1) = (
                self.x(window.from as f64),
                self.x(window.to as f64 - 1.0)
                    .max(self.x(window.from as f64) + 2.0),
            );
            let _ = writeln!(
                out,
                "<rect class=\"{}\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" \
                 fill=\"{fill}\" opacity=\"{}\"><title>{}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{ink}\">{}</text>",
                if window.lost { "lost" } else { "fault" },
                x1 - x0,
                self.height,
                if window.lost { "0.18" } else { "0.6" },
                escape(&window.label),
                x0 + 2.0,
                label_y,
                escape(&window.label)
            );
        }
    }

    /// Horizontal grid lines with their values: every decade on a log scale, else quarters.
    pub(super) fn grid(&self, out: &mut String, unit: &str) {
        let grid: Vec<f64> = if self.log {
            (self.lo as i32..=self.hi as i32)
                .map(|e| 10f64.powi(e))
                .collect()
        } else {
            (0..=4).map(|k| self.hi * f64::from(k) / 4.0).collect()
        };
        for value in grid {
            let yy = self.y(value);
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}{}</text>",
                LEFT + self.width,
                LEFT - 4.0,
                yy + 4.0,
                axis_number(value),
                unit
            );
        }
    }

    /// About ten second labels along the bottom.
    fn time_axis(&self, out: &mut String) {
        let step = (self.seconds / 10).max(1);
        for second in (0..self.seconds).step_by(step) {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{second}s</text>",
                self.x(second as f64),
                HEIGHT - 6.0
            );
        }
    }

    /// The `i`th of `n` series as a line with its name in the legend; a gap (no value) breaks the
    /// line.
    pub(super) fn series_line(&self, out: &mut String, (i, n): (usize, usize), series: &Series) {
        let mut path = String::new();
        let mut pen_down = false;
        for (second, value) in series.points.iter().enumerate() {
            match value {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        self.x(second as f64),
                        self.y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = writeln!(
            out,
            "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>",
            path.trim_end(),
            series.color,
            LEFT + self.width - 50.0 * n.max(3) as f64 + 50.0 * i as f64,
            TOP + 11.0,
            series.color,
            escape(&series.name)
        );
    }
}

impl Chart {
    fn svg(&self, seconds: usize, faults: &[Window]) -> String {
        let plot = self.plot(seconds);
        let mut out = String::new();
        let _ = write!(
            out,
            "<figure><figcaption>{}</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
             font-size=\"11\" role=\"img\">\n",
            escape(self.title)
        );
        plot.fault_windows(&mut out, faults);
        plot.grid(&mut out, self.unit);
        plot.time_axis(&mut out);
        for (i, series) in self.series.iter().enumerate() {
            plot.series_line(&mut out, (i, self.series.len()), series);
        }
        out.push_str("</svg></figure>\n");
        out
    }

    /// The plot of `seconds` seconds: zero to a round ceiling, or whole decades on a log scale.
    fn plot(&self, seconds: usize) -> Plot {
        let values = || self.series.iter().flat_map(|s| s.points.iter().flatten());
        let max = values().copied().fold(0.0_f64, f64::max);
        let (lo, hi) = if self.log {
            let min = values().copied().fold(f64::INFINITY, f64::min);
            let lo = if min.is_finite() {
                min.log10().floor()
            } else {
                0.0
            };
            (lo, max.log10().ceil().max(lo + 1.0))
        } else {
            (0.0, nice_ceiling(max))
        };
        Plot {
            seconds,
            log: self.log,
            lo,
            hi,
            width: WIDTH - LEFT - 10.0,
            height: HEIGHT - TOP - BOTTOM,
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `max` (at least 1).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    round_ceiling(max)
}

/// 1, 2 or 5 times a power of ten, at least `max` (> 0, finite): small values too (an error rate).
pub(super) fn round_ceiling(max: f64) -> f64 {
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= max)
        .unwrap_or(10.0 * magnitude)
}

fn axis_number(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Inline Markdown: escaped text with `code` spans.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

fn cells(line: &str) -> Vec<&str> {
    let line = line.trim().trim_start_matches('|').trim_end_matches('|');
    line.split('|').map(str::trim).collect()
}

/// The Markdown subset `summary.md` uses, as HTML.
pub fn markdown_to_html(text: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(title) = line.strip_prefix("# ") {
            let class = if title.ends_with("FAIL") {
                "fail"
            } else {
                "pass"
            };
            let _ = writeln!(out, "<h1 class=\"{class}\">{}</h1>", inline(title));
        } else if let Some(title) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", inline(title));
        } else if line.starts_with('|') {
            // A header row, an alignment row, then body rows.
            let header = cells(line);
            let right: Vec<bool> = lines
                .get(i + 1)
                .map(|l| cells(l).iter().map(|c| c.ends_with(':')).collect())
                .unwrap_or_default();
            let class = |k: usize| {
                if right.get(k).copied().unwrap_or(false) {
                    " class=\"r\""
                } else {
                    ""
                }
            };
            out.push_str("<table><tr>");
            for (k, cell) in header.iter().enumerate() {
                let _ = write!(out, "<th{}>{}</th>", class(k), inline(cell));
            }
            out.push_str("</tr>\n");
            i += 2;
            while i < lines.len() && lines[i].starts_with('|') {
                out.push_str("<tr>");
                for (k, cell) in cells(lines[i]).iter().enumerate() {
                    let _ = write!(out, "<td{}>{}</td>", class(k), inline(cell));
                }
                out.push_str("</tr>\n");
                i += 1;
            }
            out.push_str("</table>\n");
            continue;
        } else if line.starts_with("- ") {
            out.push_str("<ul>\n");
            while i < lines.len() && (lines[i].starts_with("- ") || lines[i].starts_with("  ")) {
                let item = lines[i].trim_start().trim_start_matches("- ");
                let _ = writeln!(out, "<li>{}</li>", inline(item));
                i += 1;
            }
            out.push_str("</ul>\n");
            continue;
        } else if line.starts_with("WARNING:") {
            let _ = writeln!(out, "<p class=\"warning\">{}</p>", inline(line));
        } else if !line.trim().is_empty() {
            let _ = writeln!(out, "<p>{}</p>", inline(line));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_subset_becomes_html_with_text_escaped() {
        let html = markdown_to_html(
            "# run — FAIL\n\nA <b> & `x<y`\n\n| a | n |\n|---|---:|\n| `s` | 3 |\n\n- ✓ one\n- ✗ two\n",
        );
        assert!(
            html.contains("<h1 class=\"fail\">run — FAIL</h1>"),
            "{html}"
        );
        assert!(
            html.contains("<p>A &lt;b&gt; &amp; <code>x&lt;y</code></p>"),
            "{html}"
        );
        assert!(html.contains("<th>a</th><th class=\"r\">n</th>"), "{html}");
        assert!(
            html.contains("<td><code>s</code></td><td class=\"r\">3</td>"),
            "{html}"
        );
        assert!(html.contains("<li>✓ one</li>\n<li>✗ two</li>"), "{html}");
    }

    #[test]
    fn fault_seconds_merge_into_windows() {
        let row = |faults: &[&str]| TimelineRow {
            faults: faults.iter().map(|f| f.to_string()).collect(),
            ..TimelineRow::default()
        };
        let rows = [
            row(&[]),
            row(&["kill nats2"]),
            row(&["kill nats2"]),
            row(&[]),
            row(&["pause nats1"]),
        ];
        let windows: Vec<(usize, usize, String)> = fault_windows(&rows)
            .into_iter()
            .map(|w| (w.from, w.to, w.label))
            .collect();
        assert_eq!(
            windows,
            [(1, 3, "kill nats2".into()), (4, 5, "pause nats1".into())]
        );
    }

    #[test]
    fn a_cpu_chart_shows_the_harness_and_each_node_when_sampled() {
        let row = |second: u64, sampled: bool| TimelineRow {
            second,
            harness_cpu: sampled.then_some(0.4),
            nodes: if sampled {
                vec![crate::report::NodeSample {
                    name: "nats1".into(),
                    cpu: Some(0.2),
                    reachable: true,
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            ..TimelineRow::default()
        };
        let chart = cpu_chart(&[row(0, true), row(1, true)]).expect("a chart");
        let svg = chart.svg(2, &[]);
        assert!(svg.contains("CPU per second"), "{svg}");
        assert!(
            svg.contains(">harness</text>") && svg.contains(">nats1</text>"),
            "{svg}"
        );
        assert!(cpu_chart(&[row(0, false)]).is_none());
    }

    #[test]
    fn axis_ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(330.0), 500.0);
        assert_eq!(nice_ceiling(10_107.0), 20_000.0);
        assert_eq!(nice_ceiling(2000.0), 2000.0);
    }
}
