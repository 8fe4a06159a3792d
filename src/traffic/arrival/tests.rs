//! Unit tests of every arrival shape: exact counts per window for even placement, statistical bounds
//! for Poisson, the school-day curve's landmarks, and determinism under a seed.

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn point(at: u64, per_second: f64, ramp: u64) -> RatePoint {
    RatePoint {
        at: Duration::from_secs(at),
        per_second,
        ramp: Duration::from_secs(ramp),
        phase: format!("p{at}"),
    }
}

fn all_times(profile: &RateProfile) -> Vec<Duration> {
    PublisherArrivals::new(Arc::new(profile.clone()), 0, 1).collect()
}

/// Events in each window `(k·w, (k+1)·w]` of the run.
fn per_window(times: &[Duration], window: f64, duration: Duration) -> Vec<u64> {
    let n = (duration.as_secs_f64() / window).ceil() as usize;
    let mut counts = vec![0u64; n];
    for t in times {
        let k = ((t.as_secs_f64() / window).ceil() as usize).saturating_sub(1);
        counts[k.min(n - 1)] += 1;
    }
    counts
}

/// For even placement, the events in `(a, b]` are exactly ⌊Λ(b)⌋ − ⌊Λ(a)⌋.
fn assert_exact_windows(profile: &RateProfile, window: f64) {
    let times = all_times(profile);
    assert_eq!(times.len() as u64, profile.total());
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "times go forward");
    let counts = per_window(&times, window, profile.duration());
    for (k, &count) in counts.iter().enumerate() {
        let (a, b) = (k as f64 * window, (k as f64 + 1.0) * window);
        let due = |t: f64| (profile.cumulative(secs(t)) + 1e-9).floor() as u64;
        assert_eq!(count, due(b) - due(a), "window {k} ({a}s–{b}s)");
    }
}

#[test]
fn constant_rate_is_exact() {
    let profile = RateProfile::constant(100.0, Duration::from_secs(10)).expect("valid");
    assert_eq!(profile.total(), 1000);
    assert_eq!(profile.shape(), "constant 100/s");
    let times = all_times(&profile);
    assert_eq!(times.len(), 1000);
    assert!((times[0].as_secs_f64() - 0.01).abs() < 1e-9);
    assert!((times[999].as_secs_f64() - 10.0).abs() < 1e-9);
    assert_eq!(per_window(&times, 1.0, profile.duration()), vec![100; 10]);
}

#[test]
fn steps_and_ramps_count_exactly() {
    // 0–10 s at 100/s, ramp to 1000/s over 10 s (5,500 events), hold 1000/s for 10 s.
    let profile = RateProfile::new(
        vec![
            point(0, 100.0, 0),
            point(10, 1000.0, 10),
            point(30, 100.0, 0),
        ],
        Duration::from_secs(40),
    )
    .expect("valid");
    assert_eq!(profile.total(), 1000 + 5500 + 10_000 + 1000);
    assert!((profile.rate_at(Duration::from_secs(15)) - 550.0).abs() < 1e-9);
    assert_eq!(profile.phase_at(Duration::from_secs(25)), "p10");
    assert_eq!(profile.peak_rate(), 1000.0);
    let all = all_times(&profile);
    let in_ramp = all
        .iter()
        .filter(|t| t.as_secs_f64() > 10.0 && t.as_secs_f64() <= 20.0)
        .count();
    assert_eq!(in_ramp, 5500);
    assert_exact_windows(&profile, 1.0);
    assert_exact_windows(&profile, 0.25);
}

#[test]
fn steps_count_exactly_per_window() {
    let profile = RateProfile::new(
        vec![point(0, 50.0, 0), point(3, 400.0, 0), point(7, 0.0, 0)],
        Duration::from_secs(10),
    )
    .expect("valid");
    assert_eq!(profile.shape(), "steps (3 points)");
    let times = all_times(&profile);
    assert_eq!(
        per_window(&times, 1.0, profile.duration()),
        vec![50, 50, 50, 400, 400, 400, 400, 0, 0, 0]
    );
}

