//! A consumer as a long-running service: connect, migrate, start one worker per stream plus the DLQ
//! router, print a status line every few seconds, stop cleanly on cancellation.
//!
//! `aivo-load indexer` and `aivo-load analytics` are this with [`ServiceKind::Indexer`] /
//! [`ServiceKind::Analytics`]; the benchmark and tests can run it in-process as well.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::affinity::Nodes;
use super::analytics::{ANALYTICS, ANALYTICS_STREAMS};
use super::delivery::Shared;
use super::dlq::{self, RouterStats};
use super::indexer::{INDEXED_STREAMS, INDEXER};
use super::lag::read_lag;
use super::sink::Sink;
use super::stats::ConsumerStats;
use super::worker;
use super::{postgres, schema, ConsumersError};

/// How long startup waits for Postgres before giving up (exit 3). Once running, the service waits for
/// Postgres indefinitely.
const STARTUP_POSTGRES_TIMEOUT: Duration = Duration::from_secs(30);

/// Which reference consumer to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Indexer,
    Analytics,
}

impl ServiceKind {
    /// The subcommand that runs it (`indexer`, `analytics`).
    pub fn command(self) -> &'static str {
        match self {
            ServiceKind::Indexer => "indexer",
            ServiceKind::Analytics => "analytics",
        }
    }

    /// Its durable consumer name.
    pub fn consumer(self) -> &'static str {
        match self {
            ServiceKind::Indexer => INDEXER,
            ServiceKind::Analytics => ANALYTICS,
        }
    }

    /// The streams it reads by default.
    pub fn streams(self) -> Vec<String> {
        let names: &[&str] = match self {
            ServiceKind::Indexer => &INDEXED_STREAMS,
            ServiceKind::Analytics => &ANALYTICS_STREAMS,
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// How to run a consumer service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub kind: ServiceKind,
    /// NATS URL(s), comma-separated.
    pub server: String,
    /// Identity and TLS (the production profile's `indexer` or `analytics` user in a run).
    pub auth: crate::security::ClientAuth,
    pub postgres_url: String,
    /// Durable consumer name (default: the kind's).
    pub consumer: String,
    /// Streams to read (default: the kind's).
    pub streams: Vec<String>,
    /// Most messages per write (capped so that the batches in flight fit in max_ack_pending).
    pub batch: usize,
    /// Print a status line on stderr this often; `None` for silence.
    pub status_every: Option<Duration>,
    /// Run the max-deliveries router beside the workers (default). The workers route an event whose
    /// last delivery fails themselves; the router catches what they could not route.
    pub dlq_router: bool,
    /// Pull each stream through the server that leads its consumer, when a URL of `server` reaches
    /// it (default); `false` pulls everything through one connection.
    pub follow_leader: bool,
}

impl ServiceConfig {
    /// The defaults for `kind`: its consumer and streams, batches of 2500, a status line every 5 s.
    pub fn new(kind: ServiceKind, server: &str, postgres_url: &str) -> Self {
        Self {
            kind,
            server: server.to_string(),
            auth: crate::security::ClientAuth::default(),
            postgres_url: postgres_url.to_string(),
            consumer: kind.consumer().to_string(),
            streams: kind.streams(),
            batch: 2500,
            status_every: Some(Duration::from_secs(5)),
            dlq_router: true,
            follow_leader: true,
        }
    }
}

/// Runs a consumer service until `cancel`; `stats` is updated as it goes.
///
/// Fails (an environment error) if NATS or Postgres cannot be reached at startup or the schema cannot
/// be migrated; after that, outages are waited out.
pub async fn run_service(
    config: ServiceConfig,
    stats: Arc<ConsumerStats>,
    cancel: CancellationToken,
) -> Result<(), ConsumersError> {
    let js = crate::topology::connect_as(&config.server, &config.auth).await?;
    let mut pg = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        pg = connect_at_startup(&config.postgres_url) => pg?,
    };
    let applied = schema::migrate(&mut pg).await?;
    if !applied.is_empty() {
        tracing::info!("applied schema migrations {applied:?}");
    }
    drop(pg);
    stats.db_up.store(true, Ordering::Relaxed);
    let sink = match config.kind {
        ServiceKind::Indexer => Sink::Indexer,
        ServiceKind::Analytics => Sink::Analytics,
    };
    let shared = Arc::new(Shared {
        js: js.clone(),
        consumer: config.consumer.clone(),
        sink,
        postgres_url: config.postgres_url.clone(),
        batch: config.batch.max(1),
        stats: stats.clone(),
        nodes: if config.follow_leader {
            Nodes::discover(&config.server, &config.auth).await
        } else {
            Nodes::default()
        },
    });
    let mut tasks = JoinSet::new();
    for stream in &config.streams {
        tasks.spawn(worker::consume_stream(
            shared.clone(),
            stream.clone(),
            cancel.clone(),
        ));
    }
    let router_stats = Arc::new(Mutex::new(RouterStats::default()));
    if config.dlq_router {
        let client = js.client();
        let consumer = config.consumer.clone();
        let cancel = cancel.clone();
        let router_stats = router_stats.clone();
        tasks.spawn(async move {
            if let Err(e) = dlq::run_router(client, consumer, cancel, router_stats).await {
                tracing::error!("DLQ router stopped: {e}");
            }
        });
    }
    if let Some(every) = config.status_every {
        let js = js.clone();
        let config = config.clone();
        let cancel = cancel.clone();
        let stats = stats.clone();
        tasks.spawn(async move {
            status_lines(js, config, stats, router_stats, every, cancel).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn connect_at_startup(url: &str) -> Result<tokio_postgres::Client, ConsumersError> {
    let deadline = tokio::time::Instant::now() + STARTUP_POSTGRES_TIMEOUT;
    loop {
        match postgres::connect(url).await {
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// One line every `every`: rows/s, totals, lag from consumer info, Postgres state.
async fn status_lines(
    js: async_nats::jetstream::Context,
    config: ServiceConfig,
    stats: Arc<ConsumerStats>,
    router: Arc<Mutex<RouterStats>>,
    every: Duration,
    cancel: CancellationToken,
) {
    let streams: Vec<&str> = config.streams.iter().map(String::as_str).collect();
    let mut last = stats.snapshot().written;
    let mut last_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = tokio::time::Instant::now();
        let snap = stats.snapshot();
        let rate = (snap.written - last) as f64 / now.duration_since(last_at).as_secs_f64();
        last = snap.written;
        last_at = now;
        let lag = match read_lag(&js, &config.consumer, &streams).await {
            Ok(lag) => format!(
                "pending {} ack_pending {} redelivered {}",
                lag.pending(),
                lag.ack_pending(),
                lag.redelivered()
            ),
            Err(e) => format!("lag unknown ({e})"),
        };
        let routed = router.lock().map(|r| r.routed).unwrap_or(0) + snap.exhausted;
        eprintln!(
            "{}: {rate:.0} rows/s, {} written, {} duplicates, {lag}, {} poison + {routed} max-deliveries to DLQ, {} naks, postgres {}",
            config.kind.command(),
            snap.written,
            snap.duplicates,
            snap.poison,
            snap.naks,
            if snap.db_up { "up" } else { "DOWN" },
        );
    }
}
