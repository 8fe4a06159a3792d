//! Arrival schedules: when each event is *intended* to be sent (the open model, DESIGN.md §3).
//!
//! A [`RateProfile`] is a piecewise-linear rate over the run, kept as knots `(t, rate)` joined by
//! straight lines (two knots at the same `t` make a step). Every shape a scenario can name becomes
//! such knots: a constant, steps and ramps ([`RatePoint`]s), a [`Burst`] laid over another shape, and
//! the diurnal [`SchoolDay`] curve. Because the rate is piecewise linear, the cumulative count
//! Λ(t) = ∫ rate is piecewise quadratic and can be inverted in closed form.
//!
//! An [`ArrivalProcess`] then places events under that curve:
//! - `Even`: the n-th event exactly where Λ(t) reaches n, so counts per window are exact;
//! - `Poisson`: a non-homogeneous Poisson process of intensity rate(t), by time rescaling: unit-rate
//!   exponential gaps s₁ < s₂ < … from a seeded ChaCha8 generator, event k at Λ⁻¹(s_k).
//!
//! Either way there is one global sequence of events, and publisher p of P takes events p, p+P,
//! p+2P… ([`PublisherArrivals`]): the publishers interleave one schedule instead of each running a
//! fraction of it with drift, and the merged process does not depend on how many publishers there
//! are. What is sent, and to which stream, is left to the event sources and the publisher engine.

mod school_day;

pub use school_day::{SchoolDay, DEFAULT_EVENING};

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// A short spike laid over a profile: from the rate in force at `at`, rise to `per_second` over
/// `ramp`, hold it for `hold`, then fall back over `ramp` to the rate the profile has by then.
#[derive(Debug, Clone, PartialEq)]
pub struct Burst {
    /// When the rise starts.
    pub at: Duration,
    /// The rate held at the top of the spike, in events per second.
    pub per_second: f64,
    /// Length of the rise, and of the fall.
    pub ramp: Duration,
    /// How long the top rate is held.
    pub hold: Duration,
    /// The phase name while the burst lasts.
    pub phase: String,
}

impl Burst {
    /// When the fall back to the underlying rate ends.
    pub fn end(&self) -> Duration {
        self.at + self.ramp + self.hold + self.ramp
    }
}

/// How events are placed under a profile's rate curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrivalProcess {
    /// The n-th event exactly where Λ(t) reaches n: no randomness, exact counts per window.
    #[default]
    Even,
    /// A non-homogeneous Poisson process of intensity rate(t), reproducible from `seed`.
    Poisson {
        /// Seeds the ChaCha8 generator of the unit-rate gaps.
        seed: u64,
    },
}

/// Why a profile cannot be built; `item` is the 0-based index of the rate point or burst at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError {
    /// The rate point (for [`RateProfile::new`]) or burst (for [`RateProfile::with_bursts`]).
    pub item: Option<usize>,
    pub message: String,
}

