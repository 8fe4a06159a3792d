//! The retention check: a stream whose scenario overrides `max_age`, `max_bytes` or `max_msgs`
//! must keep to them while the run writes into it.
//!
//! A sampler asks each such stream for its info once a second, from the start of the load until the
//! read-back is done, plus once more when it is stopped (the stream as the run left it), and keeps
//! one small row per sample: bytes, messages, first and last sequence, the age of the oldest message
//! (sample time − `first_ts`) and the limits and discard policy the server holds. At the end the
//! rows are judged:
//!
//! - **age**: the oldest message is never older than `max_age` + [`AGE_TOLERANCE`];
//! - **bytes**: the stream never holds more than `max_bytes` (+ [`BYTES_TOLERANCE`]);
//! - **messages**: the stream never holds more than `max_msgs` (+ [`MSGS_TOLERANCE`]);
//! - **oldest first**: the first sequence never goes backward, and a message stored by the time of
//!   one sample (sequence ≤ that sample's last sequence) is gone by the first sample taken
//!   `max_age` + tolerance later, so discards take the oldest messages first and keep pace. With
//!   `max_msgs` and discard `old`, the sequences kept (first to last) span at most `max_msgs`: the
//!   excess came off the front, not out of the middle;
//! - **only the excess** (`max_msgs` the stream's only declared limit): between two samples the
//!   first sequence advances by exactly the messages that no longer fit (those stored since the
//!   earlier sample, less the room it had left) under discard `old`, and not at all under discard
//!   `new` (there the server refuses the excess instead). A stream that drops more than its limit
//!   asks would otherwise pass the ledger check, which counts retention's removals as not lost;
//! - **limits held**: the server's `max_age` / `max_bytes` / `max_msgs` equal the declared ones in
//!   every sample (a stream changed behind the run's back, "verify drift" while the run is on).
//!
//! Why these tolerances: JetStream expires by age on a timer, not on each write. Measured on
//! nats-server 2.15.1 (R3 file streams, a loaded 2-core machine, the `retention` scenario), the
//! oldest message was at most 0.3–0.5 s past `max_age` at one-second sampling (the expiry timer plus
//! the stream-info round trip), so [`age_tolerance`] is 2 s + 5 % of `max_age`: four times the
//! measured lag, and room for a stalled leader. Bytes are enforced when a message is stored, under
//! the stream's lock, so no sample ever saw a stream above `max_bytes`; [`BYTES_TOLERANCE`] is 0.
//! The message count likewise ([`MSGS_TOLERANCE`] is 0; see the constant for the measurement).
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
/// How many messages above `max_msgs` a sample may show. JetStream enforces the count as each
/// message is stored, under the stream's lock, and stream info reads that state under the same
/// lock (nats-server 2.15.1, R3: no sample above the limit in the `max_msgs` tests' runs).
pub const MSGS_TOLERANCE: u64 = 0;
/// How long one stream-info request may take before the sample is skipped.
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(900);

/// The limits a scenario declared for one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredRetention {
    pub stream: String,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
    /// Messages kept (`None`: no count limit declared).
    pub max_msgs: Option<u64>,
}

impl DeclaredRetention {
    /// `max_msgs` is the only limit declared: then nothing but the count may remove messages.
    fn count_only(&self) -> bool {
        self.max_msgs.is_some() && self.max_age.is_none() && self.max_bytes.is_none()
    }
}

/// What the server does with a message that does not fit (JetStream's `discard`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    /// The oldest messages go, publishes keep succeeding (the seed's streams).
    Old,
    /// The new message is refused, the stream keeps what it has.
    New,
}

impl std::fmt::Display for Discard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Discard::Old => "old",
            Discard::New => "new",
        })
    }
}

impl From<async_nats::jetstream::stream::DiscardPolicy> for Discard {
    fn from(policy: async_nats::jetstream::stream::DiscardPolicy) -> Self {
        match policy {
            async_nats::jetstream::stream::DiscardPolicy::New => Discard::New,
            _ => Discard::Old,
        }
    }
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
    /// The server's `max_msgs` (-1 = none).
    pub server_max_msgs: i64,
    pub server_discard: Discard,
}