#[test]
fn publishers_partition_the_schedule() {
    let profile = Arc::new(
        RateProfile::new(
            vec![point(0, 333.0, 0), point(5, 50.0, 2)],
            Duration::from_secs(9),
        )
        .expect("valid"),
    );
    let mut merged: Vec<Duration> = (0..4)
        .flat_map(|p| PublisherArrivals::new(profile.clone(), p, 4))
        .collect();
    merged.sort();
    let single: Vec<_> = PublisherArrivals::new(profile.clone(), 0, 1).collect();
    assert_eq!(merged, single);
}

#[test]
fn ramp_cut_by_end_of_run() {
    let profile = RateProfile::new(
        vec![point(0, 0.0, 0), point(5, 100.0, 10)],
        Duration::from_secs(10),
    )
    .expect("valid");
    // 5 s of a ramp to 100/s over 10 s: reaches 50/s, 125 events.
    assert_eq!(profile.total(), 125);
    assert_exact_windows(&profile, 1.0);
}

#[test]
fn scaling_and_fitting() {
    let profile = RateProfile::new(
        vec![point(0, 100.0, 0), point(60, 1000.0, 0)],
        Duration::from_secs(120),
    )
    .expect("valid");
    let fitted = profile.fitted_to(Duration::from_secs(12)).expect("valid");
    assert_eq!(fitted.total(), 6 * 100 + 6 * 1000);
    assert_eq!(fitted.phase_at(Duration::from_secs(7)), "p60");
    assert_eq!(
        profile.scaled(0.5).expect("valid").total(),
        profile.total() / 2
    );
    assert!(profile.scaled(f64::NAN).is_err());
}

#[test]
fn invalid_profiles_are_refused() {
    let d = Duration::from_secs(60);
    let item = |points: Vec<RatePoint>| RateProfile::new(points, d).map(|_| ()).map_err(|e| e.item);
    assert_eq!(item(vec![]), Err(None));
    assert_eq!(item(vec![point(5, 1.0, 0)]), Err(Some(0)));
    assert_eq!(item(vec![point(0, -1.0, 0)]), Err(Some(0)));
    assert_eq!(item(vec![point(0, 1.0, 0), point(0, 2.0, 0)]), Err(Some(1)));
    assert_eq!(
        item(vec![point(0, 1.0, 20), point(10, 2.0, 0)]),
        Err(Some(0))
    );
    assert_eq!(
        item(vec![
            point(0, 1.0, 0),
            point(10, 2.0, 20),
            point(20, 2.0, 0)
        ]),
        Err(Some(1))
    );
    assert_eq!(
        item(vec![point(0, 1.0, 0), point(60, 2.0, 0)]),
        Err(Some(1))
    );
    assert_eq!(item(vec![point(0, f64::INFINITY, 0)]), Err(Some(0)));
}

fn burst(at: u64, per_second: f64, ramp: u64, hold: u64) -> Burst {
    Burst {
        at: Duration::from_secs(at),
        per_second,
        ramp: Duration::from_secs(ramp),
        hold: Duration::from_secs(hold),
        phase: "burst".into(),
    }
}

#[test]
fn burst_expands_to_a_spike_over_the_base() {
    let base = RateProfile::constant(100.0, Duration::from_secs(60)).expect("valid");
    let profile = base
        .with_bursts(&[burst(20, 1000.0, 2, 10)])
        .expect("valid");
    // Rise and fall each add (100+1000)/2·2 − 200 = 900; the hold adds 900·10.
    assert_eq!(profile.total(), 6000 + 900 + 9000 + 900);
    assert_eq!(profile.rate_at(secs(21.0)), 550.0);
    assert_eq!(profile.rate_at(secs(25.0)), 1000.0);
    assert_eq!(profile.rate_at(secs(40.0)), 100.0);
    assert_eq!(profile.phase_at(secs(19.0)), "steady");
    assert_eq!(profile.phase_at(secs(25.0)), "burst");
    assert_eq!(profile.phase_at(secs(34.0)), "steady");
    assert_eq!(profile.shape(), "constant 100/s + 1 burst");
    assert_exact_windows(&profile, 1.0);
}

