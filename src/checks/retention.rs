//! The retention check: a stream whose scenario overrides `max_age` or `max_bytes` must keep to
//! them while the run writes into it.
//!
//! A sampler asks each such stream for its info once a second, from the start of the load until the
//! read-back is done, and keeps one small row per second: bytes, messages, first and last sequence,
//! the age of the oldest message (sample time − `first_ts`) and the limits the server holds. At the
//! end the rows are judged:
//!
//! - **age**: the oldest message is never older than `max_age` + [`AGE_TOLERANCE`];
//! - **bytes**: the stream never holds more than `max_bytes` (+ [`BYTES_TOLERANCE`]);
//! - **oldest first**: the first sequence never goes backward, and a message stored by the time of
//!   one sample (sequence ≤ that sample's last sequence) is gone by the first sample taken
//!   `max_age` + tolerance later, so discards take the oldest messages first and keep pace;
//! - **limits held**: the server's `max_age` / `max_bytes` equal the declared ones in every sample
//!   (a stream changed behind the run's back, "verify drift" while the run is on).
//!
//! Why these tolerances: JetStream expires by age on a timer, not on each write. Measured on
//! nats-server 2.15.1 (R3 file streams, a loaded 2-core machine, the `retention` scenario), the
//! oldest message was at most 0.3–0.5 s past `max_age` at one-second sampling (the expiry timer plus
//! the stream-info round trip), so [`age_tolerance`] is 2 s + 5 % of `max_age`: four times the
//! measured lag, and room for a stalled leader. Bytes are enforced when a message is stored, under
//! the stream's lock, so no sample ever saw a stream above `max_bytes`; [`BYTES_TOLERANCE`] is 0.
//!
//! The age relies on the harness's and the servers' clocks agreeing (the same machine for the local
//! backend; NTP for external clusters). Memory: one row per stream per second of the run.

use std::time::Duration;

use async_nats::jetstream::Context;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How far past `max_age` the oldest message may be: a fixed allowance for JetStream's expiry
/// timer and the one-second sampling, plus a share of `max_age` for long ages.
pub fn age_tolerance(max_age: Duration) -> Duration {
    AGE_TOLERANCE + max_age.mul_f64(0.05)
}

/// The fixed part of [`age_tolerance`].
pub const AGE_TOLERANCE: Duration = Duration::from_secs(2);
/// How many bytes above `max_bytes` a sample may show.
pub const BYTES_TOLERANCE: u64 = 0;
/// How long one stream-info request may take before the sample is skipped.
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(900);

/// The limits a scenario declared for one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredRetention {
    pub stream: String,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

/// One second of one stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetentionSample {
    /// Seconds since the start of the load.
    pub second: f64,
    pub bytes: u64,
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Age of the oldest message, seconds (`None` when the stream is empty).
    pub oldest_age_s: Option<f64>,
    /// The limits the server held at that moment (seconds; 0 = none).
    pub server_max_age_s: f64,
    pub server_max_bytes: i64,
}

/// The verdict on one stream.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionCheck {
    pub stream: String,
    pub max_age_s: Option<f64>,
    pub max_bytes: Option<u64>,
    /// How far past `max_age` the oldest message may be, seconds.
    pub age_tolerance_s: Option<f64>,
    /// Highest age of the oldest message seen, seconds.
    pub max_oldest_age_s: Option<f64>,
    pub peak_bytes: u64,
    /// Messages removed while sampled (first sequence at the end − at the start).
    pub first_seq_advance: u64,
    pub passed: bool,
    pub detail: String,
    /// The stream over time, one row a second.
    pub samples: Vec<RetentionSample>,
}

/// Samples the declared streams once a second until stopped.
pub struct RetentionSampler {
    stop: CancellationToken,
    task: JoinHandle<Vec<Vec<RetentionSample>>>,
    declared: Vec<DeclaredRetention>,
}

impl RetentionSampler {
    /// Starts sampling `declared` (streams without a declared limit are not sampled); `start` is the
    /// instant the seconds count from.
    pub fn start(js: Context, declared: Vec<DeclaredRetention>, start: Instant) -> Self {
        let stop = CancellationToken::new();
        let names: Vec<String> = declared.iter().map(|d| d.stream.clone()).collect();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples: Vec<Vec<RetentionSample>> = vec![Vec::new(); names.len()];
            if names.is_empty() {
                return samples;
            }
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = token.cancelled() => return samples,
                }
                for (name, rows) in names.iter().zip(samples.iter_mut()) {
                    if let Ok(Some(row)) =
                        tokio::time::timeout(SAMPLE_TIMEOUT, sample(&js, name, start)).await
                    {
                        rows.push(row);
                    }
                }
            }
        });
        Self {
            stop,
            task,
            declared,
        }
    }

    /// Stops sampling and judges each stream.
    pub async fn finish(self) -> Vec<RetentionCheck> {
        self.stop.cancel();
        let samples = self.task.await.unwrap_or_default();
        self.declared
            .iter()
            .zip(samples.iter().chain(std::iter::repeat(&Vec::new())))
            .map(|(d, rows)| judge(d, rows))
            .collect()
    }
}

