//! The validated scenario a run executes, and the raw TOML shape it is read from.
//!
//! Values with units (durations, rates, sizes, times of day) are parsed while deserialising, so a bad
//! value is reported by the TOML parser at its exact line and column. Checks that span several values
//! (rate points in order, bursts that overlap, thresholds) keep the TOML spans to point at the
//! offending value too.
//!
//! A `[[traffic]]` source names a `domain`, an optional `mix` of subjects by weight, and one shape:
//!
//! ```toml
//! rate = "500/s"                                   # constant; or per learner: "3/learner/min"
//! rate = [ { at = "0s", rate = "100/s" },          # steps, and ramps with `ramp`
//!          { at = "30s", rate = "1000/s", ramp = "5s", phase = "rush" } ]
//! school_day = { peak = "60/learner/min", compression = 96, start = "06:00", evening = 0.45 }
//! ```
//!
//! optionally `bursts = [ { at = "40s", rate = "10000/s", ramp = "5s", for = "30s", phase = "bell" } ]`
//! laid over the shape, and `arrivals = "even"` (default) or `"poisson"` (seeded from `seed`). Per-
//! learner rates are multiplied by `population.learners`. A `[[chaos]]` section belongs to the chaos
//! engine and is added there; until then `deny_unknown_fields` refuses it like any unknown key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::checks::thresholds::Threshold;
use crate::traffic::arrival::RateProfile;
use crate::traffic::poison::PoisonShare;
use crate::traffic::Domain;
use crate::units;

/// Reads a value written as text with a unit, so a value of the wrong type is refused with the same
/// "expected ..." as a badly written one; sizes may also be a plain byte count.
struct TextVisitor<T> {
    expected: &'static str,
    parse: fn(&str) -> Result<T, String>,
    /// For sizes: how to take a plain non-negative integer.
    from_integer: Option<fn(u64) -> T>,
}

impl<T> serde::de::Visitor<'_> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<T, E> {
        match self.from_integer {
            Some(from) => Ok(from(value)),
            None => Err(E::invalid_type(
                serde::de::Unexpected::Unsigned(value),
                &self,
            )),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<T, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::invalid_type(serde::de::Unexpected::Signed(value), &self)),
        }
    }
}

fn from_text<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expected: &'static str,
    parse: fn(&str) -> Result<T, String>,
    from_integer: Option<fn(u64) -> T>,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(TextVisitor {
        expected,
        parse,
        from_integer,
    })
}

/// A duration written like "90s".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            "a duration such as \"90s\", \"2m\" or \"250ms\"",
            units::parse_duration,
            None,
        )
        .map(DurationValue)
    }
}

/// A rate written like "500/s" or "3/learner/min" (resolved against the population by the loader).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateValue(pub units::Rate);

impl<'de> Deserialize<'de> for RateValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            "a rate such as \"500/s\", \"30/min\" or \"3/learner/min\"",
            units::parse_rate,
            None,
        )
        .map(RateValue)
    }
}

/// A time of day written like "06:00".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockValue(pub Duration);

impl<'de> Deserialize<'de> for ClockValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            "a time of day such as \"06:00\"",
            units::parse_clock,
            None,
        )
        .map(ClockValue)
    }
}

/// A size written like "8MiB" (or a plain integer of bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeValue(pub u64);

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            "a size such as \"8MiB\" or a number of bytes",
            units::parse_size,
            Some(|bytes| bytes),
        )
        .map(SizeValue)
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub duration: Spanned<DurationValue>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub population: RawPopulation,
    #[serde(default)]
    pub publishers: RawPublishers,
    /// Missing or empty is refused by the loader with a message that says what to add.
    #[serde(default)]
    pub traffic: Vec<Spanned<RawTraffic>>,
    #[serde(default)]
    pub streams: BTreeMap<Spanned<String>, RawStreamOverride>,
    #[serde(default)]
    pub thresholds: BTreeMap<Spanned<String>, Spanned<RawThreshold>>,
    /// `[[chaos]]` entries (format and validation in `chaos/schedule.rs`).
    #[serde(default)]
    pub chaos: Vec<Spanned<crate::chaos::schedule::ChaosEntry>>,
    #[serde(default)]
    pub consumers: RawConsumers,
    #[serde(default)]
    pub cluster: RawClusterSettings,
    /// `[drill]`: a disaster-recovery drill (`run/drill.rs`).
    #[serde(default)]
    pub drill: Option<RawDrill>,
}

