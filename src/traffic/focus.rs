//! Focus telemetry: the high-volume pings and focus-loss events of learners in a session.
//!
//! Pings are small (the bulk of the traffic); loss and restore events carry a little more.

use std::sync::Arc;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use time::OffsetDateTime;

use super::envelope::{Envelope, Producer, Rfc3339};
use super::population::Population;
use super::{EventSource, Mix, OutgoingEvent};

/// Subjects the focus domain emits.
pub const SUBJECTS: &[&str] = &[
    "focus.ping",
    "focus.loss.idle",
    "focus.loss.tab_switch",
    "focus.restored",
];

const SURFACES: &[&str] = &["lesson", "practice", "quiz", "reading", "video"];
const HOSTS: &[&str] = &["video-site", "game-site", "chat-app", "search", "unknown"];

#[derive(Serialize)]
#[serde(untagged)]
enum FocusData {
    Ping {
        focused: bool,
        surface: &'static str,
        interval_ms: u32,
        input_events: u16,
    },
    Idle {
        idle_ms: u32,
        surface: &'static str,
    },
    TabSwitch {
        to: &'static str,
        visible_ms: u32,
    },
    Restored {
        lost_ms: u32,
        cause: &'static str,
    },
}

/// Generates focus events for one publisher.
pub struct FocusSource {
    mix: Mix,
    population: Arc<Population>,
    run_id: Arc<str>,
    publisher: u32,
    rng: ChaCha8Rng,
    buffer: Vec<u8>,
}

impl FocusSource {
    pub fn new(
        mix: Mix,
        population: Arc<Population>,
        run_id: Arc<str>,
        publisher: u32,
        seed: u64,
    ) -> Self {
        Self {
            mix,
            population,
            run_id,
            publisher,
            rng: ChaCha8Rng::seed_from_u64(
                seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ u64::from(publisher),
            ),
            buffer: Vec::with_capacity(512),
        }
    }

    fn data(&mut self, subject: &str) -> FocusData {
        let rng = &mut self.rng;
        match subject {
            "focus.loss.idle" => FocusData::Idle {
                idle_ms: rng.random_range(30_000..600_000),
                surface: SURFACES[rng.random_range(0..SURFACES.len())],
            },
            "focus.loss.tab_switch" => FocusData::TabSwitch {
                to: HOSTS[rng.random_range(0..HOSTS.len())],
                visible_ms: rng.random_range(1_000..900_000),
            },
            "focus.restored" => FocusData::Restored {
                lost_ms: rng.random_range(1_000..600_000),
                cause: if rng.random_bool(0.5) {
                    "idle"
                } else {
                    "tab_switch"
                },
            },
            _ => FocusData::Ping {
                focused: rng.random_bool(0.9),
                surface: SURFACES[rng.random_range(0..SURFACES.len())],
                interval_ms: 5_000,
                input_events: rng.random_range(0..40),
            },
        }
    }
}

impl EventSource for FocusSource {
    fn next_event(&mut self, seq: u64, occurred_at: OffsetDateTime) -> OutgoingEvent {
        let subject = self.mix.pick(&mut self.rng).clone();
        let event_id = super::event_id(&mut self.rng, occurred_at);
        let learner_index = self.rng.random_range(0..self.population.learners.len());
        let data = self.data(subject.as_str());
        let learner = &self.population.learners[learner_index];
        let envelope = Envelope {
            event_id: &event_id,
            event_type: subject.as_str(),
            tenant_id: &learner.tenant_id,
            learner_id: &learner.learner_id,
            session_id: Some(&learner.session_id),
            occurred_at: Rfc3339(occurred_at),
            producer: Producer {
                run: &self.run_id,
                publisher: self.publisher,
                seq,
            },
            data,
        };
        self.buffer.clear();
        // Serialising plain structs of strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buffer, &envelope);
        OutgoingEvent {
            subject,
            event_id,
            payload: Bytes::copy_from_slice(&self.buffer),
        }
    }
}
