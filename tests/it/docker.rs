//! The docker backend on this machine's real Docker engine: the compose project comes up whole with
//! routes on the cluster network, each fault takes effect (seen from `/routez`, `/healthz`, `/jsz` and
//! the Docker API) and reverts to a whole cluster, `cluster up|status|down`, `chaos` and `heal` work
//! from the command line, and `run node-kill --backend docker` passes its checks.
//!
//! Every test uses its own compose project on free loopback ports, and removes it on every path (the
//! cluster's `Drop`, or [`ClusterUp`]). Where the build found no Docker engine (`build.rs` sets
//! `aivo_no_docker`), every test here is ignored, so the runner reports it as skipped; one that
//! finds no engine when it runs fails saying so, it never passes without having run. The tmpfs
//! stores need root as well (`aivo_not_root`).

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aivo_load::chaos::effect::Effect;
use aivo_load::chaos::engine::{ChaosEngine, FaultEvent};
use aivo_load::chaos::journal;
use aivo_load::chaos::{Fault, PartitionMode, Target};
use aivo_load::cluster::docker::{self, DockerCluster, DockerClusterConfig, BALLAST};
use aivo_load::cluster::monitor::{self, ClusterStatus};
use aivo_load::cluster::storage::FillMode;
use aivo_load::cluster::Cluster;

use crate::support::{
    aivo, assert_passed_but_for, inject_confirmed, monitor_url, publish_acked,
    r3_stream_taking_writes, text, wait_for, ClusterUp, BIN,
};

/// Small stores: the fill test uploads the free space as ballast.
const TEST_STORE_BYTES: u64 = 96 << 20;

