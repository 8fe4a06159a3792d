//! The live metrics of a running run in the Prometheus text exposition format (version 0.0.4, which
//! Prometheus, VictoriaMetrics, Grafana Agent and `promtool check metrics` read), served by `run
//! --metrics-addr` and rendered once a second by the run's sampler.
//!
//! Counters are cumulative over the run; latency is three histograms of the same family, labelled
//! `measure` (`corrected`: intended send → ack, `service_time`: send → ack, `send_delay`: intended →
//! send), with fixed buckets from 1 ms to 10 s read off the run's HdrHistograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::TimelineRow;
use crate::load::metrics::{DurationHistogram, IntervalStats};

/// Bucket bounds of the latency histograms, seconds.
const BUCKETS_S: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One subject's live counters (summed over its publishers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectCounts {
    pub attempted: u64,
    pub acked: u64,
}

/// What one scrape shows.
pub struct LiveFigures<'a> {
    pub run_id: &'a str,
    pub scenario: &'a str,
    /// Seconds of load sampled so far.
    pub elapsed_s: u64,
    /// Events the schedule intended up to now.
    pub intended: u64,
    pub cumulative: &'a IntervalStats,
    /// By (stream, subject).
    pub subjects: &'a BTreeMap<(String, String), SubjectCounts>,
    /// The last second's row: the harness's and the nodes' resources.
    pub last: Option<&'a TimelineRow>,
    pub faults_active: Option<u64>,
    pub indexer_lag: Option<u64>,
}

/// The exposition text.
pub fn render(f: &LiveFigures<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let c = f.cumulative;
    family(
        &mut out,
        "aivo_load_run_info",
        "gauge",
        "The run being measured (always 1).",
    );
    let _ = writeln!(
        out,
        "aivo_load_run_info{{run_id=\"{}\",scenario=\"{}\"}} 1",
        escape(f.run_id),
        escape(f.scenario)
    );
    gauge(
        &mut out,
        "aivo_load_elapsed_seconds",
        "Seconds of load sampled so far.",
        f.elapsed_s as f64,
    );
    for (name, help, value) in [
        (
            "aivo_load_events_intended_total",
            "Events the open-model schedule intended so far.",
            f.intended,
        ),
        (
            "aivo_load_events_attempted_total",
            "Events handed to the client.",
            c.attempted,
        ),
        (
            "aivo_load_events_acked_total",
            "Events JetStream acknowledged.",
            c.acked,
        ),
        (
            "aivo_load_events_failed_total",
            "Events refused (definite failures).",
            c.failed,
        ),
        (
            "aivo_load_events_unknown_total",
            "Events of unknown outcome (timeouts, lost connections).",
            c.unknown,
        ),
        (
            "aivo_load_events_never_sent_total",
            "Events skipped because the publisher was too far behind its schedule.",
            c.never_sent,
        ),
        (
            "aivo_load_payload_bytes_total",
            "Payload bytes handed to the client.",
            c.payload_bytes,
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "aivo_load_publish_errors_total",
        "counter",
        "Failed and unknown outcomes by kind.",
    );
    for (kind, count) in &c.errors {
        let _ = writeln!(
            out,
            "aivo_load_publish_errors_total{{kind=\"{}\"}} {count}",
            escape(kind)
        );
    }
    subject_families(&mut out, f.subjects);
    gauge(
        &mut out,
        "aivo_load_events_in_flight",
        "Events sent and still awaiting their ack.",
        c.attempted.saturating_sub(c.acked + c.failed + c.unknown) as f64,
    );
    latency_family(&mut out, c);
    if let Some(active) = f.faults_active {
        gauge(
            &mut out,
            "aivo_load_faults_active",
            "Faults applied and not yet reverted.",
            active as f64,
        );
    }
    if let Some(lag) = f.indexer_lag {
        gauge(
            &mut out,
            "aivo_load_indexer_lag_events",
            "The indexer's pending plus unacknowledged events.",
            lag as f64,
        );
    }
    if let Some(row) = f.last {
        resources(&mut out, row);
    }
    out
}

/// `# HELP` and `# TYPE` of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {}", number(value));
}

fn subject_families(out: &mut String, subjects: &BTreeMap<(String, String), SubjectCounts>) {
    for (name, help, pick) in [
        (
            "aivo_load_subject_attempted_total",
            "Events handed to the client, by stream and subject.",
            (|s: &SubjectCounts| s.attempted) as fn(&SubjectCounts) -> u64,
        ),
        (
            "aivo_load_subject_acked_total",
            "Events acknowledged, by stream and subject.",
            |s: &SubjectCounts| s.acked,
        ),
    ] {
        family(out, name, "counter", help);
        for ((stream, subject), counts) in subjects {
            let _ = writeln!(
                out,
                "{name}{{stream=\"{}\",subject=\"{}\"}} {}",
                escape(stream),
                escape(subject),
                pick(counts)
            );
        }
    }
}

