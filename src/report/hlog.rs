//! `latency.hlog`: the run's latency histograms as a standard HdrHistogram interval log (the format
//! of HdrHistogram's `HistogramLogWriter`), one line per second per metric, tagged `corrected`,
//! `service` and `send_delay`. Values are µs. Tools such as HdrHistogram's `HistogramLogProcessor`
//! or `hdr-plot` read it; so does `hdrhistogram::serialization::interval_log::IntervalLogIterator`.
//!
//! The header (`#[StartTime: …]`, `#[BaseTime: …]`, the legend line) is written when the file is
//! created; the sampler appends and flushes each second's lines, so a run that dies leaves every
//! whole second it sampled.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::load::metrics::LatencySet;

/// The file name inside a run dir.
pub const FILE_NAME: &str = "latency.hlog";

/// The tags of the three metrics, in the order they are written.
pub const TAGS: [&str; 3] = ["corrected", "service", "send_delay"];

const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// An interval log being appended to.
pub struct HlogWriter {
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

impl HlogWriter {
    /// Creates `path` and writes the header; interval start times are offsets from `start`.
    pub fn create(path: &Path, start: SystemTime) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("aivo-load latency histograms, values in microseconds")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut serializer)?;
        out.write_all(LEGEND.as_bytes())?;
        out.flush()?;
        Ok(Self { out, serializer })
    }

    /// Appends one interval (`from` after the base time, `length` long): one line per metric of
    /// [`TAGS`], in that order, and flushes them.
    pub fn append(&mut self, from: Duration, length: Duration, set: &LatencySet) -> io::Result<()> {
        let histograms = [&set.latency, &set.service, &set.send_delay];
        // No header options: the builder writes nothing before the lines.
        let mut log =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.out, &mut self.serializer)?;
        for (tag, histogram) in TAGS.iter().zip(histograms) {
            log.write_histogram(histogram.histogram(), from, length, Tag::new(tag))
                .map_err(|e| io::Error::other(format!("{e}")))?;
        }
        self.out.flush()
    }
}

/// Reads back the per-second histograms of a `latency.hlog` this module wrote, keyed by the second
/// each interval starts at (`report merge` adds the workers' seconds exactly).
pub fn read_seconds(path: &Path) -> Result<BTreeMap<u64, LatencySet>, String> {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut seconds: BTreeMap<u64, LatencySet> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&text) {
        let entry =
            entry.map_err(|e| format!("{}: not an interval log ({e:?})", path.display()))?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let Some(tag) = interval.tag() else {
            continue;
        };
        let second = interval.start_timestamp().as_secs_f64().round() as u64;
        let set = seconds.entry(second).or_default();
        let histogram = match tag.as_str() {
            "corrected" => &mut set.latency,
            "service" => &mut set.service,
            "send_delay" => &mut set.send_delay,
            _ => continue,
        };
        // The writer's lines are the same V2 base64 as `DurationHistogram::to_base64`.
        histogram
            .add_base64(interval.encoded_histogram())
            .map_err(|e| format!("{}: second {second}: {e}", path.display()))?;
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::metrics::DurationHistogram;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::Histogram;

    fn histogram(values_ms: &[u64]) -> DurationHistogram {
        let mut h = DurationHistogram::new();
        for v in values_ms {
            h.record(Duration::from_millis(*v));
        }
        h
    }

    #[test]
    fn the_log_reads_back_with_the_totals_it_was_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut writer = HlogWriter::create(&path, start).expect("create");
        let seconds = [
            [
                histogram(&[5, 6, 7]),
                histogram(&[1, 2, 3]),
                histogram(&[4, 4, 4]),
            ],
            [
                histogram(&[9; 10]),
                histogram(&[8; 10]),
                histogram(&[1; 10]),
            ],
            [histogram(&[]), histogram(&[]), histogram(&[])],
        ];
        let mut totals = [
            DurationHistogram::new(),
            DurationHistogram::new(),
            DurationHistogram::new(),
        ];
        for (i, [a, b, c]) in seconds.iter().enumerate() {
            let set = LatencySet {
                latency: a.clone(),
                service: b.clone(),
                send_delay: c.clone(),
            };
            writer
                .append(Duration::from_secs(i as u64), Duration::from_secs(1), &set)
                .expect("append");
            totals[0].merge(a);
            totals[1].merge(b);
            totals[2].merge(c);
        }
        drop(writer);
        let text = std::fs::read(&path).expect("read");
        let header = String::from_utf8_lossy(&text);
        assert!(header.contains("#[StartTime: 1700000000.000"), "{header}");
        assert!(header.contains("#[BaseTime: 1700000000.000"), "{header}");
        assert!(header.contains(LEGEND.trim_end()), "{header}");

        let mut read: [Histogram<u64>; 3] = std::array::from_fn(|_| {
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")
        });
        let mut lines = 0;
        let mut deserializer = Deserializer::new();
        for entry in IntervalLogIterator::new(&text) {
            let LogEntry::Interval(interval) = entry.expect("a valid log entry") else {
                continue;
            };
            lines += 1;
            let tag = interval.tag().expect("tagged").as_str();
            let index = TAGS.iter().position(|t| *t == tag).expect("known tag");
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                interval.encoded_histogram(),
            )
            .expect("base64");
            let h: Histogram<u64> = deserializer
                .deserialize(&mut bytes.as_slice())
                .expect("a V2 histogram");
            read[index].add(&h).expect("same bounds");
        }
        assert_eq!(lines, 9, "one line per second per metric");
        for (read, total) in read.iter().zip(&totals) {
            assert_eq!(read.len(), total.count());
            assert_eq!(read.max(), total.histogram().max());
        }
        assert_eq!(totals[0].count(), 13);
    }
}
