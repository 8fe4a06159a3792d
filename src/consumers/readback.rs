//! Reading `events` back for the ledger check: which (publisher, seq) of a run reached Postgres, and
//! how long after its intended time each became a row.
//!
//! One query per run, ordered by publisher and sequence and streamed row by row, so memory follows
//! the gaps (range sets), not the row count. Rows are counted per ledger coordinate, so an event that
//! reached the table under two event ids shows as duplicated.

use std::collections::BTreeMap;

use futures::{pin_mut, TryStreamExt};
use hdrhistogram::Histogram;
use time::OffsetDateTime;
use tokio_postgres::Client;

use super::ConsumersError;
use crate::load::ledger::RangeSet;

/// How many duplicated (publisher, seq) pairs are kept as samples.
const SAMPLES: usize = 100;

/// What `events` holds for one run.
#[derive(Debug)]
pub struct EventsReadBack {
    /// Rows of the run.
    pub rows: u64,
    /// Sequences seen, per publisher.
    pub seen: BTreeMap<u32, RangeSet>,
    /// Rows beyond the first for the same (publisher, seq).
    pub duplicated: u64,
    pub duplicated_samples: Vec<(u32, u64)>,
    /// End-to-end latency, `occurred_at` (the intended publish time) → `indexed_at`, in µs.
    pub latency_us: Histogram<u64>,
}

/// Streams the rows of `run` from `events`.
pub async fn read_events_for_run(
    client: &Client,
    run: &str,
) -> Result<EventsReadBack, ConsumersError> {
    let pg = |source| ConsumersError::Postgres {
        what: "read events back",
        source,
    };
    let mut back = EventsReadBack {
        rows: 0,
        seen: BTreeMap::new(),
        duplicated: 0,
        duplicated_samples: Vec::new(),
        latency_us: Histogram::new_with_bounds(1, 24 * 3_600 * 1_000_000, 3)
            .map_err(|e| ConsumersError::Usage(format!("histogram: {e}")))?,
    };
    let rows = client
        .query_raw(
            "SELECT publisher, seq, occurred_at, indexed_at FROM events \
             WHERE run = $1 AND publisher IS NOT NULL AND seq IS NOT NULL \
             ORDER BY publisher, seq",
            &[&run],
        )
        .await
        .map_err(pg)?;
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await.map_err(pg)? {
        let publisher: i32 = row.get(0);
        let seq: i64 = row.get(1);
        let occurred: OffsetDateTime = row.get(2);
        let indexed: OffsetDateTime = row.get(3);
        back.rows += 1;
        let (publisher, seq) = (publisher as u32, seq as u64);
        if !back.seen.entry(publisher).or_default().insert(seq) {
            back.duplicated += 1;
            if back.duplicated_samples.len() < SAMPLES {
                back.duplicated_samples.push((publisher, seq));
            }
        }
        let micros = (indexed - occurred).whole_microseconds().max(1);
        back.latency_us
            .saturating_record(micros.min(u64::MAX as i128) as u64);
    }
    Ok(back)
}

/// End-to-end latency of the events intended in one second of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondLatency {
    /// Seconds since the start of the load (the timeline's second) of the events' intended time.
    pub second: u64,
    pub rows: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Intended publish time (`occurred_at`) → row written (`indexed_at`, the insert's clock time, just
/// before its commit makes it visible), per second of intended time counted from `start`.
///
/// Postgres computes the percentiles (one row per second comes back), so a long run costs the
/// harness no per-second histograms.
pub async fn end_to_end_by_second(
    client: &Client,
    run: &str,
    start: OffsetDateTime,
) -> Result<Vec<SecondLatency>, ConsumersError> {
    let rows = client
        .query(
            "SELECT floor(extract(epoch FROM occurred_at - $2::timestamptz))::bigint AS second,                     count(*)::bigint,                     percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM indexed_at - occurred_at)),                     percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM indexed_at - occurred_at)),                     max(extract(epoch FROM indexed_at - occurred_at))::float8              FROM events WHERE run = $1 GROUP BY 1 ORDER BY 1",
            &[&run, &start],
        )
        .await
        .map_err(|source| ConsumersError::Postgres {
            what: "end-to-end latency by second",
            source,
        })?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let second: i64 = row.get(0);
            let ms = |i: usize| row.get::<_, Option<f64>>(i).unwrap_or(0.0).max(0.0) * 1000.0;
            Some(SecondLatency {
                second: u64::try_from(second).ok()?,
                rows: row.get::<_, i64>(1) as u64,
                p50_ms: ms(2),
                p99_ms: ms(3),
                max_ms: ms(4),
            })
        })
        .collect())
}

/// Rows in `events` (all runs).
pub async fn count_events(client: &Client) -> Result<u64, ConsumersError> {
    let row = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .map_err(|source| ConsumersError::Postgres {
            what: "count events",
            source,
        })?;
    Ok(row.get::<_, i64>(0) as u64)
}