#[test]
fn burst_over_a_ramp_returns_to_the_ramp() {
    let base = RateProfile::new(
        vec![point(0, 0.0, 0), point(10, 1000.0, 40)],
        Duration::from_secs(60),
    )
    .expect("valid");
    let profile = base.with_bursts(&[burst(20, 2000.0, 0, 5)]).expect("valid");
    assert_eq!(profile.rate_at(secs(22.0)), 2000.0);
    // Back on the ramp's line once the burst is over.
    assert!((profile.rate_at(secs(30.0)) - 500.0).abs() < 1e-9);
    assert!((profile.rate_at(secs(19.0)) - 225.0).abs() < 1e-9);
    assert_exact_windows(&profile, 1.0);
}

#[test]
fn bursts_must_not_overlap_or_start_late() {
    let base = RateProfile::constant(10.0, Duration::from_secs(60)).expect("valid");
    let err = base
        .with_bursts(&[burst(10, 100.0, 5, 10), burst(25, 100.0, 1, 1)])
        .expect_err("overlap");
    assert_eq!(err.item, Some(1));
    assert!(err.message.contains("phases overlap"), "{err}");
    assert_eq!(
        base.with_bursts(&[burst(60, 100.0, 1, 1)])
            .map_err(|e| e.item)
            .err(),
        Some(Some(0))
    );
    assert!(base.with_bursts(&[burst(10, 100.0, 0, 0)]).is_err());
    assert!(base.with_bursts(&[burst(10, -1.0, 0, 1)]).is_err());
    // A burst that runs past the end is cut there.
    let cut = base.with_bursts(&[burst(55, 110.0, 0, 30)]).expect("valid");
    assert_eq!(cut.total(), 550 + 550);
}

fn poisson(profile: RateProfile, seed: u64) -> RateProfile {
    profile.with_process(ArrivalProcess::Poisson { seed })
}

#[test]
fn poisson_counts_stay_within_four_sigma() {
    let profile = poisson(
        RateProfile::constant(1000.0, Duration::from_secs(100)).expect("valid"),
        42,
    );
    let times = all_times(&profile);
    assert_eq!(times.len() as u64, profile.total());
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let counts = per_window(&times, 1.0, profile.duration());
    let sigma = 1000f64.sqrt();
    for (k, &c) in counts.iter().enumerate() {
        assert!(
            (c as f64 - 1000.0).abs() <= 4.0 * sigma,
            "window {k}: {c} events"
        );
    }
    // Mean rate: 100,000 expected, σ ≈ 316.
    assert!((times.len() as f64 - 100_000.0).abs() <= 4.0 * 100_000f64.sqrt());
    // Poisson counts vary as much as they average (dispersion ≈ 1); even placement would give 0.
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    let variance = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / (counts.len() - 1) as f64;
    let dispersion = variance / mean;
    assert!((0.6..1.4).contains(&dispersion), "dispersion {dispersion}");
}

#[test]
fn poisson_follows_a_changing_rate() {
    let profile = poisson(
        RateProfile::new(
            vec![point(0, 0.0, 0), point(10, 2000.0, 40), point(50, 200.0, 0)],
            Duration::from_secs(60),
        )
        .expect("valid"),
        7,
    );
    let times = all_times(&profile);
    let counts = per_window(&times, 2.0, profile.duration());
    for (k, &c) in counts.iter().enumerate() {
        let (a, b) = (k as f64 * 2.0, (k as f64 + 1.0) * 2.0);
        let expected = profile.cumulative(secs(b)) - profile.cumulative(secs(a));
        let bound = 4.0 * expected.sqrt() + 1.0;
        assert!(
            (c as f64 - expected).abs() <= bound,
            "window {a}s–{b}s: {c} events, {expected} expected"
        );
    }
    assert_eq!(counts[..5], [0, 0, 0, 0, 0], "no events at rate 0");
}

