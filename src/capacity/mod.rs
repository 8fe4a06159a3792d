//! `aivo-load capacity [SCENARIO]`: how many events per second this cluster sustains within a
//! latency SLO, what saturates first, how throughput scales with publishers, and how much disk each
//! stream needs.
//!
//! One session (`run::session`: the cluster started or attached once, streams declared, the indexer
//! beside it with `--indexer`) runs every measurement:
//!
//! 1. **search** (`search.rs`): constant-rate steps of the scenario's mix, each a warm-up then a
//!    measured window judged by `step.rs`; stepping up until a step breaks, then bisection;
//! 2. **scalability**: throughput at overload for several publisher counts, fitted to the Universal
//!    Scalability Law (`usl.rs`);
//! 3. **report** (`report.rs`, `html.rs`): `capacity.json`, `capacity.md`, `capacity.html` and a
//!    ready-made `sustainable.toml` (the scenario at the sustainable rate with the SLO as a
//!    threshold, to confirm it with `aivo-load run`), in `reports/<UTC>-capacity/`.

pub mod forecast;
pub mod html;
pub mod output;
pub mod plan;
pub mod report;
pub mod search;
pub mod step;
pub mod storage;
pub mod usl;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tokio_util::sync::CancellationToken;

use crate::consumers::read_lag;
use crate::exit::{AppError, ExitStatus};
use crate::load::metrics::SubjectTable;
use crate::run::session::{LoadSession, StepOutcome};
use crate::scenario::Scenario;
use crate::traffic::arrival::RateProfile;
pub use plan::CapacityPlan;
use report::{Measurements, ScalingPoint};
use search::{Outcome, Search};
use step::{Criteria, SideFigures, StepReport};

