//! Recommendations: lists of next activities the recommender makes for a learner, and their views.
//!
//! A `recommendation.created` carries its ranked items (3 to 10, about 150 B each), so it is one of
//! the larger events; a view is small. Recommendations belong to the learner, not to a session.
//!
//! # Lifecycle
//! `recommendation.created` can happen to any learner at any time; each learner keeps at most
//! [`PENDING_MAX`] unviewed recommendations (a newer one pushes the oldest out: it expires unseen).
//! `recommendation.viewed` names a pending recommendation of its learner, oldest first, once.
//!
//! # Mix drift
//! A view drawn while no learner has a pending recommendation becomes a `created` (its
//! prerequisite). So a mix with `viewed <= created` is kept within sampling noise; more views than
//! creations turn the surplus into creations, meeting at half and half.

use rand::Rng;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::lifecycle::{millis, one_of, Draft, SourceCore, StateBags};
use super::population::random_uuid;
use super::{EventSource, OutgoingEvent, SourceConfig, TrafficError};
use crate::event::envelope::Id;

/// Subjects the recommendation domain emits (the order numbers them in this file).
pub const SUBJECTS: &[&str] = &["recommendation.created", "recommendation.viewed"];
const CREATED: usize = 0;
const VIEWED: usize = 1;

// Learner states.
const NONE_PENDING: u8 = 0;
const PENDING: u8 = 1;

/// Unviewed recommendations a learner keeps; older ones expire unseen.
pub const PENDING_MAX: usize = 4;
const ITEMS: std::ops::RangeInclusive<u8> = 3..=10;

const MODELS: &[(&str, &str)] = &[
    ("next-best-activity", "2026.01.3"),
    ("skill-gap", "7.2.0"),
    ("review-scheduler", "1.14.2"),
];
const CONTEXTS: &[&str] = &[
    "home_feed",
    "after_activity",
    "weekly_plan",
    "teacher_assigned",
];
const KINDS: &[&str] = &["lesson", "practice", "quiz", "video", "reading", "game"];
const REASONS: &[&str] = &[
    "skill_gap",
    "spaced_review",
    "next_in_path",
    "peer_popular",
    "teacher_pick",
];
const SURFACES: &[&str] = &["home", "dashboard", "notification", "end_of_activity"];
const TITLES: &[&str] = &[
    "Adding fractions with unlike denominators",
    "Area of triangles: practice set",
    "Finding the main idea of a passage",
    "Food webs and energy transfer",
    "Solving one-step equations",
    "Context clues: vocabulary warm-up",
    "Causes of the American Revolution",
    "States of matter lab video",
    "Subject-verb agreement quiz",
    "Place value to the millions",
    "Writing strong topic sentences",
    "The water cycle, step by step",
];

#[derive(Serialize)]
struct Item {
    rank: u8,
    content_id: Id,
    kind: &'static str,
    title: &'static str,
    score: f32,
    reason: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum RecommendationData<'a> {
    Created {
        recommendation_id: Id,
        model: &'static str,
        model_version: &'static str,
        context: &'static str,
        items: &'a [Item],
    },
    Viewed {
        recommendation_id: Id,
        age_ms: i64,
        surface: &'static str,
        clicked_rank: Option<u8>,
        dwell_ms: u32,
    },
}

/// Generates recommendation events for one publisher's learners.
pub struct RecommendationSource {
    core: SourceCore,
    bags: StateBags,
    /// Per learner: unviewed recommendations (id, created at, items), oldest first.
    pending: Vec<Vec<(Uuid, i64, u8)>>,
    /// Reused for a creation's items.
    items: Vec<Item>,
}

impl RecommendationSource {
    /// A source for `config.shard`'s learners; refuses subjects the recommendation domain does not
    /// emit.
    pub fn new(config: SourceConfig) -> Result<Self, TrafficError> {
        let core = SourceCore::new(config)?;
        let n = core.learners();
        Ok(Self {
            core,
            bags: StateBags::new(n, 2, NONE_PENDING),
            pending: vec![Vec::with_capacity(PENDING_MAX); n],
            items: Vec::with_capacity(usize::from(*ITEMS.end())),
        })
    }
}

impl EventSource for RecommendationSource {
    fn next_event(&mut self, seq: u64, occurred_at: OffsetDateTime) -> OutgoingEvent {
        let drawn = self.core.draw_kind();
        let viewer = match drawn {
            VIEWED => self.bags.pick(&[PENDING], &mut self.core.rng),
            _ => None,
        };
        let now = millis(occurred_at);
        let (kind, l, data) = match viewer {
            Some(l) => {
                let pending = &mut self.pending[l as usize];
                let (id, created_ms, items) = pending.remove(0);
                if pending.is_empty() {
                    self.bags.set(l, NONE_PENDING);
                }
                let rng = &mut self.core.rng;
                let clicked = rng.random_bool(0.6).then(|| rng.random_range(1..=items));
                let data = RecommendationData::Viewed {
                    recommendation_id: Id(id),
                    age_ms: (now - created_ms).max(0),
                    surface: one_of(rng, SURFACES),
                    clicked_rank: clicked,
                    dwell_ms: rng.random_range(500..120_000),
                };
                (VIEWED, l, data)
            }
            None => {
                let l = self.core.any_learner();
                let id = self.core.new_id(occurred_at);
                let rng = &mut self.core.rng;
                let count = rng.random_range(ITEMS);
                self.items.clear();
                let mut score = rng.random_range(0.80f32..0.99);
                for rank in 1..=count {
                    self.items.push(Item {
                        rank,
                        content_id: Id(random_uuid(rng)),
                        kind: one_of(rng, KINDS),
                        title: one_of(rng, TITLES),
                        score: (score * 1000.0).round() / 1000.0,
                        reason: one_of(rng, REASONS),
                    });
                    score *= rng.random_range(0.85f32..0.99);
                }
                let pending = &mut self.pending[l as usize];
                if pending.len() == PENDING_MAX {
                    pending.remove(0);
                }
                pending.push((id, now, count));
                self.bags.set(l, PENDING);
                let (model, model_version) = one_of(rng, MODELS);
                let data = RecommendationData::Created {
                    recommendation_id: Id(id),
                    model,
                    model_version,
                    context: one_of(rng, CONTEXTS),
                    items: &self.items,
                };
                (CREATED, l, data)
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
