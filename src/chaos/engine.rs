//! Applying and reverting faults: journal first, then the cluster, then proof from the monitoring
//! endpoints. Faults stay on the engine's active list until reverted; `guard.rs` reverts whatever is
//! left when the engine's owner ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::Mutex;

use super::corrupt_store::{self, CorruptSpec};
use super::effect::Effect;
use super::journal::{self, Cleanup, FaultJournal, JournalEntry};
use super::{kill_indexer, ChaosError, Fault, Step, Target, EFFECT_TIMEOUT, RECOVERY_TIMEOUT};
use crate::cluster::{monitor, Cluster, ControlOp};
use crate::consumers::ConsumerSlot;

/// Whether a timeline event applies or reverts a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Apply,
    Revert,
}

/// One fault applied or reverted, for the run timeline and report.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    pub id: String,
    pub phase: Phase,
    pub fault: String,
    pub target: String,
    pub node: String,
    /// Seconds since the engine's clock started (the run's start) when the change was requested.
    pub requested_s: f64,
    /// Seconds since the clock started when the effect (apply) or a whole cluster (revert) was seen.
    pub confirmed_s: Option<f64>,
    pub confirmed: bool,
    /// What was observed, or why it was not.
    pub detail: String,
    /// E.g. how storage was filled.
    pub note: Option<String>,
    /// An error that stopped the change (the fault may be partly applied; it stays active).
    pub error: Option<String>,
}

/// Prints a fault event as it happens, for the live run log.
pub fn announce(event: &FaultEvent) {
    eprintln!(
        "aivo-load: chaos {} {} on {} at {:.1}s: {} ({})",
        match event.phase {
            Phase::Apply => "applied",
            Phase::Revert => "reverted",
        },
        event.fault,
        event.node,
        event.confirmed_s.unwrap_or(event.requested_s),
        if event.confirmed {
            "confirmed"
        } else {
            "NOT confirmed"
        },
        event.detail
    );
}

/// A fault on the active list.
#[derive(Debug, Clone)]
struct ActiveFault {
    id: String,
    fault: String,
    target: String,
    node: String,
    revert: Vec<ControlOp>,
}

#[derive(Debug)]
struct EngineState {
    journal: FaultJournal,
    active: Vec<ActiveFault>,
    next: u64,
    rng: ChaCha8Rng,
}

/// Applies faults to one cluster and reverts them; see the module header.
#[derive(Debug)]
pub struct ChaosEngine {
    cluster: Cluster,
    clock: Instant,
    state: Mutex<EngineState>,
    /// The run's indexer process, for `kill-indexer` (see `kill_indexer.rs`).
    indexer: Option<Arc<ConsumerSlot>>,
}

