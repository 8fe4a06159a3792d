//! The reference consumers in a run (`[consumers]` in a scenario): an embedded Postgres, the indexer
//! and analytics as child processes (so they can be killed like the real services), indexer lag
//! sampled every second, then the catch-up wait and the read-back of `events` for the ledger check.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::no_loss::{self, ReadBack};
use crate::consumers::{
    connect_postgres, migrate, read_events_for_run, read_lag, ConsumerProcess, ConsumerProcessSpec,
    ConsumerSlot, EmbeddedPostgres, ServiceKind,
};
use crate::consumers::{end_to_end_by_second, SecondLatency};
use crate::exit::AppError;
use crate::load::ledger::PublisherLedger;
use crate::load::metrics::DurationHistogram;
use crate::report::IndexerReport;
use crate::scenario::model::ConsumerSettings;
use time::OffsetDateTime;

/// What the consumers of a run leave for the report.
#[derive(Default)]
pub(super) struct ConsumersOutcome {
    pub(super) indexer: Option<IndexerReport>,
    /// (second, pending + unacknowledged) of the indexer.
    pub(super) lag: Vec<(u64, u64)>,
    /// End-to-end latency per second of intended time.
    pub(super) end_to_end: Vec<SecondLatency>,
}

/// The consumers of a running load.
pub(super) struct RunConsumers {
    settings: ConsumerSettings,
    postgres: Option<EmbeddedPostgres>,
    url: String,
    children: Arc<Mutex<Vec<ConsumerProcess>>>,
    /// The indexer child, shared with the chaos engine (`kill-indexer`).
    indexer: Option<Arc<ConsumerSlot>>,
    indexer_task: Option<JoinHandle<()>>,
    lag_task: Option<JoinHandle<Vec<(u64, u64)>>>,
    stop: CancellationToken,
    streams: Vec<&'static str>,
    /// The indexer's latest lag sample (`u64::MAX` until the first), for the live metrics.
    latest_lag: Arc<AtomicU64>,
    /// Judge only these publishers' events, each up to its sequence (a merge with a worker lost:
    /// the lost one's events are in Postgres and in no ledger).
    up_to: Option<BTreeMap<u32, u64>>,
}

/// How the consumer children connect: on a production-profile cluster as the `indexer` and
/// `analytics` users.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerAuth {
    pub(crate) indexer: crate::security::ClientAuth,
    pub(crate) analytics: crate::security::ClientAuth,
}

impl ConsumerAuth {
    /// The consumers' options on `cluster`.
    pub(crate) fn of(cluster: &crate::cluster::Cluster) -> Result<Self, AppError> {
        use crate::security::Role;
        let auth = |role: Role| {
            cluster
                .client_auth(&role)
                .map_err(|e| AppError::environment(anyhow!(e)))
        };
        Ok(Self {
            indexer: auth(Role::Indexer)?,
            analytics: auth(Role::Analytics)?,
        })
    }
}