impl ProfileError {
    fn at(item: usize, message: String) -> Self {
        Self {
            item: Some(item),
            message,
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        Self {
            item: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProfileError {}

impl From<ProfileError> for String {
    fn from(e: ProfileError) -> Self {
        e.message
    }
}

/// A segment of constant slope: rate goes linearly from `r0` at `t0` to `r1` at `t1`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    t0: f64,
    t1: f64,
    r0: f64,
    r1: f64,
    /// Events due before `t0`.
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

    /// Time into the run at which `n` more events than `before` have been due.
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
        // A zero-rate segment is never asked for a positive count, but NaN must not reach Duration.
        let tau = if tau.is_finite() { tau } else { 0.0 };
        self.t0 + tau.clamp(0.0, span)
    }
}

/// A validated piecewise-linear rate over a run of fixed length, and how events are placed under it.
#[derive(Debug, Clone)]
pub struct RateProfile {
    /// `(seconds, events per second)`, in time order, the first at 0; the last rate holds to the end.
    knots: Vec<(f64, f64)>,
    segments: Vec<Segment>,
    /// `(start, name)` in time order, the first at 0.
    phases: Vec<(Duration, String)>,
    duration: Duration,
    process: ArrivalProcess,
    /// What the profile was built from, for summaries ("constant 500/s", "school day ×96").
    shape: String,
    /// A Poisson profile's realised event count, computed once on demand.
    realized_total: OnceLock<u64>,
}

impl RateProfile {
    /// Builds a profile from rate points; they must start at 0s, be in time order, and each ramp must
    /// end before the next point begins.
    pub fn new(points: Vec<RatePoint>, duration: Duration) -> Result<Self, ProfileError> {
        let Some(first) = points.first() else {
            return Err(ProfileError::whole(
                "a traffic source needs at least one rate point",
            ));
        };
        if !first.at.is_zero() {
            return Err(ProfileError::at(
                0,
                format!(
                    "the first rate point must be at \"0s\", found \"{}\"",
                    crate::units::format_duration(first.at)
                ),
            ));
        }
        for (i, point) in points.iter().enumerate() {
            check_rate(point.per_second).map_err(|m| ProfileError::at(i, m))?;
            if point.at >= duration && i > 0 {
                return Err(ProfileError::at(
                    i,
                    format!(
                        "rate point {} starts at {}, at or after the end of the run ({})",
                        i + 1,
                        crate::units::format_duration(point.at),
                        crate::units::format_duration(duration)
                    ),
                ));
            }
            if let Some(next) = points.get(i + 1) {
                if next.at <= point.at {
                    return Err(ProfileError::at(
                        i + 1,
                        format!(
                            "rate point {} must start after rate point {} (points go in time order)",
                            i + 2,
                            i + 1
                        ),
                    ));
                }
                if point.at + point.ramp > next.at {
                    return Err(ProfileError::at(
                        i,
                        format!(
                            "the ramp of rate point {} runs past the start of rate point {} (phases overlap)",
                            i + 1,
                            i + 2
                        ),
                    ));
                }
            }
        }
        let mut knots = vec![(0.0, first.per_second)];
        let mut rate = first.per_second;
        for point in &points[1..] {
            let start = point.at.as_secs_f64();
            knots.push((start, rate));
            knots.push((start + point.ramp.as_secs_f64(), point.per_second));
            rate = point.per_second;
        }
        let shape = if points.len() == 1 {
            format!("constant {}", format_rate(first.per_second))
        } else if points.iter().skip(1).any(|p| !p.ramp.is_zero()) {
            format!("ramps ({} points)", points.len())
        } else {
            format!("steps ({} points)", points.len())
        };
        let phases = points.into_iter().map(|p| (p.at, p.phase)).collect();
        Self::from_knots(knots, phases, duration, shape)
    }

    /// A constant rate for the whole run.
    pub fn constant(per_second: f64, duration: Duration) -> Result<Self, ProfileError> {
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

    /// The diurnal school-day curve of `day`, compressed in time, over a run of `duration`.
    pub fn school_day(day: &SchoolDay, duration: Duration) -> Result<Self, ProfileError> {
        let (knots, phases) = day.knots(duration)?;
        Self::from_knots(knots, phases, duration, day.describe())
    }

    /// Builds segments from knots; the common end of every constructor.
    fn from_knots(
        knots: Vec<(f64, f64)>,
        phases: Vec<(Duration, String)>,
        duration: Duration,
        shape: String,
    ) -> Result<Self, ProfileError> {
        if duration.is_zero() {
            return Err(ProfileError::whole("a run must last longer than 0s"));
        }
        if knots.first().map(|k| k.0) != Some(0.0) {
            return Err(ProfileError::whole("a rate curve must start at 0s"));
        }
        if let Some(bad) = knots.iter().find(|k| check_rate(k.1).is_err()) {
            return Err(ProfileError::whole(format!(
                "a rate curve reaches a negative or infinite rate ({})",
                bad.1
            )));
        }
        if knots.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err(ProfileError::whole("a rate curve must go forward in time"));
        }
        let end = duration.as_secs_f64();
        let mut segments: Vec<Segment> = Vec::new();
        let mut push = |t0: f64, t1: f64, r0: f64, r1: f64| {
            // A ramp may run past the end of the run: cut it there, on the ramp's line.
            let cut = t1.min(end);
            if cut <= t0 {
                return;
            }
            let r_cut = r0 + (r1 - r0) * (cut - t0) / (t1 - t0);
            let before = segments.last().map_or(0.0, |s| s.before + s.count());
            segments.push(Segment {
                t0,
                t1: cut,
                r0,
                r1: r_cut,
                before,
            });
        };
        for pair in knots.windows(2) {
            let ((t0, r0), (t1, r1)) = (pair[0], pair[1]);
            push(t0, t1, r0, r1);
        }
        if let Some(&(t, r)) = knots.last() {
            push(t, end, r, r);
        }
        let mut phases = phases;
        phases.sort_by_key(|p| p.0);
        Ok(Self {
            knots,
            segments,
            phases,
            duration,
            process: ArrivalProcess::Even,
            shape,
            realized_total: OnceLock::new(),
        })
    }

    /// This profile with `bursts` laid over it, in time order and not overlapping one another; inside
    /// a burst's span its spike replaces the underlying curve.
    pub fn with_bursts(&self, bursts: &[Burst]) -> Result<Self, ProfileError> {
        let mut knots = self.knots.clone();
        let mut phases = self.phases.clone();
        for (i, burst) in bursts.iter().enumerate() {
            check_rate(burst.per_second).map_err(|m| ProfileError::at(i, m))?;
            if burst.at >= self.duration {
                return Err(ProfileError::at(
                    i,
                    format!(
                        "burst {} starts at {}, at or after the end of the run ({})",
                        i + 1,
                        crate::units::format_duration(burst.at),
                        crate::units::format_duration(self.duration)
                    ),
                ));
            }
            if burst.end() == burst.at {
                return Err(ProfileError::at(
                    i,
                    format!("burst {} lasts 0s; give it a `for` or a `ramp`", i + 1),
                ));
            }
            if let Some(next) = bursts.get(i + 1) {
                if next.at < burst.end() {
                    return Err(ProfileError::at(
                        i + 1,
                        format!(
                            "burst {} starts before burst {} has ended at {} (phases overlap)",
                            i + 2,
                            i + 1,
                            crate::units::format_duration(burst.end())
                        ),
                    ));
                }
            }
            let (start, end) = (burst.at.as_secs_f64(), burst.end().as_secs_f64());
            let rise = burst.ramp.as_secs_f64();
            let from = knot_value(&knots, start, false);
            let back_to = knot_value(&knots, end, true);
            let mut spliced: Vec<(f64, f64)> =
                knots.iter().copied().filter(|k| k.0 <= start).collect();
            spliced.push((start, from));
            spliced.push((start + rise, burst.per_second));
            spliced.push((end - rise, burst.per_second));
            spliced.push((end, back_to));
            spliced.extend(knots.iter().copied().filter(|k| k.0 >= end));
            knots = spliced;

            let resume = phase_in(&phases, burst.end()).to_string();
            phases.retain(|p| p.0 < burst.at || p.0 >= burst.end());
            phases.push((burst.at, burst.phase.clone()));
            if burst.end() < self.duration && !phases.iter().any(|p| p.0 == burst.end()) {
                phases.push((burst.end(), resume));
            }
            phases.sort_by_key(|p| p.0);
        }
        let shape = match bursts.len() {
            0 => self.shape.clone(),
            1 => format!("{} + 1 burst", self.shape),
            n => format!("{} + {n} bursts", self.shape),
        };
        let mut profile = Self::from_knots(knots, phases, self.duration, shape)?;
        profile.process = self.process;
        Ok(profile)
    }

    /// This profile with events placed by `process`.
    pub fn with_process(mut self, process: ArrivalProcess) -> Self {
        self.process = process;
        self.realized_total = OnceLock::new();
        self
    }

    /// This profile with another Poisson seed (an even profile is returned unchanged).
    pub fn reseeded(&self, seed: u64) -> Self {
        match self.process {
            ArrivalProcess::Poisson { .. } => {
                self.clone().with_process(ArrivalProcess::Poisson { seed })
            }
            ArrivalProcess::Even => self.clone(),
        }
    }

    /// How events are placed under the curve.
    pub fn process(&self) -> ArrivalProcess {
        self.process
    }

    /// What the profile was built from, e.g. "ramps (3 points) + 1 burst".
    pub fn shape(&self) -> &str {
        &self.shape
    }

    /// Length of the run the profile covers.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// `(start, name)` of every phase, in time order.
    pub fn phases(&self) -> &[(Duration, String)] {
        &self.phases
    }

    /// Intended events per second at `t`.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        self.segments
            .iter()
            .find(|s| t >= s.t0 && t < s.t1)
            .map_or(0.0, |s| s.rate_at(t))
    }

    /// The highest rate the profile reaches.
    pub fn peak_rate(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.r0.max(s.r1))
            .fold(0.0, f64::max)
    }

