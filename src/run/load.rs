//! The load phase of a run: publisher tasks, the per-second sampler that builds the timeline, and
//! live progress on the terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checks::thresholds::format_millis;
use crate::exit::AppError;
use crate::load::engine::{self, EngineSettings, PublisherPlan, RunClock, SharedStats};
use crate::load::ledger::PublisherLedger;
use crate::load::metrics::{IntervalStats, SubjectTable};
use crate::report::TimelineRow;
use crate::scenario::Scenario;
use crate::traffic::arrival::PublisherArrivals;
use crate::traffic::poison::with_poison;
use crate::traffic::population::Population;
use crate::traffic::{build_source, Mix, Shard, SourceConfig};
use anyhow::anyhow;

/// What the load phase produced.
pub(super) struct LoadOutcome {
    pub(super) ledgers: Vec<PublisherLedger>,
    pub(super) subjects: SubjectTable,
    pub(super) cumulative: IntervalStats,
    pub(super) timeline: Vec<TimelineRow>,
    pub(super) elapsed: Duration,
    /// The wall-clock moment of second 0 (intended times are offsets from it).
    pub(super) start_wall: time::OffsetDateTime,
}

pub(super) async fn drive_load(
    scenario: &Arc<Scenario>,
    clients: &[async_nats::Client],
    run_id: &str,
    cancel: CancellationToken,
) -> Result<LoadOutcome, AppError> {
    let run_id: Arc<str> = Arc::from(run_id);
    let population = Arc::new(Population::generate(
        scenario.seed,
        scenario.tenants as usize,
        scenario.learners as usize,
    ));
    let settings = EngineSettings {
        in_flight: scenario.in_flight as usize,
        ack_timeout: scenario.ack_timeout,
        send_grace: Duration::from_secs(5).max(scenario.duration / 10),
    };
    // Build every publisher before the clock starts: a source that cannot be built is a scenario
    // error, found before any event is sent.
    let mut plans = Vec::new();
    let mut publisher_id = 0u32;
    for source in &scenario.traffic {
        let profile = Arc::new(source.profile.clone());
        let mix = Mix::new(&source.mix).map_err(|e| AppError::usage(anyhow!("{e}")))?;
        for index in 0..scenario.publishers {
            let events = build_source(SourceConfig {
                domain: source.domain,
                mix: mix.clone(),
                population: population.clone(),
                run_id: run_id.clone(),
                publisher: publisher_id,
                // Each learner belongs to one publisher of the source, so its lifecycle stays in order.
                shard: Shard::new(index, scenario.publishers),
                seed: scenario.seed,
            })
            .map_err(|e| AppError::usage(anyhow!("{} traffic: {e}", source.domain.stream())))?;
            let events = with_poison(events, source.poison, scenario.seed, publisher_id);
            plans.push(PublisherPlan {
                id: publisher_id,
                stream: source.domain.stream().to_string(),
                client: clients[publisher_id as usize % clients.len()].clone(),
                arrivals: Box::new(PublisherArrivals::new(
                    profile.clone(),
                    u64::from(index),
                    u64::from(scenario.publishers),
                )),
                source: events,
            });
            publisher_id += 1;
        }
    }

    let clock = RunClock::now();
    let mut tasks = JoinSet::new();
    let mut stats: Vec<SharedStats> = Vec::new();
    for plan in plans {
        let cell: SharedStats = Arc::default();
        stats.push(cell.clone());
        tasks.spawn(engine::run_publisher(
            plan,
            settings.clone(),
            run_id.clone(),
            clock,
            cell,
            cancel.clone(),
        ));
    }

    // Publishers stop by themselves at the end of their schedules; this bounds them regardless.
    let hard_stop =
        scenario.duration + settings.send_grace + settings.ack_timeout + Duration::from_secs(10);
    let mut sampler = Sampler::new(scenario.clone(), stats);
    let progress = Progress::new(scenario.duration);
    let mut tick =
        tokio::time::interval_at(clock.start + Duration::from_secs(1), Duration::from_secs(1));
    let mut ledgers = Vec::new();
    let mut subjects = SubjectTable::default();
    let deadline = tokio::time::sleep_until(clock.start + hard_stop);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let row = sampler.sample();
                progress.update(&row, clock.start.elapsed(), sampler.cumulative.error_count());
            }
            joined = tasks.join_next() => match joined {
                Some(Ok(done)) => {
                    subjects.merge(&done.subjects);
                    ledgers.push(done.ledger);
                }
                Some(Err(e)) => tracing::error!("a publisher task failed: {e}"),
                None => break,
            },
            _ = &mut deadline, if !cancel.is_cancelled() => {
                tracing::warn!("publishers still busy {hard_stop:?} after the start; stopping them");
                cancel.cancel();
            }
        }
    }
    let elapsed = clock.start.elapsed();
    sampler.sample();
    progress.finish();
    ledgers.sort_by_key(|l| l.publisher);
    Ok(LoadOutcome {
        ledgers,
        subjects,
        cumulative: sampler.cumulative,
        timeline: sampler.timeline,
        elapsed,
        start_wall: clock.start_wall,
    })
}

/// Collects each publisher's interval figures once a second into the timeline.
struct Sampler {
    scenario: Arc<Scenario>,
    stats: Vec<SharedStats>,
    pub(super) cumulative: IntervalStats,
    timeline: Vec<TimelineRow>,
}

impl Sampler {
    fn new(scenario: Arc<Scenario>, stats: Vec<SharedStats>) -> Self {
        Self {
            scenario,
            stats,
            cumulative: IntervalStats::default(),
            timeline: Vec::new(),
        }
    }

    fn sample(&mut self) -> TimelineRow {
        let mut interval = IntervalStats::default();
        for cell in &self.stats {
            let taken = std::mem::take(&mut *engine::lock(cell));
            interval.merge(&taken);
        }
        self.cumulative.merge(&interval);
        let second = self.timeline.len() as u64;
        let from = Duration::from_secs(second);
        let h = &interval.histograms;
        let row = TimelineRow {
            second,
            phase: self.scenario.phase_at(from),
            target: self
                .scenario
                .intended_between(from, from + Duration::from_secs(1)),
            attempted: interval.attempted,
            acked: interval.acked,
            failed: interval.failed,
            unknown: interval.unknown,
            never_sent: interval.never_sent,
            errors: interval.errors.clone(),
            p50_ms: h.latency.quantile_micros(0.5) as f64 / 1000.0,
            p99_ms: h.latency.quantile_micros(0.99) as f64 / 1000.0,
            max_ms: h.latency.max_micros() as f64 / 1000.0,
            send_delay_p99_ms: h.send_delay.quantile_micros(0.99) as f64 / 1000.0,
            // Faults, indexer lag and end-to-end latency are laid on by the verdict.
            ..TimelineRow::default()
        };
        self.timeline.push(row.clone());
        row
    }
}

/// Live progress on stderr: a bar on a terminal, a line every 10 s otherwise (CI logs).
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(duration: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(duration.as_secs().max(1));
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {pos}/{len}s {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self { bar }
    }

    fn update(&self, row: &TimelineRow, elapsed: Duration, errors: u64) {
        let message = format!(
            "{:<10} target {:>6.0}/s  acked {:>6}/s  p99 {:>9}  errors {}",
            row.phase,
            row.target,
            row.acked,
            format_millis(row.p99_ms),
            errors
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs());
                bar.set_message(message);
            }
            None if row.second % 10 == 9 => eprintln!("[{:>4}s] {message}", row.second + 1),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
