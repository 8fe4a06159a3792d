//! Reading a cluster's state from the nodes' HTTP monitoring endpoints.
//!
//! The endpoints sit on loopback (local backend) or a trusted network (external), answer small JSON
//! documents and need no TLS, so a few lines of HTTP/1.1 over a Tokio `TcpStream` replace a heavy
//! HTTP client. Every request has a deadline: a hung node must show up as "unreachable", never as a
//! hung harness.
//!
//! Typed views cover what the harness uses (`/healthz`, `/routez`, `/varz`, `/jsz`, `/connz`);
//! [`ClusterStatus`] gathers them for `cluster status`, startup checks and reports, and
//! [`meta_leader`] / [`stream_leader`] serve the chaos targets `leader:STREAM`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::endpoints::{ClusterEndpoints, NodeEndpoints};

/// Deadline of one monitoring request (connect, send and read the whole answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest answer read; `/jsz?streams=true` on a busy account stays far below it.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Why a monitoring request failed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{url:?} is not an http://host:port monitoring URL")]
    InvalidUrl { url: String },
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: malformed HTTP answer: {reason}")]
    Malformed { url: String, reason: String },
    #[error("{url}: unexpected JSON: {source}")]
    Json {
        url: String,
        source: serde_json::Error,
    },
}

/// A raw answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Splits `http://host:port[/...]` into `host:port`.
fn authority(base: &str) -> Result<String, MonitorError> {
    let invalid = || MonitorError::InvalidUrl {
        url: base.to_string(),
    };
    let rest = base.trim().strip_prefix("http://").ok_or_else(invalid)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid());
    }
    Ok(if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

/// `GET base + path` with a deadline; any status code is returned as data.
pub async fn get(base: &str, path: &str, timeout: Duration) -> Result<HttpResponse, MonitorError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let host = authority(base)?;
    let request = async {
        let mut stream = TcpStream::connect(&host).await?;
        let head =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut raw)
            .await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(timeout, request).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(source)) => return Err(MonitorError::Io { url, source }),
        Err(_) => return Err(MonitorError::Timeout { url, timeout }),
    };
    parse_response(&raw).map_err(|reason| MonitorError::Malformed { url, reason })
}

/// Parses a complete HTTP/1.1 answer: status line, headers, then a body framed by Content-Length,
/// chunked encoding, or the end of the connection.
fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(length) = length {
        body.get(..length)
            .ok_or_else(|| format!("body shorter than Content-Length {length}"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// `GET` a JSON document; statuses other than 200 are errors.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    base: &str,
    path: &str,
) -> Result<T, MonitorError> {
    get_json_within(base, path, REQUEST_TIMEOUT).await
}

/// [`get_json`] with a deadline of its own (a sampler that must not wait [`REQUEST_TIMEOUT`]).
pub async fn get_json_within<T: serde::de::DeserializeOwned>(
    base: &str,
    path: &str,
    timeout: Duration,
) -> Result<T, MonitorError> {
    let response = get(base, path, timeout).await?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    if response.status != 200 {
        return Err(MonitorError::Status {
            url,
            status: response.status,
            body: String::from_utf8_lossy(&response.body).trim().to_string(),
        });
    }
    serde_json::from_slice(&response.body).map_err(|source| MonitorError::Json { url, source })
}

/// What `/healthz` says (it answers 503 with a reason while JetStream is not current).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum Health {
    Ok,
    Unhealthy(String),
}

#[derive(Debug, Deserialize)]
struct HealthzBody {
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: String,
}

/// `/healthz`: whether the node serves clients and, with JetStream, is current with the meta leader.
pub async fn healthz(base: &str) -> Result<Health, MonitorError> {
    let response = get(base, "/healthz", REQUEST_TIMEOUT).await?;
    let body: Option<HealthzBody> = serde_json::from_slice(&response.body).ok();
    match (response.status, body) {
        (200, _) => Ok(Health::Ok),
        (status, Some(body)) => Ok(Health::Unhealthy(if body.error.is_empty() {
            format!("{} (HTTP {status})", body.status)
        } else {
            body.error
        })),
        (status, None) => Ok(Health::Unhealthy(format!("HTTP {status}"))),
    }
}

/// One route connection in `/routez`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteInfo {
    pub rid: u64,
    pub remote_id: String,
    /// The peer's server_name (nats-server ≥ 2.10).
    pub remote_name: String,
    pub did_solicit: bool,
    pub is_configured: bool,
    pub ip: String,
    pub port: u16,
}

