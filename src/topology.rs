//! The declared streams and consumers (DESIGN.md §1) and `init` / `verify` (skeleton).

use crate::cli::TopologyArgs;
use crate::exit::{AppError, ExitStatus};

pub async fn init_command(_args: TopologyArgs) -> Result<ExitStatus, AppError> {
    Err(AppError::usage(anyhow::anyhow!("init is not built yet")))
}

pub async fn verify_command(_args: TopologyArgs) -> Result<ExitStatus, AppError> {
    Err(AppError::usage(anyhow::anyhow!("verify is not built yet")))
}

// ---- temporary stand-ins until the topology branch lands (same signatures) ----
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOverride {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<i64>,
    pub max_msgs: Option<i64>,
    pub replicas: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("not built")]
    NotBuilt,
}

#[derive(Debug, Clone)]
pub struct Topology;

impl Topology {
    pub fn seed(_replicas: usize) -> Topology {
        Topology
    }
    pub fn with_stream_override(
        self,
        _stream: &str,
        _ov: StreamOverride,
    ) -> Result<Topology, TopologyError> {
        Ok(self)
    }
}

pub async fn apply(
    _js: &async_nats::jetstream::Context,
    _t: &Topology,
) -> Result<Vec<()>, TopologyError> {
    Err(TopologyError::NotBuilt)
}
