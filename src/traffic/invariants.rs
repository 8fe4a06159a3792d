//! Tests of what the domain sources promise, checked from the outside: every event is parsed back
//! from its JSON and each learner's events are replayed through a checker written against the
//! envelope and `data` fields alone (it shares no code with the generators' state machines).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use time::OffsetDateTime;

use super::population::Population;
use super::{build_source, Domain, Mix, OutgoingEvent, Shard, SourceConfig};

/// A run id as long as a real one (`<UTC time>-<scenario>`), so sizes are realistic.
const RUN_ID: &str = "20270115T080000Z-school-day";
const START: i64 = 1_800_000_000;

/// Feeds `per_publisher` events from each of `publishers` publishers of `domain` to `each`, with
/// intended times 1 ms apart, as (publisher, seq, event) in each publisher's order.
fn generate(
    domain: Domain,
    mix: &[(String, u32)],
    population: &Arc<Population>,
    (publishers, per_publisher): (u32, u64),
    seed: u64,
    mut each: impl FnMut(u32, u64, OutgoingEvent),
) {
    for p in 0..publishers {
        let mut source = build_source(SourceConfig {
            domain,
            mix: Mix::new(mix).expect("non-zero mix"),
            population: population.clone(),
            run_id: RUN_ID.into(),
            publisher: 100 + p,
            shard: Shard::new(p, publishers),
            seed,
        })
        .expect("valid source");
        let start = OffsetDateTime::from_unix_timestamp(START).expect("valid");
        for seq in 1..=per_publisher {
            let at = start + time::Duration::milliseconds(seq as i64);
            each(100 + p, seq, source.next_event(seq, at));
        }
    }
}

#[derive(Deserialize)]
struct Seen<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    tenant_id: &'a str,
    learner_id: &'a str,
    session_id: Option<&'a str>,
    occurred_at: &'a str,
    producer: SeenProducer<'a>,
    data: SeenData<'a>,
}

#[derive(Deserialize)]
struct SeenProducer<'a> {
    run: &'a str,
    publisher: u32,
    seq: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SeenData<'a> {
    activity_id: Option<&'a str>,
    question_id: Option<&'a str>,
    answer_id: Option<&'a str>,
    recommendation_id: Option<&'a str>,
    hint_index: Option<u32>,
    focused: Option<bool>,
    question_text: Option<&'a str>,
    items: Option<Vec<serde::de::IgnoredAny>>,
}

/// What the checker remembers of one learner, across all domains.
#[derive(Default)]
struct Replay {
    publisher: Option<u32>,
    tenant: String,
    /// Per domain (the test replays one domain after another, each from the same start time).
    last_at: HashMap<String, String>,
    // learning
    learning_sessions: Vec<String>,
    session_open: bool,
    activity_open: Option<String>,
    masterable: Option<String>,
    // focus
    focus_sessions: Vec<String>,
    lost: bool,
    // homework
    question_open: Option<String>,
    hints: u32,
    answered: Option<(String, String)>,
    // recommendation
    pending: HashSet<String>,
    viewed: HashSet<String>,
}

/// One event as the checker saw it: parsed, with its JSON text for the panic message.
struct Event<'a> {
    text: &'a str,
    seen: Seen<'a>,
}

