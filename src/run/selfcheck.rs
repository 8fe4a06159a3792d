//! The load-generator self-check: was the harness, not the cluster, the bottleneck of a stretch of
//! the timeline? A run reports it as a warning ([`RunReport::load_generator`]); a capacity search
//! gives no cluster figure for a step it flags. Pure: it reads per-second rows and nothing else.
//!
//! The open model makes the question answerable. Each event has an intended send time; the
//! harness records how late it actually sent (send delay) apart from how long the cluster took to
//! ack (service time). The harness was the limit when any of these held over the window:
//!
//! - **its send delay grew while the cluster answered quickly** (signal `send_delay`): the median
//!   per-second send-delay p99 of the window's last third exceeds the first third's by more than
//!   [`SEND_DELAY_GROWTH_MS`], or is above [`SEND_DELAY_BEHIND_MS`] outright, and the last third's
//!   median service-time p99 is at most [`CLUSTER_FAST_SERVICE_P99_MS`]. Medians of thirds, not
//!   first and last seconds, so a one-second stall (a leader election) does not count, and a
//!   publisher pinned at its send grace (no longer growing, skipping events) still does;
//! - **events were never sent while the cluster answered quickly** (`never_sent`): a publisher
//!   more than its send grace behind skips events rather than send them late;
//! - **its CPU was at the machine's capacity** (`harness_cpu`): median cores used ≥
//!   [`SATURATION`] × the cores available to it;
//! - **its runtime's workers were saturated** (`runtime_busy`): median busy fraction ≥
//!   [`SATURATION`] (a runtime can saturate below the machine's capacity).
//!
//! Why "the cluster answered quickly" gates the first two: with a bounded in-flight window a
//! saturated cluster also makes the send delay grow (its acks slow down, the window fills), but
//! then its service time rises with it — to window ÷ cluster capacity, tens of milliseconds or more
//! at the window sizes capacity searches use. A harness whose window (or CPU) is too small for the
//! rate falls behind while each ack still comes back in a millisecond or two. So the cluster
//! answered quickly when the last third's median service-time p99 is at most
//! [`CLUSTER_FAST_SERVICE_P99_MS`], **or** when it had only a handful of publishes outstanding:
//! by Little's law it held at most acked/s × service p99 at once, and fewer than
//! [`FEW_OUTSTANDING`] cannot saturate a JetStream cluster (on a machine so loaded that every ack
//! is slow, it is still the window that bounded the rate). A send delay that grows with a slow
//! cluster that had many publishes outstanding is the cluster's finding, left to the latency
//! figures.
//!
//! [`RunReport::load_generator`]: crate::report::RunReport::load_generator

use std::ops::Range;

use crate::checks::thresholds::format_millis;
pub use crate::report::LoadGeneratorLimit;
use crate::report::TimelineRow;

/// Growth of the send delay (median p99, first third → last third) that counts as falling behind,
/// ms. A publisher that keeps up sends within a few ms of schedule (1 ms timers; tens of ms of
/// scheduler jitter on a loaded box); one short of its rate by a fraction f falls behind by f
/// seconds every second, so a 10 % shortfall passes 100 ms within about 1.5 s.
pub const SEND_DELAY_GROWTH_MS: f64 = 100.0;

/// A send delay (median p99 of the last third) that is behind whatever the trend, ms: a second
/// late for a third of the window is not keeping up.
pub const SEND_DELAY_BEHIND_MS: f64 = 1000.0;

/// The cluster "answers quickly" while the last third's median per-second service-time p99 is at
/// most this, ms. An unloaded R3 cluster acks in about 1–3 ms (loopback) or an RTT more (a LAN); a
/// saturated one behind a window of W in flight acks in W ÷ capacity (1,024 ÷ 30k/s ≈ 34 ms).
pub const CLUSTER_FAST_SERVICE_P99_MS: f64 = 20.0;

