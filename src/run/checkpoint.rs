//! Checkpoints: every `--checkpoint` interval (60 s by default) a run writes what it has measured
//! so far into its run dir, so a run that is OOM-killed, SIGKILLed by a CI timeout or lost with its
//! runner leaves a readable report and enough to finish it with `report recover`.
//!
//! Two things are written, each atomically (temporary file, fsync, rename):
//! - the report files (`report.json` with `run.state = "running"`, `summary.md`, `report.html`,
//!   `timeline.csv`, `junit.xml`) from the figures so far, with the verdict "incomplete";
//! - `checkpoint.json`, the run's state ([`CheckpointState`]): where each stream stood before the
//!   load, every publisher's ledger, the counters and whole-run histograms, and the timeline.
//!
//! The per-second latency histograms are already on disk in `latency.hlog`, appended each second.
//!
//! **Cost.** A checkpoint asks each publisher for a copy of its ledger (range sets: they follow the
//! gaps, not the events) the next time it takes its stats lock; the copies are collected one second
//! later and the files are rendered and written on a blocking thread, one checkpoint at a time. In
//! between, a publisher pays one branch per lock. The state grows with the run's seconds (timeline
//! rows, ledger ack-clock marks), never with its events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::load::LoadOutcome;
use super::verdict::{build_report, ReportInputs};
use crate::checks::streams::StreamWindow;
use crate::cluster::BackendKind;
use crate::load::engine::PublisherSnapshot;
use crate::load::ledger::PublisherLedger;
use crate::load::metrics::{DurationHistogram, IntervalStats, SubjectTable};
use crate::report::{self, RunState, TimelineRow};
use crate::scenario::Scenario;
use crate::topology::StreamPosition;

/// The state file in a run dir.
pub const STATE_FILE: &str = "checkpoint.json";
/// Bumped when [`CheckpointState`] changes meaning.
const STATE_VERSION: u32 = 1;

/// How a run's scenario was chosen on the command line, so `report recover` can rebuild the same
/// scenario (the same events, the same schedule) from it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioSource {
    /// A catalog name or a path, as given to `run`.
    pub name_or_path: String,
    /// `--duration`, seconds.
    pub duration_s: Option<f64>,
    pub rate_scale: f64,
    /// `--seed`.
    pub seed: Option<u64>,
}

impl ScenarioSource {
    /// The scenario as the run had it.
    pub fn resolve(&self) -> Result<Scenario, String> {
        let scenario = crate::scenario::catalog::resolve(&self.name_or_path)
            .map_err(|e| format!("scenario {}: {e}", self.name_or_path))?;
        scenario.adjusted(
            self.duration_s.map(Duration::from_secs_f64),
            self.rate_scale,
            self.seed,
        )
    }
}

/// Where a stream stood before the load, as written in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowState {
    pub stream: String,
    pub before_last_seq: u64,
    pub before_first_seq: u64,
    pub before_messages: u64,
    /// The stream had a `max_age` (see `StreamWindow::expiring`).
    pub expiring: bool,
}

impl WindowState {
    fn of(window: &StreamWindow) -> Self {
        Self {
            stream: window.stream.to_string(),
            before_last_seq: window.before.last_seq,
            before_first_seq: window.before.first_seq,
            before_messages: window.before.messages,
            expiring: window.expiring,
        }
    }

    /// The window again, with the stream's name from the scenario's traffic (`None`: the scenario
    /// no longer writes that stream).
    pub fn window(&self, scenario: &Scenario) -> Option<StreamWindow> {
        let stream = scenario
            .traffic
            .iter()
            .map(|t| t.domain.stream())
            .find(|s| *s == self.stream)?;
        Some(StreamWindow {
            stream,
            before: StreamPosition {
                last_seq: self.before_last_seq,
                messages: self.before_messages,
                first_seq: self.before_first_seq,
            },
            expiring: self.expiring,
        })
    }
}

/// The counters of the load so far (the histograms travel beside them, base64).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CountsState {
    pub attempted: u64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    pub never_sent: u64,
    pub payload_bytes: u64,
    pub errors: BTreeMap<String, u64>,
}

