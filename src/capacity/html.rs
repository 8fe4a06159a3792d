//! `capacity.html`: the capacity review on one self-contained page — inline SVG charts (corrected
//! latency percentiles against rate with the knee and the SLO marked; throughput against publishers
//! with the USL fit), then the tables of `capacity.md`. No script and nothing from the network.
//!
//! Chart elements carry class names a DOM test can look for: `latency-chart`, `scaling-chart`,
//! `knee`, `slo`, `usl-fit`, `measured`.

use std::fmt::Write as _;

use super::report::CapacityReport;
use crate::report::escape_markup as escape;
use crate::report::html::markdown_to_html;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px}\
code{background:#f4f4f4;padding:0 3px}svg{display:block;margin:.3em 0 1.2em}\
figcaption{font-weight:600}.note{color:#666}blockquote{border-left:4px solid #c60;margin:0;padding:0 1em}";

/// Renders the page.
pub fn render(report: &CapacityReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>capacity — {}</title>\n<style>{STYLE}</style></head><body>\n",
        escape(&report.run.scenario)
    );
    let body = markdown_to_html(&report.markdown());
    let split = body.find("<h2>").unwrap_or(body.len());
    out.push_str(&body[..split]);
    out.push_str("<h2>Charts</h2>\n");
    out.push_str(&latency_chart(report));
    out.push_str(&scaling_chart(report));
    out.push_str("<figure><figcaption>Storage per stream over the retention window (one replica)</figcaption>");
    out.push_str(&super::storage::svg(&report.storage));
    out.push_str("</figure>\n");
    out.push_str(&body[split..]);
    out.push_str("<p class=\"note\">Everything: capacity.json.</p>\n</body></html>\n");
    out
}

/// A plot area with linear or logarithmic axes.
struct Plot {
    x: (f64, f64),
    y: (f64, f64),
    log_x: bool,
}

impl Plot {
    fn px(&self, x: f64) -> f64 {
        let (lo, hi) = self.x;
        let t = if self.log_x {
            (x.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln()).max(1e-9)
        } else {
            (x - lo) / (hi - lo).max(1e-9)
        };
        LEFT + t * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let (lo, hi) = self.y;
        let t = (y - lo) / (hi - lo).max(1e-9);
        HEIGHT - BOTTOM - t.clamp(0.0, 1.05) * (HEIGHT - TOP - BOTTOM)
    }

    /// The frame, ticks and axis titles.
    fn axes(&self, out: &mut String, x_title: &str, y_title: &str, x_ticks: &[f64]) {
        let _ = write!(
            out,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
            WIDTH - LEFT - RIGHT,
            HEIGHT - TOP - BOTTOM
        );
        for &x in x_ticks {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                self.px(x),
                HEIGHT - BOTTOM + 14.0,
                number(x)
            );
        }
        for i in 0..=4 {
            let y = self.y.0 + (self.y.1 - self.y.0) * f64::from(i) / 4.0;
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                self.py(y) + 4.0,
                number(y)
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
             <text x=\"14\" y=\"{:.1}\" font-size=\"12\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT - 4.0,
            escape(x_title),
            HEIGHT / 2.0,
            HEIGHT / 2.0,
            escape(y_title)
        );
    }

    fn polyline(&self, points: &[(f64, f64)], class: &str, colour: &str, dash: &str) -> String {
        let coords: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        format!(
            "<polyline class=\"{class}\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>",
            coords.join(" ")
        )
    }

    fn dots(&self, points: &[(f64, f64)], class: &str, colour: &str) -> String {
        points
            .iter()
            .map(|&(x, y)| {
                format!(
                    "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"/>",
                    self.px(x),
                    self.py(y)
                )
            })
            .collect()
    }
}

fn open_svg(class: &str, caption: &str) -> String {
    format!(
        "<figure><figcaption>{}</figcaption><svg class=\"{class}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">",
        escape(caption)
    )
}

