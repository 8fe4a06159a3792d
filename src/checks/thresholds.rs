//! k6-style thresholds: `"publish.latency.p99" = "< 250ms"`, `"publish.error_rate" = "< 0.5%"`.
//!
//! A threshold names a metric, a comparison and a value in the metric's unit. Unknown metric names
//! and values in the wrong unit are scenario errors (the loader reports them at file:line:column);
//! evaluation happens once the run's figures are in. A threshold written
//! `{ expr = "< 5%", abort_on_fail = true, delay = "10s" }` is also checked every second of the load
//! once `delay` has passed (publish.* metrics without a tag, on the figures so far), and its first
//! failure stops the run early and fails it (k6's `abortOnFail`).

use std::fmt;

use serde::Serialize;

use crate::units;

/// What a metric measures, which fixes how its threshold value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Written "250ms", "1s"; compared in milliseconds.
    Duration,
    /// Written "0.5%"; compared as a fraction.
    Ratio,
    /// Written as a plain number.
    Count,
}

/// Every metric a threshold may name, with its unit.
pub fn known_metrics() -> Vec<(String, Unit)> {
    let mut metrics = Vec::new();
    for histogram in ["latency", "service_time", "send_delay"] {
        for stat in ["p50", "p90", "p99", "p99.9", "max", "mean"] {
            metrics.push((format!("publish.{histogram}.{stat}"), Unit::Duration));
        }
    }
    metrics.push(("publish.error_rate".into(), Unit::Ratio));
    metrics.push(("publish.achieved_ratio".into(), Unit::Ratio));
    for count in ["attempted", "acked", "failed", "unknown", "never_sent"] {
        metrics.push((format!("publish.{count}"), Unit::Count));
    }
    // With `[consumers] indexer = true`: time from the end of the load to zero lag, and the latency
    // from an event's intended publish time to its row in Postgres.
    metrics.push(("indexer.catch_up".into(), Unit::Duration));
    // From the indexer's start to less than one second of traffic behind.
    metrics.push(("indexer.recovery".into(), Unit::Duration));
    for stat in ["p50", "p90", "p99", "p99.9", "max", "mean"] {
        metrics.push((format!("indexer.end_to_end.{stat}"), Unit::Duration));
    }
    // With a consumer running: the DLQ check's counts (injected poison missing from the DLQ, valid
    // events found in it).
    for count in ["missing", "unexpected", "entries", "injected"] {
        metrics.push((format!("dlq.{count}"), Unit::Count));
    }
    metrics
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => (measured - limit).abs() < 1e-9,
            Op::Ne => (measured - limit).abs() >= 1e-9,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric without its tag, e.g. `publish.latency.p99`.
    pub metric: String,
    /// Narrows the metric to one subject or stream: `publish.latency.p99{subject:focus.ping}`.
    pub tag: Option<Tag>,
    /// As written, e.g. "< 250ms".
    pub expression: String,
    pub op: Op,
    /// In the metric's unit: milliseconds, a fraction, or a count.
    pub limit: f64,
    pub unit: Unit,
    /// k6's `abortOnFail`: checked each second of the load (after `delay`); a failure stops the run.
    pub abort_on_fail: bool,
    /// How long into the load before an abort-on-fail threshold is first checked.
    pub delay: std::time::Duration,
}

/// What a tag narrows a metric to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    Subject(String),
    Stream(String),
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tag::Subject(s) => write!(f, "{{subject:{s}}}"),
            Tag::Stream(s) => write!(f, "{{stream:{s}}}"),
        }
    }
}

/// Metrics that can be narrowed by subject or stream (the engine keeps these per subject).
fn taggable(metric: &str) -> bool {
    metric.starts_with("publish.latency.")
        || matches!(
            metric,
            "publish.acked" | "publish.attempted" | "publish.error_rate"
        )
}

/// Splits `name{key:value}` and checks the tag names a known subject or stream.
fn parse_tag(written: &str) -> Result<(&str, Option<Tag>), ThresholdError> {
    let Some((name, rest)) = written.split_once('{') else {
        return Ok((written, None));
    };
    let inner = rest.strip_suffix('}').ok_or_else(|| {
        ThresholdError::InMetric(format!(
            "a tag is written `{{subject:NAME}}` or `{{stream:NAME}}`, found \"{written}\""
        ))
    })?;
    let (key, value) = inner
        .split_once(':')
        .map(|(k, v)| (k.trim(), v.trim()))
        .unwrap_or((inner, ""));
    let subjects: Vec<&str> = crate::traffic::Domain::ALL
        .iter()
        .flat_map(|d| d.subjects().iter().copied())
        .collect();
    let streams = ["LEARNING", "FOCUS", "HOMEWORK", "RECOMMENDATION"];
    let tag = match key {
        "subject" if subjects.contains(&value) => Tag::Subject(value.to_string()),
        "subject" => {
            return Err(ThresholdError::InMetric(format!(
                "unknown subject \"{value}\" in tag; known subjects: {}",
                subjects.join(", ")
            )))
        }
        "stream" if streams.contains(&value) => Tag::Stream(value.to_string()),
        "stream" => {
            return Err(ThresholdError::InMetric(format!(
                "unknown stream \"{value}\" in tag; known streams: {}",
                streams.join(", ")
            )))
        }
        _ => {
            return Err(ThresholdError::InMetric(format!(
                "unknown tag \"{key}\"; tags are `{{subject:NAME}}` and `{{stream:NAME}}`"
            )))
        }
    };
    if !taggable(name) {
        return Err(ThresholdError::InMetric(format!(
            "{name} cannot be narrowed by a tag; tags apply to publish.latency.*, publish.acked, publish.attempted and publish.error_rate"
        )));
    }
    Ok((name, Some(tag)))
}