/// The verdict on one stream.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionCheck {
    pub stream: String,
    pub max_age_s: Option<f64>,
    pub max_bytes: Option<u64>,
    pub max_msgs: Option<u64>,
    /// How far past `max_age` the oldest message may be, seconds.
    pub age_tolerance_s: Option<f64>,
    /// Highest age of the oldest message seen, seconds.
    pub max_oldest_age_s: Option<f64>,
    pub peak_bytes: u64,
    /// Most messages held in one sample.
    pub peak_messages: u64,
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
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = token.cancelled() => true,
                };
                // When stopped, one more sample: the stream as the run left it, so "at most
                // max_msgs after the run" is judged on its final state, not on a second before.
                for (name, rows) in names.iter().zip(samples.iter_mut()) {
                    if let Ok(Some(row)) =
                        tokio::time::timeout(SAMPLE_TIMEOUT, sample(&js, name, start)).await
                    {
                        rows.push(row);
                    }
                }
                if last {
                    return samples;
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
        server_max_msgs: info.config.max_messages,
        server_discard: info.config.discard.into(),
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
        declared
            .max_msgs
            .and_then(|msgs| server_max_msgs_differs(msgs, samples)),
        // Age of the oldest message.
        age_and_tolerance.and_then(|(age, tol)| oldest_too_old(age, tol, samples)),
        // Bytes.
        declared
            .max_bytes
            .and_then(|limit| held_too_many_bytes(limit, samples)),
        // Messages.
        declared
            .max_msgs
            .and_then(|limit| held_too_many_messages(limit, samples)),
        // Oldest first: the first sequence never goes backward ...
        first_seq_went_back(samples),
        // ... what was stored by one sample is gone max_age + tolerance later ...
        age_and_tolerance.and_then(|(age, tol)| stayed_past_max_age(age, tol, samples)),
        // ... and the excess over max_msgs came off the front.
        declared
            .max_msgs
            .and_then(|limit| kept_span_too_wide(limit, samples)),
        // Only the excess: nothing else may remove messages from a count-limited stream.
        declared
            .max_msgs
            .filter(|_| declared.count_only())
            .and_then(|limit| removed_more_than_the_excess(limit, samples)),
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
        max_msgs: declared.max_msgs,
        age_tolerance_s: tolerance,
        max_oldest_age_s: samples
            .iter()
            .filter_map(|s| s.oldest_age_s)
            .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a)))),
        peak_bytes: samples.iter().map(|s| s.bytes).max().unwrap_or(0),
        peak_messages: samples.iter().map(|s| s.messages).max().unwrap_or(0),
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

