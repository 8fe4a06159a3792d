//! The counters a consumer process keeps, shared by its stream workers and read by its status line
//! (`service.rs`), the `consumer` commands and the run's report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

/// Counters a consumer process keeps (shared by its stream workers; read by its status line).
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Events written (new rows or aggregated for the first time).
    pub written: AtomicU64,
    /// Events acknowledged that were already there (redeliveries, replays).
    pub duplicates: AtomicU64,
    /// Messages of the DLQ stream recorded in `dead_letters`.
    pub dead_letters: AtomicU64,
    /// Poison events routed to the DLQ by this consumer.
    pub poison: AtomicU64,
    /// Events this consumer routed to the DLQ itself when their last delivery failed.
    pub exhausted: AtomicU64,
    /// Messages nak'ed (database down or refusing, DLQ unavailable, shutdown).
    pub naks: AtomicU64,
    /// Failed writes.
    pub db_errors: AtomicU64,
    /// Whether the last write (or connection attempt) succeeded.
    pub db_up: AtomicBool,
    /// Time spent in Postgres writes, in microseconds (how much of the wall time the database takes).
    pub write_micros: AtomicU64,
    /// Time spent acknowledging, in microseconds.
    pub ack_micros: AtomicU64,
}

/// A copy of [`ConsumerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub written: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    pub poison: u64,
    pub exhausted: u64,
    pub naks: u64,
    pub db_errors: u64,
    pub db_up: bool,
    pub write_micros: u64,
    pub ack_micros: u64,
}

impl ConsumerStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            written: self.written.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            poison: self.poison.load(Ordering::Relaxed),
            exhausted: self.exhausted.load(Ordering::Relaxed),
            naks: self.naks.load(Ordering::Relaxed),
            db_errors: self.db_errors.load(Ordering::Relaxed),
            db_up: self.db_up.load(Ordering::Relaxed),
            write_micros: self.write_micros.load(Ordering::Relaxed),
            ack_micros: self.ack_micros.load(Ordering::Relaxed),
        }
    }
}