impl ChaosEngine {
    /// An engine journaling to `journal`, timing events from `clock`, choosing `random` targets
    /// with `seed`.
    pub fn new(
        cluster: Cluster,
        journal: &std::path::Path,
        clock: Instant,
        seed: u64,
    ) -> Result<Self, ChaosError> {
        Ok(Self {
            cluster,
            clock,
            state: Mutex::new(EngineState {
                journal: FaultJournal::open(journal)?,
                active: Vec::new(),
                next: 1,
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
            indexer: None,
        })
    }

    /// Lets `kill-indexer` reach the run's indexer.
    pub fn with_indexer(mut self, indexer: Option<Arc<ConsumerSlot>>) -> Self {
        self.indexer = indexer;
        self
    }

    /// The cluster faults go to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn since_clock(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.clock).as_secs_f64()
    }

    /// Ids of the active faults, oldest first.
    pub async fn active(&self) -> Vec<String> {
        self.state
            .lock()
            .await
            .active
            .iter()
            .map(|f| f.id.clone())
            .collect()
    }

    /// Resolves the target, journals the revert, applies the fault and waits for its effect.
    /// A fault whose effect is not seen stays applied (and active): the event says so.
    pub async fn inject(&self, fault: &Fault, target: &Target) -> Result<FaultEvent, ChaosError> {
        if *fault == Fault::KillIndexer {
            return self.kill_indexer(target).await;
        }
        if *target == Target::All && *fault != Fault::PowerLoss {
            return Err(ChaosError::Usage(format!(
                "target all takes power-loss only (a coordinated power failure), not {}",
                fault.name()
            )));
        }
        let endpoints = self.cluster.endpoints();
        let mut state = self.state.lock().await;
        let node = target.resolve(&endpoints, &mut state.rng).await?;
        let names: Vec<String> = endpoints.nodes.iter().map(|n| n.name.clone()).collect();
        let plan = fault.plan(&node, &names);
        let cleanup = match fault {
            Fault::FillStorage {
                mode: crate::cluster::storage::FillMode::Tmpfs,
            } => self
                .cluster
                .store_dir(&node)
                .map(|store| vec![Cleanup::Mount { store }])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let active = self.begin(
            &mut state,
            fault.name(),
            target,
            &node,
            plan.revert.clone(),
            cleanup,
        )?;
        let requested = Instant::now();
        tracing::info!(id = %active.id, fault = fault.name(), %node, "applying fault");
        let mut error = None;
        let mut losses: Vec<String> = Vec::new();
        for step in &plan.steps {
            let outcome = match step {
                Step::Op(op) => self.cluster.apply(op).await.map_err(ChaosError::from),
                Step::AwaitWhole => {
                    let seen = Effect::Whole.wait(&endpoints, RECOVERY_TIMEOUT).await;
                    if seen.confirmed {
                        Ok(())
                    } else {
                        Err(ChaosError::Usage(format!(
                            "cluster not whole between steps: {}",
                            seen.detail
                        )))
                    }
                }
                Step::Await(effect) => {
                    effect.wait(&endpoints, EFFECT_TIMEOUT).await;
                    Ok(())
                }
                Step::CorruptStore(spec) => {
                    let seed = state.rng.random::<u64>();
                    self.corrupt_store(&mut state, &active.id, &node, spec, seed)
                        .await
                }
                Step::PowerLoss { node } => self
                    .power_loss(&mut state, &active.id, node)
                    .map(|loss| losses.push(format!("{node}: {}", loss.describe()))),
            };
            if let Err(err) = outcome {
                error = Some(err.to_string());
                break;
            }
        }
        let seen = if error.is_none() {
            plan.effect.wait(&endpoints, EFFECT_TIMEOUT).await
        } else {
            super::effect::Confirmation {
                confirmed: false,
                after: requested.elapsed(),
                detail: "not applied".into(),
            }
        };
        let note = match (losses.is_empty(), plan.note) {
            (true, note) => note,
            (false, note) => Some(
                std::iter::once(format!("power loss: {}", losses.join("; ")))
                    .chain(note)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        self.outcome(&mut state, active, None, requested, seen, error, note)
    }

    /// The `power-loss` step: the down node's store rolled back to what it had fsynced, what was
    /// discarded journaled and said on the terminal.
    fn power_loss(
        &self,
        state: &mut EngineState,
        id: &str,
        node: &str,
    ) -> Result<crate::durable_fs::PowerLoss, ChaosError> {
        let loss = self
            .cluster
            .power_loss(node)
            .map_err(|e| ChaosError::Usage(format!("power-loss on {node}: {e}")))?;
        state.journal.append(&JournalEntry::PowerLost {
            id: id.to_string(),
            at: journal::now(),
            node: node.to_string(),
            loss,
        })?;
        tracing::info!(id, %node, ?loss, "power loss");
        eprintln!("aivo-load: power-loss on {node}: {}", loss.describe());
        Ok(loss)
    }

    /// The `corrupt-store` step: the down node's store files of the spec's class damaged on this
    /// machine, every change journaled (before the node starts again) and said on the terminal.
    async fn corrupt_store(
        &self,
        state: &mut EngineState,
        id: &str,
        node: &str,
        spec: &CorruptSpec,
        seed: u64,
    ) -> Result<(), ChaosError> {
        let store = self.cluster.store_on_host(node).ok_or_else(|| {
            ChaosError::Usage(format!(
                "corrupt-store needs {node}'s store on this machine (the local and docker \
                 backends have it); {} has none",
                self.cluster.name()
            ))
        })?;
        let group = if spec.files.in_raft_group() {
            monitor::stream_raft_group(&self.cluster.endpoints(), &spec.stream).await
        } else {
            None
        };
        let files = corrupt_store::files_of(&store, &spec.stream, spec.files, group.as_deref())
            .map_err(|e| ChaosError::Usage(format!("corrupt-store on {node}: {e}")))?;
        let failed = |e: corrupt_store::CorruptError| {
            ChaosError::Usage(format!("corrupt-store on {node}: {e}"))
        };
        let changes =
            corrupt_store::plan_changes(&store, &files, spec.mode, seed).map_err(failed)?;
        let summary = corrupt_store::summary(&changes);
        // Journaled (and synced) before a byte changes, like every fault.
        state.journal.append(&JournalEntry::Changed {
            id: id.to_string(),
            at: journal::now(),
            node: node.to_string(),
            store: store.clone(),
            seed,
            changes: changes.clone(),
            note: "cannot be reverted: heal only starts the node".into(),
        })?;
        corrupt_store::apply(&store, &changes).map_err(failed)?;
        tracing::info!(id, %node, %spec, seed, "{summary}");
        eprintln!("aivo-load: corrupt-store on {node}: {spec}: {summary} (seed {seed})");
        Ok(())
    }

    /// Reverts one active fault and waits (up to [`RECOVERY_TIMEOUT`]) for a whole cluster.
    pub async fn revert(&self, id: &str, by: &str) -> Result<FaultEvent, ChaosError> {
        self.revert_within(id, by, RECOVERY_TIMEOUT).await
    }

    /// Reverts one active fault and waits up to `within` for a whole cluster.
    pub async fn revert_within(
        &self,
        id: &str,
        by: &str,
        within: Duration,
    ) -> Result<FaultEvent, ChaosError> {
        let mut state = self.state.lock().await;
        let position = state
            .active
            .iter()
            .position(|f| f.id == id)
            .ok_or_else(|| ChaosError::UnknownFault(id.to_string()))?;
        let fault = state.active[position].clone();
        if fault.fault == kill_indexer::NAME {
            return self.restart_indexer(state, position, by).await;
        }
        let requested = Instant::now();
        tracing::info!(id, fault = %fault.fault, node = %fault.node, "reverting fault");
        let mut error = None;
        for op in &fault.revert {
            if let Err(err) = self.cluster.apply(op).await {
                error.get_or_insert(err.to_string());
            }
        }
        let seen = Effect::Whole.wait(&self.cluster.endpoints(), within).await;
        // Reverted even if not (yet) whole: the operations ran; the event carries the verdict.
        if error.is_none() {
            state.active.remove(position);
        }
        self.outcome(&mut state, fault, Some(by), requested, seen, error, None)
    }

    /// `kill-indexer`: journaled like any fault (with nothing for `heal` to revert: the indexer dies
    /// with the run), applied to the run's indexer process.
    async fn kill_indexer(&self, target: &Target) -> Result<FaultEvent, ChaosError> {
        let slot = self.indexer.clone().ok_or_else(|| {
            ChaosError::Usage("kill-indexer needs a run with `[consumers] indexer = true`".into())
        })?;
        let mut state = self.state.lock().await;
        let active = self.begin(
            &mut state,
            kill_indexer::NAME,
            target,
            "indexer",
            Vec::new(),
            Vec::new(),
        )?;
        let requested = Instant::now();
        let (seen, error) = kill_indexer::apply(&slot).await;
        self.outcome(&mut state, active, None, requested, seen, error, None)
    }

    /// Reverts `kill-indexer`: a new indexer, confirmed when it runs and its lag falls. The engine
    /// is not held while the lag falls (that can take as long as the indexer is behind, and it
    /// asks nothing of the cluster): faults due meanwhile go ahead on time.
    async fn restart_indexer(
        &self,
        mut state: tokio::sync::MutexGuard<'_, EngineState>,
        position: usize,
        by: &str,
    ) -> Result<FaultEvent, ChaosError> {
        // Off the active list while it is reverted, so that no second revert (the run's end
        // reverting everything) restarts it twice; back on it if the restart failed.
        let fault = state.active.remove(position);
        drop(state);
        let requested = Instant::now();
        let (seen, error) = match &self.indexer {
            Some(slot) => kill_indexer::revert(slot, EFFECT_TIMEOUT).await,
            None => (
                super::effect::Confirmation {
                    confirmed: false,
                    after: Duration::ZERO,
                    detail: "not restarted".into(),
                },
                Some("no indexer in this run".to_string()),
            ),
        };
        let mut state = self.state.lock().await;
        if error.is_some() {
            state.active.push(fault.clone());
        }
        self.outcome(&mut state, fault, Some(by), requested, seen, error, None)
    }

    /// Journals a fault before it is applied (with how to revert it) and puts it on the active list.
    fn begin(
        &self,
        state: &mut EngineState,
        fault: &str,
        target: &Target,
        node: &str,
        revert: Vec<ControlOp>,
        cleanup: Vec<Cleanup>,
    ) -> Result<ActiveFault, ChaosError> {
        let id = format!("{}-{}", std::process::id(), state.next);
        state.next += 1;
        state.journal.append(&JournalEntry::Begin {
            id: id.clone(),
            at: journal::now(),
            fault: fault.to_string(),
            target: target.to_string(),
            node: node.to_string(),
            owner: self.cluster.reference(),
            revert: revert.clone(),
            cleanup,
        })?;
        let active = ActiveFault {
            id,
            fault: fault.to_string(),
            target: target.to_string(),
            node: node.to_string(),
            revert,
        };
        state.active.push(active.clone());
        Ok(active)
    }

    /// Journals how an apply (`by` None) or a revert (`by` who) ended and gives its timeline event.
    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        state: &mut EngineState,
        fault: ActiveFault,
        by: Option<&str>,
        requested: Instant,
        seen: super::effect::Confirmation,
        error: Option<String>,
        note: Option<String>,
    ) -> Result<FaultEvent, ChaosError> {
        let detail = error.clone().unwrap_or_else(|| seen.detail.clone());
        let (entry, phase) = match by {
            None => (
                JournalEntry::Applied {
                    id: fault.id.clone(),
                    at: journal::now(),
                    confirmed: seen.confirmed,
                    detail,
                },
                Phase::Apply,
            ),
            Some(by) => (
                JournalEntry::Reverted {
                    id: fault.id.clone(),
                    at: journal::now(),
                    by: by.to_string(),
                    confirmed: seen.confirmed && error.is_none(),
                    detail,
                },
                Phase::Revert,
            ),
        };
        state.journal.append(&entry)?;
        Ok(FaultEvent {
            id: fault.id,
            phase,
            fault: fault.fault,
            target: fault.target,
            node: fault.node,
            requested_s: self.since_clock(requested),
            confirmed_s: seen
                .confirmed
                .then(|| self.since_clock(requested + seen.after)),
            confirmed: seen.confirmed,
            detail: seen.detail,
            note,
            error,
        })
    }

    /// The apply event of a fault that could not even start (its target did not resolve, the
    /// backend cannot do it): nothing changed, so nothing is journaled, but the run's faults check
    /// must see that the scenario's fault never happened.
    pub fn refused(
        &self,
        fault: &Fault,
        target: &Target,
        at: Duration,
        error: &dyn std::fmt::Display,
    ) -> FaultEvent {
        FaultEvent {
            id: format!("refused-{}-{}ms", fault.name(), at.as_millis()),
            phase: Phase::Apply,
            fault: fault.name().to_string(),
            target: target.to_string(),
            node: target.to_string(),
            requested_s: at.as_secs_f64(),
            confirmed_s: None,
            confirmed: false,
            detail: error.to_string(),
            note: None,
            error: Some(error.to_string()),
        }
    }

    /// Reverts every active fault, newest first.
    pub async fn revert_all(&self, by: &str) -> Vec<FaultEvent> {
        let mut events = Vec::new();
        let mut ids = self.active().await;
        ids.reverse();
        for id in ids {
            match self.revert(&id, by).await {
                Ok(event) => events.push(event),
                Err(err) => tracing::warn!(%id, "revert failed: {err}"),
            }
        }
        events
    }

    /// Seconds on the engine's clock now.
    pub fn now_s(&self) -> f64 {
        self.since_clock(Instant::now())
    }

    /// How long until `at` on the engine's clock.
    pub fn until(&self, at: Duration) -> Duration {
        (self.clock + at).saturating_duration_since(Instant::now())
    }
}
