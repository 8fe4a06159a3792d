//! One run (DESIGN.md §3): backend up, init, load, checks, report, exit status (skeleton).

use crate::cli::RunArgs;
use crate::exit::{AppError, ExitStatus};

/// A validated run.
#[derive(Debug)]
pub struct RunPlan {
    pub args: RunArgs,
}

impl RunPlan {
    pub fn from_args(args: RunArgs) -> Result<Self, AppError> {
        Ok(Self { args })
    }
}

pub async fn execute(_plan: RunPlan) -> Result<ExitStatus, AppError> {
    Err(AppError::usage(anyhow::anyhow!("run is not built yet")))
}
