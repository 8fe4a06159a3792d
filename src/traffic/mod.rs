//! Synthetic traffic: arrival schedules (when) and event sources (what), one file per domain.
//!
//! The publisher engine asks an [`EventSource`] for the next event at each intended send time; the
//! source owns its seeded random generator, so a seed fixes the sequence of subjects, learners and
//! payloads.
//!
//! Every domain source keeps per-learner state machines so that what it emits is causally consistent
//! (a session starts before its activities, a grade follows its answer, pings fall inside a session).
//! The learners of a population are split into [`Shard`]s, one per publisher of a traffic source, so
//! each learner's events come from one publisher, in order. What the sources leave to others: timing
//! (the arrival schedule gives the intended times) and the wire (the engine adds headers and sends).
//!
//! # Payload sizes
//! Deterministic from the seed; in bytes, with a 27-character run id (each further character of the
//! run id adds one byte). The envelope alone (four UUIDs, time, producer) is about 330 B of it, so
//! even the smallest events are ~400 B. The report reads sizes off [`OutgoingEvent::payload`].
//!
//! | subject | bytes | | subject | bytes |
//! |---|---|---|---|---|
//! | `focus.ping` | 400–450 | | `homework.question.asked` | 1,150–2,048 |
//! | `focus.loss.idle`, `.tab_switch` | 370–420 | | `homework.hint.requested` | 500–800 |
//! | `focus.restored` | 370–420 | | `homework.answer.submitted` | 500–1,000 |
//! | `learning.session.started` | 440–520 | | `homework.answer.graded` | 550–850 |
//! | `learning.session.ended` | 400–470 | | `recommendation.created` | 850–2,200 |
//! | `learning.activity.started` | 560–640 | | `recommendation.viewed` | 410–480 |
//! | `learning.activity.completed` | 500–580 | | | |
//! | `learning.skill.mastered` | 490–570 | | | |

pub mod arrival;
pub mod focus;
pub mod homework;
pub mod learning;
pub(crate) mod lifecycle;
pub mod poison;
pub mod population;
pub mod recommendation;

#[cfg(test)]
mod invariants;

use std::sync::Arc;

use async_nats::Subject;
use bytes::Bytes;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::envelope::IdText;
pub use population::Shard;
use population::{Population, ShardError};

/// One event ready to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    pub subject: Subject,
    /// UUID v7 (the payload's `event_id`), rendered on the stack: the engine does not need it, so
    /// it costs no allocation per event; replays and tests read it with `as_str`.
    pub event_id: IdText,
    pub payload: Bytes,
    /// Set on an event made poison on purpose (`poison.rs`): the publisher's ledger records it.
    pub poison: Option<crate::event::poison::PoisonKind>,
}

/// Produces the events of one publisher, in order.
pub trait EventSource: Send + 'static {
    /// The event with the publisher's sequence `seq`, intended to occur at `occurred_at`.
    ///
    /// Callers pass non-decreasing `occurred_at` values; the generated durations (a session's length,
    /// the time since a focus loss) are measured on these intended times.
    fn next_event(&mut self, seq: u64, occurred_at: OffsetDateTime) -> OutgoingEvent;
}

/// AIVO's event domains; each has its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    Learning,
    Focus,
    Homework,
    Recommendation,
}

impl Domain {
    /// Every domain, in a fixed order.
    pub const ALL: [Domain; 4] = [
        Domain::Learning,
        Domain::Focus,
        Domain::Homework,
        Domain::Recommendation,
    ];

