//! `[[chaos]]` entries of a scenario, and the task that plays them during a run.
//!
//! ```toml
//! [[chaos]]
//! at = "50s"
//! fault = "kill"          # kill | stop | restart | pause | partition | latency | bandwidth
//!                         # | fill-storage | rolling-restart | kill-indexer | nemesis
//! target = "leader:FOCUS" # nats2 | random | leader:STREAM | meta-leader | indexer (kill-indexer)
//! for = "20s"             # revert after (default: at the end of the run)
//! recovery = "60s"        # after the revert, a whole cluster within this, or the faults check
//!                         # fails the run (default 60 s; nemesis entries take it too)
//! # per fault: latency = "200ms"; bandwidth = "256KiB/s"; mode = "one-way" (partition: isolate |
//! # one-way | bridge; fill-storage: tmpfs | max-file-store)
//!
//! [[chaos]]               # a seeded random nemesis for soaks
//! fault = "nemesis"
//! at = "10s"              # first fault
//! every = "20s"           # quiet time between faults
//! for = "10s"             # each fault held this long
//! faults = ["kill", "pause", "partition"]   # "kill-indexer" too, when the run has an indexer
//! targets = ["random", "meta-leader"]       # node targets (kill-indexer always hits the indexer)
//! ```
//!
//! The scenario model holds the raw [`ChaosEntry`]s and calls [`ChaosPlan::from_entries`]; a bad
//! entry is reported at its position in the file. [`play`] applies and reverts the faults at their
//! times on the run's clock and returns every [`FaultEvent`] for the timeline.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::corrupt_store::{CorruptMode, CorruptSpec};
use super::engine::{ChaosEngine, FaultEvent};
use super::guard::RevertGuard;
use super::nemesis::Nemesis;
use super::{Fault, ScheduledFault, Target, RECOVERY_TIMEOUT};
use crate::cluster::storage::FillMode;
use crate::units;

/// One `[[chaos]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosEntry {
    #[serde(default)]
    pub at: Option<String>,
    pub fault: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, rename = "for")]
    pub hold: Option<String>,
    #[serde(default)]
    pub latency: Option<String>,
    #[serde(default)]
    pub bandwidth: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    /// corrupt-store: the stream, the file class, and the mode's parameters.
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub files: Option<String>,
    #[serde(default)]
    pub fraction: Option<f64>,
    #[serde(default)]
    pub bits: Option<u32>,
    #[serde(default)]
    pub len: Option<String>,
    /// Nemesis: quiet time between faults.
    #[serde(default)]
    pub every: Option<String>,
    /// Nemesis: fault kinds to draw from.
    #[serde(default)]
    pub faults: Option<Vec<String>>,
    /// Nemesis: targets to draw from.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// Nemesis: no fault past this time.
    #[serde(default)]
    pub until: Option<String>,
    /// How long a revert may take to leave a whole cluster before the run fails.
    #[serde(default)]
    pub recovery: Option<String>,
}

/// A scenario's chaos: fixed faults and nemeses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChaosPlan {
    pub fixed: Vec<ScheduledFault>,
    pub nemeses: Vec<Nemesis>,
}

impl ChaosPlan {
    /// The plan with every fixed fault's time and hold multiplied by `ratio` (a run stretched or
    /// compressed with `--duration`); nemeses already spread over whatever duration they get.
    pub fn fitted(mut self, ratio: f64) -> Self {
        for fault in &mut self.fixed {
            fault.at = fault.at.mul_f64(ratio);
            fault.hold = fault.hold.map(|h| h.mul_f64(ratio));
        }
        self
    }
}

