//! Scenario files (DESIGN.md §4): model, loading with file:line:column errors, the shipped catalog.

pub mod catalog;
pub mod load;
pub mod model;

pub use load::{parse, ScenarioError};
pub use model::Scenario;
