//! The chaos engine against real clusters: one test per fault, each asserting from the monitoring
//! endpoints, the process table or real traffic that the fault happened, and that after its revert
//! the cluster is whole (3 healthy nodes, full routes, a meta leader, streams current, publishes
//! acknowledged). Then the revert guard on panic, and `heal` after a SIGKILLed `chaos` command.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aivo_load::chaos::effect::{self, Effect};
use aivo_load::chaos::engine::{ChaosEngine, FaultEvent};
use aivo_load::chaos::guard::RevertGuard;
use aivo_load::chaos::journal;
use aivo_load::chaos::{Fault, PartitionMode};
use aivo_load::cluster::monitor::{self, ClusterStatus};
use aivo_load::cluster::storage::FillMode;
use aivo_load::cluster::Cluster;

use crate::support::{
    aivo_in, inject_confirmed, monitor_url, output_within, process_alive, publish_acked,
    publish_acked_as, r3_stream_taking_writes, status_text, wait_for, ClusterUp, TestCluster,
};

/// A cluster shared with an engine, with an R3 stream on it (the journal lives in the cluster's
/// tempdir).
struct Chaos {
    /// Declared before `cluster`: the engine holds the cluster too, and must let go of it first.
    engine: Arc<ChaosEngine>,
    js: async_nats::jetstream::Context,
    cluster: TestCluster,
}

impl Chaos {
    async fn start() -> Chaos {
        let cluster = TestCluster::start().await;
        let engine = Arc::new(
            ChaosEngine::new(
                Cluster::Local(cluster.shared()),
                &cluster.dir().join("faults.jsonl"),
                Instant::now(),
                7,
            )
            .expect("engine"),
        );
        let js = r3_stream_taking_writes(cluster.endpoints(), "CHAOS", "chaos").await;
        Chaos {
            engine,
            js,
            cluster,
        }
    }

    fn journal(&self) -> Vec<journal::JournalEntry> {
        journal::read(&self.cluster.dir().join("faults.jsonl")).expect("journal")
    }

    fn pid(&self, node: &str) -> Option<u32> {
        self.cluster
            .cluster()
            .nodes()
            .into_iter()
            .find(|n| n.name == node)
            .and_then(|n| n.pid)
    }

    /// Every node's pid, in node order (`None` while one is down).
    fn pids(&self) -> Vec<Option<u32>> {
        self.cluster
            .cluster()
            .nodes()
            .iter()
            .map(|n| n.pid)
            .collect()
    }

    fn monitor(&self, node: &str) -> String {
        monitor_url(self.cluster.endpoints(), node)
    }

    async fn inject(&self, fault: Fault, target: &str) -> FaultEvent {
        inject_confirmed(&self.engine, fault, target).await
    }

    /// Reverts everything and checks the cluster is whole, with a publish acknowledged.
    async fn revert_and_check_whole(self) {
        let events = self.engine.revert_all("test").await;
        assert!(!events.is_empty(), "nothing was active");
        for event in &events {
            assert!(event.error.is_none(), "{event:?}");
            assert!(event.confirmed, "not whole after revert: {event:?}");
        }
        let whole = Effect::Whole
            .wait(self.cluster.endpoints(), Duration::from_secs(60))
            .await;
        assert!(whole.confirmed, "{whole:?}");
        let status = ClusterStatus::gather(self.cluster.endpoints()).await;
        assert!(status.is_healthy(), "{}", status.render_table());
        assert_eq!(status.nodes.len(), 3);
        for node in &self.cluster.endpoints().nodes {
            let jsz = monitor::jsz(&node.monitor_url).await.expect("jsz");
            assert!(
                jsz.config.max_storage >= 1 << 40,
                "{} still capped at {} bytes",
                node.name,
                jsz.config.max_storage
            );
        }
        publish_acked(&self.js, "chaos.after", "y", Duration::from_secs(30))
            .await
            .expect("publish after the revert");
        let endpoints = self.cluster.endpoints().clone();
        wait_for(
            "every stream replica current",
            Duration::from_secs(30),
            || async { effect::streams_led(&endpoints, true).await.ok() },
        )
        .await;
        let entries = self.journal();
        assert!(journal::active(&entries).is_empty(), "{entries:?}");
        assert!(self.engine.active().await.is_empty());
        drop(self.engine);
        self.cluster.shutdown().await;
    }
}