/// Publishes outstanding at once (median over the last third of acked/s × service p99, an upper
/// bound on the mean) below which the cluster was not what bounded the rate, however slow its acks.
/// A cluster reaches its capacity C only with about C × its unloaded latency outstanding (16k/s at
/// 2 ms: 32); fewer leave it idle part of the time. Chosen at 32 so that the seed's windows (4 × 256)
/// at saturation are always judged by their service time.
pub const FEW_OUTSTANDING: f64 = 32.0;

/// Fraction of capacity (cores for the CPU, worker time for the runtime) that counts as saturated.
pub const SATURATION: f64 = 0.9;

/// Fewest seconds the check judges: it needs a first and a last third.
pub const MIN_SECONDS: usize = 3;

/// Whether the harness was the bottleneck over `timeline[window]` on a machine giving it `cores`
/// (see the module header for the rules and their thresholds); `None` when it was not, or when the
/// window is shorter than [`MIN_SECONDS`].
pub fn load_generator_limit(
    timeline: &[TimelineRow],
    window: Range<usize>,
    cores: usize,
) -> Option<LoadGeneratorLimit> {
    let end = window.end.min(timeline.len());
    let rows = timeline.get(window.start.min(end)..end)?;
    if rows.len() < MIN_SECONDS {
        return None;
    }
    let third = rows.len() / 3;
    let (first, last) = (&rows[..third], &rows[rows.len() - third..]);
    let send_first = median(first.iter().map(|r| r.send_delay_p99_ms));
    let send_last = median(last.iter().map(|r| r.send_delay_p99_ms));
    // Only seconds with acks say how fast the cluster answered; none at all is not "fast".
    let service_last = median(
        last.iter()
            .filter(|r| r.acked > 0)
            .map(|r| r.service_time_p99_ms),
    );
    let outstanding_last = median(
        last.iter()
            .filter(|r| r.acked > 0)
            .map(|r| r.acked as f64 * r.service_time_p99_ms / 1000.0),
    );
    let never_sent: u64 = rows.iter().map(|r| r.never_sent).sum();
    let harness_cpu = median(rows.iter().filter_map(|r| r.harness_cpu));
    let runtime_busy = median(rows.iter().filter_map(|r| r.runtime_busy));
    let (send_first, send_last) = (send_first.unwrap_or(0.0), send_last.unwrap_or(0.0));
    let cluster_fast = service_last.is_some_and(|s| s <= CLUSTER_FAST_SERVICE_P99_MS)
        || outstanding_last.is_some_and(|n| n < FEW_OUTSTANDING);
    let service_last = service_last.unwrap_or(f64::NAN);
    let outstanding_last = outstanding_last.unwrap_or(f64::NAN);
    let answered = format!(
        "the cluster answered in {} (service time p99) with at most {outstanding_last:.0} publishes \
         outstanding",
        format_millis(service_last)
    );
    let from_s = rows[0].second;
    let to_s = rows[rows.len() - 1].second + 1;

    let mut signals = Vec::new();
    let mut reasons = Vec::new();
    let growing = send_last - send_first > SEND_DELAY_GROWTH_MS;
    if cluster_fast && (growing || send_last > SEND_DELAY_BEHIND_MS) {
        signals.push("send_delay");
        reasons.push(format!(
            "send delay p99 {} from {} (first third) to {} (last third) of seconds {from_s}–{to_s} \
             while {answered}: the publishers could not send on schedule",
            if growing { "grew" } else { "stayed behind" },
            format_millis(send_first),
            format_millis(send_last),
        ));
    }
    if cluster_fast && never_sent > 0 {
        signals.push("never_sent");
        reasons.push(format!(
            "{never_sent} events were never sent (more than the send grace behind schedule)"
        ));
    }
    let cpu_capacity = SATURATION * cores.max(1) as f64;
    if let Some(cpu) = harness_cpu.filter(|&c| c >= cpu_capacity) {
        signals.push("harness_cpu");
        reasons.push(format!(
            "the harness used {cpu:.2} of the {cores} cores available to it (median per second)"
        ));
    }
    if let Some(busy) = runtime_busy.filter(|&b| b >= SATURATION) {
        signals.push("runtime_busy");
        reasons.push(format!(
            "the harness's runtime workers were busy {:.0} % of the time (median per second)",
            busy * 100.0
        ));
    }
    if signals.is_empty() {
        return None;
    }
    let faults = rows.iter().any(|r| !r.faults.is_empty());
    Some(LoadGeneratorLimit {
        reason: reasons.join("; "),
        advice: advice(&signals, faults),
        signals: signals.into_iter().map(str::to_string).collect(),
        from_s,
        to_s,
        send_delay_p99_first_ms: send_first,
        send_delay_p99_last_ms: send_last,
        service_time_p99_last_ms: service_last,
        outstanding_last,
        never_sent,
        harness_cpu,
        cores,
        runtime_busy,
    })
}