impl RouteInfo {
    /// The peer's name, or its server id on servers that do not report names.
    pub fn peer(&self) -> &str {
        if self.remote_name.is_empty() {
            &self.remote_id
        } else {
            &self.remote_name
        }
    }
}

/// `/routez`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Routez {
    pub server_id: String,
    pub server_name: String,
    /// Route connections, counting every connection of a route pool.
    pub num_routes: u64,
    pub routes: Vec<RouteInfo>,
}

impl Routez {
    /// Distinct peers this node has at least one route to, sorted.
    pub fn peers(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.routes.iter().map(RouteInfo::peer).collect();
        set.into_iter().map(str::to_string).collect()
    }
}

/// `/routez`: every route connection and its peer.
pub async fn routez(base: &str) -> Result<Routez, MonitorError> {
    get_json(base, "/routez").await
}

/// The parts of `/varz` the harness reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Varz {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub host: String,
    /// Client port.
    pub port: u16,
    pub connections: u64,
    pub total_connections: u64,
    pub routes: u64,
    /// Resident memory of the server process, bytes.
    pub mem: u64,
    /// CPU of the server process, percent of one core (150.0 = one and a half cores).
    pub cpu: f64,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub slow_consumers: u64,
    pub uptime: String,
    /// JetStream's usage on this node (all zero when JetStream is off).
    pub jetstream: VarzJetStream,
    /// Clients must authenticate.
    pub auth_required: bool,
    /// Clients must speak TLS.
    pub tls_required: bool,
    /// Clients must present a certificate the server verifies.
    pub tls_verify: bool,
    /// The system account's name (`$SYS` unless configured).
    pub system_account: String,
    /// The route listener.
    pub cluster: VarzCluster,
}

/// The `cluster` object of `/varz`: the node's route listener.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VarzCluster {
    pub name: String,
    /// The route listen host.
    pub addr: String,
    pub cluster_port: u16,
    /// Routes speak TLS.
    pub tls_required: bool,
    /// Route peers must present a certificate the node verifies.
    pub tls_verify: bool,
}

/// The `jetstream` object of `/varz`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VarzJetStream {
    pub stats: VarzJetStreamStats,
    pub config: VarzJetStreamConfig,
}

/// `jetstream.config` of `/varz`: the node's JetStream limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VarzJetStreamConfig {
    /// `max_memory_store`, bytes.
    pub max_memory: u64,
    /// `max_file_store`, bytes.
    pub max_storage: u64,
    /// The JetStream domain; empty if none.
    pub domain: String,
}

/// `jetstream.stats` of `/varz`: what this node's JetStream holds.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VarzJetStreamStats {
    /// Bytes of memory storage in use.
    pub memory: u64,
    /// Bytes of file storage in use (every replica this node holds).
    pub storage: u64,
}

/// `/varz`: server identity, version and traffic counters.
pub async fn varz(base: &str) -> Result<Varz, MonitorError> {
    get_json(base, "/varz").await
}

/// `/varz` with a deadline of its own: the per-second resource sampler asks every second and a node
/// that does not answer within `timeout` counts as unreachable for that sample.
pub async fn varz_within(base: &str, timeout: Duration) -> Result<Varz, MonitorError> {
    get_json_within(base, "/varz", timeout).await
}

/// `/connz` counts.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Connz {
    pub num_connections: u64,
    pub total: u64,
}

/// `/connz` counts only (one connection listed, not all).
pub async fn connz(base: &str) -> Result<Connz, MonitorError> {
    get_json(base, "/connz?limit=1").await
}

/// A member of a RAFT group as `/jsz` reports it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PeerInfo {
    pub name: String,
    pub current: bool,
    pub offline: bool,
    pub lag: u64,
    /// Nanoseconds since the leader last heard from this peer.
    pub active: u64,
}

/// A RAFT group (the meta group or a stream's group).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RaftGroup {
    pub name: String,
    /// The RAFT group (`S-R3F-…`, which the server's RAFT log lines name) of a stream's group;
    /// empty for the meta group.
    pub raft_group: String,
    /// server_name of the leader; empty while there is none.
    pub leader: String,
    pub replicas: Vec<PeerInfo>,
    pub cluster_size: u64,
}

