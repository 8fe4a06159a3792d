//! Reading a scenario file: TOML → raw model → validated [`Scenario`], with errors that name the
//! file, line and column and say what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use std::time::Duration;

use toml::Spanned;

use super::model::{
    source_seed, ArrivalKind, ConsumerSettings, DrillSettings, RateValue, RawBurst, RawConsumers,
    RawPopulation, RawPublishers, RawRate, RawScenario, RawSchoolDay, RawStreamOverride,
    RawThreshold, RawTraffic, Scenario, StreamSettings, TrafficSource,
};
use crate::chaos::schedule::{ChaosEntry, ChaosPlan};
use crate::checks::thresholds::{Threshold, ThresholdError};
use crate::traffic::arrival::{
    format_rate, ArrivalProcess, Burst, ProfileError, RatePoint, RateProfile, SchoolDay,
    DEFAULT_EVENING,
};
use crate::traffic::poison::PoisonShare;
use crate::traffic::{Domain, Mix};

/// The seed of a scenario that names none.
pub const DEFAULT_SEED: u64 = 1;

/// The highest rate a source may reach: far above what one machine can drive, so a value beyond it
/// is a typo (a missing "/min", a per-learner rate meant as a total).
const MAX_RATE: f64 = 1_000_000.0;

/// A scenario (or another TOML file: a forecast) that cannot be used, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending source line, for context.
    pub source_line: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:>col$}",
                "",
                self.line,
                self.source_line,
                "",
                "^",
                col = self.column
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Locates byte offsets of one file's text.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

/// An error at byte `span` of `text` (the file `file`), located by line and column: the one
/// locator of every TOML file aivo-load reads (scenarios, forecasts).
pub fn located_error(
    file: &str,
    text: &str,
    span: Option<Range<usize>>,
    message: impl Into<String>,
) -> ScenarioError {
    Source { file, text }.error(span, message)
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ScenarioError {
        let mut offset = span.map_or(0, |s| s.start).min(self.text.len());
        // Spans fall on character boundaries; never slice inside one if a parser disagrees.
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let source_line = self.text[line_start..]
            .split('\n')
            .next()
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_string();
        // A parser may point at a line's trailing '\r' or just past it; keep the column visible.
        let column = (self.text[line_start..offset].chars().count() + 1)
            .min(source_line.chars().count() + 1);
        ScenarioError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
            source_line,
        }
    }
}

/// Parses and validates a scenario. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let source = Source { file, text };
    let raw: RawScenario =
        toml::from_str(text).map_err(|e| source.error(e.span(), e.message().trim_end()))?;
    validate(&source, raw)
}

