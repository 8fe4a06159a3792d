//! The ledger identity of a message: `<run id>/<publisher>/<sequence>`, which ties anything read
//! back (by a consumer, a check or the DLQ) to the publisher's ledger.
//!
//! The identity rides where it costs the cluster nothing extra, never in a header of its own (a
//! third header cost an R3 stream measurably: every header byte is parsed, replicated and stored
//! three times):
//!
//! - with `[publishers] message_id = true`, it *is* the `Nats-Msg-Id`: unique per event (a run id
//!   is unique, and so is a publisher's sequence within it) and the same on a retry, which is all
//!   JetStream's dedup asks of an id;
//! - always, in the envelope's `producer` object, which every payload carries and which the
//!   envelope writes first (`event/envelope.rs`), so it is found without decoding the rest, and it
//!   survives a payload cut in half (the `bad_json` poison).
//!
//! [`identity`] is the one reading of it: the message id first, the payload otherwise. The ledger
//! itself (what each publisher attempted and what became of it) is `load/ledger.rs`.

use std::borrow::Cow;

use serde::Deserialize;

/// Who published a message: the run, the publisher in it, and the publisher's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    pub run: Cow<'a, str>,
    pub publisher: u32,
    pub seq: u64,
}

impl Identity<'_> {
    /// The identity with its run owned.
    pub fn into_owned(self) -> Identity<'static> {
        Identity {
            run: Cow::Owned(self.run.into_owned()),
            publisher: self.publisher,
            seq: self.seq,
        }
    }
}

impl std::fmt::Display for Identity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.run, self.publisher, self.seq)
    }
}

/// The identity of a message, from its message id (a `Nats-Msg-Id`, or the original id a dead
/// letter keeps) when that has the `<run>/<publisher>/<seq>` shape, else from the payload's
/// `producer` object. `None` when neither names one (a message from outside the harness).
pub fn identity<'a>(msg_id: Option<&'a str>, payload: &'a [u8]) -> Option<Identity<'a>> {
    msg_id
        .and_then(parse_msg_id)
        .or_else(|| from_payload(payload))
}

/// [`identity`] of a message as read off a stream: its `Nats-Msg-Id` header, then its payload.
pub fn identity_of<'a>(
    headers: Option<&'a async_nats::HeaderMap>,
    payload: &'a [u8],
) -> Option<Identity<'a>> {
    let msg_id = headers
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str());
    identity(msg_id, payload)
}

/// Splits a `<run id>/<publisher>/<sequence>` message id. Ids of any other shape (an event id, a
/// DLQ replay's `<id>/replay/<n>`) give `None`.
pub fn parse_msg_id(value: &str) -> Option<Identity<'_>> {
    let (rest, seq) = value.rsplit_once('/')?;
    let (run, publisher) = rest.rsplit_once('/')?;
    if run.is_empty() {
        return None;
    }
    Some(Identity {
        run: Cow::Borrowed(run),
        publisher: digits(publisher)?,
        seq: digits(seq)?,
    })
}

/// The payload's `producer` object. The envelope as the harness writes it starts with
/// `{"producer":{"run":"…","publisher":N,"seq":N}`: read straight off those bytes (no decoding of
/// the rest, which also works on a payload cut short). Anything else is decoded as JSON, fields
/// other than `producer` skipped.
pub fn from_payload(payload: &[u8]) -> Option<Identity<'_>> {
    leading_producer(payload).or_else(|| decoded_producer(payload))
}

/// The producer object at the very start of the payload, in exactly the harness's layout.
fn leading_producer(payload: &[u8]) -> Option<Identity<'_>> {
    let rest = payload.strip_prefix(br#"{"producer":{"run":""#)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' || end == 0 {
        // An escape in the run id: leave it to the JSON decoder.
        return None;
    }
    let run = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = rest[end..].strip_prefix(br#"","publisher":"#)?;
    let (publisher, rest) = leading_digits(rest)?;
    let rest = rest.strip_prefix(br#","seq":"#)?;
    let (seq, rest) = leading_digits(rest)?;
    rest.starts_with(b"}").then_some(())?;
    Some(Identity {
        run: Cow::Borrowed(run),
        publisher: u32::try_from(publisher).ok()?,
        seq,
    })
}

fn decoded_producer(payload: &[u8]) -> Option<Identity<'_>> {
    #[derive(Deserialize)]
    struct Wire<'a> {
        #[serde(borrow, default)]
        producer: Option<WireProducer<'a>>,
    }
    #[derive(Deserialize)]
    struct WireProducer<'a> {
        #[serde(borrow)]
        run: Cow<'a, str>,
        publisher: u32,
        seq: u64,
    }
    let p = serde_json::from_slice::<Wire<'_>>(payload).ok()?.producer?;
    (!p.run.is_empty()).then_some(Identity {
        run: p.run,
        publisher: p.publisher,
        seq: p.seq,
    })
}

