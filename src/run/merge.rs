//! `aivo-load report merge DIR...`: the partial reports of a segmented run's workers made into one
//! report, the one a single very large machine would have written.
//!
//! 1. Finds the workers' dirs: a DIR holding `partial.json`, or a run dir holding
//!    `segment-I-of-N/` dirs (as `run --segment` lays them out). A segment dir without
//!    `partial.json`, or a segment of `1..=N` with no dir at all, is a **lost worker**.
//! 2. Merges exactly: counters summed, whole-run and per-subject HdrHistograms added, ledgers (one
//!    per publisher, numbered by the whole run) put together, the timeline aligned on the intended
//!    second (every worker counted from one `--start-at`), each second's percentiles from the sum
//!    of the workers' per-second histograms (`latency.hlog`), its target from the whole scenario.
//! 3. Runs the cluster-side checks once over every worker's ledgers, as the run itself would after
//!    its drain: the ledger read-back and stream counts of every stream, the retention limits. With
//!    a worker lost, its events are in the streams but in no ledger: the read-back leaves out every
//!    publisher without a ledger (as `report recover` does past a checkpoint) and the stream count,
//!    which needs the whole run, is not made. The verdict then fails with "worker lost", naming the
//!    segment; never with "events lost" for events nobody reported.
//! 4. Judges the thresholds on the merged figures and writes one normal report dir, with
//!    `run.workers`, and a merged `latency.hlog`.
//!
//! Under `run --workers N` the run that started the cluster merges (a [`Coordinator`]): it ran the
//! scenario's consumers and chaos beside the workers (who drive load only), so the merge also
//! finishes the consumers with every worker's ledgers (the indexer's catch-up and its read-back of
//! Postgres, the DLQ read), takes the faults from the coordinator's journal, and makes the checks
//! only a cluster's owner can (every replica of each stream, the per-replica read-back where they
//! may differ, stuck replicas after the faults, the production profile's security probes). A
//! plain `report merge` has none of those inputs: a worker runs no consumers (`--no-consumers`),
//! and the merge knows the cluster's client URLs, not its monitoring endpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::checkpoint::WindowState;
use super::clock::{self, ClockOffset};
use super::consumers::{ConsumersOutcome, RunConsumers};
use super::load::LoadOutcome;
use super::partial::WorkerPartial;
use super::segment::Segment;
use super::setup::{self, Declared};
use super::verdict::{build_report, ReportInputs};
use crate::chaos::FaultEvent;
use crate::checks::no_loss::LedgerCheck;
use crate::checks::retention::RetentionCheck;
use crate::checks::stream_count::StreamCount;
use crate::checks::streams::{self, StreamWindow};
use crate::checks::{dlq, replica_read, replicas, security};
use crate::cluster::{BackendKind, Cluster, ClusterEndpoints, NodeEndpoints};
use crate::exit::{AppError, ExitStatus};
use crate::load::metrics::{IntervalStats, LatencySet, SubjectTable};
use crate::report::{self, hlog, RunState, TimelineRow, WorkerSegment, WorkersReport};
use crate::scenario::Scenario;
use crate::security::ClientAuth;

/// A validated `report merge`.
#[derive(Debug)]
pub struct MergePlan {
    pub inputs: Vec<PathBuf>,
    /// Where the merged report goes; default: the run dir holding the segment dirs.
    pub out: Option<PathBuf>,
    /// The cluster's client URLs; default: those the workers used.
    pub server: Option<String>,
    pub auth: ClientAuth,
    /// Workers' clock offsets further apart than this are warned about.
    pub clock_tolerance: Duration,
    /// The backend of the cluster the workers ran against, when the merge knows it (`run
    /// --workers` started that cluster); `None`: what the workers recorded (`external`).
    pub backend: Option<BackendKind>,
    /// `--postgres-url`: where the scenario's consumers, run beside the cluster, write (then
    /// their checks are made).
    pub postgres_url: Option<String>,
    /// `--monitor`: the nodes' monitoring endpoints (then the replicas are compared).
    pub monitor: Vec<String>,
}

/// One worker as the merge found it.
enum Worker {
    Reported {
        dir: PathBuf,
        partial: Box<WorkerPartial>,
    },
    /// A dir with no partial report (the worker died before writing it).
    Lost {
        dir: PathBuf,
        segment: Option<Segment>,
    },
}