/// Fails the test, saying why, unless a Docker engine answers. The build decided the test runs
/// (`aivo_no_docker` unset): either it found an engine, or `AIVO_REQUIRE_DOCKER=1` demanded one.
pub(crate) async fn require_docker() {
    if let Err(err) = docker::connect().await {
        let why = if std::env::var("AIVO_REQUIRE_DOCKER").as_deref() == Ok("1") {
            "AIVO_REQUIRE_DOCKER=1 but no Docker engine answers"
        } else if cfg!(aivo_no_docker) {
            "no Docker engine answers (the build found none and ignored this test; it was run anyway)"
        } else {
            "no Docker engine answers, though one did when the tests were built \
             (start dockerd, or `touch build.rs` to probe again and skip these tests)"
        };
        panic!("{why}: {err}");
    }
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub(crate) fn project(tag: &str) -> String {
    format!("aivo-it-{}-{tag}", std::process::id())
}

async fn start(dir: &Path, tag: &str) -> DockerCluster {
    let mut config = DockerClusterConfig::new(dir.join("cluster"), &project(tag));
    config.store_bytes = TEST_STORE_BYTES;
    config.image = None;
    let started = Instant::now();
    let cluster = tokio::time::timeout(Duration::from_secs(150), DockerCluster::start(config))
        .await
        .expect("docker cluster start timed out")
        .unwrap_or_else(|err| panic!("docker cluster did not start: {err}"));
    eprintln!(
        "docker cluster {} up in {:.1}s",
        cluster.spec().project,
        started.elapsed().as_secs_f64()
    );
    cluster
}

/// `docker inspect NAME` succeeds (container, network or volume).
pub(crate) fn docker_object_exists(kind: &str, name: &str) -> bool {
    std::process::Command::new("docker")
        .args([kind, "inspect", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn docker_cluster_comes_up_whole_with_routes_on_the_cluster_network_and_down_removes_it() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-")
        .tempdir()
        .expect("tempdir");
    let cluster = start(dir.path(), "up").await;
    let status = ClusterStatus::gather(cluster.endpoints()).await;
    assert!(status.is_healthy(), "{}", status.render_table());
    assert_eq!(status.nodes.len(), 3);
    assert!(status.meta_leader.is_some(), "{}", status.render_table());

    // Every node runs in its container, on the image built from the local binary, and every route
    // connection comes from a peer's address on the cluster network (never the client network).
    let mut cluster_ips = Vec::new();
    for node in &cluster.spec().nodes {
        let state = cluster.state(&node.name).await.expect("inspect");
        assert!(state.running && !state.paused, "{}: {state:?}", node.name);
        assert_eq!(state.image, docker::image::LOCAL_IMAGE);
        cluster_ips.push(state.cluster_ip.clone().expect("on the cluster network"));
        if root() {
            assert!(node.store_tmpfs, "{node:?}");
            assert!(aivo_load::cluster::storage::is_mount_point(&node.store));
        }
    }
    for node in cluster.endpoints().nodes.iter() {
        let routes = monitor::routez(&node.monitor_url).await.expect("routez");
        assert!(!routes.routes.is_empty(), "{}: no routes", node.name);
        for route in &routes.routes {
            assert!(
                cluster_ips.contains(&route.ip),
                "{} has a route from {} outside the cluster network {cluster_ips:?}",
                node.name,
                route.ip
            );
        }
    }

    let spec = cluster.spec().clone();
    cluster.shutdown().await.expect("down");
    for node in &spec.nodes {
        assert!(
            !docker_object_exists("container", &node.container),
            "{} left behind",
            node.container
        );
        assert!(!aivo_load::cluster::storage::is_mount_point(&node.store));
    }
    assert!(!docker_object_exists("network", &spec.cluster_network()));
    assert!(!docker_object_exists(
        "volume",
        &format!("{}_nats1-data", spec.project)
    ));
}

/// Keeps publishing small messages to `subject` (errors ignored) until told to stop: the writes a
/// full store needs to fail.
fn keep_publishing(
    js: async_nats::jetstream::Context,
    subject: &'static str,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let payload = bytes::Bytes::from(vec![b'b'; 4096]);
        while !flag.load(Ordering::Relaxed) {
            if let Ok(ack) = js.publish(subject, payload.clone()).await {
                let _ = tokio::time::timeout(Duration::from_secs(2), ack).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (stop, task)
}

/// A docker cluster shared with a chaos engine, with an R3 stream taking writes, for the fault tests.
struct DockerChaos {
    /// Declared before `cluster`: the engine holds the cluster too, and must let go of it first.
    engine: ChaosEngine,
    js: async_nats::jetstream::Context,
    cluster: Arc<DockerCluster>,
    dir: tempfile::TempDir,
}

impl DockerChaos {
    async fn start(tag: &str) -> DockerChaos {
        require_docker().await;
        let dir = tempfile::Builder::new()
            .prefix("aivo-docker-")
            .tempdir()
            .expect("tempdir");
        let cluster = Arc::new(start(dir.path(), tag).await);
        let engine = ChaosEngine::new(
            Cluster::Docker(cluster.clone()),
            &dir.path().join("faults.jsonl"),
            Instant::now(),
            7,
        )
        .expect("engine");
        let js = r3_stream_taking_writes(cluster.endpoints(), "DOCKER", "docker").await;
        DockerChaos {
            engine,
            js,
            cluster,
            dir,
        }
    }

    fn monitor(&self, node: &str) -> String {
        monitor_url(self.cluster.endpoints(), node)
    }

    async fn inject(&self, fault: Fault, target: &str) -> FaultEvent {
        inject_confirmed(&self.engine, fault, target).await
    }

    /// Reverts what is active (something must be) and checks the cluster is healthy again.
    async fn revert_whole(&self, what: &str) {
        let events: Vec<FaultEvent> = self.engine.revert_all("test").await;
        assert!(!events.is_empty(), "{what}: nothing was active");
        for event in &events {
            assert!(event.error.is_none(), "{what}: {event:?}");
            assert!(event.confirmed, "{what}: not whole after revert: {event:?}");
        }
        // The revert was confirmed whole; a replica that restarted (after a full disk, say) can
        // still fall "not current" for a moment while it catches up. Healthy again within 30 s,
        // or the test fails with the table.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = ClusterStatus::gather(self.cluster.endpoints()).await;
            if status.is_healthy() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not healthy 30 s after a whole revert: {}",
                status.render_table()
            );
            eprintln!(
                "{what}: not healthy yet after the revert:\n{}",
                status.render_table()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!("{what} reverted: {}", events[0].detail);
    }

    /// After the faults: writes are acknowledged, the journal holds nothing active, the cluster is
    /// whole; then the project goes down.
    async fn finish_whole(self) {
        publish_acked(&self.js, "docker.after", "y", Duration::from_secs(30))
            .await
            .expect("publish after the faults");
        let entries = journal::read(&self.dir.path().join("faults.jsonl")).expect("journal");
        assert!(journal::active(&entries).is_empty(), "{entries:?}");
        let whole = Effect::Whole
            .wait(self.cluster.endpoints(), Duration::from_secs(30))
            .await;
        assert!(whole.confirmed, "{whole:?}");
        drop(self.engine);
        if let Ok(cluster) = Arc::try_unwrap(self.cluster) {
            cluster.shutdown().await.expect("down");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn docker_faults_take_effect_and_revert_to_a_whole_cluster() {
    let chaos = DockerChaos::start("faults").await;
    let cluster = &chaos.cluster;

    // kill: SIGKILL through the API; the published port refuses, the container is not running.
    chaos.inject(Fault::Kill, "nats2").await;
    assert!(!cluster.state("nats2").await.expect("inspect").running);
    chaos.revert_whole("kill").await;

    // partition: nats3 off the cluster network; /routez shows 0 routes, its client port still works.
    chaos
        .inject(
            Fault::Partition {
                mode: PartitionMode::Isolate,
            },
            "nats3",
        )
        .await;
    assert!(cluster
        .state("nats3")
        .await
        .expect("inspect")
        .cluster_ip
        .is_none());
    let routes = monitor::routez(&chaos.monitor("nats3"))
        .await
        .expect("routez");
    assert_eq!(routes.num_routes, 0);
    let nats3 = cluster.endpoints().nodes[2].client_url.clone();
    let direct = async_nats::connect(nats3.as_str())
        .await
        .expect("client reaches nats3");
    direct
        .flush()
        .await
        .expect("round trip to the isolated nats3");
    drop(direct);
    chaos.revert_whole("partition").await;

    // pause: the cgroup freezer; /healthz is accepted (docker-proxy) and never answered.
    chaos.inject(Fault::Pause, "nats1").await;
    assert!(cluster.state("nats1").await.expect("inspect").paused);
    chaos.revert_whole("pause").await;

    // latency: tc netem in the container's netns, where the kernel has netem; otherwise the fault
    // fails with tc's own error (this project's CI kernel has no sch_netem).
    let target: Target = "nats2".parse().expect("target");
    let event = chaos
        .engine
        .inject(&Fault::Latency { latency_ms: 100 }, &target)
        .await
        .expect("inject");
    match &event.error {
        None => assert!(event.confirmed, "{event:?}"),
        Some(error) => {
            assert!(error.contains("netem"), "{event:?}");
            eprintln!("latency not available here: {error}");
        }
    }
    chaos.revert_whole("latency").await;
    chaos.finish_whole().await;
}

/// fill-storage: ballast uploaded into nats2's tmpfs store until JetStream disables itself there.
/// Only root gets tmpfs stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
#[cfg_attr(aivo_not_root, ignore = "the tmpfs stores need root")]
async fn docker_fill_storage_fills_the_tmpfs_store_and_revert_drains_it() {
    let chaos = DockerChaos::start("fill").await;
    let (stop, publisher) = keep_publishing(chaos.js.clone(), "docker.fill");
    chaos
        .inject(
            Fault::FillStorage {
                mode: FillMode::Tmpfs,
            },
            "nats2",
        )
        .await;
    let store = chaos.cluster.spec().nodes[1].store.clone();
    let ballast = std::fs::metadata(store.join(BALLAST)).expect("ballast in the store");
    assert!(ballast.len() > TEST_STORE_BYTES / 2, "{ballast:?}");
    let jsz = monitor::jsz(&chaos.monitor("nats2")).await;
    let healthz = monitor::healthz(&chaos.monitor("nats2")).await;
    eprintln!(
        "nats2 full: jsz disabled={:?}, healthz={healthz:?}",
        jsz.map(|j| j.disabled)
    );
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.await;
    chaos.revert_whole("fill-storage").await;
    assert!(!store.join(BALLAST).exists());
    chaos.finish_whole().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn cluster_up_chaos_heal_and_down_work_from_the_command_line_on_docker() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-cli-")
        .tempdir()
        .expect("tempdir");
    let mut envs = vec![
        (
            "AIVO_STATE_DIR".to_string(),
            dir.path().display().to_string(),
        ),
        ("AIVO_DOCKER_PROJECT".to_string(), project("cli")),
        ("AIVO_DOCKER_STORE_SIZE".to_string(), "64MiB".to_string()),
    ];
    let listeners: Vec<std::net::TcpListener> = (0..6)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    drop(listeners);
    for i in 0..3 {
        envs.push((
            format!("NATS{}_CLIENT_PORT", i + 1),
            ports[2 * i].to_string(),
        ));
        envs.push((
            format!("NATS{}_MONITOR_PORT", i + 1),
            ports[2 * i + 1].to_string(),
        ));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _guard = ClusterUp::docker(&envs);
    let minute = Duration::from_secs(120);

    let up = aivo(&["cluster", "up", "--backend", "docker"], &envs, minute).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    assert!(
        text(&up).contains(&format!("nats://127.0.0.1:{}", ports[0])),
        "{}",
        text(&up)
    );
    let status = aivo(&["cluster", "status", "--backend", "docker"], &envs, minute).await;
    assert_eq!(status.code_or(), 0, "{}", text(&status));

    // A fault left behind (no --for), as by a chaos command that was killed.
    let chaos = aivo(
        &["chaos", "pause", "--target", "nats2", "--backend", "docker"],
        &envs,
        minute,
    )
    .await;
    assert_eq!(chaos.code_or(), 0, "{}", text(&chaos));
    let monitor = format!("http://127.0.0.1:{}", ports[3]);
    assert!(
        monitor::healthz(&monitor).await.is_err(),
        "nats2 still answers while paused"
    );
    let heal = aivo(&["heal", "--backend", "docker"], &envs, minute).await;
    assert_eq!(heal.code_or(), 0, "{}", text(&heal));
    assert!(text(&heal).contains("Cluster whole"), "{}", text(&heal));
    let again = aivo(&["heal", "--backend", "docker"], &envs, minute).await;
    assert!(text(&again).contains("No active fault"), "{}", text(&again));
    wait_for(
        "nats2 healthy after heal",
        Duration::from_secs(30),
        || async {
            matches!(monitor::healthz(&monitor).await, Ok(monitor::Health::Ok)).then_some(())
        },
    )
    .await;

    let down = aivo(&["cluster", "down", "--backend", "docker"], &envs, minute).await;
    assert_eq!(down.code_or(), 0, "{}", text(&down));
    assert!(!docker_object_exists(
        "container",
        &format!("{}-nats-1", project("cli"))
    ));
    let status = aivo(&["cluster", "status", "--backend", "docker"], &envs, minute).await;
    assert_eq!(status.code_or(), 3, "{}", text(&status));
}

trait CodeOr {
    fn code_or(&self) -> i32;
}

impl CodeOr for Output {
    /// The exit code, or -1 when killed by a signal.
    fn code_or(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn run_node_kill_on_docker_passes_its_checks() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-run-")
        .tempdir()
        .expect("tempdir");
    let reports = dir.path().join("reports");
    let reports_arg = reports.display().to_string();
    let envs = [("AIVO_DOCKER_STORE_SIZE", "256MiB")];
    let output = aivo(
        &[
            "run",
            "node-kill",
            "--backend",
            "docker",
            "--duration",
            "30s",
            "--reports-dir",
            &reports_arg,
        ],
        &envs,
        Duration::from_secs(240),
    )
    .await;
    let shown = text(&output);
    assert!(shown.contains("backend docker"), "{shown}");
    let run_dir = std::fs::read_dir(&reports)
        .expect("reports")
        .flatten()
        .next()
        .expect("a report dir")
        .path();
    let report = crate::support::read_report(&run_dir.join("report.json"));
    // Compressed to a third, the kill's election costs the same seconds in a shorter run: the
    // scenario's error and latency budgets may not hold, its checks must.
    assert_passed_but_for(&output, &report, &["publish."]);
    assert_eq!(report["run"]["backend"], "docker", "{report:#}");
    let chaos: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("chaos.json")).expect("chaos.json"),
    )
    .expect("chaos json");
    assert_eq!(chaos.len(), 2, "{chaos:?}");
    assert!(chaos.iter().all(|e| e["confirmed"] == true), "{chaos:?}");
    assert!(run_dir.join("cluster/containers.log").is_file());
    // The run's compose project is gone.
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(!docker_object_exists(
        "container",
        &format!("aivo-{name}-nats-1")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn heal_reverts_and_removes_the_project_of_a_killed_docker_run() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-heal-")
        .tempdir()
        .expect("tempdir");
    let reports = dir.path().join("reports");
    let stderr_path = dir.path().join("run.stderr");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "run",
            "node-kill",
            "--backend",
            "docker",
            "--duration",
            "45s",
        ])
        .arg("--reports-dir")
        .arg(&reports)
        .env("AIVO_DOCKER_STORE_SIZE", "128MiB")
        .env_remove("NATS_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn run");
    // Wait until the kill fault is applied, then SIGKILL the harness: nats2 stays down and the run's
    // containers stay up, with nothing left to revert them but the journal. A run that ends or
    // stalls first fails the test with what it printed.
    let printed = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let run_dir = loop {
        let applied = std::fs::read_dir(&reports)
            .ok()
            .and_then(|mut dir| dir.next())
            .and_then(Result::ok)
            .map(|entry| entry.path())
            .filter(|run_dir| {
                std::fs::read_to_string(run_dir.join("faults.jsonl"))
                    .is_ok_and(|journal| journal.contains("\"event\":\"applied\""))
            });
        if let Some(run_dir) = applied {
            break run_dir;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the run ended ({status}) before its kill fault:\n{}",
                printed()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no kill fault applied within 150 s; the run printed:\n{}",
            printed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.start_kill().expect("SIGKILL the run");
    let _ = child.wait().await;
    let cluster = DockerCluster::attach(&run_dir.join("cluster"))
        .await
        .expect("the run's project outlived its harness");
    assert!(!cluster.state("nats2").await.expect("inspect").running);
    let containers: Vec<String> = cluster
        .spec()
        .nodes
        .iter()
        .map(|n| n.container.clone())
        .collect();
    drop(cluster);

    let run_arg = run_dir.display().to_string();
    let heal = aivo(&["heal", &run_arg], &[], Duration::from_secs(120)).await;
    assert_eq!(heal.code_or(), 0, "{}", text(&heal));
    let shown = text(&heal);
    assert!(
        shown.contains("replayed start nats2 through the Docker API"),
        "{shown}"
    );
    assert!(
        shown.contains("removed the run's compose project"),
        "{shown}"
    );
    for container in &containers {
        assert!(
            !docker_object_exists("container", container),
            "{container} left behind"
        );
    }
    let entries = journal::read(&run_dir.join("faults.jsonl")).expect("journal");
    assert!(journal::active(&entries).is_empty(), "{entries:?}");
}

/// corrupt-store on the docker backend: the container is killed, its store's message blocks are
/// changed in the host directory bind-mounted at `/data`, every change journaled, and it starts
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn docker_corrupt_store_changes_the_bind_mounted_store_and_journals_it() {
    use aivo_load::chaos::corrupt_store::{CorruptMode, CorruptSpec, FileClass};
    let chaos = DockerChaos::start("corrupt").await;
    for i in 0..50 {
        publish_acked(
            &chaos.js,
            &format!("docker.data.{i}"),
            "payload",
            Duration::from_secs(20),
        )
        .await
        .expect("publish");
    }
    let spec = CorruptSpec {
        stream: "DOCKER".into(),
        files: FileClass::Blocks,
        mode: CorruptMode::Bitflip { bits: 3 },
    };
    let event = chaos.inject(Fault::CorruptStore(spec), "nats2").await;
    assert_eq!(event.node, "nats2");
    let entries = journal::read(&chaos.dir.path().join("faults.jsonl")).expect("journal");
    let (store, changes) = entries
        .iter()
        .find_map(|e| match e {
            journal::JournalEntry::Changed { store, changes, .. } => Some((store, changes)),
            _ => None,
        })
        .expect("a changed entry");
    assert_eq!(
        store,
        &chaos.cluster.spec().nodes[1].store.join("jetstream")
    );
    assert!(!changes.is_empty());
    for change in changes {
        assert!(
            store.join(&change.file).exists() && change.file.to_string_lossy().ends_with(".blk"),
            "{change:?}"
        );
    }
    chaos.revert_whole("corrupt-store").await;
    chaos.finish_whole().await;
}