fn duration(field: &str, text: &Option<String>) -> Result<Option<Duration>, String> {
    text.as_deref()
        .map(|t| units::parse_duration(t).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

/// Builds a fault from its name and the entry's parameters.
/// A fault's parameters as a scenario entry or the command line gives them; each fault reads its
/// own and ignores the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultParams {
    pub latency: Option<String>,
    pub bandwidth: Option<String>,
    pub mode: Option<String>,
    /// corrupt-store: the stream whose files are damaged.
    pub stream: Option<String>,
    /// corrupt-store: which files (blocks, index, meta, raft, snapshots).
    pub files: Option<String>,
    /// corrupt-store: truncate's kept part, zero's start, 0..=1.
    pub fraction: Option<f64>,
    /// corrupt-store: bits flipped per file.
    pub bits: Option<u32>,
    /// corrupt-store: bytes zeroed per file (a size, e.g. 4KiB).
    pub len: Option<String>,
}

pub fn fault_from(name: &str, params: &FaultParams) -> Result<Fault, String> {
    let latency = params.latency.as_deref();
    let bandwidth = params.bandwidth.as_deref();
    let mode = params.mode.as_deref();
    Ok(match name {
        "kill" => Fault::Kill,
        "stop" => Fault::Stop,
        "restart" => Fault::Restart,
        "pause" => Fault::Pause,
        "rolling-restart" => Fault::RollingRestart,
        "kill-indexer" => Fault::KillIndexer,
        "partition" => Fault::Partition {
            mode: mode.map(str::parse).transpose()?.unwrap_or_default(),
        },
        "latency" => {
            let text = latency.unwrap_or("200ms");
            let latency = units::parse_duration(text).map_err(|e| format!("latency: {e}"))?;
            Fault::Latency {
                latency_ms: latency.as_millis().max(1) as u64,
            }
        }
        "bandwidth" => {
            let text = bandwidth.ok_or("bandwidth needs `bandwidth = \"256KiB/s\"`")?;
            let bytes = units::parse_size(text.trim_end_matches("/s"))
                .map_err(|e| format!("bandwidth: {e}"))?;
            if bytes == 0 {
                return Err("bandwidth must be above 0".into());
            }
            Fault::Bandwidth {
                bytes_per_second: bytes,
            }
        }
        "fill-storage" => Fault::FillStorage {
            mode: match mode {
                None => FillMode::for_this_process(),
                Some("tmpfs") => FillMode::Tmpfs,
                Some("max-file-store") => FillMode::MaxFileStore,
                Some(other) => {
                    return Err(format!(
                        "unknown fill-storage mode {other:?}: expected tmpfs or max-file-store"
                    ))
                }
            },
        },
        "power-loss" => Fault::PowerLoss,
        "corrupt-store" => {
            let len = params
                .len
                .as_deref()
                .map(|t| units::parse_size(t).map_err(|e| format!("len: {e}")))
                .transpose()?;
            Fault::CorruptStore(CorruptSpec {
                stream: params.stream.clone().ok_or(
                    "corrupt-store needs the stream whose files to damage (`stream = \"FOCUS\"`)",
                )?,
                files: params
                    .files
                    .as_deref()
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or_default(),
                mode: CorruptMode::parse(
                    mode.unwrap_or("bitflip"),
                    params.fraction,
                    params.bits,
                    len,
                )?,
            })
        }
        other => {
            return Err(format!(
                "unknown fault {other:?}: expected kill, stop, restart, pause, partition, latency, \
                 bandwidth, fill-storage, rolling-restart, kill-indexer, corrupt-store, power-loss or \
                 nemesis"
            ))
        }
    })
}

impl ChaosEntry {
    fn target(&self) -> Result<Target, String> {
        let default = if self.fault == "kill-indexer" {
            "indexer"
        } else {
            "random"
        };
        let target: Target = self.target.as_deref().unwrap_or(default).parse()?;
        match (self.fault == "kill-indexer", target == Target::Indexer) {
            (true, false) => Err(format!(
                "kill-indexer targets the indexer (`target = \"indexer\"`), not {target}"
            )),
            (false, true) => Err(format!(
                "target \"indexer\" takes fault = \"kill-indexer\" only, not {:?}",
                self.fault
            )),
            _ if target == Target::All && self.fault != "power-loss" => Err(format!(
                "target \"all\" takes fault = \"power-loss\" only (a coordinated power failure), \
                 not {:?}",
                self.fault
            )),
            _ => Ok(target),
        }
    }

    fn fault(&self, name: &str) -> Result<Fault, String> {
        fault_from(
            name,
            &FaultParams {
                latency: self.latency.clone(),
                bandwidth: self.bandwidth.clone(),
                mode: self.mode.clone(),
                stream: self.stream.clone(),
                files: self.files.clone(),
                fraction: self.fraction,
                bits: self.bits,
                len: self.len.clone(),
            },
        )
    }
}

impl ChaosPlan {
    /// Validates the entries; an error names the entry (0-based index) and what is wrong.
    pub fn from_entries(entries: &[ChaosEntry]) -> Result<Self, (usize, String)> {
        let mut plan = Self::default();
        for (i, entry) in entries.iter().enumerate() {
            let at = duration("at", &entry.at).map_err(|e| (i, e))?;
            let hold = duration("for", &entry.hold).map_err(|e| (i, e))?;
            let recovery = duration("recovery", &entry.recovery).map_err(|e| (i, e))?;
            if entry.fault == "nemesis" {
                let every = duration("every", &entry.every)
                    .map_err(|e| (i, e))?
                    .ok_or((i, "a nemesis needs `every`".to_string()))?;
                let names = entry
                    .faults
                    .clone()
                    .unwrap_or_else(|| vec!["kill".into(), "pause".into(), "partition".into()]);
                let faults = names
                    .iter()
                    .map(|n| entry.fault(n))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| (i, e))?;
                let targets = entry
                    .targets
                    .clone()
                    .unwrap_or_else(|| vec!["random".into()])
                    .iter()
                    .map(|t| t.parse())
                    .collect::<Result<Vec<Target>, _>>()
                    .map_err(|e| (i, e))?;
                if targets.contains(&Target::Indexer) {
                    return Err((
                        i,
                        "a nemesis draws node targets; add \"kill-indexer\" to `faults` to hit \
                         the indexer"
                            .into(),
                    ));
                }
                plan.nemeses.push(Nemesis {
                    start: at.unwrap_or_default(),
                    every,
                    hold: hold.unwrap_or(every),
                    faults,
                    targets,
                    until: duration("until", &entry.until).map_err(|e| (i, e))?,
                    recovery,
                });
                continue;
            }
            if entry.every.is_some() || entry.faults.is_some() || entry.targets.is_some() {
                return Err((
                    i,
                    "`every`, `faults` and `targets` belong to fault = \"nemesis\"".into(),
                ));
            }
            plan.fixed.push(ScheduledFault {
                at: at.ok_or((i, "a fault needs `at`".to_string()))?,
                fault: entry.fault(&entry.fault).map_err(|e| (i, e))?,
                target: entry.target().map_err(|e| (i, e))?,
                hold,
                recovery,
            });
        }
        Ok(plan)
    }

    /// True if the plan applies no fault.
    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.nemeses.is_empty()
    }

    /// Every fault kind the plan may apply (for the external-backend guardrail).
    pub fn faults(&self) -> Vec<&Fault> {
        self.fixed
            .iter()
            .map(|f| &f.fault)
            .chain(self.nemeses.iter().flat_map(|n| &n.faults))
            .collect()
    }

    /// Fixed faults and the nemeses' draws, by time.
    pub fn timeline(&self, duration: Duration, seed: u64) -> Vec<ScheduledFault> {
        let mut all = self.fixed.clone();
        for (i, nemesis) in self.nemeses.iter().enumerate() {
            all.extend(nemesis.expand(duration, seed.wrapping_add(i as u64)));
        }
        all.sort_by_key(|f| f.at);
        all
    }
}

