//! Run reports (DESIGN.md §6): one versioned [`RunReport`], written as `report.json`, `summary.md`,
//! `timeline.csv`, `report.html` (charts) and `junit.xml` (checks as test cases), and printed as a
//! compact end summary.

pub mod checks;
pub mod compare;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod terminal;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::chaos::engine::FaultEvent;
use crate::checks::catch_up::CatchUpCheck;
use crate::checks::dlq::DlqCheck;
use crate::checks::faults::FaultsCheck;
use crate::checks::no_loss::LedgerCheck;
use crate::checks::retention::RetentionCheck;
use crate::checks::stream_count::StreamCount;
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
    /// True when Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
    /// Set when an abort-on-fail threshold stopped the load early: which one, when, measured what.
    pub aborted: Option<String>,
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

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// Faults active during this second ("kill nats2").
    pub faults: Vec<String>,
    /// Events the indexer had not yet written (pending + unacknowledged), when it runs.
    pub indexer_lag: Option<u64>,
    /// Intended publish time → row in Postgres of the events intended in this second, ms.
    pub end_to_end_p50_ms: Option<f64>,
    pub end_to_end_p99_ms: Option<f64>,
}

/// The run's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// One line per failed check or threshold.
    pub failures: Vec<String>,
}

impl RunReport {
    /// Writes `report.json`, `summary.md`, `timeline.csv`, `report.html` and `junit.xml` into `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        std::fs::write(dir.join("summary.md"), markdown::render(self))?;
        std::fs::write(dir.join("timeline.csv"), self.timeline_csv())?;
        std::fs::write(dir.join("report.html"), html::render(self))?;
        std::fs::write(dir.join("junit.xml"), junit::render(self))?;
        Ok(())
    }

    fn timeline_csv(&self) -> String {
        let mut out = String::from("second,phase,target,attempted,acked,failed,unknown,never_sent,p50_ms,p99_ms,max_ms,send_delay_p99_ms,faults,indexer_lag,end_to_end_p50_ms,end_to_end_p99_ms\n");
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        for r in &self.timeline {
            out.push_str(&format!(
                "{},{},{:.1},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{},{},{},{}\n",
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
                opt(r.end_to_end_p99_ms)
            ));
        }
        out
    }
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

#[cfg(test)]
mod tests {
    use super::escape_markup;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape_markup("p99 < 250ms & \"x\" 'y' >\u{1}"),
            "p99 &lt; 250ms &amp; &quot;x&quot; &#39;y&#39; &gt; "
        );
    }
}
