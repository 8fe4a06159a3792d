//! Run reports (DESIGN.md §6): one versioned [`RunReport`], written as `report.json`, `summary.md`,
//! `timeline.csv`, `report.html` (charts) and `junit.xml` (checks as test cases), and printed as a
//! compact end summary. `report compare` and `report trend` read finished runs' report.json back
//! (`figures.rs`).

pub mod checks;
pub mod compare;
mod figures;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod percentiles;
pub mod prometheus;
pub mod terminal;
pub mod trend;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chaos::engine::FaultEvent;
use crate::checks::catch_up::CatchUpCheck;
use crate::checks::dlq::DlqCheck;
use crate::checks::faults::FaultsCheck;
use crate::checks::no_loss::LedgerCheck;
use crate::checks::retention::RetentionCheck;
use crate::checks::stream_count::StreamCount;
pub use crate::checks::stuck::StuckReplica;
use crate::checks::thresholds::ThresholdResult;
use crate::load::metrics::Percentiles;
use checks::CheckLine;

/// Bumped whenever a field of `report.json` changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub run: RunIdentity,
    pub counts: Counts,
    pub latency: LatencyReport,
    pub throughput: Throughput,
    pub timeline: Vec<TimelineRow>,
    /// Rates, latency and sizes by subject, busiest first.
    pub subjects: Vec<SubjectReport>,
    pub streams: Vec<StreamCount>,
    /// The ledger check per stream: lost, duplicated, unexpected, recovered.
    pub ledger: Vec<LedgerCheck>,
    /// The retention check per stream with overridden limits: limits held, oldest message age and
    /// bytes over time.
    pub retention: Vec<RetentionCheck>,
    /// Faults applied and reverted, with the moment each was requested and confirmed (s since start).
    pub faults: Vec<FaultEvent>,
    /// The indexer into Postgres, when the scenario runs it.
    pub indexer: Option<IndexerReport>,
    /// The indexer's catch-up check, when the run had an indexer.
    pub catch_up: Option<CatchUpCheck>,
    /// The DLQ check (injected poison vs dead letters), when the scenario runs a consumer.
    pub dlq: Option<DlqCheck>,
    pub thresholds: Vec<ThresholdResult>,
    /// The faults check (each fault took effect, each revert left a whole cluster), when the run
    /// had faults.
    pub fault_check: Option<FaultsCheck>,
    /// Every check and threshold above in one list: pass/fail, the figures judged, why.
    pub checks: Vec<CheckLine>,
    pub verdict: Verdict,
    /// Set when the harness, not the cluster, was the bottleneck of the load (`run::selfcheck`):
    /// a warning beside the verdict, never a failed check. `None`: not limited.
    pub load_generator: Option<LoadGeneratorLimit>,
    /// Stream replicas still behind their leader a bound after the faults were reverted (the
    /// `stuck-replica` finding, `cluster::stuck`): a warning beside the verdict, never a failed
    /// check. Empty: none, or the run had no faults.
    pub stuck_replicas: Vec<StuckReplica>,
    /// The replicas check of each stream the run wrote (every node's copy against the others).
    /// Empty: fewer than two nodes' monitoring answered (e.g. an external cluster without
    /// `--monitor`), or the run was interrupted.
    pub replicas: Vec<crate::checks::replicas::ReplicaCheck>,
    /// The per-replica read-back of each stream whose replicas may disagree (the leader's count
    /// differed from the read-back, the replicas check found a difference, or a safety fault
    /// damaged a store): each replica read as leader in turn. Empty: none needed it.
    #[serde(default)]
    pub replica_reads: Vec<crate::checks::replica_read::ReplicaRead>,
    /// The security check of a production-profile cluster (`checks::security`): each probe, what
    /// it tried and what the cluster did. `None`: an open or external cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<crate::checks::security::SecurityCheck>,
    /// The safety section (`checks::safety`): for each safety fault (corrupt-store, power-loss)
    /// what was done, what was lost or diverged, and the acknowledged window that disappeared.
    /// Empty: the run applied none.
    pub safety: Vec<crate::checks::safety::SafetyFinding>,
    /// The disaster-recovery drill of a scenario with `[drill]` (`checks::recovery`): the
    /// snapshots, the recovery point and time, each restored stream against the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disaster_recovery: Option<crate::checks::recovery::DisasterRecovery>,
    /// Whole-run histograms, HdrHistogram V2 compressed + base64 (merge across runs exactly).
    pub histograms: BTreeMap<String, String>,
}