/// `[drill]`: snapshot every stream at `snapshot_at` under load; after the load, destroy the
/// cluster with its stores, bring up a fresh one and restore the snapshots.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrill {
    pub snapshot_at: Spanned<DurationValue>,
}

/// `[cluster]`: server settings of a cluster the run starts itself (local and docker backends).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterSettings {
    /// JetStream `sync_interval`: `"always"` or a duration; absent, the server's default (2m).
    #[serde(default)]
    pub sync_interval: Option<Spanned<String>>,
    /// Run the scenario once per `sync_interval` listed (`"default"` is the server's own) and
    /// compare the runs (`durability-compare`).
    #[serde(default)]
    pub compare_sync_interval: Option<Spanned<Vec<String>>>,
    /// `"production"`: the scenario needs the production profile (`--profile production` is
    /// implied); `"open"` or absent: the command line's `--profile`.
    #[serde(default)]
    pub profile: Option<Spanned<String>>,
}

/// `[consumers]`: the reference consumers a run starts as child processes (with a Postgres).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumers {
    #[serde(default)]
    pub indexer: bool,
    #[serde(default)]
    pub analytics: bool,
    /// Start the indexer this long after the load (a backlog to catch up on).
    #[serde(default)]
    pub indexer_start: Option<Spanned<DurationValue>>,
    /// How long after the load the indexer may take to reach zero lag before the run fails.
    #[serde(default)]
    pub catch_up_timeout: Option<DurationValue>,
}

/// The reference consumers of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerSettings {
    pub indexer: bool,
    pub analytics: bool,
    pub indexer_start: Duration,
    pub catch_up_timeout: Duration,
}

impl ConsumerSettings {
    /// True when the run needs a Postgres.
    pub fn any(&self) -> bool {
        self.indexer || self.analytics
    }
}

/// A threshold's value: `"< 5%"`, or k6's abort-on-fail form
/// `{ expr = "< 5%", abort_on_fail = true, delay = "10s" }` (checked each second of the load once
/// `delay` has passed; a failure stops the run early and fails it).
#[derive(Debug)]
pub struct RawThreshold {
    pub expr: Spanned<String>,
    pub abort_on_fail: bool,
    pub delay: Option<DurationValue>,
}

/// The table form of [`RawThreshold`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholdTable {
    expr: Spanned<String>,
    #[serde(default)]
    abort_on_fail: bool,
    #[serde(default)]
    delay: Option<DurationValue>,
}

impl<'de> Deserialize<'de> for RawThreshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ThresholdVisitor;

        impl<'de> serde::de::Visitor<'de> for ThresholdVisitor {
            type Value = RawThreshold;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a comparison such as \"< 250ms\", or { expr = \"< 5%\", abort_on_fail = true, delay = \"10s\" }",
                )
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RawThreshold, E> {
                Ok(RawThreshold {
                    // The loader points at the value's own span for the string form.
                    expr: Spanned::new(0..0, text.to_string()),
                    abort_on_fail: false,
                    delay: None,
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawThreshold, A::Error> {
                let table = RawThresholdTable::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(RawThreshold {
                    expr: table.expr,
                    abort_on_fail: table.abort_on_fail,
                    delay: table.delay,
                })
            }
        }

        deserializer.deserialize_any(ThresholdVisitor)
    }
}

/// `[population]`: who generates the events; per-learner rates are resolved against `learners`.
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
    /// Send each event's ledger identity as its `Nats-Msg-Id` (JetStream dedup), see
    /// [`Scenario::message_id`].
    #[serde(default = "default_message_id")]
    pub message_id: bool,
}

impl Default for RawPublishers {
    fn default() -> Self {
        Self {
            count: default_publishers(),
            in_flight: default_in_flight(),
            ack_timeout: default_ack_timeout(),
            message_id: default_message_id(),
        }
    }
}

