//! Proof that a fault took effect, and that the cluster recovered, read from the nodes' monitoring
//! endpoints (and, for latency and bandwidth, from a real request crossing the route) — never from
//! the harness's own idea of what it did.
//!
//! [`Effect::wait`] polls until the effect shows or a deadline passes and says when it showed, which
//! is the moment the run timeline records.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::monitor::{self, ClusterStatus, Health, MonitorError};
use crate::cluster::ClusterEndpoints;

/// How often an effect is polled.
const POLL: Duration = Duration::from_millis(100);

/// What counts as no room left for [`Effect::StorageCapped`]: a few of the quota mode's headroom.
pub const CAPPED_ROOM: u64 = 4 * crate::cluster::storage::QUOTA_HEADROOM;

/// Deadline of the `/healthz` probe that tells a frozen node from a slow one.
const FROZEN_PROBE: Duration = Duration::from_millis(1500);

/// Something observable about a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The node's monitoring port refuses connections.
    Down { node: String },
    /// The node's monitoring port accepts but never answers (SIGSTOP).
    Frozen { node: String },
    /// The node answers `/healthz` OK.
    Back { node: String },
    /// The node's process is up again (`all`: every node's): `/healthz` answers, OK or not (a
    /// store that lost data may keep its JetStream unhealthy for long; that is the fault's
    /// consequence, not its absence, and the revert's whole-cluster check judges it).
    Running { node: String },
    /// The node answers but `/routez` lists no route.
    Isolated { node: String },
    /// Every peer has lost its route to the node or sees it as not current in the meta group.
    Unheard { node: String },
    /// `a`'s `/routez` no longer lists `b`.
    Split { a: String, b: String },
    /// A request from a client on `from` to a responder on `to` takes at least `at_least`.
    SlowLink {
        from: String,
        to: String,
        at_least: Duration,
        probe_bytes: usize,
    },
    /// JetStream is disabled on the node, or its `/healthz` fails.
    StorageFull { node: String },
    /// The node's `/jsz` reports at most [`CAPPED_ROOM`] of file storage left under its
    /// `max_file_store` (the quota mode of fill-storage; writes fill the rest).
    StorageCapped { node: String },
    /// Every node healthy with routes to every peer, a meta leader, every stream led with no replica
    /// offline (see [`streams_led`]).
    Whole,
}

/// The outcome of waiting for an effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confirmation {
    pub confirmed: bool,
    /// From the start of the wait to the first observation (or to the deadline).
    pub after: Duration,
    /// What was observed, or the last reason it was not.
    pub detail: String,
}

impl Effect {
    /// A short human form.
    pub fn describe(&self) -> String {
        match self {
            Self::Down { node } => format!("{node} down (/healthz refused)"),
            Self::Frozen { node } => format!("{node} frozen (/healthz unanswered)"),
            Self::Back { node } => format!("{node} healthy"),
            Self::Running { node } => format!("{node} running"),
            Self::Isolated { node } => format!("{node} has 0 routes"),
            Self::Unheard { node } => format!("peers no longer hear {node}"),
            Self::Split { a, b } => format!("no route {a}<->{b}"),
            Self::SlowLink {
                from, to, at_least, ..
            } => {
                format!("request {from}->{to} takes >= {at_least:?}")
            }
            Self::StorageFull { node } => format!("JetStream out of storage on {node}"),
            Self::StorageCapped { node } => format!("JetStream storage on {node} capped"),
            Self::Whole => "cluster whole".to_string(),
        }
    }

