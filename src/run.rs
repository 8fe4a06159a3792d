//! One run (DESIGN.md §3): backend up → init streams → publishers → per-second sampler → drain →
//! checks → report → exit status.
//!
//! The run owns everything it starts: the local cluster is a guard that dies with the run on every
//! path (normal end, error, Ctrl-C), and a cancellation token stops the publishers on Ctrl-C or
//! SIGTERM, after which the figures so far are still reported and the exit code is 130.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use time::format_description::well_known::Rfc3339 as Rfc3339Format;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checks::stream_count::{self, StreamCount};
use crate::checks::thresholds::{format_millis, ThresholdResult};
use crate::cli::{BackendKind, RunArgs, StateArgs};
use crate::cluster::local::{LocalCluster, LocalClusterConfig};
use crate::exit::{AppError, ExitStatus};
use crate::load::engine::{self, EngineSettings, PublisherPlan, RunClock, SharedStats};
use crate::load::ledger::PublisherLedger;
use crate::load::metrics::{IntervalStats, SubjectTable};
use crate::report::{
    self, Counts, LatencyReport, RunIdentity, RunReport, SizeSummary, SubjectReport, Throughput,
    TimelineRow, Verdict,
};
use crate::scenario::catalog;
use crate::scenario::Scenario;
use crate::topology::{self, StreamOverride, Topology};
use crate::traffic::arrival::PublisherArrivals;
use crate::traffic::population::Population;
use crate::traffic::{make_source, Mix};

/// The async-nats version the harness is built with (stated in every report).
pub const ASYNC_NATS_VERSION: &str = "0.51";

/// How long a client may take to connect to one node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A validated run.
#[derive(Debug)]
pub struct RunPlan {
    pub scenario: Scenario,
    pub rate_scale: f64,
    pub backend: BackendKind,
    /// Cluster URLs for the external backend.
    pub servers: Vec<String>,
    pub keep_cluster: bool,
    pub reports_dir: PathBuf,
    pub state: StateArgs,
}

impl RunPlan {
    pub fn from_args(args: RunArgs) -> Result<Self, AppError> {
        let scenario = catalog::resolve(&args.scenario)?
            .adjusted(args.duration, args.rate_scale, args.seed)
            .map_err(|e| AppError::usage(anyhow!(e)))?;
        let servers: Vec<String> = match (args.backend, &args.server) {
            (BackendKind::External, Some(list)) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            (BackendKind::External, None) => Vec::new(),
            (BackendKind::Local, _) => Vec::new(),
        };
        if args.backend == BackendKind::External && servers.is_empty() {
            return Err(AppError::usage(anyhow!(
                "--backend external needs the cluster's URLs: --server nats://host:4222[,...] or NATS_URL"
            )));
        }
        if args.backend == BackendKind::External && args.keep_cluster {
            return Err(AppError::usage(anyhow!(
                "--keep-cluster applies to the local backend only"
            )));
        }
        Ok(Self {
            scenario,
            rate_scale: args.rate_scale,
            backend: args.backend,
            servers,
            keep_cluster: args.keep_cluster,
            reports_dir: args.reports_dir,
            state: args.state,
        })
    }
}

/// The cluster a run talks to; a local one stops when this is dropped.
enum RunCluster {
    Local(Box<LocalCluster>),
    Kept(Vec<String>),
    External(Vec<String>),
}

impl RunCluster {
    fn client_urls(&self) -> Vec<String> {
        match self {
            RunCluster::Local(cluster) => cluster.endpoints().client_urls(),
            RunCluster::Kept(urls) | RunCluster::External(urls) => urls.clone(),
        }
    }
}

