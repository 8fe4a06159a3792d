//! What a stream holds right now and whether its replicas are ready, read through the JetStream
//! API with every call bounded: a run waits for this before its load (so it does not start into an
//! election) and again before reading back after faults.

use std::time::Duration;

use anyhow::anyhow;

/// How long a stream may take to have a leader and its replicas online.
const REPLICATED_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamPosition {
    pub last_seq: u64,
    pub messages: u64,
    pub first_seq: u64,
}

/// The stream's position, or `None` when the cluster no longer has the stream at all (a
/// coordinated power loss can take a stream's whole store, its definition included).
pub async fn stream_position_if_any(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> anyhow::Result<Option<StreamPosition>> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    use async_nats::jetstream::ErrorCode;
    let lookup = tokio::time::timeout(Duration::from_secs(10), js.get_stream(stream)).await;
    if let Ok(Err(err)) = &lookup {
        if let GetStreamErrorKind::JetStream(js_err) = err.kind() {
            if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND {
                return Ok(None);
            }
        }
    }
    stream_position(js, stream).await.map(Some)
}

/// The stream's last and first sequence and message count.
pub async fn stream_position(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> anyhow::Result<StreamPosition> {
    let read = async {
        let mut handle = js
            .get_stream(stream)
            .await
            .map_err(|e| anyhow!("stream {stream}: {e}"))?;
        let info = handle
            .info()
            .await
            .map_err(|e| anyhow!("stream {stream} info: {e}"))?;
        Ok::<_, anyhow::Error>(StreamPosition {
            last_seq: info.state.last_sequence,
            messages: info.state.messages,
            first_seq: info.state.first_sequence,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| anyhow!("stream {stream}: no answer within 10s"))
        .and_then(|r| r)
}

/// Waits until a stream has a leader and every replica is online (and, with `require_current`,
/// current), so the load does not start into an election (whose lost acks would be the harness's
/// doing, not the cluster's under load).
pub async fn wait_until_replicated(
    js: &async_nats::jetstream::Context,
    stream: &str,
    require_current: bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + REPLICATED_TIMEOUT;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        let info = async {
            js.get_stream(stream)
                .await
                .ok()?
                .info()
                .await
                .ok()
                .map(|i| i.cluster.clone())
        };
        match tokio::time::timeout(Duration::from_secs(2), info).await {
            Ok(Some(Some(cluster))) => {
                let lagging: Vec<&str> = cluster
                    .replicas
                    .iter()
                    .filter(|p| p.offline || (require_current && !p.current))
                    .map(|p| p.name.as_str())
                    .collect();
                match (&cluster.leader, lagging.is_empty()) {
                    (Some(_), true) => return Ok(()),
                    (None, _) => last = "no leader".into(),
                    (Some(_), false) => {
                        last = format!("replicas not current: {}", lagging.join(", "))
                    }
                }
            }
            // A single server answers without cluster info: nothing to wait for.
            Ok(Some(None)) => return Ok(()),
            _ => last = "stream info unanswered".into(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(anyhow!("stream {stream} not ready within 20s: {last}"))
}

/// A stream's copy as its current leader holds it, with the sequences it lacks inside its range
/// (`deleted_details`): what the per-replica comparisons read, one leader at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderCopy {
    /// The server that answered as leader (`None`: a single server, no cluster info).
    pub leader: Option<String>,
    /// The leader and every replica, leader first.
    pub peers: Vec<String>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub messages: u64,
    /// Sequences between `first_seq` and `last_seq` this copy lacks, ascending.
    pub deleted: Vec<u64>,
}

impl LeaderCopy {
    /// How many of the sequences `lo..=hi` this copy holds.
    pub fn held_between(&self, lo: u64, hi: u64) -> u64 {
        let lo = lo.max(self.first_seq);
        let hi = hi.min(self.last_seq);
        if hi < lo {
            return 0;
        }
        let start = self.deleted.partition_point(|&s| s < lo);
        let end = self.deleted.partition_point(|&s| s <= hi);
        (hi - lo + 1) - (end - start) as u64
    }

    /// Whether this copy holds sequence `seq`.
    pub fn holds(&self, seq: u64) -> bool {
        (self.first_seq..=self.last_seq).contains(&seq) && self.deleted.binary_search(&seq).is_err()
    }
}

#[derive(serde::Deserialize)]
struct InfoReply {
    state: InfoState,
    cluster: Option<InfoCluster>,
}

#[derive(serde::Deserialize)]
struct InfoState {
    messages: u64,
    first_seq: u64,
    last_seq: u64,
    #[serde(default)]
    deleted: Option<Vec<u64>>,
}

#[derive(serde::Deserialize)]
struct InfoCluster {
    leader: Option<String>,
    #[serde(default)]
    replicas: Vec<InfoPeer>,
}

#[derive(serde::Deserialize)]
struct InfoPeer {
    name: String,
}

#[derive(serde::Deserialize)]
struct StepdownReply {
    #[serde(default)]
    success: bool,
}

type ApiReply<T> = async_nats::jetstream::response::Response<T>;

/// The stream's copy on its current leader, interior gaps listed (bounded by 10 s).
pub async fn leader_copy(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> anyhow::Result<LeaderCopy> {
    let body = serde_json::json!({ "deleted_details": true });
    let request = js.request::<_, _, ApiReply<InfoReply>>(format!("STREAM.INFO.{stream}"), &body);
    let reply = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .map_err(|_| anyhow!("stream {stream} info: no answer within 10s"))?
        .map_err(|e| anyhow!("stream {stream} info: {e}"))?;
    let info = match reply {
        ApiReply::Ok(info) => info,
        ApiReply::Err { error } => return Err(anyhow!("stream {stream} info: {error}")),
    };
    let leader = info.cluster.as_ref().and_then(|c| c.leader.clone());
    let peers = leader
        .iter()
        .cloned()
        .chain(
            info.cluster
                .into_iter()
                .flat_map(|c| c.replicas.into_iter().map(|p| p.name)),
        )
        .collect();
    let mut deleted = info.state.deleted.unwrap_or_default();
    deleted.sort_unstable();
    Ok(LeaderCopy {
        leader,
        peers,
        first_seq: info.state.first_seq,
        last_seq: info.state.last_seq,
        messages: info.state.messages,
        deleted,
    })
}

/// Moves the stream's leadership to `node` (a stepdown naming it as the preferred successor,
/// nats-server 2.11 and later) and waits up to `within` until it answers as leader.
pub async fn move_leader(
    js: &async_nats::jetstream::Context,
    stream: &str,
    node: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        match leader_copy(js, stream).await {
            Ok(copy) if copy.leader.as_deref() == Some(node) => return Ok(()),
            Ok(copy) if copy.leader.is_some() => {
                let body = serde_json::json!({ "placement": { "preferred": node } });
                let request = js.request::<_, _, ApiReply<StepdownReply>>(
                    format!("STREAM.LEADER.STEPDOWN.{stream}"),
                    &body,
                );
                last = match tokio::time::timeout(Duration::from_secs(5), request).await {
                    Ok(Ok(ApiReply::Ok(reply))) if reply.success => "stepped down".into(),
                    Ok(Ok(ApiReply::Ok(_))) => "stepdown refused".into(),
                    Ok(Ok(ApiReply::Err { error })) => error.to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "stepdown unanswered within 5s".into(),
                };
            }
            Ok(_) => last = "no leader".into(),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(anyhow!(
        "{node} did not become {stream}'s leader within {within:?} ({last})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_counts_what_it_holds_inside_a_window() {
        let copy = LeaderCopy {
            first_seq: 11,
            last_seq: 100,
            messages: 87,
            deleted: vec![20, 21, 50],
            ..LeaderCopy::default()
        };
        assert_eq!(copy.held_between(1, 200), 87);
        assert_eq!(copy.held_between(20, 21), 0);
        assert_eq!(copy.held_between(19, 22), 2);
        assert_eq!(copy.held_between(101, 200), 0);
        assert!(copy.holds(11) && copy.holds(100) && !copy.holds(10) && !copy.holds(50));
    }
}
