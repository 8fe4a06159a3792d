//! Tenants and learners with stable ids: the same seed gives the same population, so runs compare.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// One learner and the tenant (school) it belongs to, ids pre-rendered for cheap encoding.
#[derive(Debug, Clone)]
pub struct Learner {
    pub tenant_id: String,
    pub learner_id: String,
    /// The learner's current session (focus pings only happen during one).
    pub session_id: String,
}

/// Every learner of a run.
#[derive(Debug, Clone)]
pub struct Population {
    pub learners: Vec<Learner>,
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
                session_id: random_uuid(&mut rng).to_string(),
            })
            .collect();
        Self {
            learners,
            tenants: tenant_ids.len(),
        }
    }
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
}
