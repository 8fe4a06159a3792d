//! How often a node fsyncs its JetStream store: the `sync_interval` of its `jetstream {}` block.
//! nats-server acknowledges a publish once the write is in its page cache and, by default, syncs
//! every two minutes; Jepsen's NATS 2.12.1 analysis lost acknowledged writes to exactly that under
//! power loss. `always` syncs every write before the ack.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A node's `sync_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum SyncInterval {
    /// Sync every write before acknowledging it (`sync_interval: always`).
    Always,
    /// Sync this often (the server's default is 2 minutes).
    Every(Duration),
}

impl SyncInterval {
    /// The line of a node's `jetstream {}` block that sets it.
    pub fn config_line(&self) -> String {
        match self {
            Self::Always => "  sync_interval: always\n".to_string(),
            Self::Every(every) => format!("  sync_interval: \"{}ms\"\n", every.as_millis()),
        }
    }
}

impl FromStr for SyncInterval {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "always" {
            return Ok(Self::Always);
        }
        let every = crate::units::parse_duration(text).map_err(|e| {
            format!(
                "sync_interval {text:?}: {e} (expected \"always\" or a duration such as \"2m\")"
            )
        })?;
        if every < Duration::from_millis(1) {
            return Err(format!(
                "sync_interval {text:?}: must be at least 1ms (or \"always\")"
            ));
        }
        Ok(Self::Every(every))
    }
}

impl fmt::Display for SyncInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Every(every) => f.write_str(&crate::units::format_duration(*every)),
        }
    }
}

impl From<SyncInterval> for String {
    fn from(value: SyncInterval) -> Self {
        value.to_string()
    }
}

impl TryFrom<String> for SyncInterval {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_both_forms() {
        assert_eq!("always".parse(), Ok(SyncInterval::Always));
        assert_eq!(
            "10s".parse(),
            Ok(SyncInterval::Every(Duration::from_secs(10)))
        );
        assert_eq!(
            SyncInterval::Always.config_line(),
            "  sync_interval: always\n"
        );
        assert_eq!(
            SyncInterval::Every(Duration::from_secs(120)).config_line(),
            "  sync_interval: \"120000ms\"\n"
        );
        assert!("sometimes".parse::<SyncInterval>().is_err());
        assert!("0s".parse::<SyncInterval>().is_err());
    }
}
