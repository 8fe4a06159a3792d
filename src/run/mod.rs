//! One run (DESIGN.md §3), in named phases over one [`RunContext`]:
//!
//! 1. **start cluster** ([`ClusterPlan::start`]: local, docker, kept or external);
//! 2. **declare** the streams and consumers and wait for their replicas (`setup.rs`);
//! 3. **start consumers and chaos** beside the load, and the retention sampler;
//! 4. **drive load**: publishers and the per-second sampler (`load.rs`);
//! 5. **finish consumers and chaos**: reverts, the indexer's catch-up, the DLQ read;
//! 6. **check** every stream the run wrote (`checks::streams`);
//! 7. **report**: files, terminal summary and the exit status (`verdict.rs`).
//!
//! [`execute`] tears the cluster down after the phases on every path, errors included: a run's
//! own cluster stops, its stores are removed and its logs kept with the report, and a kept cluster
//! is left running. A panic is covered by [`RunContext`]'s `Drop` (nodes die with their handles;
//! stores are removed). A cancellation token stops the publishers on Ctrl-C or SIGTERM, after which
//! the figures so far are still reported and the exit code is 130.

pub mod checkpoint;
pub mod clock;
mod consumers;
mod drill;
mod live;
mod load;
pub mod merge;
mod metrics;
pub mod partial;
pub mod recover;
mod resources;
pub mod segment;
pub mod selfcheck;
pub mod session;
mod setup;
mod variants;
mod verdict;
mod workers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::chaos::run_hook::{self, RunChaos};
use crate::checks::{dlq, replica_read, replicas, retention, security, streams, stuck};
use crate::cluster::{Cluster, ClusterPlan};
use crate::exit::{AppError, ExitStatus};
use crate::report::{self, RunReport};
use crate::scenario::Scenario;
use consumers::{ConsumersOutcome, RunConsumers};
use load::{drive_load, LoadOutcome};
use setup::Declared;
use verdict::{build_report, ReportInputs};

/// How long after the reverts a replica may stay behind its leader before the report names it a
/// stuck replica (`cluster::stuck`).
const STUCK_BOUND: std::time::Duration = crate::cluster::stuck::DEFAULT_BOUND;
/// What the cluster-side checks found after the drain.
struct ClusterChecks {
    streams: streams::StreamChecks,
    retention: Vec<retention::RetentionCheck>,
    replicas: Vec<replicas::ReplicaCheck>,
    replica_reads: Vec<replica_read::ReplicaRead>,
    security: Option<security::SecurityCheck>,
}

/// How long the replicas check waits for every replica to reach its stream's last sequence.
const REPLICAS_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

#[doc(hidden)]
pub use load::{bench_load, BenchLoad};
pub use verdict::ASYNC_NATS_VERSION;

/// A validated run (built from the command line by `cli.rs`).
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub scenario: Scenario,
    pub rate_scale: f64,
    /// Where the cluster comes from.
    pub cluster: ClusterPlan,
    /// Receives the `<UTC time>-<scenario>/` run dir.
    pub reports_dir: PathBuf,
    /// How the scenario was chosen (what `report recover` rebuilds it from).
    pub source: checkpoint::ScenarioSource,
    /// How often the run writes a checkpoint; `None`: never.
    pub checkpoint: Option<std::time::Duration>,
    /// `--metrics-addr`: serve live metrics there while the run goes.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--segment`: which slice of the scenario this run drives (whole by default).
    pub segment: segment::Segment,
    /// `--run-id`: the id every worker of a segmented run shares.
    pub run_id: Option<String>,
    /// `--start-at`: second 0 of the load.
    pub start_at: Option<OffsetDateTime>,
    /// `--workers N`: run N worker processes (`--segment i/N`) against this run's cluster and
    /// merge their reports.
    pub workers: Option<u32>,
    /// Test-only `--drill-tamper N`: see `drill::Drill`.
    pub drill_tamper: u64,
}