/// What to change, for the signals that fired.
fn advice(signals: &[&str], faults: bool) -> String {
    let mut steps = Vec::new();
    if signals
        .iter()
        .any(|s| *s == "send_delay" || *s == "never_sent")
    {
        steps.push(
            "more publishers or a larger in_flight (the window, not the cluster, bounded the rate)",
        );
    }
    if faults {
        steps.push("fewer faults (acks held up by a fault keep the window full)");
    }
    if signals
        .iter()
        .any(|s| *s == "harness_cpu" || *s == "runtime_busy")
    {
        steps.push("more cores or workers for the harness (a machine of its own)");
    }
    format!("use {}", steps.join(", or "))
}

/// The median of some figures (the mean of the middle two for an even count); `None` for none.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second that kept up: 1 ms send delay, a 2 ms cluster, a tenth of a core.
    fn steady(second: u64) -> TimelineRow {
        TimelineRow {
            second,
            target: 200.0,
            attempted: 200,
            acked: 200,
            send_delay_p99_ms: 1.0,
            service_time_p99_ms: 2.0,
            harness_cpu: Some(0.1),
            runtime_busy: Some(0.05),
            ..TimelineRow::default()
        }
    }

    fn timeline(seconds: u64, shape: impl Fn(TimelineRow) -> TimelineRow) -> Vec<TimelineRow> {
        (0..seconds).map(|s| shape(steady(s))).collect()
    }

    #[test]
    fn a_harness_that_keeps_up_is_not_the_limit() {
        let rows = timeline(30, |r| r);
        assert_eq!(load_generator_limit(&rows, 0..30, 2), None);
        // Jitter and a one-second stall in the middle do not count.
        let rows = timeline(30, |mut r| {
            r.send_delay_p99_ms = if r.second == 15 {
                2500.0
            } else {
                1.0 + (r.second % 7) as f64 * 5.0
            };
            r
        });
        assert_eq!(load_generator_limit(&rows, 0..30, 2), None);
    }

    #[test]
    fn a_growing_send_delay_with_a_fast_cluster_is_the_harness() {
        // 4 in flight at 20k/s: the delay grows by ~0.8 s a second, acks still take 1.5 ms.
        let rows = timeline(10, |mut r| {
            r.send_delay_p99_ms = r.second as f64 * 800.0;
            r.service_time_p99_ms = 1.5;
            r
        });
        let limit = load_generator_limit(&rows, 0..10, 2).expect("limited");
        assert_eq!(limit.signals, vec!["send_delay"]);
        assert!(
            limit.reason.contains("send delay p99 grew"),
            "{}",
            limit.reason
        );
        assert!(limit.advice.contains("more publishers"), "{}", limit.advice);
        assert_eq!((limit.from_s, limit.to_s), (0, 10));
        // Thirds of 10 seconds are 3 seconds: medians of 0.8 s and 6.4 s.
        assert_eq!(limit.send_delay_p99_first_ms, 800.0);
        assert_eq!(limit.send_delay_p99_last_ms, 6400.0);
    }

    #[test]
    fn a_growing_send_delay_with_a_slow_cluster_is_the_cluster() {
        // A saturated cluster behind a window of 1,024: 25k acks a second, each taking 40 ms.
        let rows = timeline(12, |mut r| {
            r.send_delay_p99_ms = r.second as f64 * 300.0;
            r.acked = 25_000;
            r.service_time_p99_ms = 40.0;
            r
        });
        assert_eq!(load_generator_limit(&rows, 0..12, 2), None);
        // No acks at all in the last third is not a fast cluster either.
        let rows = timeline(12, |mut r| {
            r.send_delay_p99_ms = r.second as f64 * 300.0;
            if r.second >= 8 {
                r.acked = 0;
                r.service_time_p99_ms = 0.0;
            }
            r
        });
        assert_eq!(load_generator_limit(&rows, 0..12, 2), None);
    }

    #[test]
    fn slow_acks_with_few_outstanding_are_still_the_window() {
        // A loaded machine: 4 in flight, acks take 60 ms, 60 acked a second (≤ 3.6 outstanding).
        let rows = timeline(12, |mut r| {
            r.send_delay_p99_ms = r.second as f64 * 900.0;
            r.acked = 60;
            r.service_time_p99_ms = 60.0;
            r
        });
        let limit = load_generator_limit(&rows, 0..12, 2).expect("limited");
        assert_eq!(limit.signals, vec!["send_delay"]);
        assert!(limit.outstanding_last < 4.0, "{limit:?}");
        assert!(
            limit.reason.contains("at most 4 publishes outstanding"),
            "{}",
            limit.reason
        );
    }

    #[test]
    fn a_publisher_pinned_at_its_grace_is_behind_and_never_sends() {
        // Behind by its 5 s grace from the start: no growth, but skipping events.
        let rows = timeline(30, |mut r| {
            r.send_delay_p99_ms = 5000.0;
            r.never_sent = 100;
            r
        });
        let limit = load_generator_limit(&rows, 0..30, 2).expect("limited");
        assert_eq!(limit.signals, vec!["send_delay", "never_sent"]);
        assert_eq!(limit.never_sent, 3000);
        assert!(limit.reason.contains("stayed behind"), "{}", limit.reason);
    }

    #[test]
    fn a_saturated_cpu_or_runtime_is_the_harness() {
        let rows = timeline(9, |mut r| {
            r.harness_cpu = Some(1.85);
            r
        });
        let limit = load_generator_limit(&rows, 0..9, 2).expect("cpu");
        assert_eq!(limit.signals, vec!["harness_cpu"]);
        assert!(
            limit.advice.contains("more cores or workers"),
            "{}",
            limit.advice
        );
        // 1.85 cores of 4 is not saturation.
        assert_eq!(load_generator_limit(&rows, 0..9, 4), None);
        let rows = timeline(9, |mut r| {
            r.runtime_busy = Some(0.97);
            r
        });
        assert_eq!(
            load_generator_limit(&rows, 0..9, 8)
                .expect("runtime")
                .signals,
            vec!["runtime_busy"]
        );
    }

    #[test]
    fn faults_in_the_window_add_fewer_faults_to_the_advice() {
        let rows = timeline(9, |mut r| {
            r.send_delay_p99_ms = r.second as f64 * 500.0;
            if r.second >= 3 {
                r.faults = vec!["kill nats2".into()];
            }
            r
        });
        let limit = load_generator_limit(&rows, 0..9, 2).expect("limited");
        assert!(limit.advice.contains("fewer faults"), "{}", limit.advice);
    }

    #[test]
    fn only_the_window_is_judged_and_short_windows_are_not() {
        // Falling behind only after second 10 (the drain of a run, say) is outside 0..10.
        let rows = timeline(20, |mut r| {
            if r.second >= 10 {
                r.send_delay_p99_ms = (r.second - 9) as f64 * 1000.0;
            }
            r
        });
        assert_eq!(load_generator_limit(&rows, 0..10, 2), None);
        assert!(load_generator_limit(&rows, 8..20, 2).is_some());
        assert_eq!(load_generator_limit(&rows, 18..20, 2), None);
        assert_eq!(load_generator_limit(&rows, 25..40, 2), None);
        assert!(
            load_generator_limit(&rows, 10..99, 2).is_some(),
            "end clamped"
        );
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
        assert_eq!(median([f64::NAN].into_iter()), None);
    }
}