/// Why a threshold cannot be parsed; `InMetric` points at the key, `InExpression` at the value.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdError {
    InMetric(String),
    InExpression(String),
}

impl Threshold {
    /// Parses `metric = expression`.
    pub fn parse(written: &str, expression: &str) -> Result<Self, ThresholdError> {
        let (metric, tag) = parse_tag(written.trim())?;
        let known = known_metrics();
        let Some((_, unit)) = known.iter().find(|(name, _)| name == metric) else {
            let names: Vec<&str> = known.iter().map(|(n, _)| n.as_str()).collect();
            return Err(ThresholdError::InMetric(format!(
                "unknown metric \"{metric}\"; known metrics: {}",
                names.join(", ")
            )));
        };
        let text = expression.trim();
        let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(symbol, op)| text.strip_prefix(symbol).map(|rest| (*op, rest.trim())))
            .ok_or_else(|| {
                ThresholdError::InExpression(format!(
                    "expected a comparison such as \"< 250ms\" (one of <, <=, >, >=, ==, !=), found \"{text}\""
                ))
            })?;
        let limit = match unit {
            Unit::Duration => units::parse_duration(rest)
                .map(|d| d.as_secs_f64() * 1000.0)
                .map_err(|e| {
                    ThresholdError::InExpression(format!("{metric} is a duration: {e}"))
                })?,
            Unit::Ratio => parse_ratio(rest)
                .map_err(|e| ThresholdError::InExpression(format!("{metric} is a ratio: {e}")))?,
            Unit::Count => rest
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    ThresholdError::InExpression(format!(
                        "{metric} is a count: expected a number, found \"{rest}\""
                    ))
                })?,
        };
        Ok(Self {
            metric: metric.to_string(),
            tag,
            expression: text.to_string(),
            op,
            limit,
            unit: *unit,
            abort_on_fail: false,
            delay: std::time::Duration::ZERO,
        })
    }

    /// True when the metric can be computed while the load runs (from the publishers' figures so
    /// far), which abort-on-fail needs.
    pub fn live(&self) -> bool {
        self.tag.is_none() && self.metric.starts_with("publish.")
    }

    /// The metric as written, with its tag.
    pub fn name(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}{tag}", self.metric),
            None => self.metric.clone(),
        }
    }

    /// Compares a measured value (in the metric's unit) with the limit.
    pub fn evaluate(&self, measured: f64) -> ThresholdResult {
        ThresholdResult {
            metric: self.name(),
            expression: self.expression.clone(),
            measured,
            measured_text: format_value(measured, self.unit),
            passed: self.op.holds(measured, self.limit),
        }
    }
}

/// "0.5%" → 0.005; "0.005" → 0.005.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(number) => (number.trim(), 100.0),
        None => (text, 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v / scale)
        .ok_or_else(|| format!("expected a percentage such as \"0.5%\", found \"{text}\""))
}

/// Formats a value in a unit for people.
pub fn format_value(value: f64, unit: Unit) -> String {
    if value.is_nan() {
        return "no data".into();
    }
    match unit {
        Unit::Duration => format_millis(value),
        Unit::Ratio => format!("{:.3}%", value * 100.0),
        Unit::Count => format!("{value}"),
    }
}

/// Milliseconds for people: "850µs", "12.3ms", "1.52s".
pub fn format_millis(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

/// The outcome of one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    pub metric: String,
    pub expression: String,
    pub measured: f64,
    pub measured_text: String,
    pub passed: bool,
}

impl fmt::Display for ThresholdResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        write!(
            f,
            "{mark} {} {} (measured {})",
            self.metric, self.expression, self.measured_text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_evaluates() {
        let t = Threshold::parse("publish.latency.p99", "< 250ms").expect("valid");
        assert_eq!(t.limit, 250.0);
        assert!(t.evaluate(249.0).passed);
        assert!(!t.evaluate(250.0).passed);
        let e = Threshold::parse("publish.error_rate", "<= 0.5%").expect("valid");
        assert!((e.limit - 0.005).abs() < 1e-12);
        assert!(
            Threshold::parse("publish.acked", ">= 100")
                .expect("valid")
                .evaluate(100.0)
                .passed
        );
    }

    #[test]
    fn tags_narrow_to_a_subject_or_stream() {
        let t =
            Threshold::parse("publish.latency.p99{subject:focus.ping}", "< 50ms").expect("valid");
        assert_eq!(t.metric, "publish.latency.p99");
        assert_eq!(t.tag, Some(Tag::Subject("focus.ping".into())));
        assert_eq!(t.name(), "publish.latency.p99{subject:focus.ping}");
        assert!(Threshold::parse("publish.error_rate{stream:FOCUS}", "< 1%").is_ok());
        for bad in [
            "publish.latency.p99{subject:focus.pong}",
            "publish.latency.p99{stream:NOPE}",
            "publish.latency.p99{colour:red}",
            "publish.never_sent{stream:FOCUS}",
            "publish.latency.p99{subject:focus.ping",
        ] {
            assert!(
                matches!(
                    Threshold::parse(bad, "< 1s"),
                    Err(ThresholdError::InMetric(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_thresholds_say_why() {
        assert!(
            matches!(Threshold::parse("publish.latency.p42", "< 1s"), Err(ThresholdError::InMetric(m)) if m.contains("publish.latency.p99"))
        );
        assert!(matches!(
            Threshold::parse("publish.latency.p99", "250ms"),
            Err(ThresholdError::InExpression(_))
        ));
        assert!(matches!(
            Threshold::parse("publish.latency.p99", "< 5%"),
            Err(ThresholdError::InExpression(_))
        ));
        assert!(matches!(
            Threshold::parse("publish.error_rate", "< lots"),
            Err(ThresholdError::InExpression(_))
        ));
    }
}
