//! A cluster held open for several loads in a row: the steps of a capacity search.
//!
//! The same phases as a run, minus chaos and the checks: start the cluster, declare the scenario's
//! streams, optionally start the indexer (so a step can watch its lag), then any number of
//! [`LoadSession::step`]s, each a full load phase (publishers, schedule, histograms, sampler) under
//! its own run id, and [`LoadSession::close`]. A session tears its cluster down like a run does:
//! on `close`, and through `Drop` after a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::consumers::RunConsumers;
use super::load::drive_load;
use super::setup::{self, Declared};
use crate::cluster::{Cluster, ClusterPlan};
use crate::exit::AppError;
use crate::load::ledger::PublisherLedger;
use crate::load::metrics::{IntervalStats, SubjectTable};
use crate::report::TimelineRow;
use crate::scenario::Scenario;

/// What one step of a session measured.
pub struct StepOutcome {
    /// One row per second of the step, from its own second 0.
    pub timeline: Vec<TimelineRow>,
    /// The figures of the seconds from the step's `measure_from` on.
    pub measured: IntervalStats,
    /// The whole step's figures.
    pub cumulative: IntervalStats,
    pub ledgers: Vec<PublisherLedger>,
    /// Per-subject counts and payload sizes.
    pub subjects: SubjectTable,
    pub elapsed: Duration,
}

/// An open cluster with its streams declared.
pub struct LoadSession {
    cluster: Option<Cluster>,
    declared: Declared,
    consumers: Option<RunConsumers>,
    dir: PathBuf,
}

impl LoadSession {
    /// Starts (or attaches to) the cluster of `plan` and declares `scenario`'s streams; starts the
    /// indexer when the scenario asks for it. `dir` receives the cluster's logs and Postgres.
    pub async fn open(
        plan: &ClusterPlan,
        scenario: &Scenario,
        dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Option<Self>, AppError> {
        let cluster = tokio::select! {
            cluster = plan.start(dir) => cluster?,
            _ = cancel.cancelled() => return Ok(None),
        };
        let mut session = LoadSession {
            cluster: Some(cluster.clone()),
            declared: match setup::declare(scenario, &cluster).await {
                Ok(declared) => declared,
                Err(e) => {
                    cluster.shutdown(&dir.join("cluster")).await;
                    return Err(e);
                }
            },
            consumers: None,
            dir: dir.to_path_buf(),
        };
        let consumers = match super::consumers::ConsumerAuth::of(&cluster) {
            Ok(auth) => {
                RunConsumers::start(
                    &scenario.consumers,
                    dir,
                    &session.declared.urls.join(","),
                    &auth,
                    session.declared.js.clone(),
                    session.declared.stream_names(),
                    None,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match consumers {
            Ok(consumers) => session.consumers = consumers,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        }
        Ok(Some(session))
    }

    /// The cluster's kind, for the report.
    pub fn backend(&self) -> Option<crate::cluster::BackendKind> {
        self.cluster.as_ref().map(Cluster::kind)
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    pub fn client_urls(&self) -> &[String] {
        &self.declared.urls
    }

    pub fn nats_server_version(&self) -> &str {
        &self.declared.nats_server_version
    }

    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.declared.js
    }

    /// The streams and consumers as the session declared them.
    pub fn topology(&self) -> &crate::topology::Topology {
        &self.declared.topology
    }

    /// The streams the session's scenario writes.
    pub fn stream_names(&self) -> Vec<&'static str> {
        self.declared.stream_names()
    }

    /// True when the indexer runs beside the steps.
    pub fn has_indexer(&self) -> bool {
        self.consumers
            .as_ref()
            .is_some_and(|c| c.indexer_slot().is_some())
    }

    /// One load phase of `scenario` (which must write only the session's streams) under `run_id`.
    pub async fn step(
        &self,
        scenario: &Arc<Scenario>,
        run_id: &str,
        measure_from: Duration,
        cancel: CancellationToken,
    ) -> Result<StepOutcome, AppError> {
        let nodes = self
            .cluster
            .as_ref()
            .map(|c| c.endpoints().nodes)
            .unwrap_or_default();
        let load = drive_load(
            scenario,
            &self.declared.clients,
            &nodes,
            run_id,
            measure_from,
            cancel,
            super::load::RunFiles::default(),
        )
        .await?;
        Ok(StepOutcome {
            timeline: load.timeline,
            measured: load.measured,
            cumulative: load.cumulative,
            ledgers: load.ledgers,
            subjects: load.subjects,
            elapsed: load.elapsed,
        })
    }

    /// Stops the consumers and the session's own cluster (logs kept in `dir/cluster`).
    pub async fn close(mut self) {
        if let Some(consumers) = self.consumers.take() {
            let _ = consumers
                .finish(
                    &self.declared.js,
                    "",
                    &[],
                    time::OffsetDateTime::now_utc(),
                    tokio::time::Instant::now(),
                    false,
                )
                .await;
        }
        for client in self.declared.clients.all() {
            let _ = client.clone().drain().await;
        }
        if let Some(cluster) = self.cluster.take() {
            cluster.shutdown(&self.dir.join("cluster")).await;
        }
    }
}

impl Drop for LoadSession {
    /// Only a panic gets here with the cluster still held: see [`Cluster::abandon`].
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.abandon(&self.dir.join("cluster"));
        }
    }
}
