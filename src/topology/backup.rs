//! Stream snapshots and restores through the JetStream API, what `nats stream backup` and
//! `nats stream restore` do; async-nats 0.51 has no call for either, so this speaks the wire
//! protocol over plain requests (as nats-server 2.15's `jetstream_api.go` serves it).
//!
//! **Snapshot.** A request to `$JS.API.STREAM.SNAPSHOT.<stream>` with `{deliver_subject,
//! chunk_size}` is answered by the stream's leader with the stream's `config` and `state` (the
//! state the snapshot holds); the leader then sends the snapshot (an s2-compressed tar of the
//! stream's store and its consumers) to the deliver subject in chunks. Every chunk but a short last
//! one carries a reply subject (`$JS.SNAPSHOT.ACK.<stream>.<id>.<size>.<index>`); the server keeps
//! a window of unacknowledged chunks and stops with `408 No Flow Response` when no ack comes for
//! 5 s, so each chunk is acked with an empty message as soon as it is written. The end is an empty
//! message whose status header is `204` (done) or an error (`500 <why>`, `408 No Interest`).
//!
//! **Restore.** A request to `$JS.API.STREAM.RESTORE.<stream>` with `{config, state}` (what the
//! snapshot's answer said) is answered with a `deliver_subject`; each chunk is sent to it as a
//! request and answered with an empty message (a non-empty answer is an error), and an empty
//! request ends the transfer: its answer is the created stream's info, or the error of the restore.
//!
//! On disk a backup is the nats CLI's layout: `<dir>/backup.json` (`config` and `state`) and
//! `<dir>/stream.tar.s2` (the chunks, concatenated). What happens to a stream's data once restored
//! (its ledger check) is `checks::recovery`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Snapshot chunks asked for (the server's default; it clamps to 1 KiB – 1 MiB).
const CHUNK_SIZE: usize = 128 * 1024;
/// How long a snapshot waits for its next chunk: the server gives up on us after 5 s without an
/// ack, so a longer silence means it has stopped.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an API request (and a restore chunk's ack) may take.
const API_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the last, empty restore request waits: the server answers once the stream is built
/// from the whole snapshot.
const RESTORE_FINISH_TIMEOUT: Duration = Duration::from_secs(120);
/// The most a snapshot may hold on this machine (a bound on what a stalled or hostile server could
/// make us write).
const MAX_SNAPSHOT_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The files of one stream's backup.
pub const META_FILE: &str = "backup.json";
pub const DATA_FILE: &str = "stream.tar.s2";

/// `backup.json`: what the snapshot's answer said, and what a restore sends back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupMeta {
    /// The stream's configuration, verbatim.
    pub config: Value,
    /// The stream's state the snapshot holds (`messages`, `first_seq`, `last_seq`, ...), verbatim.
    pub state: Value,
}