/// Which run this was.
#[derive(Debug, Clone, Serialize)]
pub struct RunIdentity {
    pub id: String,
    pub scenario: String,
    pub description: String,
    pub origin: String,
    pub seed: u64,
    pub rate_scale: f64,
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
    pub backend: String,
    pub servers: Vec<String>,
    pub aivo_load_version: String,
    pub async_nats_version: String,
    pub nats_server_version: String,
    pub publishers: u32,
    pub in_flight_per_publisher: u32,
    pub ack_timeout_ms: u64,
    /// Events carried their ledger identity as `Nats-Msg-Id` (the cluster did dedup work).
    pub message_id: bool,
    /// The JetStream `sync_interval` the scenario set (`[cluster]`) for a cluster the run starts
    /// itself: `always` or a duration. `None`: the server's default (2 minutes), or a cluster the
    /// run did not start (kept or external: it keeps its own).
    pub sync_interval: Option<String>,
    /// True when Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
    /// Set when an abort-on-fail threshold stopped the load early: which one, when, measured what.
    pub aborted: Option<String>,
    /// `running` in a checkpoint (the run was still going when it was written; if that is the
    /// report a run dir holds, the run died), `finished` at the end, `recovered` when `report
    /// recover` rebuilt it from a dead run's last checkpoint.
    pub state: RunState,
    /// Seconds of load the report covers when it is a checkpoint or was recovered from one.
    pub checkpoint_s: Option<u64>,
    /// A report merged from the workers of a segmented run (`report merge`): each segment, whether
    /// it reported, its clock offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkersReport>,
}

/// The workers of a merged run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersReport {
    pub count: u32,
    pub segments: Vec<WorkerSegment>,
    /// The largest difference between two workers' clock offsets to the cluster, ms.
    pub clock_spread_ms: Option<f64>,
    /// The spread above which the merge warns, ms.
    pub clock_tolerance_ms: f64,
    /// What the merge warns about (clock offsets apart, a worker without an offset).
    pub warnings: Vec<String>,
}

/// One worker's segment in a merged run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSegment {
    /// `2/3`.
    pub segment: String,
    /// `complete`, or `incomplete` for a worker that died or never reported.
    pub state: String,
    /// Its run dir, where known.
    pub dir: Option<String>,
    /// Its clock minus the cluster's, ms.
    pub clock_offset_ms: Option<f64>,
    pub acked: Option<u64>,
}

/// Where a run stood when its report was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    Running,
    #[default]
    Finished,
    Recovered,
    /// One worker's segment of a segmented run (`run --segment`): `report merge` judges the run.
    Partial,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Recovered => "recovered",
            Self::Partial => "partial",
        }
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it, fsynced, then renamed over
/// it (and the directory fsynced, so the rename survives a crash too).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// [`write_atomically`] for a writer that streams its bytes (through a buffer) instead of
/// holding them all: a long run's report is written without a copy of it in memory.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(&tmp)?);
    write(&mut out)?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// What happened to the events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Events the schedule intended over the run.
    pub intended: u64,
    pub attempted: u64,
    pub acked: u64,
    /// Acks flagged duplicate by JetStream (the Nats-Msg-Id was already stored).
    pub duplicate_acks: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Intended but not attempted before the run ended (the harness or cluster fell too far behind).
    pub never_sent: u64,
    /// In a checkpoint (or a report recovered from one): attempted, still awaiting an ack when
    /// the checkpoint was taken. Not in `unknown`, not errors.
    pub in_flight: u64,
    pub payload_bytes: u64,
    /// Failures and unknown outcomes by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Counts {
    /// (failed + unknown) / attempted.
    pub fn error_rate(&self) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            (self.failed + self.unknown) as f64 / self.attempted as f64
        }
    }

    /// acked / intended.
    pub fn achieved_ratio(&self) -> f64 {
        if self.intended == 0 {
            1.0
        } else {
            self.acked as f64 / self.intended as f64
        }
    }
}

