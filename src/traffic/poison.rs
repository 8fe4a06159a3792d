//! Poison events mixed into normal traffic (DESIGN.md §5), for the DLQ scenarios and checks.
//!
//! A traffic source with `poison = "2%"` turns a seeded, deterministic share of its events into
//! poison, in equal parts of the three kinds the consumers classify (`consumers/envelope.rs`; the
//! kinds and the `Aivo-Poison` header are part of the wire contract, `event/poison.rs`):
//!
//! - **bad JSON**: the payload cut in half (never parses);
//! - **bad schema**: valid JSON whose `tenant_id` key is renamed (a required field is missing);
//! - **unknown type**: subject and `type` become `<domain>.poison.unknown`, a subject of the
//!   domain's stream that no AIVO service publishes.
//!
//! Which sequences are poison, and of which kind, depends only on the run's seed, the publisher and
//! the sequence (a SplitMix64 hash), never on the source's random generator: the valid events of a
//! run are the same with or without poison, and a source without poison is not wrapped at all, so
//! synthesis costs nothing extra. Poison events keep their ledger identity (message id, payload `producer`)
//! and carry `Aivo-Poison: <kind>` for people reading a stream; the publisher's ledger records the
//! sequence and kind ([`OutgoingEvent::poison`]), so the ledger check of `events` does not count
//! them lost and the DLQ check knows exactly which dead letters to expect.

use bytes::Bytes;
use time::OffsetDateTime;

use super::{EventSource, OutgoingEvent};
use crate::event::poison::PoisonKind;

/// The kinds a traffic source injects, in the order the hash picks them.
pub const KINDS: [PoisonKind; 3] = [
    PoisonKind::BadJson,
    PoisonKind::BadSchema,
    PoisonKind::UnknownType,
];

/// A share of events, in parts per million (so "0.5%" is exact and comparisons are integer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PoisonShare(u32);

impl PoisonShare {
    /// No poison.
    pub const NONE: PoisonShare = PoisonShare(0);
    const MILLION: u64 = 1_000_000;

    /// Parses a percentage between 0% and 100%: `"2%"`, `"0.5%"`.
    pub fn parse(text: &str) -> Result<PoisonShare, String> {
        let expected = || format!("expected a share such as \"2%\" or \"0.5%\", found {text:?}");
        let number = text.trim().strip_suffix('%').ok_or_else(expected)?;
        let percent: f64 = number.trim().parse().map_err(|_| expected())?;
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(format!(
                "a poison share lies between 0% and 100%, found {text:?}"
            ));
        }
        Ok(PoisonShare((percent * 10_000.0).round() as u32))
    }

    /// The share as a fraction of 1.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / Self::MILLION as f64
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The kind of poison the event `seq` of `publisher` is, in a run seeded with `seed`.
    pub fn kind_of(self, seed: u64, publisher: u32, seq: u64) -> Option<PoisonKind> {
        if self.0 == 0 {
            return None;
        }
        let hash = splitmix(seed ^ splitmix(u64::from(publisher) ^ splitmix(seq)));
        ((hash % Self::MILLION) < u64::from(self.0))
            .then(|| KINDS[((hash >> 32) % KINDS.len() as u64) as usize])
    }
}

impl std::fmt::Display for PoisonShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", f64::from(self.0) / 10_000.0)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An event source that turns a share of its events into poison.
pub struct PoisonSource {
    inner: Box<dyn EventSource>,
    share: PoisonShare,
    seed: u64,
    publisher: u32,
}

/// Wraps `inner` (the source of `publisher` in a run seeded with `seed`) so that `share` of its
/// events are poison; returns `inner` itself when the share is zero.
pub fn with_poison(
    inner: Box<dyn EventSource>,
    share: PoisonShare,
    seed: u64,
    publisher: u32,
) -> Box<dyn EventSource> {
    if share.is_none() {
        return inner;
    }
    Box::new(PoisonSource {
        inner,
        share,
        seed,
        publisher,
    })
}

