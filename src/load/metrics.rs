//! Latency histograms and counters of the publisher engine.
//!
//! Three HdrHistograms per interval, in microseconds with 3 significant digits:
//! - `latency`: intended send time → ack (coordinated omission corrected: a stalled harness or
//!   cluster shows up here, because the clock starts when the event *should* have been sent);
//! - `service`: actual send → ack (what a closed-loop tool like `nats bench` reports);
//! - `send_delay`: intended → actual send (how far the harness fell behind its schedule).
//!
//! Publishers record into their own [`IntervalStats`]; the run's sampler swaps them out each second
//! and merges them, so per-second and whole-run figures come from the same exact data.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest value a histogram holds: one hour in µs. Larger samples are clamped to it.
const MAX_MICROS: u64 = 3_600_000_000;

/// A histogram of durations in µs.
#[derive(Debug, Clone)]
pub struct DurationHistogram(Histogram<u64>);

impl Default for DurationHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl DurationHistogram {
    pub fn new() -> Self {
        Self::with_precision(3)
    }

    /// A histogram with `digits` significant digits (1..=5); 2 digits take a tenth of the memory of 3.
    pub fn with_precision(digits: u8) -> Self {
        // Bounds are constants and `digits` is clamped to what hdrhistogram accepts.
        Self(
            Histogram::new_with_bounds(1, MAX_MICROS, digits.clamp(1, 5))
                .expect("valid histogram bounds"),
        )
    }

    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.0.saturating_record(micros);
    }

    /// Records `count` samples of `micros` at once (clamped like `record`).
    pub fn record_micros_n(&mut self, micros: u64, count: u64) {
        let _ = self.0.record_n(micros.clamp(1, MAX_MICROS), count);
    }

    /// Samples at or below `micros` (at the histogram's precision).
    pub fn count_at_or_below_micros(&self, micros: u64) -> u64 {
        self.0.count_between(0, micros)
    }

    /// Adds every sample of `other` (exact: same bounds and precision).
    pub fn merge(&mut self, other: &DurationHistogram) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The underlying HdrHistogram (µs), for writers of its standard formats (`report::hlog`).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    /// The value at quantile `q` (0..=1) in µs; 0 when empty.
    pub fn quantile_micros(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    pub fn max_micros(&self) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.max()
        }
    }

    pub fn mean_micros(&self) -> f64 {
        self.0.mean()
    }

    /// The usual percentiles, in milliseconds.
    pub fn summary(&self) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            count: self.count(),
            mean: self.mean_micros() / 1000.0,
            p50: ms(self.quantile_micros(0.50)),
            p90: ms(self.quantile_micros(0.90)),
            p99: ms(self.quantile_micros(0.99)),
            p999: ms(self.quantile_micros(0.999)),
            max: ms(self.max_micros()),
        }
    }

    /// The histogram in HdrHistogram's V2 compressed form, base64: other runs or tools can merge it.
    pub fn to_base64(&self) -> String {
        histogram_to_base64(&self.0)
    }
}

impl DurationHistogram {
    /// Reads back what [`DurationHistogram::to_base64`] wrote; the samples are merged into a
    /// histogram of the usual bounds, so a decoded one adds to live ones exactly.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let mut out = Self::new();
        add_base64(&mut out.0, text)?;
        Ok(out)
    }

    /// Adds the samples of a histogram [`DurationHistogram::to_base64`] wrote (a worker's, in
    /// `report merge`) to this one, keeping this one's precision.
    pub fn add_base64(&mut self, text: &str) -> Result<(), String> {
        add_base64(&mut self.0, text)
    }
}

/// A histogram in HdrHistogram's V2 compressed form, base64.
pub fn histogram_to_base64(histogram: &Histogram<u64>) -> String {
    use base64::Engine as _;
    use hdrhistogram::serialization::Serializer as _;
    let mut bytes = Vec::new();
    let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
    match serializer.serialize(histogram, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// Adds the samples of a base64 V2 histogram to `into` (exact when both have the same bounds and
/// precision, as every histogram of one kind here has).
pub fn add_base64(into: &mut Histogram<u64>, text: &str) -> Result<(), String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let decoded: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e:?}"))?;
    into.add(&decoded)
        .map_err(|e| format!("histogram out of bounds: {e:?}"))
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// Looks a statistic up by the name thresholds use (`p50`, `p99.9`, `max`, `mean`).
    pub fn get(&self, stat: &str) -> Option<f64> {
        Some(match stat {
            "p50" => self.p50,
            "p90" => self.p90,
            "p99" => self.p99,
            "p99.9" => self.p999,
            "max" => self.max,
            "mean" => self.mean,
            _ => return None,
        })
    }
}

/// The three histograms of a set of publishes.
#[derive(Debug, Clone, Default)]
pub struct LatencySet {
    pub latency: DurationHistogram,
    pub service: DurationHistogram,
    pub send_delay: DurationHistogram,
}

