//! The end of a run: figures, checks and thresholds become a [`RunReport`] with a verdict.

use std::collections::BTreeSet;
use std::time::Duration;

use time::format_description::well_known::Rfc3339 as Rfc3339Format;
use time::OffsetDateTime;

use super::load::LoadOutcome;
use super::metrics::{dlq_value, indexer_value, metric_value, tagged_value};
use crate::chaos::engine::{FaultEvent, Phase};
use crate::checks::catch_up::{self, CatchUpCheck, CatchUpInputs};
use crate::checks::dlq::DlqCheck;
use crate::checks::faults;
use crate::checks::no_loss::LedgerCheck;
use crate::checks::retention::RetentionCheck;
use crate::checks::safety;
use crate::checks::stream_count::StreamCount;
use crate::checks::thresholds::ThresholdResult;
use crate::cluster::BackendKind;
use crate::consumers::SecondLatency;
use crate::load::metrics::SubjectTable;
use crate::report::checks::{check_lines, CheckSources};
use crate::report::{
    self, Counts, IndexerReport, LatencyReport, RunIdentity, RunReport, SizeSummary, SubjectReport,
    Throughput, TimelineRow, Verdict,
};
use crate::scenario::Scenario;

/// The async-nats version the harness is built with (stated in every report).
pub const ASYNC_NATS_VERSION: &str = "0.51";

pub(super) struct ReportInputs<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) backend: BackendKind,
    pub(super) rate_scale: f64,
    pub(super) run_id: &'a str,
    pub(super) started_at: OffsetDateTime,
    pub(super) servers: Vec<String>,
    pub(super) nats_server_version: String,
    pub(super) outcome: LoadOutcome,
    pub(super) stream_checks: Vec<StreamCount>,
    pub(super) ledger_checks: Vec<LedgerCheck>,
    pub(super) retention_checks: Vec<RetentionCheck>,
    pub(super) replica_checks: Vec<crate::checks::replicas::ReplicaCheck>,
    pub(super) replica_reads: Vec<crate::checks::replica_read::ReplicaRead>,
    /// The security probes, on a production-profile cluster.
    pub(super) security: Option<crate::checks::security::SecurityCheck>,
    /// The scenario's `sync_interval` went into the configs of a cluster this run started.
    pub(super) sync_interval_applied: bool,
    pub(super) fault_events: Vec<FaultEvent>,
    pub(super) indexer: Option<IndexerReport>,
    pub(super) dlq: Option<DlqCheck>,
    /// (second, pending + unacknowledged) of the indexer.
    pub(super) indexer_lag: Vec<(u64, u64)>,
    /// End-to-end latency per second of intended time.
    pub(super) end_to_end: Vec<SecondLatency>,
    pub(super) interrupted: bool,
    /// `Running` for a checkpoint, `Recovered` for `report recover`.
    pub(super) state: crate::report::RunState,
    /// The second of load a checkpoint (or the recovered report) covers.
    pub(super) checkpoint_s: Option<u64>,
}

/// How fast the indexer recovered, from its lag samples and the intended rate of each second.
fn recovery(scenario: &Scenario, indexer: &mut IndexerReport, samples: &[(u64, u64)]) {
    let started = indexer.started_s;
    // The backlog peaks just before the indexer starts; count the sample of that second too.
    indexer.peak_lag = samples
        .iter()
        .filter(|(s, _)| (*s as f64) >= started - 1.0)
        .map(|(_, lag)| *lag)
        .max()
        .unwrap_or(0);
    let during: Vec<(u64, u64)> = samples
        .iter()
        .copied()
        .filter(|(s, _)| (*s as f64) >= started)
        .collect();
    let recovered = during.iter().find(|(second, lag)| {
        let from = Duration::from_secs(*second);
        (*lag as f64)
            <= scenario
                .intended_between(from, from + Duration::from_secs(1))
                .max(1.0)
    });
    if let Some((second, _)) = recovered {
        let seconds = (*second as f64 + 1.0 - started).max(1.0);
        let arrived = scenario.intended_between(
            Duration::from_secs_f64(started),
            Duration::from_secs_f64(started + seconds),
        );
        indexer.recovery_s = Some(seconds);
        indexer.recovery_rate = Some((indexer.peak_lag as f64 + arrived) / seconds);
    }
}