/// One sample of `stream` now (`None`: it did not answer); `start` is the instant seconds count from.
pub async fn sample(js: &Context, stream: &str, start: Instant) -> Option<RetentionSample> {
    let mut handle = js.get_stream(stream).await.ok()?;
    let info = handle.info().await.ok()?;
    let now = OffsetDateTime::now_utc();
    let state = &info.state;
    let oldest_age_s =
        (state.messages > 0).then(|| (now - state.first_timestamp).as_seconds_f64().max(0.0));
    Some(RetentionSample {
        second: start.elapsed().as_secs_f64(),
        bytes: state.bytes,
        messages: state.messages,
        first_seq: state.first_sequence,
        last_seq: state.last_sequence,
        oldest_age_s,
        server_max_age_s: info.config.max_age.as_secs_f64(),
        server_max_bytes: info.config.max_bytes,
    })
}

/// Judges one stream's samples against its declared limits.
pub fn judge(declared: &DeclaredRetention, samples: &[RetentionSample]) -> RetentionCheck {
    let max_age = declared.max_age.map(|a| a.as_secs_f64());
    let tolerance = declared.max_age.map(|a| age_tolerance(a).as_secs_f64());
    let age_and_tolerance = max_age.zip(tolerance);
    // The first breach of each rule, in the order of the module header; at most 8 listed.
    let findings = [
        // Limits the server holds.
        max_age.and_then(|age| server_max_age_differs(age, samples)),
        declared
            .max_bytes
            .and_then(|bytes| server_max_bytes_differs(bytes, samples)),
        // Age of the oldest message.
        age_and_tolerance.and_then(|(age, tol)| oldest_too_old(age, tol, samples)),
        // Bytes.
        declared
            .max_bytes
            .and_then(|limit| held_too_many_bytes(limit, samples)),
        // Oldest first: the first sequence never goes backward ...
        first_seq_went_back(samples),
        // ... and what was stored by one sample is gone max_age + tolerance later.
        age_and_tolerance.and_then(|(age, tol)| stayed_past_max_age(age, tol, samples)),
    ];
    let mut problems: Vec<String> = findings.into_iter().flatten().take(8).collect();
    if samples.is_empty() {
        problems.push("no sample of the stream could be taken".into());
    }
    let first_seq_advance = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.first_seq.saturating_sub(a.first_seq),
        _ => 0,
    };
    let mut check = RetentionCheck {
        stream: declared.stream.clone(),
        max_age_s: max_age,
        max_bytes: declared.max_bytes,
        age_tolerance_s: tolerance,
        max_oldest_age_s: samples
            .iter()
            .filter_map(|s| s.oldest_age_s)
            .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a)))),
        peak_bytes: samples.iter().map(|s| s.bytes).max().unwrap_or(0),
        first_seq_advance,
        passed: problems.is_empty(),
        detail: String::new(),
        samples: samples.to_vec(),
    };
    check.detail = if check.passed {
        passed_detail(&check)
    } else {
        problems.join("; ")
    };
    check
}

/// The first sample in which the server's `max_age` is not the declared `age` (seconds).
fn server_max_age_differs(age: f64, samples: &[RetentionSample]) -> Option<String> {
    let s = samples
        .iter()
        .find(|s| (s.server_max_age_s - age).abs() > 0.001)?;
    Some(format!(
        "the server holds max_age {:.0}s, the scenario declared {age:.0}s (at {:.0}s)",
        s.server_max_age_s, s.second
    ))
}

/// The first sample in which the server's `max_bytes` is not the declared `bytes`.
fn server_max_bytes_differs(bytes: u64, samples: &[RetentionSample]) -> Option<String> {
    let s = samples
        .iter()
        .find(|s| u64::try_from(s.server_max_bytes).ok() != Some(bytes))?;
    Some(format!(
        "the server holds max_bytes {}, the scenario declared {bytes} (at {:.0}s)",
        s.server_max_bytes, s.second
    ))
}

/// The first sample whose oldest message is older than `age` + `tol` (seconds).
fn oldest_too_old(age: f64, tol: f64, samples: &[RetentionSample]) -> Option<String> {
    let s = samples
        .iter()
        .find(|s| s.oldest_age_s.is_some_and(|a| a > age + tol))?;
    Some(format!(
        "the oldest message was {:.1}s old at {:.0}s (max_age {age:.0}s + {tol:.1}s tolerance)",
        s.oldest_age_s.unwrap_or_default(),
        s.second
    ))
}

