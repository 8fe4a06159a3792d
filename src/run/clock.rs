//! A worker's clock against the cluster's: intended times across the workers of a segmented run
//! count from one `--start-at` read on each worker's own clock, so a worker whose clock is off
//! sends its whole schedule early or late, and `report merge` warns when the offsets differ.
//!
//! The probe: publish a small message into a stream of its own (`AIVO_LOAD_CLOCK`, in memory, one
//! replica, a few messages kept an hour, so it never touches the scenario's streams and their
//! counts) and read back the time the server stored it with. The server stamped it somewhere
//! between the send and the ack, so `stored - (send + ack) / 2` is the offset, give or take half
//! the round trip. Of a few probes the one with the shortest round trip is kept.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The probe's stream.
pub const CLOCK_STREAM: &str = "AIVO_LOAD_CLOCK";
/// Probes made; the one with the shortest round trip is kept.
const PROBES: usize = 5;
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The worker's clock minus the cluster's, as the probe saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// Positive: this worker's clock is ahead of the cluster's.
    pub offset_ms: f64,
    /// Half the probe's round trip: the offset is known to within this.
    pub uncertainty_ms: f64,
}

/// Probes the cluster `js` reaches; an error says why no offset was measured.
pub async fn measure(js: &jetstream::Context, worker: &str) -> Result<ClockOffset, String> {
    let config = stream::Config {
        name: CLOCK_STREAM.to_string(),
        subjects: vec![format!("{}.>", CLOCK_STREAM.to_lowercase())],
        storage: stream::StorageType::Memory,
        num_replicas: 1,
        max_messages: 1_000,
        max_age: Duration::from_secs(3_600),
        ..Default::default()
    };
    let stream = tokio::time::timeout(PROBE_TIMEOUT, js.get_or_create_stream(config))
        .await
        .map_err(|_| format!("creating {CLOCK_STREAM} took over {PROBE_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot create {CLOCK_STREAM}: {e}"))?;
    let subject = format!("{}.{worker}", CLOCK_STREAM.to_lowercase());
    let mut best: Option<ClockOffset> = None;
    for _ in 0..PROBES {
        let sent = OffsetDateTime::now_utc();
        let ack = async {
            js.publish(subject.clone(), bytes::Bytes::new())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        let ack = tokio::time::timeout(PROBE_TIMEOUT, ack)
            .await
            .map_err(|_| format!("a clock probe took over {PROBE_TIMEOUT:?}"))??;
        let acked = OffsetDateTime::now_utc();
        let stored = stream
            .get_raw_message(ack.sequence)
            .await
            .map_err(|e| format!("cannot read the clock probe back: {e}"))?
            .time;
        let offset = offset_of(sent, acked, stored);
        if best.is_none_or(|b| offset.uncertainty_ms < b.uncertainty_ms) {
            best = Some(offset);
        }
    }
    best.ok_or_else(|| "no clock probe was made".to_string())
}

/// The offset of the clock that read `sent` and `acked` against the one that stamped `stored`.
fn offset_of(sent: OffsetDateTime, acked: OffsetDateTime, stored: OffsetDateTime) -> ClockOffset {
    let round_trip = (acked - sent).as_seconds_f64() * 1000.0;
    let midpoint: OffsetDateTime = sent + (acked - sent) / 2;
    let offset: time::Duration = midpoint - stored;
    ClockOffset {
        offset_ms: offset.as_seconds_f64() * 1000.0,
        uncertainty_ms: round_trip / 2.0,
    }
}

/// The largest difference between two workers' offsets, ms (0 with fewer than two).
pub fn spread_ms(offsets: &[ClockOffset]) -> f64 {
    let low = offsets
        .iter()
        .map(|o| o.offset_ms)
        .fold(f64::INFINITY, f64::min);
    let high = offsets
        .iter()
        .map(|o| o.offset_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    if offsets.len() < 2 {
        0.0
    } else {
        high - low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_ahead_of_the_cluster_has_a_positive_offset() {
        let sent = time::macros::datetime!(2026-12-03 18:00:00.100 UTC);
        let acked = time::macros::datetime!(2026-12-03 18:00:00.104 UTC);
        // The server stamped it 50 ms before the worker's midpoint: the worker is 50 ms ahead.
        let stored = time::macros::datetime!(2026-12-03 18:00:00.052 UTC);
        let offset = offset_of(sent, acked, stored);
        assert!((offset.offset_ms - 50.0).abs() < 1e-6, "{offset:?}");
        assert!((offset.uncertainty_ms - 2.0).abs() < 1e-6, "{offset:?}");
        let other = ClockOffset {
            offset_ms: -30.0,
            uncertainty_ms: 1.0,
        };
        assert!((spread_ms(&[offset, other]) - 80.0).abs() < 1e-6);
        assert_eq!(spread_ms(&[offset]), 0.0);
    }
}
