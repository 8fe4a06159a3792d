//! The consumers' tables, applied by versioned migrations recorded in `schema_migrations`.
//!
//! Each migration runs in its own transaction under a transaction-scoped advisory lock, so the
//! indexer and analytics (which start together) never apply one twice. A migration, once released,
//! is never edited: a change is a new version.

use tokio_postgres::Client;

use super::ConsumersError;

/// Key of the advisory lock that serialises migrators (any constant works; this spells "aivo").
const MIGRATION_LOCK: i64 = 0x6169_766f;

/// One schema change.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        // `indexed_at` uses clock_timestamp(), not now(): now() is the transaction's start, and the
        // end-to-end latency read back from this column should be when the row was written.
        // No secondary index: every index slows the indexer's inserts, and the ledger read-back
        // is one sorted scan per run.
        sql: "CREATE TABLE events (
                event_id    uuid PRIMARY KEY,
                subject     text NOT NULL,
                stream      text NOT NULL,
                stream_seq  bigint NOT NULL,
                type        text NOT NULL,
                tenant_id   text NOT NULL,
                learner_id  text NOT NULL,
                session_id  text,
                occurred_at timestamptz NOT NULL,
                run         text,
                publisher   integer,
                seq         bigint,
                payload     jsonb NOT NULL,
                indexed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
              );
              CREATE TABLE dead_letters (
                dlq_seq         bigint PRIMARY KEY,
                dlq_subject     text NOT NULL,
                original_subject text,
                original_stream text,
                original_seq    bigint,
                consumer        text,
                deliveries      bigint,
                reason          text,
                error           text,
                payload         text NOT NULL,
                indexed_at      timestamptz NOT NULL DEFAULT clock_timestamp()
              );",
    },
    Migration {
        version: 2,
        name: "analytics",
        sql: "CREATE TABLE analytics_processed (
                event_id     uuid PRIMARY KEY,
                stream       text NOT NULL,
                stream_seq   bigint NOT NULL,
                processed_at timestamptz NOT NULL DEFAULT clock_timestamp()
              );
              CREATE TABLE analytics_focus_minute (
                learner_id   text NOT NULL,
                minute       timestamptz NOT NULL,
                tenant_id    text NOT NULL,
                pings        bigint NOT NULL DEFAULT 0,
                focused_ms   bigint NOT NULL DEFAULT 0,
                focus_losses bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (learner_id, minute)
              );
              CREATE TABLE analytics_tenant_hour (
                tenant_id            text NOT NULL,
                hour                 timestamptz NOT NULL,
                sessions_started     bigint NOT NULL DEFAULT 0,
                activities_completed bigint NOT NULL DEFAULT 0,
                events               bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (tenant_id, hour)
              );",
    },
];

/// The newest schema version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the migrations the database has not seen yet; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, ConsumersError> {
    let pg = |what: &'static str| move |source| ConsumersError::Postgres { what, source };
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               version    integer PRIMARY KEY,
               name       text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .or_else(|e| {
            // Two migrators racing on CREATE TABLE IF NOT EXISTS can collide on the catalog's
            // unique index; the loser finds the table there on the next statement.
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(pg("create schema_migrations"))?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let tx = client
            .transaction()
            .await
            .map_err(pg("begin a migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg("take the migration lock"))?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await
            .map_err(pg("read schema_migrations"))?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(migration.sql)
            .await
            .map_err(|source| ConsumersError::Migration {
                version: migration.version,
                name: migration.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(pg("record a migration"))?;
        tx.commit().await.map_err(pg("commit a migration"))?;
        applied.push(migration.version);
    }
    Ok(applied)
}
