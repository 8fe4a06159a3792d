//! Learning events: sessions, the activities inside them, and the skills those activities prove.
//!
//! # Lifecycle
//! Per learner: idle → `session.started` → in session ⇄ (`activity.started` → in activity →
//! `activity.completed`) → `session.ended` → idle. `skill.mastered` names the activity just
//! completed, at most once, and only until the learner starts another activity or ends the session.
//! So: no activity outside a session, an activity completes only after it started, a session ends
//! only with no activity open (after its activities). Session `n` of a learner has the id
//! [`session_uuid`]`(seed, learner, n)`, shared with the focus source.
//!
//! # Mix drift
//! A subject is drawn by weight, then a learner whose state allows it; when nobody's does, the
//! learner nearest to allowing it gets the missing prerequisite instead (e.g. `activity.started`
//! drawn while nobody is in a session: a `session.started`). A balanced mix (`session.started` ≈
//! `session.ended`, `activity.started` ≈ `activity.completed` ≥ `skill.mastered`) is therefore kept
//! within sampling noise once the first sessions are open (the test checks ±1 point on the
//! default); an unbalanced one converges to the nearest balanced one, the surplus of a subject
//! turning into the events that let it happen again.

use rand::Rng;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::lifecycle::{millis, one_of, Draft, SourceCore, StateBags};
use super::population::{random_uuid, session_uuid};
use super::{EventSource, OutgoingEvent, SourceConfig, TrafficError};
use crate::event::envelope::Id;

/// Subjects the learning domain emits (the order numbers them in this file).
pub const SUBJECTS: &[&str] = &[
    "learning.session.started",
    "learning.session.ended",
    "learning.activity.started",
    "learning.activity.completed",
    "learning.skill.mastered",
];
const SESSION_STARTED: usize = 0;
const SESSION_ENDED: usize = 1;
const ACTIVITY_STARTED: usize = 2;
const ACTIVITY_COMPLETED: usize = 3;
const SKILL_MASTERED: usize = 4;

// Learner states. MASTERABLE: in a session, no activity open, the last one may still be mastered.
const IDLE: u8 = 0;
const SESSION: u8 = 1;
const MASTERABLE: u8 = 2;
const ACTIVITY: u8 = 3;
const BETWEEN_ACTIVITIES: &[u8] = &[SESSION, MASTERABLE];

const DEVICES: &[&str] = &[
    "chromebook",
    "ipad",
    "windows-laptop",
    "android-tablet",
    "macbook",
];
const APP_VERSIONS: &[&str] = &["4.12.3", "4.12.4", "4.13.0", "4.13.1"];
const LOCALES: &[&str] = &["en-US", "en-GB", "es-US", "fr-CA", "de-DE"];
const ENTRY_POINTS: &[&str] = &["class_link", "assignment", "home", "notification", "search"];
const END_REASONS: &[&str] = &["logout", "closed", "timeout", "class_ended"];
const ACTIVITY_TYPES: &[&str] = &["lesson", "practice", "quiz", "video", "reading", "game"];
const SKILLS: &[&str] = &[
    "math.fractions.add_unlike_denominators",
    "math.geometry.area_of_triangles",
    "math.algebra.one_step_equations",
    "math.number.place_value_to_millions",
    "reading.comprehension.main_idea",
    "reading.vocabulary.context_clues",
    "science.life.food_webs",
    "science.physical.states_of_matter",
    "history.us.causes_of_revolution",
    "writing.grammar.subject_verb_agreement",
    "writing.structure.topic_sentences",
    "science.earth.water_cycle",
];

#[derive(Serialize)]
#[serde(untagged)]
enum LearningData {
    SessionStarted {
        device: &'static str,
        app_version: &'static str,
        locale: &'static str,
        entry_point: &'static str,
        screen: [u16; 2],
    },
    SessionEnded {
        duration_ms: i64,
        activities_completed: u16,
        reason: &'static str,
    },
    ActivityStarted {
        activity_id: Id,
        activity_type: &'static str,
        content_id: Id,
        subject_area: &'static str,
        skill_id: &'static str,
        grade_level: u8,
        difficulty: u8,
    },
    ActivityCompleted {
        activity_id: Id,
        activity_type: &'static str,
        duration_ms: i64,
        items_attempted: u8,
        items_correct: u8,
        score: f32,
        outcome: &'static str,
    },
    SkillMastered {
        activity_id: Id,
        skill_id: &'static str,
        mastery: f32,
        evidence_count: u16,
        previous_level: &'static str,
    },
}