/// Plays `faults` on the engine's clock until `end` (the end of the run) or until `cancel` fires,
/// then reverts whatever is still active (through the guard, which also reverts if this task is
/// dropped mid-way).
pub async fn play(
    engine: Arc<ChaosEngine>,
    faults: Vec<ScheduledFault>,
    end: Duration,
    cancel: CancellationToken,
) -> Vec<FaultEvent> {
    enum Action {
        Apply(usize),
        Revert(usize),
    }
    let guard = RevertGuard::new(engine.clone());
    // Pending actions in time order; an apply that succeeds queues its revert `hold` after the
    // later of its scheduled time and the moment it was really applied, so a fault delayed by a
    // slow revert before it (a cluster that took long to be whole again) is still held its full time.
    let mut actions: Vec<(Duration, Action)> = faults
        .iter()
        .enumerate()
        .map(|(i, fault)| (fault.at, Action::Apply(i)))
        .collect();
    let mut ids: Vec<Option<String>> = vec![None; faults.len()];
    let mut events = Vec::new();
    // Reverts that ask nothing of the cluster (a restarted indexer working off its lag) go on
    // beside the schedule, so that faults due meanwhile are not held up by them.
    let mut beside: tokio::task::JoinSet<Option<FaultEvent>> = tokio::task::JoinSet::new();
    // Of actions due at the same moment, reverts go first (a fault ending as another begins never
    // overlaps it), then the one queued first.
    let order =
        |(at, action): &(Duration, Action), k: usize| (*at, matches!(action, Action::Apply(_)), k);
    while let Some(next) = (0..actions.len()).min_by_key(|&k| order(&actions[k], k)) {
        let (at, action) = actions.remove(next);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(engine.until(at)) => {}
        }
        match action {
            Action::Apply(i) => {
                let applied_at = Duration::from_secs_f64(engine.now_s()).max(at);
                match engine.inject(&faults[i].fault, &faults[i].target).await {
                    Ok(event) => {
                        ids[i] = Some(event.id.clone());
                        super::engine::announce(&event);
                        events.push(event);
                        if let Some(hold) = faults[i].hold {
                            actions.push((applied_at + hold, Action::Revert(i)));
                        }
                    }
                    Err(err) => {
                        // Recorded, so the faults check fails the run: the scenario's fault
                        // never happened.
                        tracing::warn!(
                            "fault {} on {}: {err}",
                            faults[i].fault.name(),
                            faults[i].target
                        );
                        let event = engine.refused(&faults[i].fault, &faults[i].target, at, &err);
                        super::engine::announce(&event);
                        events.push(event);
                    }
                }
            }
            Action::Revert(i) => {
                if let Some(id) = ids[i].take() {
                    let within = faults[i].recovery.unwrap_or(RECOVERY_TIMEOUT);
                    let revert = revert_one(engine.clone(), id, "schedule", within);
                    if faults[i].fault == Fault::KillIndexer {
                        beside.spawn(revert);
                    } else {
                        events.extend(revert.await);
                    }
                }
            }
        }
    }
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(engine.until(end)) => {}
    }
    while let Some(joined) = beside.join_next().await {
        events.extend(joined.ok().flatten());
    }
    let by = if cancel.is_cancelled() {
        "interrupted"
    } else {
        "run end"
    };
    // Faults held to the end, newest first, each with its own recovery bound; the guard reverts
    // whatever is left with the default one.
    for (i, id) in ids.iter_mut().enumerate().rev() {
        if let (Some(id), Some(within)) = (id.take(), faults[i].recovery) {
            match engine.revert_within(&id, by, within).await {
                Ok(event) => {
                    super::engine::announce(&event);
                    events.push(event);
                }
                Err(err) => tracing::warn!(%id, "revert failed: {err}"),
            }
        }
    }
    let reverted = guard.finish(by).await;
    reverted.iter().for_each(super::engine::announce);
    events.extend(reverted);
    // In the order they were asked for (a revert that went on beside the schedule ended later).
    events.sort_by(|a, b| a.requested_s.total_cmp(&b.requested_s));
    events
}

