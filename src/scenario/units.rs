//! Units in scenario files and flags: durations ("90s", "2m", "1h30m", "250ms"), rates ("500/s",
//! "3/learner/min") and sizes ("8MiB").

use std::time::Duration;

/// Parses a duration made of `<number><unit>` parts: `ms`, `s`, `m`, `h`, `d` (e.g. "1h30m", "1.5s").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(
            "expected a duration such as \"90s\", \"2m\" or \"250ms\", found an empty string"
                .into(),
        );
    }
    let mut total = 0f64;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let unit_len = rest[number_len..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - number_len);
        let (number, unit) = (
            &rest[..number_len],
            &rest[number_len..number_len + unit_len],
        );
        let value: f64 = number.parse().map_err(|_| bad_duration(trimmed))?;
        let seconds = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad_duration(trimmed)),
        };
        total += value * seconds;
        rest = &rest[number_len + unit_len..];
    }
    if !total.is_finite() || total > 10.0 * 365.0 * 86_400.0 {
        return Err(format!("duration \"{trimmed}\" is out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

fn bad_duration(text: &str) -> String {
    format!("expected a duration such as \"90s\", \"2m\", \"1h30m\" or \"250ms\", found \"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in ["", "90", "s", "5 parsecs", "1x", "-3s", "1..2s"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
    }
}
