//! The declared streams and consumers (DESIGN.md §1) and `init` / `verify` (skeleton).

use crate::cli::TopologyArgs;
use crate::exit::{AppError, ExitStatus};

pub async fn init_command(_args: TopologyArgs) -> Result<ExitStatus, AppError> {
    Err(AppError::usage(anyhow::anyhow!("init is not built yet")))
}

pub async fn verify_command(_args: TopologyArgs) -> Result<ExitStatus, AppError> {
    Err(AppError::usage(anyhow::anyhow!("verify is not built yet")))
}