/// Percentiles (ms) of the three histograms of acknowledged publishes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    /// Intended send time → ack: the latency a client of the cluster would have seen.
    pub corrected: Percentiles,
    /// Actual send → ack.
    pub service_time: Percentiles,
    /// Intended → actual send: how far the harness fell behind its schedule.
    pub send_delay: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// Mean intended rate over the run (events/s).
    pub target_mean: f64,
    /// Mean acked rate over the run.
    pub achieved_mean: f64,
    /// Highest acked rate in any one second.
    pub achieved_peak: f64,
    /// Mean payload size in bytes.
    pub mean_payload_bytes: f64,
}

/// What the consumers did in a run.
#[derive(Debug, Clone, Serialize)]
pub struct IndexerReport {
    /// "embedded (<dir>)" or the `DATABASE_URL` host.
    pub postgres: String,
    pub analytics: bool,
    /// When the indexer was started, seconds after the load began.
    pub started_s: f64,
    /// Pending + unacknowledged events when the load ended.
    pub lag_at_load_end: u64,
    /// Seconds from the end of the load to zero lag; `None` if it never got there.
    pub catch_up_s: Option<f64>,
    /// Events per second the indexer worked off while catching up.
    pub catch_up_rate: Option<f64>,
    /// Highest lag sampled during the load.
    pub peak_lag: u64,
    /// Seconds from the indexer's start until it was less than one second of traffic behind (lag at
    /// most the target rate of that second); `None` if that never happened during the load.
    pub recovery_s: Option<f64>,
    /// Events per second the indexer wrote while recovering: (peak lag + events intended meanwhile)
    /// / recovery time.
    pub recovery_rate: Option<f64>,
    /// Intended publish time → row visible in Postgres, ms.
    pub end_to_end: Percentiles,
    pub rows: u64,
    /// The ledger check on the `events` table.
    pub ledger: LedgerCheck,
}

/// One subject over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectReport {
    pub subject: String,
    pub attempted: u64,
    pub acked: u64,
    /// Attempted but not acked (failed or unknown).
    pub not_acked: u64,
    pub acked_per_second: f64,
    /// Corrected latency (intended → ack), ms, 2 significant digits.
    pub latency: Percentiles,
    pub size_bytes: SizeSummary,
}

/// Distribution of payload sizes, bytes (2 significant digits).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SizeSummary {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// One second of the run. Deserializable (a capacity search or a comparison may read a timeline
/// back); fields added after the first schema-1 reports default, so older files still read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the start of the load.
    pub second: u64,
    pub phase: String,
    /// Events the schedule intended in this second.
    pub target: f64,
    pub attempted: u64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Events skipped this second because the publisher was too far behind its schedule.
    pub never_sent: u64,
    pub errors: BTreeMap<String, u64>,
    /// Corrected latency of the acks of this second, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub send_delay_p99_ms: f64,
    /// Actual send → ack of the acks of this second, p99, ms: how fast the cluster answered.
    #[serde(default)]
    pub service_time_p99_ms: f64,
    /// Cores the harness process used during this second (1.0 = one full core); its children (the
    /// local backend's nodes) are not counted. `None` where it could not be measured.
    #[serde(default)]
    pub harness_cpu: Option<f64>,
    /// Resident memory of the harness process at the end of this second, bytes.
    #[serde(default)]
    pub harness_rss_bytes: Option<u64>,
    /// Fraction of the Tokio runtime's worker time spent running tasks this second (0.0–1.0).
    #[serde(default)]
    pub runtime_busy: Option<f64>,
    /// Each node's resources as its `/varz` last reported them; empty when the cluster's
    /// monitoring endpoints are not known (an external cluster given by client URLs).
    #[serde(default)]
    pub nodes: Vec<NodeSample>,
    /// Faults active during this second ("kill nats2").
    pub faults: Vec<String>,
    /// Events the indexer had not yet written (pending + unacknowledged), when it runs.
    pub indexer_lag: Option<u64>,
    /// Intended publish time → row in Postgres of the events intended in this second, ms.
    pub end_to_end_p50_ms: Option<f64>,
    pub end_to_end_p99_ms: Option<f64>,
}

