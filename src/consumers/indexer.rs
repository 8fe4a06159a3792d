//! `aivo-load indexer`: every event of every stream into the Postgres table `events`.
//!
//! A batch goes in with one binary `COPY` into a temporary staging table and one
//! `INSERT … SELECT … ON CONFLICT (event_id) DO NOTHING`, in one transaction, so a redelivered or
//! replayed event is written once however often it arrives; a batch of first deliveries first tries
//! a plain COPY into `events` and falls back to that path on a unique violation (see
//! [`write_events`]). The loop around it (pulling, poison,
//! acking after commit, backoff, reconnects) is `worker.rs` and `delivery.rs`; the service around
//! that is `service.rs`.
//!
//! Messages of the DLQ stream are not events: they become rows of `dead_letters` (with the
//! `Aivo-Dlq-*` headers as columns) and are never routed to the DLQ themselves.

use async_nats::jetstream::Message;
use bytes::BufMut;
use futures::pin_mut;
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, CopyInSink};
use uuid::Uuid;

use super::dlq::DlqEntry;
use super::envelope::{self, Poison};
use super::sink::{Parsed, WriteError};

/// The durable consumer the indexer reads.
pub const INDEXER: &str = "indexer";

/// The streams the indexer reads (all five of the seed).
pub const INDEXED_STREAMS: [&str; 5] = ["LEARNING", "FOCUS", "HOMEWORK", "RECOMMENDATION", "DLQ"];

const COLUMNS: &str = "event_id, subject, stream, stream_seq, type, tenant_id, learner_id, \
                       session_id, occurred_at, run, publisher, seq, payload";

const TYPES: [Type; 13] = [
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::INT4,
    Type::INT8,
    Type::JSONB,
];

/// JSON text sent as `jsonb` without parsing it into a value and printing it again (the binary
/// `jsonb` format is a version byte followed by the text).
#[derive(Debug)]
struct RawJson<'a>(&'a [u8]);

impl ToSql for RawJson<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_u8(1);
        out.extend_from_slice(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// One `events` row, owned: what the benchmark's plain-COPY baseline writes.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub event_id: Uuid,
    pub subject: String,
    pub stream: String,
    pub stream_seq: u64,
    pub event_type: String,
    pub tenant_id: String,
    pub learner_id: String,
    pub session_id: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub ledger: Option<(String, u32, u64)>,
    pub payload: Vec<u8>,
}

impl EventRow {
    /// The row the indexer would write for this message, or why it would go to the DLQ.
    pub fn from_message(
        subject: &str,
        stream: &str,
        stream_seq: u64,
        msg_id: Option<&str>,
        payload: &[u8],
    ) -> Result<EventRow, Poison> {
        let e = envelope::parse(subject, stream, msg_id, payload)?;
        Ok(EventRow {
            event_id: e.event_id,
            subject: subject.to_string(),
            stream: stream.to_string(),
            stream_seq,
            event_type: e.event_type.into_owned(),
            tenant_id: e.tenant_id.into_owned(),
            learner_id: e.learner_id.into_owned(),
            session_id: e.session_id.map(|s| s.into_owned()),
            occurred_at: e.occurred_at,
            ledger: e.ledger.map(|(r, p, s)| (r.into_owned(), p, s)),
            payload: payload.to_vec(),
        })
    }
}

/// The columns of one row, borrowed from a batch or from an [`EventRow`].
struct RowRef<'a> {
    event_id: Uuid,
    subject: &'a str,
    stream: &'a str,
    stream_seq: i64,
    event_type: &'a str,
    tenant_id: &'a str,
    learner_id: &'a str,
    session_id: Option<&'a str>,
    occurred_at: OffsetDateTime,
    run: Option<&'a str>,
    publisher: Option<i32>,
    seq: Option<i64>,
    payload: RawJson<'a>,
}

impl<'a> RowRef<'a> {
    fn from_parsed(p: &'a Parsed<'a>) -> Self {
        let e = &p.envelope;
        RowRef {
            event_id: e.event_id,
            subject: p.subject,
            stream: p.stream,
            stream_seq: p.stream_seq as i64,
            event_type: &e.event_type,
            tenant_id: &e.tenant_id,
            learner_id: &e.learner_id,
            session_id: e.session_id.as_deref(),
            occurred_at: e.occurred_at,
            run: e.ledger.as_ref().map(|(r, _, _)| r.as_ref()),
            publisher: e.ledger.as_ref().map(|(_, p, _)| *p as i32),
            seq: e.ledger.as_ref().map(|(_, _, s)| *s as i64),
            payload: RawJson(p.payload),
        }
    }

    fn from_row(r: &'a EventRow) -> Self {
        RowRef {
            event_id: r.event_id,
            subject: &r.subject,
            stream: &r.stream,
            stream_seq: r.stream_seq as i64,
            event_type: &r.event_type,
            tenant_id: &r.tenant_id,
            learner_id: &r.learner_id,
            session_id: r.session_id.as_deref(),
            occurred_at: r.occurred_at,
            run: r.ledger.as_ref().map(|(r, _, _)| r.as_str()),
            publisher: r.ledger.as_ref().map(|(_, p, _)| *p as i32),
            seq: r.ledger.as_ref().map(|(_, _, s)| *s as i64),
            payload: RawJson(&r.payload),
        }
    }
}