    /// The phase in force at `t`.
    pub fn phase_at(&self, t: Duration) -> &str {
        phase_in(&self.phases, t)
    }

    /// Events due in `[0, t)` by the rate curve: exact for an even profile, the expectation for a
    /// Poisson one.
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

    /// Events expected over the whole run, Λ(duration).
    pub fn expected_total(&self) -> f64 {
        self.segments.last().map_or(0.0, |s| s.before + s.count())
    }

    /// Number of events the whole run intends to send: exactly what [`PublisherArrivals`] yields over
    /// all publishers (for a Poisson profile, the seeded realisation, counted once and kept; beyond
    /// 200 million expected events, the rounded expectation).
    pub fn total(&self) -> u64 {
        match self.process {
            // The same tolerance as `time_of`, so the count matches the iterator's.
            ArrivalProcess::Even => (self.expected_total() + 1e-9).floor() as u64,
            ArrivalProcess::Poisson { seed } => *self.realized_total.get_or_init(|| {
                let limit = self.expected_total();
                if limit > MAX_COUNTED {
                    // Counting would take minutes for a run that could never be driven anyway.
                    return limit.round() as u64;
                }
                let mut clock = UnitPoisson::new(seed);
                let mut count = 0;
                while clock.advance() <= limit {
                    count += 1;
                }
                count
            }),
        }
    }