/// One node's resources in one second of the timeline, from its `/varz`. The values are the latest
/// answer at the sample (polled once a second beside the load); all `None` and `reachable: false`
/// when the node did not answer its last poll (killed, paused or partitioned by chaos).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeSample {
    /// `nats1`, `nats2`, ...
    pub name: String,
    /// Cores the server process used (`/varz` `cpu` is percent of one core; this is that / 100).
    pub cpu: Option<f64>,
    /// Resident memory of the server process, bytes (`/varz` `mem`).
    pub mem_bytes: Option<u64>,
    /// File storage JetStream uses on the node, bytes (`/varz` `jetstream.stats.storage`).
    pub js_storage_bytes: Option<u64>,
    /// The node answered its last poll.
    pub reachable: bool,
}

/// The load generator was the bottleneck: the harness could not offer the load the schedule asked
/// for, so the run's figures say nothing about what the cluster could take at that rate. A warning
/// in every summary, never a failed verdict (`run::selfcheck` says when and why).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadGeneratorLimit {
    /// What showed it, with the figures ("send delay p99 grew from 0.4 ms to 4.2 s ...").
    pub reason: String,
    /// What to change: more publishers or in flight, fewer faults, more workers or cores.
    pub advice: String,
    /// Which signals fired: `send_delay`, `never_sent`, `harness_cpu`, `runtime_busy`.
    pub signals: Vec<String>,
    /// The seconds judged, `[from, to)` since the start of the load.
    pub from_s: u64,
    pub to_s: u64,
    /// Median per-second send delay p99 of the window's first and last thirds, ms.
    pub send_delay_p99_first_ms: f64,
    pub send_delay_p99_last_ms: f64,
    /// Median per-second service time p99 of the last third, ms (how fast the cluster answered).
    pub service_time_p99_last_ms: f64,
    /// Median per-second acked/s × service time p99 of the last third: at most this many publishes
    /// were outstanding at once (Little's law).
    pub outstanding_last: f64,
    /// Events never sent in the window.
    pub never_sent: u64,
    /// Median cores the harness used per second, and the cores available to it.
    pub harness_cpu: Option<f64>,
    pub cores: usize,
    /// Median busy fraction of the runtime's workers.
    pub runtime_busy: Option<f64>,
}

/// The run's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// One line per failed check or threshold.
    pub failures: Vec<String>,
}

impl RunReport {
    /// Adds the drill's result, its check lines (before the thresholds') and, when it failed,
    /// its failures to the verdict.
    pub fn add_disaster_recovery(&mut self, drill: crate::checks::recovery::DisasterRecovery) {
        let lines = checks::recovery_lines(&drill);
        let at = self
            .checks
            .iter()
            .position(|c| c.kind == checks::CheckKind::Threshold)
            .unwrap_or(self.checks.len());
        for line in lines.iter().filter(|l| !l.passed) {
            self.verdict.failures.push(line.failure());
            self.verdict.passed = false;
        }
        self.checks.splice(at..at, lines);
        self.disaster_recovery = Some(drill);
    }

