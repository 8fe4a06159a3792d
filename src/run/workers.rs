//! `run SCENARIO --workers N`: one machine standing in for N. The run starts its cluster once and
//! declares the streams, starts the scenario's consumers (Postgres, indexer, analytics), then N
//! workers of this binary, each `run --segment i/N --no-chaos --no-consumers` against that cluster
//! as an external one, all sharing the run id and one `--start-at` a few seconds ahead. At that
//! second 0 it starts the scenario's chaos on its own cluster (the one process that can apply
//! faults to it), so faults, consumers and load share one clock. It waits for the workers,
//! reverts the faults, and merges their partial reports (`merge.rs`) into the run dir, finishing
//! the consumers with every worker's ledgers and making the cluster-side checks itself; then tears
//! the cluster down.
//!
//! Where the workers run is the backend's (`cluster::workers`): processes on this machine, or
//! containers on a docker cluster's client network. A worker that dies is not retried and does
//! not stop the others: the merge names its segment and fails the verdict with "worker lost".
//! Ctrl-C / SIGTERM is passed on to the workers (each stops its publishers and still writes its
//! partial report). Processes die with the run (`PR_SET_PDEATHSIG`); containers are removed when
//! they end, by their handle's `Drop`, or with the compose project. On a production-profile
//! cluster each worker is given the profile's dir (`--profile-dir`): its publishers connect as
//! their domain's user, its admin connection as the admin.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use time::OffsetDateTime;

use super::consumers::{ConsumerAuth, RunConsumers};
use super::merge::{merge_run, Coordinator, MergePlan};
use super::{setup, RunContext};
use crate::chaos::run_hook;
use crate::cluster::workers::{WorkerCredentials, WorkerLaunch};
use crate::exit::{AppError, ExitStatus};

/// How far ahead of the spawn the workers' common start is: long enough for each to connect,
/// declare the streams and probe its clock on a loaded 2-core machine (three debug-build workers
/// declaring at once took 7 s here: 4 s left them all starting late, their first events overdue).
const START_LEAD: Duration = Duration::from_secs(10);

/// How long after the scenario's end a worker may still take before it is given up on (lost).
const WORKER_MARGIN: Duration = Duration::from_secs(180);

