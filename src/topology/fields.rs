//! The fields the topology declares, read from a JetStream config, and their comparison.
//!
//! A declared object is turned into a full JetStream config (`StreamDecl::config`), and both that
//! and the live config are projected onto the same list of fields here. `verify` reports the
//! comparison; `apply` uses it to decide between unchanged / updated and to refuse changes the
//! server cannot make in place. Everything here is pure, so it is unit-tested without a server.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

use super::format::format_bytes;
use crate::units::format_duration;

/// A declared or live value of one field, typed so that equal values compare equal regardless of
/// how the server spells "unlimited".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A plain duration (ack wait, dedup window).
    Duration(Duration),
    /// A duration limit; zero means unlimited.
    DurationLimit(Duration),
    /// A byte limit; -1 means unlimited.
    Bytes(i64),
    /// A count limit; -1 means unlimited.
    Count(i64),
    /// A policy, a kind or a filter, as the server names it.
    Text(String),
    /// Subjects, sorted (their order has no meaning).
    Subjects(Vec<String>),
    /// Whether the object exists at all.
    Exists(bool),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duration(d) => f.write_str(&format_duration(*d)),
            Self::DurationLimit(d) if d.is_zero() => f.write_str("unlimited"),
            Self::DurationLimit(d) => f.write_str(&format_duration(*d)),
            Self::Bytes(b) if *b < 0 => f.write_str("unlimited"),
            Self::Bytes(b) => f.write_str(&format_bytes(*b)),
            Self::Count(n) if *n < 0 => f.write_str("unlimited"),
            Self::Count(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
            Self::Subjects(s) => f.write_str(&s.join(", ")),
            Self::Exists(true) => f.write_str("present"),
            Self::Exists(false) => f.write_str("missing"),
        }
    }
}

/// One row of `verify`: a declared value next to the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCheck {
    /// `FOCUS` for a stream, `FOCUS/indexer` for a consumer.
    pub object: String,
    /// `max_age`, `replicas`, ...; `exists` when the object is missing.
    pub field: &'static str,
    /// What the topology declares.
    pub declared: FieldValue,
    /// What the cluster has.
    pub live: FieldValue,
    /// Whether they are equal; `false` is drift.
    pub matches: bool,
}

/// A field `apply` changed (or would have to change), from the live value to the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field name, as in [`FieldCheck::field`].
    pub field: &'static str,
    /// The live value before.
    pub old: FieldValue,
    /// The declared value after.
    pub new: FieldValue,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} → {}", self.field, self.old, self.new)
    }
}

/// What `apply` did to one stream or consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `FOCUS` or `FOCUS/indexer`.
    pub object: String,
    /// Created, updated (which fields) or unchanged.
    pub kind: ChangeKind,
}

/// See [`Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// It did not exist and was created as declared.
    Created,
    /// It existed with these fields different and was updated in place.
    Updated(Vec<FieldChange>),
    /// It already matched the declaration; nothing was sent.
    Unchanged,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ChangeKind::Created => write!(f, "{:<24} created", self.object),
            ChangeKind::Unchanged => write!(f, "{:<24} unchanged", self.object),
            ChangeKind::Updated(changes) => {
                let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
                write!(f, "{:<24} updated: {}", self.object, list.join(", "))
            }
        }
    }
}

/// A declared field: how to read it from a config and whether the server can change it in place.
struct Field<C> {
    name: &'static str,
    updatable: bool,
    read: fn(&C) -> FieldValue,
}

fn text<T: serde::Serialize + fmt::Debug>(value: &T) -> FieldValue {
    // The policies serialise to the names the server and the `nats` CLI use ("limits", "file").
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => FieldValue::Text(name),
        _ => FieldValue::Text(format!("{value:?}").to_lowercase()),
    }
}

/// The server stores 0 for "unlimited" as -1; compare both as -1.
fn limit(value: i64) -> i64 {
    if value <= 0 {
        -1
    } else {
        value
    }
}