    /// Writes `report.json`, `summary.md`, `timeline.csv`, `report.html` and `junit.xml` into `dir`.
    ///
    /// Each file is replaced atomically (written beside, fsynced, renamed), so a reader, or a run
    /// killed while it writes a checkpoint, sees either the old file or the new one, never half.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_atomically(&dir.join("summary.md"), markdown::render(self).as_bytes())?;
        write_atomically(&dir.join("timeline.csv"), self.timeline_csv().as_bytes())?;
        write_atomically(&dir.join("report.html"), html::render(self).as_bytes())?;
        write_atomically(&dir.join("junit.xml"), junit::render(self).as_bytes())?;
        // Last: a report.json that is there says the others are of the same moment or newer.
        write_atomically_with(&dir.join("report.json"), |out| {
            serde_json::to_writer_pretty(out, self).map_err(std::io::Error::other)
        })?;
        Ok(())
    }

    /// "PASS", "FAIL", or "INCOMPLETE" for a checkpoint of a run still going (or one that died).
    pub fn verdict_word(&self) -> &'static str {
        if self.run.state == RunState::Running {
            "INCOMPLETE"
        } else if self.verdict.passed {
            "PASS"
        } else {
            "FAIL"
        }
    }

    fn timeline_csv(&self) -> String {
        Self::csv_of(&self.timeline)
    }

    /// `timeline.csv`: a row a second. New columns go at the end, so a script reading the older
    /// ones by position still works.
    fn csv_of(timeline: &[TimelineRow]) -> String {
        let mut out = String::from("second,phase,target,attempted,acked,failed,unknown,never_sent,p50_ms,p99_ms,max_ms,send_delay_p99_ms,faults,indexer_lag,end_to_end_p50_ms,end_to_end_p99_ms,service_time_p99_ms,harness_cpu,harness_rss_mb,runtime_busy");
        // One column per node and figure; the nodes of the first row that has any (they are the
        // cluster's nodes in order, the same in every second).
        let names: Vec<&str> = timeline
            .iter()
            .find(|r| !r.nodes.is_empty())
            .map(|r| r.nodes.iter().map(|n| n.name.as_str()).collect())
            .unwrap_or_default();
        for name in &names {
            out.push_str(&format!(",{name}_cpu,{name}_mem_mb,{name}_js_storage_mb"));
        }
        out.push('\n');
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        let mb = |v: Option<u64>| v.map_or(String::new(), |v| format!("{:.1}", v as f64 / MIB));
        for r in timeline {
            out.push_str(&format!(
                "{},{},{:.1},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{},{},{},{},{:.3},{},{},{}",
                r.second,
                r.phase,
                r.target,
                r.attempted,
                r.acked,
                r.failed,
                r.unknown,
                r.never_sent,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.send_delay_p99_ms,
                r.faults.join(";"),
                r.indexer_lag.map_or(String::new(), |l| l.to_string()),
                opt(r.end_to_end_p50_ms),
                opt(r.end_to_end_p99_ms),
                r.service_time_p99_ms,
                opt(r.harness_cpu),
                mb(r.harness_rss_bytes),
                opt(r.runtime_busy),
            ));
            for name in &names {
                let node = r.nodes.iter().find(|n| n.name == *name);
                out.push_str(&format!(
                    ",{},{},{}",
                    opt(node.and_then(|n| n.cpu)),
                    mb(node.and_then(|n| n.mem_bytes)),
                    mb(node.and_then(|n| n.js_storage_bytes))
                ));
            }
            out.push('\n');
        }
        out
    }
}

/// Bytes in a mebibyte (the CSV's `_mb` columns).
const MIB: f64 = 1024.0 * 1024.0;

