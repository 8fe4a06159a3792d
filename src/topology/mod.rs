//! The declared streams and consumers of AIVO's event backbone (DESIGN.md §1), and the `init` /
//! `verify` commands that bring a live cluster in line with them or report where it drifted.
//!
//! - [`Topology::seed`] is the declaration taken from the seed README: five Limits-retention file
//!   streams and the durable pull consumers `indexer` (every stream) and `analytics` (LEARNING, FOCUS).
//!   Scenarios shrink limits with [`Topology::with_stream_override`].
//! - [`apply`] creates or updates each stream and consumer and says what it did ([`Change`]);
//!   [`verify`] compares declared and live values field by field ([`FieldCheck`]).
//! - `fields.rs` projects a stream or consumer config onto the fields this module declares, so that
//!   `apply` and `verify` compare exactly the same things; `format.rs` prints them for people.
//! - `connect.rs` connects to a cluster's JetStream (bounded); `stream_state.rs` reads where a
//!   stream stands and waits for its replicas; `commands.rs` is the `init` / `verify` verbs.
//!
//! Fields the declaration does not name (e.g. `max_ack_pending`, `allow_direct`) are left to the
//! server's defaults or to whoever set them: `apply` keeps them on update, `verify` ignores them.
//! Starting consumers, and reading lag, belong to `consumers/` and `cluster/monitor.rs`.

pub mod backup;
mod commands;
mod connect;
mod fields;
mod format;
mod stream_state;
mod sync;

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

pub use commands::{init_command, render_checks, verify_command, TopologyRequest};
pub use connect::{connect, connect_as, connect_preferring};
pub use fields::{Change, ChangeKind, FieldChange, FieldCheck, FieldValue};
pub use format::format_bytes;
pub use stream_state::{
    leader_copy, move_leader, stream_position, stream_position_if_any, wait_until_replicated,
    LeaderCopy, StreamPosition,
};
pub use sync::{apply, verify};

/// One gigabyte as the seed's "10 GB" means it: 10^9 bytes (SI), not a GiB (2^30).
///
/// The seed README gives sizes only as "10 GB" and its stream-creation script is not part of what we
/// received, so nothing says binary units were meant; we read the unit as written. A cluster created
/// with GiB limits shows up in `verify` as e.g. `10.73741824 GB` against `10 GB`.
/// `max_ack_pending` of the declared consumers (see [`ConsumerDecl::max_ack_pending`]).
pub const MAX_ACK_PENDING: i64 = 10_000;
pub const GB: i64 = 1_000_000_000;

/// How long JetStream remembers a `Nats-Msg-Id` to drop duplicates (the server default, stated).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long a consumer waits for an ack before redelivering (the server default, stated so that
/// `verify` catches a consumer created with another value).
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// JetStream refuses more than five replicas.
pub const MAX_REPLICAS: usize = 5;

const DAY: u64 = 86_400;

/// The streams and consumers a cluster should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Streams in creation order.
    pub streams: Vec<StreamDecl>,
    /// Consumers in creation order; each names a stream in `streams`.
    pub consumers: Vec<ConsumerDecl>,
}

/// One declared stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamDecl {
    /// Stream name, e.g. `FOCUS`.
    pub name: String,
    /// Subjects it captures, e.g. `focus.>`.
    pub subjects: Vec<String>,
    /// Always `Limits` in the seed: messages stay until a limit removes them.
    pub retention: stream::RetentionPolicy,
    /// Always `File` in the seed. It cannot be changed on a live stream.
    pub storage: stream::StorageType,
    /// Always `Old` in the seed: at a limit the oldest messages go, publishes keep succeeding.
    pub discard: stream::DiscardPolicy,
    /// Oldest message age kept; zero means unlimited.
    pub max_age: Duration,
    /// Total bytes kept; -1 means unlimited.
    pub max_bytes: i64,
    /// Messages kept; -1 means unlimited.
    pub max_msgs: i64,
    /// Dedup window for `Nats-Msg-Id`; never longer than a non-zero `max_age`.
    pub duplicate_window: Duration,
    /// Number of replicas (1..=5).
    pub replicas: usize,
}