/// Names the lost events of every ledger check: subject and event id (replayed from the
/// publisher's deterministic source) and the faults active while each was being acked.
fn name_lost_events(input: &mut ReportInputs<'_>) {
    let windows = fault_windows(&input.fault_events);
    let mut checks: Vec<&mut LedgerCheck> = input.ledger_checks.iter_mut().collect();
    if let Some(indexer) = input.indexer.as_mut() {
        checks.push(&mut indexer.ledger);
    }
    let wanted: BTreeSet<(u32, u64)> = checks
        .iter()
        .flat_map(|c| c.lost_events.iter().map(|e| (e.publisher, e.seq)))
        .collect();
    let named = super::load::replay_events(input.scenario, input.run_id, &input.outcome, &wanted);
    for check in checks {
        for event in &mut check.lost_events {
            if let Some((subject, event_id)) = named.get(&(event.publisher, event.seq)) {
                event.subject = Some(subject.clone());
                event.event_id = Some(event_id.clone());
            }
            if let Some(window) = event.acked_between_s {
                event.faults_at_ack = faults_during(&windows, window);
            }
        }
    }
}

/// The catch-up check, when the run had an indexer.
fn catch_up_check(input: &ReportInputs<'_>) -> Option<CatchUpCheck> {
    let indexer = input.indexer.as_ref()?;
    let last_revert = input
        .fault_events
        .iter()
        .filter(|e| e.phase == Phase::Revert)
        .map(|e| {
            (
                format!("{} {}", e.fault, e.node),
                e.confirmed_s.unwrap_or(e.requested_s),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let scenario = input.scenario;
    Some(catch_up::judge(
        &CatchUpInputs {
            lag: &input.indexer_lag,
            indexer_start_s: indexer.started_s,
            last_revert,
            load_end_s: input.outcome.elapsed.as_secs_f64(),
            drained_after_s: indexer.catch_up_s,
            catch_up_timeout: scenario.consumers.catch_up_timeout,
        },
        |from, to| {
            scenario.intended_between(
                Duration::from_secs_f64(from.max(0.0)),
                Duration::from_secs_f64(to.max(0.0)),
            )
        },
    ))
}

/// The faults whose active window meets the seconds `[from, to)`.
fn faults_during(windows: &[(String, f64, f64)], (from, to): (u64, u64)) -> Vec<String> {
    windows
        .iter()
        .filter(|(_, start, end)| *start < to as f64 && *end > from as f64)
        .map(|(label, _, _)| label.clone())
        .collect()
}

/// Each fault as (label, active from, active until) in seconds since the start: from the moment
/// its effect was confirmed (or requested, if never confirmed) to the moment its revert was
/// requested (never, if it was not reverted).
fn fault_windows(events: &[FaultEvent]) -> Vec<(String, f64, f64)> {
    events
        .iter()
        .filter(|e| e.phase == Phase::Apply)
        .map(|apply| {
            let from = apply.confirmed_s.unwrap_or(apply.requested_s);
            let until = events
                .iter()
                .find(|e| e.phase == Phase::Revert && e.id == apply.id)
                .map_or(f64::INFINITY, |e| e.requested_s);
            (format!("{} {}", apply.fault, apply.node), from, until)
        })
        .collect()
}

pub(super) fn build_report(mut input: ReportInputs<'_>) -> RunReport {
    if let Some(indexer) = input.indexer.as_mut() {
        recovery(input.scenario, indexer, &input.indexer_lag);
    }
    name_lost_events(&mut input);
    let safety = safety::findings(
        &input.fault_events,
        &input.ledger_checks,
        &input.replica_reads,
    );
    for check in &mut input.ledger_checks {
        for event in &mut check.lost_events {
            event.lost_to = event
                .acked_between_s
                .and_then(|(from, _)| safety::lost_to(&safety, from));
        }
    }
    let catch_up = catch_up_check(&input);
    // A checkpoint, or a report recovered from one, covers the load up to it.
    let covered = (input.state != report::RunState::Finished)
        .then(|| Duration::from_secs(input.checkpoint_s.unwrap_or(0)));
    let counts = counts_of(input.scenario, &input.outcome, covered);
    let latency = latency_of(&input.outcome);
    let throughput = throughput_of(input.scenario, &input.outcome, &counts, covered);
    let subjects = subject_reports(
        input.scenario,
        &input.outcome.subjects,
        input.outcome.elapsed,
    );
    let thresholds = evaluate_thresholds(&input, &counts, &latency);
    let fault_check = faults::judge(&input.fault_events);
    let checks = check_lines(&CheckSources {
        streams: &input.stream_checks,
        ledgers: &input.ledger_checks,
        events: input.indexer.as_ref().map(|i| &i.ledger),
        retention: &input.retention_checks,
        replicas: &input.replica_checks,
        replica_reads: &input.replica_reads,
        security: input.security.as_ref(),
        dlq: input.dlq.as_ref(),
        catch_up: catch_up.as_ref(),
        faults: fault_check.as_ref(),
        thresholds: &thresholds,
    });
    let mut verdict = verdict_of(&checks, input.interrupted, input.outcome.aborted.as_deref());
    if input.state == report::RunState::Running {
        verdict.passed = false;
        verdict.failures.insert(
            0,
            format!(
                "incomplete: a checkpoint at second {} of the load; the checks run at the end",
                input.checkpoint_s.unwrap_or(0)
            ),
        );
    }
    let histograms = histograms_of(&input.outcome);
    let run = identity_of(&input);
    let timeline = with_end_to_end(
        with_indexer_lag(
            with_faults(input.outcome.timeline, &input.fault_events),
            &input.indexer_lag,
        ),
        &input.end_to_end,
    );
    let load_generator = load_generator_of(input.scenario, &timeline);
    RunReport {
        schema_version: report::SCHEMA_VERSION,
        run,
        verdict,
        counts,
        latency,
        throughput,
        timeline,
        faults: input.fault_events,
        indexer: input.indexer,
        catch_up,
        dlq: input.dlq,
        subjects,
        streams: input.stream_checks,
        ledger: input.ledger_checks,
        retention: input.retention_checks,
        thresholds,
        fault_check,
        checks,
        histograms,
        load_generator,
        stuck_replicas: Vec::new(),
        replicas: input.replica_checks,
        replica_reads: input.replica_reads,
        safety,
        security: input.security,
        disaster_recovery: None,
    }
}

/// The self-check over the seconds of the schedule (not the drain after it, where nothing is sent),
/// on the cores this process may use.
fn load_generator_of(
    scenario: &Scenario,
    timeline: &[TimelineRow],
) -> Option<super::selfcheck::LoadGeneratorLimit> {
    let seconds = scenario.duration.as_secs_f64().ceil() as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    super::selfcheck::load_generator_limit(timeline, 0..seconds, cores)
}

/// The run's counts, summed over every publisher's ledger.
fn counts_of(scenario: &Scenario, outcome: &LoadOutcome, covered: Option<Duration>) -> Counts {
    let c = &outcome.cumulative;
    let ledgers = &outcome.ledgers;
    let unknown: u64 = ledgers.iter().map(|l| l.unknown.len()).sum();
    Counts {
        // A checkpoint judges what the schedule intended up to it.
        intended: match covered {
            Some(covered) => scenario.intended_between(Duration::ZERO, covered).round() as u64,
            None => scenario.intended_total(),
        },
        attempted: ledgers.iter().map(|l| l.attempted).sum(),
        acked: ledgers.iter().map(|l| l.acked.len()).sum(),
        duplicate_acks: ledgers.iter().map(|l| l.duplicate_acks).sum(),
        failed: ledgers.iter().map(|l| l.failed.len()).sum(),
        unknown: unknown.saturating_sub(outcome.in_flight),
        never_sent: ledgers.iter().map(|l| l.never_sent).sum(),
        in_flight: outcome.in_flight,
        payload_bytes: c.payload_bytes,
        errors: c.errors.clone(),
    }
}

/// The three latencies of the whole run.
fn latency_of(outcome: &LoadOutcome) -> LatencyReport {
    let h = &outcome.cumulative.histograms;
    LatencyReport {
        corrected: h.latency.summary(),
        service_time: h.service.summary(),
        send_delay: h.send_delay.summary(),
    }
}

fn throughput_of(
    scenario: &Scenario,
    outcome: &LoadOutcome,
    counts: &Counts,
    covered: Option<Duration>,
) -> Throughput {
    let seconds = covered.unwrap_or(scenario.duration).as_secs_f64().max(1.0);
    let payload_bytes = outcome.cumulative.payload_bytes;
    Throughput {
        target_mean: counts.intended as f64 / seconds,
        achieved_mean: counts.acked as f64 / seconds,
        achieved_peak: outcome.timeline.iter().map(|r| r.acked).max().unwrap_or(0) as f64,
        mean_payload_bytes: if counts.attempted > 0 {
            payload_bytes as f64 / counts.attempted as f64
        } else {
            0.0
        },
    }
}

/// Every threshold of the scenario against the figure it names (NaN when there is none).
fn evaluate_thresholds(
    input: &ReportInputs<'_>,
    counts: &Counts,
    latency: &LatencyReport,
) -> Vec<ThresholdResult> {
    input
        .scenario
        .thresholds
        .iter()
        .map(|t| {
            let value = match &t.tag {
                None if t.metric.starts_with("indexer.") => {
                    indexer_value(&t.metric, input.indexer.as_ref())
                }
                None if t.metric.starts_with("dlq.") => dlq_value(&t.metric, input.dlq.as_ref()),
                None => metric_value(&t.metric, counts, latency),
                Some(tag) => tagged_value(&t.metric, tag, &input.outcome.subjects),
            };
            t.evaluate(value.unwrap_or(f64::NAN))
        })
        .collect()
}

/// The checks hold in every run, thresholds or not (DESIGN.md §3); an interrupted or aborted run
/// fails too.
fn verdict_of(
    checks: &[crate::report::checks::CheckLine],
    interrupted: bool,
    aborted: Option<&str>,
) -> Verdict {
    let mut failures: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.failure())
        .collect();
    if interrupted {
        failures.push("the run was interrupted before its end".into());
    }
    if let Some(reason) = aborted {
        failures.insert(0, format!("aborted: {reason}"));
    }
    Verdict {
        passed: failures.is_empty(),
        failures,
    }
}

/// The whole-run histograms (HdrHistogram V2, base64), so runs can be merged exactly.
fn histograms_of(outcome: &LoadOutcome) -> std::collections::BTreeMap<String, String> {
    let h = &outcome.cumulative.histograms;
    let mut histograms = std::collections::BTreeMap::new();
    histograms.insert("latency".to_string(), h.latency.to_base64());
    histograms.insert("service_time".to_string(), h.service.to_base64());
    histograms.insert("send_delay".to_string(), h.send_delay.to_base64());
    histograms
}

/// Which run this was: scenario, seed, versions, backend, servers, timing.
fn identity_of(input: &ReportInputs<'_>) -> RunIdentity {
    let scenario = input.scenario;
    let finished_at = OffsetDateTime::now_utc();
    RunIdentity {
        id: input.run_id.to_string(),
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        origin: scenario.origin.clone(),
        seed: scenario.seed,
        rate_scale: input.rate_scale,
        started_at: input.started_at.format(&Rfc3339Format).unwrap_or_default(),
        finished_at: finished_at.format(&Rfc3339Format).unwrap_or_default(),
        duration_s: input.outcome.elapsed.as_secs_f64(),
        backend: input.backend.name().into(),
        servers: input.servers.clone(),
        aivo_load_version: env!("CARGO_PKG_VERSION").into(),
        async_nats_version: ASYNC_NATS_VERSION.into(),
        nats_server_version: input.nats_server_version.clone(),
        publishers: scenario.publishers * scenario.traffic.len() as u32,
        in_flight_per_publisher: scenario.in_flight,
        ack_timeout_ms: scenario.ack_timeout.as_millis() as u64,
        message_id: scenario.message_id,
        sync_interval: input
            .sync_interval_applied
            .then_some(scenario.sync_interval)
            .flatten()
            .map(|s| s.to_string()),
        interrupted: input.interrupted,
        aborted: input.outcome.aborted.clone(),
        state: input.state,
        checkpoint_s: input.checkpoint_s,
        workers: None,
    }
}

/// Marks each second of the timeline with the faults active in it (from the moment a fault's
/// effect was confirmed, or requested if never confirmed, to the moment its revert was requested).
fn with_faults(mut timeline: Vec<TimelineRow>, events: &[FaultEvent]) -> Vec<TimelineRow> {
    for (label, from, until) in fault_windows(events) {
        for row in &mut timeline {
            let (start, end) = (row.second as f64, row.second as f64 + 1.0);
            if from < end && until > start {
                row.faults.push(label.clone());
            }
        }
    }
    timeline
}

/// Rates, latency and payload sizes by subject, busiest first.
fn subject_reports(
    scenario: &Scenario,
    table: &SubjectTable,
    elapsed: Duration,
) -> Vec<SubjectReport> {
    let seconds = scenario
        .duration
        .as_secs_f64()
        .min(elapsed.as_secs_f64())
        .max(1e-9);
    let mut reports: Vec<SubjectReport> = table
        .subjects
        .iter()
        .map(|s| {
            let size = |q: f64| {
                if s.sizes.is_empty() {
                    0
                } else {
                    s.sizes.value_at_quantile(q)
                }
            };
            SubjectReport {
                subject: s.subject.clone(),
                attempted: s.attempted,
                acked: s.acked,
                not_acked: s.attempted.saturating_sub(s.acked),
                acked_per_second: s.acked as f64 / seconds,
                latency: s.latency.summary(),
                size_bytes: SizeSummary {
                    min: if s.sizes.is_empty() { 0 } else { s.sizes.min() },
                    mean: s.sizes.mean(),
                    p50: size(0.5),
                    p99: size(0.99),
                    max: if s.sizes.is_empty() { 0 } else { s.sizes.max() },
                },
            }
        })
        .collect();
    reports.sort_by(|a, b| {
        b.attempted
            .cmp(&a.attempted)
            .then(a.subject.cmp(&b.subject))
    });
    reports
}

/// Puts the per-second end-to-end latency on the timeline (by the events' intended second).
fn with_end_to_end(mut timeline: Vec<TimelineRow>, seconds: &[SecondLatency]) -> Vec<TimelineRow> {
    for s in seconds {
        if let Some(row) = timeline.get_mut(s.second as usize) {
            row.end_to_end_p50_ms = Some(s.p50_ms);
            row.end_to_end_p99_ms = Some(s.p99_ms);
        }
    }
    timeline
}

/// Puts the indexer's lag samples on the timeline.
fn with_indexer_lag(mut timeline: Vec<TimelineRow>, samples: &[(u64, u64)]) -> Vec<TimelineRow> {
    for &(second, lag) in samples {
        if let Some(row) = timeline.get_mut(second as usize) {
            row.indexer_lag = Some(lag);
        }
    }
    timeline
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::thresholds::known_metrics;

    #[test]
    fn a_lost_event_is_matched_to_the_faults_active_at_its_ack() {
        let event = |id: &str, phase, requested_s, confirmed_s| FaultEvent {
            id: id.into(),
            phase,
            fault: "kill".into(),
            target: "nats2".into(),
            node: "nats2".into(),
            requested_s,
            confirmed_s,
            confirmed: confirmed_s.is_some(),
            detail: String::new(),
            note: None,
            error: None,
        };
        let windows = fault_windows(&[
            event("a", Phase::Apply, 10.0, Some(10.4)),
            event("a", Phase::Revert, 30.0, Some(31.0)),
            event("b", Phase::Apply, 40.0, None),
        ]);
        assert!(faults_during(&windows, (9, 10)).is_empty());
        assert_eq!(faults_during(&windows, (10, 11)), vec!["kill nats2"]);
        assert!(faults_during(&windows, (30, 40)).is_empty());
        // Never reverted: active to the end.
        assert_eq!(faults_during(&windows, (55, 56)).len(), 1);
    }

    #[test]
    fn every_known_metric_has_a_value() {
        let counts = Counts {
            intended: 10,
            attempted: 10,
            acked: 9,
            failed: 1,
            ..Counts::default()
        };
        let latency = LatencyReport::default();
        let back = crate::checks::no_loss::ReadBack::default();
        let indexer = IndexerReport {
            postgres: "embedded".into(),
            analytics: false,
            started_s: 0.0,
            lag_at_load_end: 0,
            catch_up_s: Some(1.5),
            catch_up_rate: None,
            peak_lag: 0,
            recovery_s: Some(2.0),
            recovery_rate: None,
            end_to_end: Default::default(),
            rows: 0,
            ledger: crate::checks::no_loss::judge("events", &[], &back, 0),
        };
        for (metric, _) in known_metrics() {
            let value = if metric.starts_with("indexer.") {
                indexer_value(&metric, Some(&indexer))
            } else if metric.starts_with("dlq.") {
                dlq_value(&metric, Some(&DlqCheck::default()))
            } else {
                metric_value(&metric, &counts, &latency)
            };
            assert!(value.is_some(), "{metric} has no value");
        }
        assert_eq!(
            indexer_value("indexer.catch_up", Some(&indexer)),
            Some(1500.0)
        );
        assert_eq!(indexer_value("indexer.recovery", None), None);
        assert_eq!(
            metric_value("publish.error_rate", &counts, &latency),
            Some(0.1)
        );
    }
}