#[test]
fn poisson_is_deterministic_under_a_seed_and_partitions_exactly() {
    let base = RateProfile::new(
        vec![point(0, 300.0, 0), point(4, 900.0, 2)],
        Duration::from_secs(10),
    )
    .expect("valid");
    let a = all_times(&poisson(base.clone(), 1));
    assert_eq!(a, all_times(&poisson(base.clone(), 1)));
    assert_ne!(a, all_times(&poisson(base.clone(), 2)));
    let shared = Arc::new(poisson(base.clone(), 1));
    for publishers in [2u64, 3, 8] {
        let mut merged: Vec<Duration> = (0..publishers)
            .flat_map(|p| PublisherArrivals::new(shared.clone(), p, publishers))
            .collect();
        merged.sort();
        assert_eq!(merged, a, "{publishers} publishers");
    }
    assert_eq!(shared.total(), a.len() as u64);
    // Reseeding changes the realisation, not the curve.
    let reseeded = shared.reseeded(9);
    assert_eq!(reseeded.process(), ArrivalProcess::Poisson { seed: 9 });
    assert_eq!(reseeded.expected_total(), shared.expected_total());
    assert_eq!(base.reseeded(9).process(), ArrivalProcess::Even);
    // Fitting and scaling keep the process.
    assert_eq!(
        shared
            .fitted_to(Duration::from_secs(5))
            .expect("valid")
            .process(),
        ArrivalProcess::Poisson { seed: 1 }
    );
}

fn day(compression: f64, start_hour: f64) -> SchoolDay {
    SchoolDay {
        peak: 1000.0,
        compression,
        start: secs(start_hour * 3600.0),
        evening: DEFAULT_EVENING,
    }
}

/// Run time at which the day's clock shows `hour`, for a day starting at midnight.
fn when(day: &SchoolDay, hour: f64) -> Duration {
    secs((hour * 3600.0 - day.start.as_secs_f64()) / day.compression)
}

#[test]
fn school_day_has_its_landmarks() {
    let d = day(96.0, 0.0);
    assert_eq!(d.day_length(), Duration::from_secs(15 * 60));
    let profile = RateProfile::school_day(&d, d.day_length()).expect("valid");
    let rate = |hour: f64| profile.rate_at(when(&d, hour));
    // Quiet night.
    for hour in [0.5, 2.0, 4.0, 5.9] {
        assert!((rate(hour) - 20.0).abs() < 1e-6, "{hour}h: {}", rate(hour));
    }
    // Morning ramp rises.
    assert!(rate(6.5) < rate(7.0) && rate(7.0) < rate(7.9));
    // Class periods peak; passing time dips between them.
    for hour in [8.5, 9.5, 10.5, 11.5, 13.0, 14.0, 15.0] {
        assert!(
            (rate(hour) - 1000.0).abs() < 1e-6,
            "{hour}h: {}",
            rate(hour)
        );
    }
    for hour in [8.0 + 55.0 / 60.0, 9.0 + 55.0 / 60.0, 13.0 + 35.0 / 60.0] {
        assert!((rate(hour) - 350.0).abs() < 1e-6, "{hour}h: {}", rate(hour));
    }
    // Lunch, afternoon and the evening homework bump.
    assert!((rate(12.25) - 250.0).abs() < 1e-6);
    assert!((rate(16.0) - 200.0).abs() < 1e-6);
    assert!((rate(20.0) - 450.0).abs() < 1e-6);
    assert!(rate(20.0) > rate(16.0) && rate(20.0) > rate(18.5));
    assert!(rate(23.75) < 30.0);
    assert_eq!(profile.peak_rate(), 1000.0);
    for (hour, phase) in [
        (3.0, "night"),
        (7.0, "morning ramp"),
        (8.5, "period 1"),
        (9.95, "passing"),
        (12.25, "lunch"),
        (14.0, "period 6"),
        (16.0, "afternoon"),
        (20.0, "evening homework"),
        (23.9, "night"),
    ] {
        assert_eq!(profile.phase_at(when(&d, hour)), phase, "{hour}h");
    }
    assert_exact_windows(&profile, 5.0);
}