    /// `learning`, `focus`, ... (as scenario files and subjects spell it).
    pub fn name(self) -> &'static str {
        match self {
            Domain::Learning => "learning",
            Domain::Focus => "focus",
            Domain::Homework => "homework",
            Domain::Recommendation => "recommendation",
        }
    }

    /// The stream that holds this domain's subjects.
    pub fn stream(self) -> &'static str {
        match self {
            Domain::Learning => "LEARNING",
            Domain::Focus => "FOCUS",
            Domain::Homework => "HOMEWORK",
            Domain::Recommendation => "RECOMMENDATION",
        }
    }

    /// Subjects the generator for this domain can emit.
    pub fn subjects(self) -> &'static [&'static str] {
        match self {
            Domain::Learning => learning::SUBJECTS,
            Domain::Focus => focus::SUBJECTS,
            Domain::Homework => homework::SUBJECTS,
            Domain::Recommendation => recommendation::SUBJECTS,
        }
    }

    /// The generator's default mix when a scenario gives none. Each default is balanced (every state
    /// a subject enters is left about as often), so the achieved mix matches it closely.
    pub fn default_mix(self) -> Vec<(String, u32)> {
        let entries: &[(&str, u32)] = match self {
            Domain::Learning => &[
                ("learning.session.started", 10),
                ("learning.activity.started", 35),
                ("learning.activity.completed", 35),
                ("learning.skill.mastered", 10),
                ("learning.session.ended", 10),
            ],
            Domain::Focus => &[
                ("focus.ping", 94),
                ("focus.loss.idle", 1),
                ("focus.loss.tab_switch", 2),
                ("focus.restored", 3),
            ],
            Domain::Homework => &[
                ("homework.question.asked", 25),
                ("homework.hint.requested", 25),
                ("homework.answer.submitted", 25),
                ("homework.answer.graded", 25),
            ],
            Domain::Recommendation => &[
                ("recommendation.created", 60),
                ("recommendation.viewed", 40),
            ],
        };
        entries
            .iter()
            .map(|(s, w)| ((*s).to_string(), *w))
            .collect()
    }
}

/// Why an event source cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrafficError {
    /// A mix subject breaks the `<domain>.<entity>.<action>` shape.
    #[error("subject {subject:?} does not follow <domain>.<entity>.<action>")]
    MalformedSubject { subject: String },
    /// A well-formed subject the domain's generator does not emit.
    #[error("the {domain:?} generator does not emit {subject:?} (it emits {known})")]
    UnknownSubject {
        domain: Domain,
        subject: String,
        known: String,
    },
    /// The shard is not a part of `0..count`.
    #[error("shard {index} of {count} does not exist")]
    BadShard { index: u32, count: u32 },
    /// More publishers than learners: some publisher would own nobody.
    #[error("shard {index} of {count} owns no learner (only {learners} learners); use at most as many publishers as learners")]
    EmptyShard {
        index: u32,
        count: u32,
        learners: usize,
    },
}

impl From<ShardError> for TrafficError {
    fn from(error: ShardError) -> Self {
        match error {
            ShardError::Bad { index, count } => TrafficError::BadShard { index, count },
            ShardError::Empty {
                index,
                count,
                learners,
            } => TrafficError::EmptyShard {
                index,
                count,
                learners,
            },
        }
    }
}

/// Subjects chosen by weight.
#[derive(Debug, Clone)]
pub struct Mix {
    subjects: Vec<Subject>,
    /// Running sums of the weights; a draw in `0..total` picks the first bound above it.
    bounds: Vec<u64>,
}

impl Mix {
    /// A mix from `(subject, weight)` pairs; weights must not all be zero.
    pub fn new(entries: &[(String, u32)]) -> Result<Self, String> {
        let mut total = 0u64;
        let mut subjects = Vec::new();
        let mut bounds = Vec::new();
        for (subject, weight) in entries.iter().filter(|(_, w)| *w > 0) {
            total += u64::from(*weight);
            subjects.push(Subject::from(subject.as_str()));
            bounds.push(total);
        }
        if total == 0 {
            return Err("a mix needs at least one subject with a weight above 0".into());
        }
        Ok(Self { subjects, bounds })
    }

