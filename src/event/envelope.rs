//! The event envelope shared by every domain (DESIGN.md §5), encoded straight into a reused buffer.
//!
//! `{"producer", "event_id", "type", "tenant_id", "learner_id", "session_id"?, "occurred_at", "data"}`:
//! `producer` the ledger's coordinates (written first, so a reader finds the ledger identity without
//! decoding the rest, `event/ledger.rs`; JSON readers do not care about the order), `event_id` a
//! UUID v7 whose timestamp is the intended time, `type` the subject, `session_id` present for the
//! learning and focus domains. What goes in `data` is each
//! domain's business (see its file in `traffic/`). Ids are rendered on the stack, never through a
//! `String`. Subjects have the shape [`is_valid_subject`] checks, for every domain.
//!
//! This is the envelope as published; reading one back and classifying what is wrong with it is
//! the consumers' business (`consumers/envelope.rs`).

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who produced an event: the ledger's coordinates, repeated in the payload for readers downstream.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Producer<'a> {
    pub run: &'a str,
    pub publisher: u32,
    pub seq: u64,
}

/// One event as it goes on the wire; `data` holds the domain's fields. Fields serialise in this
/// order: `producer` must stay first (`event::ledger::from_payload` reads it off the leading bytes).
#[derive(Debug, Serialize)]
pub struct Envelope<'a, D: Serialize> {
    pub producer: Producer<'a>,
    pub event_id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub tenant_id: &'a str,
    pub learner_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    pub occurred_at: Rfc3339,
    pub data: D,
}

/// A UTC timestamp that serialises as RFC 3339 with milliseconds ("2026-11-27T11:04:44.123Z").
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339(pub OffsetDateTime);

impl Rfc3339 {
    /// The 24 bytes of the timestamp, written digit by digit on the stack (this runs once per
    /// event on the hot path).
    pub fn text(&self) -> [u8; 24] {
        let t = self.0;
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, t.year().clamp(0, 9999) as u32);
        put(5, 2, u32::from(u8::from(t.month())));
        put(8, 2, u32::from(t.day()));
        put(11, 2, u32::from(t.hour()));
        put(14, 2, u32::from(t.minute()));
        put(17, 2, u32::from(t.second()));
        put(20, 3, u32::from(t.millisecond()));
        buf
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The text holds ASCII digits and punctuation only.
        serializer.serialize_str(std::str::from_utf8(&self.text()).unwrap_or_default())
    }
}

impl<D: Serialize> Envelope<'_, D> {
    /// Appends the envelope's JSON to `out`: the very bytes `serde_json::to_writer` writes for it
    /// (the derived `Serialize` above is the reference, and a test holds the two equal for every
    /// domain), with the envelope's own fields written by hand and only `data` through serde. Per
    /// event, serde's field-by-field machinery (every key escaped, every value dispatched) was a
    /// visible share of the publisher's CPU.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"producer":{"run":"#);
        json_str(out, self.producer.run);
        out.extend_from_slice(br#","publisher":"#);
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(self.producer.publisher)
                .as_bytes(),
        );
        out.extend_from_slice(br#","seq":"#);
        out.extend_from_slice(itoa::Buffer::new().format(self.producer.seq).as_bytes());
        out.extend_from_slice(br#"},"event_id":"#);
        json_str(out, self.event_id);
        out.extend_from_slice(br#","type":"#);
        json_str(out, self.event_type);
        out.extend_from_slice(br#","tenant_id":"#);
        json_str(out, self.tenant_id);
        out.extend_from_slice(br#","learner_id":"#);
        json_str(out, self.learner_id);
        if let Some(session) = self.session_id {
            out.extend_from_slice(br#","session_id":"#);
            json_str(out, session);
        }
        out.extend_from_slice(br#","occurred_at":""#);
        out.extend_from_slice(&self.occurred_at.text());
        out.extend_from_slice(br#"","data":"#);
        // Plain structs of strings and numbers serialise into a Vec without failing.
        let _ = serde_json::to_writer(&mut *out, &self.data);
        out.push(b'}');
    }
}

/// Appends `text` as a JSON string, exactly as serde_json writes it: text with nothing to escape
/// (every id and subject the harness makes) is copied as is, anything else goes through serde_json.
fn json_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // A string always serialises.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// A UUID rendered lowercase-hyphenated on the stack, for borrowing as `&str` while encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdText([u8; uuid::fmt::Hyphenated::LENGTH]);

impl std::fmt::Debug for IdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl IdText {
    /// Renders `id`.
    pub fn new(id: &Uuid) -> Self {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        id.hyphenated().encode_lower(&mut text);
        Self(text)
    }

    /// The rendered id.
    pub fn as_str(&self) -> &str {
        // Hex digits and hyphens only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A UUID that serialises as its lowercase hyphenated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub Uuid);

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(IdText::new(&self.0).as_str())
    }
}

/// True when a subject has the `<domain>.<entity>.<action>` shape (three or more non-empty tokens of
/// lowercase letters, digits and underscores), with two tokens allowed for the seed's `focus.ping` and
/// `recommendation.created` style.
pub fn is_valid_subject(subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    (2..=4).contains(&tokens.len())
        && tokens.iter().all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_shape() {
        for good in [
            "focus.ping",
            "recommendation.created",
            "learning.session.started",
            "focus.loss.tab_switch",
        ] {
            assert!(is_valid_subject(good), "{good}");
        }
        for bad in [
            "focus",
            "focus.",
            ".ping",
            "Focus.ping",
            "focus.*",
            "a.b.c.d.e",
            "focus ping",
        ] {
            assert!(!is_valid_subject(bad), "{bad}");
        }
    }

    #[test]
    fn the_hand_written_envelope_is_what_serde_writes() {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Data {
            Ping {
                focused: bool,
                surface: &'static str,
                interval_ms: u32,
            },
            Text {
                answer: String,
                score: f64,
                tags: Vec<&'static str>,
            },
        }
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789)
            .expect("valid time");
        let data = [
            Data::Ping {
                focused: true,
                surface: "lesson",
                interval_ms: 5000,
            },
            Data::Text {
                answer: "a \"quoted\" line\nwith a tab\t, a \\ and é ✓ \u{1}".into(),
                score: 0.875,
                tags: vec!["x", "y"],
            },
        ];
        for (run, session) in [
            ("20261202T061500Z-focus-burst", Some("0189-session")),
            ("a \"run\" with\\escapes\u{7f}\u{1f}/é", None),
            ("", Some("")),
        ] {
            for data in &data {
                let envelope = Envelope {
                    producer: Producer {
                        run,
                        publisher: 4_294_967_295,
                        seq: u64::MAX,
                    },
                    event_id: "01890a5d-ac96-774b-bcce-b302099a8057",
                    event_type: "focus.ping",
                    tenant_id: "tenant \"7\"",
                    learner_id: "learner-0042",
                    session_id: session,
                    occurred_at: Rfc3339(at),
                    data,
                };
                let mut out = b"kept".to_vec();
                envelope.write_json(&mut out);
                let serde = serde_json::to_string(&envelope).expect("encodes");
                assert_eq!(std::str::from_utf8(&out[4..]).ok(), Some(serde.as_str()));
                assert!(out.starts_with(b"kept"));
            }
        }
    }

    #[test]
    fn ids_render_like_uuid() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(IdText::new(&id).as_str(), id.hyphenated().to_string());
        assert_eq!(
            serde_json::to_string(&Id(id)).expect("encodes"),
            format!("\"{id}\"")
        );
    }
}
