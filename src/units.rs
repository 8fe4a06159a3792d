//! Units as people write them, in scenario files, flags and tables: durations ("90s", "2m",
//! "1h30m", "250ms"), rates ("500/s", "3/learner/min"), sizes ("8MiB") and times of day ("06:00"),
//! parsed, and durations formatted back exactly.
//!
//! A leaf module: every layer may use it, and it names no other module of the crate. What a value
//! means (a scenario's duration, a threshold, a stream's `max_age`) is its caller's business, and
//! so is formatting byte counts the topology's way (`topology/format.rs`).

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

/// A rate of events as written: in total, or for each learner of the population.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Events per second (per learner when `per_learner`).
    pub per_second: f64,
    /// Written like "3/learner/min": multiply by `population.learners` to get the total.
    pub per_learner: bool,
}

impl Rate {
    /// Events per second in total, for a population of `learners`.
    pub fn resolve(self, learners: u32) -> f64 {
        if self.per_learner {
            self.per_second * f64::from(learners)
        } else {
            self.per_second
        }
    }
}

/// Parses "500/s", "30/min", "2/h", "0/s", or a per-learner rate such as "3/learner/min".
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let trimmed = text.trim();
    let expected = || {
        format!(
            "expected a rate such as \"500/s\", \"30/min\" or \"3/learner/min\", found \"{trimmed}\""
        )
    };
    let (count, unit) = trimmed.split_once('/').ok_or_else(expected)?;
    let count: f64 = count.trim().parse().map_err(|_| expected())?;
    if !count.is_finite() || count < 0.0 {
        return Err(format!(
            "a rate cannot be negative or infinite, found \"{trimmed}\""
        ));
    }
    let (per_learner, unit) = match unit.trim().split_once('/') {
        Some((learner, unit)) if learner.trim() == "learner" => (true, unit.trim()),
        Some(_) => return Err(expected()),
        None => (false, unit.trim()),
    };
    let seconds = match unit {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(expected()),
    };
    Ok(Rate {
        per_second: count / seconds,
        per_learner,
    })
}

/// Parses a time of day "HH:MM" (or "HH:MM:SS") into the time since midnight.
pub fn parse_clock(text: &str) -> Result<std::time::Duration, String> {
    let trimmed = text.trim();
    let expected =
        || format!("expected a time of day such as \"06:00\" or \"13:45\", found \"{trimmed}\"");
    let parts: Vec<&str> = trimmed.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(expected());
    }
    let mut numbers = [0u64; 3];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        *slot = part.parse().map_err(|_| expected())?;
    }
    let [hours, minutes, seconds] = numbers;
    if hours > 23 || minutes > 59 || seconds > 59 {
        return Err(expected());
    }
    Ok(std::time::Duration::from_secs(
        hours * 3600 + minutes * 60 + seconds,
    ))
}

/// Parses "8MiB", "20GB", "512KiB", "100B" or a bare byte count into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad_size(trimmed))?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024f64.powi(4),
        _ => return Err(bad_size(trimmed)),
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(format!("size \"{trimmed}\" is out of range"));
    }
    Ok(bytes.round() as u64)
}

fn bad_size(text: &str) -> String {
    format!("expected a size such as \"8MiB\", \"20GB\" or \"4096\", found \"{text}\"")
}

const DURATION_UNITS: [(u128, &str); 7] = [
    (86_400_000_000_000, "d"),
    (3_600_000_000_000, "h"),
    (60_000_000_000, "m"),
    (1_000_000_000, "s"),
    (1_000_000, "ms"),
    (1_000, "µs"),
    (1, "ns"),
];

/// Formats a duration the way scenario files write them, exactly, in the largest units that fit:
/// `7d`, `2m`, `2m30s`, `1d12h`, `250ms`, `1s500ms`; zero is `0s`. Two different durations never
/// print the same (so a drift row in `verify` never shows equal-looking values), and the text
/// parses back with [`parse_duration`] for whole milliseconds and above. One implementation for
/// scenarios, reports and the topology's drift table.
pub fn format_duration(duration: Duration) -> String {
    let mut rest = duration.as_nanos();
    if rest == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (size, unit) in DURATION_UNITS {
        let count = rest / size;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
            rest %= size;
        }
    }
    text
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
    fn rates_and_sizes_parse() {
        assert_eq!(parse_rate("500/s").map(|r| r.per_second), Ok(500.0));
        assert_eq!(parse_rate("30/min").map(|r| r.per_second), Ok(0.5));
        let per_learner = parse_rate("3/learner/min").expect("valid");
        assert!(per_learner.per_learner);
        assert_eq!(per_learner.resolve(2000), 100.0);
        assert_eq!(
            parse_rate(" 6 / learner / h ").map(|r| r.resolve(600)),
            Ok(1.0)
        );
        assert_eq!(parse_rate("500/s").map(|r| r.resolve(7)), Ok(500.0));
        for bad in [
            "-5/s",
            "5",
            "5/fortnight",
            "3/teacher/min",
            "3/learner",
            "/s",
            "NaN/s",
            "inf/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_size("8MiB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_size("20GB"), Ok(20_000_000_000));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn clocks_parse() {
        assert_eq!(parse_clock("06:00"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(
            parse_clock("13:45:30"),
            Ok(Duration::from_secs(13 * 3600 + 45 * 60 + 30))
        );
        for bad in ["24:00", "6", "06:60", "6:0:0:0", "-1:00", "06:+5", ""] {
            assert!(parse_clock(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_format_back() {
        for text in ["90s", "2m", "1h30m", "250ms", "7d"] {
            let parsed = parse_duration(text).expect("valid");
            let again = parse_duration(&format_duration(parsed)).expect("round trip");
            assert_eq!(parsed, again);
        }
        assert_eq!(format_duration(Duration::from_secs(150)), "2m30s");
    }

    #[test]
    fn durations_print_in_the_largest_exact_units() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::from_secs(30 * 86_400), "30d"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(36 * 3600), "1d12h"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_nanos(1_000_001), "1ms1ns"),
            (Duration::from_micros(3), "3µs"),
        ];
        for (duration, expected) in cases {
            assert_eq!(format_duration(duration), expected, "{duration:?}");
        }
    }

    #[test]
    fn durations_round_trip_through_the_parser() {
        for text in ["7d", "2m", "1m30s", "1d12h", "250ms", "90d"] {
            let parsed = parse_duration(text).expect("valid duration");
            assert_eq!(format_duration(parsed), text);
        }
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in ["", "90", "s", "5 parsecs", "1x", "-3s", "1..2s"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
    }
}
