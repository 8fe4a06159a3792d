//! `bandwidth`: a byte-rate limit on every route link of the target (each direction), through the
//! proxies. Proven by a large request crossing the route taking at least as long as the limit
//! implies.

use std::time::Duration;

use super::{latency, FaultPlan};
use crate::cluster::proxy::LinkShape;

/// Size of the probe message that proves the limit (well under the default 1 MiB max_payload).
pub const PROBE_BYTES: usize = 256 * 1024;

/// Limit every route of `node` to `bytes_per_second` each way.
pub fn plan(node: &str, nodes: &[String], bytes_per_second: u64) -> FaultPlan {
    let rate = bytes_per_second.max(1);
    // The probe crosses twice (request and echo); allow for one chunk's worth of slack.
    let seconds = 2.0 * PROBE_BYTES as f64 / rate as f64 * 0.7;
    latency::shaped(
        node,
        nodes,
        LinkShape {
            latency_ms: 0,
            bandwidth: Some(rate),
        },
        Duration::from_secs_f64(seconds),
        PROBE_BYTES,
    )
}
