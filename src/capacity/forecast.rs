//! The forecast file: how many learners, how many events each sends per school day in each domain,
//! how large the messages are, and how the volume grows. The storage model
//! ([`super::storage::size`]) turns it into bytes per stream.
//!
//! The shipped default, `forecasts/seed.toml`, is built in ([`Forecast::seed`]); a user's file is
//! read with [`parse`], whose errors name the file, line and column (toml spans) like scenario
//! files do. Unknown keys are refused, so a misspelt `growth_per_mnth` is an error, not a default.
//! What this module leaves to others: measured message sizes (the caller passes them to the sizing,
//! where they override the file's) and the streams' limits (the topology).

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The shipped forecast for the seed's streams (assumptions, stated in the file).
pub const SEED_FORECAST: &str = include_str!("../../forecasts/seed.toml");

/// The name [`SEED_FORECAST`] goes by in errors and reports.
pub const SEED_FORECAST_NAME: &str = "forecasts/seed.toml";

/// The mean size of one message of a stream, in the parts the file store's record is made of.
///
/// Means, so fractional. `header_bytes` is the header block as sent (`NATS/1.0\r\n`, one
/// `Name: value\r\n` per header, `\r\n`); 0 means the messages carry no headers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MessageShape {
    pub subject_bytes: f64,
    pub header_bytes: f64,
    pub payload_bytes: f64,
}

/// One traffic domain's volume and message size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainForecast {
    /// The stream the domain's events go to (`FOCUS` for `[focus]`).
    pub stream: String,
    pub events_per_learner_per_day: f64,
    pub message: MessageShape,
}

/// Dead letters: a fraction of all the domains' events, with their own message size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DlqForecast {
    /// The stream dead letters go to.
    pub stream: String,
    /// Dead letters per event of the four domains (0.001 = one in a thousand).
    pub fraction: f64,
    pub message: MessageShape,
}

/// A validated forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Where it came from (a path, or [`SEED_FORECAST_NAME`]).
    pub origin: String,
    /// Learners today.
    pub learners: u64,
    /// Growth per month as a fraction, compounded monthly.
    pub growth_per_month: f64,
    /// Months ahead whose volume is sized for.
    pub horizon_months: u32,
    /// Factor (≥ 1) on the retained bytes per node.
    pub headroom: f64,
    pub school_days_per_week: u32,
    pub school_days_per_year: u32,
    /// learning, focus, homework, recommendation, in that order.
    pub domains: Vec<DomainForecast>,
    pub dlq: DlqForecast,
}

impl Forecast {
    /// The shipped forecast ([`SEED_FORECAST`]).
    pub fn seed() -> Forecast {
        // The embedded file is fixed at build time and parsed by a unit test
        // (`the_seed_forecast_parses`), so this cannot fail at run time.
        parse(SEED_FORECAST_NAME, SEED_FORECAST).expect("forecasts/seed.toml is valid")
    }

    /// How much the volume has grown by the horizon: `(1 + growth_per_month) ^ horizon_months`.
    pub fn growth_factor(&self) -> f64 {
        (1.0 + self.growth_per_month).powi(self.horizon_months as i32)
    }

    /// Learners at the horizon.
    pub fn learners_at_horizon(&self) -> f64 {
        self.learners as f64 * self.growth_factor()
    }

    /// School days per calendar day in term time (5 / 7 for a five-day week): how much of a
    /// retention window carries events.
    pub fn school_day_share(&self) -> f64 {
        f64::from(self.school_days_per_week) / 7.0
    }

    /// Events per school day at the horizon's volume, per stream, with their message shape: the
    /// four domains, then the DLQ.
    pub fn daily_events(&self) -> Vec<(String, f64, MessageShape)> {
        let learners = self.learners_at_horizon();
        let mut out: Vec<(String, f64, MessageShape)> = self
            .domains
            .iter()
            .map(|d| {
                (
                    d.stream.clone(),
                    d.events_per_learner_per_day * learners,
                    d.message,
                )
            })
            .collect();
        let domain_events: f64 = out.iter().map(|(_, events, _)| events).sum();
        out.push((
            self.dlq.stream.clone(),
            domain_events * self.dlq.fraction,
            self.dlq.message,
        ));
        out
    }
}

/// A forecast file that cannot be used, located in its file (the same located error as a
/// scenario's).
pub type ForecastError = crate::scenario::ScenarioError;

/// Parses and validates a forecast file. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Forecast, ForecastError> {
    let source = Source { file, text };
    let raw: RawForecast =
        toml::from_str(text).map_err(|e| source.error(e.span(), e.message().trim_end()))?;
    raw.validate(&source)
}

