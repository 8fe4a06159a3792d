//! The scenarios that ship with aivo-load, and `aivo-load scenarios list|show|validate`.
//!
//! Shipped scenarios are compiled into the binary, so `aivo-load run focus-burst` works from any
//! directory; a `scenarios/NAME.toml` in the working directory takes precedence (edit and rerun), and
//! any path ending in `.toml` is read as a file.

use std::path::Path;

use crate::cli::ScenariosCommand;
use crate::exit::{AppError, ExitStatus};
use crate::scenario::{self, Scenario};

/// `(name, file text)` of every shipped scenario.
pub const BUILT_IN: &[(&str, &str)] = &[(
    "focus-burst",
    include_str!("../../scenarios/focus-burst.toml"),
)];

/// Finds a scenario by name or path and validates it.
pub fn resolve(name_or_path: &str) -> Result<Scenario, AppError> {
    let path = Path::new(name_or_path);
    if name_or_path.ends_with(".toml") || path.components().count() > 1 {
        return load_file(path);
    }
    let local = Path::new("scenarios").join(format!("{name_or_path}.toml"));
    if local.is_file() {
        return load_file(&local);
    }
    match BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
        Some((name, text)) => scenario::parse(&format!("built-in:{name}"), text).map_err(AppError::usage),
        None => Err(AppError::usage(anyhow::anyhow!(
            "unknown scenario \"{name_or_path}\"; known scenarios: {} (or give a path to a .toml file)",
            names().join(", ")
        ))),
    }
}

/// Names of the shipped scenarios.
pub fn names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(name, _)| *name).collect()
}

fn load_file(path: &Path) -> Result<Scenario, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AppError::usage(anyhow::anyhow!(
            "cannot read scenario file {}: {e}",
            path.display()
        ))
    })?;
    scenario::parse(&path.display().to_string(), &text).map_err(AppError::usage)
}

pub fn execute(cmd: ScenariosCommand) -> Result<ExitStatus, AppError> {
    match cmd {
        ScenariosCommand::List => {
            for (name, text) in BUILT_IN {
                let description = scenario::parse(name, text)
                    .map(|s| s.description)
                    .unwrap_or_default();
                println!("{name:<16} {description}");
            }
        }
        ScenariosCommand::Show { name } => {
            let local = Path::new("scenarios").join(format!("{name}.toml"));
            let text = if Path::new(&name).is_file() {
                std::fs::read_to_string(&name).ok()
            } else if local.is_file() {
                std::fs::read_to_string(&local).ok()
            } else {
                BUILT_IN
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.to_string())
            };
            match text {
                Some(text) => print!("{text}"),
                None => {
                    return Err(AppError::usage(anyhow::anyhow!(
                        "unknown scenario \"{name}\"; known scenarios: {}",
                        names().join(", ")
                    )))
                }
            }
        }
        ScenariosCommand::Validate { file } => {
            let scenario = load_file(&file)?;
            println!(
                "{}: ok ({}, {} traffic source(s), {} events intended, {} threshold(s))",
                file.display(),
                crate::scenario::units::format_duration(scenario.duration),
                scenario.traffic.len(),
                scenario.intended_total(),
                scenario.thresholds.len()
            );
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_built_in_scenario_is_valid() {
        for (name, text) in super::BUILT_IN {
            if let Err(e) = crate::scenario::parse(name, text) {
                panic!("{e}");
            }
        }
    }
}
