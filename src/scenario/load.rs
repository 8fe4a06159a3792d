//! Reading a scenario file: TOML → raw model → validated [`Scenario`], with errors that name the
//! file, line and column and say what was expected.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::model::{RawScenario, Scenario, StreamSettings, TrafficSource};
use crate::checks::thresholds::{Threshold, ThresholdError};
use crate::traffic::arrival::{RatePoint, RateProfile};
use crate::traffic::Mix;

/// A scenario that cannot be used, located in its file.
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

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ScenarioError {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        let source_line = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
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

fn validate(source: &Source<'_>, raw: RawScenario) -> Result<Scenario, ScenarioError> {
    let whole_file = || Some(0..0);
    if raw.name.trim().is_empty() {
        return Err(source.error(whole_file(), "`name` must not be empty"));
    }
    let duration = raw.duration.get_ref().0;
    if duration.is_zero() {
        return Err(source.error(
            Some(raw.duration.span()),
            "`duration` must be longer than 0s",
        ));
    }
    let positive = |value: &toml::Spanned<u32>, what: &str| {
        if *value.get_ref() == 0 {
            Err(source.error(Some(value.span()), format!("`{what}` must be at least 1")))
        } else {
            Ok(*value.get_ref())
        }
    };
    let tenants = positive(&raw.population.tenants, "population.tenants")?;
    let learners = positive(&raw.population.learners, "population.learners")?;
    let publishers = positive(&raw.publishers.count, "publishers.count")?;
    let in_flight = positive(&raw.publishers.in_flight, "publishers.in_flight")?;
    if raw.traffic.is_empty() {
        return Err(source.error(
            whole_file(),
            "a scenario needs at least one [[traffic]] source",
        ));
    }

    let mut traffic = Vec::new();
    for raw_source in raw.traffic {
        let domain = *raw_source.domain.get_ref();
        let known = domain.subjects();
        if known.is_empty() {
            return Err(source.error(
                Some(raw_source.domain.span()),
                format!("the {domain:?} domain has no event generator yet; available: focus"),
            ));
        }
        let mix = match &raw_source.mix {
            Some(mix) => {
                let entries: Vec<(String, u32)> =
                    mix.get_ref().iter().map(|(k, v)| (k.clone(), *v)).collect();
                if let Some((subject, _)) =
                    entries.iter().find(|(s, _)| !known.contains(&s.as_str()))
                {
                    return Err(source.error(
                        Some(mix.span()),
                        format!(
                            "unknown subject \"{subject}\" in the {domain:?} mix; known: {}",
                            known.join(", ")
                        ),
                    ));
                }
                Mix::new(&entries).map_err(|e| source.error(Some(mix.span()), e))?;
                entries
            }
            None => domain.default_mix(),
        };
        let span = raw_source.rate.span();
        let points = raw_source
            .rate
            .into_inner()
            .into_iter()
            .enumerate()
            .map(|(i, p)| RatePoint {
                at: p.at.0,
                per_second: p.rate.0,
                ramp: p.ramp.map_or(std::time::Duration::ZERO, |r| r.0),
                phase: p.phase.unwrap_or_else(|| format!("phase {}", i + 1)),
            })
            .collect();
        let profile =
            RateProfile::new(points, duration).map_err(|e| source.error(Some(span), e))?;
        traffic.push(TrafficSource {
            domain,
            mix,
            profile,
        });
    }

    let known_streams = ["LEARNING", "FOCUS", "HOMEWORK", "RECOMMENDATION", "DLQ"];
    let mut streams = std::collections::BTreeMap::new();
    for (name, ov) in raw.streams {
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
        streams.insert(
            name.into_inner(),
            StreamSettings {
                max_age: ov.max_age.map(|d| d.0),
                max_bytes: ov.max_bytes.map(|s| s.0),
                max_msgs: ov.max_msgs,
                replicas: ov.replicas,
            },
        );
    }

    let mut thresholds = Vec::new();
    for (metric, expression) in &raw.thresholds {
        match Threshold::parse(metric.get_ref(), expression.get_ref()) {
            Ok(t) => thresholds.push(t),
            Err(ThresholdError::InMetric(m)) => return Err(source.error(Some(metric.span()), m)),
            Err(ThresholdError::InExpression(m)) => {
                return Err(source.error(Some(expression.span()), m))
            }
        }
    }

    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        origin: source.file.to_string(),
        duration,
        seed: raw.seed.unwrap_or(1),
        tenants,
        learners,
        publishers,
        in_flight,
        ack_timeout: raw.publishers.ack_timeout.0,
        traffic,
        streams,
        thresholds,
    })
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
}