    /// The same profile with every rate multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> Result<Self, ProfileError> {
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(ProfileError::whole(format!(
                "a rate scale must be a finite number ≥ 0, found {factor}"
            )));
        }
        let knots = self.knots.iter().map(|&(t, r)| (t, r * factor)).collect();
        let mut profile = Self::from_knots(
            knots,
            self.phases.clone(),
            self.duration,
            self.shape.clone(),
        )?;
        profile.process = self.process;
        Ok(profile)
    }

    /// The same shape stretched or compressed in time to last `duration`.
    pub fn fitted_to(&self, duration: Duration) -> Result<Self, ProfileError> {
        let ratio = duration.as_secs_f64() / self.duration.as_secs_f64();
        if !ratio.is_finite() {
            return Err(ProfileError::whole("a run must last longer than 0s"));
        }
        let knots = self.knots.iter().map(|&(t, r)| (t * ratio, r)).collect();
        let phases = self
            .phases
            .iter()
            .map(|(at, name)| (at.mul_f64(ratio), name.clone()))
            .collect();
        let mut profile = Self::from_knots(knots, phases, duration, self.shape.clone())?;
        profile.process = self.process;
        Ok(profile)
    }

    /// Where Λ(t) reaches `count`, or `None` past the end of the run.
    fn time_at(&self, count: f64, hint: &mut usize) -> Option<Duration> {
        while let Some(s) = self.segments.get(*hint) {
            if count <= s.before + s.count() + 1e-9 {
                return Some(Duration::from_secs_f64(s.time_of(count - s.before)));
            }
            *hint += 1;
        }
        None
    }
}

