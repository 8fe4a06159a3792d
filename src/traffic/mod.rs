//! Synthetic traffic: arrival schedules (when) and event sources (what), one file per domain.
//!
//! The publisher engine asks an [`EventSource`] for the next event at each intended send time; the
//! source owns its seeded random generator, so a seed fixes the sequence of subjects, learners and
//! payloads.

pub mod arrival;
pub mod envelope;
pub mod focus;
pub mod population;

use std::sync::Arc;

use async_nats::Subject;
use bytes::Bytes;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use population::Population;

/// One event ready to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    pub subject: Subject,
    /// UUID v7; also the `Nats-Msg-Id` header, so JetStream dedups retries.
    pub event_id: String,
    pub payload: Bytes,
}

/// Produces the events of one publisher, in order.
pub trait EventSource: Send + 'static {
    /// The event with the publisher's sequence `seq`, intended to occur at `occurred_at`.
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
    /// The stream that holds this domain's subjects.
    pub fn stream(self) -> &'static str {
        match self {
            Domain::Learning => "LEARNING",
            Domain::Focus => "FOCUS",
            Domain::Homework => "HOMEWORK",
            Domain::Recommendation => "RECOMMENDATION",
        }
    }

    /// Subjects the generator for this domain can emit (empty: no generator yet).
    pub fn subjects(self) -> &'static [&'static str] {
        match self {
            Domain::Focus => focus::SUBJECTS,
            _ => &[],
        }
    }

    /// The generator's default mix when a scenario gives none.
    pub fn default_mix(self) -> Vec<(String, u32)> {
        match self {
            Domain::Focus => vec![
                ("focus.ping".into(), 95),
                ("focus.loss.idle".into(), 2),
                ("focus.loss.tab_switch".into(), 2),
                ("focus.restored".into(), 1),
            ],
            _ => Vec::new(),
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

    /// Draws one subject.
    pub fn pick(&self, rng: &mut impl Rng) -> &Subject {
        let total = self.bounds.last().copied().unwrap_or(1);
        let draw = rng.random_range(0..total);
        let index = self.bounds.partition_point(|&bound| bound <= draw);
        &self.subjects[index.min(self.subjects.len() - 1)]
    }
}

/// A UUID v7 for an event: the intended time in its timestamp, seeded random bits in the rest.
pub fn event_id(rng: &mut impl RngCore, occurred_at: OffsetDateTime) -> String {
    let millis = (occurred_at.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    let mut random = [0u8; 10];
    rng.fill_bytes(&mut random);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text).to_string()
}

/// Builds the event source of one publisher of a traffic source.
pub fn make_source(
    domain: Domain,
    mix: Mix,
    population: Arc<Population>,
    run_id: Arc<str>,
    publisher: u32,
    seed: u64,
) -> Box<dyn EventSource> {
    match domain {
        Domain::Focus => Box::new(focus::FocusSource::new(
            mix, population, run_id, publisher, seed,
        )),
        // Scenario validation refuses domains without a generator, so this arm only guards misuse.
        other => panic!("no event generator for the {other:?} domain yet"),
    }
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
            assert!(envelope::is_valid_subject(&x.subject));
        }
    }
}