/// Runs a plan to its exit status.
pub async fn execute(plan: RunPlan) -> Result<ExitStatus, AppError> {
    let scenario = Arc::new(plan.scenario);
    let started_at = OffsetDateTime::now_utc();
    let run_id = format!("{}-{}", compact_utc(started_at), scenario.name);
    let run_dir = plan.reports_dir.join(&run_id);
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create the report directory {}", run_dir.display()))
        .map_err(AppError::environment)?;

    let cancel = CancellationToken::new();
    let interrupted = watch_signals(cancel.clone());

    eprintln!("aivo-load: {} — {}", scenario.name, scenario.description);
    let cluster = tokio::select! {
        cluster = start_cluster(plan.backend, plan.keep_cluster, &plan.servers, &plan.state, &run_dir) => cluster?,
        _ = cancel.cancelled() => return Ok(ExitStatus::Interrupted),
    };
    let urls = cluster.client_urls();
    let clients = connect_all(&urls).await?;
    let nats_server_version = clients[0].server_info().version;

    let topology = scenario_topology(&scenario)?;
    let js = async_nats::jetstream::new(clients[0].clone());
    apply_topology(&js, &topology).await?;
    let streams: Vec<&'static str> = {
        let mut s: Vec<_> = scenario.traffic.iter().map(|t| t.domain.stream()).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let mut before = Vec::new();
    for stream in &streams {
        wait_until_replicated(&js, stream).await?;
        before.push(stream_state(&js, stream).await?);
    }

    eprintln!(
        "aivo-load: cluster ready ({}), {} events intended over {}",
        urls.join(","),
        scenario.intended_total(),
        crate::scenario::units::format_duration(scenario.duration)
    );
    let outcome = drive_load(&scenario, &clients, &run_id, cancel.clone()).await;

    let mut stream_checks = Vec::new();
    let totals = stream_count::totals_by_stream(&outcome.ledgers);
    for (stream, (last_before, _)) in streams.iter().zip(before) {
        let (last_after, messages_after) = stream_state(&js, stream).await?;
        let ledger = totals.get(*stream).copied().unwrap_or_default();
        stream_checks.push(stream_count::judge(
            stream,
            ledger,
            last_before,
            last_after,
            messages_after,
        ));
    }
    drop(js);
    for client in clients {
        let _ = client.drain().await;
    }

    let was_interrupted = interrupted.lock().map(|flag| *flag).unwrap_or(true);
    let report = build_report(ReportInputs {
        scenario: &scenario,
        plan_backend: plan.backend,
        rate_scale: plan.rate_scale,
        run_id: &run_id,
        started_at,
        servers: urls,
        nats_server_version,
        outcome,
        stream_checks,
        interrupted: was_interrupted,
    });
    report
        .write_to(&run_dir)
        .with_context(|| format!("cannot write the report into {}", run_dir.display()))
        .map_err(AppError::environment)?;
    print!(
        "{}",
        report::terminal::render(&report, &run_dir.display().to_string())
    );

    stop_cluster(cluster, &run_dir).await;
    Ok(if was_interrupted {
        ExitStatus::Interrupted
    } else if report.verdict.passed {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// Cancels `cancel` on Ctrl-C or SIGTERM and remembers that it did.
fn watch_signals(cancel: CancellationToken) -> Arc<Mutex<bool>> {
    let flag = Arc::new(Mutex::new(false));
    let seen = flag.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
            _ = cancel.cancelled() => return,
        }
        eprintln!("\naivo-load: interrupted; stopping publishers and tearing down");
        if let Ok(mut flag) = seen.lock() {
            *flag = true;
        }
        cancel.cancel();
    });
    flag
}

async fn start_cluster(
    backend: BackendKind,
    keep: bool,
    servers: &[String],
    state: &StateArgs,
    run_dir: &Path,
) -> Result<RunCluster, AppError> {
    match backend {
        BackendKind::External => Ok(RunCluster::External(servers.to_vec())),
        BackendKind::Local if keep => {
            let kept = crate::cluster::state::spawn_background(state)
                .await
                .map_err(|e| AppError::environment(anyhow!(e)))?;
            Ok(RunCluster::Kept(kept.endpoints.client_urls()))
        }
        BackendKind::Local => {
            eprintln!(
                "aivo-load: starting a local 3-node cluster in {}",
                run_dir.join("cluster").display()
            );
            let cluster = LocalCluster::start(LocalClusterConfig::new(run_dir.join("cluster")))
                .await
                .map_err(|e| AppError::environment(anyhow!(e)))?;
            Ok(RunCluster::Local(Box::new(cluster)))
        }
    }
}

/// Stops a local cluster and removes its stores (the logs stay with the report).
async fn stop_cluster(cluster: RunCluster, run_dir: &Path) {
    match cluster {
        RunCluster::Local(cluster) => {
            cluster.shutdown().await;
            if let Ok(nodes) = std::fs::read_dir(run_dir.join("cluster")) {
                for node in nodes.flatten() {
                    let _ = std::fs::remove_dir_all(node.path().join("store"));
                }
            }
        }
        RunCluster::Kept(urls) => {
            eprintln!(
                "aivo-load: cluster left running at {} (stop it with `aivo-load cluster down`)",
                urls.join(",")
            );
        }
        RunCluster::External(_) => {}
    }
}

