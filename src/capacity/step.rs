//! One step of the search judged: what its measured window showed and whether the rate is
//! sustainable. A step is sustainable only if every criterion holds:
//!
//! - **latency**: the SLO's percentile of the *corrected* latency (from the intended send time) is
//!   within the SLO;
//! - **errors**: failed + unknown publishes are within the error budget;
//! - **backlog**: the publishers kept up (acked rate ≥ 97 % of the target, nothing skipped as never
//!   sent, send delay not growing from the first to the last third of the window);
//! - **indexer** (with `--indexer`): its lag (pending + unacknowledged) not growing over the window.
//!
//! Before any of these is blamed on the cluster, the step asks whether the *harness* was the limit:
//! a backlog while the cluster answered as fast as it did at the light baseline step (the
//! publishers' in-flight windows were full, or with room in them the harness sent late), or the
//! run's own self-check (`run::selfcheck`) finding the harness's CPU or runtime saturated. Then
//! the step is inconclusive and the search gives no cluster figure.

use serde::Serialize;

use super::search::StepVerdict;
use crate::load::metrics::{IntervalStats, Percentiles};
use crate::report::TimelineRow;

/// A latency objective: `p99 < 50ms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    /// The statistic's name as thresholds spell it: `p50`, `p90`, `p99`, `p99.9`, `max`.
    pub statistic: String,
    pub limit_ms: f64,
    /// The text it was given as.
    pub text: String,
}

impl Slo {
    /// Parses `p99 < 50ms` (also `p99.9<1s`, `p50 <= 5ms`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("--slo expects a percentile and a limit, like \"p99 < 50ms\", found \"{text}\"")
        };
        let (statistic, limit) = text
            .split_once("<=")
            .or_else(|| text.split_once('<'))
            .ok_or_else(bad)?;
        let statistic = statistic.trim();
        if Percentiles::default().get(statistic).is_none() || statistic == "mean" {
            return Err(format!(
                "--slo: unknown statistic \"{statistic}\" (use p50, p90, p99, p99.9 or max)"
            ));
        }
        let limit =
            crate::units::parse_duration(limit.trim()).map_err(|e| format!("--slo: {e}"))?;
        if limit.is_zero() {
            return Err(bad());
        }
        Ok(Self {
            statistic: statistic.to_string(),
            limit_ms: limit.as_secs_f64() * 1000.0,
            text: text.trim().to_string(),
        })
    }
}

/// What a step is judged against.
#[derive(Debug, Clone)]
pub struct Criteria {
    pub slo: Slo,
    /// Largest share of failed or unknown publishes (0.001 = 0.1 %).
    pub error_budget: f64,
    /// Cores the harness may use (`available_parallelism`).
    pub cores: usize,
    /// The first step's median service time, ms: the cluster answering at light load.
    pub baseline_service_p50_ms: Option<f64>,
}

/// Share of the target the acks must reach.
const TRACKING: f64 = 0.97;

/// One criterion that broke, or the harness limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Broken {
    /// `latency`, `errors`, `backlog`, `indexer`, `load-generator`.
    pub criterion: &'static str,
    pub detail: String,
}

/// The figures of a step's measured window.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// `step` or `bisect`.
    pub kind: &'static str,
    pub publishers: u32,
    pub target_rate: f64,
    pub acked_rate: f64,
    pub window_s: f64,
    pub attempted: u64,
    pub acked: u64,
    pub errors: u64,
    pub never_sent: u64,
    pub error_rate: f64,
    pub latency: Percentiles,
    pub service_time: Percentiles,
    pub send_delay: Percentiles,
    /// Mean per-second p99 send delay of the first and the last third of the window, ms.
    pub send_delay_first_ms: f64,
    pub send_delay_last_ms: f64,
    /// Indexer lag at the start and the end of the window.
    pub indexer_lag: Option<(u64, u64)>,
    /// The harness's busiest second, in cores.
    pub harness_cpu_max: Option<f64>,
    /// The busiest node's busiest second: (node, cores).
    pub node_cpu_max: Option<(String, f64)>,
    pub sustainable: bool,
    /// True when the harness, not the cluster, was the limit.
    pub load_generator_limited: bool,
    pub broken: Vec<Broken>,
}

