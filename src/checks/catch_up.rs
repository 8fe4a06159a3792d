//! The catch-up check: once whatever held the indexer back is over (its late start, the revert of
//! the last fault), its backlog must be worked off within the scenario's `catch_up_timeout`
//! (`[consumers]`, default 2 min), and after the load its lag must reach exactly zero within that
//! time too.
//!
//! The moment counted from (the *reference*) is the later of the indexer's start and the last fault
//! revert (its confirmation, else its request). While traffic still flows, the lag never reads
//! exactly 0 (a second's events are always on their way), so during the load the backlog counts as
//! worked off at the first lag sample no larger than one second of intended traffic; after the load
//! it must be 0. The report gives the time to zero, the lag at the reference and the catch-up rate:
//! (lag at the reference + events intended meanwhile) / time to zero.
//!
//! The time to zero has the lag sampler's resolution, one second (at least 1 s during the load);
//! the drain after the load is polled every 250 ms.
//!
//! Lag samples come from the run (`pending + ack_pending` of the `indexer` durables, once a second);
//! this module only judges them.

use std::time::Duration;

use serde::Serialize;

/// What the run observed of the indexer, for the check.
#[derive(Debug, Clone)]
pub struct CatchUpInputs<'a> {
    /// (second since the load started, pending + unacknowledged).
    pub lag: &'a [(u64, u64)],
    /// When the indexer was started, seconds after the load began.
    pub indexer_start_s: f64,
    /// The last fault revert (label, seconds since the start), if any fault ran.
    pub last_revert: Option<(String, f64)>,
    /// When the load ended, seconds since it started.
    pub load_end_s: f64,
    /// Seconds from the end of the load to zero lag, if it got there.
    pub drained_after_s: Option<f64>,
    pub catch_up_timeout: Duration,
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpCheck {
    /// What the time is counted from: "indexer start" or "revert of kill nats2".
    pub reference: String,
    pub reference_s: f64,
    pub lag_at_reference: u64,
    /// Seconds from the reference until the backlog was worked off; `None` if it never was.
    pub time_to_zero_s: Option<f64>,
    /// Events per second worked off meanwhile.
    pub catch_up_rate: Option<f64>,
    /// Seconds from the end of the load to exactly zero lag.
    pub drained_after_s: Option<f64>,
    pub timeout_s: f64,
    pub passed: bool,
    pub detail: String,
}