/// A stream's state in `/jsz?streams=true`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct StreamState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Sequences missing between `first_seq` and `last_seq` on this node's copy.
    pub num_deleted: u64,
    pub consumer_count: u64,
}

/// One stream in `/jsz?accounts=true&streams=true`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct StreamDetail {
    pub name: String,
    pub cluster: Option<RaftGroup>,
    pub state: StreamState,
}

/// One account in `/jsz?accounts=true`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AccountDetail {
    pub name: String,
    pub stream_detail: Vec<StreamDetail>,
}

/// `/jsz`: JetStream usage of one node and its view of the meta group.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Jsz {
    pub server_id: String,
    pub disabled: bool,
    /// Bytes of memory storage in use.
    pub memory: u64,
    /// Bytes of file storage in use.
    pub storage: u64,
    pub streams: u64,
    pub consumers: u64,
    pub messages: u64,
    pub bytes: u64,
    pub meta_cluster: Option<RaftGroup>,
    pub account_details: Vec<AccountDetail>,
    pub config: JetStreamConfig,
}

/// The `config` object of `/jsz`: the node's JetStream limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct JetStreamConfig {
    /// `max_file_store`, bytes.
    pub max_storage: u64,
    /// `max_memory_store`, bytes.
    pub max_memory: u64,
}

impl Jsz {
    /// The meta leader this node knows of.
    pub fn meta_leader(&self) -> Option<&str> {
        self.meta_cluster
            .as_ref()
            .map(|m| m.leader.as_str())
            .filter(|l| !l.is_empty())
    }

    /// The Raft groups this node reports for `stream` (one per account that has it).
    pub fn stream_groups<'a, 'b>(
        &'a self,
        stream: &'b str,
    ) -> impl Iterator<Item = &'a RaftGroup> + 'b
    where
        'a: 'b,
    {
        self.account_details
            .iter()
            .flat_map(|a| &a.stream_detail)
            .filter(move |s| s.name == stream)
            .filter_map(|s| s.cluster.as_ref())
    }

    /// The leader of a stream hosted on this node.
    pub fn stream_leader(&self, stream: &str) -> Option<&str> {
        self.stream_groups(stream)
            .map(|c| c.leader.as_str())
            .find(|l| !l.is_empty())
    }
}

/// `/jsz`: usage totals and the meta group.
pub async fn jsz(base: &str) -> Result<Jsz, MonitorError> {
    get_json(base, "/jsz").await
}

/// `/jsz` with per-account stream details.
pub async fn jsz_streams(base: &str) -> Result<Jsz, MonitorError> {
    get_json(base, "/jsz?accounts=true&streams=true").await
}

/// The name of `stream`'s Raft group (its directory under `$SYS/_js_/`), asking each node in
/// turn (only replicas report it).
pub async fn stream_raft_group(endpoints: &ClusterEndpoints, stream: &str) -> Option<String> {
    for node in &endpoints.nodes {
        if let Ok(jsz) = jsz_streams(&node.monitor_url).await {
            let group = jsz
                .stream_groups(stream)
                .map(|c| c.raft_group.clone())
                .find(|g| !g.is_empty());
            if group.is_some() {
                return group;
            }
        }
    }
    None
}

/// The replicas of `stream` that follow its leader (server names), from the first node that
/// hosts the stream and knows its leader.
pub async fn stream_followers(endpoints: &ClusterEndpoints, stream: &str) -> Vec<String> {
    for node in &endpoints.nodes {
        let Ok(jsz) = jsz_streams(&node.monitor_url).await else {
            continue;
        };
        let group = jsz.stream_groups(stream).find(|c| !c.leader.is_empty());
        if let Some(group) = group {
            // A node lists its peers, not itself.
            return std::iter::once(node.name.clone())
                .chain(group.replicas.iter().map(|r| r.name.clone()))
                .filter(|n| *n != group.leader)
                .collect();
        }
    }
    Vec::new()
}

/// The JetStream meta leader's server_name, asking each node in turn until one knows.
pub async fn meta_leader(endpoints: &ClusterEndpoints) -> Option<String> {
    for node in &endpoints.nodes {
        if let Ok(jsz) = jsz(&node.monitor_url).await {
            if let Some(leader) = jsz.meta_leader() {
                return Some(leader.to_string());
            }
        }
    }
    None
}

