//! The storage model: bytes on disk per message from the JetStream file store's record layout,
//! and, from a [`Forecast`], per stream: bytes per school day, which retention limit binds first,
//! how many days are really retained, and the `max_file_store` each node needs.
//!
//! # Record layout (nats-server `server/filestore.go`)
//! A message is one record in a message block: `total_len(4) seq(8) ts(8) subj_len(2)` — the
//! 22-byte `msgHdrSize` — then the subject, then, only when the message has headers (the `hbit` of
//! `total_len` set), `hdr_len(4)` and the header block, then the payload, then an 8-byte checksum
//! (`checksumSize`). `fileStoreMsgSizeRaw` gives the same sum, and it is what a stream's
//! `state.bytes` adds up and `max_bytes` is compared with, per replica. Memory storage counts
//! subject + headers + payload + 16 (`memStoreMsgSizeRaw`).
//!
//! Not in the model, left to the headroom factor: the Raft WAL of each replicated stream
//! (`_js_/<group>`, until it is compacted), consumer state, block index files and tombstones.
//! Checked against `state.bytes` and `/jsz` of a real cluster by `tests/it/storage_model.rs`.
//!
//! # Sizing
//! Volume is the forecast's at its horizon. Events happen on school days only, so a window of D
//! calendar days holds D × school_days_per_week / 7 school days of them (term time: the peak, as a
//! disk must hold it; holidays only lower it). Each limit (max_age, max_bytes, max_msgs) is turned
//! into the days after which it would start removing messages; the smallest binds. A node is taken
//! to hold one replica of every stream, which is exact when the replica count equals the node
//! count (R3 on the seed's 3 nodes) and the worst case of placement otherwise. What renders the
//! result is in `storage/render.rs` ([`markdown`], [`svg`]); the `capacity` verb and its report
//! files are not here.

use std::collections::BTreeMap;

use async_nats::jetstream::stream::{DiscardPolicy, StorageType};
use serde::{Deserialize, Serialize};

use super::forecast::{Forecast, MessageShape};
use crate::topology::{StreamDecl, Topology};

mod render;

pub use render::{markdown, svg};

/// `msgHdrSize`: total length (4), sequence (8), timestamp (8), subject length (2).
pub const RECORD_HEADER_BYTES: u64 = 22;
/// `checksumSize`: the highway hash closing every record.
pub const CHECKSUM_BYTES: u64 = 8;
/// The header block's length field, present only in records with headers.
pub const HEADER_LENGTH_BYTES: u64 = 4;
/// Memory storage: sequence and timestamp beside subject, headers and payload.
pub const MEMORY_RECORD_OVERHEAD: u64 = 16;

/// `max_file_store` in the seed's node configs (`compose/nats*.conf`: `1TB`, which nats-server
/// reads as 2^40 bytes) and in the local backend's (`cluster/node.rs`).
pub const SEED_MAX_FILE_STORE: u64 = 1 << 40;

/// The nodes of the seed's cluster.
pub const SEED_NODES: usize = 3;

const DAY_SECONDS: f64 = 86_400.0;

/// Bytes one message takes in a file store block, per replica.
///
/// `headers_len` is the header block as sent (see [`header_block_len`]); 0 means no headers, in
/// which case the record has no header length field either.
pub fn record_bytes(subject_len: u64, headers_len: u64, payload_len: u64) -> u64 {
    let headers = if headers_len == 0 {
        0
    } else {
        HEADER_LENGTH_BYTES + headers_len
    };
    RECORD_HEADER_BYTES + subject_len + headers + payload_len + CHECKSUM_BYTES
}

/// Bytes one message takes in a memory store, per replica.
pub fn memory_record_bytes(subject_len: u64, headers_len: u64, payload_len: u64) -> u64 {
    subject_len + headers_len + payload_len + MEMORY_RECORD_OVERHEAD
}