/// One declared durable pull consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerDecl {
    /// The stream it reads.
    pub stream: String,
    /// Durable name, e.g. `indexer`.
    pub name: String,
    /// Always `All`: a new consumer starts from the oldest message still in the stream.
    pub deliver_policy: consumer::DeliverPolicy,
    /// Always `Explicit`: each message is acked on its own.
    pub ack_policy: consumer::AckPolicy,
    /// Redelivery delay for an unacked message.
    pub ack_wait: Duration,
    /// Deliveries before the server gives up on a message (and advises, so it can go to DLQ).
    pub max_deliver: i64,
    /// Unacknowledged messages the server lets the consumer hold. Not in the seed; declared because
    /// the server's default (1,000) caps the indexer's batches at 500 and its catch-up rate below
    /// the cluster's publish rate (measured: 36.7k vs 81k rows/s with 10,000).
    pub max_ack_pending: i64,
}

/// Limits a scenario changes on one stream (DESIGN.md §4 `[streams.NAME]`); `None` keeps the seed's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOverride {
    /// Oldest message age kept (e.g. 90 s to watch retention act within a run).
    pub max_age: Option<Duration>,
    /// Total bytes kept.
    pub max_bytes: Option<i64>,
    /// Messages kept.
    pub max_msgs: Option<i64>,
    /// Replicas for this stream only.
    pub replicas: Option<usize>,
}

/// What can go wrong declaring, applying or verifying the topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A stream override names a stream the topology does not declare.
    #[error("unknown stream {name:?} in stream overrides; known streams: {known}")]
    UnknownStream { name: String, known: String },
    /// Replicas outside what JetStream accepts.
    #[error("replicas must be between 1 and {MAX_REPLICAS}, got {replicas}")]
    InvalidReplicas { replicas: usize },
    /// No server in the list accepted a connection.
    #[error(
        "cannot connect to NATS at {url}: {reason}; start a local cluster with \
         `aivo-load cluster up` or point at one with --server"
    )]
    Connect { url: String, reason: String },
    /// Connected, but JetStream did not answer (disabled, or no meta leader yet).
    #[error(
        "JetStream is not available at {url}: {reason}; is the cluster up and has it elected a \
         meta leader? (`aivo-load cluster status`)"
    )]
    JetStreamUnavailable { url: String, reason: String },
    /// A JetStream API call failed.
    #[error("{action} {object}")]
    Request {
        object: String,
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The live object differs in a field the server cannot change in place.
    #[error(
        "{object}: {} cannot be changed in place ({}); delete it (its messages are lost) and \
         run `aivo-load init` again, or change the declaration",
        field_names(.changes),
        describe_changes(.changes)
    )]
    Immutable {
        object: String,
        changes: Vec<FieldChange>,
    },
    /// The server refused an update of these fields.
    #[error("{object}: the server refused to update {} ({}): {reason}",
        field_names(.changes), describe_changes(.changes))]
    UpdateRejected {
        object: String,
        changes: Vec<FieldChange>,
        reason: String,
    },
}

impl TopologyError {
    /// Whether the error comes from how the harness was called (exit 2) rather than from the
    /// cluster (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::UnknownStream { .. } | Self::InvalidReplicas { .. }
        )
    }
}

