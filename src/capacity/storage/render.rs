//! The storage sizing for people: a Markdown table and an inline SVG chart (no script, offline)
//! of bytes retained per stream over the retention window, with the limits drawn.

use std::fmt::Write as _;

use super::{approx_bytes, trim_days, StorageSizing, StreamSizing};

/// The sizing as a Markdown section: a table per stream, the per-node figures, warnings, formula.
pub fn markdown(sizing: &StorageSizing) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Forecast `{}` at {} months: {:.0} learners; a node holds one replica of every stream.\n",
        sizing.forecast, sizing.horizon_months, sizing.learners_at_horizon
    );
    out.push_str(
        "| stream | R | bytes/msg | events/school day | per school day (1 replica / cluster) \
         | max_age | max_bytes | binds first | days retained | retained (1 replica) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in &sizing.streams {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1}{} | {:.0} | {} / {} | {} | {} | {} | {:.1} | {} |",
            s.stream,
            s.replicas,
            s.bytes_per_message,
            if s.measured { " (measured)" } else { "" },
            s.events_per_school_day,
            approx_bytes(s.daily_bytes),
            approx_bytes(s.daily_bytes_cluster),
            s.max_age_days
                .map_or("unlimited".to_string(), |d| format!("{}d", trim_days(d))),
            s.max_bytes.map_or("unlimited".to_string(), approx_bytes),
            s.binding.as_str(),
            s.retained_days,
            approx_bytes(s.retained_bytes),
        );
    }
    let _ = writeln!(
        out,
        "\nPer node: {} retained, {} reserved (Σ max_bytes); max_file_store needed: {} \
         (headroom {}){}.",
        approx_bytes(sizing.retained_bytes_per_node),
        approx_bytes(sizing.reserved_bytes_per_node),
        approx_bytes(sizing.node_max_file_store_needed),
        sizing.headroom,
        sizing
            .node_max_file_store
            .map_or(String::new(), |c| format!(
                "; configured: {}",
                approx_bytes(c)
            )),
    );
    if !sizing.warnings.is_empty() {
        out.push_str("\nWarnings:\n\n");
        for w in &sizing.warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    let _ = writeln!(out, "\nHow: {}", sizing.formula);
    out
}