/// `checkpoint.json`: what `report recover` needs to finish a dead run's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    pub version: u32,
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    pub source: ScenarioSource,
    pub backend: String,
    pub servers: Vec<String>,
    pub nats_server_version: String,
    pub windows: Vec<WindowState>,
    /// Seconds of load covered (timeline rows).
    pub load_s: u64,
    /// True for the checkpoint written when the load ended (every publisher's final ledger).
    pub load_finished: bool,
    /// The wall-clock moment of second 0, RFC 3339 (events' `occurred_at` count from it).
    pub start_wall: String,
    pub ledgers: Vec<PublisherLedger>,
    pub counts: CountsState,
    /// `latency`, `service_time`, `send_delay`: HdrHistogram V2, base64.
    pub histograms: BTreeMap<String, String>,
    pub timeline: Vec<TimelineRow>,
}

impl CheckpointState {
    /// Reads `run_dir/checkpoint.json`.
    pub fn read(run_dir: &Path) -> Result<Self, String> {
        let path = run_dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {}: {e} (a run writes it every --checkpoint interval, 60 s by \
                 default; a run that died before its first checkpoint left nothing to recover)",
                path.display()
            )
        })?;
        let state: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a checkpoint ({e})", path.display()))?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "{}: checkpoint version {} (this aivo-load reads version {STATE_VERSION})",
                path.display(),
                state.version
            ));
        }
        Ok(state)
    }

    /// The load's figures as the checkpoint had them, for a report. Events in flight at the
    /// checkpoint (attempted, no outcome yet) count as unknown, as when a run is cancelled.
    pub(super) fn outcome(&self) -> Result<LoadOutcome, String> {
        let histogram = |name: &str| match self.histograms.get(name) {
            Some(text) => DurationHistogram::from_base64(text).map_err(|e| format!("{name}: {e}")),
            None => Ok(DurationHistogram::new()),
        };
        let mut cumulative = IntervalStats {
            attempted: self.counts.attempted,
            acked: self.counts.acked,
            failed: self.counts.failed,
            unknown: self.counts.unknown,
            never_sent: self.counts.never_sent,
            payload_bytes: self.counts.payload_bytes,
            errors: self.counts.errors.clone(),
            ..IntervalStats::default()
        };
        cumulative.histograms.latency = histogram("latency")?;
        cumulative.histograms.service = histogram("service_time")?;
        cumulative.histograms.send_delay = histogram("send_delay")?;
        let start_wall = OffsetDateTime::parse(
            &self.start_wall,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| format!("start_wall {}: {e}", self.start_wall))?;
        let (ledgers, in_flight) = settled(&self.ledgers);
        Ok(LoadOutcome {
            ledgers,
            in_flight,
            subjects: SubjectTable::default(),
            measured: cumulative.clone(),
            cumulative,
            timeline: self.timeline.clone(),
            elapsed: Duration::from_secs(self.load_s),
            aborted: None,
            start_wall,
        })
    }
}

/// The ledgers copied mid-run, with what was still in flight marked unknown (as for a cancelled
/// run: the ledger check then calls those read back "recovered"), and how many were in flight.
fn settled(ledgers: &[PublisherLedger]) -> (Vec<PublisherLedger>, u64) {
    let mut in_flight = 0;
    let settled = ledgers
        .iter()
        .map(|ledger| {
            let mut ledger = ledger.clone();
            in_flight += ledger.settle_in_flight();
            ledger
        })
        .collect();
    (settled, in_flight)
}

/// What every checkpoint of one run shares: who the run is and where it writes.
#[derive(Clone)]
pub(super) struct CheckpointContext {
    pub(super) scenario: Arc<Scenario>,
    pub(super) source: ScenarioSource,
    pub(super) run_id: String,
    pub(super) run_dir: PathBuf,
    pub(super) started_at: OffsetDateTime,
    pub(super) backend: BackendKind,
    pub(super) servers: Vec<String>,
    pub(super) nats_server_version: String,
    pub(super) windows: Vec<WindowState>,
}

/// Writes a run's checkpoints from the sampler: asks for ledger copies, collects them, writes.
pub(super) struct Checkpointer {
    context: CheckpointContext,
    every: u64,
    /// Each publisher's latest copy, by position (= publisher id).
    latest: Vec<Option<PublisherSnapshot>>,
    /// Publishers whose final ledger is in `latest` (a copy from their cell is older).
    done: Vec<bool>,
    /// The write in progress (one at a time; a checkpoint due while one is written waits a turn).
    writing: Option<tokio::task::JoinHandle<()>>,
    /// The sampler's figures when the copies were asked for (the moment the checkpoint stands
    /// for), and how many timeline rows there were then.
    asked: Option<(IntervalStats, usize)>,
}

