//! Load generation: the publisher engine, its ledger and its latency histograms.

pub mod engine;
pub mod ledger;
pub mod metrics;