/// The largest Poisson run whose events [`RateProfile::total`] counts one by one (~1 s in release).
const MAX_COUNTED: f64 = 2e8;

/// A rate must be a finite number of events ≥ 0.
fn check_rate(per_second: f64) -> Result<(), String> {
    if per_second.is_finite() && per_second >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "a rate must be finite and not negative, found {per_second}/s"
        ))
    }
}

/// The curve through `knots` at `t`: the value just before `t` (`left`) or from `t` on.
fn knot_value(knots: &[(f64, f64)], t: f64, left: bool) -> f64 {
    for pair in knots.windows(2) {
        let ((t0, r0), (t1, r1)) = (pair[0], pair[1]);
        let inside = if left {
            t > t0 && t <= t1
        } else {
            t >= t0 && t < t1
        };
        if inside && t1 > t0 {
            return r0 + (r1 - r0) * (t - t0) / (t1 - t0);
        }
    }
    match knots.first() {
        Some(&(t0, r0)) if t <= t0 => r0,
        _ => knots.last().map_or(0.0, |k| k.1),
    }
}

fn phase_in(phases: &[(Duration, String)], t: Duration) -> &str {
    phases
        .iter()
        .rev()
        .find(|p| p.0 <= t)
        .map_or("", |p| p.1.as_str())
}

/// "500/s", "0.25/s".
pub fn format_rate(per_second: f64) -> String {
    if per_second.fract() == 0.0 {
        format!("{per_second:.0}/s")
    } else {
        format!("{per_second:.2}/s")
    }
}

/// The arrival times s₁ < s₂ < … of a unit-rate Poisson process: cumulative exponential gaps.
#[derive(Debug, Clone)]
struct UnitPoisson {
    rng: ChaCha8Rng,
    /// Arrivals drawn so far.
    drawn: u64,
    /// The latest arrival.
    at: f64,
}

impl UnitPoisson {
    fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            drawn: 0,
            at: 0.0,
        }
    }

    /// Draws the next arrival and returns it.
    fn advance(&mut self) -> f64 {
        // 1 − U lies in (0, 1], so the logarithm is finite and the gap ≥ 0.
        let u: f64 = self.rng.random();
        self.at += -(1.0 - u).ln();
        self.drawn += 1;
        self.at
    }
}

/// The intended send times of one publisher: global events p, p+P, p+2P... of a profile.
#[derive(Debug, Clone)]
pub struct PublisherArrivals {
    profile: Arc<RateProfile>,
    next_index: u64,
    stride: u64,
    hint: usize,
    /// For a Poisson profile, the global unit-rate process; every publisher draws all of it and keeps
    /// its own share, which costs P exponential draws per event and keeps the merged process intact.
    poisson: Option<UnitPoisson>,
}

impl PublisherArrivals {
    /// Publisher `index` of `count` sharing `profile`.
    pub fn new(profile: Arc<RateProfile>, index: u64, count: u64) -> Self {
        let poisson = match profile.process {
            ArrivalProcess::Even => None,
            ArrivalProcess::Poisson { seed } => Some(UnitPoisson::new(seed)),
        };
        Self {
            profile,
            next_index: index,
            stride: count.max(1),
            hint: 0,
            poisson,
        }
    }
}

impl Iterator for PublisherArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let count = match &mut self.poisson {
            None => self.next_index as f64 + 1.0,
            Some(clock) => {
                while clock.drawn <= self.next_index {
                    clock.advance();
                }
                if clock.at > self.profile.expected_total() {
                    return None;
                }
                clock.at
            }
        };
        let at = self.profile.time_at(count, &mut self.hint)?;
        self.next_index += self.stride;
        Some(at)
    }
}

#[cfg(test)]
mod tests;