/// Runs the capacity review; exit 0 with a cluster figure, 1 when none could be given (the harness
/// was the limit, or even the first rate broke).
pub async fn execute(plan: CapacityPlan) -> Result<ExitStatus, AppError> {
    let started_at = time::OffsetDateTime::now_utc();
    let id = format!("{}-capacity", crate::run::compact_utc(started_at));
    let dir = plan.reports_dir.join(&id);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the report directory {}", dir.display()))
        .map_err(AppError::environment)?;
    let cancel = CancellationToken::new();
    let signals = crate::run::watch_signals(cancel.clone());
    eprintln!(
        "aivo-load capacity: {} — SLO {}, error budget {:.3} %",
        plan.scenario.name,
        plan.slo.text,
        plan.error_budget * 100.0
    );
    let Some(session) = LoadSession::open(&plan.cluster, &plan.scenario, &dir, &cancel).await?
    else {
        return Ok(ExitStatus::Interrupted);
    };
    // A second Ctrl-C stops at once: no report (capacity has no faults to revert).
    let report = tokio::select! {
        measured = measure(&plan, &session, &id, &cancel) => match measured {
            Ok(m) => Ok(output::build(&plan, &session, &id, started_at, m).await),
            Err(e) => Err(e),
        },
        _ = signals.stop_now.cancelled() => {
            session.close().await;
            return Ok(ExitStatus::Interrupted);
        }
    };
    session.close().await;
    let report = report?;
    output::write_to(&report, &dir, &plan)
        .with_context(|| format!("cannot write the capacity report into {}", dir.display()))
        .map_err(AppError::environment)?;
    print!("{}", report.terminal(&dir.display().to_string()));
    if signals.interrupted() {
        return Ok(ExitStatus::Interrupted);
    }
    Ok(if report.result.sustainable_rate.is_some() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

async fn measure(
    plan: &CapacityPlan,
    session: &LoadSession,
    id: &str,
    cancel: &CancellationToken,
) -> Result<Measurements, AppError> {
    let mut search = Search::new(plan.search).map_err(|e| AppError::usage(anyhow!(e)))?;
    let mut criteria = Criteria {
        slo: plan.slo.clone(),
        error_budget: plan.error_budget,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        baseline_service_p50_ms: None,
    };
    // The cluster's answer at light load, which tells a harness-side backlog from a cluster-side
    // one: a short step at a quarter of the start rate (at most 200/s).
    let light = (plan.search.start / 4.0).clamp(1.0, 200.0);
    let mut subjects = SubjectTable::default();
    let baseline = measure_step(
        plan,
        session,
        &format!("{id}-s00"),
        "baseline",
        light,
        plan.scenario.publishers,
        &criteria,
        cancel,
        &mut subjects,
    )
    .await?;
    eprintln!("{}", report::step_line(&baseline));
    let light_service = &baseline.service_time;
    criteria.baseline_service_p50_ms = (light_service.count > 0).then_some(light_service.p50);
    let mut steps = vec![baseline];
    while let Some(rate) = search.next_rate() {
        if cancel.is_cancelled() {
            break;
        }
        let kind = match search.phase() {
            search::Phase::Bisecting => "bisect",
            _ => "step",
        };
        let report = measure_step(
            plan,
            session,
            &format!("{id}-s{:02}", steps.len()),
            kind,
            rate,
            plan.scenario.publishers,
            &criteria,
            cancel,
            &mut subjects,
        )
        .await?;
        eprintln!("{}", report::step_line(&report));
        search.record(report.verdict());
        steps.push(report);
    }
    let outcome = search.outcome();
    let mut scaling = Vec::new();
    if !matches!(outcome, Outcome::Inconclusive { .. }) {
        // Overload: four times past the knee (or the best acked rate, when a latency SLO broke
        // long before throughput did), so every publisher's window stays full.
        let best_acked = steps.iter().map(|s| s.acked_rate).fold(0.0, f64::max);
        let knee = match outcome {
            Outcome::Knee { bad, .. } | Outcome::BelowStart { bad } => bad,
            Outcome::NotSaturated { good } => good,
            Outcome::Inconclusive { at, .. } => at,
        };
        let overload = (4.0 * knee.max(best_acked)).min(plan.search.max.max(knee));
        for &publishers in &plan.concurrency {
            if cancel.is_cancelled() {
                break;
            }
            let report = measure_step(
                plan,
                session,
                &format!("{id}-c{publishers:02}"),
                "scaling",
                overload,
                publishers,
                &criteria,
                cancel,
                &mut subjects,
            )
            .await?;
            let point = ScalingPoint::from_step(&report, &plan.scenario, criteria.cores);
            eprintln!("{}", report::scaling_line(&point));
            scaling.push(point);
        }
    }
    Ok(Measurements {
        steps,
        outcome,
        scaling,
        subjects,
    })
}

/// Runs one constant-rate step and judges its measured window; the sizes of the events it sent are
/// added to `subjects` (for the storage model).
#[allow(clippy::too_many_arguments)]
async fn measure_step(
    plan: &CapacityPlan,
    session: &LoadSession,
    run_id: &str,
    kind: &'static str,
    rate: f64,
    publishers: u32,
    criteria: &Criteria,
    cancel: &CancellationToken,
    subjects: &mut SubjectTable,
) -> Result<StepReport, AppError> {
    let scenario = Arc::new(
        step_scenario(
            &plan.scenario,
            rate,
            publishers,
            plan.warmup + plan.window,
            run_id,
        )
        .map_err(|e| AppError::usage(anyhow!(e)))?,
    );
    let streams = session.stream_names();
    let lag = || async {
        if !session.has_indexer() {
            return None;
        }
        let lag = tokio::time::timeout(
            Duration::from_secs(2),
            read_lag(session.jetstream(), "indexer", &streams),
        )
        .await
        .ok()?
        .ok()?;
        Some(lag.pending() + lag.ack_pending())
    };
    let (outcome, lag_start) = tokio::join!(
        session.step(&scenario, run_id, plan.warmup, cancel.child_token()),
        async {
            tokio::time::sleep(plan.warmup).await;
            lag().await
        }
    );
    let outcome: StepOutcome = outcome?;
    let lag_end = lag().await;
    let from = plan.warmup.as_secs() as usize;
    let to = (from + plan.window.as_secs() as usize).min(outcome.timeline.len());
    let window = &outcome.timeline[from.min(to)..to];
    let side = SideFigures {
        indexer_lag: lag_start.zip(lag_end),
        in_flight_limit: u64::from(scenario.publishers)
            * scenario.traffic.len() as u64
            * u64::from(scenario.in_flight),
    };
    subjects.merge(&outcome.subjects);
    Ok(step::judge(
        kind,
        publishers,
        rate,
        &outcome.measured,
        window,
        &side,
        criteria,
    ))
}

/// The scenario's mix at `rate` events per second in all, constant, for `duration`, with no chaos
/// and no thresholds. Each traffic source keeps its share of the scenario's mean rate and its
/// arrival process.
pub fn step_scenario(
    base: &Scenario,
    rate: f64,
    publishers: u32,
    duration: Duration,
    name: &str,
) -> Result<Scenario, String> {
    let shares = plan::mix_shares(base);
    if shares.iter().sum::<f64>() <= 0.0 {
        return Err(format!("the scenario {} sends no traffic", base.name));
    }
    let mut s = base.clone();
    s.name = name.to_string();
    s.duration = duration;
    s.publishers = publishers.max(1);
    s.chaos = Default::default();
    s.thresholds.clear();
    for (source, share) in s.traffic.iter_mut().zip(&shares) {
        let process = source.profile.process();
        source.profile = RateProfile::constant(rate * share, duration)
            .map_err(|e| e.to_string())?
            .with_process(process);
    }
    Ok(s)
}