/// Per-learner learning state beyond the bag it sits in.
#[derive(Clone, Default)]
struct LearningLearner {
    /// Sessions started so far; the open one (if any) is number `sessions - 1`.
    sessions: u32,
    session: Uuid,
    session_started_ms: i64,
    activities_completed: u16,
    /// The open activity, or the last completed one.
    activity: Uuid,
    activity_started_ms: i64,
    activity_type: u8,
    skill: u8,
}

/// Generates learning events for one publisher's learners.
pub struct LearningSource {
    core: SourceCore,
    bags: StateBags,
    learners: Vec<LearningLearner>,
}

impl LearningSource {
    /// A source for `config.shard`'s learners; refuses subjects the learning domain does not emit.
    pub fn new(config: SourceConfig) -> Result<Self, TrafficError> {
        let core = SourceCore::new(config)?;
        let n = core.learners();
        Ok(Self {
            core,
            bags: StateBags::new(n, 4, IDLE),
            learners: vec![LearningLearner::default(); n],
        })
    }

    /// Turns the drawn subject into (subject, learner) that the learners' states allow: the drawn
    /// subject if someone can take it, else the prerequisite for the learner nearest to it.
    fn choose(&mut self, drawn: usize) -> (usize, u32) {
        // In order: which states allow the drawn subject, then fallbacks as (states, subject).
        let plan: &[(&[u8], usize)] = match drawn {
            SESSION_STARTED => &[
                (&[IDLE], SESSION_STARTED),
                (BETWEEN_ACTIVITIES, SESSION_ENDED),
                (&[ACTIVITY], ACTIVITY_COMPLETED),
            ],
            SESSION_ENDED => &[
                (BETWEEN_ACTIVITIES, SESSION_ENDED),
                (&[ACTIVITY], ACTIVITY_COMPLETED),
                (&[IDLE], SESSION_STARTED),
            ],
            ACTIVITY_STARTED => &[
                (BETWEEN_ACTIVITIES, ACTIVITY_STARTED),
                (&[IDLE], SESSION_STARTED),
                (&[ACTIVITY], ACTIVITY_COMPLETED),
            ],
            ACTIVITY_COMPLETED => &[
                (&[ACTIVITY], ACTIVITY_COMPLETED),
                (BETWEEN_ACTIVITIES, ACTIVITY_STARTED),
                (&[IDLE], SESSION_STARTED),
            ],
            _ => &[
                (&[MASTERABLE], SKILL_MASTERED),
                (&[ACTIVITY], ACTIVITY_COMPLETED),
                (&[SESSION], ACTIVITY_STARTED),
                (&[IDLE], SESSION_STARTED),
            ],
        };
        for &(states, kind) in plan {
            if let Some(l) = self.bags.pick(states, &mut self.core.rng) {
                return (kind, l);
            }
        }
        // Every state is covered by the plans above and the shard is never empty.
        (SESSION_STARTED, 0)
    }
}

