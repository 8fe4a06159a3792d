//! Reading an event off a stream: the envelope (DESIGN.md §5) checked field by field, and the
//! verdict on a poison event (what kind, and why) that decides its dead-letter entry.
//!
//! The checks are the ones a consumer cannot recover from by retrying: the payload is not JSON, an
//! envelope field is missing or invalid, or the event's type is unknown (its `type` differs from its
//! subject, or the subject is not one AIVO publishes on this stream). Strings holding `\u0000` are
//! refused too: Postgres can store that character neither in `text` nor in `jsonb`, so such an event
//! would fail its insert on every delivery.
//!
//! The contract itself (the envelope as published, the ledger identity, the poison kinds) is the
//! leaf module `event/`; this file is the consumer's reading of it.

use std::borrow::Cow;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::envelope::is_valid_subject;
use crate::event::ledger;
use crate::event::poison::PoisonKind;
use crate::traffic::Domain;

/// A poison event: what is wrong with it, in words fit for a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    pub kind: PoisonKind,
    pub error: String,
}

impl Poison {
    fn new(kind: PoisonKind, error: impl Into<String>) -> Self {
        Self {
            kind,
            error: error.into(),
        }
    }
}

/// The envelope of a valid event, borrowing from its payload.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub event_id: Uuid,
    pub event_type: Cow<'a, str>,
    pub tenant_id: Cow<'a, str>,
    pub learner_id: Cow<'a, str>,
    pub session_id: Option<Cow<'a, str>>,
    pub occurred_at: OffsetDateTime,
    /// (run, publisher, seq) from the `Nats-Msg-Id`, else from the payload's `producer`
    /// (`event::ledger::identity`).
    pub ledger: Option<(Cow<'a, str>, u32, u64)>,
    /// The domain fields, still as JSON.
    pub data: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    learner_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

/// The stream a subject's domain belongs to (`focus.ping` → `FOCUS`), if it is one of AIVO's.
pub fn domain_of(subject: &str) -> Option<Domain> {
    match subject.split('.').next()? {
        "learning" => Some(Domain::Learning),
        "focus" => Some(Domain::Focus),
        "homework" => Some(Domain::Homework),
        "recommendation" => Some(Domain::Recommendation),
        _ => None,
    }
}

/// Whether `subject` is an event type AIVO publishes on `stream`: the `<domain>.<entity>.<action>`
/// shape, the domain of that stream, and, where the domain's generator lists its subjects, one of
/// them.
pub fn is_known_subject(subject: &str, stream: &str) -> bool {
    let Some(domain) = domain_of(subject) else {
        return false;
    };
    let listed = domain.subjects();
    is_valid_subject(subject)
        && domain.stream() == stream
        && (listed.is_empty() || listed.contains(&subject))
}

/// Checks one event read from `stream` on `subject`; `msg_id` is its `Nats-Msg-Id`, if any.
pub fn parse<'a>(
    subject: &str,
    stream: &str,
    msg_id: Option<&'a str>,
    payload: &'a [u8],
) -> Result<Envelope<'a>, Poison> {
    let wire: Wire<'a> = serde_json::from_slice(payload).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Data => PoisonKind::BadSchema,
            _ => PoisonKind::BadJson,
        };
        Poison::new(kind, e.to_string())
    })?;
    // Any escaped NUL anywhere (data included) would make the jsonb insert fail.
    if payload
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
    {
        return Err(Poison::new(
            PoisonKind::BadSchema,
            "payload contains \\u0000, which Postgres cannot store",
        ));
    }
    let required = |field: &'static str, value: Option<Cow<'a, str>>| {
        value
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Poison::new(PoisonKind::BadSchema, format!("missing field `{field}`")))
    };
    let event_id = required("event_id", wire.event_id)?;
    let event_id = Uuid::parse_str(&event_id)
        .ok()
        .filter(|id| !id.is_nil())
        .ok_or_else(|| {
            Poison::new(
                PoisonKind::BadSchema,
                format!("event_id {event_id:?} is not a UUID"),
            )
        })?;
    let event_type = required("type", wire.event_type)?;
    let tenant_id = required("tenant_id", wire.tenant_id)?;
    let learner_id = required("learner_id", wire.learner_id)?;
    let occurred_text = required("occurred_at", wire.occurred_at)?;
    let occurred_at = OffsetDateTime::parse(&occurred_text, &Rfc3339).map_err(|e| {
        Poison::new(
            PoisonKind::BadSchema,
            format!("occurred_at {occurred_text:?} is not RFC 3339: {e}"),
        )
    })?;
    let data = wire
        .data
        .filter(|d| d.get().starts_with('{'))
        .ok_or_else(|| Poison::new(PoisonKind::BadSchema, "missing object field `data`"))?;
    if event_type != subject {
        return Err(Poison::new(
            PoisonKind::UnknownType,
            format!("type {event_type:?} does not match subject {subject:?}"),
        ));
    }
    if !is_known_subject(subject, stream) {
        return Err(Poison::new(
            PoisonKind::UnknownType,
            format!("{subject:?} is not a known event type of stream {stream}"),
        ));
    }
    let ledger = ledger::identity(msg_id, payload).map(|i| (i.run, i.publisher, i.seq));
    Ok(Envelope {
        event_id,
        event_type,
        tenant_id,
        learner_id,
        session_id: wire.session_id.filter(|s| !s.is_empty()),
        occurred_at,
        ledger,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_id":"01890a5d-ac96-774b-bcce-b302099a8057","type":"focus.ping","tenant_id":"t1","learner_id":"l1","occurred_at":"2027-01-15T08:00:00.000Z","producer":{"run":"r","publisher":1,"seq":7},"data":{"focused":true,"interval_ms":5000}}"#;

    #[test]
    fn valid_event_parses_with_ledger_from_msg_id_first() {
        let event =
            parse("focus.ping", "FOCUS", Some("run-x/3/9"), GOOD.as_bytes()).expect("valid");
        assert_eq!(event.tenant_id, "t1");
        assert_eq!(event.ledger, Some((Cow::Borrowed("run-x"), 3, 9)));
        let event = parse("focus.ping", "FOCUS", None, GOOD.as_bytes()).expect("valid");
        assert_eq!(event.ledger, Some((Cow::Borrowed("r"), 1, 7)));
    }

    #[test]
    fn poison_is_classified() {
        let kind = |subject: &str, stream: &str, payload: &str| {
            parse(subject, stream, None, payload.as_bytes())
                .map(|_| ())
                .map_err(|p| p.kind)
        };
        assert_eq!(
            kind("focus.ping", "FOCUS", "{not json"),
            Err(PoisonKind::BadJson)
        );
        assert_eq!(
            kind("focus.ping", "FOCUS", "[1,2]"),
            Err(PoisonKind::BadSchema)
        );
        let no_tenant = GOOD.replace(r#""tenant_id":"t1","#, "");
        assert_eq!(
            kind("focus.ping", "FOCUS", &no_tenant),
            Err(PoisonKind::BadSchema)
        );
        let bad_time = GOOD.replace("2027-01-15T08:00:00.000Z", "yesterday");
        assert_eq!(
            kind("focus.ping", "FOCUS", &bad_time),
            Err(PoisonKind::BadSchema)
        );
        let bad_id = GOOD.replace("01890a5d-ac96-774b-bcce-b302099a8057", "42");
        assert_eq!(
            kind("focus.ping", "FOCUS", &bad_id),
            Err(PoisonKind::BadSchema)
        );
        let nul = GOOD.replace("\"l1\"", "\"l\\u00001\"");
        assert_eq!(
            kind("focus.ping", "FOCUS", &nul),
            Err(PoisonKind::BadSchema)
        );
        assert_eq!(
            kind("focus.loss.idle", "FOCUS", GOOD),
            Err(PoisonKind::UnknownType)
        );
        let unknown = GOOD.replace("focus.ping", "focus.teleport");
        assert_eq!(
            kind("focus.teleport", "FOCUS", &unknown),
            Err(PoisonKind::UnknownType)
        );
        assert_eq!(
            kind("focus.ping", "LEARNING", GOOD),
            Err(PoisonKind::UnknownType)
        );
        assert_eq!(kind("focus.ping", "FOCUS", GOOD), Ok(()));
    }
}