/// Runs a plan to its exit status; see the module header.
pub async fn execute(plan: RunPlan) -> Result<ExitStatus, AppError> {
    if !plan.scenario.compare_sync_interval.is_empty() {
        return variants::execute(plan).await;
    }
    let mut run = RunContext::create(plan)?;
    let stop_now = run.signals.stop_now.clone();
    let outcome = tokio::select! {
        outcome = run.phases() => Some(outcome),
        _ = stop_now.cancelled() => None,
    };
    // A second interrupt dropped the phases wherever they were; teardown still reverts the
    // faults (the chaos handle stays in the context until its reverts are done) and stops the
    // run's cluster.
    run.teardown().await;
    match outcome {
        Some(outcome) => outcome,
        None => {
            eprintln!(
                "aivo-load: stopped; what the run measured up to its last checkpoint is in {} \
                 (`aivo-load report recover` it, if its cluster is kept)",
                run.run_dir.display()
            );
            Ok(ExitStatus::Interrupted)
        }
    }
}

/// What every phase of one run shares.
struct RunContext {
    scenario: Arc<Scenario>,
    rate_scale: f64,
    cluster_plan: ClusterPlan,
    source: checkpoint::ScenarioSource,
    checkpoint_every: Option<std::time::Duration>,
    metrics_addr: Option<std::net::SocketAddr>,
    segment: segment::Segment,
    start_at: Option<OffsetDateTime>,
    workers: Option<u32>,
    drill_tamper: u64,
    /// From the start of the phases until teardown, with `--metrics-addr`.
    live: Option<live::LiveMetrics>,
    run_id: String,
    run_dir: PathBuf,
    started_at: OffsetDateTime,
    cancel: CancellationToken,
    signals: Signals,
    /// From the start phase until teardown.
    cluster: Option<Cluster>,
    /// From phase 3 until phase 5 ends it, or teardown on an error path: its reverts must be done
    /// before the cluster they go to stops.
    chaos: Option<RunChaos>,
}

/// What runs beside the load (phase 3) and is ended in phase 5, besides the chaos schedule (which
/// [`RunContext`] holds).
struct SideTasks {
    consumers: Option<RunConsumers>,
    retention: retention::RetentionSampler,
}

/// What phase 5 leaves for the checks and the report.
struct Finished {
    fault_events: Vec<crate::chaos::FaultEvent>,
    consumed: ConsumersOutcome,
    dlq: Option<dlq::DlqCheck>,
    /// When the last fault was reverted (the stuck-replica bound counts from here).
    reverted_at: std::time::Instant,
}

