//! The chaos side of a run: starts the scenario's schedule next to the load on the run's clock, and
//! at the end reverts what is active and writes the events for the timeline (`chaos.json` beside
//! `faults.jsonl` in the run dir). `run` calls [`start`] and [`RunChaos::finish`]; nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::engine::{ChaosEngine, FaultEvent};
use super::schedule::{self, ChaosPlan};
use super::ChaosError;
use crate::cluster::Cluster;
use crate::consumers::ConsumerSlot;

/// How long a run waits at its end for the reverts to finish (a restarted node catching up).
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

/// The schedule of a running scenario.
#[derive(Debug)]
pub struct RunChaos {
    task: Option<JoinHandle<Vec<FaultEvent>>>,
    cancel: CancellationToken,
    run_dir: PathBuf,
}

/// Starts the plan's faults on a clock starting now; `None` when the plan has none.
pub fn start(
    plan: &ChaosPlan,
    cluster: &Cluster,
    run_dir: &Path,
    duration: Duration,
    seed: u64,
    indexer: Option<Arc<ConsumerSlot>>,
    cancel: CancellationToken,
) -> Result<Option<RunChaos>, ChaosError> {
    if plan.is_empty() {
        return Ok(None);
    }
    if !cluster.kind().manages_faults() {
        return Err(ChaosError::Usage(
            "this scenario has [[chaos]] but the run has no managed cluster".into(),
        ));
    }
    let engine = Arc::new(
        ChaosEngine::new(
            cluster.clone(),
            &run_dir.join("faults.jsonl"),
            Instant::now(),
            seed,
        )?
        .with_indexer(indexer),
    );
    let faults = plan.timeline(duration, seed);
    for fault in &faults {
        eprintln!(
            "aivo-load: chaos at {:?}: {} on {}{}",
            fault.at,
            fault.fault.name(),
            fault.target,
            fault
                .hold
                .map(|h| format!(" for {h:?}"))
                .unwrap_or_default()
        );
    }
    let task = tokio::spawn(schedule::play(engine, faults, duration, cancel.clone()));
    Ok(Some(RunChaos {
        task: Some(task),
        cancel,
        run_dir: run_dir.to_path_buf(),
    }))
}

impl RunChaos {
    /// Ends the schedule, reverts what is active, writes `chaos.json` and returns every event.
    ///
    /// Dropped before it completes (a second Ctrl-C), it leaves the schedule's task in place,
    /// still reverting: calling it again waits for the same reverts.
    pub async fn finish(&mut self) -> Vec<FaultEvent> {
        self.cancel.cancel();
        let Some(task) = self.task.as_mut() else {
            return Vec::new();
        };
        let joined = tokio::time::timeout(FINISH_TIMEOUT, task).await;
        self.task = None;
        let events = match joined {
            Ok(Ok(events)) => events,
            Ok(Err(err)) => {
                eprintln!("aivo-load: the chaos schedule failed: {err}; run `aivo-load heal`");
                Vec::new()
            }
            Err(_) => {
                eprintln!("aivo-load: reverting faults took over {FINISH_TIMEOUT:?}; run `aivo-load heal`");
                Vec::new()
            }
        };
        let path = self.run_dir.join("chaos.json");
        if let Ok(text) = serde_json::to_string_pretty(&events) {
            if let Err(err) = std::fs::write(&path, text + "\n") {
                eprintln!("aivo-load: cannot write {}: {err}", path.display());
            }
        }
        events
    }
}

impl Drop for RunChaos {
    fn drop(&mut self) {
        // A run that ends early (an error) still ends its faults: the play task reverts on cancel.
        self.cancel.cancel();
    }
}