impl EventSource for LearningSource {
    fn next_event(&mut self, seq: u64, occurred_at: OffsetDateTime) -> OutgoingEvent {
        let drawn = self.core.draw_kind();
        let (kind, l) = self.choose(drawn);
        let now = millis(occurred_at);
        let global = self.core.global(l);
        let fresh_id = match kind {
            ACTIVITY_STARTED => self.core.new_id(occurred_at),
            _ => Uuid::nil(),
        };
        let rng = &mut self.core.rng;
        let state = &mut self.learners[l as usize];
        // Each transition says the bag the learner moves to, then draws the event's fields.
        let data = match kind {
            SESSION_STARTED => {
                self.bags.set(l, SESSION);
                state.start_session(
                    session_uuid(self.core.seed, global, state.sessions),
                    now,
                    rng,
                )
            }
            SESSION_ENDED => {
                self.bags.set(l, IDLE);
                state.end_session(now, rng)
            }
            ACTIVITY_STARTED => {
                self.bags.set(l, ACTIVITY);
                state.start_activity(fresh_id, now, rng)
            }
            ACTIVITY_COMPLETED => {
                self.bags.set(l, MASTERABLE);
                state.complete_activity(now, rng)
            }
            _ => {
                self.bags.set(l, SESSION);
                state.master_skill(rng)
            }
        };
        // Every learning event belongs to the session it opens, closes or happens in.
        let session = state.session;
        self.core.encode(Draft {
            kind,
            learner: l,
            session: Some(session),
            seq,
            occurred_at,
            data,
        })
    }
}

/// The transitions of one learner, each drawing the fields of its event from `rng` (in a fixed
/// order: a seed gives the same events).
impl LearningLearner {
    /// Opens session `session` (the learner's next) at `now`.
    fn start_session(&mut self, session: Uuid, now: i64, rng: &mut impl Rng) -> LearningData {
        self.session = session;
        self.sessions += 1;
        self.session_started_ms = now;
        self.activities_completed = 0;
        LearningData::SessionStarted {
            device: one_of(rng, DEVICES),
            app_version: one_of(rng, APP_VERSIONS),
            locale: one_of(rng, LOCALES),
            entry_point: one_of(rng, ENTRY_POINTS),
            screen: one_of(rng, &[[1366, 768], [1920, 1080], [2048, 1536], [1280, 800]]),
        }
    }

    fn end_session(&self, now: i64, rng: &mut impl Rng) -> LearningData {
        LearningData::SessionEnded {
            duration_ms: (now - self.session_started_ms).max(0),
            activities_completed: self.activities_completed,
            reason: one_of(rng, END_REASONS),
        }
    }

    /// Opens activity `id` of a random type and skill at `now`.
    fn start_activity(&mut self, id: Uuid, now: i64, rng: &mut impl Rng) -> LearningData {
        self.activity = id;
        self.activity_started_ms = now;
        self.activity_type = rng.random_range(0..ACTIVITY_TYPES.len() as u8);
        self.skill = rng.random_range(0..SKILLS.len() as u8);
        let skill = SKILLS[usize::from(self.skill)];
        LearningData::ActivityStarted {
            activity_id: Id(self.activity),
            activity_type: ACTIVITY_TYPES[usize::from(self.activity_type)],
            content_id: Id(random_uuid(rng)),
            subject_area: skill.split('.').next().unwrap_or("math"),
            skill_id: skill,
            grade_level: rng.random_range(1..=8),
            difficulty: rng.random_range(1..=5),
        }
    }

    /// Completes the open activity with a random score (passed from 70%).
    fn complete_activity(&mut self, now: i64, rng: &mut impl Rng) -> LearningData {
        self.activities_completed = self.activities_completed.saturating_add(1);
        let attempted = rng.random_range(1..=20u8);
        let correct = rng.random_range(0..=attempted);
        let score = f32::from(correct) / f32::from(attempted);
        LearningData::ActivityCompleted {
            activity_id: Id(self.activity),
            activity_type: ACTIVITY_TYPES[usize::from(self.activity_type)],
            duration_ms: (now - self.activity_started_ms).max(0),
            items_attempted: attempted,
            items_correct: correct,
            score: (score * 100.0).round() / 100.0,
            outcome: if score >= 0.7 {
                "passed"
            } else {
                "needs_practice"
            },
        }
    }

    /// Masters the skill of the activity just completed.
    fn master_skill(&self, rng: &mut impl Rng) -> LearningData {
        LearningData::SkillMastered {
            activity_id: Id(self.activity),
            skill_id: SKILLS[usize::from(self.skill)],
            mastery: f32::from(rng.random_range(80..=100u8)) / 100.0,
            evidence_count: rng.random_range(3..40),
            previous_level: one_of(rng, &["emerging", "developing", "proficient"]),
        }
    }
}