impl RunConsumers {
    /// Starts Postgres (embedded in `run_dir/postgres` unless `DATABASE_URL` is set), migrates it,
    /// and starts the consumers; the indexer `indexer_start` after `zero`, the load's second 0
    /// (`None`: as soon as the consumers are up; or a coming `--start-at`), from which the lag
    /// samples are counted too.
    pub(super) async fn start(
        settings: &ConsumerSettings,
        run_dir: &Path,
        servers: &str,
        auth: &ConsumerAuth,
        js: async_nats::jetstream::Context,
        streams: Vec<&'static str>,
        zero: Option<Instant>,
    ) -> Result<Option<RunConsumers>, AppError> {
        if !settings.any() {
            return Ok(None);
        }
        let (postgres, url) = start_postgres(run_dir).await?;
        let exe = std::env::current_exe()
            .map_err(|e| AppError::environment(anyhow!("cannot find the aivo-load binary: {e}")))?;
        let spec = |kind: ServiceKind, name: &str| ConsumerProcessSpec {
            kind,
            exe: exe.clone(),
            server: servers.to_string(),
            postgres_url: url.clone(),
            log: run_dir.join(format!("{name}.log")),
            extra_args: vec!["--status-every".into(), "5s".into()],
            auth: match kind {
                ServiceKind::Indexer => auth.indexer.clone(),
                ServiceKind::Analytics => auth.analytics.clone(),
            },
        };
        let children = Arc::new(Mutex::new(Vec::new()));
        if settings.analytics {
            let child = ConsumerProcess::spawn(&spec(ServiceKind::Analytics, "analytics"))
                .await
                .map_err(environment)?;
            lock(&children).push(child);
        }
        let zero = zero.unwrap_or_else(Instant::now);
        let stop = CancellationToken::new();
        let indexer = settings.indexer.then(|| {
            Arc::new(ConsumerSlot::new(
                spec(ServiceKind::Indexer, "indexer"),
                "indexer",
                streams.clone(),
                js.clone(),
            ))
        });
        let indexer_task = indexer
            .clone()
            .map(|slot| start_indexer_later(slot, zero + settings.indexer_start, stop.clone()));
        let latest_lag = Arc::new(AtomicU64::new(u64::MAX));
        let lag_task = settings
            .indexer
            .then(|| sample_lag(js, streams.clone(), zero, stop.clone(), latest_lag.clone()));
        Ok(Some(RunConsumers {
            settings: settings.clone(),
            postgres,
            url,
            children,
            indexer,
            indexer_task,
            lag_task,
            stop,
            streams,
            latest_lag,
            up_to: None,
        }))
    }

    /// The scenario's consumers as they ran beside the cluster, not as children of this process
    /// (`aivo-load indexer` and `analytics`, writing into `url`): [`RunConsumers::finish`] waits
    /// for their catch-up and reads `events` back, with no process to stop.
    pub(super) fn beside(
        settings: &ConsumerSettings,
        url: &str,
        streams: Vec<&'static str>,
    ) -> Self {
        RunConsumers {
            settings: settings.clone(),
            postgres: None,
            url: url.to_string(),
            children: Arc::new(Mutex::new(Vec::new())),
            indexer: None,
            indexer_task: None,
            lag_task: None,
            stop: CancellationToken::new(),
            streams,
            latest_lag: Arc::new(AtomicU64::new(u64::MAX)),
            up_to: None,
        }
    }

    /// Judges only `last`'s publishers, each up to its sequence (see [`RunConsumers::up_to`]).
    pub(super) fn judging_only(mut self, last: BTreeMap<u32, u64>) -> Self {
        self.up_to = Some(last);
        self
    }

    /// The indexer's latest lag (pending + unacknowledged), once sampled.
    pub(super) fn indexer_lag(&self) -> Option<Arc<AtomicU64>> {
        self.settings.indexer.then(|| self.latest_lag.clone())
    }

    /// The indexer child, for the chaos engine's `kill-indexer`.
    pub(super) fn indexer_slot(&self) -> Option<Arc<ConsumerSlot>> {
        self.indexer.clone()
    }