async fn connect_all(urls: &[String]) -> Result<Vec<async_nats::Client>, AppError> {
    let mut clients = Vec::new();
    for url in urls {
        let connect = async_nats::ConnectOptions::new()
            .name("aivo-load")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(url.as_str());
        let client = tokio::time::timeout(CONNECT_TIMEOUT * 2, connect)
            .await
            .map_err(|_| anyhow!("no answer from {url} within {:?}", CONNECT_TIMEOUT * 2))
            .and_then(|r| r.map_err(|e| anyhow!("cannot connect to {url}: {e}")))
            .map_err(|e| {
                AppError::environment(e.context(
                    "is the cluster running? (`aivo-load cluster status`, or use --backend local)",
                ))
            })?;
        clients.push(client);
    }
    if clients.is_empty() {
        return Err(AppError::usage(anyhow!("no server URL to connect to")));
    }
    Ok(clients)
}

fn scenario_topology(scenario: &Scenario) -> Result<Topology, AppError> {
    let mut topology = Topology::seed(3);
    for (stream, settings) in &scenario.streams {
        let ov = StreamOverride {
            max_age: settings.max_age,
            max_bytes: settings.max_bytes.map(|b| b.min(i64::MAX as u64) as i64),
            max_msgs: settings.max_msgs,
            replicas: settings.replicas,
        };
        topology = topology
            .with_stream_override(stream, ov)
            .map_err(|e| AppError::usage(anyhow!(e)))?;
    }
    Ok(topology)
}

