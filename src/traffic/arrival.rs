//! Arrival schedules: when each event is *intended* to be sent (the open model, DESIGN.md §3).
//!
//! A [`RateProfile`] is a piecewise-linear rate over the run: each [`RatePoint`] holds a rate from its
//! `at` onwards, reached by a linear ramp of length `ramp` (0 = a step). The intended time of the n-th
//! event is where the cumulative count Λ(t) = ∫ rate reaches n, computed in closed form, so schedules
//! are exact, deterministic and cost O(1) per event. Publisher p of P takes events p, p+P, p+2P...: the
//! publishers interleave one global schedule instead of each running a fraction of it with drift.

use std::sync::Arc;
use std::time::Duration;

/// One change of rate in a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePoint {
    /// When the change starts, from the start of the run.
    pub at: Duration,
    /// Events per second reached at `at + ramp`.
    pub per_second: f64,
    /// Length of the linear ramp from the previous rate (zero for a step).
    pub ramp: Duration,
    /// A name for live progress and the report ("baseline", "burst").
    pub phase: String,
}

/// A segment of constant slope: rate goes linearly from `r0` at `t0` to `r1` at `t1`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    t0: f64,
    t1: f64,
    r0: f64,
    r1: f64,
    /// Events before `t0`.
    before: f64,
}

impl Segment {
    fn count(&self) -> f64 {
        (self.r0 + self.r1) / 2.0 * (self.t1 - self.t0)
    }

    fn rate_at(&self, t: f64) -> f64 {
        if self.t1 <= self.t0 {
            return self.r1;
        }
        self.r0 + (self.r1 - self.r0) * (t - self.t0) / (self.t1 - self.t0)
    }

    /// Time τ into the segment at which `n` more events have been due.
    fn time_of(&self, n: f64) -> f64 {
        let span = self.t1 - self.t0;
        let slope = if span > 0.0 {
            (self.r1 - self.r0) / span
        } else {
            0.0
        };
        let tau = if slope.abs() < 1e-12 {
            n / self.r0
        } else {
            // r0 τ + slope τ²/2 = n  →  τ = (−r0 + √(r0² + 2·slope·n)) / slope
            let disc = (self.r0 * self.r0 + 2.0 * slope * n).max(0.0);
            (disc.sqrt() - self.r0) / slope
        };
        self.t0 + tau.clamp(0.0, span)
    }
}

/// A validated piecewise-linear rate over a run of fixed length.
#[derive(Debug, Clone)]
pub struct RateProfile {
    points: Vec<RatePoint>,
    segments: Vec<Segment>,
    duration: Duration,
}

impl RateProfile {
    /// Builds a profile; points must start at 0s, be in time order, and each ramp must end before the
    /// next point begins.
    pub fn new(points: Vec<RatePoint>, duration: Duration) -> Result<Self, String> {
        let Some(first) = points.first() else {
            return Err("a traffic source needs at least one rate point".into());
        };
        if !first.at.is_zero() {
            return Err(format!(
                "the first rate point must be at \"0s\", found {:?}",
                first.at
            ));
        }
        for (i, point) in points.iter().enumerate() {
            if !point.per_second.is_finite() || point.per_second < 0.0 {
                return Err(format!(
                    "rate point {} has a negative or infinite rate",
                    i + 1
                ));
            }
            if point.at >= duration && i > 0 {
                return Err(format!(
                    "rate point {} starts at {:?}, at or after the end of the run ({:?})",
                    i + 1,
                    point.at,
                    duration
                ));
            }
            if let Some(next) = points.get(i + 1) {
                if next.at <= point.at {
                    return Err(format!(
                        "rate point {} is not after rate point {}",
                        i + 2,
                        i + 1
                    ));
                }
                if point.at + point.ramp > next.at {
                    return Err(format!(
                        "the ramp of rate point {} overlaps rate point {} (phases overlap)",
                        i + 1,
                        i + 2
                    ));
                }
            }
        }
        let end = duration.as_secs_f64();
        let mut segments: Vec<Segment> = Vec::new();
        let mut push = |t0: f64, t1: f64, r0: f64, r1: f64| {
            // The last ramp may run past the end of the run: cut it there, on the ramp's line.
            let cut = t1.min(end);
            if cut <= t0 {
                return;
            }
            let r_cut = if t1 > t0 {
                r0 + (r1 - r0) * (cut - t0) / (t1 - t0)
            } else {
                r1
            };
            let before = segments.last().map_or(0.0, |s| s.before + s.count());
            segments.push(Segment {
                t0,
                t1: cut,
                r0,
                r1: r_cut,
                before,
            });
        };
        let mut rate = first.per_second;
        for (i, point) in points.iter().enumerate() {
            let start = point.at.as_secs_f64();
            let ramp_end = start + point.ramp.as_secs_f64();
            let next = points.get(i + 1).map_or(end, |p| p.at.as_secs_f64());
            push(start, ramp_end, rate, point.per_second);
            rate = point.per_second;
            push(ramp_end, next, rate, rate);
        }
        Ok(Self {
            points,
            segments,
            duration,
        })
    }

