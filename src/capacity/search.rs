//! The saturation search: stepped rates until a step is not sustainable, then bisection between the
//! last good and the first bad rate. Pure: [`Search`] proposes the next rate and is told each step's
//! verdict; the capacity verb does the measuring.
//!
//! Stepping multiplies the rate by `factor` from `start`; a step at `max` that still holds ends the
//! search with "not saturated up to max". Bisection is geometric (the midpoint of the logarithms),
//! since rates span decades and a knee at 12k found from steps 8k/16k should not be biased upward;
//! it stops when the bad rate is within `tolerance` of the good one, or after `max_bisections`.

/// How the search steps and when it stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchSettings {
    /// The first rate tried, events per second.
    pub start: f64,
    /// Each step's rate is the last one times this (> 1).
    pub factor: f64,
    /// No rate above this is tried.
    pub max: f64,
    /// Bisection stops once `bad / good - 1` is at most this.
    pub tolerance: f64,
    pub max_bisections: u32,
}

/// Where the search stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Stepping,
    Bisecting,
    /// The search is over; see [`Search::outcome`].
    Done,
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The knee lies between `good` (sustainable) and `bad` (not).
    Knee { good: f64, bad: f64 },
    /// Even the first rate was not sustainable.
    BelowStart { bad: f64 },
    /// Every rate up to `max` held.
    NotSaturated { good: f64 },
    /// A step could not be judged on the cluster (the harness was the limit); the search stops there.
    Inconclusive { good: Option<f64>, at: f64 },
}

/// The search state machine.
#[derive(Debug, Clone)]
pub struct Search {
    settings: SearchSettings,
    phase: Phase,
    good: Option<f64>,
    bad: Option<f64>,
    next: f64,
    bisections: u32,
    inconclusive_at: Option<f64>,
}

impl Search {
    /// Refuses settings that would never end or never start.
    pub fn new(settings: SearchSettings) -> Result<Self, String> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(settings.start) || !positive(settings.max) || settings.start > settings.max {
            return Err(format!(
                "the search needs 0 < start rate ≤ max rate, found {} and {}",
                settings.start, settings.max
            ));
        }
        if !(settings.factor.is_finite() && settings.factor > 1.0) {
            return Err(format!(
                "the step factor must be greater than 1, found {}",
                settings.factor
            ));
        }
        if !(settings.tolerance.is_finite() && settings.tolerance > 0.0) {
            return Err(format!(
                "the bisection tolerance must be positive, found {}",
                settings.tolerance
            ));
        }
        Ok(Self {
            settings,
            phase: Phase::Stepping,
            good: None,
            bad: None,
            next: settings.start,
            bisections: 0,
            inconclusive_at: None,
        })
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The rate to measure next, `None` when the search is done.
    pub fn next_rate(&self) -> Option<f64> {
        (self.phase != Phase::Done).then_some(self.next)
    }

    /// Records the verdict of the step at [`Search::next_rate`].
    pub fn record(&mut self, verdict: StepVerdict) {
        let rate = self.next;
        match verdict {
            StepVerdict::Inconclusive => {
                self.inconclusive_at = Some(rate);
                self.phase = Phase::Done;
                return;
            }
            StepVerdict::Sustainable => self.good = Some(rate),
            StepVerdict::Saturated => self.bad = Some(rate),
        }
        if self.phase == Phase::Bisecting {
            self.bisections += 1;
        }
        match (self.good, self.bad) {
            (_, None) if rate >= self.settings.max => self.phase = Phase::Done,
            (_, None) => self.next = (rate * self.settings.factor).min(self.settings.max),
            (None, Some(_)) => self.phase = Phase::Done,
            (Some(good), Some(bad)) => {
                if bad / good - 1.0 <= self.settings.tolerance
                    || self.bisections >= self.settings.max_bisections
                {
                    self.phase = Phase::Done;
                } else {
                    self.phase = Phase::Bisecting;
                    self.next = (good * bad).sqrt();
                }
            }
        }
    }

    /// How the search ended (meaningful once [`Phase::Done`]).
    pub fn outcome(&self) -> Outcome {
        if let Some(at) = self.inconclusive_at {
            return Outcome::Inconclusive {
                good: self.good,
                at,
            };
        }
        match (self.good, self.bad) {
            (Some(good), Some(bad)) => Outcome::Knee { good, bad },
            (None, Some(bad)) => Outcome::BelowStart { bad },
            (Some(good), None) => Outcome::NotSaturated { good },
            (None, None) => Outcome::Inconclusive {
                good: None,
                at: self.next,
            },
        }
    }
}

/// What one step showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepVerdict {
    /// Every criterion held.
    Sustainable,
    /// A criterion broke on the cluster's side.
    Saturated,
    /// The load generator was the limit: the step says nothing about the cluster.
    Inconclusive,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SearchSettings {
        SearchSettings {
            start: 1000.0,
            factor: 2.0,
            max: 100_000.0,
            tolerance: 0.1,
            max_bisections: 10,
        }
    }

    /// Runs a search against a cluster whose true capacity is `knee`.
    fn search_against(knee: f64, s: SearchSettings) -> (Vec<f64>, Outcome) {
        let mut search = Search::new(s).expect("valid");
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(if rate <= knee {
                StepVerdict::Sustainable
            } else {
                StepVerdict::Saturated
            });
            assert!(tried.len() < 50, "the search does not end: {tried:?}");
        }
        (tried, search.outcome())
    }

    #[test]
    fn steps_then_bisects_to_the_tolerance() {
        let (tried, outcome) = search_against(12_000.0, settings());
        // Steps 1k, 2k, 4k, 8k, 16k; then bisection between 8k and 16k.
        assert_eq!(&tried[..5], &[1000.0, 2000.0, 4000.0, 8000.0, 16_000.0]);
        let Outcome::Knee { good, bad } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(good <= 12_000.0 && bad > 12_000.0, "{good} {bad}");
        assert!(bad / good - 1.0 <= 0.1, "{good} {bad}");
    }

    #[test]
    fn bisections_are_bounded() {
        let s = SearchSettings {
            max_bisections: 2,
            tolerance: 0.001,
            ..settings()
        };
        let (tried, outcome) = search_against(12_000.0, s);
        assert_eq!(tried.len(), 5 + 2, "{tried:?}");
        assert!(matches!(outcome, Outcome::Knee { .. }));
    }

    #[test]
    fn a_first_step_that_fails_and_a_cluster_that_never_saturates() {
        let (tried, outcome) = search_against(10.0, settings());
        assert_eq!(tried, vec![1000.0]);
        assert_eq!(outcome, Outcome::BelowStart { bad: 1000.0 });
        let (tried, outcome) = search_against(1e9, settings());
        assert_eq!(tried.last(), Some(&100_000.0));
        assert_eq!(outcome, Outcome::NotSaturated { good: 100_000.0 });
    }

    #[test]
    fn an_inconclusive_step_ends_the_search_without_a_figure() {
        let mut search = Search::new(settings()).expect("valid");
        search.record(StepVerdict::Sustainable);
        search.record(StepVerdict::Inconclusive);
        assert_eq!(search.next_rate(), None);
        assert_eq!(
            search.outcome(),
            Outcome::Inconclusive {
                good: Some(1000.0),
                at: 2000.0
            }
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        for s in [
            SearchSettings {
                factor: 1.0,
                ..settings()
            },
            SearchSettings {
                start: 0.0,
                ..settings()
            },
            SearchSettings {
                max: 10.0,
                ..settings()
            },
        ] {
            assert!(Search::new(s).is_err(), "{s:?}");
        }
    }
}
