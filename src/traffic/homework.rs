//! Homework help: questions learners ask, the hints they request, their answers and the grades.
//!
//! Questions are the large events of AIVO's traffic (their text makes them 1–2 KB); hints, answers
//! and grades carry shorter texts. Homework happens outside learning sessions, so these events have
//! no `session_id`; `question_id` ties them together.
//!
//! # Lifecycle
//! Per learner, one question at a time: no question → `question.asked` → open (any number of
//! `hint.requested`) → `answer.submitted` → `answer.graded` → no question. So an answer follows its
//! question, hints only come for an open (unanswered) question, a grade only after its answer.
//!
//! # Mix drift
//! A subject is drawn by weight, then a learner whose state allows it; when nobody's does, the
//! prerequisite nearest to it is emitted instead (a grade drawn with nothing submitted: an answer;
//! with nothing open either: a question). A mix with `asked` ≈ `submitted` ≈ `graded` is kept within
//! sampling noise, hints at any weight (they do not change state); otherwise the surplus turns into
//! prerequisites until the three meet.

use rand::Rng;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::lifecycle::{fill_text, millis, one_of, Draft, SourceCore, StateBags};
use super::population::random_uuid;
use super::{EventSource, OutgoingEvent, SourceConfig, TrafficError};
use crate::event::envelope::Id;

/// Subjects the homework domain emits (the order numbers them in this file).
pub const SUBJECTS: &[&str] = &[
    "homework.question.asked",
    "homework.hint.requested",
    "homework.answer.submitted",
    "homework.answer.graded",
];
const ASKED: usize = 0;
const HINT: usize = 1;
const SUBMITTED: usize = 2;
const GRADED: usize = 3;

// Learner states.
const NO_QUESTION: u8 = 0;
const OPEN: u8 = 1;
const ANSWERED: u8 = 2;

/// Characters of question text; with the envelope a question is about 1.2–2 KB.
const QUESTION_CHARS: std::ops::Range<usize> = 700..1_450;
const HINT_CHARS: std::ops::Range<usize> = 120..320;
const ANSWER_CHARS: std::ops::Range<usize> = 60..500;
const FEEDBACK_CHARS: std::ops::Range<usize> = 80..300;

const SUBJECT_AREAS: &[&str] = &["math", "reading", "science", "history", "writing"];
const FORMATS: &[&str] = &[
    "free_text",
    "worked_problem",
    "short_answer",
    "essay_outline",
];
const HINT_KINDS: &[&str] = &["nudge", "worked_step", "definition", "similar_example"];
const GRADERS: &[&str] = &["auto", "model", "teacher"];
const WORDS: &[&str] = &[
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "how",
    "why",
    "what",
    "which",
    "explain",
    "show",
    "your",
    "work",
    "find",
    "value",
    "equation",
    "fraction",
    "denominator",
    "triangle",
    "area",
    "angle",
    "sum",
    "product",
    "ratio",
    "percent",
    "graph",
    "slope",
    "plant",
    "cell",
    "energy",
    "water",
    "cycle",
    "force",
    "motion",
    "author",
    "paragraph",
    "evidence",
    "claim",
    "character",
    "theme",
    "summary",
    "revolution",
    "colony",
    "trade",
    "map",
    "river",
    "describe",
    "compare",
    "between",
    "each",
    "step",
    "answer",
    "question",
    "number",
    "solve",
    "if",
    "then",
    "when",
    "measure",
    "estimate",
    "because",
    "example",
];

#[derive(Serialize)]
#[serde(untagged)]
enum HomeworkData<'t> {
    Asked {
        question_id: Id,
        assignment_id: Id,
        subject_area: &'static str,
        grade_level: u8,
        format: &'static str,
        question_text: &'t str,
        attachments: u8,
    },
    Hint {
        question_id: Id,
        hint_index: u16,
        hint_kind: &'static str,
        hint_text: &'t str,
    },
    Submitted {
        question_id: Id,
        answer_id: Id,
        answer_text: &'t str,
        time_spent_ms: i64,
        hints_used: u16,
    },
    Graded {
        question_id: Id,
        answer_id: Id,
        correct: bool,
        score: f32,
        grader: &'static str,
        feedback: &'t str,
        grading_ms: i64,
    },
}

/// Per-learner homework state beyond the bag it sits in.
#[derive(Clone, Default)]
struct HomeworkLearner {
    question: Uuid,
    asked_ms: i64,
    hints: u16,
    answer: Uuid,
    submitted_ms: i64,
}