fn stream_fields() -> [Field<stream::Config>; 9] {
    [
        Field {
            name: "subjects",
            updatable: true,
            read: |c| {
                let mut subjects = c.subjects.clone();
                subjects.sort();
                FieldValue::Subjects(subjects)
            },
        },
        Field {
            name: "retention",
            // Limits <-> Interest can change in place; the server refuses the rest and says so.
            updatable: true,
            read: |c| text(&c.retention),
        },
        Field {
            name: "storage",
            updatable: false,
            read: |c| text(&c.storage),
        },
        Field {
            name: "discard",
            updatable: true,
            read: |c| text(&c.discard),
        },
        Field {
            name: "max_age",
            updatable: true,
            read: |c| FieldValue::DurationLimit(c.max_age),
        },
        Field {
            name: "max_bytes",
            updatable: true,
            read: |c| FieldValue::Bytes(limit(c.max_bytes)),
        },
        Field {
            name: "max_msgs",
            updatable: true,
            read: |c| FieldValue::Count(limit(c.max_messages)),
        },
        Field {
            name: "duplicate_window",
            updatable: true,
            read: |c| FieldValue::Duration(c.duplicate_window),
        },
        Field {
            name: "replicas",
            updatable: true,
            read: |c| FieldValue::Count(c.num_replicas as i64),
        },
    ]
}

fn consumer_fields() -> [Field<consumer::Config>; 7] {
    [
        Field {
            name: "kind",
            // The server refuses to turn a push consumer into a pull one and back.
            updatable: false,
            read: |c| {
                FieldValue::Text(
                    if c.deliver_subject.is_some() {
                        "push"
                    } else {
                        "pull"
                    }
                    .into(),
                )
            },
        },
        Field {
            name: "deliver_policy",
            updatable: false,
            read: |c| FieldValue::Text(deliver_policy_name(&c.deliver_policy).into()),
        },
        Field {
            name: "ack_policy",
            updatable: false,
            read: |c| text(&c.ack_policy),
        },
        Field {
            name: "ack_wait",
            updatable: true,
            read: |c| FieldValue::Duration(c.ack_wait),
        },
        Field {
            name: "max_deliver",
            updatable: true,
            read: |c| FieldValue::Count(limit(c.max_deliver)),
        },
        Field {
            name: "max_ack_pending",
            updatable: true,
            read: |c| FieldValue::Count(limit(c.max_ack_pending)),
        },
        Field {
            name: "filter",
            updatable: true,
            read: |c| {
                let mut filters = c.filter_subjects.clone();
                if !c.filter_subject.is_empty() {
                    filters.push(c.filter_subject.clone());
                }
                filters.sort();
                if filters.is_empty() {
                    FieldValue::Text("whole stream".into())
                } else {
                    FieldValue::Text(filters.join(", "))
                }
            },
        },
    ]
}

fn deliver_policy_name(policy: &consumer::DeliverPolicy) -> &'static str {
    match policy {
        consumer::DeliverPolicy::All => "all",
        consumer::DeliverPolicy::Last => "last",
        consumer::DeliverPolicy::New => "new",
        consumer::DeliverPolicy::ByStartSequence { .. } => "by_start_sequence",
        consumer::DeliverPolicy::ByStartTime { .. } => "by_start_time",
        consumer::DeliverPolicy::LastPerSubject => "last_per_subject",
    }
}

fn compare<C>(
    object: &str,
    fields: &[Field<C>],
    declared: &C,
    live: Option<&C>,
) -> Vec<FieldCheck> {
    let Some(live) = live else {
        return vec![FieldCheck {
            object: object.to_string(),
            field: "exists",
            declared: FieldValue::Exists(true),
            live: FieldValue::Exists(false),
            matches: false,
        }];
    };
    fields
        .iter()
        .map(|field| {
            let declared = (field.read)(declared);
            let live = (field.read)(live);
            FieldCheck {
                object: object.to_string(),
                field: field.name,
                matches: declared == live,
                declared,
                live,
            }
        })
        .collect()
}

/// Declared against live stream config; `live` is `None` when the stream does not exist.
pub(super) fn stream_checks(
    declared: &stream::Config,
    live: Option<&stream::Config>,
) -> Vec<FieldCheck> {
    compare(&declared.name, &stream_fields(), declared, live)
}