/// Corrected p50/p99/p99.9 against the target rate, log x; the SLO line and the knee.
fn latency_chart(report: &CapacityReport) -> String {
    let mut steps: Vec<_> = report
        .steps
        .iter()
        .filter(|s| s.latency.count > 0)
        .collect();
    steps.sort_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    let mut out = open_svg(
        "latency-chart",
        "Corrected latency against rate (log scale)",
    );
    let slo_ms = report
        .steps
        .first()
        .map_or(0.0, |_| slo_limit(&report.run.slo));
    let max_rate = steps.last().map_or(1000.0, |s| s.target_rate).max(1.0);
    let min_rate = steps.first().map_or(100.0, |s| s.target_rate).max(1.0);
    // Latency beyond a few times the SLO is off the chart (clamped at the top).
    let top = steps
        .iter()
        .map(|s| s.latency.p999)
        .fold(slo_ms * 1.5, f64::max)
        .min((slo_ms * 4.0).max(1.0));
    let plot = Plot {
        x: (min_rate / 1.2, max_rate * 1.2),
        y: (0.0, top.max(1.0)),
        log_x: true,
    };
    let ticks: Vec<f64> = steps.iter().map(|s| s.target_rate).collect();
    plot.axes(&mut out, "target events/s", "corrected latency, ms", &ticks);
    for (label, colour, pick) in [
        ("p50", "#1f77b4", 0usize),
        ("p99", "#d62728", 1),
        ("p99.9", "#9467bd", 2),
    ] {
        let points: Vec<(f64, f64)> = steps
            .iter()
            .map(|s| {
                let v = [s.latency.p50, s.latency.p99, s.latency.p999][pick];
                (s.target_rate, v)
            })
            .collect();
        out.push_str(&plot.polyline(&points, &format!("measured {label}"), colour, ""));
        out.push_str(&plot.dots(&points, "measured", colour));
    }
    if slo_ms > 0.0 {
        let y = plot.py(slo_ms);
        let _ = write!(
            out,
            "<line class=\"slo\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#2ca02c\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#2ca02c\">SLO {}</text>",
            WIDTH - RIGHT,
            WIDTH - RIGHT - 4.0,
            y - 4.0,
            escape(&report.run.slo)
        );
    }
    if let Some(knee) = report.result.knee_rate {
        let x = match report.result.sustainable_rate {
            Some(good) => plot.px((good * knee).sqrt()),
            None => plot.px(knee),
        };
        let _ = write!(
            out,
            "<line class=\"knee\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>\
             <text class=\"knee\" x=\"{:.1}\" y=\"{}\" font-size=\"11\" fill=\"#ff7f0e\">knee</text>",
            HEIGHT - BOTTOM,
            x + 4.0,
            TOP + 12.0
        );
    }
    out.push_str(
        "<text x=\"80\" y=\"28\" font-size=\"11\"><tspan fill=\"#1f77b4\">p50</tspan> <tspan fill=\"#d62728\">p99</tspan> <tspan fill=\"#9467bd\">p99.9</tspan></text>",
    );
    out.push_str("</svg></figure>\n");
    out
}

/// Throughput at overload against publishers, with the fitted USL curve.
fn scaling_chart(report: &CapacityReport) -> String {
    let points: Vec<(f64, f64)> = report
        .scaling
        .points
        .iter()
        .map(|p| (f64::from(p.publishers), p.acked_rate))
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let mut out = open_svg(
        "scaling-chart",
        "Throughput at overload against publishers, with the USL fit",
    );
    let max_n = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let mut top = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let fitted: Vec<(f64, f64)> = report.scaling.fit.map_or_else(Vec::new, |fit| {
        (0..=60)
            .map(|i| {
                let n = 1.0 + (max_n * 1.25 - 1.0) * f64::from(i) / 60.0;
                (n, fit.throughput(n))
            })
            .collect()
    });
    top = fitted.iter().map(|p| p.1).fold(top, f64::max) * 1.1;
    let plot = Plot {
        x: (0.0, max_n * 1.3),
        y: (0.0, top),
        log_x: false,
    };
    let ticks: Vec<f64> = points.iter().map(|p| p.0).collect();
    plot.axes(&mut out, "publishers", "acked events/s", &ticks);
    if !fitted.is_empty() {
        out.push_str(&plot.polyline(&fitted, "usl-fit", "#ff7f0e", "5 3"));
    }
    out.push_str(&plot.dots(&points, "measured", "#1f77b4"));
    out.push_str("</svg></figure>\n");
    out
}

/// The limit of an SLO text ("p99 < 50ms" → 50.0), 0 when unreadable.
fn slo_limit(text: &str) -> f64 {
    super::step::Slo::parse(text).map_or(0.0, |s| s.limit_ms)
}

fn number(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
