//! What every domain source shares: learner state bags, subject resolution and envelope encoding.
//!
//! A domain source keeps each of its learners in one state of the domain's machine (idle, in a
//! session, question open...). [`StateBags`] holds, per state, the learners in it, so "a learner whose
//! state allows this subject" is an O(1) random pick, and moving a learner is O(1). [`SourceCore`]
//! holds what does not depend on the domain: the seeded generator, the shard's learners, the
//! producer fields and the reused encoding buffer.

use std::sync::Arc;

use async_nats::Subject;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::population::Population;
use super::{Domain, Mix, OutgoingEvent, SourceConfig, TrafficError};
use crate::event::envelope::{is_valid_subject, Envelope, IdText, Producer, Rfc3339};

/// Maps each subject of `mix` to its index in `domain.subjects()`, refusing malformed and foreign ones.
pub(crate) fn resolve_mix(domain: Domain, mix: &Mix) -> Result<Vec<usize>, TrafficError> {
    let known = domain.subjects();
    mix.subjects()
        .iter()
        .map(|subject| {
            if !is_valid_subject(subject) {
                return Err(TrafficError::MalformedSubject {
                    subject: subject.to_string(),
                });
            }
            known
                .iter()
                .position(|k| *k == subject.as_str())
                .ok_or_else(|| TrafficError::UnknownSubject {
                    domain,
                    subject: subject.to_string(),
                    known: known.join(", "),
                })
        })
        .collect()
}

/// Learners grouped by state: each learner is in exactly one bag.
pub(crate) struct StateBags {
    state: Vec<u8>,
    /// Where each learner sits in its state's bag.
    slot: Vec<u32>,
    bags: Vec<Vec<u32>>,
}

impl StateBags {
    /// `learners` learners (local indices `0..learners`), all in state `initial` of `states`.
    pub(crate) fn new(learners: usize, states: usize, initial: u8) -> Self {
        let mut bags = vec![Vec::new(); states];
        bags[usize::from(initial)] = (0..learners as u32).collect();
        Self {
            state: vec![initial; learners],
            slot: (0..learners as u32).collect(),
            bags,
        }
    }

    pub(crate) fn state(&self, learner: u32) -> u8 {
        self.state[learner as usize]
    }

    pub(crate) fn len(&self, state: u8) -> usize {
        self.bags[usize::from(state)].len()
    }

    /// Moves `learner` into `to`.
    pub(crate) fn set(&mut self, learner: u32, to: u8) {
        let from = self.state[learner as usize];
        if from == to {
            return;
        }
        let slot = self.slot[learner as usize] as usize;
        let bag = &mut self.bags[usize::from(from)];
        bag.swap_remove(slot);
        if let Some(&moved) = bag.get(slot) {
            self.slot[moved as usize] = slot as u32;
        }
        let bag = &mut self.bags[usize::from(to)];
        self.slot[learner as usize] = bag.len() as u32;
        bag.push(learner);
        self.state[learner as usize] = to;
    }

    /// A uniformly random learner among those in any of `states`, if there is one.
    pub(crate) fn pick(&self, states: &[u8], rng: &mut impl Rng) -> Option<u32> {
        let total: usize = states.iter().map(|&s| self.len(s)).sum();
        if total == 0 {
            return None;
        }
        let mut draw = rng.random_range(0..total);
        for &s in states {
            let bag = &self.bags[usize::from(s)];
            if draw < bag.len() {
                return Some(bag[draw]);
            }
            draw -= bag.len();
        }
        None
    }
}

/// The domain-independent part of a source.
pub(crate) struct SourceCore {
    pub(crate) rng: ChaCha8Rng,
    population: Arc<Population>,
    /// Population indices of the learners this publisher owns; a learner's local index is its
    /// position here.
    members: Vec<u32>,
    /// The mix's subjects as indices into the domain's subject list.
    mix_kinds: Vec<usize>,
    mix: Mix,
    /// The domain's subjects, ready to hand out without allocating. Static: cloning and dropping
    /// one (the engine hands it to the client, which clones it again) touches no reference count,
    /// where a subject on the heap had four atomic updates per event, shared with the connection's
    /// thread.
    subjects: Vec<Subject>,
    run_id: Arc<str>,
    publisher: u32,
    pub(crate) seed: u64,
    buffer: Vec<u8>,
}

