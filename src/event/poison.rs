//! Poison on the wire: the kinds of poison event and the `Aivo-Poison` header.
//!
//! [`PoisonKind`] names what is wrong with an event. Traffic injects the first three kinds on
//! purpose (`traffic/poison.rs`, which also decides how), consumers classify what they read into
//! them and send it to the dead-letter queue (`consumers/envelope.rs`, `consumers/dlq.rs`), and the
//! publisher's ledger and the DLQ check count by them. The kind's text is the value of both the
//! `Aivo-Poison` header and the dead-letter `Aivo-Dlq-Reason` header.

/// Header naming the kind of an injected poison event (`bad_json`, `bad_schema`, `unknown_type`).
pub const HEADER_POISON: &str = "Aivo-Poison";

/// Why an event went to the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PoisonKind {
    /// Not JSON at all.
    BadJson,
    /// JSON, but an envelope field is missing or invalid.
    BadSchema,
    /// `type` differs from the subject, or the subject is not a known event type of its stream.
    UnknownType,
    /// The consumer gave up after its max deliveries (the server's advisory said so).
    MaxDeliveries,
}

impl PoisonKind {
    /// The reason as it appears in the `Aivo-Dlq-Reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            PoisonKind::BadJson => "bad_json",
            PoisonKind::BadSchema => "bad_schema",
            PoisonKind::UnknownType => "unknown_type",
            PoisonKind::MaxDeliveries => "max_deliveries",
        }
    }

    /// The inverse of [`PoisonKind::as_str`].
    pub fn parse(text: &str) -> Option<PoisonKind> {
        [
            PoisonKind::BadJson,
            PoisonKind::BadSchema,
            PoisonKind::UnknownType,
            PoisonKind::MaxDeliveries,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for PoisonKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for kind in [
            PoisonKind::BadJson,
            PoisonKind::BadSchema,
            PoisonKind::UnknownType,
            PoisonKind::MaxDeliveries,
        ] {
            assert_eq!(PoisonKind::parse(kind.as_str()), Some(kind));
        }
    }
}