fn field_names(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(|c| c.field)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_changes(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(|c| format!("{} live {}, declared {}", c.field, c.old, c.new))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks a replica count against what JetStream accepts.
pub fn validate_replicas(replicas: usize) -> Result<usize, TopologyError> {
    if (1..=MAX_REPLICAS).contains(&replicas) {
        Ok(replicas)
    } else {
        Err(TopologyError::InvalidReplicas { replicas })
    }
}

impl Topology {
    /// The seed's streams and consumers with `replicas` replicas per stream (3 on the seed cluster).
    ///
    /// Consumers inherit their stream's replica count (the server does this when a consumer names
    /// none), so `--replicas` scales both.
    pub fn seed(replicas: usize) -> Topology {
        let stream = |name: &str, subject: &str, days: u64, max_bytes: i64| StreamDecl {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            max_age: Duration::from_secs(days * DAY),
            max_bytes,
            max_msgs: -1,
            duplicate_window: DUPLICATE_WINDOW,
            replicas,
        };
        let streams = vec![
            stream("LEARNING", "learning.>", 30, 10 * GB),
            stream("FOCUS", "focus.>", 7, 20 * GB),
            stream("HOMEWORK", "homework.>", 90, 5 * GB),
            stream("RECOMMENDATION", "recommendation.>", 90, 5 * GB),
            stream("DLQ", "dlq.>", 30, 2 * GB),
        ];
        let consumer = |stream: &str, name: &str, max_deliver: i64| ConsumerDecl {
            stream: stream.to_string(),
            name: name.to_string(),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver,
            max_ack_pending: MAX_ACK_PENDING,
        };
        // DESIGN.md §1: the indexer reads every stream, DLQ included (it records dead letters too).
        let mut consumers: Vec<ConsumerDecl> = streams
            .iter()
            .map(|s| consumer(&s.name, "indexer", 5))
            .collect();
        consumers.push(consumer("LEARNING", "analytics", 3));
        consumers.push(consumer("FOCUS", "analytics", 3));
        Topology { streams, consumers }
    }

    /// Replaces some limits of one stream. An unknown stream name is an error that lists the
    /// known ones. A `max_age` shorter than the dedup window shrinks the window to `max_age`,
    /// because JetStream refuses a window longer than the age limit.
    pub fn with_stream_override(
        mut self,
        stream: &str,
        ov: StreamOverride,
    ) -> Result<Topology, TopologyError> {
        let known = self.stream_names().join(", ");
        let decl = self
            .streams
            .iter_mut()
            .find(|s| s.name == stream)
            .ok_or_else(|| TopologyError::UnknownStream {
                name: stream.to_string(),
                known,
            })?;
        if let Some(max_age) = ov.max_age {
            decl.max_age = max_age;
        }
        if let Some(max_bytes) = ov.max_bytes {
            decl.max_bytes = max_bytes;
        }
        if let Some(max_msgs) = ov.max_msgs {
            decl.max_msgs = max_msgs;
        }
        if let Some(replicas) = ov.replicas {
            decl.replicas = validate_replicas(replicas)?;
        }
        // JetStream refuses a dedup window longer than max_age ("duplicates window can not be
        // larger then max age"), which the 2 m window would be under e.g. FOCUS max_age = 90s.
        // Shrink it to max_age, as the `nats` CLI does: a message cannot be deduplicated against
        // one that retention already removed anyway.
        if !decl.max_age.is_zero() && decl.duplicate_window > decl.max_age {
            decl.duplicate_window = decl.max_age;
        }
        Ok(self)
    }

    /// The declared stream names, in order.
    pub fn stream_names(&self) -> Vec<&str> {
        self.streams.iter().map(|s| s.name.as_str()).collect()
    }

    /// The declared stream called `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamDecl> {
        self.streams.iter().find(|s| s.name == name)
    }
}

impl StreamDecl {
    /// The full JetStream config this declaration creates a stream with.
    pub fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            retention: self.retention,
            storage: self.storage,
            discard: self.discard,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            max_messages: self.max_msgs,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

impl ConsumerDecl {
    /// `STREAM/name`, how output and errors name a consumer.
    pub fn object(&self) -> String {
        format!("{}/{}", self.stream, self.name)
    }

    /// The full JetStream config this declaration creates a consumer with (pull: no deliver
    /// subject; whole stream: no filter).
    pub fn config(&self) -> consumer::Config {
        consumer::Config {
            durable_name: Some(self.name.clone()),
            deliver_policy: self.deliver_policy,
            ack_policy: self.ack_policy,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_declares_five_streams_and_seven_consumers() {
        let topology = Topology::seed(3);
        assert_eq!(
            topology.stream_names(),
            ["LEARNING", "FOCUS", "HOMEWORK", "RECOMMENDATION", "DLQ"]
        );
        let focus = topology.stream("FOCUS").expect("FOCUS is declared");
        assert_eq!(focus.max_age, Duration::from_secs(7 * DAY));
        assert_eq!(focus.max_bytes, 20_000_000_000);
        assert_eq!(focus.subjects, ["focus.>"]);
        assert!(topology.streams.iter().all(|s| s.replicas == 3
            && s.retention == stream::RetentionPolicy::Limits
            && s.storage == stream::StorageType::File
            && s.discard == stream::DiscardPolicy::Old
            && s.duplicate_window == Duration::from_secs(120)));
        let objects: Vec<String> = topology.consumers.iter().map(|c| c.object()).collect();
        assert_eq!(
            objects,
            [
                "LEARNING/indexer",
                "FOCUS/indexer",
                "HOMEWORK/indexer",
                "RECOMMENDATION/indexer",
                "DLQ/indexer",
                "LEARNING/analytics",
                "FOCUS/analytics"
            ]
        );
        for c in &topology.consumers {
            let expected = if c.name == "indexer" { 5 } else { 3 };
            assert_eq!(c.max_deliver, expected, "{}", c.object());
            assert_eq!(c.ack_policy, consumer::AckPolicy::Explicit);
            assert_eq!(c.ack_wait, ACK_WAIT);
        }
    }

    #[test]
    fn override_changes_only_named_limits() {
        let topology = Topology::seed(3)
            .with_stream_override(
                "FOCUS",
                StreamOverride {
                    max_age: Some(Duration::from_secs(90)),
                    max_msgs: Some(1000),
                    ..Default::default()
                },
            )
            .expect("FOCUS exists");
        let focus = topology.stream("FOCUS").expect("FOCUS is declared");
        assert_eq!(focus.max_age, Duration::from_secs(90));
        assert_eq!(focus.max_msgs, 1000);
        assert_eq!(focus.max_bytes, 20 * GB);
        assert_eq!(focus.duplicate_window, Duration::from_secs(90));
        assert_eq!(topology.streams[0], Topology::seed(3).streams[0]);
    }

    #[test]
    fn override_of_unknown_stream_lists_known_ones() {
        let err = Topology::seed(3)
            .with_stream_override("FOCUSS", StreamOverride::default())
            .expect_err("FOCUSS is not declared");
        let text = err.to_string();
        assert!(text.contains("FOCUSS"), "{text}");
        assert!(
            text.contains("LEARNING, FOCUS, HOMEWORK, RECOMMENDATION, DLQ"),
            "{text}"
        );
        assert!(err.is_usage());
    }

    #[test]
    fn override_rejects_bad_replicas() {
        let err = Topology::seed(3)
            .with_stream_override(
                "DLQ",
                StreamOverride {
                    replicas: Some(7),
                    ..Default::default()
                },
            )
            .expect_err("7 replicas is too many");
        assert!(matches!(
            err,
            TopologyError::InvalidReplicas { replicas: 7 }
        ));
        assert!(validate_replicas(0).is_err());
        assert_eq!(validate_replicas(3).ok(), Some(3));
    }

    #[test]
    fn declared_configs_are_pull_and_complete() {
        let topology = Topology::seed(1);
        let config = topology.consumers[0].config();
        assert_eq!(config.durable_name.as_deref(), Some("indexer"));
        assert!(config.deliver_subject.is_none());
        assert_eq!(config.filter_subject, "");
        let stream = topology.streams[4].config();
        assert_eq!(stream.name, "DLQ");
        assert_eq!(stream.num_replicas, 1);
        assert_eq!(stream.max_messages, -1);
    }
}