    /// After the load (which ended at `load_end`): waits for the indexer to catch up, reads
    /// `events` back and judges it against the ledgers, stops the consumers and Postgres.
    pub(super) async fn finish(
        mut self,
        js: &async_nats::jetstream::Context,
        run_id: &str,
        ledgers: &[PublisherLedger],
        load_start: OffsetDateTime,
        load_end: Instant,
        wait_for_catch_up: bool,
    ) -> ConsumersOutcome {
        if let Some(task) = self.indexer_task.take() {
            // The indexer starts within the load; if the load ended first, start it now.
            if !task.is_finished() {
                let _ = task.await;
            }
        }
        let mut lag_at_load_end = 0;
        let mut catch_up = None;
        if self.settings.indexer {
            let wait = if wait_for_catch_up {
                self.settings.catch_up_timeout
            } else {
                Duration::ZERO
            };
            let deadline = load_end + wait;
            let mut first = true;
            while Instant::now() < deadline {
                if let Ok(Ok(lag)) = tokio::time::timeout(
                    Duration::from_secs(2),
                    read_lag(js, "indexer", &self.streams),
                )
                .await
                {
                    if first {
                        lag_at_load_end = lag.pending() + lag.ack_pending();
                        first = false;
                    }
                    if lag.is_caught_up() {
                        catch_up = Some(load_end.elapsed());
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        if self.settings.analytics && wait_for_catch_up {
            // The DLQ check needs analytics' dead letters too: wait (within the same deadline) until
            // it has worked off its streams as well.
            let streams: Vec<&str> = self
                .streams
                .iter()
                .copied()
                .filter(|s| ANALYTICS_STREAMS.contains(s))
                .collect();
            let deadline = load_end + self.settings.catch_up_timeout;
            while !streams.is_empty() && Instant::now() < deadline {
                let lag = tokio::time::timeout(
                    Duration::from_secs(2),
                    read_lag(js, "analytics", &streams),
                )
                .await;
                if matches!(lag, Ok(Ok(ref lag)) if lag.is_caught_up()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        self.stop.cancel();
        let lag_samples = match self.lag_task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let (report, end_to_end) = if self.settings.indexer {
            let report = self.judge(run_id, ledgers, lag_at_load_end, catch_up).await;
            (Some(report), self.end_to_end(run_id, load_start).await)
        } else {
            (None, Vec::new())
        };
        let children: Vec<ConsumerProcess> = std::mem::take(&mut *lock(&self.children));
        for mut child in children {
            child.terminate(Duration::from_secs(5)).await;
        }
        if let Some(indexer) = &self.indexer {
            indexer.terminate(Duration::from_secs(5)).await;
        }
        if let Some(mut pg) = self.postgres.take() {
            let _ = pg.stop().await;
        }
        ConsumersOutcome {
            indexer: report,
            lag: lag_samples,
            end_to_end,
        }
    }

    /// The end-to-end latency of each second of the load (empty if Postgres cannot say).
    async fn end_to_end(&self, run_id: &str, load_start: OffsetDateTime) -> Vec<SecondLatency> {
        let client = match connect_postgres(&self.url).await {
            Ok(c) => c,
            Err(_) => return Vec::new(),
        };
        end_to_end_by_second(&client, run_id, load_start)
            .await
            .unwrap_or_else(|e| {
                eprintln!("aivo-load: no per-second end-to-end latency: {e}");
                Vec::new()
            })
    }

    async fn judge(
        &self,
        run_id: &str,
        ledgers: &[PublisherLedger],
        lag_at_load_end: u64,
        catch_up: Option<Duration>,
    ) -> IndexerReport {
        // Poison goes to the DLQ (the DLQ check), never to `events`.
        let valid: Vec<PublisherLedger> = ledgers.iter().map(|l| l.without_poison()).collect();
        let all: Vec<&PublisherLedger> = valid.iter().collect();
        let mut back = ReadBack::default();
        let mut end_to_end = DurationHistogram::with_precision(3);
        match connect_postgres(&self.url).await {
            Ok(client) => match read_events_for_run(&client, run_id).await {
                Ok(rows) => {
                    back.read = rows.rows;
                    back.seen = rows.seen;
                    back.duplicated_count = rows.duplicated;
                    back.duplicated = rows.duplicated_samples;
                    for value in rows.latency_us.iter_recorded() {
                        end_to_end
                            .record_micros_n(value.value_iterated_to(), value.count_at_value());
                    }
                }
                Err(e) => back.incomplete = Some(format!("read-back of events failed: {e}")),
            },
            Err(e) => back.incomplete = Some(format!("cannot connect to Postgres: {e}")),
        }
        if let Some(last) = &self.up_to {
            back.only_up_to(last);
        }
        if catch_up.is_none() {
            back.incomplete.get_or_insert(format!(
                "the indexer did not catch up within {:?} after the load",
                self.settings.catch_up_timeout
            ));
        }
        let mut ledger = no_loss::judge("events (Postgres)", &all, &back, 0);
        let indexed_poison = poison_in_events(ledgers, &back);
        if indexed_poison > 0 {
            ledger.unexpected += indexed_poison;
            ledger.passed = false;
            ledger.detail = format!(
                "{indexed_poison} poison event(s) written to events; {}",
                ledger.detail
            );
        }
        let catch_up_s = catch_up.map(|d| d.as_secs_f64());
        IndexerReport {
            postgres: match &self.postgres {
                Some(pg) => format!("embedded, port {}", pg.port()),
                None => "DATABASE_URL".into(),
            },
            analytics: self.settings.analytics,
            started_s: self.settings.indexer_start.as_secs_f64(),
            lag_at_load_end,
            catch_up_s,
            catch_up_rate: catch_up_s
                .filter(|s| *s > 0.0)
                .map(|s| lag_at_load_end as f64 / s),
            // Filled in by the verdict, which knows the intended rate of each second.
            peak_lag: 0,
            recovery_s: None,
            recovery_rate: None,
            end_to_end: end_to_end.summary(),
            rows: back.read,
            ledger,
        }
    }
}

/// The streams analytics reads (the seed's topology).
const ANALYTICS_STREAMS: [&str; 2] = ["LEARNING", "FOCUS"];

fn environment(e: crate::consumers::ConsumersError) -> AppError {
    AppError::environment(anyhow!("{e}"))
}

/// Postgres for the run: `DATABASE_URL` if set, else an embedded one in `run_dir/postgres`;
/// migrated either way. The embedded server stops when its handle is dropped.
async fn start_postgres(run_dir: &Path) -> Result<(Option<EmbeddedPostgres>, String), AppError> {
    let (postgres, url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            eprintln!(
                "aivo-load: starting an embedded Postgres in {}",
                run_dir.join("postgres").display()
            );
            let pg = EmbeddedPostgres::start(&run_dir.join("postgres"))
                .await
                .map_err(environment)?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let mut client = connect_postgres(&url).await.map_err(environment)?;
    migrate(&mut client).await.map_err(environment)?;
    Ok((postgres, url))
}

/// Starts the indexer at `at` (`indexer_start` into the load), unless the run stops first.
fn start_indexer_later(
    slot: Arc<ConsumerSlot>,
    at: Instant,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = slot.start().await {
            eprintln!("aivo-load: cannot start the indexer: {e}");
        }
    })
}

/// Samples the indexer's lag (pending + unacknowledged) once a second until `stop`.
fn sample_lag(
    js: async_nats::jetstream::Context,
    streams: Vec<&'static str>,
    start: Instant,
    stop: CancellationToken,
    latest: Arc<AtomicU64>,
) -> JoinHandle<Vec<(u64, u64)>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick =
            tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return samples,
            }
            if let Ok(Ok(lag)) =
                tokio::time::timeout(Duration::from_secs(1), read_lag(&js, "indexer", &streams))
                    .await
            {
                let lag = lag.pending() + lag.ack_pending();
                latest.store(lag, Ordering::Relaxed);
                samples.push((start.elapsed().as_secs().saturating_sub(1), lag));
            }
        }
    })
}

/// How many injected poison events were written to `events` anyway.
fn poison_in_events(ledgers: &[PublisherLedger], back: &ReadBack) -> u64 {
    let mut count = 0;
    for ledger in ledgers.iter().filter(|l| !l.poison.is_empty()) {
        if let Some(seen) = back.seen.get(&ledger.publisher) {
            for (start, end) in ledger.poison.all().ranges() {
                count += (start..=end).filter(|s| seen.contains(*s)).count() as u64;
            }
        }
    }
    count
}

fn lock<T>(cell: &Arc<Mutex<T>>) -> std::sync::MutexGuard<'_, T> {
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
