//! The `Aivo-Ledger` header: `<run id>/<publisher>/<sequence>` on every published event, so that
//! anything read back (by a consumer, a check or the DLQ) can be tied to the publisher's ledger.
//!
//! Only the header's name and text live here. The ledger itself (what each publisher attempted and
//! what became of it) is `load/ledger.rs`; the publisher engine writes the header, consumers and
//! checks read it.

use std::fmt::Write as _;

/// Header tying an event to the ledger: `<run id>/<publisher>/<sequence>`. One header rather than
/// three keeps the per-message overhead down (every header byte is parsed, replicated and stored
/// three times by an R3 stream).
pub const HEADER_LEDGER: &str = "Aivo-Ledger";

/// Splits an `Aivo-Ledger` value into (run id, publisher, sequence).
pub fn parse_ledger_header(value: &str) -> Option<(&str, u32, u64)> {
    let (rest, seq) = value.rsplit_once('/')?;
    let (run, publisher) = rest.rsplit_once('/')?;
    Some((run, publisher.parse().ok()?, seq.parse().ok()?))
}

/// The `Aivo-Ledger` values of one publisher, written into one reused buffer: the
/// `<run id>/<publisher>/` prefix once, then only the sequence per event (this runs once per event
/// on the publisher's hot path).
#[derive(Debug, Clone)]
pub struct LedgerHeader {
    text: String,
    prefix_len: usize,
}

impl LedgerHeader {
    /// The header values of `publisher` in the run `run_id`.
    pub fn new(run_id: &str, publisher: u32) -> Self {
        let text = format!("{run_id}/{publisher}/");
        let prefix_len = text.len();
        Self { text, prefix_len }
    }

    /// The value for the event with sequence `seq`.
    pub fn value(&mut self, seq: u64) -> &str {
        self.text.truncate(self.prefix_len);
        let _ = write!(self.text, "{seq}");
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_back() {
        let mut header = LedgerHeader::new("run-2026/x", 3);
        assert_eq!(header.value(9), "run-2026/x/3/9");
        assert_eq!(header.value(10), "run-2026/x/3/10");
        assert_eq!(
            parse_ledger_header(header.value(7)),
            Some(("run-2026/x", 3, 7))
        );
        for bad in ["", "run", "run/3", "run/x/9", "run/3/-1"] {
            assert_eq!(parse_ledger_header(bad), None, "{bad:?}");
        }
    }
}