#[test]
fn school_day_compression_is_honoured() {
    let slow = day(96.0, 0.0);
    let fast = day(192.0, 0.0);
    assert_eq!(fast.day_length() * 2, slow.day_length());
    let a = RateProfile::school_day(&slow, slow.day_length()).expect("valid");
    let b = RateProfile::school_day(&fast, fast.day_length()).expect("valid");
    // The same rates for half as long: half the events, each landmark at half the time.
    assert!((a.expected_total() / 2.0 - b.expected_total()).abs() < 1e-6);
    assert_eq!(b.rate_at(when(&fast, 12.25)), 250.0);
    assert_eq!(when(&fast, 12.25) * 2, when(&slow, 12.25));
    // Events in period 1 (08:03–08:47 at the peak): peak · 44 min / compression, exactly.
    let times = all_times(&a);
    let (from, to) = (when(&slow, 8.05), when(&slow, 8.0 + 47.0 / 60.0));
    let in_period = times.iter().filter(|t| **t > from && **t <= to).count() as f64;
    assert!(
        (in_period - 1000.0 * 44.0 * 60.0 / 96.0).abs() <= 1.0,
        "{in_period}"
    );
    assert_eq!(slow.clock_at(when(&slow, 8.05)), secs(8.05 * 3600.0));
}

#[test]
fn school_day_starts_anywhere_and_wraps_past_midnight() {
    let d = day(96.0, 22.0);
    // 22:00 to 08:30 the next day.
    let duration = secs(10.5 * 3600.0 / 96.0);
    let profile = RateProfile::school_day(&d, duration).expect("valid");
    assert_eq!(profile.phase_at(Duration::ZERO), "late evening");
    let at = |clock: f64| secs((clock - 22.0) * 3600.0 / 96.0);
    assert_eq!(profile.phase_at(at(24.0 + 3.0)), "night");
    assert!((profile.rate_at(at(24.0 + 3.0)) - 20.0).abs() < 1e-6);
    assert!((profile.rate_at(at(24.0 + 8.25)) - 1000.0).abs() < 1e-6);
    assert_eq!(profile.phase_at(at(24.0 + 8.25)), "period 1");
    assert_eq!(
        d.clock_at(at(24.0 + 3.0)).as_secs_f64().round(),
        3.0 * 3600.0
    );
    // Several days in a row repeat the curve.
    let week = RateProfile::school_day(&day(960.0, 0.0), secs(3.0 * 90.0)).expect("valid");
    let one = RateProfile::school_day(&day(960.0, 0.0), secs(90.0)).expect("valid");
    assert!((week.expected_total() - 3.0 * one.expected_total()).abs() < 1e-6);
}

#[test]
fn school_day_parameters_are_checked() {
    let bad = |f: fn(&mut SchoolDay)| {
        let mut d = day(96.0, 0.0);
        f(&mut d);
        RateProfile::school_day(&d, Duration::from_secs(60)).is_err()
    };
    assert!(bad(|d| d.compression = 0.5));
    assert!(bad(|d| d.compression = f64::NAN));
    assert!(bad(|d| d.peak = -1.0));
    assert!(bad(|d| d.start = Duration::from_secs(86_400)));
    assert!(bad(|d| d.evening = 3.0));
    assert!(!bad(|d| d.evening = 1.2));
}

#[test]
fn poisson_school_day_is_reproducible() {
    let d = day(960.0, 6.0);
    let profile = poisson(RateProfile::school_day(&d, secs(60.0)).expect("valid"), 3);
    let times = all_times(&profile);
    assert_eq!(times, all_times(&profile.clone()));
    let expected = profile.expected_total();
    assert!((times.len() as f64 - expected).abs() <= 4.0 * expected.sqrt());
}
