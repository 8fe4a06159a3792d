//! The classic latency-by-percentile chart of `report.html` (HdrHistogram's plotters draw the
//! same): latency against percentile on a log-scaled percentile axis, so the tail (99 %, 99.9 %,
//! 99.99 % …) gets as much room as the median, for the corrected latency (intended send → ack)
//! and the service time (send → ack) side by side. The gap between the two lines is what
//! coordinated omission would have hidden.
//!
//! Drawn from the report's whole-run histograms (`histograms`, HdrHistogram V2), so it is exact
//! and a report read back from disk draws the same chart.

use std::fmt::Write as _;

use super::html::{Plot, Series, BOTTOM, HEIGHT, LEFT, TOP, WIDTH};
use super::{escape_markup as escape, RunReport};
use crate::load::metrics::DurationHistogram;

/// Points per decade of `1 / (1 - p)`.
const STEPS_PER_DECADE: usize = 4;
/// Up to 99.999 %.
const DECADES: usize = 5;

/// The percentile of the `k`-th point: `1 - 10^(-k / STEPS_PER_DECADE)`.
fn percentile_at(k: usize) -> f64 {
    1.0 - 10f64.powf(-(k as f64) / STEPS_PER_DECADE as f64)
}

/// The latency (ms) at each point, as far as the histogram holds samples to tell it (a point
/// needing more samples than the run had is left out rather than drawn as the max).
fn points(histogram: &DurationHistogram) -> Vec<Option<f64>> {
    let count = histogram.count() as f64;
    (0..=STEPS_PER_DECADE * DECADES)
        .map(|k| {
            let p = percentile_at(k);
            let needed = 1.0 / (1.0 - p).max(1e-12);
            (count > 0.0 && needed <= count)
                .then(|| (histogram.quantile_micros(p) as f64 / 1000.0).max(0.001))
        })
        .collect()
}

/// The chart, or `None` when the report has no latency histograms with samples.
pub fn chart(report: &RunReport) -> Option<String> {
    let decode = |name: &str| {
        report
            .histograms
            .get(name)
            .and_then(|text| DurationHistogram::from_base64(text).ok())
            .filter(|h| h.count() > 0)
    };
    let corrected = decode("latency")?;
    let service = decode("service_time");
    let mut series = vec![Series {
        name: "corrected".into(),
        color: "#c62828",
        points: points(&corrected),
    }];
    if let Some(service) = service {
        series.push(Series {
            name: "service".into(),
            color: "#1565c0",
            points: points(&service),
        });
    }
    let values = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().flatten().copied())
    };
    let min = values().fold(f64::INFINITY, f64::min);
    let max = values().fold(0.0_f64, f64::max);
    let lo = min.log10().floor();
    let plot = Plot {
        seconds: STEPS_PER_DECADE * DECADES + 1,
        log: true,
        lo,
        hi: max.log10().ceil().max(lo + 1.0),
        width: WIDTH - LEFT - 10.0,
        height: HEIGHT - TOP - BOTTOM,
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption>\n<svg class=\"percentile-chart\" \
         xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" font-size=\"11\" role=\"img\">\n",
        escape(
            "Latency by percentile, whole run: corrected (intended → ack) and service time \
             (sent → ack); log scales"
        )
    );
    plot.grid(&mut out, "ms");
    for decade in 0..=DECADES {
        let k = decade * STEPS_PER_DECADE;
        let label = match decade {
            0 => "0%".to_string(),
            d => format!("{}%", format_percent(percentile_at(k) * 100.0, d)),
        };
        let x = plot.x(k as f64);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text class=\"percentile-label\" x=\"{x:.1}\" y=\"{:.1}\" \
             text-anchor=\"middle\">{label}</text>",
            TOP + plot.height,
            HEIGHT - 6.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        plot.series_line(&mut out, (i, series.len()), s);
    }
    out.push_str("</svg></figure>\n");
    Some(out)
}

/// 90, 99, 99.9, … with as many decimals as the decade needs.
fn format_percent(value: f64, decade: usize) -> String {
    format!("{value:.*}", decade.saturating_sub(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_axis_runs_in_decades_of_the_tail_and_stops_where_samples_do() {
        assert_eq!(percentile_at(0), 0.0);
        assert!((percentile_at(4) - 0.9).abs() < 1e-12);
        assert!((percentile_at(8) - 0.99).abs() < 1e-12);
        assert_eq!(format_percent(99.9, 3), "99.9");
        assert_eq!(format_percent(99.0, 2), "99");
        let mut h = DurationHistogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = points(&h);
        // 1,000 samples tell percentiles up to 99.9 % (k = 12), not beyond.
        assert!(p[12].is_some() && p[13].is_none(), "{p:?}");
        let p99 = p[8].expect("p99");
        assert!((985.0..=995.0).contains(&p99), "{p99}");
    }
}