impl BackupMeta {
    /// The last stream sequence the snapshot holds.
    pub fn last_seq(&self) -> u64 {
        self.state
            .get("last_seq")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// How many messages the snapshot holds.
    pub fn messages(&self) -> u64 {
        self.state
            .get("messages")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

/// A stream's backup on this machine.
#[derive(Debug, Clone)]
pub struct StreamBackup {
    pub stream: String,
    pub dir: PathBuf,
    pub meta: BackupMeta,
    /// Size of `stream.tar.s2`.
    pub bytes: u64,
    pub chunks: u64,
}

/// The stream's state after a restore, from the restore's final answer.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct RestoredState {
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A JetStream API error: `{"error": {"code", "err_code", "description"}}`.
fn api_error(answer: &Value) -> Option<String> {
    let error = answer.get("error")?;
    let description = error
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("no description");
    let code = error.get("code").and_then(Value::as_u64).unwrap_or(0);
    let err_code = error.get("err_code").and_then(Value::as_u64).unwrap_or(0);
    Some(format!("{description} (code {code}, err_code {err_code})"))
}

async fn api_request(
    client: &async_nats::Client,
    subject: String,
    body: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    let payload = serde_json::to_vec(body).map_err(|e| format!("{subject}: {e}"))?;
    let request = async_nats::Request::new()
        .payload(Bytes::from(payload))
        .timeout(Some(timeout));
    let answer = client
        .send_request(subject.clone(), request)
        .await
        .map_err(|e| format!("{subject}: {e}"))?;
    let value: Value = serde_json::from_slice(&answer.payload)
        .map_err(|e| format!("{subject}: the answer is not JSON ({e})"))?;
    match api_error(&value) {
        Some(error) => Err(format!("{subject}: {error}")),
        None => Ok(value),
    }
}

/// Snapshots `stream` (with its consumers) into `dir` (created): `backup.json` and
/// `stream.tar.s2`. The snapshot holds what the stream's leader had stored when it answered.
pub async fn snapshot_stream(
    client: &async_nats::Client,
    stream: &str,
    dir: &Path,
) -> Result<StreamBackup, String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let inbox = client.new_inbox();
    let mut chunks = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| format!("snapshot of {stream}: cannot subscribe to {inbox}: {e}"))?;
    let answer = api_request(
        client,
        format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        &serde_json::json!({ "deliver_subject": inbox, "chunk_size": CHUNK_SIZE }),
        API_TIMEOUT,
    )
    .await?;
    let meta = BackupMeta {
        config: answer.get("config").cloned().unwrap_or(Value::Null),
        state: answer.get("state").cloned().unwrap_or(Value::Null),
    };
    if meta.config.is_null() {
        return Err(format!(
            "snapshot of {stream}: the answer has no stream config: {answer}"
        ));
    }
    let data_path = dir.join(DATA_FILE);
    let mut file = tokio::fs::File::create(&data_path)
        .await
        .map_err(|e| format!("cannot create {}: {e}", data_path.display()))?;
    let (mut bytes, mut count) = (0u64, 0u64);
    loop {
        let message = match tokio::time::timeout(CHUNK_TIMEOUT, chunks.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => return Err(format!("snapshot of {stream}: the subscription ended")),
            Err(_) => {
                return Err(format!(
                    "snapshot of {stream}: no chunk for {CHUNK_TIMEOUT:?} after {count} chunks"
                ))
            }
        };
        if message.payload.is_empty() {
            // The end: 204 when the whole snapshot was sent, an error status otherwise.
            match message.status {
                Some(status) if status.as_u16() == 204 => break,
                None if message.headers.is_none() && count > 0 => break,
                status => {
                    return Err(format!(
                        "snapshot of {stream} ended with status {} {} after {count} chunks",
                        status.map_or("none".to_string(), |s| s.as_u16().to_string()),
                        message.description.unwrap_or_default()
                    ))
                }
            }
        }
        file.write_all(&message.payload)
            .await
            .map_err(|e| format!("cannot write {}: {e}", data_path.display()))?;
        bytes += message.payload.len() as u64;
        count += 1;
        if bytes > MAX_SNAPSHOT_BYTES {
            return Err(format!(
                "snapshot of {stream}: more than {MAX_SNAPSHOT_BYTES} bytes; stopped"
            ));
        }
        // The ack that opens the window for the next chunk (a short last chunk has no reply).
        if let Some(reply) = message.reply {
            client
                .publish(reply, Bytes::new())
                .await
                .map_err(|e| format!("snapshot of {stream}: cannot ack chunk {count}: {e}"))?;
        }
    }
    file.sync_all()
        .await
        .map_err(|e| format!("cannot sync {}: {e}", data_path.display()))?;
    let meta_path = dir.join(META_FILE);
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())?;
    tokio::fs::write(&meta_path, text)
        .await
        .map_err(|e| format!("cannot write {}: {e}", meta_path.display()))?;
    Ok(StreamBackup {
        stream: stream.to_string(),
        dir: dir.to_path_buf(),
        meta,
        bytes,
        chunks: count,
    })
}

/// Reads a backup written by [`snapshot_stream`] (or `nats stream backup`) from `dir`.
pub fn read_backup(stream: &str, dir: &Path) -> Result<StreamBackup, String> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read(&meta_path)
        .map_err(|e| format!("cannot read {}: {e}", meta_path.display()))?;
    let meta: BackupMeta = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a backup description ({e})", meta_path.display()))?;
    let data_path = dir.join(DATA_FILE);
    let bytes = std::fs::metadata(&data_path)
        .map_err(|e| format!("cannot read {}: {e}", data_path.display()))?
        .len();
    Ok(StreamBackup {
        stream: stream.to_string(),
        dir: dir.to_path_buf(),
        meta,
        bytes,
        chunks: bytes.div_ceil(CHUNK_SIZE as u64),
    })
}

