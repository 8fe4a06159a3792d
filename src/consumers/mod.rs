//! The reference consumers of AIVO's event backbone (DESIGN.md §1, issue 5), so the whole path
//! publish → stream → consumer → Postgres can be loaded, broken and checked on one machine.
//!
//! - `postgres.rs`: the embedded Postgres of a run or test, and connecting to any server;
//!   `schema.rs`: the tables, by versioned migrations.
//! - `envelope.rs`: checking an event's envelope and naming what makes it poison.
//! - `worker.rs`: the pull → write → ack loop both consumers share (subscribing, pulling, writer
//!   tasks, reconnects); `delivery.rs`: what it does with one batch (poison to DLQ, backoff,
//!   bisecting refused rows); `stats.rs`: the counters it keeps; `indexer.rs` and `analytics.rs`:
//!   what each writes, behind `sink.rs` (the event and write error they share with the worker);
//!   `service.rs`: a consumer as a long-running service (workers, DLQ router, status line).
//! - `affinity.rs`: which URL reaches which server, so a worker pulls through its consumer's leader.
//! - `dlq.rs`: routing dead letters, the max-deliveries router, `dlq list` / `dlq replay`.
//! - `lag.rs`: consumer lag from JetStream; `readback.rs`: `events` read back for the ledger check.
//! - `process.rs`: a consumer as a child process of a run, to be killed like a real service;
//!   `slot.rs`: the run's indexer child, which the `kill-indexer` fault kills and restarts.
//!
//! Starting the consumers within `aivo-load run`, and the timeline and checks built on them, belong
//! to `run/` and `checks/`; the streams and consumers themselves are declared in `topology/`.

mod affinity;
pub mod analytics;
mod commands;
mod delivery;
pub mod dlq;
pub mod envelope;
pub mod indexer;
pub mod lag;
pub mod postgres;
pub mod process;
pub mod readback;
mod schema;
mod service;
mod sink;
pub mod slot;
mod stats;
mod worker;

pub use commands::{dlq_command, service_command, DlqPlan};
pub use delivery::nak_delay;
pub use lag::{read_lag, ConsumerLag, IndexerLag};
pub use postgres::{connect as connect_postgres, EmbeddedPostgres};
pub use process::{ConsumerProcess, ConsumerProcessSpec};
pub use readback::{
    count_events, end_to_end_by_second, read_events_for_run, EventsReadBack, SecondLatency,
};
pub use schema::{latest_version as latest_schema_version, migrate};
pub use service::{run_service, ServiceConfig, ServiceKind};
pub use slot::ConsumerSlot;
pub use stats::{ConsumerStats, StatsSnapshot};
pub use worker::indexer_batch;

use crate::topology::TopologyError;

/// What can go wrong in the consumers, their Postgres and the DLQ commands.
#[derive(Debug, thiserror::Error)]
pub enum ConsumersError {
    /// No Postgres server binaries on this machine.
    #[error(
        "Postgres server binaries (initdb, postgres) not found in {searched}; install them \
         (`apt-get install postgresql-15` on Debian), set AIVO_PG_BIN to their directory, or use an \
         existing server with --postgres-url / DATABASE_URL"
    )]
    PostgresMissing { searched: String },
    /// The embedded server failed to initialise, start or stop.
    #[error("embedded Postgres: {what}: {reason}")]
    EmbeddedPostgres { what: String, reason: String },
    /// No connection to a Postgres server.
    #[error("cannot connect to Postgres at {url}: {reason}")]
    PostgresConnect { url: String, reason: String },
    /// A statement failed.
    #[error("Postgres: {what}: {source}")]
    Postgres {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A schema migration failed.
    #[error("schema migration {version} ({name}) failed: {source}")]
    Migration {
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Connecting to NATS or JetStream failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A NATS or JetStream request failed.
    #[error("{what}: {reason}")]
    Nats { what: String, reason: String },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad input from the command line (a filter, a flag).
    #[error("{0}")]
    Usage(String),
}

impl ConsumersError {
    /// Whether the error comes from how the harness was called (exit 2) rather than from the
    /// environment (exit 3).
    pub fn is_usage(&self) -> bool {
        match self {
            ConsumersError::Usage(_) => true,
            ConsumersError::Topology(t) => t.is_usage(),
            _ => false,
        }
    }
}
