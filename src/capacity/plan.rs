//! A validated `capacity` command and the search settings of `--quick` and of a thorough review.

use std::path::PathBuf;
use std::time::Duration;

use super::forecast::Forecast;
use super::search::SearchSettings;
use super::step::Slo;
use crate::cluster::ClusterPlan;
use crate::scenario::Scenario;

/// A validated `capacity` command (built by `cli.rs`).
#[derive(Debug)]
pub struct CapacityPlan {
    /// The traffic mix (already narrowed to `--domain`); its rates only give the mix's shares.
    pub scenario: Scenario,
    pub slo: Slo,
    /// Largest share of failed or unknown publishes, 0.001 = 0.1 %.
    pub error_budget: f64,
    pub cluster: ClusterPlan,
    pub search: SearchSettings,
    pub warmup: Duration,
    pub window: Duration,
    /// Publishers per traffic source at each point of the scalability curve (empty: skipped).
    pub concurrency: Vec<u32>,
    pub quick: bool,
    /// Volumes for the storage model (`--forecast FILE`, else the seed's).
    pub forecast: Forecast,
    pub reports_dir: PathBuf,
}

impl CapacityPlan {
    /// The coarse settings of `--quick` (a few minutes), or the thorough ones.
    pub fn settings_for(quick: bool) -> (SearchSettings, Duration, Duration, Vec<u32>) {
        if quick {
            let search = SearchSettings {
                start: 1000.0,
                factor: 2.0,
                max: 200_000.0,
                tolerance: 0.2,
                max_bisections: 2,
            };
            (
                search,
                Duration::from_secs(2),
                Duration::from_secs(5),
                vec![1, 2, 4],
            )
        } else {
            let search = SearchSettings {
                start: 1000.0,
                factor: 1.5,
                max: 500_000.0,
                tolerance: 0.05,
                max_bisections: 5,
            };
            (
                search,
                Duration::from_secs(5),
                Duration::from_secs(20),
                vec![1, 2, 4, 8, 16],
            )
        }
    }
}

/// Each traffic source's share of the scenario's mean rate, in source order (summing to 1; empty
/// sums when the scenario sends nothing). The search, the report's mix and `sustainable.toml` all
/// split a rate by these.
pub fn mix_shares(scenario: &Scenario) -> Vec<f64> {
    let means: Vec<f64> = scenario
        .traffic
        .iter()
        .map(|t| t.profile.expected_total() / t.profile.duration().as_secs_f64().max(1e-9))
        .collect();
    let total: f64 = means.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return vec![0.0; means.len()];
    }
    means.into_iter().map(|m| m / total).collect()
}
