//! The load phase of a run: publisher tasks, the per-second sampler that builds the timeline (the
//! publishers' figures, and the harness's and nodes' resources from `resources.rs`), and live
//! progress on the terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpointer, SamplerView};
use super::live::LiveHandle;
use super::resources::ResourceSampler;
use super::segment::Segment;
use super::setup::PublisherClients;
use crate::checks::thresholds::format_millis;
use crate::cluster::NodeEndpoints;
use crate::exit::AppError;
use crate::load::engine::{
    self, EngineSettings, PublisherPlan, PublisherSnapshot, RunClock, SharedStats,
};
use crate::load::ledger::PublisherLedger;
use crate::load::metrics::{IntervalStats, SubjectTable};
use crate::report::hlog::HlogWriter;
use crate::report::prometheus::{self, LiveFigures, SubjectCounts};
use crate::report::{Counts, LatencyReport, TimelineRow};
use crate::scenario::Scenario;
use crate::traffic::arrival::PublisherArrivals;
use crate::traffic::poison::with_poison;
use crate::traffic::population::Population;
use crate::traffic::{build_source, EventSource, Mix, Shard, SourceConfig};
use anyhow::anyhow;

/// What the load phase produced.
pub(super) struct LoadOutcome {
    pub(super) ledgers: Vec<PublisherLedger>,
    pub(super) subjects: SubjectTable,
    pub(super) cumulative: IntervalStats,
    /// The figures of the seconds from `measure_from` on (a capacity step's measured window, after
    /// its warm-up); the same as `cumulative` when that is zero.
    pub(super) measured: IntervalStats,
    pub(super) timeline: Vec<TimelineRow>,
    pub(super) elapsed: Duration,
    /// Set when an abort-on-fail threshold stopped the load.
    pub(super) aborted: Option<String>,
    /// Events attempted with no outcome yet when a checkpoint copied the ledgers (0 at a run's
    /// end): unknown to the ledger check, not counted as errors.
    pub(super) in_flight: u64,
    /// The wall-clock moment of second 0 (intended times are offsets from it; events'
    /// `occurred_at` = this + intended offset).
    pub(super) start_wall: time::OffsetDateTime,
}

/// What a run (not a capacity step or a bench) writes while its load goes.
#[derive(Default)]
pub(super) struct RunFiles {
    /// `latency.hlog`.
    pub(super) hlog: Option<std::path::PathBuf>,
    pub(super) checkpoints: Option<Checkpointer>,
    /// `--metrics-addr`: the text each scrape gets, rendered each second.
    pub(super) live: Option<LiveHandle>,
    /// Which slice of the scenario's publishers this run drives (`--segment`; whole by default).
    pub(super) segment: Segment,
    /// `--start-at`: second 0 is this wall-clock moment (the load waits for it), so that the
    /// intended times of every worker of a segmented run count from the same instant.
    pub(super) start_at: Option<time::OffsetDateTime>,
    /// A disaster-recovery drill: receives the run's clock and each publisher's cell once the
    /// publishers are spawned, to cut their acked sets just before it snapshots their streams.
    pub(super) drill: Option<tokio::sync::oneshot::Sender<super::drill::DrillTap>>,
}

