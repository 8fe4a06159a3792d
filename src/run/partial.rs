//! `partial.json`: what a worker of a segmented run (`run --segment I/N`) leaves for `report merge`
//! beside its own report files: its segment, its clock offset to the cluster, where each stream
//! stood before its load, every publisher's ledger (range sets), the counters and whole-run
//! HdrHistograms (V2, base64, so they add exactly), the per-subject figures with their histograms,
//! and its timeline keyed by intended second. The per-second histograms are its `latency.hlog`.
//!
//! **Where partial reports go.** Into a directory: `<reports-dir>/<run id>/segment-I-of-N/`, on a
//! volume every worker and the merge mount (a Kubernetes `ReadWriteMany` claim, a docker volume, a
//! local directory). Not into an object store (such as a results cluster's NATS object store): a
//! directory needs no second cluster and no credentials beyond the mount, a worker that dies
//! leaves whatever it wrote readable in place (checkpoints included), and `report merge`,
//! `report recover` and `report compare` read run dirs already.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::checkpoint::{CountsState, ScenarioSource, WindowState};
use super::clock::ClockOffset;
use super::load::LoadOutcome;
use super::segment::Segment;
use crate::load::ledger::PublisherLedger;
use crate::load::metrics::{
    add_base64, histogram_to_base64, IntervalStats, SubjectStats, SubjectTable,
};
use crate::report::{self, TimelineRow};

/// The file in a worker's run dir.
pub const PARTIAL_FILE: &str = "partial.json";
/// Bumped when [`WorkerPartial`] changes meaning.
const PARTIAL_VERSION: u32 = 1;

/// One subject's figures in a worker: counters and both histograms, exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectState {
    pub subject: String,
    pub attempted: u64,
    pub acked: u64,
    pub payload_bytes: u64,
    /// Corrected latency (2 significant digits), V2 base64.
    pub latency: String,
    /// Payload sizes (2 significant digits), V2 base64.
    pub sizes: String,
}

/// See the module header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPartial {
    pub version: u32,
    pub segment: Segment,
    pub run_id: String,
    pub source: ScenarioSource,
    /// RFC 3339: when the worker started; `start_wall`: second 0 of its load.
    pub started_at: String,
    pub start_wall: String,
    pub backend: String,
    pub servers: Vec<String>,
    pub nats_server_version: String,
    /// `None` when the probe could not be made (the reason is in `clock_error`).
    pub clock: Option<ClockOffset>,
    #[serde(default)]
    pub clock_error: Option<String>,
    pub windows: Vec<WindowState>,
    pub elapsed_s: f64,
    pub aborted: Option<String>,
    pub interrupted: bool,
    pub ledgers: Vec<PublisherLedger>,
    pub counts: CountsState,
    /// `latency`, `service_time`, `send_delay`.
    pub histograms: BTreeMap<String, String>,
    pub subjects: Vec<SubjectState>,
    pub timeline: Vec<TimelineRow>,
}