impl SourceCore {
    pub(crate) fn new(config: SourceConfig) -> Result<Self, TrafficError> {
        let mix_kinds = resolve_mix(config.domain, &config.mix)?;
        let members = config.population.shard(config.shard)?;
        // One stream of randomness per publisher and domain; the domain salt keeps a focus and a
        // learning publisher with the same id from drawing the same numbers.
        let salt = config.domain as u64 + 1;
        let rng = ChaCha8Rng::seed_from_u64(
            config.seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
                ^ u64::from(config.publisher)
                ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        Ok(Self {
            rng,
            population: config.population,
            members,
            mix_kinds,
            mix: config.mix,
            subjects: config
                .domain
                .subjects()
                .iter()
                .copied()
                .map(Subject::from_static)
                .collect(),
            run_id: config.run_id,
            publisher: config.publisher,
            seed: config.seed,
            buffer: Vec::with_capacity(2048),
        })
    }

    /// How many learners this publisher owns.
    pub(crate) fn learners(&self) -> usize {
        self.members.len()
    }

    /// The population index of local learner `learner`.
    pub(crate) fn global(&self, learner: u32) -> u32 {
        self.members[learner as usize]
    }

    /// A uniformly random local learner.
    pub(crate) fn any_learner(&mut self) -> u32 {
        self.rng.random_range(0..self.members.len() as u32)
    }

    /// Draws the next subject from the mix, as its index in the domain's subject list.
    pub(crate) fn draw_kind(&mut self) -> usize {
        self.mix_kinds[self.mix.pick_index(&mut self.rng)]
    }

    /// A fresh UUID v7 stamped with `at` (events, and things an event creates: activities, answers).
    pub(crate) fn new_id(&mut self, at: OffsetDateTime) -> Uuid {
        super::event_uuid(&mut self.rng, at)
    }

    /// Encodes one event of local learner `learner` with subject number `kind`.
    pub(crate) fn encode<D: Serialize>(&mut self, event: Draft<D>) -> OutgoingEvent {
        let event_uuid = self.new_id(event.occurred_at);
        let event_id = IdText::new(&event_uuid);
        let session = event.session.map(|s| IdText::new(&s));
        let learner = &self.population.learners[self.members[event.learner as usize] as usize];
        let subject = &self.subjects[event.kind];
        let envelope = Envelope {
            event_id: event_id.as_str(),
            event_type: subject.as_str(),
            tenant_id: &learner.tenant_id,
            learner_id: &learner.learner_id,
            session_id: session.as_ref().map(IdText::as_str),
            occurred_at: Rfc3339(event.occurred_at),
            producer: Producer {
                run: &self.run_id,
                publisher: self.publisher,
                seq: event.seq,
            },
            data: event.data,
        };
        self.buffer.clear();
        envelope.write_json(&mut self.buffer);
        // Every sixteenth event checked against serde (all of them doubled the million-event
        // traffic tests' time), which still covers every domain's data shapes many times over.
        #[cfg(test)]
        if event.seq % 16 == 1 {
            assert_eq!(
                std::str::from_utf8(&self.buffer).ok(),
                serde_json::to_string(&envelope).ok().as_deref(),
                "the hand-written envelope must be the bytes serde writes"
            );
        }
        OutgoingEvent {
            subject: subject.clone(),
            event_id,
            payload: Bytes::copy_from_slice(&self.buffer),
            poison: None,
        }
    }
}

/// One event before encoding.
pub(crate) struct Draft<D> {
    /// Index into the domain's subject list.
    pub(crate) kind: usize,
    /// Local learner index.
    pub(crate) learner: u32,
    pub(crate) session: Option<Uuid>,
    pub(crate) seq: u64,
    pub(crate) occurred_at: OffsetDateTime,
    pub(crate) data: D,
}

/// Milliseconds since the Unix epoch (for durations between intended times).
pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// One of `options`, uniformly.
pub(crate) fn one_of<T: Copy>(rng: &mut impl Rng, options: &[T]) -> T {
    options[rng.random_range(0..options.len())]
}

/// Appends random words from `words` to `out` until it is at least `target` bytes long, as
/// sentences (a capital letter, a full stop every few words). ASCII only, so no JSON escaping.
pub(crate) fn fill_text(rng: &mut impl Rng, words: &[&str], target: usize, out: &mut String) {
    out.clear();
    let mut sentence_left = 0;
    while out.len() < target {
        if sentence_left == 0 {
            if !out.is_empty() {
                out.push_str(". ");
            }
            sentence_left = rng.random_range(6..16);
            let word = one_of(rng, words);
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(one_of(rng, words));
        }
        sentence_left -= 1;
    }
    out.push('.');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bags_track_states() {
        let mut bags = StateBags::new(5, 3, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        bags.set(2, 1);
        bags.set(4, 1);
        bags.set(2, 2);
        assert_eq!((bags.len(0), bags.len(1), bags.len(2)), (3, 1, 1));
        assert_eq!(bags.pick(&[1], &mut rng), Some(4));
        assert_eq!(bags.pick(&[2], &mut rng), Some(2));
        for _ in 0..100 {
            let l = bags.pick(&[0, 2], &mut rng).expect("four learners");
            assert!([0, 1, 2, 3].contains(&l));
            assert_ne!(bags.state(l), 1);
        }
        bags.set(4, 0);
        assert_eq!(bags.pick(&[1], &mut rng), None);
        assert_eq!(bags.len(0), 4);
    }

    #[test]
    fn text_reaches_target_length() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = String::new();
        fill_text(&mut rng, &["alpha", "beta"], 300, &mut out);
        assert!((300..320).contains(&out.len()), "{}", out.len());
        assert!(out.starts_with('A') || out.starts_with('B'));
    }
}