/// Publishes the scenario's traffic through `clients` and samples it once a second, with the
/// resources of the harness and of `nodes` (those with a monitoring URL).
pub(super) async fn drive_load(
    scenario: &Arc<Scenario>,
    clients: &PublisherClients,
    nodes: &[NodeEndpoints],
    run_id: &str,
    measure_from: Duration,
    cancel: CancellationToken,
    files: RunFiles,
) -> Result<LoadOutcome, AppError> {
    let run_id: Arc<str> = Arc::from(run_id);
    let settings = EngineSettings {
        in_flight: scenario.in_flight as usize,
        ack_timeout: scenario.ack_timeout,
        send_grace: Duration::from_secs(5).max(scenario.duration / 10),
        message_id: scenario.message_id,
        run_length: scenario.duration,
    };
    // Build every publisher before the clock starts: a source that cannot be built is a scenario
    // error, found before any event is sent.
    let plans: Vec<PublisherPlan> = publisher_sources(scenario, &run_id, files.segment)?
        .into_iter()
        .map(|p| PublisherPlan {
            id: p.id,
            client: clients.for_publisher(&p.stream, p.id),
            stream: p.stream,
            arrivals: Box::new(p.arrivals),
            source: p.source,
        })
        .collect();

    // The meters start with the clock, so the first second's CPU is the first second's.
    let clock = match files.start_at {
        Some(at) => {
            let late = time::OffsetDateTime::now_utc() - at;
            if late > time::Duration::milliseconds(100) {
                // Its first events are overdue from the start: the send delay will show it.
                eprintln!(
                    "aivo-load: warning: ready {:.1} s after --start-at; this worker's first \
                     events are late (start further ahead)",
                    late.as_seconds_f64()
                );
            }
            RunClock::at(at).await
        }
        None => RunClock::now(),
    };
    let resources = ResourceSampler::start(nodes);
    let mut tasks = JoinSet::new();
    let mut stats: Vec<SharedStats> = Vec::new();
    let streams: Vec<String> = plans.iter().map(|p| p.stream.clone()).collect();
    // A segment runs some of the whole run's publishers under their own numbers: the sampler and
    // the checkpoints hold them by position.
    let ids: Vec<u32> = plans.iter().map(|p| p.id).collect();
    let position_of = |publisher: u32| ids.iter().position(|id| *id == publisher).unwrap_or(0);
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

    if let Some(tap) = files.drill {
        let publishers = ids
            .iter()
            .zip(&streams)
            .zip(&stats)
            .map(|((id, stream), cell)| (*id, stream.clone(), cell.clone()))
            .collect();
        // The drill may have ended already (its run was cancelled): nothing to tell it then.
        let _ = tap.send(super::drill::DrillTap { clock, publishers });
    }
    // Publishers stop by themselves at the end of their schedules; this bounds them regardless.
    let hard_stop =
        scenario.duration + settings.send_grace + settings.ack_timeout + Duration::from_secs(10);
    let mut sampler = Sampler::new(scenario.clone(), stats, resources, measure_from);
    sampler.hlog = files
        .hlog
        .and_then(|path| open_hlog(&path, clock.start_wall));
    sampler.start_wall = clock.start_wall;
    sampler.checkpoints = files.checkpoints;
    sampler.live = files.live.map(|handle| (handle, streams));
    let progress = Progress::new(scenario.duration);
    let mut tick =
        tokio::time::interval_at(clock.start + Duration::from_secs(1), Duration::from_secs(1));
    let mut ledgers = Vec::new();
    let mut subjects = SubjectTable::default();
    let mut aborted = None;
    let deadline = tokio::time::sleep_until(clock.start + hard_stop);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let row = sampler.sample();
                progress.update(&row, clock.start.elapsed(), sampler.cumulative.error_count());
                if aborted.is_none() {
                    aborted = sampler.abort_on_fail(clock.start.elapsed());
                    if let Some(reason) = &aborted {
                        eprintln!("aivo-load: {reason}; stopping the load");
                        cancel.cancel();
                    }
                }
            }
            joined = tasks.join_next() => match joined {
                Some(Ok(done)) => {
                    subjects.merge(&done.subjects);
                    let position = position_of(done.ledger.publisher);
                    sampler.final_subjects(position, &done.subjects);
                    if let Some(checkpoints) = sampler.checkpoints.as_mut() {
                        checkpoints.finished(
                            position,
                            PublisherSnapshot {
                                ledger: done.ledger.clone(),
                                subjects: done.subjects.clone(),
                            },
                        );
                    }
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
    // The last checkpoint holds every publisher's final ledger: a run killed during the drain or
    // the read-back can still be recovered with all of its load.
    if let Some(mut checkpoints) = sampler.checkpoints.take() {
        checkpoints.settle().await;
        checkpoints.write(sampler.view(), true);
        checkpoints.settle().await;
    }
    ledgers.sort_by_key(|l| l.publisher);
    Ok(LoadOutcome {
        ledgers,
        subjects,
        cumulative: sampler.cumulative,
        measured: sampler.measured,
        timeline: sampler.timeline,
        elapsed,
        aborted,
        in_flight: 0,
        start_wall: clock.start_wall,
    })
}

/// What [`bench_load`] measured.
#[derive(Debug, Clone, Copy)]
pub struct BenchLoad {
    pub acked: u64,
    pub never_sent: u64,
    pub elapsed: Duration,
}

/// The load phase of a run and nothing around it, for `benches/publisher.rs`: the same publishers,
/// per-second sampler, abort-on-fail check and progress as `run`, on `clients`, into streams that
/// must already exist. Not part of the harness's interface.
#[doc(hidden)]
pub async fn bench_load(
    scenario: Arc<Scenario>,
    clients: &[async_nats::Client],
    run_id: &str,
) -> Result<BenchLoad, AppError> {
    // No node endpoints: the bench measures the harness, so its nodes' `/varz` is not polled
    // (the harness's own CPU and memory still are, as in every run).
    let clients = PublisherClients::shared(clients.to_vec());
    let outcome = drive_load(
        &scenario,
        &clients,
        &[],
        run_id,
        Duration::ZERO,
        CancellationToken::new(),
        RunFiles::default(),
    )
    .await?;
    Ok(BenchLoad {
        acked: outcome.ledgers.iter().map(|l| l.acked.len()).sum(),
        never_sent: outcome.ledgers.iter().map(|l| l.never_sent).sum(),
        elapsed: outcome.elapsed,
    })
}

/// One publisher's schedule and event source, before it is given a connection.
struct PublisherSource {
    id: u32,
    stream: String,
    arrivals: PublisherArrivals,
    source: Box<dyn EventSource>,
}

/// Every publisher of a scenario, numbered as the run numbers them. Deterministic: the same scenario
/// and run id give the same events, which is what lets a checker replay a publisher.
fn publisher_sources(
    scenario: &Scenario,
    run_id: &Arc<str>,
    segment: Segment,
) -> Result<Vec<PublisherSource>, AppError> {
    let population = Arc::new(Population::generate(
        scenario.seed,
        scenario.tenants as usize,
        scenario.learners as usize,
    ));
    let mut sources = Vec::new();
    let mut publisher_id = 0u32;
    for source in &scenario.traffic {
        let profile = Arc::new(source.profile.clone());
        let mix = Mix::new(&source.mix).map_err(|e| AppError::usage(anyhow!("{e}")))?;
        for index in 0..scenario.publishers {
            if !segment.owns(index) {
                publisher_id += 1;
                continue;
            }
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
            sources.push(PublisherSource {
                id: publisher_id,
                stream: source.domain.stream().to_string(),
                arrivals: PublisherArrivals::new(
                    profile.clone(),
                    u64::from(index),
                    u64::from(scenario.publishers),
                ),
                source: events,
            });
            publisher_id += 1;
        }
    }
    Ok(sources)
}

/// How long naming the subjects of lost events may take. Replaying costs one event synthesis per
/// sequence up to the highest lost one; a run of tens of millions of events with a late loss could
/// take longer, and then the remaining subjects stay unnamed rather than holding the report up.
const REPLAY_BUDGET: Duration = Duration::from_secs(30);

/// The subject and event id of each wanted (publisher, seq), by replaying the publishers' sources
/// with the same schedule, the same skips and the same clock as the run. Only publishers with a
/// wanted sequence are replayed, only up to their highest wanted sequence.
pub(super) fn replay_events(
    scenario: &Scenario,
    run_id: &str,
    outcome: &LoadOutcome,
    wanted: &BTreeSet<(u32, u64)>,
) -> BTreeMap<(u32, u64), (String, String)> {
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return found;
    }
    let run_id: Arc<str> = Arc::from(run_id);
    // Every publisher: only those with a ledger (this run's segment) are replayed.
    let Ok(sources) = publisher_sources(scenario, &run_id, Segment::WHOLE) else {
        return found;
    };
    let started = std::time::Instant::now();
    for mut p in sources {
        let Some(last) = wanted
            .range((p.id, 0)..=(p.id, u64::MAX))
            .map(|w| w.1)
            .max()
        else {
            continue;
        };
        let Some(ledger) = outcome.ledgers.iter().find(|l| l.publisher == p.id) else {
            continue;
        };
        let mut skips = ledger.skips.iter().peekable();
        let mut seq = 0u64;
        while seq < last.min(ledger.attempted) {
            while let Some(&&(after, count)) = skips.peek() {
                if after != seq {
                    break;
                }
                for _ in 0..count {
                    p.arrivals.next();
                }
                skips.next();
            }
            let Some(offset) = p.arrivals.next() else {
                break;
            };
            seq += 1;
            let event = p.source.next_event(seq, outcome.start_wall + offset);
            if wanted.contains(&(p.id, seq)) {
                found.insert(
                    (p.id, seq),
                    (
                        event.subject.to_string(),
                        event.event_id.as_str().to_owned(),
                    ),
                );
            }
            if seq.is_multiple_of(4096) && started.elapsed() > REPLAY_BUDGET {
                tracing::warn!(
                    "naming lost events: replay budget spent at publisher {}",
                    p.id
                );
                return found;
            }
        }
    }
    found
}