/// Who the worker is and where it ran, beside its load's figures.
pub(super) struct PartialContext<'a> {
    pub(super) segment: Segment,
    pub(super) run_id: &'a str,
    pub(super) source: &'a ScenarioSource,
    pub(super) started_at: OffsetDateTime,
    pub(super) backend: &'a str,
    pub(super) servers: Vec<String>,
    pub(super) nats_server_version: String,
    pub(super) clock: Result<ClockOffset, String>,
    pub(super) windows: Vec<WindowState>,
    pub(super) interrupted: bool,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl WorkerPartial {
    /// The partial report of a finished load.
    pub(super) fn of(context: PartialContext<'_>, outcome: &LoadOutcome) -> Self {
        let c = &outcome.cumulative;
        let h = &c.histograms;
        let (clock, clock_error) = match context.clock {
            Ok(offset) => (Some(offset), None),
            Err(why) => (None, Some(why)),
        };
        Self {
            version: PARTIAL_VERSION,
            segment: context.segment,
            run_id: context.run_id.to_string(),
            source: context.source.clone(),
            started_at: rfc3339(context.started_at),
            start_wall: rfc3339(outcome.start_wall),
            backend: context.backend.to_string(),
            servers: context.servers,
            nats_server_version: context.nats_server_version,
            clock,
            clock_error,
            windows: context.windows,
            elapsed_s: outcome.elapsed.as_secs_f64(),
            aborted: outcome.aborted.clone(),
            interrupted: context.interrupted,
            ledgers: outcome.ledgers.clone(),
            counts: CountsState {
                attempted: c.attempted,
                acked: c.acked,
                failed: c.failed,
                unknown: c.unknown,
                never_sent: c.never_sent,
                payload_bytes: c.payload_bytes,
                errors: c.errors.clone(),
            },
            histograms: BTreeMap::from([
                ("latency".to_string(), h.latency.to_base64()),
                ("service_time".to_string(), h.service.to_base64()),
                ("send_delay".to_string(), h.send_delay.to_base64()),
            ]),
            subjects: outcome
                .subjects
                .subjects
                .iter()
                .map(|s| SubjectState {
                    subject: s.subject.clone(),
                    attempted: s.attempted,
                    acked: s.acked,
                    payload_bytes: s.payload_bytes,
                    latency: s.latency.to_base64(),
                    sizes: histogram_to_base64(&s.sizes),
                })
                .collect(),
            timeline: outcome.timeline.clone(),
        }
    }

    /// Writes `run_dir/partial.json` atomically.
    pub(super) fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        report::write_atomically_with(&run_dir.join(PARTIAL_FILE), |out| {
            serde_json::to_writer(out, self).map_err(std::io::Error::other)
        })
    }

    /// Reads `dir/partial.json`; `Ok(None)` when there is none (a worker that never reported).
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join(PARTIAL_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let partial: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a partial report ({e})", path.display()))?;
        if partial.version != PARTIAL_VERSION {
            return Err(format!(
                "{}: partial report version {} (this aivo-load reads version {PARTIAL_VERSION})",
                path.display(),
                partial.version
            ));
        }
        Ok(Some(partial))
    }

    /// Second 0 of the worker's load.
    pub fn start_wall(&self) -> Result<OffsetDateTime, String> {
        OffsetDateTime::parse(&self.start_wall, &Rfc3339)
            .map_err(|e| format!("start_wall {}: {e}", self.start_wall))
    }

    /// The whole-run counters and histograms, added into `into`.
    pub(super) fn add_cumulative(&self, into: &mut IntervalStats) -> Result<(), String> {
        let c = &self.counts;
        into.merge(&IntervalStats {
            attempted: c.attempted,
            acked: c.acked,
            failed: c.failed,
            unknown: c.unknown,
            never_sent: c.never_sent,
            payload_bytes: c.payload_bytes,
            errors: c.errors.clone(),
            ..IntervalStats::default()
        });
        let h = &mut into.histograms;
        for (name, histogram) in [
            ("latency", &mut h.latency),
            ("service_time", &mut h.service),
            ("send_delay", &mut h.send_delay),
        ] {
            if let Some(text) = self.histograms.get(name) {
                histogram
                    .add_base64(text)
                    .map_err(|e| format!("segment {} {name}: {e}", self.segment))?;
            }
        }
        Ok(())
    }

    /// The per-subject figures, added into `into`.
    pub(super) fn add_subjects(&self, into: &mut SubjectTable) -> Result<(), String> {
        for state in &self.subjects {
            let mut stats = SubjectStats::new(&state.subject);
            stats.attempted = state.attempted;
            stats.acked = state.acked;
            stats.payload_bytes = state.payload_bytes;
            stats
                .latency
                .add_base64(&state.latency)
                .map_err(|e| format!("{} latency: {e}", state.subject))?;
            add_base64(&mut stats.sizes, &state.sizes)
                .map_err(|e| format!("{} sizes: {e}", state.subject))?;
            let index = into.index_of(&state.subject);
            into.subjects[index].merge(&stats);
        }
        Ok(())
    }

    /// How long the worker's load took.
    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.elapsed_s.max(0.0))
    }
}