/// What the sampler hands a checkpoint: its figures so far.
pub(super) struct SamplerView<'a> {
    pub(super) cumulative: &'a IntervalStats,
    pub(super) timeline: &'a [TimelineRow],
    pub(super) start_wall: OffsetDateTime,
}

impl Checkpointer {
    pub(super) fn new(context: CheckpointContext, every: Duration, publishers: usize) -> Self {
        Self {
            context,
            every: every.as_secs().max(1),
            latest: vec![None; publishers],
            done: vec![false; publishers],
            writing: None,
            asked: None,
        }
    }

    /// Whether the sampler should ask the publishers for copies after second `second`: one second
    /// before each checkpoint is written, so the copies are in by then. The checkpoint stands for
    /// that moment: the figures and timeline rows are kept as they were when it asked.
    pub(super) fn asks_after(&self, second: u64) -> bool {
        (second + 2).is_multiple_of(self.every)
    }

    /// Whether a checkpoint is written after second `second`.
    pub(super) fn writes_after(&self, second: u64) -> bool {
        (second + 1).is_multiple_of(self.every)
    }

    /// Remembers the figures of the moment the copies are asked for.
    pub(super) fn asked(&mut self, cumulative: &IntervalStats, rows: usize) {
        self.asked = Some((cumulative.clone(), rows));
    }

    /// The figures remembered by [`Checkpointer::asked`], once.
    pub(super) fn take_asked(&mut self) -> Option<(IntervalStats, usize)> {
        self.asked.take()
    }

    /// Takes a publisher's copy from its cell (ignored once its final ledger is in).
    pub(super) fn offer(&mut self, index: usize, snapshot: PublisherSnapshot) {
        if self.done.get(index) == Some(&false) {
            self.latest[index] = Some(snapshot);
        }
    }

    /// Takes a publisher's final ledger.
    pub(super) fn finished(&mut self, index: usize, snapshot: PublisherSnapshot) {
        if let Some(slot) = self.latest.get_mut(index) {
            *slot = Some(snapshot);
            self.done[index] = true;
        }
    }

    /// Writes a checkpoint of `view` on a blocking thread, unless the previous one is still
    /// being written (then this one is skipped; the next comes one interval later).
    pub(super) fn write(&mut self, view: SamplerView<'_>, load_finished: bool) {
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            tracing::warn!("a checkpoint is still being written; skipping this one");
            return;
        }
        let snapshots: Vec<PublisherSnapshot> = self.latest.iter().flatten().cloned().collect();
        let context = self.context.clone();
        let cumulative = view.cumulative.clone();
        let timeline = view.timeline.to_vec();
        let start_wall = view.start_wall;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let written = write_checkpoint(
                &context,
                snapshots,
                cumulative,
                timeline,
                start_wall,
                load_finished,
            );
            if let Err(e) = written {
                eprintln!(
                    "aivo-load: cannot write a checkpoint into {}: {e}",
                    context.run_dir.display()
                );
            }
            release_freed_memory();
        }));
    }

    /// Waits for the write in progress (the run's end: the final report must come after it).
    pub(super) async fn settle(&mut self) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
    }
}

