//! Integration tests: one binary, real `nats-server` clusters, shared helpers in `support.rs`.

mod cluster;
mod consumers;
mod run;
mod support;
mod topology;