/// The header block a client sends for `headers`: `NATS/1.0\r\n`, `Name: value\r\n` per header,
/// and `\r\n`. No headers is 0 (no block at all).
pub fn header_block_len(headers: &[(&str, &str)]) -> u64 {
    if headers.is_empty() {
        return 0;
    }
    let lines: usize = headers
        .iter()
        .map(|(name, value)| name.len() + ": ".len() + value.len() + "\r\n".len())
        .sum();
    ("NATS/1.0\r\n".len() + lines + "\r\n".len()) as u64
}

/// The mean record size of messages of `shape` in a store of `storage`, per replica. A mean
/// header size above 0 counts the header length field for every message.
pub fn mean_record_bytes(shape: &MessageShape, storage: Store) -> f64 {
    match storage {
        Store::File => {
            let headers = if shape.header_bytes > 0.0 {
                HEADER_LENGTH_BYTES as f64 + shape.header_bytes
            } else {
                0.0
            };
            (RECORD_HEADER_BYTES + CHECKSUM_BYTES) as f64
                + shape.subject_bytes
                + headers
                + shape.payload_bytes
        }
        Store::Memory => {
            shape.subject_bytes
                + shape.header_bytes
                + shape.payload_bytes
                + MEMORY_RECORD_OVERHEAD as f64
        }
    }
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Store {
    File,
    Memory,
}

/// Sizes measured by the caller (e.g. from a run's report) for one stream; each one given replaces
/// the forecast's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasuredSize {
    pub subject_bytes: Option<f64>,
    pub header_bytes: Option<f64>,
    pub payload_bytes: Option<f64>,
}

/// What the sizing works from.
#[derive(Debug, Clone, Copy)]
pub struct SizingInput<'a> {
    /// The streams and their limits ([`Topology::seed`] for the seed).
    pub topology: &'a Topology,
    pub forecast: &'a Forecast,
    /// Measured sizes by stream name, overriding the forecast's.
    pub measured: &'a BTreeMap<String, MeasuredSize>,
    /// Nodes in the cluster ([`SEED_NODES`]).
    pub nodes: usize,
    /// Each node's configured `max_file_store`, when known ([`SEED_MAX_FILE_STORE`] for the seed).
    pub node_max_file_store: Option<u64>,
}

/// The limit that removes messages first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    MaxAge,
    MaxBytes,
    MaxMsgs,
    /// No limit at all: the stream grows without bound (sized for the horizon).
    Unbounded,
}

impl Binding {
    /// As the stream config names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::MaxAge => "max_age",
            Binding::MaxBytes => "max_bytes",
            Binding::MaxMsgs => "max_msgs",
            Binding::Unbounded => "none",
        }
    }
}

/// One stream's sizing, at the horizon's volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSizing {
    pub stream: String,
    pub replicas: usize,
    pub storage: Store,
    /// The message shape used (the forecast's, with measured sizes applied).
    pub message: MessageShape,
    /// True when at least one measured size replaced the forecast's.
    pub measured: bool,
    /// Mean record bytes per message, one replica.
    pub bytes_per_message: f64,
    /// The same times the replica count: what the cluster stores per message.
    pub bytes_per_message_cluster: f64,
    pub events_per_school_day: f64,
    /// Bytes per school day, one replica.
    pub daily_bytes: u64,
    /// Bytes per school day, all replicas.
    pub daily_bytes_cluster: u64,
    /// Bytes per year (the forecast's school days per year), one replica.
    pub yearly_bytes: u64,
    /// Declared limits; `None` is unlimited.
    pub max_age_days: Option<f64>,
    pub max_bytes: Option<u64>,
    pub max_msgs: Option<u64>,
    pub binding: Binding,
    /// Calendar days of messages the stream holds once full (where its curve flattens).
    pub retained_days: f64,
    /// Bytes held once full, one replica.
    pub retained_bytes: u64,
    pub retained_messages: u64,
}