/// A decimal number of ASCII digits only (no sign, no spaces), as `str::parse` would not insist.
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The number at the start of `bytes` and what follows it.
fn leading_digits(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    let value = bytes[..len]
        .iter()
        .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
    Some((value, &bytes[len..]))
}

/// The message ids of one publisher, written into one reused buffer: the `<run id>/<publisher>/`
/// prefix once, then only the sequence per event (this runs once per event on the publisher's hot
/// path).
#[derive(Debug, Clone)]
pub struct MsgIdText {
    text: String,
    prefix_len: usize,
}

impl MsgIdText {
    /// The ids of `publisher` in the run `run_id`.
    pub fn new(run_id: &str, publisher: u32) -> Self {
        let text = format!("{run_id}/{publisher}/");
        let prefix_len = text.len();
        Self { text, prefix_len }
    }

    /// The id of the event with sequence `seq`.
    pub fn value(&mut self, seq: u64) -> &str {
        self.text.truncate(self.prefix_len);
        // Digits straight from a stack buffer: `write!` went through `fmt::write` per event.
        self.text.push_str(itoa::Buffer::new().format(seq));
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(run: &str, publisher: u32, seq: u64) -> Option<Identity<'_>> {
        Some(Identity {
            run: Cow::Borrowed(run),
            publisher,
            seq,
        })
    }

    #[test]
    fn msg_ids_parse_back() {
        let mut text = MsgIdText::new("run-2026/x", 3);
        assert_eq!(text.value(9), "run-2026/x/3/9");
        assert_eq!(text.value(10), "run-2026/x/3/10");
        assert_eq!(parse_msg_id(text.value(7)), id("run-2026/x", 3, 7));
        for bad in [
            "",
            "run",
            "run/3",
            "run/x/9",
            "run/3/-1",
            "run/3/+1",
            "/3/1",
            "01890a5d-ac96-774b-bcce-b302099a8057",
            "r/0/5/replay/12",
        ] {
            assert_eq!(parse_msg_id(bad), None, "{bad:?}");
        }
    }

    const HARNESS: &str = r#"{"producer":{"run":"r-1","publisher":2,"seq":41},"event_id":"01890a5d-ac96-774b-bcce-b302099a8057","type":"focus.ping","data":{}}"#;

    #[test]
    fn payload_producer_is_read_in_the_harness_layout_and_any_other() {
        assert_eq!(from_payload(HARNESS.as_bytes()), id("r-1", 2, 41));
        // Cut in half (the bad_json poison): the leading producer is still there.
        assert_eq!(
            from_payload(&HARNESS.as_bytes()[..HARNESS.len() / 2]),
            id("r-1", 2, 41)
        );
        // Another field order, whitespace, an escaped run id: decoded as JSON.
        let other = r#"{"event_id":"x", "producer": {"seq": 41, "publisher": 2, "run": "r-1"}, "data":{"producer":{"run":"no"}}}"#;
        assert_eq!(from_payload(other.as_bytes()), id("r-1", 2, 41));
        let escaped = r#"{"producer":{"run":"r\u002d1","publisher":2,"seq":41}}"#;
        assert_eq!(from_payload(escaped.as_bytes()), id("r-1", 2, 41));
        for bad in [
            "",
            "{not json",
            r#"{"event_id":"x"}"#,
            r#"{"producer":{"run":"","publisher":2,"seq":41}}"#,
            r#"{"producer":{"run":"r","publisher":-2,"seq":41}}"#,
            r#"{"producer":{"run":"r","publisher":2}}"#,
            r#"{"producer":{"run":"r","publisher":99999999999,"seq":1}}"#,
        ] {
            assert_eq!(from_payload(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn the_message_id_comes_first_then_the_payload() {
        let payload = HARNESS.as_bytes();
        assert_eq!(identity(Some("run-x/3/9"), payload), id("run-x", 3, 9));
        // An id of another shape (an event id, a replay) defers to the payload.
        assert_eq!(
            identity(Some("a-retry-with-a-new-id"), payload),
            id("r-1", 2, 41)
        );
        assert_eq!(
            identity(Some("r-1/2/41/replay/7"), payload),
            id("r-1", 2, 41)
        );
        assert_eq!(identity(None, payload), id("r-1", 2, 41));
        assert_eq!(identity(None, b"plain"), None);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, "run-x/3/9");
        assert_eq!(identity_of(Some(&headers), payload), id("run-x", 3, 9));
        assert_eq!(
            identity_of(None, payload).map(|i| i.to_string()),
            Some("r-1/2/41".into())
        );
    }
}