/// Collects each publisher's interval figures and the resources once a second into the timeline.
struct Sampler {
    scenario: Arc<Scenario>,
    stats: Vec<SharedStats>,
    resources: ResourceSampler,
    pub(super) cumulative: IntervalStats,
    /// Intervals from `measure_from` on.
    measured: IntervalStats,
    measure_from: Duration,
    timeline: Vec<TimelineRow>,
    /// `latency.hlog`, appended each second (a run's, not a capacity step's).
    hlog: Option<HlogWriter>,
    /// A run's checkpoints (not a capacity step's).
    checkpoints: Option<Checkpointer>,
    /// The live metrics, and the stream of each publisher (by position).
    live: Option<(LiveHandle, Vec<String>)>,
    start_wall: time::OffsetDateTime,
}

/// Creates the interval log; a file that cannot be written costs the log, not the run.
fn open_hlog(path: &Path, start: time::OffsetDateTime) -> Option<HlogWriter> {
    let start = std::time::SystemTime::from(start);
    HlogWriter::create(path, start)
        .map_err(|e| tracing::warn!("cannot write {}: {e}", path.display()))
        .ok()
}

impl Sampler {
    fn new(
        scenario: Arc<Scenario>,
        stats: Vec<SharedStats>,
        resources: ResourceSampler,
        measure_from: Duration,
    ) -> Self {
        let rows =
            usize::try_from(scenario.duration.as_secs().min(2 * 24 * 3_600)).unwrap_or(0) + 120;
        Self {
            scenario,
            stats,
            resources,
            cumulative: IntervalStats::default(),
            measured: IntervalStats::default(),
            measure_from,
            // One row a second, reserved up front: a soak's timeline then grows page by page as
            // it is written, without the doubling reallocations (and their freed copies) of a
            // growing Vec.
            timeline: Vec::with_capacity(rows),
            hlog: None,
            checkpoints: None,
            live: None,
            start_wall: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// A finished publisher's last per-subject counters, for the live metrics.
    fn final_subjects(&self, index: usize, table: &SubjectTable) {
        if self.live.is_none() {
            return;
        }
        if let Some(cell) = self.stats.get(index) {
            let mut cell = engine::lock(cell);
            cell.subjects_wanted = false;
            cell.subject_counts = table
                .subjects
                .iter()
                .map(|s| engine::SubjectCount {
                    subject: s.subject.clone(),
                    attempted: s.attempted,
                    acked: s.acked,
                })
                .collect();
        }
    }

    /// Renders the live metrics text for the seconds sampled so far, with `row` the latest.
    fn publish_live(&self, row: &TimelineRow) {
        let Some((live, streams)) = &self.live else {
            return;
        };
        let mut subjects: BTreeMap<(String, String), SubjectCounts> = BTreeMap::new();
        for (cell, stream) in self.stats.iter().zip(streams) {
            let mut cell = engine::lock(cell);
            cell.subjects_wanted = true;
            for count in &cell.subject_counts {
                let entry = subjects
                    .entry((stream.clone(), count.subject.clone()))
                    .or_default();
                entry.attempted += count.attempted;
                entry.acked += count.acked;
            }
        }
        let elapsed = Duration::from_secs(row.second + 1);
        let text = prometheus::render(&LiveFigures {
            run_id: &live.run_id,
            scenario: &self.scenario.name,
            elapsed_s: elapsed.as_secs(),
            intended: self
                .scenario
                .intended_between(Duration::ZERO, elapsed)
                .round() as u64,
            cumulative: &self.cumulative,
            subjects: &subjects,
            last: Some(row),
            faults_active: Some(live.faults_active()),
            indexer_lag: live.indexer_lag(),
        });
        live.publish(text);
    }

    fn view(&self) -> SamplerView<'_> {
        SamplerView {
            cumulative: &self.cumulative,
            timeline: &self.timeline,
            start_wall: self.start_wall,
        }
    }

    /// Asks the publishers for ledger copies a second before a checkpoint is due, and writes it
    /// when it is.
    fn checkpoint(&mut self, second: u64) {
        let Some(mut checkpoints) = self.checkpoints.take() else {
            return;
        };
        if checkpoints.writes_after(second) {
            for (index, cell) in self.stats.iter().enumerate() {
                if let Some(snapshot) = engine::lock(cell).snapshot.take() {
                    checkpoints.offer(index, *snapshot);
                }
            }
            if let Some((cumulative, rows)) = checkpoints.take_asked() {
                let view = SamplerView {
                    cumulative: &cumulative,
                    timeline: &self.timeline[..rows.min(self.timeline.len())],
                    start_wall: self.start_wall,
                };
                checkpoints.write(view, false);
            }
        }
        if checkpoints.asks_after(second) {
            for cell in &self.stats {
                engine::lock(cell).snapshot_wanted = true;
            }
            checkpoints.asked(&self.cumulative, self.timeline.len());
        }
        self.checkpoints = Some(checkpoints);
    }

    /// The first abort-on-fail threshold (past its delay) that the figures so far fail.
    fn abort_on_fail(&self, elapsed: Duration) -> Option<String> {
        let c = &self.cumulative;
        let counts = Counts {
            intended: self
                .scenario
                .intended_between(Duration::ZERO, elapsed)
                .round() as u64,
            attempted: c.attempted,
            acked: c.acked,
            failed: c.failed,
            unknown: c.unknown,
            never_sent: c.never_sent,
            ..Counts::default()
        };
        let latency = LatencyReport {
            corrected: c.histograms.latency.summary(),
            service_time: c.histograms.service.summary(),
            send_delay: c.histograms.send_delay.summary(),
        };
        self.scenario
            .thresholds
            .iter()
            .filter(|t| t.abort_on_fail && elapsed >= t.delay)
            .find_map(|t| {
                let value = super::metrics::metric_value(&t.metric, &counts, &latency)?;
                let result = t.evaluate(value);
                (!result.passed).then(|| {
                    format!(
                        "threshold {} {} failed at {:.0}s (measured {}, abort_on_fail)",
                        result.metric,
                        result.expression,
                        elapsed.as_secs_f64(),
                        result.measured_text
                    )
                })
            })
    }

    fn sample(&mut self) -> TimelineRow {
        let mut interval = IntervalStats::default();
        for cell in &self.stats {
            let taken = std::mem::take(&mut engine::lock(cell).interval);
            interval.merge(&taken);
        }
        self.cumulative.merge(&interval);
        let second = self.timeline.len() as u64;
        let from = Duration::from_secs(second);
        if from >= self.measure_from {
            self.measured.merge(&interval);
        }
        let h = &interval.histograms;
        if let Some(log) = &mut self.hlog {
            let written = log.append(from, Duration::from_secs(1), h);
            if let Err(e) = written {
                tracing::warn!("latency.hlog: {e}; no more intervals are written");
                self.hlog = None;
            }
        }
        let resources = self.resources.sample();
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
            service_time_p99_ms: h.service.quantile_micros(0.99) as f64 / 1000.0,
            harness_cpu: resources.harness_cpu,
            harness_rss_bytes: resources.harness_rss_bytes,
            runtime_busy: resources.runtime_busy,
            nodes: resources.nodes,
            // Faults, indexer lag and end-to-end latency are laid on by the verdict.
            ..TimelineRow::default()
        };
        self.timeline.push(row.clone());
        self.checkpoint(second);
        self.publish_live(&row);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every event a set of publishers would send, as (publisher, seq, subject, event id, payload),
    /// synthesised offline with second 0 at `start`.
    fn events_of(
        scenario: &Scenario,
        run_id: &Arc<str>,
        segment: Segment,
        start: time::OffsetDateTime,
    ) -> Vec<(u32, u64, String, String, bytes::Bytes)> {
        let mut events = Vec::new();
        for mut p in publisher_sources(scenario, run_id, segment).expect("sources") {
            let mut seq = 0;
            for offset in p.arrivals.by_ref() {
                seq += 1;
                let event = p.source.next_event(seq, start + offset);
                events.push((
                    p.id,
                    seq,
                    event.subject.to_string(),
                    event.event_id.as_str().to_owned(),
                    event.payload,
                ));
            }
        }
        events
    }

    #[test]
    fn the_segments_together_send_exactly_the_whole_runs_events() {
        // Four domains, four publishers each, poison on: every source kind takes part.
        let scenario = crate::scenario::catalog::resolve("capacity-mix")
            .expect("built in")
            .adjusted(Some(Duration::from_secs(4)), 0.5, Some(99))
            .expect("adjusted");
        let run_id: Arc<str> = Arc::from("20261203T180000Z-capacity-mix");
        let start = time::macros::datetime!(2026-12-03 18:00:00 UTC);
        let whole = events_of(&scenario, &run_id, Segment::WHOLE, start);
        assert!(whole.len() > 1_000, "{} events", whole.len());
        let whole_set: BTreeSet<_> = whole.iter().cloned().collect();
        assert_eq!(
            whole_set.len(),
            whole.len(),
            "the whole run repeats no event"
        );
        for count in [2, 3, 4] {
            let mut union = Vec::new();
            let mut learners_seen: BTreeMap<String, u32> = BTreeMap::new();
            for index in 1..=count {
                let part = events_of(&scenario, &run_id, Segment { index, count }, start);
                assert!(!part.is_empty(), "segment {index}/{count} sends nothing");
                for event in &part {
                    // Each learner's events stay in one segment.
                    let text = std::str::from_utf8(&event.4).expect("json");
                    let value: serde_json::Value = serde_json::from_str(text).expect("json");
                    if let Some(learner) = value.pointer("/learner_id").and_then(|v| v.as_str()) {
                        let owner = learners_seen.entry(learner.to_owned()).or_insert(index);
                        assert_eq!(
                            *owner, index,
                            "learner {learner} in two segments of {count}"
                        );
                    }
                }
                union.extend(part);
            }
            let union_set: BTreeSet<_> = union.iter().cloned().collect();
            assert_eq!(union_set.len(), union.len(), "{count} segments overlap");
            assert_eq!(
                union_set, whole_set,
                "{count} segments differ from the whole run"
            );
            assert!(
                !learners_seen.is_empty(),
                "no learner found in the payloads"
            );
        }
    }
}
