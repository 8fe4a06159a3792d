//! The scenarios that ship with aivo-load, and `aivo-load scenarios list|show|validate` (skeleton).

use crate::cli::ScenariosCommand;
use crate::exit::{AppError, ExitStatus};

pub fn execute(_cmd: ScenariosCommand) -> Result<ExitStatus, AppError> {
    Err(AppError::usage(anyhow::anyhow!(
        "scenarios is not built yet"
    )))
}