/// Declared against live consumer config; `live` is `None` when the consumer does not exist.
pub(super) fn consumer_checks(
    object: &str,
    declared: &consumer::Config,
    live: Option<&consumer::Config>,
) -> Vec<FieldCheck> {
    compare(object, &consumer_fields(), declared, live)
}

/// The drifted fields of `checks`, as changes from live to declared.
pub(super) fn drift(checks: &[FieldCheck]) -> Vec<FieldChange> {
    checks
        .iter()
        .filter(|c| !c.matches)
        .map(|c| FieldChange {
            field: c.field,
            old: c.live.clone(),
            new: c.declared.clone(),
        })
        .collect()
}

fn immutable<C>(fields: &[Field<C>], changes: &[FieldChange]) -> Vec<FieldChange> {
    changes
        .iter()
        .filter(|change| {
            fields
                .iter()
                .any(|f| f.name == change.field && !f.updatable)
        })
        .cloned()
        .collect()
}

/// The changes among `changes` the server cannot make to a live stream.
pub(super) fn immutable_stream_changes(changes: &[FieldChange]) -> Vec<FieldChange> {
    immutable(&stream_fields(), changes)
}

/// The changes among `changes` the server cannot make to a live consumer.
pub(super) fn immutable_consumer_changes(changes: &[FieldChange]) -> Vec<FieldChange> {
    immutable(&consumer_fields(), changes)
}

/// The live stream config with every declared (updatable) field set as declared. Fields the
/// declaration does not name keep their live values, so an update never resets someone's
/// `allow_direct` or `metadata`.
pub(super) fn merged_stream(live: &stream::Config, declared: &stream::Config) -> stream::Config {
    stream::Config {
        subjects: declared.subjects.clone(),
        retention: declared.retention,
        discard: declared.discard,
        max_age: declared.max_age,
        max_bytes: declared.max_bytes,
        max_messages: declared.max_messages,
        duplicate_window: declared.duplicate_window,
        num_replicas: declared.num_replicas,
        ..live.clone()
    }
}