/// On by default: AIVO's services publish through JetStream clients that retry a publish whose ack
/// timed out, and a retry is only safe with a message id for the stream's dedup window to catch;
/// the seed's README says nothing either way, so we measure what an idempotent producer costs the
/// cluster (about a third of its plain-publish throughput, issue #12), not the cheaper case.
fn default_message_id() -> bool {
    true
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

/// One `[[traffic]]` source as written: a domain, a mix, a shape, bursts and a placement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub domain: Spanned<Domain>,
    #[serde(default)]
    pub mix: Option<Spanned<BTreeMap<String, u32>>>,
    /// A constant rate ("500/s") or a list of rate points (steps and ramps).
    #[serde(default)]
    pub rate: Option<Spanned<RawRate>>,
    /// The diurnal school-day curve instead of `rate`.
    #[serde(default)]
    pub school_day: Option<Spanned<RawSchoolDay>>,
    /// Short spikes laid over the shape.
    #[serde(default)]
    pub bursts: Vec<Spanned<RawBurst>>,
    /// How events are placed under the rate curve (default: evenly).
    #[serde(default)]
    pub arrivals: Option<Spanned<ArrivalKind>>,
    /// Share of this source's events sent as poison (`"2%"`), for the DLQ scenarios.
    #[serde(default)]
    pub poison: Option<PoisonValue>,
}

/// A share of poison events written like "2%" or "0.5%".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoisonValue(pub PoisonShare);

impl<'de> Deserialize<'de> for PoisonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            "a share of poison events such as \"2%\" or \"0.5%\"",
            PoisonShare::parse,
            None,
        )
        .map(PoisonValue)
    }
}

/// `rate = "500/s"` or `rate = [ { at = "0s", rate = "500/s" }, ... ]`.
#[derive(Debug)]
pub enum RawRate {
    Constant(RateValue),
    Points(Vec<Spanned<RawRatePoint>>),
}

impl<'de> Deserialize<'de> for RawRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;

        impl<'de> serde::de::Visitor<'de> for RateVisitor {
            type Value = RawRate;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a rate such as \"500/s\" or \"3/learner/min\", or a list of rate points such as [ { at = \"0s\", rate = \"500/s\" } ]",
                )
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RawRate, E> {
                units::parse_rate(text)
                    .map(|r| RawRate::Constant(RateValue(r)))
                    .map_err(E::custom)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawRate, A::Error> {
                let mut points = Vec::new();
                while let Some(point) = seq.next_element()? {
                    points.push(point);
                }
                Ok(RawRate::Points(points))
            }
        }

        deserializer.deserialize_any(RateVisitor)
    }
}

/// One step or ramp: from `at`, reach `rate` over `ramp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRatePoint {
    pub at: DurationValue,
    pub rate: Spanned<RateValue>,
    #[serde(default)]
    pub ramp: Option<DurationValue>,
    #[serde(default)]
    pub phase: Option<String>,
}

/// A spike: from `at`, rise to `rate` over `ramp`, hold it `for`, fall back over `ramp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBurst {
    pub at: DurationValue,
    pub rate: Spanned<RateValue>,
    #[serde(default)]
    pub ramp: Option<DurationValue>,
    #[serde(rename = "for")]
    pub hold: DurationValue,
    #[serde(default)]
    pub phase: Option<String>,
}

/// `school_day = { peak = "3/learner/min", compression = 96, start = "06:00", evening = 0.45 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchoolDay {
    /// The rate during class periods.
    pub peak: Spanned<RateValue>,
    /// How many times faster than real time the day runs (96: 24 h in 15 min).
    pub compression: Spanned<f64>,
    /// Time of day at the start of the run (default "00:00").
    #[serde(default)]
    pub start: Option<ClockValue>,
    /// The evening homework bump as a fraction of the peak.
    #[serde(default)]
    pub evening: Option<Spanned<f64>>,
}

/// `arrivals = "even" | "poisson"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalKind {
    /// The n-th event exactly where the integrated rate reaches n.
    Even,
    /// A seeded non-homogeneous Poisson process over the same rate curve.
    Poisson,
}