/// The first sample in which the stream holds more than `limit` bytes (+ [`BYTES_TOLERANCE`]).
fn held_too_many_bytes(limit: u64, samples: &[RetentionSample]) -> Option<String> {
    let s = samples
        .iter()
        .find(|s| s.bytes > limit.saturating_add(BYTES_TOLERANCE))?;
    Some(format!(
        "the stream held {} bytes at {:.0}s (max_bytes {limit})",
        s.bytes, s.second
    ))
}

/// The first time the first sequence went backward between two samples.
fn first_seq_went_back(samples: &[RetentionSample]) -> Option<String> {
    let pair = samples
        .windows(2)
        .find(|pair| pair[1].first_seq < pair[0].first_seq)?;
    Some(format!(
        "the first sequence went back from {} to {} at {:.0}s",
        pair[0].first_seq, pair[1].first_seq, pair[1].second
    ))
}

/// The first message stored by one sample that is still the first message `age` + `tol` seconds
/// later (the first sample at or after that time, if the stream is not empty then).
fn stayed_past_max_age(age: f64, tol: f64, samples: &[RetentionSample]) -> Option<String> {
    let mut later = 0;
    for (i, earlier) in samples.iter().enumerate() {
        let due = earlier.second + age + tol;
        later = later.max(i);
        while later < samples.len() && samples[later].second < due {
            later += 1;
        }
        let after = samples.get(later)?;
        if after.messages > 0 && after.first_seq <= earlier.last_seq {
            return Some(format!(
                "sequence {} (stored by {:.0}s) was still the first at {:.0}s, past max_age {age:.0}s + {tol:.1}s",
                after.first_seq, earlier.second, after.second
            ));
        }
    }
    None
}

/// The detail of a check that passed: the oldest age and peak bytes seen against the limits, and how
/// many messages were removed.
fn passed_detail(check: &RetentionCheck) -> String {
    let mut parts = Vec::new();
    if let (Some(age), Some(tol), Some(oldest)) = (
        check.max_age_s,
        check.age_tolerance_s,
        check.max_oldest_age_s,
    ) {
        parts.push(format!(
            "oldest message at most {oldest:.1}s old (max_age {age:.0}s + {tol:.1}s)"
        ));
    }
    if let Some(limit) = check.max_bytes {
        parts.push(format!(
            "peak {} bytes of max_bytes {limit}",
            check.peak_bytes
        ));
    }
    parts.push(format!(
        "{} removed oldest first over {} samples",
        check.first_seq_advance,
        check.samples.len()
    ));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> DeclaredRetention {
        DeclaredRetention {
            stream: "FOCUS".into(),
            max_age: Some(Duration::from_secs(10)),
            max_bytes: Some(1_000_000),
        }
    }

    /// 100 messages a second, each kept 10 s: the stream a healthy server shows.
    fn healthy(seconds: u64) -> Vec<RetentionSample> {
        (0..seconds)
            .map(|t| {
                let last = 100 * (t + 1);
                let first = if t >= 10 { 100 * (t - 10) + 1 } else { 1 };
                RetentionSample {
                    second: t as f64,
                    bytes: (last - first + 1) * 500,
                    messages: last - first + 1,
                    first_seq: first,
                    last_seq: last,
                    oldest_age_s: Some(t.min(10) as f64 + 0.4),
                    server_max_age_s: 10.0,
                    server_max_bytes: 1_000_000,
                }
            })
            .collect()
    }

    #[test]
    fn a_stream_that_keeps_its_limits_passes() {
        let check = judge(&declared(), &healthy(40));
        assert!(check.passed, "{}", check.detail);
        assert_eq!(check.first_seq_advance, 2900);
    }

    #[test]
    fn messages_kept_too_long_fail_with_the_age() {
        let mut samples = healthy(40);
        for s in &mut samples[20..] {
            s.first_seq = 1001;
            s.oldest_age_s = Some(s.second - 10.0 + 10.4);
            s.server_max_age_s = 3600.0;
        }
        let check = judge(&declared(), &samples);
        assert!(!check.passed);
        assert!(check.detail.contains("max_age 3600s"), "{}", check.detail);
        assert!(
            check.detail.contains("oldest message was"),
            "{}",
            check.detail
        );
        assert!(check.detail.contains("still the first"), "{}", check.detail);
    }

    #[test]
    fn too_many_bytes_and_a_first_sequence_going_back_fail() {
        let mut samples = healthy(20);
        samples[12].bytes = 1_000_001;
        samples[15].first_seq = 3;
        let check = judge(&declared(), &samples);
        assert!(!check.passed);
        assert!(check.detail.contains("1000001 bytes"), "{}", check.detail);
        assert!(check.detail.contains("went back"), "{}", check.detail);
    }
}
