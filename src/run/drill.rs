//! The disaster-recovery drill of a scenario with `[drill]` (issue #14 part 5): what the seed's
//! "snapshots with offsite backup of /data" must survive, done for real.
//!
//! 1. **Snapshot, under load.** At `snapshot_at` (the publishers keep publishing) the drill takes,
//!    stream by stream: a *cut* of each of the stream's publishers' acknowledged sequences (through
//!    the publisher's shared cell, answered at its next send or batch of acks), then the stream's
//!    snapshot through the JetStream API (`topology::backup`) into `<run dir>/backup/<STREAM>/`.
//!    Every event in the cut was acknowledged before the snapshot was asked for.
//! 2. **Destroy**, after the load and the run's usual checks: every node stopped and its store
//!    deleted, so nothing of the old cluster is left but the snapshots.
//! 3. **A fresh cluster**: the nodes started again on their ports and configs, on empty stores;
//!    nothing is declared (the restore creates the streams, with their consumers).
//! 4. **Restore** every stream from its snapshot and wait for its replicas (the recovery time).
//! 5. **Judge** (`checks::recovery`): each restored stream read back against the cut and the final
//!    ledgers; the events acked after the snapshot the restore lacks are the recovery point.
//!
//! A drill is a step of the run, not a chaos fault: it needs the publishers' ledgers (at the cut
//! and at the end), which the chaos engine does not see, and it ends with a cluster that is not the
//! one the run started, which no fault may leave behind. It runs only on a cluster the run started
//! itself: it deletes stores.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::checks::no_loss::{read_back, ReadBack};
use crate::checks::recovery::{self, DisasterRecovery, StreamRecovery};
use crate::checks::streams::StreamWindow;
use crate::cluster::{Cluster, ControlOp};
use crate::load::engine::{lock, RunClock, SharedStats};
use crate::load::ledger::{PublisherLedger, RangeSet};
use crate::scenario::model::DrillSettings;
use crate::topology::backup::{self, RestoredState, StreamBackup};

/// How long a publisher may take to answer the cut (it answers at its next send or ack batch).
const CUT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the fresh cluster may take until its JetStream meta leader answers.
const FRESH_CLUSTER_TIMEOUT: Duration = Duration::from_secs(90);

/// What the load hands the drill once its publishers are spawned.
pub(super) struct DrillTap {
    pub(super) clock: RunClock,
    /// (publisher id, its stream, its shared cell).
    pub(super) publishers: Vec<(u32, String, SharedStats)>,
}

/// One stream's snapshot as the drill took it.
struct TakenSnapshot {
    stream: String,
    /// Seconds since the load's start when the snapshot was asked for.
    at_s: f64,
    cut: BTreeMap<u32, RangeSet>,
    backup: Result<StreamBackup, String>,
}

/// What the snapshot step leaves for the rest of the drill.
struct Snapshots {
    clock: Option<RunClock>,
    taken: Vec<TakenSnapshot>,
}

/// A drill under way: its snapshot step runs beside the load.
pub(super) struct Drill {
    task: JoinHandle<Snapshots>,
    backup_dir: PathBuf,
    /// Test-only (`run --drill-tamper N`): delete the first N messages the run wrote to each
    /// restored stream, so the check is seen failing on a restore that lacks acked events.
    tamper: u64,
}

impl Drill {
    /// Starts the snapshot step; the returned sender goes to the load (`RunFiles::drill`).
    pub(super) fn start(
        settings: DrillSettings,
        client: async_nats::Client,
        streams: Vec<String>,
        backup_dir: PathBuf,
        tamper: u64,
        cancel: CancellationToken,
    ) -> (Self, oneshot::Sender<DrillTap>) {
        let (tx, rx) = oneshot::channel();
        let dir = backup_dir.clone();
        let task = tokio::spawn(async move {
            let mut snapshots = Snapshots {
                clock: None,
                taken: Vec::new(),
            };
            let tap: DrillTap = tokio::select! {
                tap = rx => match tap {
                    Ok(tap) => tap,
                    Err(_) => return snapshots,
                },
                _ = cancel.cancelled() => return snapshots,
            };
            snapshots.clock = Some(tap.clock);
            tokio::select! {
                _ = tokio::time::sleep_until(tap.clock.start + settings.snapshot_at) => {}
                _ = cancel.cancelled() => return snapshots,
            }
            eprintln!(
                "aivo-load: drill: snapshotting {} streams into {}",
                streams.len(),
                dir.display()
            );
            for stream in streams {
                let cut = cut_acked(&tap.publishers, &stream).await;
                let at_s = tap.clock.start.elapsed().as_secs_f64();
                let backup = backup::snapshot_stream(&client, &stream, &dir.join(&stream)).await;
                snapshots.taken.push(TakenSnapshot {
                    stream,
                    at_s,
                    cut,
                    backup,
                });
            }
            snapshots
        });
        (
            Self {
                task,
                backup_dir,
                tamper,
            },
            tx,
        )
    }

