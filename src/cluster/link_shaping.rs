//! How a route proxy's link is shaped: latency, bandwidth and blocked directions, applied to the
//! bytes of every forwarded connection (the proxies themselves, their cut switch and the mesh are
//! `proxy.rs`).
//!
//! Faults beyond a cut (the chaos engine's `latency`, `bandwidth` and one-way `partition`): each
//! direction of a forwarded connection is a reader and a writer joined by a short queue of
//! timestamped chunks ([`pump`]). The writer holds every chunk until `read time + latency` and, with
//! a bandwidth limit, waits `bytes / rate` after writing it; a blocked direction stops both reading
//! and writing (TCP back-pressure does the rest), which is how a one-way partition looks to the
//! nodes: one side's bytes never arrive, so its peer's pings go unanswered and the route drops.
//! The shape of every proxy sits in a `watch` channel, so a change reaches live connections at once.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Bytes moved per read; routes carry small protocol frames and message batches.
const CHUNK: usize = 64 * 1024;

/// Chunks queued between the reader and the writer of one direction (bounds memory under latency).
const PIPELINE_CHUNKS: usize = 256;

/// Latency and bandwidth of a link, applied to each direction separately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkShape {
    /// Added to every chunk, in milliseconds (0: none).
    #[serde(default)]
    pub latency_ms: u64,
    /// Bytes per second per direction (`None`: unlimited).
    #[serde(default)]
    pub bandwidth: Option<u64>,
}

impl LinkShape {
    /// No shaping at all.
    pub fn is_clear(&self) -> bool {
        *self == Self::default()
    }
}

/// Everything the pumps of one proxy obey: the link's shape and which directions are blocked.
/// "Forward" is inbound → target (the soliciting node's bytes), "reverse" the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct PumpControl {
    pub shape: LinkShape,
    pub forward_blocked: bool,
    pub reverse_blocked: bool,
}

impl PumpControl {
    /// Nothing to apply to `direction`: no shape, not blocked.
    fn is_clear(&self, direction: Direction) -> bool {
        self.shape.is_clear() && !self.blocked(direction)
    }

    fn blocked(&self, direction: Direction) -> bool {
        match direction {
            Direction::Forward => self.forward_blocked,
            Direction::Reverse => self.reverse_blocked,
        }
    }
}

/// One direction of a forwarded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Forward,
    Reverse,
}

/// Moves one direction of a connection. While the link is clear (no latency, no bandwidth limit,
/// not blocked) it copies straight from the socket to the other through one reused buffer: the
/// proxies carry every replication byte of the local cluster, so the common case must cost no more
/// than a plain `copy` (no per-read allocation, no hop between tasks, no timestamp). Once the
/// link is shaped or blocked, a reader stamps chunks with their arrival time and a writer releases
/// them after the link's latency and paces them to its bandwidth; a blocked direction stalls both
/// (see the module header). When the link is clear again, the queue drains and the direct copy
/// resumes.
pub(super) async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    control: &watch::Sender<PumpControl>,
    bytes: &AtomicU64,
) -> io::Result<()> {
    let mut watcher = control.subscribe();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let clear = watcher.borrow_and_update().is_clear(direction);
        let end = if clear {
            direct(&mut from, &mut to, &mut watcher, &mut buf, bytes).await?
        } else {
            shaped(&mut from, &mut to, direction, control, bytes).await?
        };
        if end == PumpEnd::Eof {
            return to.shutdown().await;
        }
    }
}

/// Why one mode of a pump stopped: the source closed, or the link's control changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpEnd {
    Eof,
    Changed,
}

/// Copies `from` to `to` until the source closes or the control changes.
async fn direct(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    watcher: &mut watch::Receiver<PumpControl>,
    buf: &mut [u8],
    bytes: &AtomicU64,
) -> io::Result<PumpEnd> {
    // One registration for the whole phase, not one per read.
    let mut changed = std::pin::pin!(watcher.changed());
    loop {
        tokio::select! {
            biased;
            read = from.read(buf) => {
                let n = read?;
                if n == 0 {
                    return Ok(PumpEnd::Eof);
                }
                to.write_all(&buf[..n]).await?;
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            still_open = &mut changed => {
                // A closed control means the proxy is going: end as if the source had closed.
                return Ok(if still_open.is_ok() { PumpEnd::Changed } else { PumpEnd::Eof });
            }
        }
    }
}

/// The shaped pipeline: reader and writer joined by a queue of timestamped chunks, until the
/// source closes or the link is clear again (then the queue drains first).
async fn shaped(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    direction: Direction,
    control: &watch::Sender<PumpControl>,
    bytes: &AtomicU64,
) -> io::Result<PumpEnd> {
    let (queue, mut chunks) = mpsc::channel::<(Instant, Vec<u8>)>(PIPELINE_CHUNKS);
    let mut reader_control = control.subscribe();
    let mut writer_control = control.subscribe();
    let reader = async move {
        loop {
            match reader_control.wait_for(|c| !c.blocked(direction)).await {
                Err(_) => return Ok::<PumpEnd, io::Error>(PumpEnd::Eof),
                Ok(c) if c.is_clear(direction) => return Ok(PumpEnd::Changed),
                Ok(_) => {}
            }
            let mut buf = vec![0u8; CHUNK];
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok(PumpEnd::Eof);
            }
            buf.truncate(n);
            if queue.send((Instant::now(), buf)).await.is_err() {
                return Ok(PumpEnd::Eof);
            }
        }
    };
    let writer = async move {
        while let Some((read_at, buf)) = chunks.recv().await {
            let control = match writer_control.wait_for(|c| !c.blocked(direction)).await {
                Ok(control) => *control,
                Err(_) => return Ok(()),
            };
            if control.shape.latency_ms > 0 {
                tokio::time::sleep_until(read_at + Duration::from_millis(control.shape.latency_ms))
                    .await;
            }
            to.write_all(&buf).await?;
            bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            if let Some(rate) = control.shape.bandwidth.filter(|&r| r > 0) {
                let pause = Duration::from_secs_f64(buf.len() as f64 / rate as f64);
                tokio::time::sleep(pause).await;
            }
        }
        Ok::<(), io::Error>(())
    };
    let (read, write) = tokio::join!(reader, writer);
    write?;
    read
}