/// The statement that COPYs rows into `table`.
fn copy_into(table: &str) -> String {
    format!("COPY {table} ({COLUMNS}) FROM STDIN BINARY")
}

/// Writes rows into a COPY begun with [`copy_into`]; returns the number copied.
async fn copy_rows<'a>(
    sink: CopyInSink<bytes::Bytes>,
    rows: impl Iterator<Item = RowRef<'a>>,
) -> Result<u64, tokio_postgres::Error> {
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    pin_mut!(writer);
    for r in rows {
        writer
            .as_mut()
            .write(&[
                &r.event_id,
                &r.subject,
                &r.stream,
                &r.stream_seq,
                &r.event_type,
                &r.tenant_id,
                &r.learner_id,
                &r.session_id,
                &r.occurred_at,
                &r.run,
                &r.publisher,
                &r.seq,
                &r.payload,
            ])
            .await?;
    }
    writer.finish().await
}

/// Readies a connection for [`write_events`]: the session's staging table, emptied at each commit.
pub(crate) async fn prepare(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS events_staging \
             (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        )
        .await
}

/// Writes a batch idempotently and returns the rows inserted (the rest were already there).
///
/// Two paths, both idempotent on the event id (the primary key):
/// - **fast**, when no event of the batch was delivered before (`maybe_seen` false): one binary COPY
///   straight into `events`. If an event is there already after all (a replay, a publisher retry
///   under another message id), the COPY fails with a unique violation and the batch takes the slow
///   path; nothing of the failed attempt remains.
/// - **staging**: COPY into the session's temporary staging table, then
///   `INSERT … SELECT … ON CONFLICT (event_id) DO NOTHING`.
///
/// The fast path exists because the staging path costs about two and a half times a plain COPY
/// per row (see `benches/indexer.rs`), and in steady state almost no batch holds a known event.
pub(crate) async fn write_events(
    client: &mut Client,
    events: &[&Parsed<'_>],
    maybe_seen: bool,
) -> Result<u64, WriteError> {
    if !maybe_seen {
        // A lone COPY is a transaction of its own: no BEGIN and COMMIT round trips.
        let fast = async {
            let sink = client.copy_in(&copy_into("events")).await?;
            copy_rows(sink, events.iter().map(|p| RowRef::from_parsed(p))).await
        }
        .await;
        match fast {
            Ok(n) => return Ok(n),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(WriteError::from_pg(client, e)),
        }
    }
    let result = async {
        let tx = client.transaction().await?;
        let sink = tx.copy_in(&copy_into("events_staging")).await?;
        copy_rows(sink, events.iter().map(|p| RowRef::from_parsed(p))).await?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_staging \
                     ON CONFLICT (event_id) DO NOTHING"
                ),
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok(inserted)
    }
    .await;
    result.map_err(|e| WriteError::from_pg(client, e))
}

/// The baseline the benchmark compares the indexer with: one plain binary COPY of `rows` straight
/// into `events` (no staging, no conflict handling), in one transaction.
pub async fn copy_plain(
    client: &mut Client,
    rows: &[EventRow],
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let sink = tx.copy_in(&copy_into("events")).await?;
    let n = copy_rows(sink, rows.iter().map(RowRef::from_row)).await?;
    tx.commit().await?;
    Ok(n)
}

/// Records DLQ messages (stream sequence, message) in `dead_letters`; returns the rows inserted.
pub(crate) async fn write_dead_letters(
    client: &mut Client,
    letters: &[(u64, &Message)],
) -> Result<u64, WriteError> {
    let result = async {
        let tx = client.transaction().await?;
        let insert = tx
            .prepare(
                "INSERT INTO dead_letters (dlq_seq, dlq_subject, original_subject, original_stream, \
                 original_seq, consumer, deliveries, reason, error, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (dlq_seq) DO NOTHING",
            )
            .await?;
        let mut inserted = 0;
        for (seq, message) in letters {
            let entry = DlqEntry::from_message(
                *seq,
                message.headers.clone().unwrap_or_default(),
                message.payload.clone(),
            );
            let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
            inserted += tx
                .execute(
                    &insert,
                    &[
                        &(*seq as i64),
                        &message.subject.as_str(),
                        &text(&entry.subject),
                        &text(&entry.stream),
                        &entry.stream_seq.map(|s| s as i64),
                        &text(&entry.consumer),
                        &entry.deliveries,
                        &text(&entry.reason),
                        &text(&entry.error),
                        &String::from_utf8_lossy(&entry.payload).replace('\0', "\u{FFFD}"),
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }
    .await;
    result.map_err(|e| WriteError::from_pg(client, e))
}