/// Generates homework events for one publisher's learners.
pub struct HomeworkSource {
    core: SourceCore,
    bags: StateBags,
    learners: Vec<HomeworkLearner>,
    /// Reused for the event's free text.
    text: String,
}

impl HomeworkSource {
    /// A source for `config.shard`'s learners; refuses subjects the homework domain does not emit.
    pub fn new(config: SourceConfig) -> Result<Self, TrafficError> {
        let core = SourceCore::new(config)?;
        let n = core.learners();
        Ok(Self {
            core,
            bags: StateBags::new(n, 3, NO_QUESTION),
            learners: vec![HomeworkLearner::default(); n],
            text: String::with_capacity(QUESTION_CHARS.end + 32),
        })
    }

    /// Turns the drawn subject into (subject, learner) that the learners' states allow.
    fn choose(&mut self, drawn: usize) -> (usize, u32) {
        let plan: &[(u8, usize)] = match drawn {
            ASKED => &[(NO_QUESTION, ASKED), (ANSWERED, GRADED), (OPEN, SUBMITTED)],
            HINT => &[(OPEN, HINT), (NO_QUESTION, ASKED), (ANSWERED, GRADED)],
            SUBMITTED => &[(OPEN, SUBMITTED), (NO_QUESTION, ASKED), (ANSWERED, GRADED)],
            _ => &[(ANSWERED, GRADED), (OPEN, SUBMITTED), (NO_QUESTION, ASKED)],
        };
        for &(state, kind) in plan {
            if let Some(l) = self.bags.pick(&[state], &mut self.core.rng) {
                return (kind, l);
            }
        }
        // The three states cover every learner and the shard is never empty.
        (ASKED, 0)
    }
}

impl EventSource for HomeworkSource {
    fn next_event(&mut self, seq: u64, occurred_at: OffsetDateTime) -> OutgoingEvent {
        let drawn = self.core.draw_kind();
        let (kind, l) = self.choose(drawn);
        let now = millis(occurred_at);
        let fresh_id = match kind {
            ASKED | SUBMITTED => self.core.new_id(occurred_at),
            _ => Uuid::nil(),
        };
        let rng = &mut self.core.rng;
        let state = &mut self.learners[l as usize];
        let text = &mut self.text;
        let data = match kind {
            ASKED => {
                state.question = fresh_id;
                state.asked_ms = now;
                state.hints = 0;
                self.bags.set(l, OPEN);
                let target = rng.random_range(QUESTION_CHARS);
                fill_text(rng, WORDS, target, text);
                HomeworkData::Asked {
                    question_id: Id(fresh_id),
                    assignment_id: Id(random_uuid(rng)),
                    subject_area: one_of(rng, SUBJECT_AREAS),
                    grade_level: rng.random_range(3..=12),
                    format: one_of(rng, FORMATS),
                    question_text: text,
                    attachments: if rng.random_bool(0.2) { 1 } else { 0 },
                }
            }
            HINT => {
                state.hints = state.hints.saturating_add(1);
                let target = rng.random_range(HINT_CHARS);
                fill_text(rng, WORDS, target, text);
                HomeworkData::Hint {
                    question_id: Id(state.question),
                    hint_index: state.hints,
                    hint_kind: one_of(rng, HINT_KINDS),
                    hint_text: text,
                }
            }
            SUBMITTED => {
                state.answer = fresh_id;
                state.submitted_ms = now;
                self.bags.set(l, ANSWERED);
                let target = rng.random_range(ANSWER_CHARS);
                fill_text(rng, WORDS, target, text);
                HomeworkData::Submitted {
                    question_id: Id(state.question),
                    answer_id: Id(fresh_id),
                    answer_text: text,
                    time_spent_ms: (now - state.asked_ms).max(0),
                    hints_used: state.hints,
                }
            }
            _ => {
                self.bags.set(l, NO_QUESTION);
                let score = f32::from(rng.random_range(0..=100u8)) / 100.0;
                let target = rng.random_range(FEEDBACK_CHARS);
                fill_text(rng, WORDS, target, text);
                HomeworkData::Graded {
                    question_id: Id(state.question),
                    answer_id: Id(state.answer),
                    correct: score >= 0.6,
                    score,
                    grader: one_of(rng, GRADERS),
                    feedback: text,
                    grading_ms: (now - state.submitted_ms).max(0),
                }
            }
        };
        self.core.encode(Draft {
            kind,
            learner: l,
            session: None,
            seq,
            occurred_at,
            data,
        })
    }
}
