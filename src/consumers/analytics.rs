//! `aivo-load analytics`: the aggregates a dashboard reads, kept from LEARNING and FOCUS.
//!
//! - `analytics_focus_minute` (per learner per minute): focus pings, focused milliseconds (the
//!   `interval_ms` of pings with `focused: true`) and focus losses (`focus.loss.*`);
//! - `analytics_tenant_hour` (per tenant per hour): sessions started (`learning.session.started`),
//!   activities completed (`learning.activity.completed`) and events in all.
//!
//! Idempotent under redelivery: each batch first inserts its event ids into `analytics_processed`
//! (`ON CONFLICT DO NOTHING RETURNING`) and aggregates only the ids that were new, in the same
//! transaction, so an event counts once however often it is delivered. Domain fields it does not
//! understand count as zero rather than failing the event: the envelope checks decide what is poison.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use time::OffsetDateTime;
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

use super::sink::{Parsed, WriteError};

/// The durable consumer analytics reads.
pub const ANALYTICS: &str = "analytics";

/// The streams analytics reads.
pub const ANALYTICS_STREAMS: [&str; 2] = ["LEARNING", "FOCUS"];

#[derive(Deserialize, Default)]
struct PingData {
    #[serde(default)]
    focused: bool,
    #[serde(default)]
    interval_ms: u64,
}

#[derive(Default)]
struct FocusMinute {
    tenant_id: String,
    pings: i64,
    focused_ms: i64,
    losses: i64,
}

#[derive(Default)]
struct TenantHour {
    sessions: i64,
    activities: i64,
    events: i64,
}

fn truncate(at: OffsetDateTime, seconds: i64) -> OffsetDateTime {
    let ts = at.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(ts - ts.rem_euclid(seconds)).unwrap_or(at)
}

/// Nothing to set up per connection (kept for symmetry with the indexer).
pub(crate) async fn prepare(_client: &Client) -> Result<(), tokio_postgres::Error> {
    Ok(())
}

/// Aggregates the events of a batch not seen before; returns how many were new.
pub(crate) async fn write_events(
    client: &mut Client,
    events: &[&Parsed<'_>],
) -> Result<u64, WriteError> {
    let result = async {
        let tx = client.transaction().await?;
        let new = mark_processed(&tx, events).await?;
        let aggregates = Aggregates::of_new(events, &new);
        if !aggregates.minutes.is_empty() {
            upsert_focus_minutes(&tx, &aggregates.minutes).await?;
        }
        if !aggregates.hours.is_empty() {
            upsert_tenant_hours(&tx, &aggregates.hours).await?;
        }
        tx.commit().await?;
        Ok(new.len() as u64)
    }
    .await;
    result.map_err(|e| WriteError::from_pg(client, e))
}

/// Records the batch's event ids in `analytics_processed`; returns those that were not there yet.
async fn mark_processed(
    tx: &Transaction<'_>,
    events: &[&Parsed<'_>],
) -> Result<HashSet<Uuid>, tokio_postgres::Error> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.envelope.event_id).collect();
    let streams: Vec<&str> = events.iter().map(|e| e.stream).collect();
    let seqs: Vec<i64> = events.iter().map(|e| e.stream_seq as i64).collect();
    Ok(tx
        .query(
            "INSERT INTO analytics_processed (event_id, stream, stream_seq) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[]) \
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            &[&ids, &streams, &seqs],
        )
        .await?
        .iter()
        .map(|row| row.get::<_, Uuid>(0))
        .collect())
}

