//! The faults check: every fault of the run took effect and every revert left a whole cluster.
//!
//! A run whose fault never took effect did not test what its scenario says (a kill that found no
//! process, a partition the nodes never noticed); a run whose cluster was not whole again after a
//! revert found something an operator must know (a node that did not rejoin, a stream stuck without
//! a leader: see the raft catch-up stall the chaos soak found). Either fails the run, like a lost
//! event: the fault events carry the evidence (`detail`, `error`), this check names them.

use serde::Serialize;

use crate::chaos::engine::{FaultEvent, Phase};

/// The faults check of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FaultsCheck {
    /// Faults applied (apply events).
    pub applied: u64,
    /// Applies whose effect was not seen, or that stopped on an error.
    pub unconfirmed: u64,
    /// Faults reverted with a whole cluster seen afterwards.
    pub recovered: u64,
    /// Faults reverted without a whole cluster seen within the bound, or not reverted at all.
    pub unrecovered: u64,
    /// One line per problem, in the order of the run.
    pub problems: Vec<String>,
    pub passed: bool,
    pub detail: String,
}

/// Judges the fault events of a run; `None` when the run had no faults.
pub fn judge(events: &[FaultEvent]) -> Option<FaultsCheck> {
    let applies: Vec<&FaultEvent> = events.iter().filter(|e| e.phase == Phase::Apply).collect();
    if applies.is_empty() {
        return None;
    }
    let mut check = FaultsCheck {
        applied: applies.len() as u64,
        ..FaultsCheck::default()
    };
    for apply in applies {
        let label = format!(
            "{} {} at {:.1}s",
            apply.fault, apply.node, apply.requested_s
        );
        if let Some(error) = &apply.error {
            check.unconfirmed += 1;
            check
                .problems
                .push(format!("{label}: not applied: {error}"));
        } else if !apply.confirmed {
            check.unconfirmed += 1;
            check
                .problems
                .push(format!("{label}: effect never seen: {}", apply.detail));
        }
        let revert = events
            .iter()
            .find(|e| e.phase == Phase::Revert && e.id == apply.id);
        match revert {
            Some(r) if r.error.is_none() && r.confirmed => check.recovered += 1,
            Some(r) => {
                check.unrecovered += 1;
                let why = r.error.as_deref().unwrap_or(&r.detail);
                check.problems.push(format!(
                    "{label}: reverted at {:.1}s but the cluster was not whole: {why}",
                    r.requested_s
                ));
            }
            // A fault refused before it changed anything has nothing to revert.
            None if apply.error.is_some() && !apply.confirmed => {}
            None => {
                check.unrecovered += 1;
                check.problems.push(format!("{label}: never reverted"));
            }
        }
    }
    check.passed = check.problems.is_empty();
    check.detail = if check.passed {
        format!(
            "{} faults applied, each effect seen; each revert left a whole cluster",
            check.applied
        )
    } else {
        format!(
            "{} of {} faults not seen to take effect, {} without a whole cluster after: {}",
            check.unconfirmed,
            check.applied,
            check.unrecovered,
            check.problems.join("; ")
        )
    };
    Some(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, phase: Phase, confirmed: bool, error: Option<&str>) -> FaultEvent {
        FaultEvent {
            id: id.into(),
            phase,
            fault: "kill".into(),
            target: "nats2".into(),
            node: "nats2".into(),
            requested_s: 5.0,
            confirmed_s: confirmed.then_some(6.0),
            confirmed,
            detail: if confirmed {
                "seen"
            } else {
                "not seen in 30 s"
            }
            .into(),
            note: None,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn no_faults_no_check() {
        assert_eq!(judge(&[]), None);
    }

    #[test]
    fn applied_and_recovered_passes() {
        let check = judge(&[
            event("1", Phase::Apply, true, None),
            event("1", Phase::Revert, true, None),
        ])
        .expect("check");
        assert!(check.passed, "{check:?}");
        assert_eq!((check.applied, check.recovered), (1, 1));
    }

    #[test]
    fn an_unrecovered_revert_fails_with_its_detail() {
        let check = judge(&[
            event("1", Phase::Apply, true, None),
            event("1", Phase::Revert, false, None),
        ])
        .expect("check");
        assert!(!check.passed);
        assert_eq!(check.unrecovered, 1);
        assert!(
            check.detail.contains("without a whole cluster after"),
            "{}",
            check.detail
        );
        assert!(
            check.detail.contains("not seen in 30 s"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn an_unseen_effect_an_error_and_a_missing_revert_each_fail() {
        let check = judge(&[
            event("1", Phase::Apply, false, None),
            event("1", Phase::Revert, true, None),
            event("2", Phase::Apply, false, Some("tc: no such qdisc")),
            event("2", Phase::Revert, true, None),
            event("3", Phase::Apply, true, None),
        ])
        .expect("check");
        assert!(!check.passed);
        assert_eq!((check.unconfirmed, check.unrecovered), (2, 1));
        assert_eq!(check.problems.len(), 3, "{:?}", check.problems);
        assert!(check.problems[1].contains("tc: no such qdisc"));
        assert!(check.problems[2].contains("never reverted"));
    }

    #[test]
    fn a_refused_fault_is_not_applied_and_has_nothing_to_revert() {
        let check =
            judge(&[event("refused", Phase::Apply, false, Some("no leader"))]).expect("check");
        assert!(!check.passed);
        assert_eq!((check.unconfirmed, check.unrecovered), (1, 0));
    }
}