/// The server_name leading `stream`, asking each node in turn (only replicas report the stream).
pub async fn stream_leader(endpoints: &ClusterEndpoints, stream: &str) -> Option<String> {
    for node in &endpoints.nodes {
        if let Ok(jsz) = jsz_streams(&node.monitor_url).await {
            if let Some(leader) = jsz.stream_leader(stream) {
                return Some(leader.to_string());
            }
        }
    }
    None
}

/// Route summary of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteSummary {
    /// Route connections (a pool per peer).
    pub connections: u64,
    /// Distinct peers, sorted.
    pub peers: Vec<String>,
}

/// JetStream usage of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JetStreamUsage {
    pub streams: u64,
    pub consumers: u64,
    pub messages: u64,
    pub bytes: u64,
    /// File storage in use.
    pub storage: u64,
    pub memory: u64,
}

/// Everything `cluster status` shows about one node. `None` fields could not be read; `errors` says
/// why.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub client_url: String,
    pub monitor_url: String,
    /// `None` when the node did not answer at all.
    pub health: Option<Health>,
    pub version: Option<String>,
    pub routes: Option<RouteSummary>,
    pub connections: Option<u64>,
    pub jetstream: Option<JetStreamUsage>,
    /// The meta leader as this node sees it.
    pub meta_leader: Option<String>,
    pub errors: Vec<String>,
}

impl NodeStatus {
    /// `/healthz` answered OK.
    pub fn is_healthy(&self) -> bool {
        self.health == Some(Health::Ok)
    }

    /// Reads every endpoint of one node concurrently.
    pub async fn gather(node: &NodeEndpoints) -> Self {
        let base = node.monitor_url.as_str();
        let (health, varz, routez, jsz) =
            tokio::join!(healthz(base), varz(base), routez(base), jsz(base));
        fn keep<T>(result: Result<T, MonitorError>, errors: &mut Vec<String>) -> Option<T> {
            result.map_err(|err| errors.push(err.to_string())).ok()
        }
        let mut errors = Vec::new();
        let health = keep(health, &mut errors);
        let varz = keep(varz, &mut errors);
        let routez = keep(routez, &mut errors);
        let jsz = keep(jsz, &mut errors);
        // A node that is down fails every endpoint the same way; one line says it.
        if health.is_none() {
            errors.truncate(1);
        }
        NodeStatus {
            name: node.name.clone(),
            client_url: node.client_url.clone(),
            monitor_url: node.monitor_url.clone(),
            health,
            version: varz.as_ref().map(|v| v.version.clone()),
            routes: routez.as_ref().map(|r| RouteSummary {
                connections: r.num_routes,
                peers: r.peers(),
            }),
            connections: varz.as_ref().map(|v| v.connections),
            meta_leader: jsz.as_ref().and_then(Jsz::meta_leader).map(str::to_string),
            jetstream: jsz.map(|j| JetStreamUsage {
                streams: j.streams,
                consumers: j.consumers,
                messages: j.messages,
                bytes: j.bytes,
                storage: j.storage,
                memory: j.memory,
            }),
            errors,
        }
    }
}

/// A snapshot of a whole cluster, for `cluster status` and reports.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    /// The meta leader most nodes agree on (the first one reported).
    pub meta_leader: Option<String>,
}

impl ClusterStatus {
    /// Reads every node concurrently.
    pub async fn gather(endpoints: &ClusterEndpoints) -> Self {
        let nodes = futures::future::join_all(endpoints.nodes.iter().map(NodeStatus::gather)).await;
        let meta_leader = nodes.iter().find_map(|n| n.meta_leader.clone());
        Self { nodes, meta_leader }
    }

    /// Every node healthy, with routes to every other node, and a meta leader elected.
    pub fn is_healthy(&self) -> bool {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        self.meta_leader.is_some()
            && self.nodes.iter().all(|n| {
                n.is_healthy()
                    && n.routes.as_ref().is_some_and(|r| {
                        names
                            .iter()
                            .filter(|&&peer| peer != n.name)
                            .all(|peer| r.peers.iter().any(|p| p == peer))
                    })
            })
    }

    /// True if no node answered at all.
    pub fn all_unreachable(&self) -> bool {
        self.nodes.iter().all(|n| n.health.is_none())
    }