/// Locates byte offsets of one file's text (as `scenario/load.rs` does for scenarios).
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ForecastError {
        crate::scenario::load::located_error(self.file, self.text, span, message)
    }

    /// `value` if `ok` holds for it, else an error at its span saying what was expected.
    fn check<T: Copy>(
        &self,
        value: &Spanned<T>,
        ok: impl Fn(T) -> bool,
        expected: &str,
    ) -> Result<T, ForecastError> {
        if ok(*value.get_ref()) {
            Ok(*value.get_ref())
        } else {
            Err(self.error(Some(value.span()), expected))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForecast {
    learners: Spanned<u64>,
    growth_per_month: Spanned<f64>,
    horizon_months: Spanned<u32>,
    headroom: Spanned<f64>,
    school_days_per_week: Spanned<u32>,
    school_days_per_year: Spanned<u32>,
    learning: RawDomain,
    focus: RawDomain,
    homework: RawDomain,
    recommendation: RawDomain,
    dlq: RawDlq,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    events_per_learner_per_day: Spanned<f64>,
    subject_bytes: Spanned<f64>,
    header_bytes: Spanned<f64>,
    payload_bytes: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDlq {
    fraction: Spanned<f64>,
    subject_bytes: Spanned<f64>,
    header_bytes: Spanned<f64>,
    payload_bytes: Spanned<f64>,
}

/// The three size keys of a table (not a flattened struct: serde's `flatten` defeats both
/// `deny_unknown_fields` and toml's spans).
struct RawShape<'a> {
    subject_bytes: &'a Spanned<f64>,
    header_bytes: &'a Spanned<f64>,
    payload_bytes: &'a Spanned<f64>,
}

/// The file store keeps a subject's length in 16 bits (filestore.go's record header).
const MAX_SUBJECT_BYTES: f64 = 65_535.0;

fn non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

impl RawShape<'_> {
    fn validate(&self, source: &Source<'_>, table: &str) -> Result<MessageShape, ForecastError> {
        let subject_bytes = source.check(
            self.subject_bytes,
            |x| x.is_finite() && (1.0..=MAX_SUBJECT_BYTES).contains(&x),
            &format!("`{table}.subject_bytes` must be between 1 and 65535 (a mean subject length)"),
        )?;
        let bytes = |value: &Spanned<f64>, key: &str| {
            source.check(
                value,
                non_negative,
                &format!("`{table}.{key}` must be a number of bytes, 0 or more"),
            )
        };
        Ok(MessageShape {
            subject_bytes,
            header_bytes: bytes(self.header_bytes, "header_bytes")?,
            payload_bytes: bytes(self.payload_bytes, "payload_bytes")?,
        })
    }
}

impl RawForecast {
    fn validate(self, source: &Source<'_>) -> Result<Forecast, ForecastError> {
        let learners = source.check(&self.learners, |n| n >= 1, "`learners` must be at least 1")?;
        // A value above 1 is almost always a percentage written as a number (3 for 3 %).
        let growth_per_month = source.check(
            &self.growth_per_month,
            |g| g.is_finite() && g > -1.0 && g <= 1.0,
            "`growth_per_month` is a fraction above -1 and at most 1: 0.03 for 3 % a month",
        )?;
        let horizon_months = source.check(
            &self.horizon_months,
            |m| m <= 120,
            "`horizon_months` must be at most 120 (ten years)",
        )?;
        let headroom = source.check(
            &self.headroom,
            |h| h.is_finite() && h >= 1.0,
            "`headroom` must be 1 or more (1.5 = half as much again as the model says)",
        )?;
        let school_days_per_week = source.check(
            &self.school_days_per_week,
            |d| (1..=7).contains(&d),
            "`school_days_per_week` must be between 1 and 7",
        )?;
        let school_days_per_year = source.check(
            &self.school_days_per_year,
            |d| (1..=366).contains(&d),
            "`school_days_per_year` must be between 1 and 366",
        )?;
        let domain = |raw: &RawDomain, table: &str| -> Result<DomainForecast, ForecastError> {
            let events_per_learner_per_day = source.check(
                &raw.events_per_learner_per_day,
                non_negative,
                &format!("`{table}.events_per_learner_per_day` must be 0 or more"),
            )?;
            Ok(DomainForecast {
                stream: table.to_uppercase(),
                events_per_learner_per_day,
                message: RawShape {
                    subject_bytes: &raw.subject_bytes,
                    header_bytes: &raw.header_bytes,
                    payload_bytes: &raw.payload_bytes,
                }
                .validate(source, table)?,
            })
        };
        let domains = vec![
            domain(&self.learning, "learning")?,
            domain(&self.focus, "focus")?,
            domain(&self.homework, "homework")?,
            domain(&self.recommendation, "recommendation")?,
        ];
        let fraction = source.check(
            &self.dlq.fraction,
            |f| f.is_finite() && (0.0..=1.0).contains(&f),
            "`dlq.fraction` must be between 0 and 1 (0.001 = one dead letter per thousand events)",
        )?;
        let dlq = DlqForecast {
            stream: "DLQ".to_string(),
            fraction,
            message: RawShape {
                subject_bytes: &self.dlq.subject_bytes,
                header_bytes: &self.dlq.header_bytes,
                payload_bytes: &self.dlq.payload_bytes,
            }
            .validate(source, "dlq")?,
        };
        Ok(Forecast {
            origin: source.file.to_string(),
            learners,
            growth_per_month,
            horizon_months,
            headroom,
            school_days_per_week,
            school_days_per_year,
            domains,
            dlq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_forecast_parses() {
        let forecast = Forecast::seed();
        assert_eq!(forecast.learners, 5000);
        assert_eq!(forecast.origin, SEED_FORECAST_NAME);
        let streams: Vec<&str> = forecast.domains.iter().map(|d| d.stream.as_str()).collect();
        assert_eq!(streams, ["LEARNING", "FOCUS", "HOMEWORK", "RECOMMENDATION"]);
        assert_eq!(forecast.dlq.stream, "DLQ");
        // 1.03^12 = 1.42576…
        assert!((forecast.growth_factor() - 1.425_760_9).abs() < 1e-6);
    }

    #[test]
    fn daily_events_grow_to_the_horizon_and_the_dlq_is_a_fraction_of_the_rest() {
        let mut forecast = Forecast::seed();
        forecast.learners = 1000;
        forecast.growth_per_month = 0.1;
        forecast.horizon_months = 2;
        forecast.dlq.fraction = 0.01;
        // 1000 × 1.1² = 1210 learners; events per learner: 100 + 600 + 15 + 10 = 725.
        let daily = forecast.daily_events();
        let focus = daily.iter().find(|(s, ..)| s == "FOCUS").expect("FOCUS");
        assert!((focus.1 - 600.0 * 1210.0).abs() < 1e-6);
        let dlq = daily.last().expect("DLQ");
        assert_eq!(dlq.0, "DLQ");
        assert!((dlq.1 - 725.0 * 1210.0 * 0.01).abs() < 1e-6);
    }

    fn seed_with(from: &str, to: &str) -> String {
        assert!(SEED_FORECAST.contains(from), "{from}");
        SEED_FORECAST.replacen(from, to, 1)
    }

    fn error_of(text: &str) -> ForecastError {
        parse("f.toml", text).expect_err("should be refused")
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle")
            + 1
    }

    #[test]
    fn a_growth_given_as_a_percentage_is_refused_at_its_value() {
        let text = seed_with("growth_per_month = 0.03", "growth_per_month = 3");
        let err = error_of(&text);
        assert_eq!(err.line, line_of(&text, "growth_per_month = 3"));
        assert_eq!(err.column, "growth_per_month = ".len() + 1);
        assert!(err.message.contains("0.03 for 3 %"), "{err}");
        assert!(err.to_string().starts_with("f.toml:"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_place() {
        let text = seed_with(
            "payload_bytes = 423",
            "payload_bytes = 423\npayload_byte = 1",
        );
        let err = error_of(&text);
        assert_eq!(err.line, line_of(&text, "payload_byte = 1"));
        assert!(err.message.contains("payload_byte"), "{err}");

        let text = seed_with("headroom = 1.5", "headroom = 1.5\nhead_room = 2");
        let err = error_of(&text);
        assert_eq!(err.line, line_of(&text, "head_room"));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (from, to, says) in [
            ("headroom = 1.5", "headroom = 0.8", "headroom"),
            (
                "school_days_per_week = 5",
                "school_days_per_week = 8",
                "per_week",
            ),
            ("fraction = 0.001", "fraction = 2", "dlq.fraction"),
            (
                "subject_bytes = 10.39",
                "subject_bytes = 0",
                "focus.subject_bytes",
            ),
            (
                "payload_bytes = 544",
                "payload_bytes = -1",
                "learning.payload_bytes",
            ),
            ("learners = 5000", "learners = 0", "learners"),
        ] {
            let text = seed_with(from, to);
            let err = error_of(&text);
            assert_eq!(err.line, line_of(&text, to), "{to}: {err}");
            assert!(err.message.contains(says), "{to}: {err}");
        }
    }

    #[test]
    fn a_missing_table_is_named() {
        let start = SEED_FORECAST.find("[dlq]").expect("dlq table");
        let err = error_of(&SEED_FORECAST[..start]);
        assert!(err.message.contains("dlq"), "{err}");
    }

    #[test]
    fn integers_are_accepted_where_fractions_are() {
        let text = seed_with("headroom = 1.5", "headroom = 2");
        assert_eq!(parse("f.toml", &text).expect("valid").headroom, 2.0);
    }
}