/// The storage model's answer for one cluster and forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageSizing {
    /// The forecast's origin.
    pub forecast: String,
    pub horizon_months: u32,
    pub learners_at_horizon: f64,
    pub school_days_per_week: u32,
    pub headroom: f64,
    pub nodes: usize,
    pub streams: Vec<StreamSizing>,
    /// Record bytes one node holds with every file stream full (one replica of each).
    pub retained_bytes_per_node: u64,
    /// What JetStream reserves on a node for the file streams it holds: their `max_bytes`.
    pub reserved_bytes_per_node: u64,
    /// `max(headroom × retained, reserved)`: the `max_file_store` each node needs.
    pub node_max_file_store_needed: u64,
    /// The configured `max_file_store`, when known.
    pub node_max_file_store: Option<u64>,
    pub warnings: Vec<String>,
    /// The arithmetic, in words, for the report.
    pub formula: String,
}

/// Sizes every stream of the topology for the forecast.
pub fn size(input: &SizingInput<'_>) -> StorageSizing {
    let forecast = input.forecast;
    let daily = forecast.daily_events();
    let mut warnings = Vec::new();
    for (stream, ..) in &daily {
        if !input.topology.streams.iter().any(|s| &s.name == stream) {
            warnings.push(format!(
                "the forecast has events for {stream}, which is not a stream of the topology: left out"
            ));
        }
    }
    for stream in input.measured.keys() {
        if !input.topology.streams.iter().any(|s| &s.name == stream) {
            warnings.push(format!(
                "measured sizes for {stream}, which is not a stream of the topology: left out"
            ));
        }
    }
    let streams: Vec<StreamSizing> = input
        .topology
        .streams
        .iter()
        .map(|decl| {
            let planned = daily.iter().find(|(s, ..)| *s == decl.name);
            if planned.is_none() {
                warnings.push(format!(
                    "{}: the forecast has no events for it; sized as empty",
                    decl.name
                ));
            }
            let (events, shape) = planned.map_or((0.0, EMPTY), |(_, e, m)| (*e, *m));
            let measured = input.measured.get(&decl.name);
            size_stream(decl, forecast, events, apply(shape, measured), measured)
        })
        .collect();
    for s in &streams {
        warnings.extend(stream_warnings(s, input.topology, forecast));
    }
    let file = || streams.iter().filter(|s| s.storage == Store::File);
    let retained_bytes_per_node: u64 = file().map(|s| s.retained_bytes).sum();
    let reserved_bytes_per_node: u64 = file().filter_map(|s| s.max_bytes).sum();
    let with_headroom = (retained_bytes_per_node as f64 * forecast.headroom).ceil() as u64;
    let node_max_file_store_needed = with_headroom.max(reserved_bytes_per_node);
    if let Some(configured) = input.node_max_file_store {
        if reserved_bytes_per_node > configured {
            warnings.push(format!(
                "the file streams' max_bytes reserve {} on each node but its max_file_store is {}: \
                 JetStream refuses the stream that crosses it (error 10047, insufficient storage \
                 resources available)",
                approx_bytes(reserved_bytes_per_node),
                approx_bytes(configured)
            ));
        }
        if with_headroom > configured {
            warnings.push(format!(
                "each node needs {} (retained {} × headroom {}) but its max_file_store is {}: \
                 JetStream stops taking writes before the streams are full",
                approx_bytes(with_headroom),
                approx_bytes(retained_bytes_per_node),
                forecast.headroom,
                approx_bytes(configured)
            ));
        }
    }
    StorageSizing {
        forecast: forecast.origin.clone(),
        horizon_months: forecast.horizon_months,
        learners_at_horizon: forecast.learners_at_horizon(),
        school_days_per_week: forecast.school_days_per_week,
        headroom: forecast.headroom,
        nodes: input.nodes,
        formula: formula(forecast, input.nodes),
        streams,
        retained_bytes_per_node,
        reserved_bytes_per_node,
        node_max_file_store_needed,
        node_max_file_store: input.node_max_file_store,
        warnings,
    }
}

