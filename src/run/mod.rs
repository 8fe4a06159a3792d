//! One run (DESIGN.md §3): backend up → init streams → publishers → per-second sampler → drain →
//! checks → report → exit status.
//!
//! The run owns everything it starts: the local cluster is a guard that dies with the run on every
//! path (normal end, error, Ctrl-C), and a cancellation token stops the publishers on Ctrl-C or
//! SIGTERM, after which the figures so far are still reported and the exit code is 130.

mod consumers;
mod load;
mod verdict;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::checks::{dlq, no_loss, retention, stream_count};
use crate::cli::{BackendKind, RunArgs, StateArgs};
use crate::cluster::local::{LocalCluster, LocalClusterConfig};
use crate::exit::{AppError, ExitStatus};
use crate::report;
use crate::scenario::catalog;
use crate::scenario::Scenario;
use crate::topology::{self, StreamOverride, Topology};
use load::drive_load;
use verdict::{build_report, ReportInputs};

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
            (BackendKind::Local | BackendKind::Docker, _) => Vec::new(),
        };
        if args.backend == BackendKind::External && servers.is_empty() {
            return Err(AppError::usage(anyhow!(
                "--backend external needs the cluster's URLs: --server nats://host:4222[,...] or NATS_URL"
            )));
        }
        crate::chaos::guard::refuse_external(args.backend, &scenario.chaos.faults())?;
        if args.backend != BackendKind::Local && args.keep_cluster {
            return Err(AppError::usage(anyhow!(
                "--keep-cluster applies to the local backend only (for docker: `aivo-load cluster up \
                 --backend docker`, then `run --backend external --server nats://127.0.0.1:4222,...`)"
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
    Local(Arc<LocalCluster>),
    /// A compose project of this run's own (free ports); removed when the run ends.
    Docker(Arc<crate::cluster::docker::DockerCluster>),
    Kept(Vec<String>),
    External(Vec<String>),
}

impl RunCluster {
    fn client_urls(&self) -> Vec<String> {
        match self {
            RunCluster::Local(cluster) => cluster.endpoints().client_urls(),
            RunCluster::Docker(cluster) => cluster.endpoints().client_urls(),
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
    let dlq_before = if scenario.consumers.any() {
        stream_state(&js, crate::consumers::dlq::DLQ_STREAM)
            .await?
            .0
    } else {
        0
    };
    let mut before = Vec::new();
    for stream in &streams {
        wait_until_replicated(&js, stream, true).await?;
        before.push(stream_state(&js, stream).await?);
    }

    eprintln!(
        "aivo-load: cluster ready ({}), {} events intended over {}",
        urls.join(","),
        scenario.intended_total(),
        crate::units::format_duration(scenario.duration)
    );
    let local = match &cluster {
        RunCluster::Local(c) => Some(c),
        _ => None,
    };
    let consumers = consumers::RunConsumers::start(
        &scenario.consumers,
        &run_dir,
        &urls.join(","),
        js.clone(),
        streams.clone(),
    )
    .await?;
    let chaos = crate::chaos::run_hook::start(
        &scenario.chaos,
        match &cluster {
            RunCluster::Docker(c) => Some(crate::chaos::ChaosCluster::Docker(c.clone())),
            _ => crate::chaos::run_hook::cluster_of(local, &plan.state),
        },
        &run_dir,
        scenario.duration,
        scenario.seed,
        consumers.as_ref().and_then(|c| c.indexer_slot()),
        cancel.child_token(),
    )?;
    let retention = retention::RetentionSampler::start(
        js.clone(),
        declared_retention(&scenario, &streams),
        tokio::time::Instant::now(),
    );
    let outcome = drive_load(&scenario, &clients, &run_id, cancel.clone()).await?;
    let fault_events = match chaos {
        Some(chaos) => chaos.finish().await,
        None => Vec::new(),
    };
    let consumed = match consumers {
        Some(consumers) => {
            eprintln!("aivo-load: waiting for the indexer to catch up");
            // After Ctrl-C the run ends now: no waiting for the indexer (an abort-on-fail
            // threshold also cancels the load, but the run still checks what was written).
            let catch_up = !cancel.is_cancelled() || outcome.aborted.is_some();
            consumers
                .finish(&js, &run_id, &outcome.ledgers, outcome.start_wall, catch_up)
                .await
        }
        None => consumers::ConsumersOutcome::default(),
    };
    let dlq = if scenario.consumers.any() && !cancel.is_cancelled() {
        Some(
            check_dlq(
                &js,
                &scenario,
                &topology,
                &run_id,
                &outcome.ledgers,
                dlq_before,
            )
            .await,
        )
    } else {
        None
    };

    let mut stream_checks = Vec::new();
    let mut ledger_checks = Vec::new();
    let totals = stream_count::totals_by_stream(&outcome.ledgers);
    for (stream, (last_before, _, _)) in streams.iter().zip(before) {
        if !fault_events.is_empty() {
            // After faults, read back from a stream that has its leader and replicas again. An idle
            // stream's leader reports followers "not current" until the next write, so only online
            // replicas are awaited; if even that fails, the read-back says what it could not read.
            if let Err(e) = wait_until_replicated(&js, stream, false).await {
                eprintln!("aivo-load: {e:#}; reading back anyway");
            }
        }
        let (last_after, messages_after, first_after) = stream_state(&js, stream).await?;
        let ledger = totals.get(*stream).copied().unwrap_or_default();
        stream_checks.push(stream_count::judge(
            stream,
            ledger,
            last_before,
            last_after,
            messages_after,
        ));
        eprintln!(
            "aivo-load: reading {stream} back ({} messages)",
            last_after.saturating_sub(last_before)
        );
        let back = no_loss::read_back(&js, stream, &run_id, last_before + 1, last_after)
            .await
            .map_err(|e| AppError::environment(anyhow!(e)))?;
        let writers: Vec<_> = outcome
            .ledgers
            .iter()
            .filter(|l| l.stream == *stream)
            .collect();
        // What retention removed before the read: everything below the first sequence. Where the
        // scenario set limits, messages keep expiring during the read itself, so the first
        // sequence the read found counts too.
        let mut first_kept = first_after;
        if scenario.streams.contains_key(*stream) {
            first_kept = first_kept.max(back.first_seq.unwrap_or(last_after + 1));
        }
        let removed = first_kept
            .saturating_sub(last_before + 1)
            .min(last_after.saturating_sub(last_before));
        ledger_checks.push(no_loss::judge(stream, &writers, &back, removed));
    }
    let retention_checks = retention.finish().await;
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
        ledger_checks,
        retention_checks,
        fault_events,
        indexer: consumed.indexer,
        dlq,
        indexer_lag: consumed.lag,
        end_to_end: consumed.end_to_end,
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

/// The DLQ check: the dead letters of this run (after `dlq_before`) against the poison its
/// publishers injected, for the consumers the scenario ran.
async fn check_dlq(
    js: &async_nats::jetstream::Context,
    scenario: &Scenario,
    topology: &Topology,
    run_id: &str,
    ledgers: &[crate::load::ledger::PublisherLedger],
    dlq_before: u64,
) -> dlq::DlqCheck {
    let ran: Vec<_> = topology
        .consumers
        .iter()
        .filter(|c| {
            (c.name == "indexer" && scenario.consumers.indexer)
                || (c.name == "analytics" && scenario.consumers.analytics)
        })
        .cloned()
        .collect();
    eprintln!("aivo-load: reading the DLQ back");
    match dlq::read(js, run_id, dlq_before + 1).await {
        Ok(read) => dlq::judge(run_id, ledgers, &ran, &read),
        Err(e) => dlq::DlqCheck {
            detail: format!("cannot read the DLQ: {e}"),
            ..dlq::DlqCheck::default()
        },
    }
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
            Ok(RunCluster::Local(Arc::new(cluster)))
        }
        BackendKind::Docker => {
            let run_id = run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let config = crate::cluster::docker::DockerClusterConfig::new(
                run_dir.join("cluster"),
                &format!("aivo-{run_id}"),
            );
            eprintln!(
                "aivo-load: starting the compose project {} (docker backend) in {}; Postgres and \
                 consumers, if any, run as host processes",
                config.project,
                run_dir.join("cluster").display()
            );
            let cluster = crate::cluster::docker::DockerCluster::start(config).await?;
            Ok(RunCluster::Docker(Arc::new(cluster)))
        }
    }
}

/// Stops a local cluster and removes its stores (the logs stay with the report).
async fn stop_cluster(cluster: RunCluster, run_dir: &Path) {
    match cluster {
        RunCluster::Local(cluster) => {
            // The chaos engine has let go of its handle by now; if not, dropping kills the nodes.
            if let Ok(cluster) = Arc::try_unwrap(cluster) {
                cluster.shutdown().await;
            }
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
        RunCluster::Docker(cluster) => {
            let logs = run_dir.join("cluster").join("containers.log");
            if let Err(err) = cluster.save_logs(&logs).await {
                eprintln!("aivo-load: cannot save the container logs: {err}");
            }
            // The chaos engine has let go of its handle by now; if not, dropping removes it.
            if let Err(err) = cluster.shutdown().await {
                eprintln!("aivo-load: {err}");
            }
        }
        RunCluster::External(_) => {}
    }
}

/// One client per node, each with every node's URL, its own node first: publishers spread over the
/// nodes, and when a node dies its clients fail over to the others (as AIVO's services, given the
/// whole server list, would) instead of waiting for it to come back.
async fn connect_all(urls: &[String]) -> Result<Vec<async_nats::Client>, AppError> {
    let mut clients = Vec::new();
    for first in 0..urls.len() {
        let url = &urls[first];
        let rotated: Vec<&str> = urls[first..]
            .iter()
            .chain(&urls[..first])
            .map(String::as_str)
            .collect();
        let connect = async_nats::ConnectOptions::new()
            .name("aivo-load")
            .connection_timeout(CONNECT_TIMEOUT)
            .retain_servers_order()
            .connect(rotated);
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

/// The retention limits the scenario declared for the streams the run writes (max_age and/or
/// max_bytes overrides); only these are sampled and checked.
fn declared_retention(
    scenario: &Scenario,
    streams: &[&'static str],
) -> Vec<retention::DeclaredRetention> {
    scenario
        .streams
        .iter()
        .filter(|(name, s)| {
            streams.contains(&name.as_str()) && (s.max_age.is_some() || s.max_bytes.is_some())
        })
        .map(|(name, s)| retention::DeclaredRetention {
            stream: name.clone(),
            max_age: s.max_age,
            max_bytes: s.max_bytes,
        })
        .collect()
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

/// Waits until a stream has a leader and every replica is online (and, with `require_current`,
/// current), so the load does not start into an election (whose lost acks would be the harness's
/// doing, not the cluster's under load).
async fn wait_until_replicated(
    js: &async_nats::jetstream::Context,
    stream: &str,
    require_current: bool,
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
                    .filter(|p| p.offline || (require_current && !p.current))
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

/// (last sequence, messages, first sequence) of a stream.
async fn stream_state(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Result<(u64, u64, u64), AppError> {
    let read = async {
        let mut handle = js
            .get_stream(stream)
            .await
            .map_err(|e| anyhow!("stream {stream}: {e}"))?;
        let info = handle
            .info()
            .await
            .map_err(|e| anyhow!("stream {stream} info: {e}"))?;
        Ok::<_, anyhow::Error>((
            info.state.last_sequence,
            info.state.messages,
            info.state.first_sequence,
        ))
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| anyhow!("stream {stream}: no answer within 10s"))
        .and_then(|r| r)
        .map_err(AppError::environment)
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