/// One process's resources over the timeline, for the summaries: the harness, or a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceLine {
    pub(crate) name: String,
    /// Median and highest cores used per second.
    pub(crate) cpu_median: Option<f64>,
    pub(crate) cpu_max: Option<f64>,
    /// Highest resident memory, bytes.
    pub(crate) mem_max: Option<u64>,
    /// JetStream file storage at the last second the node answered (nodes only).
    pub(crate) js_storage_last: Option<u64>,
    /// Seconds the node did not answer its poll (nodes only).
    pub(crate) unreachable_s: Option<u64>,
}

/// The harness's and each node's resources over the timeline; empty when none was measured.
pub(crate) fn resource_lines(timeline: &[TimelineRow]) -> Vec<ResourceLine> {
    fn cpu_of(values: Vec<f64>) -> (Option<f64>, Option<f64>) {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        values.sort_by(f64::total_cmp);
        (
            values.get(values.len() / 2).copied(),
            values.last().copied(),
        )
    }
    let mut lines = Vec::new();
    if timeline.iter().any(|r| r.harness_cpu.is_some()) {
        let (cpu_median, cpu_max) = cpu_of(timeline.iter().filter_map(|r| r.harness_cpu).collect());
        lines.push(ResourceLine {
            name: "harness".into(),
            cpu_median,
            cpu_max,
            mem_max: timeline.iter().filter_map(|r| r.harness_rss_bytes).max(),
            js_storage_last: None,
            unreachable_s: None,
        });
    }
    let names: Vec<&str> = timeline
        .iter()
        .find(|r| !r.nodes.is_empty())
        .map(|r| r.nodes.iter().map(|n| n.name.as_str()).collect())
        .unwrap_or_default();
    for name in names {
        let samples: Vec<&NodeSample> = timeline
            .iter()
            .filter_map(|r| r.nodes.iter().find(|n| n.name == name))
            .collect();
        let (cpu_median, cpu_max) = cpu_of(samples.iter().filter_map(|n| n.cpu).collect());
        lines.push(ResourceLine {
            name: name.to_string(),
            cpu_median,
            cpu_max,
            mem_max: samples.iter().filter_map(|n| n.mem_bytes).max(),
            js_storage_last: samples.iter().rev().find_map(|n| n.js_storage_bytes),
            unreachable_s: Some(samples.iter().filter(|n| !n.reachable).count() as u64),
        });
    }
    lines
}

/// `47185920` → `45.0 MiB`; `None` → `–`.
pub(crate) fn mebibytes(bytes: Option<u64>) -> String {
    bytes.map_or("–".to_string(), |b| format!("{:.1} MiB", b as f64 / MIB))
}

/// `0.123` → `0.12`; `None` → `–`.
pub(crate) fn cores(cores: Option<f64>) -> String {
    cores.map_or("–".to_string(), |c| format!("{c:.2}"))
}

/// Escapes text for HTML or XML, in an element or a quoted attribute. Control characters other than
/// tab and newline (not allowed in XML 1.0) become spaces.
pub(crate) fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The mark of a check or threshold in the summaries: ✓ passed, ✗ failed.
fn mark(passed: bool) -> &'static str {
    if passed {
        "✓"
    } else {
        "✗"
    }
}

impl RunReport {
    /// The retention, replicas and per-replica read-back checks of each stream, as (name, passed,
    /// detail), in the order summaries list them.
    pub fn replica_and_retention_checks(&self) -> Vec<(String, bool, &str)> {
        let retention = self.retention.iter().map(|c| {
            (
                format!("retention {}", c.stream),
                c.passed,
                c.detail.as_str(),
            )
        });
        let replicas = self.replicas.iter().map(|c| {
            (
                format!("replicas {}", c.stream),
                c.passed,
                c.detail.as_str(),
            )
        });
        let reads = self.replica_reads.iter().map(|c| {
            (
                format!("replica read-back {}", c.stream),
                c.passed,
                c.detail.as_str(),
            )
        });
        retention.chain(replicas).chain(reads).collect()
    }