/// The process state letter from /proc (`T` is stopped).
fn proc_state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        .unwrap_or('?')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_takes_a_node_down_and_revert_restarts_it_on_its_store() {
    let chaos = Chaos::start().await;
    let pid = chaos.pid("nats2").expect("pid");
    let event = chaos.inject(Fault::Kill, "nats2").await;
    assert!(event.detail.contains("/healthz"), "{event:?}");
    assert!(!process_alive(pid), "nats2 survived SIGKILL");
    assert!(monitor::healthz(&chaos.monitor("nats2")).await.is_err());
    // The majority still accepts writes.
    publish_acked(&chaos.js, "chaos.during", "z", Duration::from_secs(30))
        .await
        .expect("publish with one node down");
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_graceful_and_start_brings_the_node_back() {
    let chaos = Chaos::start().await;
    let pid = chaos.pid("nats3").expect("pid");
    chaos.inject(Fault::Stop, "nats3").await;
    assert!(!process_alive(pid));
    let log =
        std::fs::read_to_string(chaos.cluster.dir().join("cluster/nats3/nats.log")).expect("log");
    assert!(
        log.contains("Server Exiting") || log.contains("Initiating Shutdown"),
        "no graceful shutdown in the log"
    );
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_gives_a_new_process_on_the_same_ports() {
    let chaos = Chaos::start().await;
    let before = chaos.cluster.cluster().nodes()[0].clone();
    chaos.inject(Fault::Restart, "nats1").await;
    let after = chaos.cluster.cluster().nodes()[0].clone();
    assert_ne!(before.pid, after.pid);
    assert_eq!(before.client_addr, after.client_addr);
    assert_eq!(before.cluster_addr, after.cluster_addr);
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_a_node_and_resume_thaws_it() {
    let chaos = Chaos::start().await;
    let pid = chaos.pid("nats2").expect("pid");
    chaos.inject(Fault::Pause, "nats2").await;
    assert_eq!(proc_state(pid), 'T', "nats2 is not stopped");
    chaos.revert_and_check_whole().await;
    assert_ne!(proc_state(pid), 'T');
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_isolates_a_node_that_clients_still_reach() {
    let chaos = Chaos::start().await;
    let event = chaos
        .inject(
            Fault::Partition {
                mode: PartitionMode::Isolate,
            },
            "nats3",
        )
        .await;
    assert!(event.detail.contains("0 routes"), "{event:?}");
    let routes = monitor::routez(&chaos.monitor("nats3"))
        .await
        .expect("routez");
    assert_eq!(routes.num_routes, 0);
    let peers = monitor::routez(&chaos.monitor("nats1"))
        .await
        .expect("routez");
    assert_eq!(peers.peers(), ["nats2"]);
    let url = chaos.cluster.endpoints().nodes[2].client_url.clone();
    let client = async_nats::connect(url)
        .await
        .expect("client reaches nats3");
    client.flush().await.expect("flush");
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition_silences_a_node_towards_its_peers() {
    let chaos = Chaos::start().await;
    let event = chaos
        .inject(
            Fault::Partition {
                mode: PartitionMode::OneWay,
            },
            "nats1",
        )
        .await;
    assert!(event.detail.contains("nats1"), "{event:?}");
    let blocked: Vec<String> = chaos
        .cluster
        .cluster()
        .proxy_stats()
        .into_iter()
        .filter(|s| s.forward_blocked || s.reverse_blocked)
        .map(|s| s.name)
        .collect();
    assert_eq!(blocked.len(), 4, "{blocked:?}");
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_partition_leaves_only_the_target_talking_to_both_others() {
    let chaos = Chaos::start().await;
    let event = chaos
        .inject(
            Fault::Partition {
                mode: PartitionMode::Bridge,
            },
            "nats2",
        )
        .await;
    assert!(event.detail.contains("no route"), "{event:?}");
    let bridge = monitor::routez(&chaos.monitor("nats2"))
        .await
        .expect("routez");
    assert_eq!(
        bridge.peers(),
        ["nats1", "nats3"],
        "the bridge keeps both routes"
    );
    for (node, only) in [("nats1", "nats2"), ("nats3", "nats2")] {
        let routes = wait_for(
            "the bridged pair to lose its route",
            Duration::from_secs(20),
            || {
                let url = chaos.monitor(node);
                async move {
                    let routes = monitor::routez(&url).await.ok()?;
                    (routes.peers() == [only]).then_some(routes)
                }
            },
        )
        .await;
        assert_eq!(routes.peers(), [only], "{node}");
    }
    publish_acked(&chaos.js, "chaos.bridged", "z", Duration::from_secs(20))
        .await
        .expect("the bridged cluster keeps a quorum and accepts writes");
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_slows_requests_across_the_route() {
    let chaos = Chaos::start().await;
    let event = chaos
        .inject(Fault::Latency { latency_ms: 250 }, "nats2")
        .await;
    assert!(event.detail.contains("took"), "{event:?}");
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_bytes_across_the_route() {
    let chaos = Chaos::start().await;
    let event = chaos
        .inject(
            Fault::Bandwidth {
                bytes_per_second: 512 * 1024,
            },
            "nats3",
        )
        .await;
    assert!(event.detail.contains("took"), "{event:?}");
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_not_root, ignore = "the tmpfs mode mounts a tmpfs: needs root")]
async fn fill_storage_disables_jetstream_on_the_node_and_drain_restores_it() {
    let chaos = Chaos::start().await;
    let store = chaos.cluster.dir().join("cluster/nats2/store");
    let event = chaos
        .inject(
            Fault::FillStorage {
                mode: FillMode::Tmpfs,
            },
            "nats2",
        )
        .await;
    assert!(
        event.note.as_deref().is_some_and(|n| n.contains("tmpfs")),
        "{event:?}"
    );
    assert!(aivo_load::cluster::storage::is_mount_point(&store));
    chaos.revert_and_check_whole().await;
    assert!(!aivo_load::cluster::storage::is_mount_point(&store));
    assert!(!store.with_file_name("store.disk").exists());
}

/// The quota mode (no root needed) lowers the node's `max_file_store`. nats-server 2.15 enforces it
/// where the node must reserve or lead, not on a follower's replication (measured here: a follower
/// stored 1.6 MB under a 265 KB cap), so the test asserts only what the fault promises: the cap is
/// in place on the node, the majority keeps accepting writes, and the revert lifts the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_storage_by_quota_caps_the_node_store_and_revert_lifts_the_cap() {
    let chaos = Chaos::start().await;
    let event = chaos
        .inject(
            Fault::FillStorage {
                mode: FillMode::MaxFileStore,
            },
            "nats2",
        )
        .await;
    assert!(
        event
            .note
            .as_deref()
            .is_some_and(|n| n.contains("max_file_store")),
        "{event:?}"
    );
    assert!(event.detail.contains("/jsz"), "{event:?}");
    let capped = monitor::jsz(&chaos.monitor("nats2")).await.expect("jsz");
    assert!(
        capped.config.max_storage < 16 * 1024 * 1024,
        "nats2 max_storage {}",
        capped.config.max_storage
    );
    let payload = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    // nats2 may have led CHAOS and step down as its store fills: a write retries through the
    // election, but one the majority refuses for 20 s fails the test.
    for i in 0..16 {
        let id = format!("fill-{i}");
        publish_acked_as(
            &chaos.js,
            "chaos.fill",
            &id,
            payload.clone(),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|e| panic!("write {i} refused by the majority: {e}"));
    }
    // The revert's check includes every node's cap back at the configured 1 TiB.
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_restarts_every_node_and_ends_whole() {
    let chaos = Chaos::start().await;
    let before = chaos.pids();
    let event = chaos.inject(Fault::RollingRestart, "nats1").await;
    assert!(
        event.note.as_deref().is_some_and(|n| n.ends_with("nats1")),
        "{event:?}"
    );
    let after = chaos.pids();
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "a node was not restarted: {before:?} {after:?}");
    }
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_target_hits_the_current_leader() {
    let chaos = Chaos::start().await;
    let endpoints = chaos.cluster.endpoints().clone();
    let leader = wait_for("a CHAOS leader", Duration::from_secs(10), || {
        monitor::stream_leader(&endpoints, "CHAOS")
    })
    .await;
    let event = chaos.inject(Fault::Kill, "leader:CHAOS").await;
    assert_eq!(event.node, leader);
    chaos.revert_and_check_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_reverts_active_faults_when_dropped_by_a_panic() {
    let chaos = Chaos::start().await;
    let pid = chaos.pid("nats1").expect("pid");
    let engine = chaos.engine.clone();
    let panicked = tokio::spawn(async move {
        let guard = RevertGuard::new(engine.clone());
        engine
            .inject(&Fault::Pause, &"nats1".parse().expect("target"))
            .await
            .expect("inject");
        assert_eq!(proc_state(pid), 'T');
        let _keep = &guard;
        panic!("a run panics mid-fault");
    })
    .await;
    assert!(panicked.is_err(), "the task should have panicked");
    assert_ne!(proc_state(pid), 'T', "the guard did not resume nats1");
    let entries = chaos.journal();
    assert!(journal::active(&entries).is_empty());
    let whole = Effect::Whole
        .wait(chaos.cluster.endpoints(), Duration::from_secs(60))
        .await;
    assert!(whole.confirmed, "{whole:?}");
}

// --- `chaos` and `heal` on a `cluster up` cluster ---------------------------------------------

fn output(command: Command) -> std::process::Output {
    output_within(command, Duration::from_secs(120))
}

#[test]
fn chaos_against_an_external_backend_is_refused_with_exit_2() {
    let state = tempfile::tempdir().expect("tempdir");
    let out = output(aivo_in(
        state.path(),
        &[
            "chaos",
            "kill",
            "--target",
            "nats1",
            "--backend",
            "external",
        ],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", status_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing chaos"),
        "{}",
        status_text(&out)
    );
}

#[test]
fn heal_restores_a_cluster_after_the_harness_is_sigkilled_mid_fault() {
    let state = tempfile::tempdir().expect("tempdir");
    let dir = state.path();
    let (_up_guard, up) = ClusterUp::start_local(dir);
    assert_eq!(up.status.code(), Some(0), "{}", status_text(&up));
    let read_state = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json")).expect("state"))
            .expect("state JSON")
    };
    let node_pid = |name: &str| -> u32 {
        read_state()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["pid"].as_u64())
            .expect("pid") as u32
    };
    let paused = node_pid("nats2");

    // Two faults at once from two harness processes: a partition and a pause, both held for long.
    let mut partition = aivo_in(
        dir,
        &["chaos", "partition", "--target", "nats3", "--for", "10m"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn chaos");
    let journal_path = dir.join("faults.jsonl");
    let applied = |n: usize| {
        journal::read(&journal_path)
            .unwrap_or_default()
            .iter()
            .filter(|e| matches!(e, journal::JournalEntry::Applied { .. }))
            .count()
            >= n
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !applied(1) {
        assert!(Instant::now() < deadline, "partition not applied in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut pause = aivo_in(
        dir,
        &["chaos", "pause", "--target", "nats2", "--for", "10m"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn chaos");
    while !applied(2) {
        assert!(Instant::now() < deadline, "pause not applied in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGKILL: no guard, no signal handler runs.
    partition.kill().expect("kill");
    pause.kill().expect("kill");
    let _ = partition.wait();
    let _ = pause.wait();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(proc_state(paused), 'T', "nats2 should still be paused");
    let status = output(aivo_in(dir, &["cluster", "status"]));
    assert_eq!(
        status.status.code(),
        Some(1),
        "degraded: {}",
        status_text(&status)
    );
    let entries = journal::read(&journal_path).expect("journal");
    assert_eq!(journal::active(&entries).len(), 2, "{entries:?}");

    let heal = output(aivo_in(dir, &["heal"]));
    assert_eq!(heal.status.code(), Some(0), "{}", status_text(&heal));
    let said = String::from_utf8_lossy(&heal.stdout);
    assert!(
        said.contains("Reverted 2 active fault(s)"),
        "{}",
        status_text(&heal)
    );
    assert!(said.contains("Cluster whole"), "{}", status_text(&heal));
    assert_ne!(proc_state(paused), 'T');
    // A node just thawed may fail /healthz for a moment while JetStream catches up: poll, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = output(aivo_in(dir, &["cluster", "status"]));
        if status.status.code() == Some(0) || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(status.status.code(), Some(0), "{}", status_text(&status));
    let entries = journal::read(&journal_path).expect("journal");
    assert!(journal::active(&entries).is_empty());
    let again = output(aivo_in(dir, &["heal"]));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("No active fault"),
        "{}",
        status_text(&again)
    );

    let down = output(aivo_in(dir, &["cluster", "down"]));
    assert_eq!(down.status.code(), Some(0), "{}", status_text(&down));
}

/// Publishes `n` acknowledged messages of about `size` bytes (each its own id) to `subject`.
async fn publish_many(js: &async_nats::jetstream::Context, subject: &str, n: usize, size: usize) {
    for i in 0..n {
        let payload = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(size));
        let ack = js
            .publish(subject.to_string(), payload.into())
            .await
            .expect("publish");
        ack.await.expect("ack");
    }
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    ) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// On a real node's store (killed, so nothing else writes it), the corruption changes exactly the
/// bytes it records and nothing else, in every mode and in the Raft group's files too; then the
/// whole fault (kill, corrupt, start) journals its changes and the node comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_store_changes_exactly_the_bytes_it_journals() {
    use aivo_load::chaos::corrupt_store::{self, CorruptMode, CorruptSpec, FileClass};
    let chaos = Chaos::start().await;
    publish_many(&chaos.js, "chaos.data", 400, 200).await;
    chaos.inject(Fault::Kill, "nats2").await;
    let store = chaos
        .cluster
        .dir()
        .join("cluster")
        .join("nats2")
        .join("store");
    let group = monitor::stream_raft_group(chaos.cluster.endpoints(), "CHAOS").await;
    assert!(group.is_some(), "/jsz names CHAOS's Raft group");
    for (class, mode) in [
        (FileClass::Blocks, CorruptMode::Bitflip { bits: 8 }),
        (
            FileClass::Meta,
            CorruptMode::Zero {
                at_per_mille: 100,
                len: 16,
            },
        ),
        (FileClass::Raft, CorruptMode::Bitflip { bits: 2 }),
        (
            FileClass::Blocks,
            CorruptMode::Truncate {
                keep_per_mille: 500,
            },
        ),
    ] {
        let before = tree(&store);
        let files = corrupt_store::files_of(&store, "CHAOS", class, group.as_deref())
            .unwrap_or_else(|e| panic!("{class:?}: {e}"));
        let changes = corrupt_store::corrupt(&store, &files, mode, 11).expect("corrupt");
        assert!(!changes.is_empty(), "{class:?} {mode}");
        let after = tree(&store);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "no file appears or goes"
        );
        // Undo each recorded change on what is there now: the store as it was comes back, so
        // nothing else changed.
        let mut undone = after.clone();
        for change in &changes {
            let old = unhex(&change.old);
            let bytes = undone
                .get_mut(&change.file)
                .expect("a recorded file exists");
            let at = change.offset as usize;
            match change.truncated {
                Some((was, now)) => {
                    assert_eq!(bytes.len() as u64, now, "{}", change.file.display());
                    let original = &before[&change.file];
                    assert_eq!(original.len() as u64, was);
                    assert_eq!(&original[at..at + old.len()], old.as_slice());
                    bytes.extend_from_slice(&original[at..]);
                }
                None => {
                    assert_eq!(&bytes[at..at + old.len()], unhex(&change.new).as_slice());
                    bytes[at..at + old.len()].copy_from_slice(&old);
                }
            }
        }
        assert_eq!(
            undone, before,
            "{class:?} {mode}: only the recorded bytes changed"
        );
        assert_ne!(after, before, "{class:?} {mode} changed something");
    }
    let events = chaos.engine.revert_all("test").await;
    assert!(events.iter().all(|e| e.error.is_none()), "{events:?}");

    // The fault itself, on another node: kill, corrupt, start, every change journaled.
    let spec = CorruptSpec {
        stream: "CHAOS".into(),
        files: FileClass::Blocks,
        mode: CorruptMode::Bitflip { bits: 4 },
    };
    let event = chaos.inject(Fault::CorruptStore(spec), "nats3").await;
    assert!(
        event
            .note
            .as_deref()
            .is_some_and(|n| n.contains("cannot be reverted")),
        "{event:?}"
    );
    let changed: Vec<_> = chaos
        .journal()
        .into_iter()
        .filter_map(|entry| match entry {
            journal::JournalEntry::Changed { node, changes, .. } => Some((node, changes)),
            _ => None,
        })
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].0, "nats3");
    assert!(!changed[0].1.is_empty());
    assert!(
        changed[0]
            .1
            .iter()
            .all(|c| c.file.to_string_lossy().ends_with(".blk")),
        "{changed:?}"
    );
    // Not a whole-cluster check: a replica restarted on damaged blocks may stay behind (that is
    // what the fault is for); its revert only starts the node.
    let events = chaos.engine.revert_all("test").await;
    assert!(events.iter().all(|e| e.error.is_none()), "{events:?}");
}

/// corrupt-store refuses a stream that has no store on the node, before touching anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_store_of_an_unknown_stream_is_refused_and_the_node_is_started_again() {
    use aivo_load::chaos::corrupt_store::{CorruptMode, CorruptSpec, FileClass};
    let chaos = Chaos::start().await;
    let spec = CorruptSpec {
        stream: "NOPE".into(),
        files: FileClass::Blocks,
        mode: CorruptMode::Bitflip { bits: 1 },
    };
    let target: aivo_load::chaos::Target = "nats2".parse().expect("target");
    let event = chaos
        .engine
        .inject(&Fault::CorruptStore(spec), &target)
        .await
        .expect("inject");
    let error = event.error.clone().unwrap_or_default();
    assert!(error.contains("NOPE"), "{event:?}");
    chaos.revert_and_check_whole().await;
}

/// The replicas check names the node whose copy lost messages: a follower's message blocks cut to
/// half while it was down (it comes back saying it is current), against two whole copies. Before
/// the fault the same check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicas_check_names_a_follower_whose_blocks_were_truncated() {
    use aivo_load::chaos::corrupt_store::{CorruptMode, CorruptSpec, FileClass};
    use aivo_load::checks::replicas;
    let chaos = Chaos::start().await;
    // 12 MB: more than one 8 MiB message block, so cutting each to half leaves a hole inside the
    // stream (a cut last block is caught up from the leader; a hole before it stays).
    publish_many(&chaos.js, "chaos.data", 3000, 4000).await;
    let endpoints = chaos.cluster.endpoints().clone();
    let before = replicas::check(&endpoints, &["CHAOS"], Duration::from_secs(30)).await;
    assert!(before[0].passed, "{:?}", before[0]);
    assert_eq!(before[0].replicas.len(), 3, "{:?}", before[0]);

    let spec = CorruptSpec {
        stream: "CHAOS".into(),
        files: FileClass::Blocks,
        mode: CorruptMode::Truncate {
            keep_per_mille: 500,
        },
    };
    let event = chaos
        .inject(Fault::CorruptStore(spec), "follower:CHAOS")
        .await;
    let damaged = event.node.clone();
    let after = replicas::check(&endpoints, &["CHAOS"], Duration::from_secs(30)).await;
    let check = &after[0];
    assert!(!check.passed, "{check:?}");
    assert_eq!(check.differences.len(), 1, "{check:?}");
    assert_eq!(check.differences[0].node, damaged, "{check:?}");
    assert!(check.differences[0].missing > 0, "{check:?}");
    assert!(check.detail.contains(&damaged), "{}", check.detail);
    chaos.revert_and_check_whole().await;
}

/// The per-replica read-back makes each replica the leader in turn and lists what its copy lacks:
/// after a follower's blocks were cut to half, it names that node, the stream sequences it lacks
/// and the two nodes that hold them, and gives leadership back. Before the fault it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_replica_read_back_names_the_sequences_a_damaged_follower_lacks() {
    use aivo_load::chaos::corrupt_store::{CorruptMode, CorruptSpec, FileClass};
    use aivo_load::checks::replica_read;
    use aivo_load::topology::leader_copy;
    let chaos = Chaos::start().await;
    publish_many(&chaos.js, "chaos.data", 3000, 4000).await;
    let before = replica_read::read_each_replica(&chaos.js, "CHAOS", 1, 3000, "test").await;
    assert!(before.passed, "{before:?}");
    assert_eq!(before.copies.len(), 3, "{before:?}");
    assert!(
        before.copies.iter().all(|c| c.holds == Some(3000)),
        "{before:?}"
    );

    let spec = CorruptSpec {
        stream: "CHAOS".into(),
        files: FileClass::Blocks,
        mode: CorruptMode::Truncate {
            keep_per_mille: 500,
        },
    };
    let event = chaos
        .inject(Fault::CorruptStore(spec), "follower:CHAOS")
        .await;
    let damaged = event.node.clone();
    let leader = leader_copy(&chaos.js, "CHAOS").await.expect("info").leader;
    let after = replica_read::read_each_replica(&chaos.js, "CHAOS", 1, 3000, "test").await;
    assert!(!after.passed, "{after:?}");
    assert_eq!(after.divergences.len(), 1, "{after:?}");
    let divergence = &after.divergences[0];
    assert_eq!(divergence.node, damaged, "{after:?}");
    assert!(divergence.missing > 0, "{after:?}");
    assert_eq!(divergence.held_by.len(), 2, "{after:?}");
    assert!(!divergence.held_by.contains(&damaged), "{after:?}");
    assert!(!divergence.samples.is_empty(), "{after:?}");
    assert_eq!(after.on_no_replica, 0, "{after:?}");
    let lacking = after
        .copies
        .iter()
        .find(|c| c.node == damaged)
        .and_then(|c| c.holds);
    assert_eq!(lacking, Some(3000 - divergence.missing), "{after:?}");
    assert!(after.detail.contains(&damaged), "{}", after.detail);
    // Leadership went back where it was.
    let now = leader_copy(&chaos.js, "CHAOS").await.expect("info").leader;
    assert_eq!(now, leader);
    chaos.revert_and_check_whole().await;
}
