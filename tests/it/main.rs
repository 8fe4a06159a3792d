//! Integration tests: one binary, real `nats-server` clusters, shared helpers in `support.rs`.

mod chaos;
mod cluster;
mod consumers;
mod docker;
mod run;
mod scenarios;
mod support;
mod topology;