impl LatencySet {
    pub fn merge(&mut self, other: &LatencySet) {
        self.latency.merge(&other.latency);
        self.service.merge(&other.service);
        self.send_delay.merge(&other.send_delay);
    }
}

/// Counters and histograms over an interval (a second, or a whole run once merged).
#[derive(Debug, Clone, Default)]
pub struct IntervalStats {
    /// Events handed to the client.
    pub attempted: u64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Events skipped because the publisher was too far behind its schedule.
    pub never_sent: u64,
    /// Bytes of payload handed to the client.
    pub payload_bytes: u64,
    /// Failures and unknown outcomes by kind ("timeout", "no_responders", "jetstream_10077", ...).
    pub errors: BTreeMap<String, u64>,
    /// Histograms of acknowledged publishes only.
    pub histograms: LatencySet,
}

impl IntervalStats {
    pub fn merge(&mut self, other: &IntervalStats) {
        self.attempted += other.attempted;
        self.acked += other.acked;
        self.failed += other.failed;
        self.unknown += other.unknown;
        self.never_sent += other.never_sent;
        self.payload_bytes += other.payload_bytes;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
        self.histograms.merge(&other.histograms);
    }

    pub fn error_count(&self) -> u64 {
        self.failed + self.unknown
    }
}

/// Figures of one subject over a whole run (per-subject figures are not kept per second: a
/// histogram per subject per second would cost more memory than the insight is worth).
#[derive(Debug, Clone)]
pub struct SubjectStats {
    pub subject: String,
    pub attempted: u64,
    pub acked: u64,
    pub payload_bytes: u64,
    /// Corrected latency of acked publishes, 2 significant digits.
    pub latency: DurationHistogram,
    /// Payload sizes in bytes, 2 significant digits.
    pub sizes: Histogram<u64>,
}

impl SubjectStats {
    pub fn new(subject: &str) -> Self {
        Self {
            subject: subject.to_string(),
            attempted: 0,
            acked: 0,
            payload_bytes: 0,
            latency: DurationHistogram::with_precision(2),
            // Constant bounds that hdrhistogram accepts; larger payloads saturate at 64 MiB.
            sizes: Histogram::new_with_bounds(1, 64 << 20, 2).expect("valid histogram bounds"),
        }
    }

    pub fn merge(&mut self, other: &SubjectStats) {
        self.attempted += other.attempted;
        self.acked += other.acked;
        self.payload_bytes += other.payload_bytes;
        self.latency.merge(&other.latency);
        let _ = self.sizes.add(&other.sizes);
    }

    pub fn record_size(&mut self, bytes: usize) {
        self.attempted += 1;
        self.payload_bytes += bytes as u64;
        self.sizes.saturating_record(bytes.max(1) as u64);
    }
}

/// Per-subject figures of a publisher, looked up by a linear scan: a domain has a handful of subjects,
/// and comparing a few short strings beats hashing on the per-event path.
#[derive(Debug, Clone, Default)]
pub struct SubjectTable {
    pub subjects: Vec<SubjectStats>,
}

impl SubjectTable {
    /// The index of `subject`, adding it on first sight.
    pub fn index_of(&mut self, subject: &str) -> usize {
        match self.subjects.iter().position(|s| s.subject == subject) {
            Some(index) => index,
            None => {
                self.subjects.push(SubjectStats::new(subject));
                self.subjects.len() - 1
            }
        }
    }

    /// Adds another table's figures subject by subject.
    pub fn merge(&mut self, other: &SubjectTable) {
        for stats in &other.subjects {
            let index = self.index_of(&stats.subject);
            self.subjects[index].merge(stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_base64() {
        let mut h = DurationHistogram::new();
        for ms in [1u64, 2, 3, 50, 700] {
            h.record(Duration::from_millis(ms));
        }
        let back = DurationHistogram::from_base64(&h.to_base64()).expect("decodes");
        assert_eq!(back.count(), 5);
        assert_eq!(back.max_micros(), h.max_micros());
        assert!(DurationHistogram::from_base64("not base64!").is_err());
    }

    #[test]
    fn merged_histograms_equal_one_histogram() {
        let mut whole = DurationHistogram::new();
        let mut parts = [DurationHistogram::new(), DurationHistogram::new()];
        for i in 1..=10_000u64 {
            let d = Duration::from_micros(i * 37 % 250_000 + 1);
            whole.record(d);
            parts[(i % 2) as usize].record(d);
        }
        let mut merged = DurationHistogram::new();
        merged.merge(&parts[0]);
        merged.merge(&parts[1]);
        assert_eq!(merged.summary(), whole.summary());
        assert!(!merged.to_base64().is_empty());
    }

    #[test]
    fn huge_values_are_clamped_not_lost() {
        let mut h = DurationHistogram::new();
        h.record(Duration::from_secs(7200));
        h.record(Duration::ZERO);
        assert_eq!(h.count(), 2);
        assert!(h.max_micros() >= MAX_MICROS - MAX_MICROS / 1000);
    }
}