/// Creates or updates the streams and consumers, retrying: right after a cluster forms, a JetStream
/// API answer is now and then lost (seen about once in ten fresh clusters), and a retry succeeds.
async fn apply_topology(
    js: &async_nats::jetstream::Context,
    topology: &Topology,
) -> Result<(), AppError> {
    let mut attempt = 1;
    loop {
        match topology::apply(js, topology).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_usage() => return Err(AppError::usage(anyhow!("init streams: {e}"))),
            Err(e) if attempt >= 3 => {
                return Err(AppError::environment(anyhow!("init streams: {e}")))
            }
            Err(e) => {
                tracing::warn!("init streams (attempt {attempt}): {e}; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Waits until a stream has a leader and every replica is current, so the load does not start into
/// an election (whose lost acks would be the harness's doing, not the cluster's under load).
async fn wait_until_replicated(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Result<(), AppError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        let info = async {
            js.get_stream(stream)
                .await
                .ok()?
                .info()
                .await
                .ok()
                .map(|i| i.cluster.clone())
        };
        match tokio::time::timeout(Duration::from_secs(2), info).await {
            Ok(Some(Some(cluster))) => {
                let lagging: Vec<&str> = cluster
                    .replicas
                    .iter()
                    .filter(|p| !p.current || p.offline)
                    .map(|p| p.name.as_str())
                    .collect();
                match (&cluster.leader, lagging.is_empty()) {
                    (Some(_), true) => return Ok(()),
                    (None, _) => last = "no leader".into(),
                    (Some(_), false) => {
                        last = format!("replicas not current: {}", lagging.join(", "))
                    }
                }
            }
            // A single server answers without cluster info: nothing to wait for.
            Ok(Some(None)) => return Ok(()),
            _ => last = "stream info unanswered".into(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(AppError::environment(anyhow!(
        "stream {stream} not ready within 20s: {last}"
    )))
}

/// (last sequence, messages) of a stream.
async fn stream_state(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Result<(u64, u64), AppError> {
    let read = async {
        let mut handle = js
            .get_stream(stream)
            .await
            .map_err(|e| anyhow!("stream {stream}: {e}"))?;
        let info = handle
            .info()
            .await
            .map_err(|e| anyhow!("stream {stream} info: {e}"))?;
        Ok::<_, anyhow::Error>((info.state.last_sequence, info.state.messages))
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| anyhow!("stream {stream}: no answer within 10s"))
        .and_then(|r| r)
        .map_err(AppError::environment)
}

/// What the load phase produced.
struct LoadOutcome {
    ledgers: Vec<PublisherLedger>,
    subjects: SubjectTable,
    cumulative: IntervalStats,
    timeline: Vec<TimelineRow>,
    elapsed: Duration,
}

async fn drive_load(
    scenario: &Arc<Scenario>,
    clients: &[async_nats::Client],
    run_id: &str,
    cancel: CancellationToken,
) -> LoadOutcome {
    let run_id: Arc<str> = Arc::from(run_id);
    let population = Arc::new(Population::generate(
        scenario.seed,
        scenario.tenants as usize,
        scenario.learners as usize,
    ));
    let settings = EngineSettings {
        in_flight: scenario.in_flight as usize,
        ack_timeout: scenario.ack_timeout,
        send_grace: Duration::from_secs(5).max(scenario.duration / 10),
    };
    let clock = RunClock::now();
    let mut tasks = JoinSet::new();
    let mut stats: Vec<SharedStats> = Vec::new();
    let mut publisher_id = 0u32;
    for source in &scenario.traffic {
        let profile = Arc::new(source.profile.clone());
        // Mixes were validated when the scenario was loaded.
        let Ok(mix) = Mix::new(&source.mix) else {
            continue;
        };
        for index in 0..scenario.publishers {
            let cell: SharedStats = Arc::default();
            stats.push(cell.clone());
            let plan = PublisherPlan {
                id: publisher_id,
                stream: source.domain.stream().to_string(),
                client: clients[publisher_id as usize % clients.len()].clone(),
                arrivals: Box::new(PublisherArrivals::new(
                    profile.clone(),
                    u64::from(index),
                    u64::from(scenario.publishers),
                )),
                source: make_source(
                    source.domain,
                    mix.clone(),
                    population.clone(),
                    run_id.clone(),
                    publisher_id,
                    scenario.seed,
                ),
            };
            tasks.spawn(engine::run_publisher(
                plan,
                settings.clone(),
                run_id.clone(),
                clock,
                cell,
                cancel.clone(),
            ));
            publisher_id += 1;
        }
    }

    // Publishers stop by themselves at the end of their schedules; this bounds them regardless.
    let hard_stop =
        scenario.duration + settings.send_grace + settings.ack_timeout + Duration::from_secs(10);
    let mut sampler = Sampler::new(scenario.clone(), stats);
    let progress = Progress::new(scenario.duration);
    let mut tick =
        tokio::time::interval_at(clock.start + Duration::from_secs(1), Duration::from_secs(1));
    let mut ledgers = Vec::new();
    let mut subjects = SubjectTable::default();
    let deadline = tokio::time::sleep_until(clock.start + hard_stop);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let row = sampler.sample();
                progress.update(&row, clock.start.elapsed(), sampler.cumulative.error_count());
            }
            joined = tasks.join_next() => match joined {
                Some(Ok(done)) => {
                    subjects.merge(&done.subjects);
                    ledgers.push(done.ledger);
                }
                Some(Err(e)) => tracing::error!("a publisher task failed: {e}"),
                None => break,
            },
            _ = &mut deadline, if !cancel.is_cancelled() => {
                tracing::warn!("publishers still busy {hard_stop:?} after the start; stopping them");
                cancel.cancel();
            }
        }
    }
    let elapsed = clock.start.elapsed();
    sampler.sample();
    progress.finish();
    ledgers.sort_by_key(|l| l.publisher);
    LoadOutcome {
        ledgers,
        subjects,
        cumulative: sampler.cumulative,
        timeline: sampler.timeline,
        elapsed,
    }
}

/// Collects each publisher's interval figures once a second into the timeline.
struct Sampler {
    scenario: Arc<Scenario>,
    stats: Vec<SharedStats>,
    cumulative: IntervalStats,
    timeline: Vec<TimelineRow>,
}

impl Sampler {
    fn new(scenario: Arc<Scenario>, stats: Vec<SharedStats>) -> Self {
        Self {
            scenario,
            stats,
            cumulative: IntervalStats::default(),
            timeline: Vec::new(),
        }
    }

    fn sample(&mut self) -> TimelineRow {
        let mut interval = IntervalStats::default();
        for cell in &self.stats {
            let taken = std::mem::take(&mut *engine::lock(cell));
            interval.merge(&taken);
        }
        self.cumulative.merge(&interval);
        let second = self.timeline.len() as u64;
        let from = Duration::from_secs(second);
        let h = &interval.histograms;
        let row = TimelineRow {
            second,
            phase: self.scenario.phase_at(from),
            target: self
                .scenario
                .intended_between(from, from + Duration::from_secs(1)),
            attempted: interval.attempted,
            acked: interval.acked,
            failed: interval.failed,
            unknown: interval.unknown,
            errors: interval.errors.clone(),
            p50_ms: h.latency.quantile_micros(0.5) as f64 / 1000.0,
            p99_ms: h.latency.quantile_micros(0.99) as f64 / 1000.0,
            max_ms: h.latency.max_micros() as f64 / 1000.0,
            send_delay_p99_ms: h.send_delay.quantile_micros(0.99) as f64 / 1000.0,
        };
        self.timeline.push(row.clone());
        row
    }
}

/// Live progress on stderr: a bar on a terminal, a line every 10 s otherwise (CI logs).
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(duration: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(duration.as_secs().max(1));
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {pos}/{len}s {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self { bar }
    }

    fn update(&self, row: &TimelineRow, elapsed: Duration, errors: u64) {
        let message = format!(
            "{:<10} target {:>6.0}/s  acked {:>6}/s  p99 {:>9}  errors {}",
            row.phase,
            row.target,
            row.acked,
            format_millis(row.p99_ms),
            errors
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs());
                bar.set_message(message);
            }
            None if row.second % 10 == 9 => eprintln!("[{:>4}s] {message}", row.second + 1),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

struct ReportInputs<'a> {
    scenario: &'a Scenario,
    plan_backend: BackendKind,
    rate_scale: f64,
    run_id: &'a str,
    started_at: OffsetDateTime,
    servers: Vec<String>,
    nats_server_version: String,
    outcome: LoadOutcome,
    stream_checks: Vec<StreamCount>,
    interrupted: bool,
}

fn build_report(input: ReportInputs<'_>) -> RunReport {
    let ReportInputs {
        scenario, outcome, ..
    } = input;
    let c = &outcome.cumulative;
    let ledgers = &outcome.ledgers;
    let counts = Counts {
        intended: scenario.intended_total(),
        attempted: ledgers.iter().map(|l| l.attempted).sum(),
        acked: ledgers.iter().map(|l| l.acked.len()).sum(),
        duplicate_acks: ledgers.iter().map(|l| l.duplicate_acks).sum(),
        failed: ledgers.iter().map(|l| l.failed.len()).sum(),
        unknown: ledgers.iter().map(|l| l.unknown.len()).sum(),
        never_sent: ledgers.iter().map(|l| l.never_sent).sum(),
        payload_bytes: c.payload_bytes,
        errors: c.errors.clone(),
    };
    let latency = LatencyReport {
        corrected: c.histograms.latency.summary(),
        service_time: c.histograms.service.summary(),
        send_delay: c.histograms.send_delay.summary(),
    };
    let seconds = scenario.duration.as_secs_f64();
    let throughput = Throughput {
        target_mean: counts.intended as f64 / seconds,
        achieved_mean: counts.acked as f64 / seconds,
        achieved_peak: outcome.timeline.iter().map(|r| r.acked).max().unwrap_or(0) as f64,
        mean_payload_bytes: if counts.attempted > 0 {
            c.payload_bytes as f64 / counts.attempted as f64
        } else {
            0.0
        },
    };

    let subjects = subject_reports(scenario, &outcome.subjects, outcome.elapsed);
    let thresholds: Vec<ThresholdResult> = scenario
        .thresholds
        .iter()
        .map(|t| t.evaluate(metric_value(&t.metric, &counts, &latency).unwrap_or(f64::NAN)))
        .collect();
    let mut failures: Vec<String> = Vec::new();
    failures.extend(
        input
            .stream_checks
            .iter()
            .filter(|s| !s.passed)
            .map(|s| format!("stream {}: {}", s.stream, s.detail)),
    );
    failures.extend(
        thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(|t| t.to_string()),
    );
    if input.interrupted {
        failures.push("the run was interrupted before its end".into());
    }
    let finished_at = OffsetDateTime::now_utc();
    let mut histograms = std::collections::BTreeMap::new();
    histograms.insert("latency".to_string(), c.histograms.latency.to_base64());
    histograms.insert("service_time".to_string(), c.histograms.service.to_base64());
    histograms.insert(
        "send_delay".to_string(),
        c.histograms.send_delay.to_base64(),
    );

    RunReport {
        schema_version: report::SCHEMA_VERSION,
        run: RunIdentity {
            id: input.run_id.to_string(),
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            origin: scenario.origin.clone(),
            seed: scenario.seed,
            rate_scale: input.rate_scale,
            started_at: input.started_at.format(&Rfc3339Format).unwrap_or_default(),
            finished_at: finished_at.format(&Rfc3339Format).unwrap_or_default(),
            duration_s: outcome.elapsed.as_secs_f64(),
            backend: match input.plan_backend {
                BackendKind::Local => "local".into(),
                BackendKind::External => "external".into(),
            },
            servers: input.servers,
            aivo_load_version: env!("CARGO_PKG_VERSION").into(),
            async_nats_version: ASYNC_NATS_VERSION.into(),
            nats_server_version: input.nats_server_version,
            publishers: scenario.publishers * scenario.traffic.len() as u32,
            in_flight_per_publisher: scenario.in_flight,
            ack_timeout_ms: scenario.ack_timeout.as_millis() as u64,
            interrupted: input.interrupted,
        },
        verdict: Verdict {
            passed: failures.is_empty(),
            failures,
        },
        counts,
        latency,
        throughput,
        timeline: outcome.timeline,
        subjects,
        streams: input.stream_checks,
        thresholds,
        histograms,
    }
}

/// Rates, latency and payload sizes by subject, busiest first.
fn subject_reports(
    scenario: &Scenario,
    table: &SubjectTable,
    elapsed: Duration,
) -> Vec<SubjectReport> {
    let seconds = scenario
        .duration
        .as_secs_f64()
        .min(elapsed.as_secs_f64())
        .max(1e-9);
    let mut reports: Vec<SubjectReport> = table
        .subjects
        .iter()
        .map(|s| {
            let size = |q: f64| {
                if s.sizes.is_empty() {
                    0
                } else {
                    s.sizes.value_at_quantile(q)
                }
            };
            SubjectReport {
                subject: s.subject.clone(),
                attempted: s.attempted,
                acked: s.acked,
                not_acked: s.attempted.saturating_sub(s.acked),
                acked_per_second: s.acked as f64 / seconds,
                latency: s.latency.summary(),
                size_bytes: SizeSummary {
                    min: if s.sizes.is_empty() { 0 } else { s.sizes.min() },
                    mean: s.sizes.mean(),
                    p50: size(0.5),
                    p99: size(0.99),
                    max: if s.sizes.is_empty() { 0 } else { s.sizes.max() },
                },
            }
        })
        .collect();
    reports.sort_by(|a, b| {
        b.attempted
            .cmp(&a.attempted)
            .then(a.subject.cmp(&b.subject))
    });
    reports
}

/// The value of a threshold metric, in the unit `checks::thresholds` gives it.
fn metric_value(metric: &str, counts: &Counts, latency: &LatencyReport) -> Option<f64> {
    let mut parts = metric.splitn(3, '.');
    let (Some("publish"), Some(name)) = (parts.next(), parts.next()) else {
        return None;
    };
    let stat = parts.next();
    Some(match (name, stat) {
        ("latency", Some(stat)) => latency.corrected.get(stat)?,
        ("service_time", Some(stat)) => latency.service_time.get(stat)?,
        ("send_delay", Some(stat)) => latency.send_delay.get(stat)?,
        ("error_rate", None) => counts.error_rate(),
        ("achieved_ratio", None) => counts.achieved_ratio(),
        ("attempted", None) => counts.attempted as f64,
        ("acked", None) => counts.acked as f64,
        ("failed", None) => counts.failed as f64,
        ("unknown", None) => counts.unknown as f64,
        ("never_sent", None) => counts.never_sent as f64,
        _ => return None,
    })
}

/// "20261127T110444Z".
fn compact_utc(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::thresholds::known_metrics;

    #[test]
    fn every_known_metric_has_a_value() {
        let counts = Counts {
            intended: 10,
            attempted: 10,
            acked: 9,
            failed: 1,
            ..Counts::default()
        };
        let latency = LatencyReport::default();
        for (metric, _) in known_metrics() {
            assert!(
                metric_value(&metric, &counts, &latency).is_some(),
                "{metric} has no value"
            );
        }
        assert_eq!(
            metric_value("publish.error_rate", &counts, &latency),
            Some(0.1)
        );
    }
}