impl Event<'_> {
    /// Panics with the rule broken and the event that broke it.
    fn fail(&self, why: &str) -> ! {
        panic!("{why}: {}", self.text)
    }

    /// The envelope agrees with what the engine was handed, and the event id is a UUIDv7 whose
    /// timestamp is `occurred_at`.
    fn check_envelope(&self, publisher: u32, seq: u64, event: &OutgoingEvent) {
        let seen = &self.seen;
        if seen.kind != event.subject.as_str() || seen.event_id != event.event_id.as_str() {
            self.fail("type/event_id differ from the subject/id handed to the engine");
        }
        if (
            seen.producer.run,
            seen.producer.publisher,
            seen.producer.seq,
        ) != (RUN_ID, publisher, seq)
        {
            self.fail("producer");
        }
        let id = uuid::Uuid::parse_str(seen.event_id).unwrap_or_else(|_| self.fail("event id"));
        if id.get_version_num() != 7 {
            self.fail("event id is not v7");
        }
        let at = OffsetDateTime::parse(
            seen.occurred_at,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or_else(|_| self.fail("occurred_at"));
        let (secs, nanos) = id
            .get_timestamp()
            .unwrap_or_else(|| self.fail("no timestamp"))
            .to_unix();
        if i128::from(secs) * 1000 + i128::from(nanos / 1_000_000)
            != at.unix_timestamp_nanos() / 1_000_000
        {
            self.fail("event id timestamp is not occurred_at");
        }
    }
}

/// Replays events through the lifecycle rules; panics (with the event) on the first violation.
#[derive(Default)]
struct Checker {
    learners: HashMap<String, Replay>,
    counts: BTreeMap<String, u64>,
}

impl Checker {
    fn check(&mut self, publisher: u32, seq: u64, event: &OutgoingEvent) {
        let text = std::str::from_utf8(&event.payload).expect("utf-8");
        let seen: Seen = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let e = Event { text, seen };
        e.check_envelope(publisher, seq, event);
        *self.counts.entry(e.seen.kind.to_string()).or_default() += 1;
        let r = self
            .learners
            .entry(e.seen.learner_id.to_string())
            .or_default();
        let domain = e.seen.kind.split('.').next().unwrap_or_default();
        r.follow(&e, publisher, domain);
        match domain {
            "learning" => r.learning(&e),
            "focus" => r.focus(&e),
            "homework" => r.homework(&e),
            "recommendation" => r.recommendation(&e),
            _ => e.fail("unknown type"),
        }
    }
}

impl Replay {
    /// What holds for every event of a learner: one publisher, one tenant, time never going back
    /// within a domain, a session id exactly in the domains that have sessions.
    fn follow(&mut self, e: &Event<'_>, publisher: u32, domain: &str) {
        let seen = &e.seen;
        if *self.publisher.get_or_insert(publisher) != publisher {
            e.fail("learner driven by two publishers");
        }
        if self.tenant.is_empty() {
            self.tenant = seen.tenant_id.to_string();
        } else if self.tenant != seen.tenant_id {
            e.fail("learner changed tenant");
        }
        let last_at = self.last_at.entry(domain.to_string()).or_default();
        if seen.occurred_at < last_at.as_str() {
            e.fail("learner's events go back in time");
        }
        seen.occurred_at.clone_into(last_at);
        match domain {
            "learning" | "focus" if seen.session_id.is_none() => e.fail("session_id missing"),
            "homework" | "recommendation" if seen.session_id.is_some() => {
                e.fail("unexpected session_id")
            }
            _ => {}
        }
    }

    /// The event belongs to the learning session that is open.
    fn in_open_session(&self, session: Option<&str>) -> bool {
        self.session_open && self.learning_sessions.last().map(String::as_str) == session
    }