    /// A constant rate for the whole run.
    pub fn constant(per_second: f64, duration: Duration) -> Result<Self, String> {
        Self::new(
            vec![RatePoint {
                at: Duration::ZERO,
                per_second,
                ramp: Duration::ZERO,
                phase: "steady".into(),
            }],
            duration,
        )
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn points(&self) -> &[RatePoint] {
        &self.points
    }

    /// Intended events per second at `t`.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        self.segments
            .iter()
            .find(|s| t >= s.t0 && t < s.t1)
            .map_or(0.0, |s| s.rate_at(t))
    }

    /// The phase in force at `t`.
    pub fn phase_at(&self, t: Duration) -> &str {
        self.points
            .iter()
            .rev()
            .find(|p| p.at <= t)
            .map_or("", |p| p.phase.as_str())
    }

    /// Events due in `[0, t)`.
    pub fn cumulative(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        let mut total = 0.0;
        for s in &self.segments {
            if t >= s.t1 {
                total = s.before + s.count();
            } else if t > s.t0 {
                let partial = Segment {
                    t1: t,
                    r1: s.rate_at(t),
                    ..*s
                };
                return s.before + partial.count();
            }
        }
        total
    }

    /// Number of events the whole run intends to send.
    pub fn total(&self) -> u64 {
        self.cumulative(self.duration).floor() as u64
    }

    /// The same profile with every rate multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> Result<Self, String> {
        let points = self
            .points
            .iter()
            .map(|p| RatePoint {
                per_second: p.per_second * factor,
                ..p.clone()
            })
            .collect();
        Self::new(points, self.duration)
    }

    /// The same shape stretched or compressed in time to last `duration`.
    pub fn fitted_to(&self, duration: Duration) -> Result<Self, String> {
        let ratio = duration.as_secs_f64() / self.duration.as_secs_f64();
        let points = self
            .points
            .iter()
            .map(|p| RatePoint {
                at: p.at.mul_f64(ratio),
                ramp: p.ramp.mul_f64(ratio),
                ..p.clone()
            })
            .collect();
        Self::new(points, duration)
    }

    /// Intended time of the event with global index `n` (0-based): where Λ(t) reaches n + 1.
    fn time_of(&self, n: u64, hint: &mut usize) -> Option<Duration> {
        let target = n as f64 + 1.0;
        while let Some(s) = self.segments.get(*hint) {
            if target <= s.before + s.count() + 1e-9 {
                return Some(Duration::from_secs_f64(s.time_of(target - s.before)));
            }
            *hint += 1;
        }
        None
    }
}

/// The intended send times of one publisher: global events p, p+P, p+2P... of a profile.
#[derive(Debug, Clone)]
pub struct PublisherArrivals {
    profile: Arc<RateProfile>,
    next_index: u64,
    stride: u64,
    hint: usize,
}

impl PublisherArrivals {
    /// Publisher `index` of `count` sharing `profile`.
    pub fn new(profile: Arc<RateProfile>, index: u64, count: u64) -> Self {
        Self {
            profile,
            next_index: index,
            stride: count.max(1),
            hint: 0,
        }
    }
}

impl Iterator for PublisherArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let at = self.profile.time_of(self.next_index, &mut self.hint)?;
        self.next_index += self.stride;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: u64, per_second: f64, ramp: u64) -> RatePoint {
        RatePoint {
            at: Duration::from_secs(at),
            per_second,
            ramp: Duration::from_secs(ramp),
            phase: format!("p{at}"),
        }
    }

    #[test]
    fn constant_rate_is_exact() {
        let profile = RateProfile::constant(100.0, Duration::from_secs(10)).expect("valid");
        assert_eq!(profile.total(), 1000);
        let times: Vec<_> = PublisherArrivals::new(Arc::new(profile), 0, 1).collect();
        assert_eq!(times.len(), 1000);
        assert!((times[0].as_secs_f64() - 0.01).abs() < 1e-9);
        assert!((times[999].as_secs_f64() - 10.0).abs() < 1e-9);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
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
        let all: Vec<_> = PublisherArrivals::new(Arc::new(profile.clone()), 0, 1).collect();
        assert_eq!(all.len() as u64, profile.total());
        let in_ramp = all
            .iter()
            .filter(|t| t.as_secs_f64() > 10.0 && t.as_secs_f64() <= 20.0)
            .count();
        assert_eq!(in_ramp, 5500);
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
        assert_eq!(
            profile.scaled(0.5).expect("valid").total(),
            profile.total() / 2
        );
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let d = Duration::from_secs(60);
        assert!(RateProfile::new(vec![], d).is_err());
        assert!(RateProfile::new(vec![point(5, 1.0, 0)], d).is_err());
        assert!(RateProfile::new(vec![point(0, -1.0, 0)], d).is_err());
        assert!(RateProfile::new(vec![point(0, 1.0, 0), point(0, 2.0, 0)], d).is_err());
        assert!(RateProfile::new(vec![point(0, 1.0, 20), point(10, 2.0, 0)], d).is_err());
        assert!(RateProfile::new(vec![point(0, 1.0, 0), point(60, 2.0, 0)], d).is_err());
    }
}
