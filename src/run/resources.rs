//! Resources sampled beside the load, once a second, for the timeline: the harness's own CPU, RSS
//! and runtime (`load::host`), and each node's CPU, memory and JetStream storage from its `/varz`.
//!
//! The nodes are polled by side tasks, one per node, each with a short deadline, writing the latest
//! answer into a slot; the sampler only reads the slots. So a node killed or paused by chaos
//! costs the sampler nothing: its slot says "unreachable" after at most [`POLL_TIMEOUT`], and the
//! timeline's seconds keep their pace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cluster::{monitor, NodeEndpoints};
use crate::load::host::{self, CpuMeter, RuntimeBusyMeter};
use crate::report::NodeSample;

/// How often each node is asked.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Deadline of one `/varz` poll: under the sampling period, so a node that hangs is reported
/// unreachable in the next second's sample, not some seconds later.
const POLL_TIMEOUT: Duration = Duration::from_millis(800);

/// What the timeline gets from one sample.
pub(super) struct ResourceSample {
    pub(super) harness_cpu: Option<f64>,
    pub(super) harness_rss_bytes: Option<u64>,
    pub(super) runtime_busy: Option<f64>,
    pub(super) nodes: Vec<NodeSample>,
}

/// The harness meters and the node pollers of one load phase. Dropping it stops the pollers.
pub(super) struct ResourceSampler {
    cpu: CpuMeter,
    runtime: Option<RuntimeBusyMeter>,
    /// One slot per polled node, in node order; written by its poller, read by [`Self::sample`].
    slots: Vec<Arc<Mutex<NodeSample>>>,
    stop: CancellationToken,
}

impl ResourceSampler {
    /// Starts the meters and one poller per node with a monitoring URL (nodes without one, e.g. an
    /// external cluster given by client URLs only, are not sampled).
    pub(super) fn start(nodes: &[NodeEndpoints]) -> Self {
        let stop = CancellationToken::new();
        let slots = nodes
            .iter()
            .filter(|n| !n.monitor_url.is_empty())
            .map(|node| {
                let slot = Arc::new(Mutex::new(NodeSample {
                    name: node.name.clone(),
                    ..NodeSample::default()
                }));
                tokio::spawn(poll_node(
                    node.monitor_url.clone(),
                    slot.clone(),
                    stop.clone(),
                ));
                slot
            })
            .collect();
        Self {
            cpu: CpuMeter::start(),
            runtime: RuntimeBusyMeter::start(),
            slots,
            stop,
        }
    }

    /// The harness's figures since the previous sample and each node's latest answer.
    pub(super) fn sample(&mut self) -> ResourceSample {
        ResourceSample {
            harness_cpu: self.cpu.cores(),
            harness_rss_bytes: host::process_rss_bytes(),
            runtime_busy: self.runtime.as_mut().and_then(RuntimeBusyMeter::busy),
            nodes: self
                .slots
                .iter()
                .filter_map(|slot| slot.lock().ok().map(|s| s.clone()))
                .collect(),
        }
    }
}

impl Drop for ResourceSampler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Asks one node's `/varz` every [`POLL_EVERY`] until `stop`, keeping the latest answer in `slot`.
async fn poll_node(url: String, slot: Arc<Mutex<NodeSample>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let answer = tokio::select! {
            _ = stop.cancelled() => return,
            answer = monitor::varz_within(&url, POLL_TIMEOUT) => answer,
        };
        let Ok(mut sample) = slot.lock() else { return };
        match answer {
            Ok(varz) => {
                sample.cpu = Some(varz.cpu / 100.0);
                sample.mem_bytes = Some(varz.mem);
                sample.js_storage_bytes = Some(varz.jetstream.stats.storage);
                sample.reachable = true;
            }
            Err(err) => {
                tracing::debug!("resource sample of {}: {err}", sample.name);
                *sample = NodeSample {
                    name: std::mem::take(&mut sample.name),
                    ..NodeSample::default()
                };
            }
        }
    }
}