/// The first sample in which the server's `max_msgs` is not the declared `msgs`.
fn server_max_msgs_differs(msgs: u64, samples: &[RetentionSample]) -> Option<String> {
    let s = samples
        .iter()
        .find(|s| u64::try_from(s.server_max_msgs).ok() != Some(msgs))?;
    Some(format!(
        "the server holds max_msgs {}, the scenario declared {msgs} (at {:.0}s)",
        s.server_max_msgs, s.second
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

/// The first sample in which the stream holds more than `limit` messages (+ [`MSGS_TOLERANCE`]).
fn held_too_many_messages(limit: u64, samples: &[RetentionSample]) -> Option<String> {
    let s = samples
        .iter()
        .find(|s| s.messages > limit.saturating_add(MSGS_TOLERANCE))?;
    Some(format!(
        "the stream held {} messages at {:.0}s (max_msgs {limit})",
        s.messages, s.second
    ))
}

/// Under discard `old`, the first sample whose kept sequences (first to last) span more than
/// `limit`: messages went from the middle while older ones stayed.
fn kept_span_too_wide(limit: u64, samples: &[RetentionSample]) -> Option<String> {
    let s = samples.iter().find(|s| {
        s.server_discard == Discard::Old
            && s.messages > 0
            && s.last_seq.saturating_sub(s.first_seq) >= limit
    })?;
    Some(format!(
        "sequences {}..={} were kept at {:.0}s, more than max_msgs {limit} apart: the oldest were not the ones discarded",
        s.first_seq, s.last_seq, s.second
    ))
}

/// On a stream whose only declared limit is `limit` messages, the first pair of samples between
/// which the first sequence advanced further than the excess: under discard `old` the messages
/// stored since the earlier sample less the room it had left, under discard `new` none.
fn removed_more_than_the_excess(limit: u64, samples: &[RetentionSample]) -> Option<String> {
    samples.windows(2).find_map(|pair| {
        let (a, b) = (&pair[0], &pair[1]);
        // An empty stream's next message takes its last sequence + 1 (a new stream says first 0).
        let a_first = if a.messages == 0 {
            a.last_seq + 1
        } else {
            a.first_seq
        };
        let advance = b.first_seq.saturating_sub(a_first);
        let excess = match b.server_discard {
            Discard::Old => {
                let stored = b.last_seq.saturating_sub(a.last_seq);
                stored.saturating_sub(limit.saturating_sub(a.messages))
            }
            Discard::New => 0,
        };
        (advance > excess).then(|| {
            format!(
                "the first sequence advanced {advance} between {:.0}s and {:.0}s, but only {excess} message(s) exceeded max_msgs {limit} (discard {}): messages were removed that the limit did not ask for",
                a.second, b.second, b.server_discard
            )
        })
    })
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
    if let Some(limit) = check.max_msgs {
        parts.push(format!(
            "at most {} messages of max_msgs {limit}",
            check.peak_messages
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
            max_msgs: None,
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
                    server_max_msgs: -1,
                    server_discard: Discard::Old,
                }
            })
            .collect()
    }

    fn count_limited() -> DeclaredRetention {
        DeclaredRetention {
            stream: "FOCUS".into(),
            max_age: None,
            max_bytes: None,
            max_msgs: Some(500),
        }
    }

    /// 100 messages a second into a stream that keeps 500 (discard old), from a new stream (first
    /// sequence 0) on: what a healthy server shows.
    fn keeping_500(seconds: u64) -> Vec<RetentionSample> {
        (0..seconds)
            .map(|t| {
                let last = 100 * t;
                let first = if last == 0 {
                    0
                } else {
                    last.saturating_sub(500) + 1
                };
                let messages = if last == 0 { 0 } else { last - first + 1 };
                RetentionSample {
                    second: t as f64,
                    bytes: messages * 400,
                    messages,
                    first_seq: first,
                    last_seq: last,
                    oldest_age_s: (messages > 0).then_some(5.0),
                    server_max_age_s: 0.0,
                    server_max_bytes: -1,
                    server_max_msgs: 500,
                    server_discard: Discard::Old,
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

    #[test]
    fn a_stream_that_keeps_max_msgs_by_discarding_the_oldest_passes() {
        let check = judge(&count_limited(), &keeping_500(20));
        assert!(check.passed, "{}", check.detail);
        assert_eq!(check.peak_messages, 500);
        // 1900 stored, 500 kept: the first sequence moved from 0 (new stream) to 1401.
        assert_eq!(check.first_seq_advance, 1401);
        assert!(
            check
                .detail
                .contains("at most 500 messages of max_msgs 500"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn a_stream_without_its_max_msgs_fails_with_the_count_and_the_limit() {
        // The server never got the limit: the stream keeps everything.
        let samples: Vec<_> = keeping_500(20)
            .into_iter()
            .map(|mut s| {
                s.first_seq = s.first_seq.min(1);
                s.messages = s.last_seq;
                s.server_max_msgs = -1;
                s
            })
            .collect();
        let check = judge(&count_limited(), &samples);
        assert!(!check.passed);
        assert!(
            check
                .detail
                .contains("the server holds max_msgs -1, the scenario declared 500"),
            "{}",
            check.detail
        );
        assert!(
            check
                .detail
                .contains("the stream held 600 messages at 6s (max_msgs 500)"),
            "{}",
            check.detail
        );
        assert!(
            check.detail.contains("sequences 1..=600"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn messages_discarded_from_the_middle_or_beyond_the_excess_fail() {
        // From 10 s on the server drops the newest instead: the count holds, the oldest stay.
        let mut middle = keeping_500(20);
        for s in &mut middle[10..] {
            s.first_seq = 501;
        }
        let check = judge(&count_limited(), &middle);
        assert!(!check.passed);
        assert!(
            check
                .detail
                .contains("the oldest were not the ones discarded"),
            "{}",
            check.detail
        );
        // At 12 s the server drops 150 more than the limit asks for.
        let mut eager = keeping_500(20);
        eager[12].first_seq += 150;
        eager[12].messages -= 150;
        let check = judge(&count_limited(), &eager);
        assert!(!check.passed);
        assert!(
            check
                .detail
                .contains("the first sequence advanced 250 between 11s and 12s, but only 100"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn under_discard_new_the_excess_is_refused_and_nothing_is_removed() {
        // The stream fills to 500 and stays there: new messages were refused.
        let full: Vec<_> = (0..20)
            .map(|t| {
                let last = (100 * t).min(500);
                RetentionSample {
                    second: t as f64,
                    bytes: last * 400,
                    messages: last,
                    first_seq: u64::from(last > 0),
                    last_seq: last,
                    oldest_age_s: (last > 0).then_some(t as f64),
                    server_max_age_s: 0.0,
                    server_max_bytes: -1,
                    server_max_msgs: 500,
                    server_discard: Discard::New,
                }
            })
            .collect();
        let check = judge(&count_limited(), &full);
        assert!(check.passed, "{}", check.detail);
        let mut discarding = full;
        discarding[15].first_seq = 101;
        let check = judge(&count_limited(), &discarding);
        assert!(!check.passed);
        assert!(check.detail.contains("(discard new)"), "{}", check.detail);
    }
}
