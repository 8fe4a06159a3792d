//! Scenario files (DESIGN.md §4): model, loading with file:line:column errors, validation.

pub mod catalog;
pub mod units;
