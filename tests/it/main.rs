//! Integration tests: one binary, real `nats-server` clusters, shared helpers in `support.rs`.

mod support;
mod topology;