/// One revert, announced; `None` (logged) when the fault is no longer active.
async fn revert_one(
    engine: Arc<ChaosEngine>,
    id: String,
    by: &'static str,
    within: Duration,
) -> Option<FaultEvent> {
    match engine.revert_within(&id, by, within).await {
        Ok(event) => {
            super::engine::announce(&event);
            Some(event)
        }
        Err(err) => {
            tracing::warn!(%id, "revert failed: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::PartitionMode;

    fn entry(toml_text: &str) -> ChaosEntry {
        toml::from_str(toml_text).expect("entry")
    }

    #[test]
    fn corrupt_store_entries_carry_their_stream_files_and_mode() {
        let plan = ChaosPlan::from_entries(&[entry(
            "at = \"30s\"\nfault = \"corrupt-store\"\ntarget = \"follower:FOCUS\"\n\
             stream = \"FOCUS\"\nfiles = \"raft\"\nmode = \"truncate\"\nfraction = 0.25",
        )])
        .expect("valid");
        assert_eq!(
            plan.faults(),
            vec![&Fault::CorruptStore(CorruptSpec {
                stream: "FOCUS".into(),
                files: crate::chaos::corrupt_store::FileClass::Raft,
                mode: CorruptMode::Truncate {
                    keep_per_mille: 250
                },
            })]
        );
        let no_stream = ChaosPlan::from_entries(&[entry(
            "at = \"30s\"\nfault = \"corrupt-store\"\ntarget = \"nats2\"",
        )]);
        assert!(
            no_stream.as_ref().is_err_and(|(_, e)| e.contains("stream")),
            "{no_stream:?}"
        );
        let bad_files = ChaosPlan::from_entries(&[entry(
            "at = \"30s\"\nfault = \"corrupt-store\"\nstream = \"FOCUS\"\nfiles = \"wal\"",
        )]);
        assert!(
            bad_files
                .as_ref()
                .is_err_and(|(_, e)| e.contains("blocks, index")),
            "{bad_files:?}"
        );
    }

    #[test]
    fn power_loss_takes_every_node_as_a_target_and_no_other_fault_does() {
        let plan = ChaosPlan::from_entries(&[entry(
            "at = \"30s\"\nfault = \"power-loss\"\ntarget = \"all\"",
        )])
        .expect("valid");
        assert_eq!(plan.faults(), vec![&Fault::PowerLoss]);
        assert_eq!(plan.fixed[0].target, Target::All);
        let kill_all =
            ChaosPlan::from_entries(&[entry("at = \"30s\"\nfault = \"kill\"\ntarget = \"all\"")]);
        assert!(
            kill_all
                .as_ref()
                .is_err_and(|(_, e)| e.contains("takes fault = \"power-loss\" only")),
            "{kill_all:?}"
        );
    }

    #[test]
    fn fixed_and_nemesis_entries_validate() {
        let plan = ChaosPlan::from_entries(&[
            entry("at = \"50s\"\nfault = \"kill\"\ntarget = \"leader:FOCUS\"\nfor = \"20s\""),
            entry("at = \"5s\"\nfault = \"latency\"\nlatency = \"150ms\"\ntarget = \"nats2\""),
            entry("at = \"5s\"\nfault = \"partition\"\nmode = \"one-way\""),
            entry("fault = \"nemesis\"\nevery = \"10s\"\nfaults = [\"pause\"]"),
        ])
        .expect("valid");
        assert_eq!(plan.fixed.len(), 3);
        assert_eq!(plan.fixed[0].hold, Some(Duration::from_secs(20)));
        assert_eq!(plan.fixed[1].fault, Fault::Latency { latency_ms: 150 });
        assert_eq!(
            plan.fixed[2].fault,
            Fault::Partition {
                mode: PartitionMode::OneWay
            }
        );
        assert_eq!(plan.fixed[2].target, Target::Random);
        let timeline = plan.timeline(Duration::from_secs(60), 1);
        assert!(timeline.len() > 3);
        assert!(timeline.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let err = ChaosPlan::from_entries(&[entry("fault = \"kill\"")]).expect_err("no at");
        assert_eq!(err, (0, "a fault needs `at`".to_string()));
        let err = ChaosPlan::from_entries(&[entry("at = \"1s\"\nfault = \"melt\"")])
            .expect_err("unknown");
        assert!(err.1.contains("unknown fault"), "{err:?}");
        let err =
            ChaosPlan::from_entries(&[entry("at = \"1s\"\nfault = \"kill\"\ntarget = \"x\"")])
                .expect_err("bad target");
        assert!(err.1.contains("unknown target"), "{err:?}");
        let err = ChaosPlan::from_entries(&[entry("at = \"1s\"\nfault = \"bandwidth\"")])
            .expect_err("no rate");
        assert!(err.1.contains("bandwidth"), "{err:?}");
    }
}