    /// Steps 2–5, after the load and the run's checks: destroy, fresh cluster, restore, judge.
    pub(super) async fn recover(
        self,
        cluster: &Cluster,
        js: &async_nats::jetstream::Context,
        run_id: &str,
        ledgers: &[PublisherLedger],
        windows: &[StreamWindow],
    ) -> DisasterRecovery {
        let mut result = DisasterRecovery {
            backup_dir: self.backup_dir.display().to_string(),
            snapshot_at_s: 0.0,
            destroyed_at_s: 0.0,
            recovery_point_s: 0.0,
            recovery_point_events: 0,
            fresh_cluster_s: 0.0,
            recovery_time_s: 0.0,
            streams: Vec::new(),
            error: None,
            passed: false,
            detail: String::new(),
        };
        let snapshots = match self.task.await {
            Ok(snapshots) => snapshots,
            Err(e) => {
                result.error = Some(format!("the snapshot step failed: {e}"));
                return result.conclude();
            }
        };
        let (Some(clock), false) = (snapshots.clock, snapshots.taken.is_empty()) else {
            result.error = Some("no snapshot was taken (the load ended first)".into());
            return result.conclude();
        };
        result.snapshot_at_s = snapshots
            .taken
            .iter()
            .map(|t| t.at_s)
            .fold(f64::INFINITY, f64::min);
        if let Some(failed) = snapshots.taken.iter().find(|t| t.backup.is_err()) {
            let why = failed.backup.as_ref().err().cloned().unwrap_or_default();
            // The cluster is left as it is: a drill without every snapshot would destroy data.
            result.error = Some(format!(
                "snapshot of {} failed: {why}; the cluster was not destroyed",
                failed.stream
            ));
            return result.conclude();
        }
        result.destroyed_at_s = clock.start.elapsed().as_secs_f64();
        result.recovery_point_s = result.destroyed_at_s - result.snapshot_at_s;
        eprintln!("aivo-load: drill: destroying the cluster and its stores");
        if let Err(why) = destroy(cluster).await {
            result.error = Some(why);
            return result.conclude();
        }
        let fresh = std::time::Instant::now();
        if let Err(why) = start_fresh(cluster, &js.client()).await {
            result.error = Some(why);
            return result.conclude();
        }
        result.fresh_cluster_s = fresh.elapsed().as_secs_f64();
        eprintln!(
            "aivo-load: drill: fresh cluster up in {:.1} s; restoring",
            result.fresh_cluster_s
        );
        let restoring = std::time::Instant::now();
        let mut restored = Vec::new();
        for taken in &snapshots.taken {
            let Ok(backup) = &taken.backup else { continue };
            let state = backup::restore_stream(&js.client(), backup).await;
            let state = match state {
                Ok(state) => crate::topology::wait_until_replicated(js, &taken.stream, true)
                    .await
                    .map(|()| state)
                    .map_err(|e| format!("restored, but its replicas: {e:#}")),
                Err(e) => Err(e),
            };
            restored.push(state);
        }
        result.recovery_time_s = restoring.elapsed().as_secs_f64();
        eprintln!(
            "aivo-load: drill: {} streams restored in {:.1} s; checking them against the ledger",
            restored.len(),
            result.recovery_time_s
        );
        for (taken, state) in snapshots.taken.iter().zip(restored) {
            let window = windows.iter().find(|w| w.stream == taken.stream);
            result
                .streams
                .push(judge_stream(js, run_id, ledgers, taken, window, state, self.tamper).await);
        }
        result.conclude()
    }
}

