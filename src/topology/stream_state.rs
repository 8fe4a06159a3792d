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