    /// Sessions hold activities one at a time; mastery follows a completed activity.
    fn learning(&mut self, e: &Event<'_>) {
        let session = e.seen.session_id;
        let d = &e.seen.data;
        match e.seen.kind {
            "learning.session.started" => {
                let s = session.unwrap_or_default();
                if self.session_open || self.learning_sessions.iter().any(|x| x == s) {
                    e.fail("session started twice or inside another");
                }
                self.learning_sessions.push(s.to_string());
                self.session_open = true;
            }
            "learning.activity.started" => {
                if !self.in_open_session(session) || self.activity_open.is_some() {
                    e.fail("activity outside its session or inside another activity");
                }
                self.activity_open = Some(
                    d.activity_id
                        .unwrap_or_else(|| e.fail("activity_id"))
                        .into(),
                );
                self.masterable = None;
            }
            "learning.activity.completed" => {
                if !self.in_open_session(session) {
                    e.fail("completion outside its session");
                }
                if self.activity_open.as_deref() != d.activity_id || d.activity_id.is_none() {
                    e.fail("completed an activity that was not started");
                }
                self.masterable = self.activity_open.take();
            }
            "learning.skill.mastered" => {
                if !self.in_open_session(session) || self.activity_open.is_some() {
                    e.fail("mastery outside its session or during an activity");
                }
                if self.masterable.as_deref() != d.activity_id || d.activity_id.is_none() {
                    e.fail("mastery without its completed activity");
                }
                self.masterable = None;
            }
            "learning.session.ended" => {
                if !self.in_open_session(session) || self.activity_open.is_some() {
                    e.fail("session ended before its activities or was never started");
                }
                self.session_open = false;
                self.masterable = None;
            }
            _ => e.fail("unknown type"),
        }
    }

    /// Focus sessions never come back once left; loss and restore alternate, and pings carry the
    /// focused flag they imply.
    fn focus(&mut self, e: &Event<'_>) {
        let kind = e.seen.kind;
        if !matches!(
            kind,
            "focus.ping" | "focus.loss.idle" | "focus.loss.tab_switch" | "focus.restored"
        ) {
            e.fail("unknown type");
        }
        let s = e.seen.session_id.unwrap_or_default();
        if self.focus_sessions.last().map(String::as_str) != Some(s) {
            // A new focus session: never one seen before.
            if self.focus_sessions.iter().any(|x| x == s) {
                e.fail("focus returned to a finished session");
            }
            self.focus_sessions.push(s.to_string());
            self.lost = false;
        }
        match kind {
            "focus.ping" => {
                if e.seen.data.focused != Some(!self.lost) {
                    e.fail("ping's focused flag disagrees with loss/restore");
                }
            }
            "focus.restored" => {
                if !self.lost {
                    e.fail("restored without a loss");
                }
                self.lost = false;
            }
            _ => {
                if self.lost {
                    e.fail("lost focus twice");
                }
                self.lost = true;
            }
        }
    }

    /// One question open at a time, hints numbered from 1, each answer graded once.
    fn homework(&mut self, e: &Event<'_>) {
        let d = &e.seen.data;
        match e.seen.kind {
            "homework.question.asked" => {
                if self.question_open.is_some() || self.answered.is_some() {
                    e.fail("question asked while another is open");
                }
                if d.question_text.map_or(0, str::len) < 500 {
                    e.fail("question without its text");
                }
                self.question_open = Some(
                    d.question_id
                        .unwrap_or_else(|| e.fail("question_id"))
                        .into(),
                );
                self.hints = 0;
            }
            "homework.hint.requested" => {
                if self.question_open.as_deref() != d.question_id || d.question_id.is_none() {
                    e.fail("hint for a question that is not open");
                }
                self.hints += 1;
                if d.hint_index != Some(self.hints) {
                    e.fail("hint index");
                }
            }
            "homework.answer.submitted" => {
                if self.question_open.as_deref() != d.question_id || d.question_id.is_none() {
                    e.fail("answer without its open question");
                }
                let q = self.question_open.take().unwrap_or_default();
                self.answered =
                    Some((q, d.answer_id.unwrap_or_else(|| e.fail("answer_id")).into()));
            }
            "homework.answer.graded" => {
                let Some((q, a)) = self.answered.take() else {
                    e.fail("grade before its answer");
                };
                if Some(q.as_str()) != d.question_id || Some(a.as_str()) != d.answer_id {
                    e.fail("grade names another answer");
                }
            }
            _ => e.fail("unknown type"),
        }
    }