/// Each of `stream`'s publishers' acknowledged sequences, now.
async fn cut_acked(
    publishers: &[(u32, String, SharedStats)],
    stream: &str,
) -> BTreeMap<u32, RangeSet> {
    let cells: Vec<&(u32, String, SharedStats)> =
        publishers.iter().filter(|(_, s, _)| s == stream).collect();
    for (_, _, cell) in &cells {
        let mut cell = lock(cell);
        cell.acked_cut = None;
        cell.cut_wanted = true;
    }
    let deadline = tokio::time::Instant::now() + CUT_TIMEOUT;
    let mut cut = BTreeMap::new();
    loop {
        for (id, _, cell) in &cells {
            if let Some(acked) = lock(cell).acked_cut.take() {
                cut.insert(*id, acked);
            }
        }
        if cut.len() == cells.len() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A publisher that did not answer (its schedule had ended) claims nothing for this snapshot:
    // its events count as acked after it.
    for (_, _, cell) in &cells {
        lock(cell).cut_wanted = false;
    }
    cut
}

/// Stops every node and deletes its store.
async fn destroy(cluster: &Cluster) -> Result<(), String> {
    let nodes: Vec<String> = cluster
        .endpoints()
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    for node in &nodes {
        cluster
            .apply(&ControlOp::Stop { node: node.clone() })
            .await
            .map_err(|e| format!("cannot stop {node}: {e}"))?;
    }
    for node in &nodes {
        let store = cluster
            .store_on_host(node)
            .ok_or_else(|| format!("the store of {node} is not on this machine"))?;
        match std::fs::remove_dir_all(&store) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot delete {}: {e}", store.display())),
        }
    }
    Ok(())
}

/// Starts every node on its empty store and waits for the JetStream meta leader.
async fn start_fresh(cluster: &Cluster, client: &async_nats::Client) -> Result<(), String> {
    for node in cluster.endpoints().nodes.iter().map(|n| n.name.clone()) {
        cluster
            .apply(&ControlOp::Start { node: node.clone() })
            .await
            .map_err(|e| format!("cannot start {node} on an empty store: {e}"))?;
    }
    // Only the meta leader answers the stream list in a cluster: an answer means a leader.
    let deadline = tokio::time::Instant::now() + FRESH_CLUSTER_TIMEOUT;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        let request = async_nats::Request::new()
            .payload(Bytes::from_static(b"{}"))
            .timeout(Some(Duration::from_secs(2)));
        match client.send_request("$JS.API.STREAM.NAMES", request).await {
            Ok(answer) => {
                let value: serde_json::Value =
                    serde_json::from_slice(&answer.payload).unwrap_or_default();
                let total = value.get("total").and_then(serde_json::Value::as_u64);
                match total {
                    Some(0) => return Ok(()),
                    Some(n) => {
                        return Err(format!(
                            "the fresh cluster already has {n} streams: its stores were not empty"
                        ))
                    }
                    None => last = String::from_utf8_lossy(&answer.payload).into_owned(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "the fresh cluster's JetStream did not answer within {FRESH_CLUSTER_TIMEOUT:?}: {last}"
    ))
}

/// Reads one restored stream back (the run's part of it) and judges it.
async fn judge_stream(
    js: &async_nats::jetstream::Context,
    run_id: &str,
    ledgers: &[PublisherLedger],
    taken: &TakenSnapshot,
    window: Option<&StreamWindow>,
    state: Result<RestoredState, String>,
    tamper: u64,
) -> StreamRecovery {
    let (messages, last_seq, bytes) = match &taken.backup {
        Ok(b) => (b.meta.messages(), b.meta.last_seq(), b.bytes),
        Err(_) => (0, 0, 0),
    };
    let from_seq = window.map_or(1, |w| w.before.last_seq + 1);
    let back = match state {
        Err(why) => Err(why),
        Ok(state) if window.is_none() => Ok((ReadBack::default(), state)),
        Ok(state) => {
            if tamper > 0 {
                tamper_with(js, &taken.stream, from_seq, tamper).await;
            }
            read_back(js, &taken.stream, run_id, from_seq, state.last_seq)
                .await
                .map(|back| (back, state))
        }
    };
    recovery::judge(recovery::StreamInputs {
        stream: &taken.stream,
        snapshot_at_s: taken.at_s,
        snapshot_messages: messages,
        snapshot_last_seq: last_seq,
        snapshot_bytes: bytes,
        cut: &taken.cut,
        ledgers,
        restored: back.as_ref().map(|(b, s)| (b, *s)).map_err(Clone::clone),
    })
}

/// Deletes `count` messages of a restored stream from `from_seq` on (test-only, see
/// [`Drill::tamper`]).
async fn tamper_with(js: &async_nats::jetstream::Context, stream: &str, from_seq: u64, count: u64) {
    eprintln!("aivo-load: drill: tampering: deleting {count} messages of {stream} from {from_seq}");
    let Ok(handle) = js.get_stream(stream).await else {
        return;
    };
    for seq in from_seq..from_seq + count {
        if let Err(e) = handle.delete_message(seq).await {
            eprintln!("aivo-load: drill: tampering: {stream} seq {seq}: {e}");
        }
    }
}
