//! Durations and byte counts as people write them (`7d`, `1m30s`, `20 GB`).
//!
//! Both are exact: two different values never print the same, so a drift row in `verify` can never
//! show equal-looking declared and live values. Sizes use SI units (1 GB = 10^9 bytes), as the
//! declaration does ([`super::GB`]).

use std::time::Duration;

const UNITS: [(u128, &str); 7] = [
    (86_400_000_000_000, "d"),
    (3_600_000_000_000, "h"),
    (60_000_000_000, "m"),
    (1_000_000_000, "s"),
    (1_000_000, "ms"),
    (1_000, "µs"),
    (1, "ns"),
];

/// `7d`, `2m`, `1m30s`, `1d12h`, `250ms`; zero is `0s`. Parses back with the scenario parser for
/// whole milliseconds and above.
pub fn format_duration(duration: Duration) -> String {
    let mut rest = duration.as_nanos();
    if rest == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (size, unit) in UNITS {
        let count = rest / size;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
            rest %= size;
        }
    }
    text
}

const SIZES: [(i64, &str); 5] = [
    (1_000_000_000_000, "TB"),
    (1_000_000_000, "GB"),
    (1_000_000, "MB"),
    (1_000, "kB"),
    (1, "B"),
];

/// `20 GB`, `1.5 GB`, `10.73741824 GB` (10 GiB), `512 B`; the largest unit not above the value,
/// with as many decimals as it takes to be exact. Negative values print as plain numbers (callers
/// print "unlimited" for -1 themselves).
pub fn format_bytes(bytes: i64) -> String {
    if bytes < 0 {
        return format!("{bytes} B");
    }
    let (size, unit) = SIZES
        .iter()
        .copied()
        .find(|(size, _)| bytes >= *size)
        .unwrap_or((1, "B"));
    let whole = bytes / size;
    let fraction = bytes % size;
    if fraction == 0 {
        return format!("{whole} {unit}");
    }
    let digits = size.ilog10() as usize;
    let decimals = format!("{fraction:0digits$}");
    format!("{whole}.{} {unit}", decimals.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn durations_round_trip_through_the_scenario_parser() {
        for text in ["7d", "2m", "1m30s", "1d12h", "250ms", "90d"] {
            let parsed = crate::scenario::units::parse_duration(text).expect("valid duration");
            assert_eq!(format_duration(parsed), text);
        }
    }

    #[test]
    fn bytes_print_exactly_in_si_units() {
        let cases = [
            (0, "0 B"),
            (512, "512 B"),
            (1_000, "1 kB"),
            (20_000_000_000, "20 GB"),
            (2_000_000_000, "2 GB"),
            (1_500_000_000, "1.5 GB"),
            (10_737_418_240, "10.73741824 GB"),
            (20_000_000_001, "20.000000001 GB"),
            (3_000_000_000_000, "3 TB"),
            (1_048_576, "1.048576 MB"),
            (-1, "-1 B"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(format_bytes(bytes), expected, "{bytes}");
        }
    }
}