/// Restores `backup` into a cluster that has no stream of its name: the stream (with its
/// consumers) is created from the snapshot, under the configuration it was taken with.
pub async fn restore_stream(
    client: &async_nats::Client,
    backup: &StreamBackup,
) -> Result<RestoredState, String> {
    let stream = &backup.stream;
    // A cluster that has just formed answers "no suitable peers for placement" (err_code
    // 10005) until every node's first meta heartbeat arrived: retried for up to 20 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let asked = api_request(
            client,
            format!("$JS.API.STREAM.RESTORE.{stream}"),
            &serde_json::json!({ "config": backup.meta.config, "state": backup.meta.state }),
            API_TIMEOUT,
        )
        .await;
        match asked {
            Err(e) if e.contains("err_code 10005") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => break other?,
        }
    };
    let deliver = answer
        .get("deliver_subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("restore of {stream}: no deliver_subject in {answer}"))?
        .to_string();
    let data_path = backup.dir.join(DATA_FILE);
    let mut file = tokio::fs::File::open(&data_path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", data_path.display()))?;
    let mut buffer = vec![0u8; CHUNK_SIZE];
    let mut sent = 0u64;
    loop {
        let n = read_full(&mut file, &mut buffer)
            .await
            .map_err(|e| format!("cannot read {}: {e}", data_path.display()))?;
        if n == 0 {
            break;
        }
        let request = async_nats::Request::new()
            .payload(Bytes::copy_from_slice(&buffer[..n]))
            .timeout(Some(API_TIMEOUT));
        let ack = client
            .send_request(deliver.clone(), request)
            .await
            .map_err(|e| format!("restore of {stream}: chunk {}: {e}", sent + 1))?;
        sent += 1;
        if !ack.payload.is_empty() {
            let why = serde_json::from_slice::<Value>(&ack.payload)
                .ok()
                .and_then(|v| api_error(&v))
                .unwrap_or_else(|| String::from_utf8_lossy(&ack.payload).into_owned());
            return Err(format!("restore of {stream}: chunk {sent} refused: {why}"));
        }
    }
    // The empty request ends the transfer; its answer is the stream the restore built.
    let request = async_nats::Request::new()
        .payload(Bytes::new())
        .timeout(Some(RESTORE_FINISH_TIMEOUT));
    let done = client
        .send_request(deliver, request)
        .await
        .map_err(|e| format!("restore of {stream}: the end of the transfer: {e}"))?;
    let value: Value = serde_json::from_slice(&done.payload)
        .map_err(|e| format!("restore of {stream}: the final answer is not JSON ({e})"))?;
    if let Some(error) = api_error(&value) {
        return Err(format!("restore of {stream}: {error}"));
    }
    let state = value.get("state").cloned().unwrap_or(Value::Null);
    let field = |name: &str| state.get(name).and_then(Value::as_u64).unwrap_or(0);
    Ok(RestoredState {
        messages: field("messages"),
        first_seq: field("first_seq"),
        last_seq: field("last_seq"),
    })
}

/// Fills `buffer` from `file` unless the file ends first; returns how much was read.
async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_described_with_its_codes() {
        let answer = serde_json::json!({"error": {"code": 404, "err_code": 10059,
            "description": "stream not found"}});
        assert_eq!(
            api_error(&answer).as_deref(),
            Some("stream not found (code 404, err_code 10059)")
        );
        assert_eq!(api_error(&serde_json::json!({"config": {}})), None);
    }

    #[test]
    fn the_snapshot_state_gives_its_last_sequence() {
        let meta = BackupMeta {
            config: serde_json::json!({"name": "FOCUS"}),
            state: serde_json::json!({"messages": 7, "first_seq": 1, "last_seq": 7}),
        };
        assert_eq!((meta.messages(), meta.last_seq()), (7, 7));
    }
}
