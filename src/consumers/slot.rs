//! A consumer child that can be killed and started again: the indexer of a run, shared by the run
//! (which starts and stops it) and the chaos engine (whose `kill-indexer` fault SIGKILLs it and, on
//! revert, starts a new one on the same durable consumer).
//!
//! The slot holds at most one process. Killing it is what a crash does: messages the dead process
//! held come back after the consumer's ack wait, and the indexer's idempotent writes (on the event
//! id) keep each event in `events` once.

use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::Mutex;

use super::process::{ConsumerProcess, ConsumerProcessSpec};
use super::ConsumersError;

/// One consumer child, started, killed and restarted on demand.
#[derive(Debug)]
pub struct ConsumerSlot {
    spec: ConsumerProcessSpec,
    /// The durable consumer the child reads (`indexer`), for its lag.
    consumer: String,
    streams: Vec<&'static str>,
    js: jetstream::Context,
    process: Mutex<Option<ConsumerProcess>>,
}

impl ConsumerSlot {
    /// An empty slot for children started from `spec`, reading `consumer` on `streams`.
    pub fn new(
        spec: ConsumerProcessSpec,
        consumer: &str,
        streams: Vec<&'static str>,
        js: jetstream::Context,
    ) -> Self {
        Self {
            spec,
            consumer: consumer.to_string(),
            streams,
            js,
            process: Mutex::new(None),
        }
    }

    /// Starts a child unless one is running; returns the running child's pid.
    pub async fn start(&self) -> Result<u32, ConsumersError> {
        let mut process = self.process.lock().await;
        if let Some(p) = process.as_mut() {
            if p.is_running() {
                return Ok(p.pid().unwrap_or(0));
            }
        }
        let child = ConsumerProcess::spawn(&self.spec).await?;
        let pid = child.pid().unwrap_or(0);
        *process = Some(child);
        Ok(pid)
    }

    /// SIGKILLs the child and reaps it; returns its pid, or `None` if none was running.
    pub async fn kill(&self) -> Option<u32> {
        let mut process = self.process.lock().await;
        let mut child = process.take().filter(|p| p.pid().is_some())?;
        let pid = child.pid();
        let was_running = child.is_running();
        child.kill();
        pid.filter(|_| was_running)
    }

    /// The running child's pid.
    pub async fn pid(&self) -> Option<u32> {
        let mut process = self.process.lock().await;
        let p = process.as_mut()?;
        if p.is_running() {
            p.pid()
        } else {
            None
        }
    }

    /// Pending + unacknowledged messages of the consumer, over its streams.
    pub async fn lag(&self) -> Option<u64> {
        let read = super::lag::read_lag(&self.js, &self.consumer, &self.streams);
        match tokio::time::timeout(Duration::from_secs(2), read).await {
            Ok(Ok(lag)) => Some(lag.pending() + lag.ack_pending()),
            _ => None,
        }
    }

    /// SIGTERM (the child finishes its batch), SIGKILL after `grace`; empties the slot.
    pub async fn terminate(&self, grace: Duration) {
        let child = self.process.lock().await.take();
        if let Some(mut child) = child {
            child.terminate(grace).await;
        }
    }
}
