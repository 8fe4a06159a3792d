//! The diurnal school-day curve: quiet night, morning ramp, seven class periods with passing-time
//! dips between them, a lunch dip, a quieter afternoon and an evening homework bump.
//!
//! The curve is written once, in clock time, as levels relative to the class-period peak; a
//! [`SchoolDay`] scales it to a rate and compresses it in time (a factor of 96 plays 24 h in 15 min),
//! starting at any time of day and wrapping past midnight. It only yields knots: integrating them and
//! placing events is [`super::RateProfile`]'s job.

use std::time::Duration;

use super::{format_rate, ProfileError};

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// Level of the traffic while nobody is in class or doing homework, relative to the peak.
const NIGHT: f64 = 0.02;
/// Level during the ten minutes between two periods.
const PASSING: f64 = 0.35;
/// Level during lunch.
const LUNCH: f64 = 0.25;
/// Level after school, before dinner.
const AFTERNOON: f64 = 0.2;
/// Level over dinner.
const DINNER: f64 = 0.12;
/// The most days one run may play: each day is some forty knots.
const MAX_DAYS: f64 = 10_000.0;
/// Default level of the evening homework bump.
pub const DEFAULT_EVENING: f64 = 0.45;

/// A level marker in the day's curve: `(clock hour, level, phase that starts here)`. The evening level
/// is a placeholder replaced by [`SchoolDay::evening`].
type Mark = (f64, f64, Option<&'static str>);

/// Marks a negative level as "the evening level".
const EVENING: f64 = -1.0;

/// Class periods start at these hours and last 50 minutes; the next starts 10 minutes after the end.
const PERIODS: [(f64, &str); 7] = [
    (8.0, "period 1"),
    (9.0, "period 2"),
    (10.0, "period 3"),
    (11.0, "period 4"),
    (12.0 + 40.0 / 60.0, "period 5"),
    (13.0 + 40.0 / 60.0, "period 6"),
    (14.0 + 40.0 / 60.0, "period 7"),
];

/// The day's curve, from midnight to midnight, levels relative to the class-period peak.
fn curve() -> Vec<Mark> {
    let minute = 1.0 / 60.0;
    let mut marks: Vec<Mark> = vec![
        (0.0, NIGHT, Some("night")),
        (6.0, NIGHT, Some("morning ramp")),
        (7.5, 0.15, None),
    ];
    // The level just before a period starts: the end of the morning ramp, then passing or lunch.
    let mut before = 0.3;
    for (i, &(start, name)) in PERIODS.iter().enumerate() {
        // Learners settle into class over 3 minutes, and pack up over the last 3.
        marks.push((start, before, None));
        marks.push((start + 3.0 * minute, 1.0, Some(name)));
        marks.push((start + 47.0 * minute, 1.0, None));
        let end = start + 50.0 * minute;
        let (level, phase) = match PERIODS.get(i + 1) {
            Some((next, _)) if next - end > 15.0 * minute => (LUNCH, "lunch"),
            Some(_) => (PASSING, "passing"),
            None => (AFTERNOON, "afternoon"),
        };
        marks.push((end, level, Some(phase)));
        before = level;
    }
    marks.extend([
        (17.5, AFTERNOON, Some("dinner")),
        (18.0, DINNER, None),
        (18.75, DINNER, Some("evening homework")),
        (19.5, EVENING, None),
        (21.0, EVENING, Some("late evening")),
        (22.5, 0.06, None),
        (23.5, NIGHT, Some("night")),
        (24.0, NIGHT, None),
    ]);
    marks
}

/// A school day played at `compression` times real speed.
#[derive(Debug, Clone, PartialEq)]
pub struct SchoolDay {
    /// Events per second during class periods.
    pub peak: f64,
    /// How many times faster than real time the day runs: 96 plays 24 h in 15 min.
    pub compression: f64,
    /// Time of day at the start of the run, from midnight.
    pub start: Duration,
    /// Level of the evening homework bump relative to the peak ([`DEFAULT_EVENING`] unless given).
    pub evening: f64,
}

impl SchoolDay {
    /// Checks the parameters, naming the one at fault.
    pub fn check(&self) -> Result<(), ProfileError> {
        let whole = |m: String| ProfileError {
            item: None,
            message: m,
        };
        if !(self.peak.is_finite() && self.peak >= 0.0) {
            return Err(whole(format!(
                "the peak rate must be finite and not negative, found {}/s",
                self.peak
            )));
        }
        if !(self.compression.is_finite() && (1.0..=DAY).contains(&self.compression)) {
            return Err(whole(format!(
                "`compression` must be between 1 (real time) and 86400 (a day per second), found {}",
                self.compression
            )));
        }
        if self.start.as_secs_f64() >= DAY {
            return Err(whole("`start` must be a time of day before 24:00".into()));
        }
        if !(self.evening.is_finite() && (0.0..=2.0).contains(&self.evening)) {
            return Err(whole(format!(
                "`evening` must be a fraction of the peak between 0 and 2, found {}",
                self.evening
            )));
        }
        Ok(())
    }

    /// One line for summaries: "school day ×96 from 06:00, peak 2000/s".
    pub fn describe(&self) -> String {
        let minutes = (self.start.as_secs() / 60) as u32;
        format!(
            "school day ×{} from {:02}:{:02}, peak {}",
            self.compression,
            minutes / 60,
            minutes % 60,
            format_rate(self.peak)
        )
    }

    /// How long one day lasts in the run.
    pub fn day_length(&self) -> Duration {
        Duration::from_secs_f64(DAY / self.compression)
    }

    /// The time of day (from midnight) at `t` into the run.
    pub fn clock_at(&self, t: Duration) -> Duration {
        let clock = self.start.as_secs_f64() + t.as_secs_f64() * self.compression;
        Duration::from_secs_f64(clock.rem_euclid(DAY))
    }

    /// The rate curve over a run of `duration`: knots `(seconds, rate)` and phases.
    #[allow(clippy::type_complexity)]
    pub(super) fn knots(
        &self,
        duration: Duration,
    ) -> Result<(Vec<(f64, f64)>, Vec<(Duration, String)>), ProfileError> {
        self.check()?;
        let days = duration.as_secs_f64() * self.compression / DAY;
        if days > MAX_DAYS {
            return Err(ProfileError {
                item: None,
                message: format!(
                    "the run would play {days:.0} school days; at most {MAX_DAYS:.0} (shorten the run or lower `compression`)"
                ),
            });
        }
        let marks: Vec<(f64, f64, Option<&str>)> = curve()
            .into_iter()
            .map(|(hour, level, phase)| {
                let level = if level == EVENING {
                    self.evening
                } else {
                    level
                };
                (hour * 3600.0, level * self.peak, phase)
            })
            .collect();
        let start = self.start.as_secs_f64();
        let end_clock = start + duration.as_secs_f64() * self.compression;
        let to_run = |clock: f64| (clock - start) / self.compression;

        let first_day = (start / DAY).floor();
        let in_day = start - first_day * DAY;
        let mut knots = vec![(0.0, level_at(&marks, in_day))];
        let mut phases = vec![(Duration::ZERO, phase_at(&marks, in_day).to_string())];
        let mut day = first_day;
        while day * DAY < end_clock {
            for &(clock, rate, phase) in &marks {
                let clock = day * DAY + clock;
                if clock <= start {
                    continue;
                }
                if clock > end_clock {
                    break;
                }
                let t = to_run(clock);
                knots.push((t, rate));
                if let Some(name) = phase {
                    phases.push((Duration::from_secs_f64(t), name.to_string()));
                }
            }
            day += 1.0;
        }
        // Consecutive phases of the same name (night before and after midnight) are one phase.
        phases.dedup_by(|later, earlier| later.1 == earlier.1);
        Ok((knots, phases))
    }
}

/// The curve's level at `clock` seconds after midnight.
fn level_at(marks: &[(f64, f64, Option<&str>)], clock: f64) -> f64 {
    for pair in marks.windows(2) {
        let ((c0, r0, _), (c1, r1, _)) = (pair[0], pair[1]);
        if clock >= c0 && clock < c1 {
            return r0 + (r1 - r0) * (clock - c0) / (c1 - c0);
        }
    }
    marks.last().map_or(0.0, |m| m.1)
}

/// The phase in force at `clock` seconds after midnight.
fn phase_at<'a>(marks: &[(f64, f64, Option<&'a str>)], clock: f64) -> &'a str {
    marks
        .iter()
        .filter(|m| m.0 <= clock)
        .filter_map(|m| m.2)
        .next_back()
        .unwrap_or("night")
}
