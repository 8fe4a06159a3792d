//! `aivo-load cluster up|status|down` (skeleton).

use crate::cli::ClusterCommand;
use crate::exit::{AppError, ExitStatus};

pub async fn execute(_cmd: ClusterCommand) -> Result<ExitStatus, AppError> {
    Err(AppError::usage(anyhow::anyhow!(
        "cluster commands are not built yet"
    )))
}