    /// Recommendations have 3 to 10 items, are created once and viewed at most once after.
    fn recommendation(&mut self, e: &Event<'_>) {
        let d = &e.seen.data;
        match e.seen.kind {
            "recommendation.created" => {
                let id = d
                    .recommendation_id
                    .unwrap_or_else(|| e.fail("recommendation_id"));
                if !(3..=10).contains(&d.items.as_ref().map_or(0, Vec::len)) {
                    e.fail("recommendation items");
                }
                if !self.pending.insert(id.to_string()) {
                    e.fail("recommendation created twice");
                }
            }
            "recommendation.viewed" => {
                let id = d
                    .recommendation_id
                    .unwrap_or_else(|| e.fail("recommendation_id"));
                if !self.pending.contains(id) || !self.viewed.insert(id.to_string()) {
                    e.fail("viewed before created, or twice");
                }
            }
            _ => e.fail("unknown type"),
        }
    }
}

fn population() -> Arc<Population> {
    Arc::new(Population::generate(11, 12, 1_200))
}

/// Over a million events from four domains, each with four publishers sharing one population,
/// every learner's events replay cleanly, and the focus source's sessions are sessions the
/// learning source gives the same learner.
#[test]
fn lifecycles_hold_over_a_million_events() {
    let population = population();
    let mut checker = Checker::default();
    let plan = [
        (Domain::Focus, 100_000u64),
        (Domain::Learning, 75_000),
        (Domain::Homework, 40_000),
        (Domain::Recommendation, 35_000),
    ];
    for (domain, per_publisher) in plan {
        generate(
            domain,
            &domain.default_mix(),
            &population,
            (4, per_publisher),
            5,
            |publisher, seq, event| checker.check(publisher, seq, &event),
        );
    }
    let total: u64 = checker.counts.values().sum();
    assert!(total >= 1_000_000, "{total}");
    for domain in Domain::ALL {
        for subject in domain.subjects() {
            assert!(
                checker.counts.get(*subject).copied().unwrap_or(0) > 100,
                "{subject}: {:?}",
                checker.counts
            );
        }
    }
    let mut shared = 0;
    for (learner, r) in &checker.learners {
        let n = r.focus_sessions.len().min(r.learning_sessions.len());
        assert_eq!(r.focus_sessions[..n], r.learning_sessions[..n], "{learner}");
        shared += n;
    }
    assert!(shared > 1_000, "{shared}");
}

/// Payload sizes per subject, in bytes, for a run id of 27 characters (each further character of
/// the run id adds one byte). Mirrors the table in `traffic/mod.rs`.
const SIZES: &[(&str, usize, usize)] = &[
    ("learning.session.started", 440, 520),
    ("learning.session.ended", 400, 470),
    ("learning.activity.started", 560, 640),
    ("learning.activity.completed", 500, 580),
    ("learning.skill.mastered", 490, 570),
    ("focus.ping", 400, 450),
    ("focus.loss.idle", 370, 420),
    ("focus.loss.tab_switch", 370, 420),
    ("focus.restored", 370, 420),
    ("homework.question.asked", 1_150, 2_048),
    ("homework.hint.requested", 500, 800),
    ("homework.answer.submitted", 500, 1_000),
    ("homework.answer.graded", 550, 850),
    ("recommendation.created", 850, 2_200),
    ("recommendation.viewed", 410, 480),
];