const CHART_WIDTH: f64 = 900.0;
const CHART_HEIGHT: f64 = 360.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 330.0;
const MARGIN_TOP: f64 = 24.0;
const MARGIN_BOTTOM: f64 = 40.0;
const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// An inline SVG chart (no script): bytes retained per replica against days, one line per stream
/// rising until its binding limit flattens it, dashed `max_bytes` lines and dotted `max_age`
/// markers. Stable classes for tests and styling: `storage-chart` (the `<svg>`), `stream` (a
/// stream's line), `limit` (every limit mark, with `max-bytes` or `max-age`), `legend`.
pub fn svg(sizing: &StorageSizing) -> String {
    let streams: Vec<&StreamSizing> = sizing.streams.iter().collect();
    let x_max = streams
        .iter()
        .map(|s| s.retained_days.max(s.max_age_days.unwrap_or(0.0)))
        .fold(1.0_f64, f64::max)
        .min(400.0)
        * 1.05;
    let y_max = streams
        .iter()
        .map(|s| (s.retained_bytes.max(s.max_bytes.unwrap_or(0))) as f64)
        .fold(1.0_f64, f64::max)
        * 1.08;
    let plot_w = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let x = |days: f64| MARGIN_LEFT + days.min(x_max) / x_max * plot_w;
    let y = |bytes: f64| MARGIN_TOP + plot_h - bytes.min(y_max) / y_max * plot_h;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"storage-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" \
         width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>Storage per stream over the retention window (bytes per replica)</title>"
    );
    // Axes with five ticks each.
    let _ = write!(
        out,
        "<g class=\"axes\" stroke=\"#444\"><line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>\
         <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\"/></g>",
        l = MARGIN_LEFT,
        r = MARGIN_LEFT + plot_w,
        t = MARGIN_TOP,
        b = MARGIN_TOP + plot_h
    );
    out.push_str("<g class=\"ticks\" fill=\"#444\">");
    for days in ticks(x_max) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{days}</text>",
            x(days),
            MARGIN_TOP + plot_h + 14.0,
        );
    }
    for bytes in ticks(y_max) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            MARGIN_LEFT - 6.0,
            y(bytes) + 4.0,
            approx_bytes(bytes as u64)
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">days</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"start\">bytes per replica</text></g>",
        MARGIN_LEFT + plot_w / 2.0,
        CHART_HEIGHT - 6.0,
        MARGIN_LEFT + 4.0,
        MARGIN_TOP - 6.0
    );
    for (i, s) in streams.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let name = escape(&s.stream);
        let retained = s.retained_bytes as f64;
        if let Some(max) = s.max_bytes {
            let _ = write!(
                out,
                "<line class=\"limit max-bytes\" data-stream=\"{name}\" x1=\"{:.1}\" y1=\"{:.1}\" \
                 x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-dasharray=\"6 4\" stroke-opacity=\"0.7\"/>",
                x(0.0),
                y(max as f64),
                x(x_max),
                y(max as f64)
            );
        }
        if let Some(age) = s.max_age_days {
            // Up to the stream's level at max_age: the binding limit is the soonest, so by
            // max_age the curve is flat at what it retains.
            let at_age = retained;
            let _ = write!(
                out,
                "<line class=\"limit max-age\" data-stream=\"{name}\" x1=\"{:.1}\" y1=\"{:.1}\" \
                 x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-dasharray=\"2 3\"/>",
                x(age),
                y(0.0),
                x(age),
                y(at_age)
            );
        }
        let _ = write!(
            out,
            "<polyline class=\"stream\" data-stream=\"{name}\" data-binding=\"{}\" fill=\"none\" \
             stroke=\"{color}\" stroke-width=\"2\" points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>",
            s.binding.as_str(),
            x(0.0),
            y(0.0),
            x(s.retained_days),
            y(retained),
            x(x_max),
            y(retained)
        );
        let (lx, ly) = (
            CHART_WIDTH - MARGIN_RIGHT + 10.0,
            MARGIN_TOP + 10.0 + 18.0 * i as f64,
        );
        let _ = write!(
            out,
            "<g class=\"legend\"><line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" \
             stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{name}: {} \
             ({}, {:.1} d)</text></g>",
            lx + 16.0,
            lx + 20.0,
            ly + 4.0,
            approx_bytes(s.retained_bytes),
            s.binding.as_str(),
            s.retained_days,
        );
    }
    out.push_str("</svg>");
    out
}

/// Axis ticks from 0 to `max` at a step of 1, 2 or 5 × 10^k, about five of them.
fn ticks(max: f64) -> Vec<f64> {
    let rough = max / 5.0;
    let magnitude = 10_f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|t| *t <= max)
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{focus_only, sized};
    use super::super::SEED_MAX_FILE_STORE;
    use super::*;

    #[test]
    fn the_report_renders_a_table_and_a_chart_with_the_limits() {
        let sizing = sized(&focus_only(20_000), Some(SEED_MAX_FILE_STORE));
        let md = markdown(&sizing);
        assert!(md.contains("| FOCUS | 3 | 510.0 | 12000000 | 6.12 GB / 18.4 GB | 7d | 20.0 GB | max_bytes | 4.6 | 20.0 GB |"), "{md}");
        assert!(md.contains("max_file_store needed: 42.0 GB"), "{md}");
        assert!(md.contains("Raft WAL"));
        let chart = svg(&sizing);
        assert!(chart.starts_with("<svg class=\"storage-chart\""));
        assert!(chart.ends_with("</svg>"));
        assert_eq!(chart.matches("class=\"stream\"").count(), 5);
        // Five max_bytes lines and five max_age markers.
        assert_eq!(chart.matches("class=\"limit max-bytes\"").count(), 5);
        assert_eq!(chart.matches("class=\"limit max-age\"").count(), 5);
        assert!(chart.contains("data-stream=\"FOCUS\" data-binding=\"max_bytes\""));
        assert!(!chart.contains("NaN") && !chart.contains("inf"));
        // Ticks fall on round values: days up to 90 × 1.05 by 20, bytes up to 20 GB × 1.08 by 5 GB.
        assert_eq!(ticks(94.5), [0.0, 20.0, 40.0, 60.0, 80.0]);
        assert!(chart.contains(">80</text>") && chart.contains(">20.0 GB</text>"));
        assert_eq!(ticks(7.35), [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(ticks(21.6e9), [0.0, 5e9, 10e9, 15e9, 20e9]);
    }
}