    /// The subjects with a weight above 0, in the order [`Mix::pick_index`] numbers them.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    /// Draws one subject.
    pub fn pick(&self, rng: &mut impl Rng) -> &Subject {
        &self.subjects[self.pick_index(rng)]
    }

    /// Draws one subject, as its index in [`Mix::subjects`].
    pub fn pick_index(&self, rng: &mut impl Rng) -> usize {
        let total = self.bounds.last().copied().unwrap_or(1);
        let draw = rng.random_range(0..total);
        let index = self.bounds.partition_point(|&bound| bound <= draw);
        index.min(self.subjects.len() - 1)
    }
}

/// Everything a domain source needs; bundled because the list is long.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Which generator.
    pub domain: Domain,
    /// Subjects by weight; each must be one of `domain.subjects()`.
    pub mix: Mix,
    /// The run's learners, shared by all sources and publishers.
    pub population: Arc<Population>,
    /// Written to `producer.run` in every payload.
    pub run_id: Arc<str>,
    /// The publisher's id in the run (written to `producer.publisher` and the ledger header).
    pub publisher: u32,
    /// The learners this publisher owns.
    pub shard: Shard,
    /// The run's seed. Session ids derive from it (and the learner), not from the publisher, so the
    /// focus and learning sources of a run name a learner's sessions alike.
    pub seed: u64,
}

/// Builds the event source of one publisher of a traffic source, refusing a mix subject that is
/// malformed or that the domain does not emit, and a shard that owns no learner.
pub fn build_source(config: SourceConfig) -> Result<Box<dyn EventSource>, TrafficError> {
    Ok(match config.domain {
        Domain::Learning => Box::new(learning::LearningSource::new(config)?),
        Domain::Focus => Box::new(focus::FocusSource::new(config)?),
        Domain::Homework => Box::new(homework::HomeworkSource::new(config)?),
        Domain::Recommendation => Box::new(recommendation::RecommendationSource::new(config)?),
    })
}

/// Builds the event source of one publisher that owns the whole population.
///
/// Kept for callers that predate sharding: with several publishers per traffic source, prefer
/// [`build_source`] with [`Shard::new`]`(index, publishers)`, or every publisher drives every learner
/// and a learner's events across publishers no longer form one consistent lifecycle.
///
/// # Panics
/// When the mix names a subject the domain does not emit; scenario validation refuses such mixes
/// (a subject must be one of [`Domain::subjects`]), so this only guards misuse.
pub fn make_source(
    domain: Domain,
    mix: Mix,
    population: Arc<Population>,
    run_id: Arc<str>,
    publisher: u32,
    seed: u64,
) -> Box<dyn EventSource> {
    let config = SourceConfig {
        domain,
        mix,
        population,
        run_id,
        publisher,
        shard: Shard::WHOLE,
        seed,
    };
    match build_source(config) {
        Ok(source) => source,
        Err(err) => panic!("invalid traffic source: {err}"),
    }
}

/// A UUID v7 for an event: the intended time in its timestamp, seeded random bits in the rest.
pub fn event_id(rng: &mut impl RngCore, occurred_at: OffsetDateTime) -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    event_uuid(rng, occurred_at)
        .hyphenated()
        .encode_lower(&mut text)
        .to_string()
}