/// Checks each section in the order of the file's usual layout (run, population and publishers,
/// traffic, streams, thresholds, consumers, chaos); the first error found is the one reported.
fn validate(source: &Source<'_>, raw: RawScenario) -> Result<Scenario, ScenarioError> {
    if raw.name.get_ref().trim().is_empty() {
        return Err(source.error(
            Some(raw.name.span()),
            "expected a `name` such as \"focus-burst\", found an empty string",
        ));
    }
    let duration = raw.duration.get_ref().0;
    if duration.is_zero() {
        return Err(source.error(
            Some(raw.duration.span()),
            "`duration` must be longer than 0s",
        ));
    }
    let sizes = Sizes::validate(source, &raw.population, &raw.publishers)?;
    let seed = raw.seed.unwrap_or(DEFAULT_SEED);
    let shape = Shape {
        source,
        duration,
        learners: sizes.learners,
    };
    let traffic = traffic_sources(&shape, seed, raw.traffic)?;
    let streams = stream_settings(source, raw.streams)?;
    let thresholds = thresholds(source, &raw.thresholds)?;
    let consumers = consumer_settings(source, &raw.consumers, duration)?;
    let chaos = chaos_plan(source, &raw.chaos, consumers.indexer)?;
    let sync_interval = match &raw.cluster.sync_interval {
        None => None,
        Some(text) => Some(
            text.get_ref()
                .parse()
                .map_err(|e: String| source.error(Some(text.span()), &e))?,
        ),
    };
    let compare_sync_interval = match &raw.cluster.compare_sync_interval {
        None => Vec::new(),
        Some(list) => {
            let at = |e: String| source.error(Some(list.span()), &e);
            if list.get_ref().len() < 2 {
                return Err(at(
                    "compare_sync_interval lists the settings to compare: at least two, e.g. \
                     [\"default\", \"always\"]"
                        .into(),
                ));
            }
            if sync_interval.is_some() {
                return Err(at(
                    "give either sync_interval or compare_sync_interval, not both".into(),
                ));
            }
            list.get_ref()
                .iter()
                .map(|text| match text.trim() {
                    "default" => Ok(None),
                    other => other
                        .parse()
                        .map(Some)
                        .map_err(|e: String| at(format!("{e} (or \"default\", the server's own)"))),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let requires_production = match &raw.cluster.profile {
        None => false,
        Some(text) => {
            let profile: crate::cluster::ClusterProfile = text
                .get_ref()
                .parse()
                .map_err(|e: String| source.error(Some(text.span()), &e))?;
            profile == crate::cluster::ClusterProfile::Production
        }
    };
    let drill = match &raw.drill {
        None => None,
        Some(drill) => {
            let at = drill.snapshot_at.get_ref().0;
            if at.is_zero() || at >= duration {
                return Err(source.error(
                    Some(drill.snapshot_at.span()),
                    format!(
                        "`snapshot_at` must fall inside the load (after 0s, before `duration` {})",
                        crate::units::format_duration(duration)
                    ),
                ));
            }
            Some(DrillSettings { snapshot_at: at })
        }
    };
    Ok(Scenario {
        name: raw.name.into_inner(),
        description: raw.description,
        origin: source.file.to_string(),
        duration,
        seed,
        tenants: sizes.tenants,
        learners: sizes.learners,
        publishers: sizes.publishers,
        in_flight: sizes.in_flight,
        ack_timeout: raw.publishers.ack_timeout.0,
        message_id: raw.publishers.message_id,
        traffic,
        streams,
        thresholds,
        chaos,
        consumers,
        sync_interval,
        compare_sync_interval,
        requires_production,
        drill,
    })
}

/// `[population]` and `[publishers]`: how many tenants and learners, and how many publishers send
/// for them with how many publishes in flight.
struct Sizes {
    tenants: u32,
    learners: u32,
    publishers: u32,
    in_flight: u32,
}

impl Sizes {
    fn validate(
        source: &Source<'_>,
        population: &RawPopulation,
        publishers: &RawPublishers,
    ) -> Result<Self, ScenarioError> {
        let positive = |value: &Spanned<u32>, what: &str| {
            if *value.get_ref() == 0 {
                Err(source.error(Some(value.span()), format!("`{what}` must be at least 1")))
            } else {
                Ok(*value.get_ref())
            }
        };
        let tenants = positive(&population.tenants, "population.tenants")?;
        let learners = positive(&population.learners, "population.learners")?;
        let count = positive(&publishers.count, "publishers.count")?;
        if learners < count {
            // Each learner belongs to one publisher of a source (its events stay in order); a
            // publisher without learners would have nothing to send.
            return Err(source.error(
                Some(publishers.count.span()),
                format!("`publishers.count` ({count}) must not exceed `population.learners` ({learners})"),
            ));
        }
        let in_flight = positive(&publishers.in_flight, "publishers.in_flight")?;
        Ok(Self {
            tenants,
            learners,
            publishers: count,
            in_flight,
        })
    }
}

/// `[[traffic]]`: at least one source; the `index`th source's Poisson arrivals are seeded from
/// the scenario's `seed` and `index`.
fn traffic_sources(
    shape: &Shape<'_>,
    seed: u64,
    raw: Vec<Spanned<RawTraffic>>,
) -> Result<Vec<TrafficSource>, ScenarioError> {
    if raw.is_empty() {
        return Err(shape.source.error(
            Some(0..0),
            "a scenario needs at least one [[traffic]] source",
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(index, raw_source)| traffic_source(shape, source_seed(seed, index), raw_source))
        .collect()
}

/// One `[[traffic]]` source: its domain, mix, rate profile (a rate or a school day, then bursts and
/// arrivals) and poison share.
fn traffic_source(
    shape: &Shape<'_>,
    seed: u64,
    raw_source: Spanned<RawTraffic>,
) -> Result<TrafficSource, ScenarioError> {
    let source = shape.source;
    let source_span = raw_source.span();
    let raw_source = raw_source.into_inner();
    let domain = *raw_source.domain.get_ref();
    if domain.subjects().is_empty() {
        return Err(source.error(
            Some(raw_source.domain.span()),
            format!("the {domain:?} domain has no event generator"),
        ));
    }
    let mix = match &raw_source.mix {
        Some(mix) => traffic_mix(source, domain, mix)?,
        None => domain.default_mix(),
    };
    let mut profile = match (raw_source.rate, raw_source.school_day) {
        (Some(rate), None) => shape.rate(rate)?,
        (None, Some(day)) => shape.school_day(day)?,
        (Some(_), Some(day)) => {
            return Err(source.error(
                Some(day.span()),
                "give either `rate` or `school_day` for a traffic source, not both",
            ))
        }
        (None, None) => {
            return Err(source.error(
                Some(source_span),
                "a traffic source needs a shape: `rate = \"500/s\"`, `rate = [ { at = \"0s\", rate = \"500/s\" }, ... ]` or `school_day = { peak = \"3/learner/min\", compression = 96 }`",
            ))
        }
    };
    if !raw_source.bursts.is_empty() {
        profile = shape.bursts(&profile, raw_source.bursts)?;
    }
    if let Some(arrivals) = raw_source.arrivals {
        if *arrivals.get_ref() == ArrivalKind::Poisson {
            profile = profile.with_process(ArrivalProcess::Poisson { seed });
        }
    }
    Ok(TrafficSource {
        domain,
        mix,
        profile,
        poison: raw_source.poison.map_or(PoisonShare::NONE, |p| p.0),
    })
}

/// A source's `mix`: subjects of its domain with weights [`Mix`] accepts.
fn traffic_mix(
    source: &Source<'_>,
    domain: Domain,
    mix: &Spanned<BTreeMap<String, u32>>,
) -> Result<Vec<(String, u32)>, ScenarioError> {
    let known = domain.subjects();
    let entries: Vec<(String, u32)> = mix.get_ref().iter().map(|(k, v)| (k.clone(), *v)).collect();
    if let Some((subject, _)) = entries.iter().find(|(s, _)| !known.contains(&s.as_str())) {
        return Err(source.error(
            Some(mix.span()),
            format!(
                "unknown subject \"{subject}\" in the {domain:?} mix; known: {}",
                known.join(", ")
            ),
        ));
    }
    Mix::new(&entries).map_err(|e| source.error(Some(mix.span()), e))?;
    Ok(entries)
}

/// `[streams.NAME]`: overrides of the seed's streams, known names only, replicas within the cluster.
fn stream_settings(
    source: &Source<'_>,
    raw: BTreeMap<Spanned<String>, RawStreamOverride>,
) -> Result<BTreeMap<String, StreamSettings>, ScenarioError> {
    let known_streams = ["LEARNING", "FOCUS", "HOMEWORK", "RECOMMENDATION", "DLQ"];
    let mut streams = BTreeMap::new();
    for (name, ov) in raw {
        if !known_streams.contains(&name.get_ref().as_str()) {
            return Err(source.error(
                Some(name.span()),
                format!(
                    "unknown stream \"{}\"; known streams: {}",
                    name.get_ref(),
                    known_streams.join(", ")
                ),
            ));
        }
        if let Some(replicas) = &ov.replicas {
            if !(1..=3).contains(replicas.get_ref()) {
                return Err(source.error(
                    Some(replicas.span()),
                    format!(
                        "expected `replicas` between 1 and 3 (the cluster has three nodes), found {}",
                        replicas.get_ref()
                    ),
                ));
            }
        }
        if let Some(max_msgs) = &ov.max_msgs {
            if *max_msgs.get_ref() < -1 || *max_msgs.get_ref() == 0 {
                return Err(source.error(
                    Some(max_msgs.span()),
                    format!(
                        "expected `max_msgs` to be a positive count (or -1 for no limit), found {}",
                        max_msgs.get_ref()
                    ),
                ));
            }
        }
        streams.insert(
            name.into_inner(),
            StreamSettings {
                max_age: ov.max_age.map(|d| d.0),
                max_bytes: ov.max_bytes.map(|s| s.0),
                max_msgs: ov.max_msgs.map(Spanned::into_inner),
                replicas: ov.replicas.map(Spanned::into_inner),
            },
        );
    }
    Ok(streams)
}

/// `[thresholds]`: each metric and comparison parsed, errors pointing at whichever of the two is
/// wrong.
fn thresholds(
    source: &Source<'_>,
    raw: &BTreeMap<Spanned<String>, Spanned<RawThreshold>>,
) -> Result<Vec<Threshold>, ScenarioError> {
    let mut thresholds = Vec::new();
    for (metric, value) in raw {
        let raw_threshold = value.get_ref();
        // The string form has no span of its own: point at the value.
        let expression_span = if raw_threshold.expr.span() == (0..0) {
            value.span()
        } else {
            raw_threshold.expr.span()
        };
        match Threshold::parse(metric.get_ref(), raw_threshold.expr.get_ref()) {
            Ok(t) => thresholds.push(abort_settings(source, value, t)?),
            Err(ThresholdError::InMetric(m)) => return Err(source.error(Some(metric.span()), m)),
            Err(ThresholdError::InExpression(m)) => {
                return Err(source.error(Some(expression_span), m))
            }
        }
    }
    Ok(thresholds)
}

/// A threshold's `abort_on_fail` and `delay`: only a live metric can stop the load, and `delay`
/// only means something for one that does.
fn abort_settings(
    source: &Source<'_>,
    value: &Spanned<RawThreshold>,
    mut threshold: Threshold,
) -> Result<Threshold, ScenarioError> {
    let raw_threshold = value.get_ref();
    if raw_threshold.abort_on_fail {
        if !threshold.live() {
            return Err(source.error(
                Some(value.span()),
                format!(
                    "abort_on_fail applies to publish.* metrics without a tag (checked each second of the load); {} is known only at the end",
                    threshold.name()
                ),
            ));
        }
        threshold.abort_on_fail = true;
        threshold.delay = raw_threshold.delay.map_or(Duration::ZERO, |d| d.0);
    } else if raw_threshold.delay.is_some() {
        return Err(source.error(
            Some(value.span()),
            "`delay` applies to a threshold with `abort_on_fail = true`",
        ));
    }
    Ok(threshold)
}

/// `[consumers]`: an `indexer_start` needs the indexer and must fall inside the run.
fn consumer_settings(
    source: &Source<'_>,
    raw: &RawConsumers,
    duration: Duration,
) -> Result<ConsumerSettings, ScenarioError> {
    if let Some(start) = &raw.indexer_start {
        if !raw.indexer || start.get_ref().0 >= duration {
            return Err(source.error(
                Some(start.span()),
                "`consumers.indexer_start` needs `indexer = true` and must fall inside the run",
            ));
        }
    }
    Ok(ConsumerSettings {
        indexer: raw.indexer,
        analytics: raw.analytics,
        indexer_start: raw
            .indexer_start
            .as_ref()
            .map_or(Duration::ZERO, |d| d.get_ref().0),
        catch_up_timeout: raw
            .catch_up_timeout
            .map_or(Duration::from_secs(120), |d| d.0),
    })
}

/// `[[chaos]]`: the entries as a plan; `kill-indexer` (alone or among a nemesis's faults) needs an
/// indexer to kill.
fn chaos_plan(
    source: &Source<'_>,
    raw: &[Spanned<ChaosEntry>],
    indexer: bool,
) -> Result<ChaosPlan, ScenarioError> {
    let entries: Vec<_> = raw.iter().map(|e| e.get_ref().clone()).collect();
    let chaos = ChaosPlan::from_entries(&entries)
        .map_err(|(i, msg)| source.error(Some(raw[i].span()), format!("[[chaos]]: {msg}")))?;
    if !indexer {
        let kills_indexer = |e: &ChaosEntry| {
            e.fault == "kill-indexer"
                || e.faults
                    .as_ref()
                    .is_some_and(|f| f.iter().any(|n| n == "kill-indexer"))
        };
        if let Some(entry) = raw.iter().find(|e| kills_indexer(e.get_ref())) {
            return Err(source.error(
                Some(entry.span()),
                "[[chaos]]: kill-indexer needs `[consumers] indexer = true`",
            ));
        }
    }
    Ok(chaos)
}

/// Builds the rate profile of one traffic source, pointing errors at the value at fault.
struct Shape<'a> {
    source: &'a Source<'a>,
    duration: Duration,
    learners: u32,
}

impl Shape<'_> {
    /// Resolves a rate against the population and bounds it.
    fn resolve(&self, rate: &Spanned<RateValue>) -> Result<f64, ScenarioError> {
        let per_second = rate.get_ref().0.resolve(self.learners);
        if per_second > MAX_RATE {
            let how = if rate.get_ref().0.per_learner {
                format!(" ({} learners)", self.learners)
            } else {
                String::new()
            };
            return Err(self.source.error(
                Some(rate.span()),
                format!(
                    "this rate comes to {}{how}, above the {} a source may reach; expected a smaller rate",
                    format_rate(per_second),
                    format_rate(MAX_RATE)
                ),
            ));
        }
        Ok(per_second)
    }

    fn rate(&self, rate: Spanned<RawRate>) -> Result<RateProfile, ScenarioError> {
        let span = rate.span();
        match rate.into_inner() {
            RawRate::Constant(value) => {
                let per_second = self.resolve(&Spanned::new(span.clone(), value))?;
                RateProfile::constant(per_second, self.duration)
                    .map_err(|e| self.source.error(Some(span), e.message))
            }
            RawRate::Points(points) => {
                let spans: Vec<_> = points.iter().map(|p| p.span()).collect();
                let mut resolved = Vec::new();
                for (i, point) in points.into_iter().enumerate() {
                    let point = point.into_inner();
                    resolved.push(RatePoint {
                        at: point.at.0,
                        per_second: self.resolve(&point.rate)?,
                        ramp: point.ramp.map_or(Duration::ZERO, |r| r.0),
                        phase: point.phase.unwrap_or_else(|| format!("phase {}", i + 1)),
                    });
                }
                RateProfile::new(resolved, self.duration).map_err(|e| self.at_item(e, &spans, span))
            }
        }
    }

    fn school_day(&self, day: Spanned<RawSchoolDay>) -> Result<RateProfile, ScenarioError> {
        let span = day.span();
        let day = day.into_inner();
        let compression = *day.compression.get_ref();
        if !(compression.is_finite() && (1.0..=86_400.0).contains(&compression)) {
            return Err(self.source.error(
                Some(day.compression.span()),
                format!("expected a `compression` between 1 (real time) and 86400 (a day per second), found {compression}"),
            ));
        }
        let evening = match &day.evening {
            Some(evening) => {
                let value = *evening.get_ref();
                if !(value.is_finite() && (0.0..=2.0).contains(&value)) {
                    return Err(self.source.error(
                        Some(evening.span()),
                        format!("expected `evening` as a fraction of the peak between 0 and 2, found {value}"),
                    ));
                }
                value
            }
            None => DEFAULT_EVENING,
        };
        let curve = SchoolDay {
            peak: self.resolve(&day.peak)?,
            compression,
            start: day.start.map_or(Duration::ZERO, |c| c.0),
            evening,
        };
        RateProfile::school_day(&curve, self.duration)
            .map_err(|e| self.source.error(Some(span), e.message))
    }

    fn bursts(
        &self,
        base: &RateProfile,
        bursts: Vec<Spanned<RawBurst>>,
    ) -> Result<RateProfile, ScenarioError> {
        let spans: Vec<_> = bursts.iter().map(|b| b.span()).collect();
        let whole = spans.first().cloned().unwrap_or(0..0);
        let mut resolved = Vec::new();
        for burst in bursts {
            let burst = burst.into_inner();
            resolved.push(Burst {
                at: burst.at.0,
                per_second: self.resolve(&burst.rate)?,
                ramp: burst.ramp.map_or(Duration::ZERO, |r| r.0),
                hold: burst.hold.0,
                phase: burst.phase.unwrap_or_else(|| "burst".into()),
            });
        }
        base.with_bursts(&resolved)
            .map_err(|e| self.at_item(e, &spans, whole))
    }

    /// Points a profile error at the rate point or burst it names, else at `fallback`.
    fn at_item(
        &self,
        e: ProfileError,
        spans: &[std::ops::Range<usize>],
        fallback: std::ops::Range<usize>,
    ) -> ScenarioError {
        let span = e
            .item
            .and_then(|i| spans.get(i).cloned())
            .unwrap_or(fallback);
        self.source.error(Some(span), e.message)
    }
}

/// A shared scenario for tasks.
pub type SharedScenario = Arc<Scenario>;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
duration = "1m"
[[traffic]]
domain = "focus"
rate = [ { at = "0s", rate = "100/s" }, { at = "30s", rate = "1000/s", ramp = "5s", phase = "burst" } ]
[thresholds]
"publish.latency.p99" = "< 250ms"
"#;

    #[test]
    fn good_scenario_parses() {
        let s = parse("t.toml", GOOD).expect("valid");
        assert_eq!(s.duration.as_secs(), 60);
        assert_eq!(s.traffic[0].profile.total(), 3000 + 2750 + 25_000);
        assert_eq!(s.thresholds.len(), 1);
    }

    #[test]
    fn an_abort_on_fail_threshold_parses_with_its_delay() {
        let text = GOOD.replace(
            "\"publish.latency.p99\" = \"< 250ms\"",
            "\"publish.error_rate\" = { expr = \"< 5%\", abort_on_fail = true, delay = \"10s\" }",
        );
        let s = parse("t.toml", &text).expect("valid");
        let t = &s.thresholds[0];
        assert!(t.abort_on_fail && t.live());
        assert_eq!(t.delay, Duration::from_secs(10));
        assert!((t.limit - 0.05).abs() < 1e-12);
        assert!(!parse("t.toml", GOOD).expect("valid").thresholds[0].abort_on_fail);
    }

    fn error_of(text: &str) -> ScenarioError {
        parse("bad.toml", text).expect_err("should be refused")
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = error_of(&GOOD.replace("\"100/s\"", "\"100 per second\""));
        assert_eq!((e.line, e.file.as_str()), (6, "bad.toml"));
        assert!(e.message.contains("expected a rate"), "{e}");
        let e = error_of(&GOOD.replace("p99\"", "p42\""));
        assert_eq!(e.line, 8);
        assert!(e.message.contains("known metrics"), "{e}");
        let e = error_of(&GOOD.replace("duration = \"1m\"", "duration = \"1m\"\ncolour = \"red\""));
        assert_eq!((e.line, e.column), (4, 1));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn cluster_sync_interval_is_parsed_and_a_bad_one_is_located() {
        use crate::cluster::SyncInterval;
        assert_eq!(parse("t.toml", GOOD).expect("valid").sync_interval, None);
        let with = |value: &str| format!("{GOOD}\n[cluster]\nsync_interval = {value}\n");
        assert_eq!(
            parse("t.toml", &with("\"always\""))
                .expect("valid")
                .sync_interval,
            Some(SyncInterval::Always)
        );
        assert_eq!(
            parse("t.toml", &with("\"10s\""))
                .expect("valid")
                .sync_interval,
            Some(SyncInterval::Every(std::time::Duration::from_secs(10)))
        );
        let text = with("\"often\"");
        let e = error_of(&text);
        let line = text.lines().count();
        assert_eq!((e.line, e.column), (line, 17), "{e}");
        assert!(e.message.contains("always"), "{e}");
    }

    #[test]
    fn a_drill_is_parsed_and_one_outside_the_load_is_located() {
        assert_eq!(parse("t.toml", GOOD).expect("valid").drill, None);
        let with = |value: &str| format!("{GOOD}\n[drill]\nsnapshot_at = {value}\n");
        assert_eq!(
            parse("t.toml", &with("\"5s\"")).expect("valid").drill,
            Some(DrillSettings {
                snapshot_at: std::time::Duration::from_secs(5)
            })
        );
        for late in ["\"0s\"", "\"1h\""] {
            let text = with(late);
            let e = error_of(&text);
            assert_eq!((e.line, e.column), (text.lines().count(), 15), "{e}");
            assert!(e.message.contains("inside the load"), "{e}");
        }
        let e = error_of(&format!("{GOOD}\n[drill]\nsnapshot = \"5s\"\n"));
        assert!(e.message.contains("snapshot_at"), "{e}");
    }

    #[test]
    fn message_ids_are_on_unless_turned_off() {
        assert!(parse("t.toml", GOOD).expect("valid").message_id);
        let with =
            |line: &str| GOOD.replace("[[traffic]]", &format!("[publishers]\n{line}\n[[traffic]]"));
        assert!(
            !parse("t.toml", &with("message_id = false"))
                .expect("valid")
                .message_id
        );
        assert!(
            parse("t.toml", &with("message_id = true"))
                .expect("valid")
                .message_id
        );
        let e = error_of(&with("message_id = \"yes\""));
        assert_eq!((e.line, e.column), (5, 14), "{e}");
        assert!(e.message.contains("bool"), "{e}");
    }

    #[test]
    fn an_error_at_a_carriage_return_points_inside_its_line() {
        // An unterminated string ending in "\r\n": the parser points past the '\r', which is not a
        // column anyone can see; the error must stay within the line's visible width (+1).
        let e = error_of("name = \"x\r\nduration = \"1m\"\n");
        assert_eq!(e.line, 1, "{e}");
        assert!(e.column <= "name = \"x".chars().count() + 1, "{e}");
    }
}