impl StepReport {
    pub fn verdict(&self) -> StepVerdict {
        if self.load_generator_limited {
            StepVerdict::Inconclusive
        } else if self.sustainable {
            StepVerdict::Sustainable
        } else {
            StepVerdict::Saturated
        }
    }
}

/// What the caller measured beside the publishers' figures.
#[derive(Debug, Clone, Default)]
pub struct SideFigures {
    pub indexer_lag: Option<(u64, u64)>,
    /// Publishes all publishers together may have unacknowledged (publishers × in_flight).
    pub in_flight_limit: u64,
}

/// Judges a step whose measured window is `window` (rows of the step's timeline).
pub fn judge(
    kind: &'static str,
    publishers: u32,
    target_rate: f64,
    measured: &IntervalStats,
    window: &[TimelineRow],
    side: &SideFigures,
    criteria: &Criteria,
) -> StepReport {
    let window_s = window.len().max(1) as f64;
    let h = &measured.histograms;
    let latency = h.latency.summary();
    let service_time = h.service.summary();
    let errors = measured.failed + measured.unknown;
    let error_rate = if measured.attempted == 0 {
        0.0
    } else {
        errors as f64 / measured.attempted as f64
    };
    // The window's own seconds: `measured` also holds the acks that came in after the schedule.
    let acked_rate = window.iter().map(|r| r.acked).sum::<u64>() as f64 / window_s;
    let third = (window.len() / 3).max(1);
    let mean_delay = |rows: &[TimelineRow]| {
        rows.iter().map(|r| r.send_delay_p99_ms).sum::<f64>() / rows.len().max(1) as f64
    };
    let send_delay_first_ms = mean_delay(&window[..third.min(window.len())]);
    let send_delay_last_ms = mean_delay(&window[window.len().saturating_sub(third)..]);
    let harness_cpu_max = window
        .iter()
        .filter_map(|r| r.harness_cpu)
        .max_by(f64::total_cmp);
    let node_cpu_max = window
        .iter()
        .flat_map(|r| r.nodes.iter())
        .filter_map(|n| n.cpu.map(|c| (n.name.clone(), c)))
        .max_by(|a, b| a.1.total_cmp(&b.1));

    let mut broken = Vec::new();
    let measured_slo = latency
        .get(&criteria.slo.statistic)
        .unwrap_or(f64::INFINITY);
    if measured_slo > criteria.slo.limit_ms {
        broken.push(Broken {
            criterion: "latency",
            detail: format!(
                "corrected {} {:.1} ms over the SLO {}",
                criteria.slo.statistic, measured_slo, criteria.slo.text
            ),
        });
    }
    if error_rate > criteria.error_budget {
        broken.push(Broken {
            criterion: "errors",
            detail: format!(
                "{errors} errors ({:.3} %) over the budget {:.3} %",
                error_rate * 100.0,
                criteria.error_budget * 100.0
            ),
        });
    }
    let growth = send_delay_last_ms - send_delay_first_ms;
    let growth_limit = (criteria.slo.limit_ms * 0.25).max(5.0);
    let mut backlog = Vec::new();
    if acked_rate < TRACKING * target_rate {
        backlog.push(format!(
            "acked {acked_rate:.0}/s of {target_rate:.0}/s intended"
        ));
    }
    if measured.never_sent > 0 {
        backlog.push(format!("{} events never sent", measured.never_sent));
    }
    if growth > growth_limit {
        backlog.push(format!(
            "send delay grew from {send_delay_first_ms:.1} to {send_delay_last_ms:.1} ms"
        ));
    }
    if !backlog.is_empty() {
        broken.push(Broken {
            criterion: "backlog",
            detail: backlog.join(", "),
        });
    }
    if let Some((start, end)) = side.indexer_lag {
        // Growing: more than 1,000 events (OMB's backlog limit) and more than 2 % of a second's
        // target per second of the window.
        let slope = (end as f64 - start as f64) / window_s;
        if end > start + 1000 && slope > 0.02 * target_rate {
            broken.push(Broken {
                criterion: "indexer",
                detail: format!("indexer lag grew from {start} to {end} events"),
            });
        }
    }
    // Behind schedule: a backlog, or latency over the SLO made of send delay (sent late) rather
    // than of the cluster's answer.
    let send_delay = h.send_delay.summary();
    let late = broken.iter().any(|b| b.criterion == "latency")
        && send_delay.p99 > 0.5 * criteria.slo.limit_ms;
    // Little's law: the publishes in flight on average, against what the windows allow.
    let occupancy = if side.in_flight_limit == 0 {
        0.0
    } else {
        acked_rate * service_time.mean / 1000.0 / side.in_flight_limit as f64
    };
    let limited = load_generator_reason(
        criteria,
        &service_time,
        occupancy,
        !backlog.is_empty() || late,
    )
    .or_else(|| harness_busy(window, criteria.cores));
    let load_generator_limited = limited.is_some();
    if let Some(detail) = limited {
        broken.insert(
            0,
            Broken {
                criterion: "load-generator",
                detail,
            },
        );
    }
    StepReport {
        kind,
        publishers,
        target_rate,
        acked_rate,
        window_s,
        attempted: measured.attempted,
        acked: measured.acked,
        errors,
        never_sent: measured.never_sent,
        error_rate,
        latency,
        service_time,
        send_delay,
        send_delay_first_ms,
        send_delay_last_ms,
        indexer_lag: side.indexer_lag,
        harness_cpu_max,
        node_cpu_max,
        sustainable: broken.is_empty(),
        load_generator_limited,
        broken,
    }
}