impl RunContext {
    /// Creates the run dir and starts watching for Ctrl-C / SIGTERM.
    fn create(plan: RunPlan) -> Result<Self, AppError> {
        let started_at = OffsetDateTime::now_utc();
        // Workers of a segmented run given one --start-at derive the same id without talking.
        let run_id = plan.run_id.clone().unwrap_or_else(|| {
            let at = plan.start_at.unwrap_or(started_at);
            format!("{}-{}", compact_utc(at), plan.scenario.name)
        });
        let run_dir = if plan.segment.is_whole() {
            plan.reports_dir.join(&run_id)
        } else {
            plan.reports_dir.join(&run_id).join(plan.segment.dir_name())
        };
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("cannot create the report directory {}", run_dir.display()))
            .map_err(AppError::environment)?;
        let cancel = CancellationToken::new();
        let signals = watch_signals(cancel.clone());
        let sync_interval = plan.scenario.sync_interval;
        // A power-loss fault needs every store on the power-loss store from the start (what a
        // node fsyncs before the fault is what survives it); not under --no-chaos.
        let chaos = &plan.scenario.chaos;
        let durable_stores = plan.segment.runs_chaos()
            && chaos
                .fixed
                .iter()
                .map(|f| &f.fault)
                .chain(chaos.nemeses.iter().flat_map(|n| &n.faults))
                .any(|f| *f == crate::chaos::Fault::PowerLoss);
        Ok(Self {
            scenario: Arc::new(plan.scenario),
            rate_scale: plan.rate_scale,
            cluster_plan: ClusterPlan {
                sync_interval,
                durable_stores,
                ..plan.cluster
            },
            source: plan.source,
            checkpoint_every: plan.checkpoint,
            metrics_addr: plan.metrics_addr,
            segment: plan.segment,
            start_at: plan.start_at,
            workers: plan.workers,
            drill_tamper: plan.drill_tamper,
            live: None,
            run_id,
            run_dir,
            started_at,
            cancel,
            signals,
            cluster: None,
            chaos: None,
        })
    }

    /// The phases in order; the first error ends them (teardown follows in [`execute`]).
    async fn phases(&mut self) -> Result<ExitStatus, AppError> {
        if let Some(count) = self.workers {
            return self.coordinate(count).await;
        }
        let scenario = self.scenario.clone();
        eprintln!("aivo-load: {} — {}", scenario.name, scenario.description);
        if let Some(addr) = self.metrics_addr {
            self.live = Some(live::LiveMetrics::serve(addr).await?);
        }
        let Some(cluster) = self.start_cluster().await? else {
            return Ok(ExitStatus::Interrupted);
        };
        let declared = setup::declare(&scenario, &cluster).await?;
        // A worker of a segmented run measures its clock against the cluster's before it waits
        // for --start-at: the merge compares the workers' offsets.
        let clock = if self.segment.is_whole() {
            Err("not a segmented run".to_string())
        } else {
            clock::measure(&declared.js, &self.segment.dir_name()).await
        };
        let side = self.start_side_tasks(&cluster, &declared).await?;
        let (drill, drill_tap) = match scenario.drill {
            Some(settings) => {
                let (drill, tap) = drill::Drill::start(
                    settings,
                    declared.js.client(),
                    declared
                        .topology
                        .streams
                        .iter()
                        .map(|s| s.name.clone())
                        .collect(),
                    self.run_dir.join("backup"),
                    self.drill_tamper,
                    self.cancel.child_token(),
                );
                (Some(drill), Some(tap))
            }
            None => (None, None),
        };
        let load = drive_load(
            &scenario,
            &declared.clients,
            &cluster.endpoints().nodes,
            &self.run_id,
            std::time::Duration::ZERO,
            self.cancel.clone(),
            load::RunFiles {
                hlog: Some(self.run_dir.join(report::hlog::FILE_NAME)),
                checkpoints: self.checkpointer(&cluster, &declared),
                live: self.live.as_ref().map(|live| {
                    live.handle(
                        &self.run_id,
                        self.run_dir.join("faults.jsonl"),
                        side.consumers.as_ref().and_then(|c| c.indexer_lag()),
                    )
                }),
                segment: self.segment,
                start_at: self.start_at,
                drill: drill_tap,
            },
        )
        .await?;
        let finished = self
            .finish_side_tasks(&declared, side.consumers, &load)
            .await;
        if !self.segment.is_whole() {
            // The cluster-side checks are the merge's: other workers are still writing.
            drop(side.retention);
            return self
                .finish_segment(&cluster, declared, load, finished, clock)
                .await;
        }
        let checked = streams::check_streams(
            &declared.js,
            &declared.windows,
            &self.run_id,
            &load.ledgers,
            !finished.fault_events.is_empty(),
            None,
        )
        .await
        .map_err(AppError::environment)?;
        let retention_checks = side.retention.finish().await;
        // Every node's copy of each stream against the others (a follower can say it is current
        // and still hold fewer messages than its leader), wherever the nodes' monitoring answers.
        let replica_checks = if self.cancel.is_cancelled() {
            Vec::new()
        } else {
            let streams: Vec<&str> = declared.windows.iter().map(|w| w.stream).collect();
            replicas::check(&cluster.endpoints(), &streams, REPLICAS_WITHIN).await
        };
        let replica_reads = if self.cancel.is_cancelled() {
            Vec::new()
        } else {
            replica_read::where_replicas_may_differ(
                &declared.js,
                &checked.counts,
                &replica_checks,
                &finished.fault_events,
            )
            .await
        };
        // A production-profile cluster's security probes, after the stream checks: a profile
        // loosened on purpose lets a probe's message into a stream.
        let security_check = if self.cancel.is_cancelled() {
            None
        } else {
            security::audit(
                &cluster.endpoints(),
                &cluster.rogue_vantage(),
                &self.run_dir.join("security-probe"),
            )
            .await
        };
        // A replica still behind its leader a bound after the reverts: a warning in the report.
        let stuck_replicas = if finished.fault_events.is_empty() || self.cancel.is_cancelled() {
            Vec::new()
        } else {
            stuck::after_faults(&cluster, finished.reverted_at, STUCK_BOUND).await
        };
        // The drill last: it destroys the cluster every check above read.
        let recovery = match drill {
            Some(drill) if !self.cancel.is_cancelled() => Some(
                drill
                    .recover(
                        &cluster,
                        &declared.js,
                        &self.run_id,
                        &load.ledgers,
                        &declared.windows,
                    )
                    .await,
            ),
            _ => None,
        };
        let mut report = self
            .build_report(
                &cluster,
                declared,
                load,
                finished,
                ClusterChecks {
                    streams: checked,
                    retention: retention_checks,
                    replicas: replica_checks,
                    replica_reads,
                    security: security_check,
                },
            )
            .await;
        report.stuck_replicas = stuck_replicas;
        if let Some(recovery) = recovery {
            report.add_disaster_recovery(recovery);
        }
        self.write_report(&report)?;
        Ok(self.exit_status(&report))
    }

    /// The run's checkpoints, from what the declare phase found (`None`: `--checkpoint off`).
    fn checkpointer(
        &self,
        cluster: &Cluster,
        declared: &Declared,
    ) -> Option<checkpoint::Checkpointer> {
        let every = self.checkpoint_every?;
        let context = checkpoint::CheckpointContext {
            scenario: self.scenario.clone(),
            source: self.source.clone(),
            run_id: self.run_id.clone(),
            run_dir: self.run_dir.clone(),
            started_at: self.started_at,
            backend: cluster.kind(),
            servers: declared.urls.clone(),
            nats_server_version: declared.nats_server_version.clone(),
            windows: checkpoint::windows_of(&declared.windows),
        };
        let owned = (0..self.scenario.publishers)
            .filter(|index| self.segment.owns(*index))
            .count();
        let publishers = self.scenario.traffic.len() * owned;
        Some(checkpoint::Checkpointer::new(context, every, publishers))
    }

    /// Phase 1; `None` when the run was interrupted while the cluster started.
    async fn start_cluster(&mut self) -> Result<Option<Cluster>, AppError> {
        let cluster = tokio::select! {
            cluster = self.cluster_plan.start(&self.run_dir) => cluster?,
            _ = self.cancel.cancelled() => return Ok(None),
        };
        self.cluster = Some(cluster.clone());
        Ok(Some(cluster))
    }

    /// Phase 3: the consumers (with Postgres), the chaos schedule and the retention sampler.
    async fn start_side_tasks(
        &mut self,
        cluster: &Cluster,
        declared: &Declared,
    ) -> Result<SideTasks, AppError> {
        let scenario = &self.scenario;
        eprintln!(
            "aivo-load: cluster ready ({}), {} events intended over {}",
            declared.urls.join(","),
            scenario.intended_total(),
            crate::units::format_duration(scenario.duration)
        );
        let consumers = RunConsumers::start(
            &scenario.consumers,
            &self.run_dir,
            &declared.urls.join(","),
            &consumers::ConsumerAuth::of(cluster)?,
            declared.js.clone(),
            declared.stream_names(),
            None,
        )
        .await?;
        self.chaos = run_hook::start(
            &scenario.chaos,
            cluster,
            &self.run_dir,
            scenario.duration,
            scenario.seed,
            consumers.as_ref().and_then(|c| c.indexer_slot()),
            self.cancel.child_token(),
        )?;
        let retention = retention::RetentionSampler::start(
            declared.js.clone(),
            setup::declared_retention(scenario, &declared.stream_names()),
            tokio::time::Instant::now(),
        );
        Ok(SideTasks {
            consumers,
            retention,
        })
    }

    /// Phase 5: faults reverted, the indexer caught up (unless interrupted), the DLQ read back.
    async fn finish_side_tasks(
        &mut self,
        declared: &Declared,
        consumers: Option<RunConsumers>,
        load: &LoadOutcome,
    ) -> Finished {
        // The handle is dropped only once its reverts are done: a second Ctrl-C that ends the
        // phases here leaves it for teardown to finish.
        let fault_events = match self.chaos.as_mut() {
            Some(chaos) => chaos.finish().await,
            None => Vec::new(),
        };
        self.chaos = None;
        let reverted_at = std::time::Instant::now();
        let consumed = match consumers {
            Some(consumers) => {
                eprintln!("aivo-load: waiting for the indexer to catch up");
                // After Ctrl-C the run ends now: no waiting for the indexer (an abort-on-fail
                // threshold also cancels the load, but the run still checks what was written).
                let catch_up = !self.cancel.is_cancelled() || load.aborted.is_some();
                consumers
                    .finish(
                        &declared.js,
                        &self.run_id,
                        &load.ledgers,
                        load.start_wall,
                        tokio::time::Instant::now(),
                        catch_up,
                    )
                    .await
            }
            None => ConsumersOutcome::default(),
        };
        let dlq = if self.scenario.consumers.any() && !self.cancel.is_cancelled() {
            Some(
                setup::check_dlq(&self.scenario, declared, &self.run_id, &load.ledgers, None).await,
            )
        } else {
            None
        };
        Finished {
            fault_events,
            consumed,
            dlq,
            reverted_at,
        }
    }

    /// Phase 7, first half: every figure and check into one report.
    async fn build_report(
        &self,
        cluster: &Cluster,
        declared: Declared,
        load: LoadOutcome,
        finished: Finished,
        checks: ClusterChecks,
    ) -> RunReport {
        let Declared {
            js,
            clients,
            urls,
            nats_server_version,
            ..
        } = declared;
        drop(js);
        for client in clients.all() {
            let _ = client.clone().drain().await;
        }
        build_report(ReportInputs {
            scenario: &self.scenario,
            backend: cluster.kind(),
            rate_scale: self.rate_scale,
            run_id: &self.run_id,
            started_at: self.started_at,
            servers: urls,
            nats_server_version,
            outcome: load,
            stream_checks: checks.streams.counts,
            ledger_checks: checks.streams.ledgers,
            retention_checks: checks.retention,
            replica_checks: checks.replicas,
            replica_reads: checks.replica_reads,
            security: checks.security,
            sync_interval_applied: !self.cluster_plan.keep && cluster.kind().manages_faults(),
            fault_events: finished.fault_events,
            indexer: finished.consumed.indexer,
            dlq: finished.dlq,
            indexer_lag: finished.consumed.lag,
            end_to_end: finished.consumed.end_to_end,
            interrupted: self.was_interrupted(),
            state: report::RunState::Finished,
            checkpoint_s: None,
        })
    }

    /// A worker's end: `partial.json` for `report merge`, and its own report files (state
    /// "partial": its figures, no cluster-side checks). Exit 0 when its load ran to the end.
    async fn finish_segment(
        &self,
        cluster: &Cluster,
        declared: Declared,
        load: LoadOutcome,
        finished: Finished,
        clock: Result<clock::ClockOffset, String>,
    ) -> Result<ExitStatus, AppError> {
        if let Err(why) = &clock {
            eprintln!("aivo-load: no clock offset measured: {why}");
        }
        let partial = partial::WorkerPartial::of(
            partial::PartialContext {
                segment: self.segment,
                run_id: &self.run_id,
                source: &self.source,
                started_at: self.started_at,
                backend: cluster.kind().name(),
                servers: declared.urls.clone(),
                nats_server_version: declared.nats_server_version.clone(),
                clock,
                windows: checkpoint::windows_of(&declared.windows),
                interrupted: self.was_interrupted(),
            },
            &load,
        );
        partial
            .write(&self.run_dir)
            .with_context(|| {
                format!(
                    "cannot write the partial report into {}",
                    self.run_dir.display()
                )
            })
            .map_err(AppError::environment)?;
        let aborted = load.aborted.is_some();
        let mut report = self
            .build_report(
                cluster,
                declared,
                load,
                finished,
                ClusterChecks {
                    streams: streams::StreamChecks::default(),
                    retention: Vec::new(),
                    replicas: Vec::new(),
                    replica_reads: Vec::new(),
                    security: None,
                },
            )
            .await;
        report.run.state = report::RunState::Partial;
        report.verdict.passed = false;
        report.verdict.failures.insert(
            0,
            format!(
                "partial: segment {} of run {}; `aivo-load report merge` judges the whole run",
                self.segment, self.run_id
            ),
        );
        self.write_report(&report)?;
        Ok(if self.was_interrupted() {
            ExitStatus::Interrupted
        } else if aborted {
            ExitStatus::Failed
        } else {
            ExitStatus::Success
        })
    }

    /// Phase 7, second half: the report files and the terminal summary.
    fn write_report(&self, report: &RunReport) -> Result<(), AppError> {
        report
            .write_to(&self.run_dir)
            .with_context(|| format!("cannot write the report into {}", self.run_dir.display()))
            .map_err(AppError::environment)?;
        print!(
            "{}",
            report::terminal::render(report, &self.run_dir.display().to_string())
        );
        Ok(())
    }

    fn exit_status(&self, report: &RunReport) -> ExitStatus {
        if self.was_interrupted() {
            ExitStatus::Interrupted
        } else if report.verdict.passed {
            ExitStatus::Success
        } else {
            ExitStatus::Failed
        }
    }

    fn was_interrupted(&self) -> bool {
        self.signals.interrupted()
    }

    /// After the phases, on every path: faults still active are reverted (an error path that
    /// skipped phase 5), then the run's own cluster stops (logs saved, stores removed); a kept one
    /// is left running.
    async fn teardown(&mut self) {
        if let Some(chaos) = self.chaos.as_mut() {
            chaos.finish().await;
        }
        self.chaos = None;
        if let Some(cluster) = self.cluster.take() {
            cluster.shutdown(&cluster_dir(&self.run_dir)).await;
        }
        self.live = None;
    }
}

