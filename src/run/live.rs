//! `run --metrics-addr`: the run's live figures in the Prometheus text format
//! (`report::prometheus`), served over plain HTTP/1.1 on the given address while the run goes.
//!
//! The sampler renders the text once a second into a shared cell; each scrape gets the latest text,
//! so scraping costs the run nothing but a copy. The server is a few lines of Tokio: one request
//! per connection, any path but `/metrics` (or `/`) answered 404, bounded reads and writes, so a
//! slow or broken scraper cannot hold the run up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::exit::AppError;

/// How long one scrape may take to send its request and read the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read.
const MAX_REQUEST: usize = 8 * 1024;

/// The endpoint while it serves.
pub(super) struct LiveMetrics {
    text: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

/// What the sampler needs to publish a scrape's text.
#[derive(Clone)]
pub(super) struct LiveHandle {
    text: Arc<Mutex<String>>,
    pub(super) run_id: String,
    /// The run's fault journal (the active faults are counted from it).
    pub(super) journal: PathBuf,
    pub(super) indexer_lag: Option<Arc<AtomicU64>>,
}

impl LiveHandle {
    pub(super) fn publish(&self, text: String) {
        if let Ok(mut cell) = self.text.lock() {
            *cell = text;
        }
    }

    /// Faults applied and not reverted, from the journal (0 when the run has none).
    pub(super) fn faults_active(&self) -> u64 {
        crate::chaos::journal::read(&self.journal)
            .map(|entries| crate::chaos::journal::active(&entries).len() as u64)
            .unwrap_or(0)
    }

    pub(super) fn indexer_lag(&self) -> Option<u64> {
        let lag = self.indexer_lag.as_ref()?.load(Ordering::Relaxed);
        (lag != u64::MAX).then_some(lag)
    }
}

impl LiveMetrics {
    /// Listens on `addr`; a busy or forbidden address is a usage error naming the flag.
    pub(super) async fn serve(addr: SocketAddr) -> Result<Self, AppError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            AppError::usage(anyhow!(
                "--metrics-addr {addr}: cannot listen there ({e}); pick a free port, e.g. \
                 127.0.0.1:9464"
            ))
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let text = Arc::new(Mutex::new(String::from(
            "# HELP aivo_load_elapsed_seconds Seconds of load sampled so far.\n\
             # TYPE aivo_load_elapsed_seconds gauge\naivo_load_elapsed_seconds 0\n",
        )));
        let served = text.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let body = served.lock().map(|t| t.clone()).unwrap_or_default();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(SCRAPE_TIMEOUT, answer(stream, body)).await;
                });
            }
        });
        eprintln!("aivo-load: live metrics on http://{addr}/metrics");
        Ok(Self { text, task })
    }

    pub(super) fn handle(
        &self,
        run_id: &str,
        journal: PathBuf,
        indexer_lag: Option<Arc<AtomicU64>>,
    ) -> LiveHandle {
        LiveHandle {
            text: self.text.clone(),
            run_id: run_id.to_string(),
            journal,
            indexer_lag,
        }
    }
}

impl Drop for LiveMetrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: tokio::net::TcpStream, body: String) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let (status, content_type, body) = if path == "/metrics" || path == "/" {
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "aivo-load serves /metrics\n".to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