/// The live consumer config with every declared (updatable) field set as declared.
pub(super) fn merged_consumer(
    live: &consumer::Config,
    declared: &consumer::Config,
) -> consumer::Config {
    consumer::Config {
        ack_wait: declared.ack_wait,
        max_deliver: declared.max_deliver,
        max_ack_pending: declared.max_ack_pending,
        filter_subject: declared.filter_subject.clone(),
        filter_subjects: declared.filter_subjects.clone(),
        ..live.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    fn focus() -> stream::Config {
        Topology::seed(3).streams[1].config()
    }

    fn indexer() -> consumer::Config {
        Topology::seed(3).consumers[0].config()
    }

    #[test]
    fn identical_configs_match_on_every_field() {
        let checks = stream_checks(&focus(), Some(&focus()));
        assert_eq!(checks.len(), 9);
        assert!(checks.iter().all(|c| c.matches), "{checks:?}");
        let checks = consumer_checks("FOCUS/indexer", &indexer(), Some(&indexer()));
        assert_eq!(checks.len(), 7);
        assert!(checks.iter().all(|c| c.matches), "{checks:?}");
    }

    #[test]
    fn server_spellings_of_unlimited_compare_equal() {
        let mut live = focus();
        let mut declared = focus();
        declared.max_messages = 0;
        live.max_messages = -1;
        declared.subjects = vec!["b.>".into(), "a.>".into()];
        live.subjects = vec!["a.>".into(), "b.>".into()];
        assert!(stream_checks(&declared, Some(&live))
            .iter()
            .all(|c| c.matches));
    }

    #[test]
    fn drifted_max_age_is_reported_with_both_values() {
        let mut live = focus();
        live.max_age = Duration::from_secs(3600);
        let checks = stream_checks(&focus(), Some(&live));
        let drifted: Vec<&FieldCheck> = checks.iter().filter(|c| !c.matches).collect();
        assert_eq!(drifted.len(), 1);
        assert_eq!(drifted[0].object, "FOCUS");
        assert_eq!(drifted[0].field, "max_age");
        assert_eq!(drifted[0].declared.to_string(), "7d");
        assert_eq!(drifted[0].live.to_string(), "1h");
        let changes = drift(&checks);
        assert_eq!(changes[0].to_string(), "max_age 1h → 7d");
        assert!(immutable_stream_changes(&changes).is_empty());
    }

    #[test]
    fn missing_objects_are_one_drifted_exists_row() {
        let checks = consumer_checks("FOCUS/analytics", &indexer(), None);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].field, "exists");
        assert!(!checks[0].matches);
        assert_eq!(checks[0].live.to_string(), "missing");
    }

    #[test]
    fn storage_and_push_kind_cannot_change_in_place() {
        let mut live = focus();
        live.storage = stream::StorageType::Memory;
        live.max_bytes = 1;
        let changes = drift(&stream_checks(&focus(), Some(&live)));
        let fixed = immutable_stream_changes(&changes);
        assert_eq!(fixed.len(), 1);
        assert_eq!(fixed[0].to_string(), "storage memory → file");

        let mut live = indexer();
        live.deliver_subject = Some("deliver.indexer".into());
        let changes = drift(&consumer_checks("FOCUS/indexer", &indexer(), Some(&live)));
        let fixed = immutable_consumer_changes(&changes);
        assert_eq!(fixed[0].to_string(), "kind push → pull");
    }

    #[test]
    fn merge_sets_every_updatable_field_and_keeps_the_rest() {
        let mut live = focus();
        live.subjects = vec!["other.>".into()];
        live.retention = stream::RetentionPolicy::Interest;
        live.discard = stream::DiscardPolicy::New;
        live.max_age = Duration::from_secs(1);
        live.max_bytes = 5;
        live.max_messages = 5;
        live.duplicate_window = Duration::from_secs(1);
        live.num_replicas = 1;
        live.allow_direct = true;
        let merged = merged_stream(&live, &focus());
        assert!(stream_checks(&focus(), Some(&merged))
            .iter()
            .all(|c| c.matches));
        assert!(
            merged.allow_direct,
            "fields outside the declaration are kept"
        );

        let mut live = indexer();
        live.ack_wait = Duration::from_secs(5);
        live.max_deliver = -1;
        live.filter_subject = "focus.ping".into();
        live.max_ack_pending = 42;
        live.description = Some("kept".into());
        let merged = merged_consumer(&live, &indexer());
        assert!(consumer_checks("x", &indexer(), Some(&merged))
            .iter()
            .all(|c| c.matches));
        assert_eq!(merged.max_ack_pending, indexer().max_ack_pending);
        assert_eq!(
            merged.description.as_deref(),
            Some("kept"),
            "fields outside the declaration are kept"
        );
    }

    #[test]
    fn change_lines_say_what_happened() {
        let change = Change {
            object: "FOCUS".into(),
            kind: ChangeKind::Updated(vec![FieldChange {
                field: "max_age",
                old: FieldValue::DurationLimit(Duration::from_secs(3600)),
                new: FieldValue::DurationLimit(Duration::from_secs(7 * 86_400)),
            }]),
        };
        let line = change.to_string();
        assert!(line.starts_with("FOCUS "), "{line}");
        assert!(line.ends_with("updated: max_age 1h → 7d"), "{line}");
        let created = Change {
            object: "DLQ/indexer".into(),
            kind: ChangeKind::Created,
        };
        assert!(created.to_string().ends_with(" created"));
    }

    #[test]
    fn values_print_for_people() {
        assert_eq!(FieldValue::Bytes(20_000_000_000).to_string(), "20 GB");
        assert_eq!(FieldValue::Bytes(-1).to_string(), "unlimited");
        assert_eq!(FieldValue::Count(-1).to_string(), "unlimited");
        assert_eq!(
            FieldValue::DurationLimit(Duration::ZERO).to_string(),
            "unlimited"
        );
        assert_eq!(
            FieldValue::Duration(Duration::from_secs(120)).to_string(),
            "2m"
        );
        assert_eq!(text(&stream::RetentionPolicy::Limits).to_string(), "limits");
        assert_eq!(text(&consumer::AckPolicy::Explicit).to_string(), "explicit");
    }
}