/// What a batch adds to the aggregate rows, keyed as their tables are.
#[derive(Default)]
struct Aggregates<'a> {
    /// (learner, minute) → its focus figures.
    minutes: HashMap<(&'a str, OffsetDateTime), FocusMinute>,
    /// (tenant, hour) → its counts.
    hours: HashMap<(&'a str, OffsetDateTime), TenantHour>,
}

impl<'a> Aggregates<'a> {
    /// The aggregates of the events among `events` whose ids are in `new`, each counted once.
    fn of_new(events: &[&'a Parsed<'a>], new: &HashSet<Uuid>) -> Self {
        let mut aggregates = Aggregates::default();
        let mut seen = HashSet::new();
        for e in events {
            let env = &e.envelope;
            // `seen` guards against one event twice in the same batch (a replay next to its original).
            if !new.contains(&env.event_id) || !seen.insert(env.event_id) {
                continue;
            }
            aggregates.add(e);
        }
        aggregates
    }

    /// Counts `e` in its tenant's hour and, for FOCUS events, in its learner's minute.
    fn add(&mut self, e: &'a Parsed<'a>) {
        let env = &e.envelope;
        let hour = self
            .hours
            .entry((&env.tenant_id, truncate(env.occurred_at, 3600)))
            .or_default();
        hour.events += 1;
        match e.subject {
            "learning.session.started" => hour.sessions += 1,
            "learning.activity.completed" => hour.activities += 1,
            _ => {}
        }
        if !e.subject.starts_with("focus.") {
            return;
        }
        let minute = self
            .minutes
            .entry((&env.learner_id, truncate(env.occurred_at, 60)))
            .or_insert_with(|| FocusMinute {
                tenant_id: env.tenant_id.to_string(),
                ..FocusMinute::default()
            });
        if e.subject == "focus.ping" {
            let data: PingData = serde_json::from_str(env.data.get()).unwrap_or_default();
            minute.pings += 1;
            if data.focused {
                minute.focused_ms += data.interval_ms.min(i64::MAX as u64) as i64;
            }
        } else if e.subject.starts_with("focus.loss.") {
            minute.losses += 1;
        }
    }
}

/// Adds `minutes` to `analytics_focus_minute`, one statement for all.
async fn upsert_focus_minutes(
    tx: &Transaction<'_>,
    minutes: &HashMap<(&str, OffsetDateTime), FocusMinute>,
) -> Result<(), tokio_postgres::Error> {
    let mut learners = Vec::new();
    let mut starts = Vec::new();
    let mut tenants = Vec::new();
    let mut pings = Vec::new();
    let mut focused = Vec::new();
    let mut losses = Vec::new();
    for ((learner, minute), m) in minutes {
        learners.push(*learner);
        starts.push(*minute);
        tenants.push(m.tenant_id.as_str());
        pings.push(m.pings);
        focused.push(m.focused_ms);
        losses.push(m.losses);
    }
    tx.execute(
        "INSERT INTO analytics_focus_minute \
           (learner_id, minute, tenant_id, pings, focused_ms, focus_losses) \
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], \
                              $4::int8[], $5::int8[], $6::int8[]) \
         ON CONFLICT (learner_id, minute) DO UPDATE SET \
           pings = analytics_focus_minute.pings + excluded.pings, \
           focused_ms = analytics_focus_minute.focused_ms + excluded.focused_ms, \
           focus_losses = analytics_focus_minute.focus_losses + excluded.focus_losses",
        &[&learners, &starts, &tenants, &pings, &focused, &losses],
    )
    .await?;
    Ok(())
}

/// Adds `hours` to `analytics_tenant_hour`, one statement for all.
async fn upsert_tenant_hours(
    tx: &Transaction<'_>,
    hours: &HashMap<(&str, OffsetDateTime), TenantHour>,
) -> Result<(), tokio_postgres::Error> {
    let mut tenants = Vec::new();
    let mut starts = Vec::new();
    let mut sessions = Vec::new();
    let mut activities = Vec::new();
    let mut counts = Vec::new();
    for ((tenant, hour), h) in hours {
        tenants.push(*tenant);
        starts.push(*hour);
        sessions.push(h.sessions);
        activities.push(h.activities);
        counts.push(h.events);
    }
    tx.execute(
        "INSERT INTO analytics_tenant_hour \
           (tenant_id, hour, sessions_started, activities_completed, events) \
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], \
                              $5::int8[]) \
         ON CONFLICT (tenant_id, hour) DO UPDATE SET \
           sessions_started = analytics_tenant_hour.sessions_started + excluded.sessions_started, \
           activities_completed = analytics_tenant_hour.activities_completed + excluded.activities_completed, \
           events = analytics_tenant_hour.events + excluded.events",
        &[&tenants, &starts, &sessions, &activities, &counts],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_floors_to_the_unit() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_123).expect("valid");
        assert_eq!(truncate(at, 60).unix_timestamp(), 1_800_000_120);
        assert_eq!(truncate(at, 3600).unix_timestamp(), 1_800_000_000);
    }
}
