//! Control of a local cluster's nodes and links, in process or through its supervisor.
//!
//! A [`ControlOp`] (`op.rs`) is one change to a local cluster (kill a node, cut a link, add latency...). The
//! same value is applied in process by [`LocalCluster::apply`], sent over the supervisor's control
//! socket for a `cluster up` cluster, and written into the fault journal as the way to revert a
//! fault — so `aivo-load heal` can replay a revert long after the process that applied the fault died.
//!
//! The control socket is a Unix socket `control.sock` in the state dir (mode 0600 via the state dir):
//! one JSON request per line, one JSON [`ControlReply`] per line. The supervisor serves it for as long
//! as it owns the cluster; it is only reachable by local users who can open the state dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::local::LocalCluster;
use super::op::{ControlOp, NodeState};

/// How long a client waits for the supervisor to carry out one request (a restart waits for the
/// node to stop gracefully and a storage fill copies a store).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlReply {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    /// Every node after the request.
    #[serde(default)]
    pub nodes: Vec<NodeState>,
}

/// Errors talking to a supervisor.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the cluster supervisor at {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("the cluster supervisor at {} did not answer within {timeout:?}", socket.display())]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("talking to the cluster supervisor at {}: {reason}", socket.display())]
    Protocol { socket: PathBuf, reason: String },
    #[error("the cluster supervisor refused {op}: {reason}")]
    Refused { op: String, reason: String },
}

/// Sends one request to a supervisor's control socket and waits for its answer.
pub async fn request(socket: &Path, op: &ControlOp) -> Result<ControlReply, ControlError> {
    let protocol = |reason: String| ControlError::Protocol {
        socket: socket.to_path_buf(),
        reason,
    };
    let exchange = async {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|source| ControlError::Connect {
                socket: socket.to_path_buf(),
                source,
            })?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(op).map_err(|e| protocol(e.to_string()))?;
        line.push('\n');
        write
            .write_all(line.as_bytes())
            .await
            .map_err(|e| protocol(e.to_string()))?;
        let mut answer = String::new();
        BufReader::new(read)
            .read_line(&mut answer)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        serde_json::from_str::<ControlReply>(&answer)
            .map_err(|e| protocol(format!("bad answer {answer:?}: {e}")))
    };
    let reply = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout {
            socket: socket.to_path_buf(),
            timeout: REQUEST_TIMEOUT,
        })??;
    if reply.ok {
        Ok(reply)
    } else {
        Err(ControlError::Refused {
            op: op.describe(),
            reason: reply.error.unwrap_or_default(),
        })
    }
}

/// Serves the control socket for `cluster` until `shutdown`; `after_change` runs after every
/// request that changed something (the supervisor rewrites its state file with the new pids).
pub async fn serve(
    socket: PathBuf,
    cluster: Arc<LocalCluster>,
    shutdown: CancellationToken,
    after_change: impl Fn(&LocalCluster) + Send + Sync + 'static,
) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    let after_change = Arc::new(after_change);
    // One request at a time: faults on one cluster are applied in order.
    let serial = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("control socket accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let cluster = cluster.clone();
        let after_change = after_change.clone();
        let serial = serial.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let reply = match serde_json::from_str::<ControlOp>(&line) {
                Err(err) => ControlReply {
                    ok: false,
                    error: Some(format!("bad request {line:?}: {err}")),
                    nodes: cluster.node_states(),
                },
                Ok(op) => {
                    let _turn = serial.lock().await;
                    tracing::info!(op = %op.describe(), "control request");
                    let outcome = cluster.apply(&op).await;
                    if op != ControlOp::Status {
                        after_change(&cluster);
                    }
                    ControlReply {
                        ok: outcome.is_ok(),
                        error: outcome.err().map(|e| e.to_string()),
                        nodes: cluster.node_states(),
                    }
                }
            };
            if let Ok(mut text) = serde_json::to_string(&reply) {
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            }
        });
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::proxy::LinkShape;

    #[test]
    fn ops_round_trip_as_tagged_json() {
        let op = ControlOp::Shape {
            a: "nats1".into(),
            b: "nats2".into(),
            shape: LinkShape {
                latency_ms: 200,
                bandwidth: None,
            },
        };
        let text = serde_json::to_string(&op).expect("encode");
        assert!(text.contains("\"op\":\"shape\""), "{text}");
        assert_eq!(
            serde_json::from_str::<ControlOp>(&text).expect("decode"),
            op
        );
        let kill: ControlOp =
            serde_json::from_str(r#"{"op":"kill","node":"nats2"}"#).expect("decode");
        assert_eq!(kill.describe(), "kill nats2");
    }
}