fn latency_family(out: &mut String, c: &IntervalStats) {
    let name = "aivo_load_publish_latency_seconds";
    family(
        out,
        name,
        "histogram",
        "Latency of acknowledged publishes: corrected (intended send to ack, coordinated omission \
         corrected), service_time (send to ack) and send_delay (intended send to send).",
    );
    let h = &c.histograms;
    for (measure, histogram) in [
        ("corrected", &h.latency),
        ("service_time", &h.service),
        ("send_delay", &h.send_delay),
    ] {
        for (le, count) in buckets(histogram) {
            let _ = writeln!(
                out,
                "{name}_bucket{{measure=\"{measure}\",le=\"{le}\"}} {count}"
            );
        }
        let count = histogram.count();
        let _ = writeln!(
            out,
            "{name}_bucket{{measure=\"{measure}\",le=\"+Inf\"}} {count}"
        );
        let sum_s = histogram.mean_micros() * count as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{measure=\"{measure}\"}} {}", number(sum_s));
        let _ = writeln!(out, "{name}_count{{measure=\"{measure}\"}} {count}");
    }
}

/// Cumulative counts at each bucket bound.
fn buckets(histogram: &DurationHistogram) -> Vec<(String, u64)> {
    BUCKETS_S
        .iter()
        .map(|&le| {
            let micros = (le * 1e6) as u64;
            (number(le), histogram.count_at_or_below_micros(micros))
        })
        .collect()
}

fn resources(out: &mut String, row: &TimelineRow) {
    if let Some(cpu) = row.harness_cpu {
        gauge(
            out,
            "aivo_load_harness_cpu_cores",
            "Cores the harness process used in the last second.",
            cpu,
        );
    }
    if let Some(rss) = row.harness_rss_bytes {
        gauge(
            out,
            "aivo_load_harness_resident_memory_bytes",
            "Resident memory of the harness process.",
            rss as f64,
        );
    }
    if let Some(busy) = row.runtime_busy {
        gauge(
            out,
            "aivo_load_harness_runtime_busy_ratio",
            "Share of the last second the harness's async workers were busy.",
            busy,
        );
    }
    if row.nodes.is_empty() {
        return;
    }
    family(
        out,
        "aivo_load_node_up",
        "gauge",
        "1 if the node answered its last monitoring poll.",
    );
    for node in &row.nodes {
        let _ = writeln!(
            out,
            "aivo_load_node_up{{node=\"{}\"}} {}",
            escape(&node.name),
            u8::from(node.reachable)
        );
    }
    for (name, help, pick) in [
        (
            "aivo_load_node_cpu_cores",
            "Cores the node's server process used (/varz cpu / 100).",
            (|n: &super::NodeSample| n.cpu) as fn(&super::NodeSample) -> Option<f64>,
        ),
        (
            "aivo_load_node_resident_memory_bytes",
            "Resident memory of the node's server process (/varz mem).",
            |n: &super::NodeSample| n.mem_bytes.map(|v| v as f64),
        ),
        (
            "aivo_load_node_jetstream_storage_bytes",
            "File storage JetStream uses on the node (/varz jetstream.stats.storage).",
            |n: &super::NodeSample| n.js_storage_bytes.map(|v| v as f64),
        ),
    ] {
        family(out, name, "gauge", help);
        for node in &row.nodes {
            if let Some(value) = pick(node) {
                let _ = writeln!(
                    out,
                    "{name}{{node=\"{}\"}} {}",
                    escape(&node.name),
                    number(value)
                );
            }
        }
    }
}

/// A sample value: integers without a fraction, others with up to 6 decimals.
fn number(value: f64) -> String {
    if !value.is_finite() {
        return "NaN".into();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let mut stats = IntervalStats {
            attempted: 4,
            acked: 3,
            ..IntervalStats::default()
        };
        for ms in [2, 20, 200] {
            stats.histograms.latency.record(Duration::from_millis(ms));
        }
        let subjects = BTreeMap::new();
        let text = render(&LiveFigures {
            run_id: "r\"1",
            scenario: "focus-burst",
            elapsed_s: 3,
            intended: 5,
            cumulative: &stats,
            subjects: &subjects,
            last: None,
            faults_active: Some(0),
            indexer_lag: None,
        });
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} missing in\n{text}"))
                .to_string()
        };
        let bucket = |le: &str| {
            line(&format!(
                "aivo_load_publish_latency_seconds_bucket{{measure=\"corrected\",le=\"{le}\"}}"
            ))
        };
        assert!(bucket("0.001").ends_with(" 0"));
        assert!(bucket("0.0025").ends_with(" 1"));
        assert!(bucket("0.025").ends_with(" 2"));
        assert!(bucket("+Inf").ends_with(" 3"));
        assert_eq!(
            line("aivo_load_events_in_flight"),
            "aivo_load_events_in_flight 1"
        );
        let sum: f64 = line("aivo_load_publish_latency_seconds_sum{measure=\"corrected\"}")
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number");
        assert!((sum - 0.222).abs() < 0.01, "{sum}");
        assert!(text.contains("run_id=\"r\\\"1\""), "escaped: {text}");
        assert_eq!(number(2.50), "2.5");
        assert_eq!(number(3.0), "3");
    }
}