/// Judges the indexer's catch-up; `intended(from_s, to_s)` gives the events the scenario intended
/// in that span.
pub fn judge(input: &CatchUpInputs<'_>, intended: impl Fn(f64, f64) -> f64) -> CatchUpCheck {
    let (reference, reference_s) = match &input.last_revert {
        Some((label, at)) if *at > input.indexer_start_s => (format!("revert of {label}"), *at),
        _ => ("indexer start".to_string(), input.indexer_start_s),
    };
    // Sample `s` is taken at the end of second `s`: the backlog at the reference is the last sample
    // taken by then.
    let lag_at_reference = input
        .lag
        .iter()
        .rfind(|(s, _)| (*s as f64 + 1.0) <= reference_s)
        .or_else(|| input.lag.first())
        .map_or(0, |(_, lag)| *lag);
    let during_load = input.lag.iter().find(|(second, lag)| {
        let (from, to) = (*second as f64, *second as f64 + 1.0);
        from >= reference_s.floor()
            && to <= input.load_end_s.ceil()
            && (*lag as f64) <= intended(from, to).max(1.0)
    });
    let time_to_zero_s = match during_load {
        Some((second, _)) => Some((*second as f64 + 1.0 - reference_s).max(0.0)),
        None => input
            .drained_after_s
            .map(|after| (input.load_end_s + after - reference_s).max(0.0)),
    };
    let catch_up_rate = time_to_zero_s.filter(|t| *t > 0.0).map(|t| {
        let arrived = intended(reference_s, (reference_s + t).min(input.load_end_s));
        (lag_at_reference as f64 + arrived.max(0.0)) / t
    });
    let timeout_s = input.catch_up_timeout.as_secs_f64();
    let mut problems = Vec::new();
    match time_to_zero_s {
        Some(t) if t > timeout_s => problems.push(format!(
            "the indexer took {t:.1}s after the {reference} (at {reference_s:.1}s, lag {lag_at_reference}) to catch up, more than catch_up_timeout {timeout_s:.0}s"
        )),
        Some(_) => {}
        None => problems.push(format!(
            "the indexer never caught up after the {reference} (at {reference_s:.1}s, lag {lag_at_reference})"
        )),
    }
    match input.drained_after_s {
        Some(after) if after > timeout_s => problems.push(format!(
            "its lag reached 0 only {after:.1}s after the load, more than catch_up_timeout {timeout_s:.0}s"
        )),
        Some(_) => {}
        None => problems.push(format!(
            "its lag did not reach 0 within catch_up_timeout {timeout_s:.0}s after the load"
        )),
    }
    let passed = problems.is_empty();
    let detail = if passed {
        format!(
            "caught up {:.1}s after the {reference} (lag {lag_at_reference}, {:.0} ev/s), lag 0 {:.1}s after the load (catch_up_timeout {timeout_s:.0}s)",
            time_to_zero_s.unwrap_or_default(),
            catch_up_rate.unwrap_or_default(),
            input.drained_after_s.unwrap_or_default(),
        )
    } else {
        problems.join("; ")
    };
    CatchUpCheck {
        reference,
        reference_s,
        lag_at_reference,
        time_to_zero_s,
        catch_up_rate,
        drained_after_s: input.drained_after_s,
        timeout_s,
        passed,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 events a second; the indexer starts at 10 s and works off 400 a second.
    fn lag() -> Vec<(u64, u64)> {
        let mut samples = Vec::new();
        let mut backlog = 0i64;
        for second in 0..30u64 {
            backlog += 100;
            if second >= 10 {
                backlog = (backlog - 400).max(40);
            }
            samples.push((second, backlog as u64));
        }
        samples
    }

    fn input(lag: &[(u64, u64)], timeout: u64) -> CatchUpInputs<'_> {
        CatchUpInputs {
            lag,
            indexer_start_s: 10.0,
            last_revert: None,
            load_end_s: 30.0,
            drained_after_s: Some(0.5),
            catch_up_timeout: Duration::from_secs(timeout),
        }
    }

    #[test]
    fn a_backlog_worked_off_in_time_passes_with_its_rate() {
        let lag = lag();
        let check = judge(&input(&lag, 30), |a, b| (b - a) * 100.0);
        assert!(check.passed, "{}", check.detail);
        // 1000 behind at 10 s, -300 a second: one second of traffic left at the end of second 12.
        assert_eq!(check.lag_at_reference, 1000);
        assert_eq!(check.time_to_zero_s, Some(3.0));
        assert!((check.catch_up_rate.expect("rate") - 1300.0 / 3.0).abs() < 1.0);
    }

    #[test]
    fn too_slow_or_never_fails_with_detail() {
        let lag = lag();
        let slow = judge(&input(&lag, 2), |a, b| (b - a) * 100.0);
        assert!(!slow.passed);
        assert!(slow.detail.contains("took 3.0s"), "{}", slow.detail);
        let mut never = input(&lag, 30);
        never.drained_after_s = None;
        let never = judge(&never, |_, _| 0.0);
        assert!(!never.passed);
        assert!(never.detail.contains("did not reach 0"), "{}", never.detail);
    }

    #[test]
    fn the_last_revert_is_the_reference_when_later() {
        let lag = lag();
        let mut after_fault = input(&lag, 30);
        after_fault.last_revert = Some(("kill-indexer indexer".into(), 20.0));
        let check = judge(&after_fault, |a, b| (b - a) * 100.0);
        assert_eq!(check.reference, "revert of kill-indexer indexer");
        assert_eq!(check.time_to_zero_s, Some(1.0));
    }
}
