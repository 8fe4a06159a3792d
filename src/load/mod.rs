//! Load generation: the publisher engine, its ledger and its latency histograms, and what the
//! harness process itself costs (`host`).

pub mod engine;
pub mod host;
pub mod ledger;
pub mod metrics;