/// The run's own self-check on the window, for the signals that mean the harness process itself
/// was saturated: its CPU (median second ≥ 90 % of its cores) or its runtime's workers.
fn harness_busy(window: &[TimelineRow], cores: usize) -> Option<String> {
    let limit = crate::run::selfcheck::load_generator_limit(window, 0..window.len(), cores)?;
    limit
        .signals
        .iter()
        .any(|s| s == "harness_cpu" || s == "runtime_busy")
        .then(|| format!("{}; {}", limit.reason, limit.advice))
}

/// Why the harness, not the cluster, limited a step, if it did: behind schedule while the
/// cluster answered as fast as at light load.
fn load_generator_reason(
    criteria: &Criteria,
    service_time: &Percentiles,
    occupancy: f64,
    behind: bool,
) -> Option<String> {
    // Behind schedule while the cluster answers as fast as at light load: the harness, not the
    // cluster, held the events back. Either its in-flight windows were full (Little's law: a
    // publisher sends at most in_flight / service time) or, with room in them, it sent late
    // because it did not get the CPU to send on time.
    let baseline = criteria.baseline_service_p50_ms?;
    if !(behind && service_time.count > 0 && service_time.p50 <= 2.0 * baseline + 1.0) {
        return None;
    }
    let answered = format!(
        "publishers fell behind while the cluster answered in {:.2} ms (median service time; {:.2} ms at light load)",
        service_time.p50, baseline
    );
    Some(if occupancy >= 0.8 {
        format!(
            "{answered}: the in-flight windows capped the rate ({:.0} % full); use more publishers or a larger in_flight",
            occupancy * 100.0
        )
    } else {
        format!(
            "{answered} and the in-flight windows had room ({:.0} % full): the harness sent late, short of CPU on a busy machine; run it on a quieter machine, or spread the load over more workers",
            occupancy * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn criteria() -> Criteria {
        Criteria {
            slo: Slo::parse("p99 < 50ms").expect("valid"),
            error_budget: 0.001,
            cores: 2,
            baseline_service_p50_ms: Some(1.0),
        }
    }

    /// A window of `seconds` rows, each with `acked` acks of `latency_ms` and `service_ms`.
    fn window(
        seconds: usize,
        acked: u64,
        latency_ms: u64,
        service_ms: u64,
        delay_ms: &[f64],
    ) -> (IntervalStats, Vec<TimelineRow>) {
        let mut stats = IntervalStats {
            attempted: acked * seconds as u64,
            acked: acked * seconds as u64,
            ..IntervalStats::default()
        };
        stats
            .histograms
            .latency
            .record_micros_n(latency_ms * 1000, stats.acked);
        stats
            .histograms
            .service
            .record_micros_n(service_ms * 1000, stats.acked);
        let rows = (0..seconds)
            .map(|i| TimelineRow {
                second: i as u64,
                acked,
                send_delay_p99_ms: delay_ms.get(i).copied().unwrap_or(0.0),
                ..TimelineRow::default()
            })
            .collect();
        (stats, rows)
    }

    #[test]
    fn slo_parsing() {
        let slo = Slo::parse("p99.9 <= 1s").expect("valid");
        assert_eq!((slo.statistic.as_str(), slo.limit_ms), ("p99.9", 1000.0));
        for bad in [
            "p99 50ms",
            "p42 < 5ms",
            "mean < 5ms",
            "p99 < fast",
            "p99 < 0s",
        ] {
            assert!(Slo::parse(bad).is_err(), "{bad}");
        }
        let _ = Duration::ZERO;
    }

    #[test]
    fn a_step_within_every_criterion_is_sustainable() {
        let (stats, rows) = window(9, 1000, 5, 2, &[]);
        let r = judge(
            "step",
            4,
            1000.0,
            &stats,
            &rows,
            &SideFigures::default(),
            &criteria(),
        );
        assert!(r.sustainable, "{:?}", r.broken);
        assert_eq!(r.verdict(), StepVerdict::Sustainable);
    }

    #[test]
    fn latency_over_the_slo_with_a_slow_cluster_is_saturation() {
        let (stats, rows) = window(9, 1000, 80, 60, &[]);
        let r = judge(
            "step",
            4,
            1000.0,
            &stats,
            &rows,
            &SideFigures::default(),
            &criteria(),
        );
        assert_eq!(r.verdict(), StepVerdict::Saturated);
        assert_eq!(r.broken[0].criterion, "latency");
    }

    #[test]
    fn a_growing_send_delay_with_a_fast_cluster_is_the_harness() {
        let delays = [1.0, 1.0, 1.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0];
        let (stats, rows) = window(9, 900, 30, 1, &delays);
        let r = judge(
            "step",
            1,
            1000.0,
            &stats,
            &rows,
            &SideFigures::default(),
            &criteria(),
        );
        assert_eq!(r.verdict(), StepVerdict::Inconclusive, "{:?}", r.broken);
        assert_eq!(r.broken[0].criterion, "load-generator");
        assert!(r.broken.iter().any(|b| b.criterion == "backlog"));
    }

    #[test]
    fn a_busy_harness_is_the_limit_and_errors_count_against_the_budget() {
        let (mut stats, mut rows) = window(9, 1000, 5, 2, &[]);
        for row in &mut rows {
            row.harness_cpu = Some(1.9);
        }
        let r = judge(
            "step",
            4,
            1000.0,
            &stats,
            &rows,
            &SideFigures::default(),
            &criteria(),
        );
        assert_eq!(r.verdict(), StepVerdict::Inconclusive);
        for row in &mut rows {
            row.harness_cpu = Some(0.5);
        }
        stats.failed = 100;
        let r = judge(
            "step",
            4,
            1000.0,
            &stats,
            &rows,
            &SideFigures::default(),
            &criteria(),
        );
        assert_eq!(r.verdict(), StepVerdict::Saturated);
        assert_eq!(r.broken[0].criterion, "errors");
    }

    #[test]
    fn a_growing_indexer_lag_breaks_the_step() {
        let (stats, rows) = window(9, 1000, 5, 2, &[]);
        let side = SideFigures {
            indexer_lag: Some((100, 5000)),
            ..SideFigures::default()
        };
        let r = judge("step", 4, 1000.0, &stats, &rows, &side, &criteria());
        assert_eq!(r.broken[0].criterion, "indexer");
        let side = SideFigures {
            indexer_lag: Some((100, 300)),
            ..SideFigures::default()
        };
        assert!(judge("step", 4, 1000.0, &stats, &rows, &side, &criteria()).sustainable);
    }
}