/// The state file, then the report files of the figures so far.
fn write_checkpoint(
    context: &CheckpointContext,
    snapshots: Vec<PublisherSnapshot>,
    cumulative: IntervalStats,
    timeline: Vec<TimelineRow>,
    start_wall: OffsetDateTime,
    load_finished: bool,
) -> std::io::Result<()> {
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let load_s = timeline.len() as u64;
    let mut subjects = SubjectTable::default();
    let mut ledgers = Vec::with_capacity(snapshots.len());
    for snapshot in snapshots {
        subjects.merge(&snapshot.subjects);
        ledgers.push(snapshot.ledger);
    }
    let h = &cumulative.histograms;
    let histograms = BTreeMap::from([
        ("latency".to_string(), h.latency.to_base64()),
        ("service_time".to_string(), h.service.to_base64()),
        ("send_delay".to_string(), h.send_delay.to_base64()),
    ]);
    let state = CheckpointState {
        version: STATE_VERSION,
        run_id: context.run_id.clone(),
        started_at: rfc3339(context.started_at),
        source: context.source.clone(),
        backend: context.backend.name().to_string(),
        servers: context.servers.clone(),
        nats_server_version: context.nats_server_version.clone(),
        windows: context.windows.clone(),
        load_s,
        load_finished,
        start_wall: rfc3339(start_wall),
        ledgers,
        counts: CountsState {
            attempted: cumulative.attempted,
            acked: cumulative.acked,
            failed: cumulative.failed,
            unknown: cumulative.unknown,
            never_sent: cumulative.never_sent,
            payload_bytes: cumulative.payload_bytes,
            errors: cumulative.errors.clone(),
        },
        histograms,
        timeline,
    };
    report::write_atomically_with(&context.run_dir.join(STATE_FILE), |out| {
        serde_json::to_writer(out, &state).map_err(std::io::Error::other)
    })?;
    let (ledgers, in_flight) = settled(&state.ledgers);
    let outcome = LoadOutcome {
        ledgers,
        in_flight,
        subjects,
        measured: cumulative.clone(),
        cumulative,
        timeline: state.timeline,
        elapsed: Duration::from_secs(load_s),
        aborted: None,
        start_wall,
    };
    let report = build_report(ReportInputs {
        scenario: &context.scenario,
        backend: context.backend,
        rate_scale: context.source.rate_scale,
        run_id: &context.run_id,
        started_at: context.started_at,
        servers: context.servers.clone(),
        nats_server_version: context.nats_server_version.clone(),
        outcome,
        stream_checks: Vec::new(),
        ledger_checks: Vec::new(),
        retention_checks: Vec::new(),
        replica_checks: Vec::new(),
        replica_reads: Vec::new(),
        security: None,
        sync_interval_applied: false,
        fault_events: Vec::new(),
        indexer: None,
        dlq: None,
        indexer_lag: Vec::new(),
        end_to_end: Vec::new(),
        interrupted: false,
        state: RunState::Running,
        checkpoint_s: Some(load_s),
    });
    report.write_to(&context.run_dir)
}

/// Hands the allocator's free memory back to the system after a checkpoint. Rendering the report
/// files is the run's largest short-lived allocation, it grows with the run's seconds, and it
/// happens on a blocking thread with its own malloc arena: glibc would keep that arena at its
/// high-water mark, so the process's RSS would climb checkpoint after checkpoint with nothing live.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only returns free pages of the allocator's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The windows of a declared run, for its checkpoints.
pub(super) fn windows_of(windows: &[StreamWindow]) -> Vec<WindowState> {
    windows.iter().map(WindowState::of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_taken_mid_run_counts_what_was_in_flight_as_unknown() {
        let mut ledger = PublisherLedger {
            attempted: 6,
            ..PublisherLedger::default()
        };
        for seq in [1, 2, 4] {
            ledger.acked.insert(seq);
        }
        ledger.failed.insert(3);
        let (settled, in_flight) = settled(&[ledger]);
        assert_eq!(in_flight, 2);
        assert_eq!(
            settled[0].unknown.ranges().collect::<Vec<_>>(),
            vec![(5, 6)]
        );
        assert_eq!(settled[0].acked.len(), 3);
    }

    #[test]
    fn checkpoints_come_every_interval_with_the_copies_asked_a_second_before() {
        let context = CheckpointContext {
            scenario: Arc::new(crate::scenario::catalog::resolve("focus-burst").expect("built in")),
            source: ScenarioSource {
                name_or_path: "focus-burst".into(),
                duration_s: None,
                rate_scale: 1.0,
                seed: None,
            },
            run_id: "r".into(),
            run_dir: PathBuf::from("/nonexistent"),
            started_at: OffsetDateTime::UNIX_EPOCH,
            backend: BackendKind::Local,
            servers: Vec::new(),
            nats_server_version: String::new(),
            windows: Vec::new(),
        };
        let c = Checkpointer::new(context, Duration::from_secs(5), 2);
        let asks: Vec<u64> = (0..12).filter(|s| c.asks_after(*s)).collect();
        let writes: Vec<u64> = (0..12).filter(|s| c.writes_after(*s)).collect();
        assert_eq!(asks, vec![3, 8]);
        assert_eq!(writes, vec![4, 9]);
    }
}
