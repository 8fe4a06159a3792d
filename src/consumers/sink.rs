//! What passes between the worker loop (`worker.rs`) and what each consumer writes (`indexer.rs`,
//! `analytics.rs`): which sink a worker feeds, an event that passed the envelope checks, and how a
//! write failed. The worker calls the sinks; the sinks name only this module, so imports point one
//! way.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::envelope::Envelope;

/// Which consumer a worker feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Every event into `events` (dead letters into `dead_letters`).
    Indexer,
    /// Dashboard aggregates.
    Analytics,
}

/// One event of a batch that passed the envelope checks.
pub(crate) struct Parsed<'a> {
    pub subject: &'a str,
    pub stream: &'a str,
    pub stream_seq: u64,
    pub envelope: Envelope<'a>,
    pub payload: &'a [u8],
}

/// How a write failed.
pub(crate) enum WriteError {
    /// Postgres is not reachable: reconnect, keep the place.
    Unavailable(tokio_postgres::Error),
    /// Postgres refused the rows: find the culprit.
    Refused(tokio_postgres::Error),
}

impl WriteError {
    pub(crate) fn from_pg(client: &Client, e: tokio_postgres::Error) -> WriteError {
        let connection = client.is_closed()
            || e.is_closed()
            || match e.code() {
                None => true,
                Some(code) => {
                    code.code().starts_with("08")
                        || *code == SqlState::ADMIN_SHUTDOWN
                        || *code == SqlState::CRASH_SHUTDOWN
                        || *code == SqlState::CANNOT_CONNECT_NOW
                        || *code == SqlState::TOO_MANY_CONNECTIONS
                }
            };
        if connection {
            WriteError::Unavailable(e)
        } else {
            WriteError::Refused(e)
        }
    }
}