impl Drop for RunContext {
    /// Only a panic gets here with the cluster still held: see [`Cluster::abandon`].
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.abandon(&cluster_dir(&self.run_dir));
        }
    }
}

fn cluster_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("cluster")
}

/// What the signal watcher saw.
#[derive(Clone)]
pub struct Signals {
    interrupted: Arc<Mutex<bool>>,
    /// Cancelled by a second Ctrl-C / SIGTERM: stop at once, once faults are reverted.
    pub stop_now: CancellationToken,
}

impl Signals {
    /// Whether a first Ctrl-C or SIGTERM came.
    pub fn interrupted(&self) -> bool {
        self.interrupted.lock().map(|flag| *flag).unwrap_or(true)
    }
}

/// Cancels `cancel` on the first Ctrl-C or SIGTERM and remembers that it did (a graceful stop:
/// faults reverted, figures so far reported); a second one cancels [`Signals::stop_now`].
pub fn watch_signals(cancel: CancellationToken) -> Signals {
    let signals = Signals {
        interrupted: Arc::new(Mutex::new(false)),
        stop_now: CancellationToken::new(),
    };
    let seen = signals.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut interrupts = 0;
        loop {
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
                _ = cancel.cancelled(), if interrupts == 0 => return,
            }
            interrupts += 1;
            if interrupts == 1 {
                eprintln!(
                    "\naivo-load: interrupted; stopping publishers, reverting faults and reporting \
                     (Ctrl-C again to stop at once, still reverting faults)"
                );
                if let Ok(mut flag) = seen.interrupted.lock() {
                    *flag = true;
                }
                cancel.cancel();
            } else {
                eprintln!(
                    "\naivo-load: interrupted again; stopping now: faults are reverted, no checks, \
                     no report beyond the last checkpoint"
                );
                seen.stop_now.cancel();
                return;
            }
        }
    });
    signals
}

/// "20261127T110444Z".
pub fn compact_utc(t: OffsetDateTime) -> String {
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
