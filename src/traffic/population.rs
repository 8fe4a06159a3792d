//! Tenants and learners with stable ids: the same seed gives the same population, so runs compare.
//!
//! Also where a learner's session ids come from: session `n` of learner `i` has an id derived from
//! the seed, `i` and `n` alone, so two sources of a run (learning and focus) that each count a
//! learner's sessions name them alike. Which learners a publisher drives is [`Population::shard`].

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// One learner and the tenant (school) it belongs to, ids pre-rendered for cheap encoding.
#[derive(Debug, Clone)]
pub struct Learner {
    /// The school, a UUID; learners are spread round-robin over the tenants.
    pub tenant_id: String,
    /// The learner, a UUID.
    pub learner_id: String,
}

/// Which learners a publisher owns: learner `i` of the population belongs to shard `i % count`.
///
/// A traffic source with `P` publishers gives publisher `k` (counted within the source, from 0) the
/// shard `k` of `P`, so every learner's events come from exactly one publisher, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This publisher's place among the source's publishers, from 0.
    pub index: u32,
    /// How many publishers the source has.
    pub count: u32,
}

impl Shard {
    /// The whole population: for a source with a single publisher.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Self {
        Self { index, count }
    }
}

/// A shard the population cannot give (the traffic source reports it as a [`TrafficError`](super::TrafficError)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardError {
    /// The shard is not a part of `0..count`.
    Bad { index: u32, count: u32 },
    /// More publishers than learners: the shard owns nobody.
    Empty {
        index: u32,
        count: u32,
        learners: usize,
    },
}

/// Every learner of a run.
#[derive(Debug, Clone)]
pub struct Population {
    /// Every learner; a learner's index here is its number in shards and session ids.
    pub learners: Vec<Learner>,
    /// How many tenants the learners are spread over.
    pub tenants: usize,
}

impl Population {
    /// `learners` learners spread round-robin over `tenants` tenants, ids derived from `seed`.
    pub fn generate(seed: u64, tenants: usize, learners: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let tenant_ids: Vec<String> = (0..tenants.max(1))
            .map(|_| random_uuid(&mut rng).to_string())
            .collect();
        let learners = (0..learners.max(1))
            .map(|i| Learner {
                tenant_id: tenant_ids[i % tenant_ids.len()].clone(),
                learner_id: random_uuid(&mut rng).to_string(),
            })
            .collect();
        Self {
            learners,
            tenants: tenant_ids.len(),
        }
    }

    /// The indices of the learners `shard` owns: learner `i` belongs to shard `i % count`.
    pub fn shard(&self, shard: Shard) -> Result<Vec<u32>, ShardError> {
        let Shard { index, count } = shard;
        if index >= count {
            return Err(ShardError::Bad { index, count });
        }
        let members: Vec<u32> = (index..)
            .step_by(count as usize)
            .take_while(|&i| (i as usize) < self.learners.len())
            .collect();
        if members.is_empty() {
            return Err(ShardError::Empty {
                index,
                count,
                learners: self.learners.len(),
            });
        }
        Ok(members)
    }
}

/// The id of session `ordinal` (counted from 0) of learner `learner` under `seed`.
///
/// A pure function, so the learning source (which starts and ends sessions) and the focus source
/// (whose pings fall inside sessions) of one run agree on a learner's `n`-th session. v4-shaped:
/// the id must not depend on when either source opens the session.
pub fn session_uuid(seed: u64, learner: u32, ordinal: u32) -> Uuid {
    let key = splitmix64(seed) ^ (u64::from(learner) << 32 | u64::from(ordinal));
    let hi = splitmix64(key ^ 0x5e55_1011_d000_0001);
    let lo = splitmix64(hi ^ u64::from(learner));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// SplitMix64's finaliser: a cheap, well-mixed bijection on `u64`.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A v4-shaped UUID from a seeded generator (so ids repeat under the same seed).
pub fn random_uuid(rng: &mut impl RngCore) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_population() {
        let a = Population::generate(7, 3, 10);
        let b = Population::generate(7, 3, 10);
        let c = Population::generate(8, 3, 10);
        assert_eq!(a.learners[9].learner_id, b.learners[9].learner_id);
        assert_ne!(a.learners[9].learner_id, c.learners[9].learner_id);
        assert_eq!(a.learners[0].tenant_id, a.learners[3].tenant_id);
        assert_ne!(a.learners[0].tenant_id, a.learners[1].tenant_id);
    }

    #[test]
    fn shards_partition_the_learners() {
        let population = Population::generate(1, 2, 10);
        let mut seen: Vec<u32> = (0..3)
            .flat_map(|k| population.shard(Shard::new(k, 3)).expect("non-empty"))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(population.shard(Shard::WHOLE).expect("whole").len(), 10);
    }

    #[test]
    fn session_ids_are_stable_and_distinct() {
        assert_eq!(session_uuid(7, 3, 0), session_uuid(7, 3, 0));
        let mut ids: Vec<Uuid> = (0..50)
            .flat_map(|l| (0..50).map(move |n| session_uuid(7, l, n)))
            .collect();
        ids.push(session_uuid(8, 3, 0));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 2501);
    }
}