impl RunContext {
    /// The phases of a `--workers N` run (see the module header).
    pub(super) async fn coordinate(&mut self, count: u32) -> Result<ExitStatus, AppError> {
        let scenario = self.scenario.clone();
        eprintln!(
            "aivo-load: {} — {} ({count} workers)",
            scenario.name, scenario.description
        );
        let Some(cluster) = self.start_cluster().await? else {
            return Ok(ExitStatus::Interrupted);
        };
        let urls = cluster.client_urls().join(",");
        let auth = cluster
            .client_auth(&crate::security::Role::Admin)
            .map_err(|e| AppError::environment(anyhow!("{e}")))?;
        // How the workers connect: on a production-profile cluster as each role's own user of
        // the profile (`--profile-dir`), on a secured external one with the coordinator's client
        // options; by the files' paths either way, never their contents (a password goes in the
        // worker's environment, NATS_PASSWORD).
        let credentials = WorkerCredentials::of(&cluster.endpoints().security, &auth)
            .map_err(|e| AppError::environment(anyhow!("{e}")))?;
        tokio::select! {
            prepared = cluster.prepare_workers() => prepared?,
            _ = self.cancel.cancelled() => return Ok(ExitStatus::Interrupted),
        }
        let declared = setup::declare(&scenario, &cluster).await?;
        let start_at = OffsetDateTime::now_utc() + START_LEAD;
        let zero = tokio::time::Instant::now() + START_LEAD;
        let consumers = RunConsumers::start(
            &scenario.consumers,
            &self.run_dir,
            &declared.urls.join(","),
            &ConsumerAuth::of(&cluster)?,
            declared.js.clone(),
            declared.stream_names(),
            Some(zero),
        )
        .await?;
        let start_text = start_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| AppError::environment(anyhow!("{e}")))?;
        // Absolute: a docker backend bind-mounts the run dir into its worker containers.
        let run_dir = std::fs::canonicalize(&self.run_dir).map_err(|e| {
            AppError::environment(anyhow!("cannot resolve {}: {e}", self.run_dir.display()))
        })?;
        let reports_dir = run_dir.parent().unwrap_or(Path::new("/")).to_path_buf();
        let scenario_file = Path::new(&self.source.name_or_path);
        let scenario_file = scenario_file
            .is_file()
            .then(|| std::fs::canonicalize(scenario_file).ok())
            .flatten();
        let scenario_arg = scenario_file.as_ref().map_or_else(
            || self.source.name_or_path.clone(),
            |file| file.display().to_string(),
        );
        let args = (1..=count)
            .map(|index| {
                let mut args: Vec<String> = vec![
                    "run".into(),
                    scenario_arg.clone(),
                    "--backend".into(),
                    "external".into(),
                    "--segment".into(),
                    format!("{index}/{count}"),
                    "--run-id".into(),
                    self.run_id.clone(),
                    "--start-at".into(),
                    start_text.clone(),
                    "--reports-dir".into(),
                    reports_dir.display().to_string(),
                    "--rate-scale".into(),
                    self.source.rate_scale.to_string(),
                    "--checkpoint".into(),
                    "off".into(),
                    // This run applies the faults and runs the consumers: workers drive load only.
                    "--no-chaos".into(),
                    "--no-consumers".into(),
                ];
                if let Some(duration) = self.source.duration_s {
                    args.extend(["--duration".into(), format!("{duration}s")]);
                }
                if let Some(seed) = self.source.seed {
                    args.extend(["--seed".into(), seed.to_string()]);
                }
                args.extend(credentials.args.iter().cloned());
                args
            })
            .collect();
        let launch = WorkerLaunch {
            args,
            run_dir,
            scenario_file,
            read_only: credentials.files,
            password: auth.password.clone(),
        };
        let fleet = tokio::select! {
            fleet = cluster.launch_workers(&launch) => fleet?,
            _ = self.cancel.cancelled() => return Ok(ExitStatus::Interrupted),
        };
        // Every worker ends its load by the scenario's end; the margin covers the drain, the
        // read-back and writing the partial report on a loaded machine.
        let deadline = START_LEAD + self.scenario.duration + WORKER_MARGIN;
        let waited = fleet.wait(&self.cancel, deadline);
        tokio::pin!(waited);
        // The faults start at the workers' second 0 (unless every worker is already done).
        let codes = tokio::select! {
            codes = &mut waited => Some(codes),
            _ = tokio::time::sleep_until(zero) => None,
        };
        let codes = match codes {
            Some(codes) => codes,
            None => {
                if !self.cancel.is_cancelled() {
                    self.chaos = run_hook::start(
                        &scenario.chaos,
                        &cluster,
                        &self.run_dir,
                        scenario.duration,
                        scenario.seed,
                        consumers.as_ref().and_then(|c| c.indexer_slot()),
                        self.cancel.child_token(),
                    )?;
                }
                waited.await
            }
        };
        for (index, code) in codes.iter().enumerate() {
            if *code != Some(0) {
                eprintln!(
                    "aivo-load: worker {}/{count} ended with {}",
                    index + 1,
                    code.map_or("a signal".to_string(), |c| format!("exit code {c}"))
                );
            }
        }
        // Reverted before the merge's checks, as a run reverts before its own; the handle stays in
        // the context until its reverts are done (teardown finishes them otherwise).
        let fault_events = match self.chaos.as_mut() {
            Some(chaos) => chaos.finish().await,
            None => Vec::new(),
        };
        self.chaos = None;
        let coordinator = Coordinator {
            cluster: &cluster,
            declared: &declared,
            scenario: &scenario,
            consumers,
            fault_events,
            reverted_at: std::time::Instant::now(),
            load_end: (zero + scenario.duration).min(tokio::time::Instant::now()),
            sync_interval_applied: !self.cluster_plan.keep && cluster.kind().manages_faults(),
            interrupted: self.was_interrupted(),
            probe_dir: self.run_dir.join("security-probe"),
        };
        let merged = merge_run(
            MergePlan {
                inputs: vec![self.run_dir.clone()],
                out: Some(self.run_dir.clone()),
                server: Some(urls),
                auth,
                clock_tolerance: Duration::from_millis(50),
                backend: Some(cluster.kind()),
                postgres_url: None,
                monitor: Vec::new(),
            },
            Some(coordinator),
        )
        .await?;
        for client in declared.clients.all() {
            let _ = client.clone().drain().await;
        }
        Ok(if self.was_interrupted() {
            ExitStatus::Interrupted
        } else {
            merged
        })
    }
}