    /// A fixed-width table, one row per node, then the meta leader and any errors.
    pub fn render_table(&self) -> String {
        let headers = [
            "NODE",
            "CLIENT URL",
            "HEALTH",
            "ROUTES",
            "CONNS",
            "STREAMS",
            "MESSAGES",
            "BYTES",
            "STORE",
        ];
        let dash = || "-".to_string();
        let rows: Vec<[String; 9]> = self
            .nodes
            .iter()
            .map(|n| {
                let js = n.jetstream.as_ref();
                [
                    n.name.clone(),
                    n.client_url.clone(),
                    match &n.health {
                        None => "unreachable".to_string(),
                        Some(Health::Ok) => "ok".to_string(),
                        Some(Health::Unhealthy(_)) => "UNHEALTHY".to_string(),
                    },
                    n.routes.as_ref().map_or_else(dash, |r| {
                        let peers = if r.peers.is_empty() {
                            "none".to_string()
                        } else {
                            r.peers.join(",")
                        };
                        format!("{} ({peers})", r.connections)
                    }),
                    n.connections.map_or_else(dash, |c| c.to_string()),
                    js.map_or_else(dash, |j| j.streams.to_string()),
                    js.map_or_else(dash, |j| j.messages.to_string()),
                    js.map_or_else(dash, |j| human_bytes(j.bytes)),
                    js.map_or_else(dash, |j| human_bytes(j.storage)),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&headers.map(str::to_string));
        for row in &rows {
            out.push_str(&line(row));
        }
        out.push_str(&format!(
            "meta leader: {}\n",
            self.meta_leader.as_deref().unwrap_or("none")
        ));
        for n in &self.nodes {
            if let Some(Health::Unhealthy(reason)) = &n.health {
                out.push_str(&format!("{}: unhealthy: {reason}\n", n.name));
            }
            for err in &n.errors {
                out.push_str(&format!("{}: {err}\n", n.name));
            }
        }
        out
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Builds endpoints for an external cluster from its monitoring URLs: names and client ports come from
/// each node's `/varz` (a node that does not answer keeps a placeholder name and port 4222).
pub async fn discover_endpoints(monitor_urls: &[String]) -> ClusterEndpoints {
    let answers = futures::future::join_all(monitor_urls.iter().map(|url| varz(url))).await;
    let nodes = monitor_urls
        .iter()
        .zip(answers)
        .enumerate()
        .map(|(i, (url, varz))| {
            let host = authority(url)
                .ok()
                .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.to_string()))
                .unwrap_or_else(|| "127.0.0.1".to_string());
            let (name, port) = match varz {
                Ok(v) if !v.server_name.is_empty() => (v.server_name, v.port),
                Ok(v) => (format!("node{}", i + 1), v.port),
                Err(_) => (format!("node{}", i + 1), 4222),
            };
            NodeEndpoints {
                name,
                client_url: format!("nats://{host}:{port}"),
                monitor_url: url.trim_end_matches('/').to_string(),
            }
        })
        .collect();
    ClusterEndpoints {
        nodes,
        security: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}\r\nextra";
        assert_eq!(parse_response(plain).expect("plain").body, b"{}\r\n");
        let chunked =
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        let response = parse_response(chunked).expect("chunked");
        assert_eq!(response.status, 503);
        assert_eq!(response.body, b"{\"a\":1}");
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn authority_needs_http() {
        assert_eq!(
            authority("http://127.0.0.1:8222/").expect("ok"),
            "127.0.0.1:8222"
        );
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://").is_err());
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn varz_reads_cpu_memory_and_jetstream_storage() {
        let body = r#"{"server_name":"nats1","cpu":37.5,"mem":41943040,"cores":2,
            "jetstream":{"config":{"max_memory":1,"store_dir":"/x"},
                         "stats":{"memory":0,"storage":123456,"reserved_storage":0,"accounts":1,
                                  "api":{"total":3,"errors":0}},
                         "meta":{"leader":"nats2","cluster_size":3}}}"#;
        let varz: Varz = serde_json::from_str(body).expect("varz");
        assert_eq!(varz.cpu, 37.5);
        assert_eq!(varz.mem, 41_943_040);
        assert_eq!(varz.jetstream.stats.storage, 123_456);
        // A server without JetStream has no `jetstream` object.
        let bare: Varz = serde_json::from_str(r#"{"cpu":1.0,"mem":2}"#).expect("bare varz");
        assert_eq!(bare.jetstream.stats.storage, 0);
    }

    #[tokio::test]
    async fn unreachable_node_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = healthz(&format!("http://127.0.0.1:{port}"))
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, MonitorError::Io { .. }), "{err}");
    }
}