const EMPTY: MessageShape = MessageShape {
    subject_bytes: 0.0,
    header_bytes: 0.0,
    payload_bytes: 0.0,
};

fn apply(shape: MessageShape, measured: Option<&MeasuredSize>) -> MessageShape {
    let Some(m) = measured else { return shape };
    MessageShape {
        subject_bytes: m.subject_bytes.unwrap_or(shape.subject_bytes),
        header_bytes: m.header_bytes.unwrap_or(shape.header_bytes),
        payload_bytes: m.payload_bytes.unwrap_or(shape.payload_bytes),
    }
}

/// A limit of the config as an `Option` (JetStream writes "unlimited" as 0 or -1).
fn limit(value: i64) -> Option<u64> {
    u64::try_from(value).ok().filter(|v| *v > 0)
}

fn size_stream(
    decl: &StreamDecl,
    forecast: &Forecast,
    events: f64,
    message: MessageShape,
    measured: Option<&MeasuredSize>,
) -> StreamSizing {
    let storage = match decl.storage {
        StorageType::Memory => Store::Memory,
        StorageType::File => Store::File,
    };
    let bytes_per_message = mean_record_bytes(&message, storage);
    let daily_bytes = events * bytes_per_message;
    let share = forecast.school_day_share();
    // Per calendar day in term time.
    let (bytes_per_day, messages_per_day) = (daily_bytes * share, events * share);
    let max_age_days = Some(decl.max_age.as_secs_f64() / DAY_SECONDS).filter(|d| *d > 0.0);
    let max_bytes = limit(decl.max_bytes);
    let max_msgs = limit(decl.max_msgs);
    // Days until each limit starts removing messages; the soonest binds.
    let days_until = |limit: Option<u64>, per_day: f64| {
        limit.filter(|_| per_day > 0.0).map(|l| l as f64 / per_day)
    };
    let candidates = [
        (Binding::MaxAge, max_age_days),
        (Binding::MaxBytes, days_until(max_bytes, bytes_per_day)),
        (Binding::MaxMsgs, days_until(max_msgs, messages_per_day)),
    ];
    let (binding, retained_days) = candidates
        .iter()
        .filter_map(|(b, d)| d.map(|d| (*b, d)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((
            Binding::Unbounded,
            f64::from(forecast.horizon_months.max(1)) * 365.0 / 12.0,
        ));
    let retained_bytes = match (binding, max_bytes) {
        (Binding::MaxBytes, Some(max)) => max,
        _ => (bytes_per_day * retained_days).round() as u64,
    };
    let retained_messages = match (binding, max_msgs) {
        (Binding::MaxMsgs, Some(max)) => max,
        _ => (messages_per_day * retained_days).round() as u64,
    };
    StreamSizing {
        stream: decl.name.clone(),
        replicas: decl.replicas,
        storage,
        message,
        measured: measured.is_some_and(|m| *m != MeasuredSize::default()),
        bytes_per_message,
        bytes_per_message_cluster: bytes_per_message * decl.replicas as f64,
        events_per_school_day: events,
        daily_bytes: daily_bytes.round() as u64,
        daily_bytes_cluster: (daily_bytes * decl.replicas as f64).round() as u64,
        yearly_bytes: (daily_bytes * f64::from(forecast.school_days_per_year)).round() as u64,
        max_age_days,
        max_bytes,
        max_msgs,
        binding,
        retained_days,
        retained_bytes,
        retained_messages,
    }
}

fn stream_warnings(s: &StreamSizing, topology: &Topology, forecast: &Forecast) -> Vec<String> {
    let mut out = Vec::new();
    let discard_new = topology
        .streams
        .iter()
        .any(|d| d.name == s.stream && d.discard == DiscardPolicy::New);
    match (s.binding, s.max_age_days) {
        (Binding::MaxBytes | Binding::MaxMsgs, Some(age)) => {
            let per_day = s.daily_bytes as f64 * forecast.school_day_share();
            out.push(format!(
                "{}: {} binds before max_age: it keeps {:.1} of its {} days at the horizon's volume; \
                 {} days need max_bytes of {}",
                s.stream,
                s.binding.as_str(),
                s.retained_days,
                trim_days(age),
                trim_days(age),
                approx_bytes((per_day * age).ceil() as u64)
            ));
        }
        (Binding::MaxBytes | Binding::MaxMsgs, None) => {}
        (Binding::Unbounded, _) => out.push(format!(
            "{}: no max_age, max_bytes or max_msgs: it grows without bound (sized for {:.0} days)",
            s.stream, s.retained_days
        )),
        (Binding::MaxAge, _) => {}
    }
    if discard_new && matches!(s.binding, Binding::MaxBytes | Binding::MaxMsgs) {
        out.push(format!(
            "{}: discard is `new`, so once {} is reached publishes are refused instead of old \
             messages removed",
            s.stream,
            s.binding.as_str()
        ));
    }
    if s.storage == Store::Memory {
        out.push(format!(
            "{}: memory storage, left out of max_file_store ({} of max_memory_store per node)",
            s.stream,
            approx_bytes(s.retained_bytes)
        ));
    }
    out
}

fn formula(forecast: &Forecast, nodes: usize) -> String {
    format!(
        "record = 22 + subject + payload + 8 bytes per message and replica, plus 4 + the header \
         block when there are headers (nats-server filestore.go); daily = events per school day at \
         the horizon's volume ({} learners × {:.4} growth) × record; a window of D calendar days \
         holds D × {}/7 school days; the first of max_age, max_bytes, max_msgs to be reached binds \
         and fixes the days retained; per node = Σ retained over the file streams (one replica of \
         each on every node of {nodes}); max_file_store needed = max(headroom {} × per node, Σ \
         max_bytes that JetStream reserves). Not included: the Raft WAL of replicated streams, \
         consumer state, index files.",
        forecast.learners,
        forecast.growth_factor(),
        forecast.school_days_per_week,
        forecast.headroom,
    )
}

/// Days as the config would say them: `7`, or `4.58` when not whole.
fn trim_days(days: f64) -> String {
    if (days - days.round()).abs() < 1e-9 {
        format!("{days:.0}")
    } else {
        format!("{days:.2}")
    }
}

/// A byte count to three significant figures in SI units: `12.1 GB`, `950 MB`, `42 B`.
pub fn approx_bytes(bytes: u64) -> String {
    const UNITS: [(f64, &str); 5] = [
        (1e15, "PB"),
        (1e12, "TB"),
        (1e9, "GB"),
        (1e6, "MB"),
        (1e3, "kB"),
    ];
    let value = bytes as f64;
    for (size, unit) in UNITS {
        if value >= size {
            let scaled = value / size;
            let decimals = if scaled >= 100.0 {
                0
            } else if scaled >= 10.0 {
                1
            } else {
                2
            };
            return format!("{scaled:.decimals$} {unit}");
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_size_without_headers() {
        // 22 (total_len 4 + seq 8 + ts 8 + subj_len 2) + 10 ("focus.ping") + 424 + 8 (checksum).
        assert_eq!(record_bytes(10, 0, 424), 464);
        // An empty payload still costs the header, subject and checksum: 22 + 5 + 8.
        assert_eq!(record_bytes(5, 0, 0), 35);
        // Memory store: 10 + 0 + 424 + 16.
        assert_eq!(memory_record_bytes(10, 0, 424), 450);
    }

    #[test]
    fn record_size_with_headers() {
        let uuid = "0190b5c2-7d3e-7a1b-9c4d-5e6f7a8b9c0d";
        assert_eq!(uuid.len(), 36);
        // "NATS/1.0\r\n" (10) + "Nats-Msg-Id: " (13) + 36 + "\r\n" (2) + "\r\n" (2) = 63.
        let headers = header_block_len(&[("Nats-Msg-Id", uuid)]);
        assert_eq!(headers, 63);
        // 22 + 10 + 4 (hdr_len) + 63 + 424 + 8 = 531.
        assert_eq!(record_bytes(10, headers, 424), 531);
        // A second header line "Aivo-Ledger: r/p/1\r\n" adds 11 + 2 + 5 + 2 = 20 bytes: 83, 551.
        let two = header_block_len(&[("Nats-Msg-Id", uuid), ("Aivo-Ledger", "r/p/1")]);
        assert_eq!(two, 83);
        assert_eq!(record_bytes(10, two, 424), 551);
        assert_eq!(header_block_len(&[]), 0);
        // The mean form agrees with the exact one.
        let shape = MessageShape {
            subject_bytes: 10.0,
            header_bytes: 63.0,
            payload_bytes: 424.0,
        };
        assert_eq!(mean_record_bytes(&shape, Store::File), 531.0);
        let bare = MessageShape {
            header_bytes: 0.0,
            ..shape
        };
        assert_eq!(mean_record_bytes(&bare, Store::File), 464.0);
    }

    /// The seed forecast with every domain silent but FOCUS: `learners` learners, no growth, 600
    /// events per learner per school day of 510-byte records (22 + 10 + 470 + 8, no headers).
    pub(super) fn focus_only(learners: u64) -> Forecast {
        let mut forecast = Forecast::seed();
        forecast.learners = learners;
        forecast.growth_per_month = 0.0;
        forecast.horizon_months = 12;
        forecast.headroom = 1.5;
        forecast.school_days_per_week = 5;
        for d in &mut forecast.domains {
            d.events_per_learner_per_day = if d.stream == "FOCUS" { 600.0 } else { 0.0 };
            d.message = MessageShape {
                subject_bytes: 10.0,
                header_bytes: 0.0,
                payload_bytes: 470.0,
            };
        }
        forecast.dlq.fraction = 0.0;
        forecast
    }

    pub(super) fn sized(forecast: &Forecast, max_file_store: Option<u64>) -> StorageSizing {
        let topology = Topology::seed(3);
        let measured = BTreeMap::new();
        size(&SizingInput {
            topology: &topology,
            forecast,
            measured: &measured,
            nodes: SEED_NODES,
            node_max_file_store: max_file_store,
        })
    }

    fn stream<'a>(sizing: &'a StorageSizing, name: &str) -> &'a StreamSizing {
        sizing
            .streams
            .iter()
            .find(|s| s.stream == name)
            .expect("stream")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn focus_at_high_volume_hits_max_bytes_before_max_age() {
        // 20,000 learners × 600 = 12,000,000 events per school day × 510 B = 6.12 GB per school
        // day per replica (18.36 GB for R3). Seven days hold 5 school days = 30.6 GB > 20 GB, so
        // max_bytes binds: 20 GB / (6.12 GB × 5/7 per calendar day = 4.3714… GB) = 4.5752… days.
        let sizing = sized(&focus_only(20_000), Some(SEED_MAX_FILE_STORE));
        let focus = stream(&sizing, "FOCUS");
        assert_eq!(focus.bytes_per_message, 510.0);
        assert_eq!(focus.bytes_per_message_cluster, 1530.0);
        assert_eq!(focus.daily_bytes, 6_120_000_000);
        assert_eq!(focus.daily_bytes_cluster, 18_360_000_000);
        assert_eq!(focus.binding, Binding::MaxBytes);
        assert!(close(focus.retained_days, 20e9 / (6.12e9 * 5.0 / 7.0)));
        assert!((focus.retained_days - 4.5752).abs() < 1e-4);
        assert_eq!(focus.retained_bytes, 20_000_000_000);
        // 12e6 × 5/7 events per calendar day × 4.5752 days = 39,215,686 messages (20e9 / 510).
        assert_eq!(focus.retained_messages, 39_215_686);
        // Yearly: 6.12 GB × 180 school days = 1,101.6 GB.
        assert_eq!(focus.yearly_bytes, 1_101_600_000_000);
        // 7 days would need 6.12 GB × 5 = 30.6 GB: said in the warning.
        assert!(
            sizing
                .warnings
                .iter()
                .any(|w| w.starts_with("FOCUS: max_bytes binds before max_age")
                    && w.contains("keeps 4.6 of its 7 days")
                    && w.contains("30.6 GB")),
            "{:?}",
            sizing.warnings
        );
        // Per node: FOCUS's 20 GB (the others are empty); × 1.5 = 30 GB, below the 42 GB the
        // streams' max_bytes reserve (10 + 20 + 5 + 5 + 2), so the reservation decides.
        assert_eq!(sizing.retained_bytes_per_node, 20_000_000_000);
        assert_eq!(sizing.reserved_bytes_per_node, 42_000_000_000);
        assert_eq!(sizing.node_max_file_store_needed, 42_000_000_000);
    }

    #[test]
    fn focus_at_moderate_volume_keeps_its_whole_max_age() {
        // 10,000 learners: 6,000,000 events × 510 B = 3.06 GB per school day; 7 days hold 5 school
        // days = 15.3 GB < 20 GB, so max_age binds and all 7 days are kept.
        let sizing = sized(&focus_only(10_000), Some(SEED_MAX_FILE_STORE));
        let focus = stream(&sizing, "FOCUS");
        assert_eq!(focus.daily_bytes, 3_060_000_000);
        assert_eq!(focus.binding, Binding::MaxAge);
        assert!(close(focus.retained_days, 7.0));
        assert_eq!(focus.retained_bytes, 15_300_000_000);
        // 6e6 × 5 school days.
        assert_eq!(focus.retained_messages, 30_000_000);
        assert!(!sizing.warnings.iter().any(|w| w.starts_with("FOCUS")));
        // An empty stream is bound by its age limit and holds nothing.
        let dlq = stream(&sizing, "DLQ");
        assert_eq!((dlq.binding, dlq.retained_bytes), (Binding::MaxAge, 0));
        assert_eq!(sizing.retained_bytes_per_node, 15_300_000_000);
    }

    #[test]
    fn headroom_decides_when_retention_outgrows_the_reservations() {
        // 40,000 learners: 24e6 events × 510 B = 12.24 GB per school day. With FOCUS unlimited
        // in bytes it keeps its 7 days: 12.24 GB × 5 = 61.2 GB; × 1.5 = 91.8 GB, more than the
        // 22 GB the other streams reserve. A 50 GB max_file_store is then too small (but the
        // reservations fit it, so no 10047).
        let forecast = focus_only(40_000);
        let topology = Topology::seed(3)
            .with_stream_override(
                "FOCUS",
                crate::topology::StreamOverride {
                    max_bytes: Some(-1),
                    ..Default::default()
                },
            )
            .expect("override");
        let measured = BTreeMap::new();
        let sizing = size(&SizingInput {
            topology: &topology,
            forecast: &forecast,
            measured: &measured,
            nodes: 3,
            node_max_file_store: Some(50_000_000_000),
        });
        assert_eq!(stream(&sizing, "FOCUS").retained_bytes, 61_200_000_000);
        assert_eq!(sizing.reserved_bytes_per_node, 22_000_000_000);
        assert_eq!(sizing.node_max_file_store_needed, 91_800_000_000);
        assert!(sizing
            .warnings
            .iter()
            .any(|w| w.starts_with("each node needs 91.8 GB")));
        assert!(!sizing.warnings.iter().any(|w| w.contains("10047")));
    }

    #[test]
    fn declared_limits_beyond_max_file_store_warn_of_10047() {
        // The seed's streams reserve 42 GB per node; a 30 GB max_file_store cannot hold them.
        let sizing = sized(&focus_only(1), Some(30_000_000_000));
        assert!(
            sizing
                .warnings
                .iter()
                .any(|w| w.contains("reserve 42.0 GB") && w.contains("10047")),
            "{:?}",
            sizing.warnings
        );
        // The seed's own 1 TiB fits them.
        let seed = sized(&Forecast::seed(), Some(SEED_MAX_FILE_STORE));
        assert!(!seed.warnings.iter().any(|w| w.contains("10047")));
    }

    #[test]
    fn measured_sizes_override_the_forecast() {
        let forecast = focus_only(10_000);
        let topology = Topology::seed(3);
        let measured = BTreeMap::from([(
            "FOCUS".to_string(),
            MeasuredSize {
                payload_bytes: Some(400.0),
                header_bytes: Some(63.0),
                ..Default::default()
            },
        )]);
        let sizing = size(&SizingInput {
            topology: &topology,
            forecast: &forecast,
            measured: &measured,
            nodes: 3,
            node_max_file_store: None,
        });
        let focus = stream(&sizing, "FOCUS");
        // 22 + 10 + 4 + 63 + 400 + 8 = 507.
        assert_eq!(focus.bytes_per_message, 507.0);
        assert!(focus.measured);
        assert!(!stream(&sizing, "LEARNING").measured);
    }

    #[test]
    fn a_stream_without_limits_is_unbounded_and_said_so() {
        let forecast = focus_only(10_000);
        let topology = Topology::seed(3)
            .with_stream_override(
                "FOCUS",
                crate::topology::StreamOverride {
                    max_bytes: Some(-1),
                    max_age: Some(std::time::Duration::ZERO),
                    ..Default::default()
                },
            )
            .expect("override");
        let measured = BTreeMap::new();
        let sizing = size(&SizingInput {
            topology: &topology,
            forecast: &forecast,
            measured: &measured,
            nodes: 3,
            node_max_file_store: None,
        });
        let focus = stream(&sizing, "FOCUS");
        assert_eq!(focus.binding, Binding::Unbounded);
        // Sized for the 12-month horizon: 365 days × 3.06 GB × 5/7.
        assert!(close(focus.retained_days, 365.0));
        assert!(sizing
            .warnings
            .iter()
            .any(|w| w.starts_with("FOCUS: no max_age")));
    }

    #[test]
    fn max_msgs_can_bind_too() {
        let forecast = focus_only(10_000);
        let topology = Topology::seed(3)
            .with_stream_override(
                "FOCUS",
                crate::topology::StreamOverride {
                    max_msgs: Some(6_000_000),
                    ..Default::default()
                },
            )
            .expect("override");
        let measured = BTreeMap::new();
        let sizing = size(&SizingInput {
            topology: &topology,
            forecast: &forecast,
            measured: &measured,
            nodes: 3,
            node_max_file_store: None,
        });
        let focus = stream(&sizing, "FOCUS");
        // 6e6 messages at 6e6 × 5/7 a calendar day: 1.4 days.
        assert_eq!(focus.binding, Binding::MaxMsgs);
        assert!(close(focus.retained_days, 1.4));
        assert_eq!(focus.retained_messages, 6_000_000);
        assert_eq!(focus.retained_bytes, 3_060_000_000);
    }

    #[test]
    fn approximate_sizes_read_like_people_write_them() {
        assert_eq!(approx_bytes(42), "42 B");
        assert_eq!(approx_bytes(1_500), "1.50 kB");
        assert_eq!(approx_bytes(20_000_000_000), "20.0 GB");
        assert_eq!(approx_bytes(1 << 40), "1.10 TB");
        assert_eq!(approx_bytes(950_000_000), "950 MB");
    }
}
