//! The validated scenario a run executes, and the raw TOML shape it is read from.
//!
//! Values with units (durations, rates, sizes) are parsed while deserialising, so a bad value is
//! reported by the TOML parser at its exact line and column. Checks that span several values (rate
//! points in order, thresholds) keep the TOML spans to point at the offending value too.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::units;
use crate::checks::thresholds::Threshold;
use crate::traffic::arrival::RateProfile;
use crate::traffic::Domain;

/// A duration written like "90s".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        units::parse_duration(&text)
            .map(DurationValue)
            .map_err(serde::de::Error::custom)
    }
}

/// A rate written like "500/s".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateValue(pub f64);

impl<'de> Deserialize<'de> for RateValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        units::parse_rate(&text)
            .map(|r| RateValue(r.per_second))
            .map_err(serde::de::Error::custom)
    }
}

/// A size written like "8MiB" (or a plain integer of bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeValue(pub u64);

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(bytes) => Ok(SizeValue(bytes)),
            Raw::Text(text) => units::parse_size(&text)
                .map(SizeValue)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub duration: Spanned<DurationValue>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub population: RawPopulation,
    #[serde(default)]
    pub publishers: RawPublishers,
    pub traffic: Vec<RawTraffic>,
    #[serde(default)]
    pub streams: BTreeMap<Spanned<String>, RawStreamOverride>,
    #[serde(default)]
    pub thresholds: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPopulation {
    #[serde(default = "default_tenants")]
    pub tenants: Spanned<u32>,
    #[serde(default = "default_learners")]
    pub learners: Spanned<u32>,
}

impl Default for RawPopulation {
    fn default() -> Self {
        Self {
            tenants: default_tenants(),
            learners: default_learners(),
        }
    }
}

fn default_tenants() -> Spanned<u32> {
    Spanned::new(0..0, 20)
}
fn default_learners() -> Spanned<u32> {
    Spanned::new(0..0, 2000)
}

/// How the load is spread and bounded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublishers {
    /// Publishers per traffic source (each its own task; connections spread over the nodes).
    #[serde(default = "default_publishers")]
    pub count: Spanned<u32>,
    /// Unacknowledged publishes per publisher.
    #[serde(default = "default_in_flight")]
    pub in_flight: Spanned<u32>,
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: DurationValue,
}

impl Default for RawPublishers {
    fn default() -> Self {
        Self {
            count: default_publishers(),
            in_flight: default_in_flight(),
            ack_timeout: default_ack_timeout(),
        }
    }
}

fn default_publishers() -> Spanned<u32> {
    Spanned::new(0..0, 4)
}
fn default_in_flight() -> Spanned<u32> {
    Spanned::new(0..0, 256)
}
fn default_ack_timeout() -> DurationValue {
    DurationValue(Duration::from_secs(5))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub domain: Spanned<Domain>,
    #[serde(default)]
    pub mix: Option<Spanned<BTreeMap<String, u32>>>,
    pub rate: Spanned<Vec<RawRatePoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRatePoint {
    pub at: DurationValue,
    pub rate: RateValue,
    #[serde(default)]
    pub ramp: Option<DurationValue>,
    #[serde(default)]
    pub phase: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreamOverride {
    pub max_age: Option<DurationValue>,
    pub max_bytes: Option<SizeValue>,
    pub max_msgs: Option<i64>,
    pub replicas: Option<usize>,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where it was read from (a path, or `built-in:NAME`).
    pub origin: String,
    pub duration: Duration,
    pub seed: u64,
    pub tenants: u32,
    pub learners: u32,
    pub publishers: u32,
    pub in_flight: u32,
    pub ack_timeout: Duration,
    pub traffic: Vec<TrafficSource>,
    pub streams: BTreeMap<String, StreamSettings>,
    pub thresholds: Vec<Threshold>,
}

/// One stream of synthetic traffic.
#[derive(Debug, Clone)]
pub struct TrafficSource {
    pub domain: Domain,
    pub mix: Vec<(String, u32)>,
    pub profile: RateProfile,
}

/// Stream limits a scenario overrides (small values make retention observable in minutes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSettings {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
    pub max_msgs: Option<i64>,
    pub replicas: Option<usize>,
}

impl Scenario {
    /// The same scenario with another duration (phases stretched or compressed to fit), rates
    /// multiplied by `rate_scale`, and another seed.
    pub fn adjusted(
        mut self,
        duration: Option<Duration>,
        rate_scale: f64,
        seed: Option<u64>,
    ) -> Result<Self, String> {
        if !(rate_scale.is_finite() && rate_scale > 0.0) {
            return Err(format!(
                "--rate-scale must be a positive number, found {rate_scale}"
            ));
        }
        for source in &mut self.traffic {
            if let Some(duration) = duration {
                source.profile = source.profile.fitted_to(duration)?;
            }
            if rate_scale != 1.0 {
                source.profile = source.profile.scaled(rate_scale)?;
            }
        }
        if let Some(duration) = duration {
            self.duration = duration;
        }
        if let Some(seed) = seed {
            self.seed = seed;
        }
        Ok(self)
    }

    /// Events the whole run intends to send.
    pub fn intended_total(&self) -> u64 {
        self.traffic.iter().map(|t| t.profile.total()).sum()
    }

    /// Intended events per second at `t`, over every source.
    pub fn target_rate_at(&self, t: Duration) -> f64 {
        self.traffic.iter().map(|s| s.profile.rate_at(t)).sum()
    }

    /// Intended events in `[from, to)`.
    pub fn intended_between(&self, from: Duration, to: Duration) -> f64 {
        self.traffic
            .iter()
            .map(|s| s.profile.cumulative(to) - s.profile.cumulative(from))
            .sum()
    }

    /// The phase of the first traffic source at `t`.
    pub fn phase_at(&self, t: Duration) -> String {
        self.traffic
            .first()
            .map(|s| s.profile.phase_at(t).to_string())
            .unwrap_or_default()
    }
}
