//! `latency`: added delay on every route link of the target (each direction), through the proxies.
//! Proven by a request crossing the route from a peer to the target taking at least the round trip
//! the delay implies (real client traffic, not a flag read back).

use std::time::Duration;

use super::{Effect, FaultPlan, Step};
use crate::cluster::proxy::LinkShape;
use crate::cluster::ControlOp;

/// Delay every route of `node` by `latency_ms` each way.
pub fn plan(node: &str, nodes: &[String], latency_ms: u64) -> FaultPlan {
    shaped(
        node,
        nodes,
        LinkShape {
            latency_ms,
            bandwidth: None,
        },
        // Out and back, less scheduling slack.
        Duration::from_millis(latency_ms * 2 * 9 / 10),
        0,
    )
}

/// The shape on every link of `node`; the effect: a probe of `probe_bytes` crossing from the first
/// peer to `node` and back takes at least `at_least`.
pub(super) fn shaped(
    node: &str,
    nodes: &[String],
    shape: LinkShape,
    at_least: Duration,
    probe_bytes: usize,
) -> FaultPlan {
    let peers: Vec<&String> = nodes.iter().filter(|n| *n != node).collect();
    let link = |peer: &String, shape: LinkShape| ControlOp::Shape {
        a: node.to_string(),
        b: peer.to_string(),
        shape,
    };
    FaultPlan {
        steps: peers.iter().map(|p| Step::Op(link(p, shape))).collect(),
        revert: peers
            .iter()
            .map(|p| link(p, LinkShape::default()))
            .collect(),
        effect: Effect::SlowLink {
            from: peers.first().map(|p| p.to_string()).unwrap_or_default(),
            to: node.to_string(),
            at_least,
            probe_bytes,
        },
        note: None,
    }
}
