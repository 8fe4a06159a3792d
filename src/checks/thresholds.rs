//! k6-style thresholds: `"publish.latency.p99" = "< 250ms"`, `"publish.error_rate" = "< 0.5%"`.
//!
//! A threshold names a metric, a comparison and a value in the metric's unit. Unknown metric names
//! and values in the wrong unit are scenario errors (the loader reports them at file:line:column);
//! evaluation happens once the run's figures are in.

use std::fmt;

use serde::Serialize;

use crate::scenario::units;

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
    pub metric: String,
    /// As written, e.g. "< 250ms".
    pub expression: String,
    pub op: Op,
    /// In the metric's unit: milliseconds, a fraction, or a count.
    pub limit: f64,
    pub unit: Unit,
}

/// Why a threshold cannot be parsed; `InMetric` points at the key, `InExpression` at the value.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdError {
    InMetric(String),
    InExpression(String),
}

impl Threshold {
    /// Parses `metric = expression`.
    pub fn parse(metric: &str, expression: &str) -> Result<Self, ThresholdError> {
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
            expression: text.to_string(),
            op,
            limit,
            unit: *unit,
        })
    }

    /// Compares a measured value (in the metric's unit) with the limit.
    pub fn evaluate(&self, measured: f64) -> ThresholdResult {
        ThresholdResult {
            metric: self.metric.clone(),
            expression: self.expression.clone(),
            measured,
            measured_text: format_value(measured, self.unit),
            passed: self.op.holds(measured, self.limit),
        }
    }
}

/// "0.5%" → 0.005; "0.005" → 0.005.
fn parse_ratio(text: &str) -> Result<f64, String> {
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