/// Every subject of every domain is emitted under its default mix, is well formed, parses as JSON
/// with its subject as `type`, stays within its documented size range, and the achieved mix is
/// within one percentage point of the requested one.
#[test]
fn every_subject_emitted_valid_sized_and_mixed_as_asked() {
    let population = population();
    const EVENTS: u64 = 60_000;
    for domain in Domain::ALL {
        let mix = domain.default_mix();
        let total_weight: u32 = mix.iter().map(|(_, w)| w).sum();
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        generate(
            domain,
            &mix,
            &population,
            (2, EVENTS / 2),
            3,
            |_, _, event| {
                let subject = event.subject.as_str();
                assert!(
                    crate::event::envelope::is_valid_subject(subject),
                    "{subject}"
                );
                assert!(domain.subjects().contains(&subject), "{subject}");
                let value: serde_json::Value =
                    serde_json::from_slice(&event.payload).expect("valid JSON");
                assert_eq!(value["type"], subject);
                let &(_, min, max) = SIZES
                    .iter()
                    .find(|(s, _, _)| *s == subject)
                    .expect("documented size");
                let len = event.payload.len();
                assert!(
                    (min..=max).contains(&len),
                    "{subject}: {len} B not in {min}..={max}"
                );
                *seen.entry(subject.to_string()).or_default() += 1;
            },
        );
        for subject in domain.subjects() {
            let got = seen.get(*subject).copied().unwrap_or(0) as f64 / EVENTS as f64;
            let asked = mix
                .iter()
                .find(|(s, _)| s == subject)
                .map_or(0.0, |(_, w)| f64::from(*w) / f64::from(total_weight));
            assert!(got > 0.0, "{subject} never emitted");
            assert!(
                (got - asked).abs() < 0.01,
                "{subject}: asked {asked:.3}, got {got:.3}"
            );
        }
    }
}

/// Collects a source's events as (subject, event id, payload).
fn sequence(domain: Domain, seed: u64, events: u64) -> Vec<(String, String, bytes::Bytes)> {
    let mut out = Vec::new();
    generate(
        domain,
        &domain.default_mix(),
        &population(),
        (2, events),
        seed,
        |_, _, e| {
            out.push((
                e.subject.to_string(),
                e.event_id.as_str().to_owned(),
                e.payload,
            ))
        },
    );
    out
}

/// The same seed and intended times give byte-identical events; another seed gives others.
#[test]
fn sequences_are_determined_by_the_seed() {
    for domain in Domain::ALL {
        let a = sequence(domain, 42, 5_000);
        assert_eq!(a, sequence(domain, 42, 5_000), "{domain:?}");
        let b = sequence(domain, 43, 5_000);
        let same = a.iter().zip(&b).filter(|(x, y)| x.2 == y.2).count();
        assert_eq!(
            same, 0,
            "{domain:?}: {same} identical payloads under another seed"
        );
    }
}

/// A mix with more of a subject than its lifecycle allows converges as documented instead of
/// breaking the lifecycle: restores beyond the losses become losses; the focus-burst mix (no
/// restore at all) keeps its losses as drawn.
#[test]
fn unbalanced_mixes_drift_as_documented() {
    let population = population();
    let mut checker = Checker::default();
    let mut count = BTreeMap::<String, u64>::new();
    let mix: Vec<(String, u32)> = vec![("focus.ping".into(), 50), ("focus.restored".into(), 50)];
    generate(
        Domain::Focus,
        &mix,
        &population,
        (1, 20_000),
        9,
        |p, seq, e| {
            checker.check(p, seq, &e);
            *count.entry(e.subject.to_string()).or_default() += 1;
        },
    );
    let restored = count.get("focus.restored").copied().unwrap_or(0);
    let lost = count.get("focus.loss.idle").copied().unwrap_or(0);
    assert!(restored <= lost && lost - restored < 1_300, "{count:?}");
    assert!((4_500..5_500).contains(&restored), "{count:?}");

    let burst: Vec<(String, u32)> = vec![
        ("focus.ping".into(), 95),
        ("focus.loss.idle".into(), 3),
        ("focus.loss.tab_switch".into(), 2),
    ];
    let mut checker = Checker::default();
    let mut count = BTreeMap::<String, u64>::new();
    generate(
        Domain::Focus,
        &burst,
        &population,
        (1, 50_000),
        9,
        |p, seq, e| {
            checker.check(p, seq, &e);
            *count.entry(e.subject.to_string()).or_default() += 1;
        },
    );
    assert_eq!(count.get("focus.restored"), None, "{count:?}");
    let idle = count.get("focus.loss.idle").copied().unwrap_or(0);
    assert!((1_300..1_700).contains(&idle), "{count:?}");
}