/// What `run --workers` hands the merge: the cluster the workers ran against and what it ran
/// beside them (see the module header).
pub(super) struct Coordinator<'a> {
    pub(super) cluster: &'a Cluster,
    pub(super) declared: &'a Declared,
    /// The scenario as the coordinator runs it (`--no-chaos` applied), judged instead of the one
    /// the workers' source names.
    pub(super) scenario: &'a Scenario,
    pub(super) consumers: Option<RunConsumers>,
    pub(super) fault_events: Vec<FaultEvent>,
    /// When the last fault was reverted (the stuck-replica bound counts from here).
    pub(super) reverted_at: std::time::Instant,
    /// The load's intended end: the indexer's catch-up is timed from it.
    pub(super) load_end: tokio::time::Instant,
    /// Whether the run's `[cluster] sync_interval` reached the nodes (a cluster it started).
    pub(super) sync_interval_applied: bool,
    /// After Ctrl-C: no catch-up wait, no cluster checks.
    pub(super) interrupted: bool,
    /// Where the security probes keep their files.
    pub(super) probe_dir: PathBuf,
}

/// What the coordinator's side adds to the report.
#[derive(Default)]
struct CoordinatedChecks {
    consumed: ConsumersOutcome,
    dlq: Option<dlq::DlqCheck>,
    replicas: Vec<replicas::ReplicaCheck>,
    replica_reads: Vec<replica_read::ReplicaRead>,
    security: Option<security::SecurityCheck>,
    stuck: Vec<crate::cluster::stuck::StuckReplica>,
}

/// See the module header.
pub async fn merge_command(plan: MergePlan) -> Result<ExitStatus, AppError> {
    merge_run(plan, None).await
}