impl EventSource for PoisonSource {
    fn next_event(&mut self, seq: u64, occurred_at: OffsetDateTime) -> OutgoingEvent {
        // The valid event is drawn either way, so the learners' lifecycles and the generator's
        // random stream are the same with or without poison.
        let event = self.inner.next_event(seq, occurred_at);
        match self.share.kind_of(self.seed, self.publisher, seq) {
            Some(kind) => poison(event, kind),
            None => event,
        }
    }
}

/// Turns a valid event into poison of `kind`.
pub fn poison(mut event: OutgoingEvent, kind: PoisonKind) -> OutgoingEvent {
    let payload = event.payload.to_vec();
    event.payload = match kind {
        PoisonKind::BadJson => Bytes::copy_from_slice(&payload[..payload.len() / 2]),
        PoisonKind::BadSchema => {
            Bytes::from(replace_once(&payload, b"\"tenant_id\":", b"\"tenant_xx\":"))
        }
        _ => {
            let domain = event.subject.split('.').next().unwrap_or("poison");
            let unknown = format!("{domain}.poison.unknown");
            let from = format!("\"type\":\"{}\"", event.subject);
            let to = format!("\"type\":\"{unknown}\"");
            let payload = replace_once(&payload, from.as_bytes(), to.as_bytes());
            event.subject = unknown.into();
            Bytes::from(payload)
        }
    };
    event.poison = Some(kind);
    event
}

fn replace_once(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match haystack.windows(from.len()).position(|w| w == from) {
        Some(at) => [&haystack[..at], to, &haystack[at + from.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::consumers::envelope;
    use crate::traffic::population::Population;
    use crate::traffic::{make_source, Domain, Mix};

    #[test]
    fn shares_parse_and_refuse_junk() {
        assert_eq!(PoisonShare::parse("2%"), Ok(PoisonShare(20_000)));
        assert_eq!(PoisonShare::parse("0.5%"), Ok(PoisonShare(5_000)));
        assert_eq!(PoisonShare::parse("0%"), Ok(PoisonShare::NONE));
        assert_eq!(PoisonShare::parse("100%").map(|s| s.fraction()), Ok(1.0));
        for bad in ["2", "abc%", "-1%", "150%", "NaN%", ""] {
            assert!(PoisonShare::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PoisonShare(5_000).to_string(), "0.5%");
    }

    #[test]
    fn every_domain_poison_is_classified_as_injected_and_the_rest_stays_valid() {
        let population = Arc::new(Population::generate(3, 4, 40));
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
        let share = PoisonShare::parse("10%").expect("valid");
        for domain in Domain::ALL {
            let mix = Mix::new(&domain.default_mix()).expect("valid");
            let plain = make_source(domain, mix.clone(), population.clone(), "r".into(), 3, 9);
            let mut plain = plain;
            let mut poisoned = with_poison(
                make_source(domain, mix, population.clone(), "r".into(), 3, 9),
                share,
                9,
                3,
            );
            let mut counts = std::collections::BTreeMap::new();
            for seq in 1..=3000 {
                let (valid, event) = (plain.next_event(seq, at), poisoned.next_event(seq, at));
                let parsed = envelope::parse(&event.subject, domain.stream(), None, &event.payload);
                match event.poison {
                    None => {
                        assert_eq!(event.payload, valid.payload, "valid events unchanged");
                        assert!(parsed.is_ok(), "{domain:?} #{seq}");
                    }
                    Some(kind) => {
                        assert_eq!(share.kind_of(9, 3, seq), Some(kind));
                        let got = parsed.map(|_| ()).map_err(|p| p.kind);
                        assert_eq!(got, Err(kind), "{domain:?} #{seq}: {event:?}");
                        *counts.entry(kind).or_insert(0u32) += 1;
                    }
                }
            }
            let total: u32 = counts.values().sum();
            assert!((240..=360).contains(&total), "{domain:?}: {total} of 3000");
            assert_eq!(counts.len(), 3, "{counts:?}");
        }
    }

    #[test]
    fn zero_share_does_not_wrap() {
        assert_eq!(PoisonShare::NONE.kind_of(1, 2, 3), None);
    }
}
