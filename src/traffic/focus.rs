//! Focus telemetry: the high-volume pings and focus-loss events of learners in a session.
//!
//! Pings are the bulk of AIVO's traffic and the smallest events (the envelope plus ~70 B of data);
//! loss and restore events carry a little more.
//!
//! # Lifecycle
//! Per learner: out of session → focused ⇄ lost (idle or tab switch) → out of session. Pings and
//! losses happen only inside a session; `focus.restored` only after a loss of the same session.
//! The focus domain has no subject that opens or closes a session: a session opens when the learner
//! is first picked for an event and closes, silently, after a drawn number of its events (a learner
//! may leave while lost, as one walking away does). Session `n` of a learner has the id
//! [`session_uuid`]`(seed, learner, n)`, the same the learning source gives that learner's `n`-th
//! `learning.session.started`, so focus events name sessions of the learner; the two sources do not
//! share a clock, so the focus source's `n`-th session need not overlap the learning one in time.
//!
//! # Mix drift
//! A subject is drawn by weight, then a learner whose state allows it. A ping suits any learner, a
//! loss a focused one, a restore a lost one. A loss drawn when nobody is focused ends a lost
//! learner's session (it walked away) and falls in that learner's next session, so pings and losses
//! are always kept as drawn. A restore drawn when nobody is lost becomes a loss (its prerequisite),
//! so a mix asking for more restores than losses sees the surplus turn into losses, the two meeting
//! halfway. Mixes with fewer restores than losses (the seed's focus-burst has none) are kept, at
//! the price of many learners staying lost (their pings say `"focused": false`) and sessions cut
//! short; the default mix balances them.

use rand::Rng;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::lifecycle::{millis, one_of, Draft, SourceCore, StateBags};
use super::population::session_uuid;
use super::{EventSource, OutgoingEvent, SourceConfig, TrafficError};

/// Subjects the focus domain emits (the order numbers them in this file).
pub const SUBJECTS: &[&str] = &[
    "focus.ping",
    "focus.loss.idle",
    "focus.loss.tab_switch",
    "focus.restored",
];
const PING: usize = 0;
const LOSS_IDLE: usize = 1;
const LOSS_TAB: usize = 2;
const RESTORED: usize = 3;

// Learner states.
const OUT: u8 = 0;
const FOCUSED: u8 = 1;
const LOST: u8 = 2;

/// Events a focus session lasts, drawn when it opens (a ping every 5 s: about 3 to 40 minutes).
const SESSION_EVENTS: std::ops::Range<u32> = 40..480;

const SURFACES: &[&str] = &["lesson", "practice", "quiz", "reading", "video"];
const HOSTS: &[&str] = &["video-site", "game-site", "chat-app", "search", "unknown"];
const CAUSES: [&str; 2] = ["idle", "tab_switch"];

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
        lost_ms: i64,
        cause: &'static str,
    },
}

/// Per-learner focus state beyond the bag it sits in.
#[derive(Clone, Default)]
struct FocusLearner {
    /// Sessions opened so far; the open one (if any) is number `sessions - 1`.
    sessions: u32,
    session: Uuid,
    /// Events left before the session closes.
    events_left: u32,
    lost_since_ms: i64,
    lost_cause: u8,
}

/// Generates focus events for one publisher's learners.
pub struct FocusSource {
    core: SourceCore,
    bags: StateBags,
    learners: Vec<FocusLearner>,
}

impl FocusSource {
    /// A source for `config.shard`'s learners; refuses subjects the focus domain does not emit.
    pub fn new(config: SourceConfig) -> Result<Self, TrafficError> {
        let core = SourceCore::new(config)?;
        let n = core.learners();
        Ok(Self {
            core,
            bags: StateBags::new(n, 3, OUT),
            learners: vec![FocusLearner::default(); n],
        })
    }

    /// Turns the drawn subject into (subject, learner) that the learners' states allow.
    fn choose(&mut self, drawn: usize) -> (usize, u32) {
        let rng = &mut self.core.rng;
        match drawn {
            LOSS_IDLE | LOSS_TAB => match self.bags.pick(&[FOCUSED], rng) {
                Some(l) => (drawn, l),
                None => {
                    let l = self.core.any_learner();
                    if self.bags.state(l) == LOST {
                        // Nobody focused: this learner walked away while lost. Its session ends
                        // (silently, as focus sessions do) and the loss falls in its next one.
                        self.bags.set(l, OUT);
                    }
                    (drawn, l)
                }
            },
            RESTORED => match self.bags.pick(&[LOST], rng) {
                Some(l) => (RESTORED, l),
                // Nobody is lost, so this learner is focused or out: a loss comes first.
                None => (LOSS_IDLE, self.core.any_learner()),
            },
            _ => (PING, self.core.any_learner()),
        }
    }
}

impl EventSource for FocusSource {
    fn next_event(&mut self, seq: u64, occurred_at: OffsetDateTime) -> OutgoingEvent {
        let drawn = self.core.draw_kind();
        let (kind, l) = self.choose(drawn);
        let now = millis(occurred_at);
        if self.bags.state(l) == OUT {
            let state = &mut self.learners[l as usize];
            state.session = session_uuid(self.core.seed, self.core.global(l), state.sessions);
            state.sessions += 1;
            state.events_left = self.core.rng.random_range(SESSION_EVENTS);
            self.bags.set(l, FOCUSED);
        }
        let rng = &mut self.core.rng;
        let state = &mut self.learners[l as usize];
        let data = match kind {
            LOSS_IDLE | LOSS_TAB => {
                state.lost_since_ms = now;
                state.lost_cause = u8::from(kind == LOSS_TAB);
                self.bags.set(l, LOST);
                if kind == LOSS_IDLE {
                    FocusData::Idle {
                        idle_ms: rng.random_range(30_000..600_000),
                        surface: one_of(rng, SURFACES),
                    }
                } else {
                    FocusData::TabSwitch {
                        to: one_of(rng, HOSTS),
                        visible_ms: rng.random_range(1_000..900_000),
                    }
                }
            }
            RESTORED => {
                self.bags.set(l, FOCUSED);
                FocusData::Restored {
                    lost_ms: (now - state.lost_since_ms).max(0),
                    cause: CAUSES[usize::from(state.lost_cause)],
                }
            }
            _ => FocusData::Ping {
                focused: self.bags.state(l) == FOCUSED,
                surface: one_of(rng, SURFACES),
                interval_ms: 5_000,
                input_events: rng.random_range(0..40),
            },
        };
        let session = state.session;
        state.events_left = state.events_left.saturating_sub(1);
        if state.events_left == 0 {
            self.bags.set(l, OUT);
        }
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