/// `[streams.NAME]`: limits applied to a stream before the run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreamOverride {
    pub max_age: Option<DurationValue>,
    pub max_bytes: Option<SizeValue>,
    pub max_msgs: Option<Spanned<i64>>,
    pub replicas: Option<Spanned<usize>>,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Names the run and its report folder.
    pub name: String,
    /// One sentence for `scenarios list` and the report.
    pub description: String,
    /// Where it was read from (a path, or `built-in:NAME`).
    pub origin: String,
    /// How long traffic is sent.
    pub duration: Duration,
    /// Fixes every random choice of the run: events, learners, Poisson arrivals.
    pub seed: u64,
    pub tenants: u32,
    pub learners: u32,
    /// Publisher tasks per traffic source.
    pub publishers: u32,
    /// Unacknowledged publishes per publisher.
    pub in_flight: u32,
    pub ack_timeout: Duration,
    /// `[publishers] message_id`: each event carries its ledger identity `<run>/<publisher>/<seq>`
    /// as `Nats-Msg-Id`, so the stream dedups it (default). Off, events carry no message id and the
    /// identity is read from the payload's `producer`; the cluster then does no dedup work, which
    /// is what a capacity figure for fire-and-forget producers should measure.
    pub message_id: bool,
    pub traffic: Vec<TrafficSource>,
    /// Stream limits to apply before the run, by stream name.
    pub streams: BTreeMap<String, StreamSettings>,
    pub thresholds: Vec<Threshold>,
    /// Faults to apply during the run.
    pub chaos: crate::chaos::schedule::ChaosPlan,
    pub consumers: ConsumerSettings,
    /// `[cluster] sync_interval`; `None`: the server's default (2 minutes).
    pub sync_interval: Option<crate::cluster::SyncInterval>,
    /// `[cluster] compare_sync_interval`: one run per setting (`None`: the server's default),
    /// compared side by side; empty: one run.
    pub compare_sync_interval: Vec<Option<crate::cluster::SyncInterval>>,
    /// `[cluster] profile = "production"`: the run's cluster must have the production profile
    /// (`security-audit`: its checks mean nothing on an open cluster).
    pub requires_production: bool,
    /// `[drill]`: a disaster-recovery drill; `None`: none.
    pub drill: Option<DrillSettings>,
}

/// A validated `[drill]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrillSettings {
    /// When, since the load's start, every stream is snapshotted (the load goes on meanwhile).
    pub snapshot_at: Duration,
}

/// One stream of synthetic traffic.
#[derive(Debug, Clone)]
pub struct TrafficSource {
    pub domain: Domain,
    /// `(subject, weight)`; validated against the domain's generator.
    pub mix: Vec<(String, u32)>,
    /// When events are intended to be sent, per-learner rates already resolved.
    pub profile: RateProfile,
    /// Share of the events sent as poison (see `traffic/poison.rs`).
    pub poison: PoisonShare,
}

/// Stream limits a scenario overrides (small values make retention observable in minutes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSettings {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
    pub max_msgs: Option<i64>,
    pub replicas: Option<usize>,
}

/// The Poisson seed of traffic source `index` of a scenario seeded with `seed`: sources draw
/// independent arrival processes, and the same seed always gives the same ones.
pub fn source_seed(seed: u64, index: usize) -> u64 {
    // SplitMix64 finaliser over the pair, so neighbouring seeds do not give correlated streams.
    let mut z = seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Scenario {
    /// The same scenario with another duration (phases stretched or compressed to fit), rates
    /// multiplied by `rate_scale`, and another seed (which also redraws Poisson arrivals).
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
        for (index, source) in self.traffic.iter_mut().enumerate() {
            if let Some(seed) = seed {
                source.profile = source.profile.reseeded(source_seed(seed, index));
            }
            if let Some(duration) = duration {
                source.profile = source.profile.fitted_to(duration)?;
            }
            if rate_scale != 1.0 {
                source.profile = source.profile.scaled(rate_scale)?;
            }
        }
        if let Some(duration) = duration {
            // Fixed faults keep their place in the run: at 30 s of 90 s stays at a third of the way.
            let ratio = duration.as_secs_f64() / self.duration.as_secs_f64();
            self.chaos = self.chaos.fitted(ratio);
            self.consumers.indexer_start = self.consumers.indexer_start.mul_f64(ratio);
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