    /// The safety section as (fault label, what was done, what it cost), for the summaries.
    pub fn safety_lines(&self) -> Vec<(String, String, String)> {
        self.safety
            .iter()
            .map(|f| {
                (
                    crate::checks::safety::label(f),
                    f.done.clone().unwrap_or_default(),
                    f.summary.clone(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: Option<f64>, mem: Option<u64>, reachable: bool) -> NodeSample {
        NodeSample {
            name: name.into(),
            cpu,
            mem_bytes: mem,
            js_storage_bytes: mem.map(|m| m / 2),
            reachable,
        }
    }

    fn resource_rows() -> Vec<TimelineRow> {
        (0..3u64)
            .map(|s| TimelineRow {
                second: s,
                harness_cpu: Some(0.1 * (s + 1) as f64),
                harness_rss_bytes: Some((s + 10) << 20),
                nodes: vec![
                    node("nats1", Some(0.5), Some(100 << 20), true),
                    if s == 2 {
                        node("nats2", None, None, false)
                    } else {
                        node("nats2", Some(0.2 * s as f64), Some((s + 1) << 20), true)
                    },
                ],
                ..TimelineRow::default()
            })
            .collect()
    }

    #[test]
    fn resources_summarise_the_harness_and_each_node() {
        let lines = resource_lines(&resource_rows());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].name, "harness");
        assert_eq!(lines[0].cpu_median, Some(0.2));
        assert_eq!(lines[0].mem_max, Some(12 << 20));
        let nats2 = &lines[2];
        assert_eq!(nats2.cpu_max, Some(0.2));
        assert_eq!(nats2.unreachable_s, Some(1));
        // The last answer, not the empty sample of the second it was down.
        assert_eq!(nats2.js_storage_last, Some(1 << 20));
        assert!(resource_lines(&[TimelineRow::default()]).is_empty());
    }

    #[test]
    fn a_timeline_row_of_an_older_report_still_reads() {
        let old = r#"{"second":3,"phase":"burst","target":10.0,"attempted":10,"acked":10,"failed":0,
            "unknown":0,"never_sent":0,"errors":{},"p50_ms":1.0,"p99_ms":2.0,"max_ms":3.0,
            "send_delay_p99_ms":0.5,"faults":[],"indexer_lag":null,"end_to_end_p50_ms":null,
            "end_to_end_p99_ms":null}"#;
        let row: TimelineRow = serde_json::from_str(old).expect("an older row");
        assert_eq!(row.second, 3);
        assert_eq!(row.harness_cpu, None);
        assert!(row.nodes.is_empty());
        // And a new one round-trips.
        let new = resource_rows().remove(2);
        let back: TimelineRow =
            serde_json::from_str(&serde_json::to_string(&new).expect("json")).expect("new row");
        assert_eq!(back.nodes, new.nodes);
        assert_eq!(back.harness_rss_bytes, new.harness_rss_bytes);
    }

    #[test]
    fn timeline_csv_has_a_column_per_node_figure() {
        let csv = RunReport::csv_of(&resource_rows());
        let mut lines = csv.lines();
        let header = lines.next().expect("header");
        assert!(
            header.ends_with(
                ",service_time_p99_ms,harness_cpu,harness_rss_mb,runtime_busy,\
                 nats1_cpu,nats1_mem_mb,nats1_js_storage_mb,nats2_cpu,nats2_mem_mb,nats2_js_storage_mb"
            ),
            "{header}"
        );
        let columns = header.split(',').count();
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter().all(|r| r.split(',').count() == columns),
            "{csv}"
        );
        // nats2 down in second 2: empty cells, not zeros.
        assert!(rows[2].ends_with(",0.500,100.0,50.0,,,"), "{}", rows[2]);
        assert!(rows[0].contains(",0.100,10.0,,"), "{}", rows[0]);
    }

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape_markup("p99 < 250ms & \"x\" 'y' >\u{1}"),
            "p99 &lt; 250ms &amp; &quot;x&quot; &#39;y&#39; &gt; "
        );
    }
}
