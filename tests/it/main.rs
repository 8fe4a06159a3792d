//! Integration tests: one binary, real `nats-server` clusters, shared helpers in `support.rs`.

mod chaos;
mod cluster;
mod consumers;
mod dlq;
mod run;
mod scenarios;
mod support;
mod topology;
