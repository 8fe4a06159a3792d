//! A seeded random nemesis for soaks (Jepsen's shape): every `every`, pick a fault kind and a target
//! at random, hold the fault for `hold`, revert, wait `every` again. The same seed gives the same
//! sequence, so a failing soak can be replayed.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Fault, ScheduledFault, Target};

/// A random fault generator.
#[derive(Debug, Clone, PartialEq)]
pub struct Nemesis {
    /// First fault at this time.
    pub start: Duration,
    /// Quiet time between a revert and the next fault.
    pub every: Duration,
    /// How long each fault is held.
    pub hold: Duration,
    /// Kinds to choose from.
    pub faults: Vec<Fault>,
    /// Targets to choose from.
    pub targets: Vec<Target>,
    /// No fault is held past this time (default: the run's end).
    pub until: Option<Duration>,
    /// How long each revert may take to leave a whole cluster (default: the engine's).
    pub recovery: Option<Duration>,
}

impl Nemesis {
    /// The faults this nemesis applies in a run of `duration` with `seed`.
    pub fn expand(&self, duration: Duration, seed: u64) -> Vec<ScheduledFault> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
        let until = self.until.unwrap_or(duration).min(duration);
        let mut out = Vec::new();
        let mut at = self.start;
        if self.faults.is_empty() || self.targets.is_empty() {
            return out;
        }
        while at + self.hold <= until {
            let fault = self.faults[rng.random_range(0..self.faults.len())].clone();
            let target = self.targets[rng.random_range(0..self.targets.len())].clone();
            // kill-indexer has one target; the draw above still happens, so adding it to a
            // nemesis does not change which node the other faults hit.
            let target = if fault == Fault::KillIndexer {
                Target::Indexer
            } else {
                target
            };
            out.push(ScheduledFault {
                at,
                fault,
                target,
                hold: Some(self.hold),
                recovery: self.recovery,
            });
            at += self.hold + self.every.max(Duration::from_millis(100));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_none_past_the_end() {
        let nemesis = Nemesis {
            start: Duration::from_secs(10),
            every: Duration::from_secs(5),
            hold: Duration::from_secs(10),
            faults: vec![Fault::Kill, Fault::Pause],
            targets: vec![Target::Random, Target::MetaLeader],
            until: None,
            recovery: None,
        };
        let a = nemesis.expand(Duration::from_secs(120), 7);
        let b = nemesis.expand(Duration::from_secs(120), 7);
        assert_eq!(a, b);
        assert_eq!(a.len(), 7, "{a:?}");
        assert!(a
            .iter()
            .all(|f| f.at + Duration::from_secs(10) <= Duration::from_secs(120)));
    }

    #[test]
    fn kill_indexer_hits_the_indexer_and_leaves_the_other_draws_alone() {
        let mut nemesis = Nemesis {
            start: Duration::from_secs(5),
            every: Duration::from_secs(5),
            hold: Duration::from_secs(5),
            faults: vec![Fault::Kill, Fault::Pause],
            targets: vec![Target::Random, Target::MetaLeader],
            until: None,
            recovery: Some(Duration::from_secs(90)),
        };
        let nodes_only = nemesis.expand(Duration::from_secs(200), 3);
        nemesis.faults.push(Fault::KillIndexer);
        let with_indexer = nemesis.expand(Duration::from_secs(200), 3);
        assert!(with_indexer.iter().any(|f| f.fault == Fault::KillIndexer));
        for (a, b) in nodes_only.iter().zip(&with_indexer) {
            assert_eq!(b.recovery, Some(Duration::from_secs(90)));
            if b.fault == Fault::KillIndexer {
                assert_eq!(b.target, Target::Indexer);
            } else {
                assert_ne!(b.target, Target::Indexer);
                // Same target draw as without kill-indexer in the list.
                assert_eq!(a.target, b.target);
            }
        }
    }
}