/// The merge, with the coordinator's side when `run --workers` merges.
pub(super) async fn merge_run(
    plan: MergePlan,
    mut coordinator: Option<Coordinator<'_>>,
) -> Result<ExitStatus, AppError> {
    let usage = |e: String| AppError::usage(anyhow!(e));
    let (workers, default_out) = find_workers(&plan.inputs).map_err(usage)?;
    let out = plan.out.clone().or(default_out).ok_or_else(|| {
        usage("report merge: give --out DIR (the inputs are not one run's directory)".into())
    })?;
    let mut merged = Merged::of(workers).map_err(usage)?;
    merged.judge_clocks(plan.clock_tolerance);
    let first = &merged.reported[0].1;
    let scenario = match &coordinator {
        Some(c) => c.scenario.clone(),
        None => first.source.resolve().map_err(usage)?,
    };
    for line in merged.workers.warnings.iter() {
        eprintln!("aivo-load: warning: {line}");
    }
    eprintln!(
        "aivo-load: merging run {}: {} of {} segments reported{}",
        first.run_id,
        merged.reported.len(),
        merged.count,
        if merged.lost.is_empty() {
            String::new()
        } else {
            format!(", lost: {}", merged.lost.join("; "))
        }
    );
    let outcome = merged.outcome(&scenario).map_err(usage)?;
    let servers = match &plan.server {
        Some(server) => server.split(',').map(str::to_owned).collect(),
        None => first.servers.clone(),
    };
    let windows = merged_windows(&merged.reported, &scenario);
    let servers_text = servers.join(",");
    let js = crate::topology::connect_as(&servers_text, &plan.auth)
        .await
        .map_err(|e| format!("{servers_text}: {e}"));
    // With a worker lost, only the publishers that reported are judged, each up to what it
    // attempted; the lost ones' events are in the streams (and Postgres, and the DLQ) and in no
    // ledger.
    let up_to: Option<BTreeMap<u32, u64>> = (!merged.lost.is_empty()).then(|| {
        outcome
            .ledgers
            .iter()
            .map(|l| (l.publisher, l.attempted))
            .collect()
    });
    // The consumers first, as a run finishes them before its checks: the indexer catches up on
    // every worker's events, then `events` and the DLQ are judged against all their ledgers.
    let mut coordinated = CoordinatedChecks::default();
    if let Some(c) = coordinator.as_mut() {
        if let Some(consumers) = c.consumers.take() {
            let consumers = match &up_to {
                Some(last) => consumers.judging_only(last.clone()),
                None => consumers,
            };
            eprintln!("aivo-load: waiting for the indexer to catch up");
            coordinated.consumed = consumers
                .finish(
                    &c.declared.js,
                    &first.run_id,
                    &outcome.ledgers,
                    outcome.start_wall,
                    c.load_end,
                    !c.interrupted,
                )
                .await;
        }
        if scenario.consumers.any() && !c.interrupted {
            coordinated.dlq = Some(
                setup::check_dlq(
                    &scenario,
                    c.declared,
                    &first.run_id,
                    &outcome.ledgers,
                    up_to.as_ref(),
                )
                .await,
            );
        }
    } else if let (Some(url), Ok(js)) = (&plan.postgres_url, &js) {
        if scenario.consumers.any() {
            let streams = windows.iter().map(|w| w.stream).collect();
            let consumers = RunConsumers::beside(&scenario.consumers, url, streams);
            coordinated
                .consumers_beside(
                    js,
                    consumers,
                    &scenario,
                    &first.run_id,
                    &outcome,
                    up_to.as_ref(),
                )
                .await
                .map_err(usage)?;
        }
    }
    let start_wall = outcome.start_wall;
    let fault_events = match coordinator.as_mut() {
        Some(c) => std::mem::take(&mut c.fault_events),
        None => merged
            .reported
            .iter()
            .find(|(_, p)| p.segment.runs_chaos())
            .map(|(dir, _)| super::recover::fault_events(&dir.join("faults.jsonl"), start_wall))
            .unwrap_or_default(),
    };
    let checked = match &js {
        Ok(js) => {
            let scope = ReadBackScope {
                up_to: up_to.as_ref(),
                after_faults: !fault_events.is_empty(),
            };
            cluster_checks(js, &scenario, &first.run_id, &windows, &outcome, scope).await
        }
        Err(e) => Err(e.clone()),
    };
    let (checked, unchecked) = match checked {
        Ok(checked) => (checked, None),
        Err(why) => (
            (Vec::new(), Vec::new(), Vec::new()),
            Some(format!("the cluster-side checks did not run: {why}")),
        ),
    };
    let (stream_checks, ledger_checks, retention_checks) = checked;
    match (&coordinator, &js) {
        (Some(c), _) if !c.interrupted => {
            coordinated
                .cluster_side(c, &stream_checks, &windows, &fault_events)
                .await;
        }
        (None, Ok(js)) if !plan.monitor.is_empty() && unchecked.is_none() => {
            let endpoints = endpoints_of(&plan.monitor).await.map_err(usage)?;
            coordinated
                .compare_replicas(&endpoints, js, &stream_checks, &windows, &fault_events)
                .await;
        }
        _ => {}
    }
    let started_at = merged
        .reported
        .iter()
        .filter_map(|(_, p)| OffsetDateTime::parse(&p.started_at, &Rfc3339).ok())
        .min()
        .unwrap_or(start_wall);
    let interrupted = merged.reported.iter().any(|(_, p)| p.interrupted);
    let mut report = build_report(ReportInputs {
        scenario: &scenario,
        backend: plan
            .backend
            .unwrap_or_else(|| first.backend.parse().unwrap_or(BackendKind::External)),
        rate_scale: first.source.rate_scale,
        run_id: &first.run_id,
        started_at,
        servers,
        nats_server_version: first.nats_server_version.clone(),
        outcome,
        stream_checks,
        ledger_checks,
        retention_checks,
        replica_checks: coordinated.replicas,
        replica_reads: coordinated.replica_reads,
        security: coordinated.security,
        sync_interval_applied: coordinator
            .as_ref()
            .is_some_and(|c| c.sync_interval_applied),
        fault_events,
        indexer: coordinated.consumed.indexer,
        dlq: coordinated.dlq,
        indexer_lag: coordinated.consumed.lag,
        end_to_end: coordinated.consumed.end_to_end,
        interrupted,
        state: RunState::Finished,
        checkpoint_s: None,
    });
    report.stuck_replicas = coordinated.stuck;
    if let Some(why) = unchecked {
        report.verdict.passed = false;
        report.verdict.failures.push(why);
    }
    for lost in merged.lost.iter().rev() {
        report.verdict.passed = false;
        report.verdict.failures.insert(
            0,
            format!("worker lost: {lost}; its segment is incomplete and its events are not judged"),
        );
    }
    report.run.workers = Some(merged.workers.clone());
    std::fs::create_dir_all(&out)
        .map_err(|e| AppError::environment(anyhow!("cannot create {}: {e}", out.display())))?;
    report
        .write_to(&out)
        .map_err(|e| AppError::environment(anyhow!("cannot write into {}: {e}", out.display())))?;
    merged.write_hlog(&out.join(hlog::FILE_NAME), start_wall);
    print!(
        "{}",
        report::terminal::render(&report, &out.display().to_string())
    );
    Ok(if report.verdict.passed {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

impl CoordinatedChecks {
    /// The checks only the cluster's owner can make, after the stream checks (as a run makes
    /// them): every node's copy of each stream, the per-replica read-back where they may differ,
    /// the security probes, and replicas still behind a bound after the reverts.
    async fn cluster_side(
        &mut self,
        c: &Coordinator<'_>,
        counts: &[StreamCount],
        windows: &[StreamWindow],
        fault_events: &[FaultEvent],
    ) {
        let endpoints = c.cluster.endpoints();
        self.compare_replicas(&endpoints, &c.declared.js, counts, windows, fault_events)
            .await;
        self.security = security::audit(&endpoints, &c.cluster.rogue_vantage(), &c.probe_dir).await;
        if !fault_events.is_empty() {
            self.stuck =
                crate::checks::stuck::after_faults(c.cluster, c.reverted_at, super::STUCK_BOUND)
                    .await;
        }
    }

    /// Every node's copy of each stream against the others, and each replica read one by one
    /// where they may differ.
    async fn compare_replicas(
        &mut self,
        endpoints: &ClusterEndpoints,
        js: &async_nats::jetstream::Context,
        counts: &[StreamCount],
        windows: &[StreamWindow],
        fault_events: &[FaultEvent],
    ) {
        let names: Vec<&str> = windows.iter().map(|w| w.stream).collect();
        self.replicas = replicas::check(endpoints, &names, super::REPLICAS_WITHIN).await;
        self.replica_reads =
            replica_read::where_replicas_may_differ(js, counts, &self.replicas, fault_events).await;
    }

    /// `report merge --postgres-url`: the scenario's consumers ran beside the cluster; waits for
    /// their catch-up, then judges `events` and the DLQ against every worker's ledger.
    async fn consumers_beside(
        &mut self,
        js: &async_nats::jetstream::Context,
        mut consumers: RunConsumers,
        scenario: &Scenario,
        run_id: &str,
        outcome: &LoadOutcome,
        up_to: Option<&BTreeMap<u32, u64>>,
    ) -> Result<(), String> {
        let topology = setup::scenario_topology(scenario).map_err(|e| format!("{e}"))?;
        if let Some(last) = up_to {
            consumers = consumers.judging_only(last.clone());
        }
        // The catch-up counts from the load's intended end.
        let end = outcome.start_wall + scenario.duration;
        let ended_ago = (OffsetDateTime::now_utc() - end)
            .try_into()
            .unwrap_or(Duration::ZERO);
        let now = tokio::time::Instant::now();
        let load_end = now.checked_sub(ended_ago).unwrap_or(now);
        eprintln!("aivo-load: waiting for the indexer beside the cluster to catch up");
        self.consumed = consumers
            .finish(
                js,
                run_id,
                &outcome.ledgers,
                outcome.start_wall,
                load_end,
                true,
            )
            .await;
        self.dlq = Some(
            setup::check_dlq_from(scenario, js, &topology, 1, run_id, &outcome.ledgers, up_to)
                .await,
        );
        Ok(())
    }
}

/// `--monitor`: each node's monitoring endpoint, named by its `/varz` server name.
async fn endpoints_of(monitor: &[String]) -> Result<ClusterEndpoints, String> {
    let mut nodes = Vec::new();
    for url in monitor {
        let url = url.trim_end_matches('/').to_string();
        let varz = crate::cluster::monitor::varz(&url)
            .await
            .map_err(|e| format!("--monitor {url}: {e}"))?;
        nodes.push(NodeEndpoints {
            name: varz.server_name.clone(),
            client_url: String::new(),
            monitor_url: url,
        });
    }
    Ok(ClusterEndpoints {
        nodes,
        security: None,
    })
}

/// The workers under `inputs`, and the merged report's default dir (the run dir, when the inputs
/// are one run dir of segment dirs).
fn find_workers(inputs: &[PathBuf]) -> Result<(Vec<Worker>, Option<PathBuf>), String> {
    let mut workers = Vec::new();
    let mut default_out = None;
    for input in inputs {
        if let Some(partial) = WorkerPartial::read(input)? {
            workers.push(Worker::Reported {
                dir: input.clone(),
                partial: Box::new(partial),
            });
            continue;
        }
        let mut segment_dirs: Vec<(Segment, PathBuf)> = std::fs::read_dir(input)
            .map_err(|e| format!("cannot read {}: {e}", input.display()))?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                segment_of_dir(&name).map(|segment| (segment, entry.path()))
            })
            .filter(|(_, path)| path.is_dir())
            .collect();
        segment_dirs.sort_by_key(|(segment, _)| segment.index);
        if segment_dirs.is_empty() {
            match segment_of_dir(&input.file_name().unwrap_or_default().to_string_lossy()) {
                // A worker's own dir, left without its partial report.
                Some(segment) => workers.push(Worker::Lost {
                    dir: input.clone(),
                    segment: Some(segment),
                }),
                None => {
                    return Err(format!(
                        "{}: neither a worker's dir (partial.json) nor a run dir of \
                         segment-I-of-N dirs",
                        input.display()
                    ))
                }
            }
            continue;
        }
        if inputs.len() == 1 {
            default_out = Some(input.clone());
        }
        for (segment, dir) in segment_dirs {
            match WorkerPartial::read(&dir)? {
                Some(partial) => workers.push(Worker::Reported {
                    dir,
                    partial: Box::new(partial),
                }),
                None => workers.push(Worker::Lost {
                    dir,
                    segment: Some(segment),
                }),
            }
        }
    }
    Ok((workers, default_out))
}

/// `segment-2-of-3` → 2/3.
fn segment_of_dir(name: &str) -> Option<Segment> {
    let rest = name.strip_prefix("segment-")?;
    let (index, count) = rest.split_once("-of-")?;
    format!("{index}/{count}").parse().ok()
}

/// What the workers reported, checked to be one run.
struct Merged {
    count: u32,
    reported: Vec<(PathBuf, WorkerPartial)>,
    /// "segment 2/3 (reports/…/segment-2-of-3: no partial.json)".
    lost: Vec<String>,
    workers: WorkersReport,
}

impl Merged {
    fn of(workers: Vec<Worker>) -> Result<Self, String> {
        let mut reported: Vec<(PathBuf, WorkerPartial)> = Vec::new();
        let mut lost_dirs: BTreeMap<u32, PathBuf> = BTreeMap::new();
        let mut unnamed_lost = Vec::new();
        for worker in workers {
            match worker {
                Worker::Reported { dir, partial } => reported.push((dir, *partial)),
                Worker::Lost {
                    dir,
                    segment: Some(segment),
                } => {
                    lost_dirs.insert(segment.index, dir);
                }
                Worker::Lost { dir, segment: None } => unnamed_lost.push(dir),
            }
        }
        let Some((first_dir, first)) = reported.first() else {
            return Err("no worker reported: no partial.json in the given dirs".into());
        };
        let count = first.segment.count;
        for (dir, p) in &reported {
            let differs = |what: &str, a: &str, b: &str| {
                format!(
                    "{} and {} are not one run: {what} {a} vs {b}",
                    first_dir.display(),
                    dir.display()
                )
            };
            if p.run_id != first.run_id {
                return Err(differs("run id", &first.run_id, &p.run_id));
            }
            if p.segment.count != count {
                return Err(differs(
                    "segments",
                    &count.to_string(),
                    &p.segment.count.to_string(),
                ));
            }
            if p.source != first.source {
                return Err(differs(
                    "scenario",
                    &format!("{:?}", first.source),
                    &format!("{:?}", p.source),
                ));
            }
        }
        reported.sort_by_key(|(_, p)| p.segment.index);
        if let Some(pair) = reported
            .windows(2)
            .find(|w| w[0].1.segment.index == w[1].1.segment.index)
        {
            return Err(format!(
                "segment {} reported twice: {} and {}",
                pair[0].1.segment,
                pair[0].0.display(),
                pair[1].0.display()
            ));
        }
        let mut lost = Vec::new();
        let mut segments = Vec::new();
        for index in 1..=count {
            let segment = Segment { index, count };
            match reported.iter().find(|(_, p)| p.segment.index == index) {
                Some((dir, p)) => segments.push(WorkerSegment {
                    segment: segment.to_string(),
                    state: "complete".into(),
                    dir: Some(dir.display().to_string()),
                    clock_offset_ms: p.clock.map(|c| c.offset_ms),
                    acked: Some(p.ledgers.iter().map(|l| l.acked.len()).sum()),
                }),
                None => {
                    let dir = lost_dirs.get(&index);
                    lost.push(match dir {
                        Some(dir) => format!(
                            "segment {segment} ({}: no partial.json, the worker died or never \
                             finished)",
                            dir.display()
                        ),
                        None => format!("segment {segment} (no dir: the worker never reported)"),
                    });
                    segments.push(WorkerSegment {
                        segment: segment.to_string(),
                        state: "incomplete".into(),
                        dir: dir.map(|d| d.display().to_string()),
                        clock_offset_ms: None,
                        acked: None,
                    });
                }
            }
        }
        for dir in unnamed_lost {
            lost.push(format!("{} (no partial.json)", dir.display()));
        }
        let workers = WorkersReport {
            count,
            segments,
            clock_spread_ms: None,
            clock_tolerance_ms: 0.0,
            warnings: Vec::new(),
        };
        Ok(Self {
            count,
            reported,
            lost,
            workers,
        })
    }

    /// The clock check: a warning when two workers' offsets differ by more than `tolerance`, or a
    /// worker has none.
    fn judge_clocks(&mut self, tolerance: Duration) {
        let offsets: Vec<ClockOffset> = self.reported.iter().filter_map(|(_, p)| p.clock).collect();
        let tolerance_ms = tolerance.as_secs_f64() * 1000.0;
        self.workers.clock_tolerance_ms = tolerance_ms;
        self.workers.clock_spread_ms = (offsets.len() >= 2).then(|| clock::spread_ms(&offsets));
        if let Some(spread) = self.workers.clock_spread_ms.filter(|s| *s > tolerance_ms) {
            self.workers.warnings.push(format!(
                "the workers' clock offsets to the cluster differ by {spread:.1} ms (more than \
                 {tolerance_ms:.0} ms): their intended times, and so the latencies, are not on \
                 one clock"
            ));
        }
        for (_, p) in &self.reported {
            if p.clock.is_none() {
                self.workers.warnings.push(format!(
                    "segment {} measured no clock offset: {}",
                    p.segment,
                    p.clock_error.as_deref().unwrap_or("unknown")
                ));
            }
        }
    }

    /// The workers' loads as one.
    fn outcome(&self, scenario: &Scenario) -> Result<LoadOutcome, String> {
        let mut cumulative = IntervalStats::default();
        let mut subjects = SubjectTable::default();
        let mut ledgers = Vec::new();
        let mut start_wall: Option<OffsetDateTime> = None;
        let mut elapsed = Duration::ZERO;
        let mut aborted = None;
        for (_, p) in &self.reported {
            p.add_cumulative(&mut cumulative)?;
            p.add_subjects(&mut subjects)?;
            ledgers.extend(p.ledgers.iter().cloned());
            let wall = p.start_wall()?;
            start_wall = Some(start_wall.map_or(wall, |w| w.min(wall)));
            elapsed = elapsed.max(p.elapsed());
            if aborted.is_none() {
                aborted = p.aborted.clone();
            }
        }
        ledgers.sort_by_key(|l| l.publisher);
        let start_wall = start_wall.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Ok(LoadOutcome {
            ledgers,
            subjects,
            measured: cumulative.clone(),
            cumulative,
            timeline: self.timeline(scenario, start_wall),
            elapsed,
            aborted,
            in_flight: 0,
            start_wall,
        })
    }

    /// Each worker's per-second histograms, by the second of the merged run.
    fn seconds(&self, start_wall: OffsetDateTime) -> (BTreeMap<u64, LatencySet>, bool) {
        let mut seconds: BTreeMap<u64, LatencySet> = BTreeMap::new();
        let mut exact = true;
        for (dir, p) in &self.reported {
            let shift = p
                .start_wall()
                .map(|w| (w - start_wall).whole_seconds().max(0) as u64)
                .unwrap_or(0);
            match hlog::read_seconds(&dir.join(hlog::FILE_NAME)) {
                Ok(read) => {
                    for (second, set) in read {
                        seconds.entry(second + shift).or_default().merge(&set);
                    }
                }
                Err(e) => {
                    eprintln!("aivo-load: warning: {e}; its seconds' percentiles are left out");
                    exact = false;
                }
            }
        }
        (seconds, exact)
    }

    /// The timeline aligned on the intended second: counters summed, percentiles from the summed
    /// histograms, the target and phase of the whole scenario, the harness's CPU and memory summed
    /// over the workers (each a process of its own), the nodes as the first worker saw them.
    fn timeline(&self, scenario: &Scenario, start_wall: OffsetDateTime) -> Vec<TimelineRow> {
        let (histograms, _) = self.seconds(start_wall);
        let mut rows: BTreeMap<u64, TimelineRow> = BTreeMap::new();
        for (_, p) in &self.reported {
            let shift = p
                .start_wall()
                .map(|w| (w - start_wall).whole_seconds().max(0) as u64)
                .unwrap_or(0);
            for row in &p.timeline {
                let second = row.second + shift;
                let merged = rows.entry(second).or_insert_with(|| TimelineRow {
                    second,
                    nodes: row.nodes.clone(),
                    ..TimelineRow::default()
                });
                merged.attempted += row.attempted;
                merged.acked += row.acked;
                merged.failed += row.failed;
                merged.unknown += row.unknown;
                merged.never_sent += row.never_sent;
                for (kind, count) in &row.errors {
                    *merged.errors.entry(kind.clone()).or_default() += count;
                }
                merged.harness_cpu = sum_option(merged.harness_cpu, row.harness_cpu);
                merged.harness_rss_bytes =
                    sum_option(merged.harness_rss_bytes, row.harness_rss_bytes);
                merged.runtime_busy = max_option(merged.runtime_busy, row.runtime_busy);
                // Without a worker's histograms, the worst of the workers' figures.
                merged.p50_ms = merged.p50_ms.max(row.p50_ms);
                merged.p99_ms = merged.p99_ms.max(row.p99_ms);
                merged.max_ms = merged.max_ms.max(row.max_ms);
                merged.send_delay_p99_ms = merged.send_delay_p99_ms.max(row.send_delay_p99_ms);
                merged.service_time_p99_ms =
                    merged.service_time_p99_ms.max(row.service_time_p99_ms);
            }
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        rows.into_values()
            .map(|mut row| {
                let from = Duration::from_secs(row.second);
                row.phase = scenario.phase_at(from);
                row.target = scenario.intended_between(from, from + Duration::from_secs(1));
                if let Some(h) = histograms.get(&row.second) {
                    row.p50_ms = ms(h.latency.quantile_micros(0.5));
                    row.p99_ms = ms(h.latency.quantile_micros(0.99));
                    row.max_ms = ms(h.latency.max_micros());
                    row.send_delay_p99_ms = ms(h.send_delay.quantile_micros(0.99));
                    row.service_time_p99_ms = ms(h.service.quantile_micros(0.99));
                }
                row
            })
            .collect()
    }

    /// The merged `latency.hlog` (a file that cannot be written costs the file, not the report).
    fn write_hlog(&self, path: &Path, start_wall: OffsetDateTime) {
        let (seconds, _) = self.seconds(start_wall);
        let written = (|| -> std::io::Result<()> {
            let mut log = hlog::HlogWriter::create(path, std::time::SystemTime::from(start_wall))?;
            for (second, set) in &seconds {
                log.append(Duration::from_secs(*second), Duration::from_secs(1), set)?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            eprintln!("aivo-load: cannot write {}: {e}", path.display());
        }
    }
}

fn sum_option<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Where each stream stood before the load: the earliest position any worker saw (they all
/// declare before the common start, so they agree unless something else wrote meanwhile).
fn merged_windows(reported: &[(PathBuf, WorkerPartial)], scenario: &Scenario) -> Vec<StreamWindow> {
    let mut earliest: BTreeMap<String, WindowState> = BTreeMap::new();
    for (_, p) in reported {
        for window in &p.windows {
            let keep = earliest
                .get(&window.stream)
                .is_none_or(|w| window.before_last_seq < w.before_last_seq);
            if keep {
                earliest.insert(window.stream.clone(), window.clone());
            }
        }
    }
    earliest
        .values()
        .filter_map(|w| w.window(scenario))
        .collect()
}

type ClusterSide = (Vec<StreamCount>, Vec<LedgerCheck>, Vec<RetentionCheck>);

/// Which events the read-back judges, and whether faults ran (then each stream is first given its
/// leader and replicas back).
struct ReadBackScope<'a> {
    /// With a worker lost: only these publishers, each up to the sequence it attempted.
    up_to: Option<&'a BTreeMap<u32, u64>>,
    after_faults: bool,
}

/// The stream counts and ledger read-back over every worker's ledgers, and the retention limits.
async fn cluster_checks(
    js: &async_nats::jetstream::Context,
    scenario: &Scenario,
    run_id: &str,
    windows: &[StreamWindow],
    outcome: &LoadOutcome,
    scope: ReadBackScope<'_>,
) -> Result<ClusterSide, String> {
    let checked = streams::check_streams(
        js,
        windows,
        run_id,
        &outcome.ledgers,
        scope.after_faults,
        scope.up_to,
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    let retention_checks = setup::retention_from_one_sample(js, scenario, windows).await;
    Ok((checked.counts, checked.ledgers, retention_checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_dirs_are_named_by_their_segment() {
        assert_eq!(
            segment_of_dir("segment-2-of-3"),
            Some(Segment { index: 2, count: 3 })
        );
        assert_eq!(segment_of_dir("segment-4-of-3"), None);
        assert_eq!(segment_of_dir("merged"), None);
        assert_eq!(Segment { index: 2, count: 3 }.dir_name(), "segment-2-of-3");
    }

    /// A worker's partial report with `acked` events of publisher `segment - 1`.
    fn partial(run_id: &str, index: u32, count: u32) -> WorkerPartial {
        WorkerPartial {
            version: 1,
            segment: Segment { index, count },
            run_id: run_id.into(),
            source: super::super::checkpoint::ScenarioSource {
                name_or_path: "focus-burst".into(),
                duration_s: Some(4.0),
                rate_scale: 0.1,
                seed: None,
            },
            started_at: "2026-12-03T18:00:00Z".into(),
            start_wall: "2026-12-03T18:00:10Z".into(),
            backend: "external".into(),
            servers: Vec::new(),
            nats_server_version: String::new(),
            clock: Some(ClockOffset {
                offset_ms: f64::from(index) * 40.0,
                uncertainty_ms: 0.5,
            }),
            clock_error: None,
            windows: Vec::new(),
            elapsed_s: 4.0,
            aborted: None,
            interrupted: false,
            ledgers: Vec::new(),
            counts: Default::default(),
            histograms: BTreeMap::new(),
            subjects: Vec::new(),
            timeline: Vec::new(),
        }
    }

    fn reported(run_id: &str, index: u32, count: u32) -> Worker {
        Worker::Reported {
            dir: PathBuf::from(format!("r/segment-{index}-of-{count}")),
            partial: Box::new(partial(run_id, index, count)),
        }
    }

    #[test]
    fn a_segment_that_never_reported_is_named_lost_and_clocks_apart_are_warned() {
        let merged = Merged::of(vec![
            reported("r", 1, 3),
            Worker::Lost {
                dir: PathBuf::from("r/segment-2-of-3"),
                segment: Some(Segment { index: 2, count: 3 }),
            },
        ])
        .expect("one run");
        assert_eq!(merged.lost.len(), 2, "{:?}", merged.lost);
        assert!(merged.lost[0].starts_with("segment 2/3 (r/segment-2-of-3: no partial.json"));
        assert!(merged.lost[1].starts_with("segment 3/3 (no dir"));
        let states: Vec<&str> = merged
            .workers
            .segments
            .iter()
            .map(|s| s.state.as_str())
            .collect();
        assert_eq!(states, ["complete", "incomplete", "incomplete"]);

        let mut whole =
            Merged::of(vec![reported("r", 1, 2), reported("r", 2, 2)]).expect("one run");
        assert!(whole.lost.is_empty());
        whole.judge_clocks(Duration::from_millis(50));
        assert!(
            whole.workers.warnings.is_empty(),
            "40 ms apart: {:?}",
            whole.workers.warnings
        );
        whole.judge_clocks(Duration::from_millis(30));
        assert!(
            whole.workers.warnings[0].contains("differ by 40.0 ms"),
            "{:?}",
            whole.workers.warnings
        );
    }

    #[test]
    fn workers_of_different_runs_or_a_segment_twice_are_refused() {
        let error = Merged::of(vec![reported("a", 1, 2), reported("b", 2, 2)])
            .err()
            .expect("two runs");
        assert!(error.contains("not one run: run id a vs b"), "{error}");
        let error = Merged::of(vec![reported("a", 1, 2), reported("a", 1, 2)])
            .err()
            .expect("twice");
        assert!(error.contains("segment 1/2 reported twice"), "{error}");
        let error = Merged::of(Vec::new()).err().expect("nobody");
        assert!(error.contains("no worker reported"), "{error}");
    }
}