/// The UUID v7 behind [`event_id`].
pub fn event_uuid(rng: &mut impl RngCore, occurred_at: OffsetDateTime) -> uuid::Uuid {
    let millis = (occurred_at.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    let mut random = [0u8; 10];
    rng.fill_bytes(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn mix_follows_weights() {
        let mix = Mix::new(&[
            ("focus.ping".into(), 90),
            ("focus.loss.idle".into(), 10),
            ("focus.restored".into(), 0),
        ])
        .expect("valid");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let pings = (0..100_000)
            .filter(|_| mix.pick(&mut rng).as_str() == "focus.ping")
            .count();
        assert!((89_000..91_000).contains(&pings), "{pings}");
        assert!(Mix::new(&[("focus.ping".into(), 0)]).is_err());
    }

    #[test]
    fn focus_events_are_valid_json_and_deterministic() {
        let population = Arc::new(Population::generate(3, 2, 10));
        let mix = Mix::new(&Domain::Focus.default_mix()).expect("valid");
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
        let mut a = make_source(
            Domain::Focus,
            mix.clone(),
            population.clone(),
            "run-1".into(),
            0,
            7,
        );
        let mut b = make_source(Domain::Focus, mix, population, "run-1".into(), 0, 7);
        for seq in 1..=1000 {
            let (x, y) = (a.next_event(seq, at), b.next_event(seq, at));
            assert_eq!(x.payload, y.payload);
            let value: serde_json::Value = serde_json::from_slice(&x.payload).expect("json");
            assert_eq!(value["event_id"], x.event_id.as_str());
            assert_eq!(value["type"], x.subject.as_str());
            assert_eq!(value["producer"]["seq"], seq);
            assert_eq!(value["occurred_at"], "2027-01-15T08:00:00.000Z");
            assert!(crate::event::envelope::is_valid_subject(&x.subject));
        }
    }

    #[test]
    fn default_mixes_name_only_known_well_formed_subjects() {
        for domain in Domain::ALL {
            assert!(!domain.subjects().is_empty(), "{domain:?}");
            for subject in domain.subjects() {
                assert!(
                    crate::event::envelope::is_valid_subject(subject),
                    "{subject}"
                );
                assert!(subject.starts_with(&format!("{}.", domain.stream().to_lowercase())));
            }
            for (subject, _) in domain.default_mix() {
                assert!(domain.subjects().contains(&subject.as_str()), "{subject}");
            }
        }
    }

    fn config(domain: Domain, mix: &[(&str, u32)], shard: Shard) -> SourceConfig {
        let entries: Vec<(String, u32)> = mix.iter().map(|(s, w)| (s.to_string(), *w)).collect();
        SourceConfig {
            domain,
            mix: Mix::new(&entries).expect("non-zero"),
            population: Arc::new(Population::generate(1, 2, 4)),
            run_id: "run".into(),
            publisher: 0,
            shard,
            seed: 1,
        }
    }

    #[test]
    fn construction_refuses_bad_subjects_and_shards() {
        let err = build_source(config(Domain::Focus, &[("focus..ping", 1)], Shard::WHOLE))
            .err()
            .expect("malformed");
        assert!(
            matches!(err, TrafficError::MalformedSubject { .. }),
            "{err}"
        );
        let err = build_source(config(Domain::Focus, &[("Focus.Ping", 1)], Shard::WHOLE))
            .err()
            .expect("malformed");
        assert!(
            matches!(err, TrafficError::MalformedSubject { .. }),
            "{err}"
        );
        let err = build_source(config(
            Domain::Homework,
            &[("homework.question.asked", 1), ("focus.ping", 1)],
            Shard::WHOLE,
        ))
        .err()
        .expect("foreign");
        assert!(matches!(err, TrafficError::UnknownSubject { .. }), "{err}");
        let err = build_source(config(
            Domain::Focus,
            &[("focus.ping", 1)],
            Shard::new(4, 4),
        ))
        .err()
        .expect("bad shard");
        assert_eq!(err, TrafficError::BadShard { index: 4, count: 4 });
        let err = build_source(config(
            Domain::Focus,
            &[("focus.ping", 1)],
            Shard::new(5, 8),
        ))
        .err()
        .expect("empty shard");
        assert!(matches!(err, TrafficError::EmptyShard { .. }), "{err}");
        for domain in Domain::ALL {
            let mix: Vec<(&str, u32)> = domain.subjects().iter().map(|s| (*s, 1)).collect();
            assert!(build_source(config(domain, &mix, Shard::new(3, 4))).is_ok());
        }
    }
}