    /// Polls until the effect shows (`confirmed`) or `timeout` passes.
    pub async fn wait(&self, endpoints: &ClusterEndpoints, timeout: Duration) -> Confirmation {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut last = "not observed yet".to_string();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe = tokio::time::timeout(remaining.max(POLL), self.observe(endpoints)).await;
            match probe {
                Ok(Ok(detail)) => {
                    return Confirmation {
                        confirmed: true,
                        after: started.elapsed(),
                        detail,
                    }
                }
                Ok(Err(reason)) => last = reason,
                Err(_) => last = format!("probe unanswered: {last}"),
            }
            if Instant::now() >= deadline {
                return Confirmation {
                    confirmed: false,
                    after: started.elapsed(),
                    detail: format!("not seen within {timeout:?}: {last}"),
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One observation: `Ok(what was seen)` if the effect shows now, else why not.
    pub async fn observe(&self, endpoints: &ClusterEndpoints) -> Result<String, String> {
        let url = |node: &str| monitor_url(endpoints, node);
        match self {
            Self::Down { node } => down(node, &url(node)?).await,
            Self::Frozen { node } => frozen(node, &url(node)?).await,
            Self::Back { node } => match monitor::healthz(&url(node)?).await {
                Ok(Health::Ok) => Ok(format!("{node} /healthz ok")),
                Ok(Health::Unhealthy(reason)) => Err(format!("{node} unhealthy: {reason}")),
                Err(err) => Err(err.to_string()),
            },
            Self::Running { node } if node == super::power_loss::ALL_NODES => {
                let mut seen = Vec::new();
                for n in &endpoints.nodes {
                    seen.push(running(&n.name, &n.monitor_url).await?);
                }
                Ok(seen.join("; "))
            }
            Self::Running { node } => running(node, &url(node)?).await,
            Self::Isolated { node } => isolated(node, &url(node)?).await,
            Self::Unheard { node } => unheard(endpoints, node).await,
            Self::Split { a, b } => split(a, b, &url(a)?).await,
            Self::SlowLink {
                from,
                to,
                at_least,
                probe_bytes,
            } => {
                let took = probe_round_trip(endpoints, from, to, *probe_bytes).await?;
                if took >= *at_least {
                    Ok(format!(
                        "{probe_bytes} B request {from}->{to} took {took:?}"
                    ))
                } else {
                    Err(format!("request {from}->{to} took only {took:?}"))
                }
            }
            Self::StorageFull { node } => storage_full(node, &url(node)?).await,
            Self::StorageCapped { node } => storage_capped(node, &url(node)?).await,
            Self::Whole => whole(endpoints).await,
        }
    }
}

/// [`Effect::Running`]: `/healthz` answers, healthy or not.
async fn running(node: &str, url: &str) -> Result<String, String> {
    match monitor::healthz(url).await {
        Ok(Health::Ok) => Ok(format!("{node} running, /healthz ok")),
        Ok(Health::Unhealthy(reason)) => {
            Ok(format!("{node} running, /healthz unhealthy: {reason}"))
        }
        Err(err) => Err(err.to_string()),
    }
}

/// The monitoring URL of `node`.
fn monitor_url(endpoints: &ClusterEndpoints, node: &str) -> Result<String, String> {
    endpoints
        .nodes
        .iter()
        .find(|n| n.name == node)
        .map(|n| n.monitor_url.clone())
        .ok_or_else(|| format!("no node {node}"))
}

/// [`Effect::Down`]: `/healthz` fails to connect (any other error is not proof).
async fn down(node: &str, url: &str) -> Result<String, String> {
    match monitor::get(url, "/healthz", FROZEN_PROBE).await {
        Err(MonitorError::Io { source, .. }) => Ok(format!("{node} /healthz: {source}")),
        Err(other) => Err(format!("{node} /healthz: {other}")),
        Ok(answer) => Err(format!("{node} still answers /healthz ({})", answer.status)),
    }
}

/// [`Effect::Frozen`]: `/healthz` connects but times out.
async fn frozen(node: &str, url: &str) -> Result<String, String> {
    match monitor::get(url, "/healthz", FROZEN_PROBE).await {
        Err(MonitorError::Timeout { .. }) => Ok(format!(
            "{node} accepted /healthz and did not answer within {FROZEN_PROBE:?}"
        )),
        Err(other) => Err(format!("{node}: {other}")),
        Ok(answer) => Err(format!("{node} still answers ({})", answer.status)),
    }
}

/// [`Effect::Isolated`]: the node's own `/routez` lists no route.
async fn isolated(node: &str, url: &str) -> Result<String, String> {
    let routes = monitor::routez(url).await.map_err(|e| e.to_string())?;
    if routes.num_routes == 0 {
        Ok(format!("{node} /routez: 0 routes"))
    } else {
        Err(format!("{node} still routes to {:?}", routes.peers()))
    }
}

/// [`Effect::Unheard`]: asked of each peer in turn; the first that still hears the node ends the
/// observation.
async fn unheard(endpoints: &ClusterEndpoints, node: &str) -> Result<String, String> {
    let mut seen = Vec::new();
    for peer in endpoints.nodes.iter().filter(|n| n.name != node) {
        let routes = monitor::routez(&peer.monitor_url)
            .await
            .map_err(|e| e.to_string())?;
        if !routes.peers().iter().any(|p| p == node) {
            seen.push(format!("{} has no route to {node}", peer.name));
            continue;
        }
        let jsz = monitor::jsz(&peer.monitor_url)
            .await
            .map_err(|e| e.to_string())?;
        let stale = jsz.meta_cluster.as_ref().is_some_and(|m| {
            m.replicas
                .iter()
                .any(|r| r.name == node && (!r.current || r.offline))
        });
        if stale {
            seen.push(format!("{} sees {node} as not current", peer.name));
        } else {
            return Err(format!("{} still hears {node}", peer.name));
        }
    }
    Ok(seen.join("; "))
}

/// [`Effect::Split`]: `a`'s `/routez` (at `url`) no longer lists `b`.
async fn split(a: &str, b: &str, url: &str) -> Result<String, String> {
    let routes = monitor::routez(url).await.map_err(|e| e.to_string())?;
    if routes.peers().iter().any(|p| p == b) {
        Err(format!("{a} still routes to {b}"))
    } else {
        Ok(format!(
            "{a} /routez: no route to {b} (peers {:?})",
            routes.peers()
        ))
    }
}

/// [`Effect::StorageFull`]: `/jsz` says JetStream is disabled, else `/healthz` says why not.
async fn storage_full(node: &str, url: &str) -> Result<String, String> {
    if let Ok(jsz) = monitor::jsz(url).await {
        if jsz.disabled {
            return Ok(format!("{node} /jsz: JetStream disabled"));
        }
    }
    match monitor::healthz(url).await {
        Ok(Health::Unhealthy(reason)) => Ok(format!("{node} /healthz: {reason}")),
        Ok(Health::Ok) => Err(format!("{node} JetStream still enabled and healthy")),
        Err(err) => Err(err.to_string()),
    }
}

/// [`Effect::StorageCapped`]: at most [`CAPPED_ROOM`] left under a set `max_file_store`.
async fn storage_capped(node: &str, url: &str) -> Result<String, String> {
    let jsz = monitor::jsz(url).await.map_err(|e| e.to_string())?;
    let room = jsz.config.max_storage.saturating_sub(jsz.storage);
    if jsz.config.max_storage > 0 && room <= CAPPED_ROOM {
        Ok(format!(
            "{node} /jsz: {room} bytes of file storage left (max_storage {}, used {})",
            jsz.config.max_storage, jsz.storage
        ))
    } else {
        Err(format!(
            "{node} /jsz: {room} bytes of file storage left (max_storage {})",
            jsz.config.max_storage
        ))
    }
}

/// The cluster is whole: see [`Effect::Whole`].
async fn whole(endpoints: &ClusterEndpoints) -> Result<String, String> {
    let status = ClusterStatus::gather(endpoints).await;
    if !status.is_healthy() {
        let mut why: Vec<String> = status
            .nodes
            .iter()
            .filter(|n| !n.is_healthy())
            .map(|n| match &n.health {
                Some(Health::Unhealthy(reason)) => format!("{} unhealthy: {reason}", n.name),
                _ => format!("{} not answering /healthz", n.name),
            })
            .collect();
        if status.meta_leader.is_none() {
            why.push("no meta leader".into());
        }
        if why.is_empty() {
            why.push("routes incomplete".into());
        }
        return Err(why.join("; "));
    }
    streams_led(endpoints, false).await?;
    Ok(format!(
        "{} nodes healthy with full routes, meta leader {}, every stream led",
        endpoints.nodes.len(),
        status.meta_leader.unwrap_or_default()
    ))
}

/// Every clustered stream has a leader and, in its leader's view, no replica offline; with
/// `require_current`, every replica also current. An idle stream's followers can stay "not current"
/// in the leader's view until the next write reaches them, so recovery checks leave that to a check
/// made after a publish.
pub async fn streams_led(
    endpoints: &ClusterEndpoints,
    require_current: bool,
) -> Result<String, String> {
    let mut streams = 0;
    for node in &endpoints.nodes {
        let jsz = monitor::jsz_streams(&node.monitor_url)
            .await
            .map_err(|e| e.to_string())?;
        for stream in jsz.account_details.iter().flat_map(|a| &a.stream_detail) {
            let Some(group) = &stream.cluster else {
                continue;
            };
            if group.leader.is_empty() {
                return Err(format!("stream {} has no leader", stream.name));
            }
            // Only a stream's leader tracks its followers.
            if group.leader != node.name {
                continue;
            }
            streams += 1;
            let behind = group
                .replicas
                .iter()
                .find(|r| r.offline || (require_current && !r.current));
            if let Some(replica) = behind {
                return Err(format!(
                    "stream {} replica {} {} (as its leader {} sees it)",
                    stream.name,
                    replica.name,
                    if replica.offline {
                        "offline"
                    } else {
                        "not current"
                    },
                    node.name
                ));
            }
        }
    }
    Ok(format!("{streams} streams led"))
}

/// Times a request from a client on `from` to an echo responder on `to` (so it crosses their route).
async fn probe_round_trip(
    endpoints: &ClusterEndpoints,
    from: &str,
    to: &str,
    bytes: usize,
) -> Result<Duration, String> {
    let client_url = |node: &str| {
        endpoints
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.client_url.clone())
            .ok_or_else(|| format!("no node {node}"))
    };
    let auth = endpoints
        .client_auth(&crate::security::Role::Admin)
        .map_err(|e| e.to_string())?;
    let connect = |url: String| {
        let auth = auth.clone();
        async move {
            let options = async_nats::ConnectOptions::new()
                .name("aivo-load chaos probe")
                .connection_timeout(Duration::from_secs(3));
            auth.apply(options)
                .await
                .map_err(|e| e.to_string())?
                .connect(url.as_str())
                .await
                .map_err(|e| format!("probe connect {url}: {e}"))
        }
    };
    let responder = connect(client_url(to)?).await?;
    let requester = connect(client_url(from)?).await?;
    let subject = format!(
        "_AIVO.chaos.probe.{}.{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ (bytes as u128)
    );
    let mut sub = responder
        .subscribe(subject.clone())
        .await
        .map_err(|e| e.to_string())?;
    let echo = responder.clone();
    let echoing = tokio::spawn(async move {
        while let Some(message) = futures::StreamExt::next(&mut sub).await {
            if let Some(reply) = message.reply {
                let _ = echo.publish(reply, message.payload).await;
            }
        }
    });
    let _ = responder.flush().await;
    let payload = bytes::Bytes::from(vec![b'x'; bytes.max(1)]);
    // The first answers may be "no responders" until the interest crosses the route.
    let deadline = Instant::now() + Duration::from_secs(20);
    let result = loop {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            requester.request(subject.clone(), payload.clone()),
        )
        .await;
        match answer {
            Ok(Ok(_)) => break Ok(started.elapsed()),
            Ok(Err(err)) if Instant::now() < deadline => {
                tracing::debug!("probe {from}->{to}: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(err)) => break Err(format!("probe {from}->{to}: {err}")),
            Err(_) => break Err(format!("probe {from}->{to}: no answer within 20s")),
        }
    };
    echoing.abort();
    result
}
