//! Byte counts as people write them (`20 GB`, `1.5 GB`), for the topology's drift table.
//!
//! Exact: two different values never print the same, so a drift row in `verify` can never show
//! equal-looking declared and live values. Sizes use SI units (1 GB = 10^9 bytes), as the
//! declaration does ([`super::GB`]). Durations are formatted by [`crate::units::format_duration`].

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
