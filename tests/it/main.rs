//! Integration tests: one binary, real `nats-server` clusters, shared helpers in `support.rs`.

mod capacity;
mod chaos;
mod checks;
mod ci_workflows;
mod cluster;
mod consumers;
mod dlq;
mod docker;
mod durable_fs;
mod k8s_manifests;
mod metrics;
mod nemesis;
mod production;
mod recover;
mod recovery;
mod run;
mod sampling;
mod scenarios;
mod security;
mod storage_model;
mod stuck;
mod support;
mod teardown;
mod topology;
mod trend;
mod workers;
