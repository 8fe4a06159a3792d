//! A seeded nemesis against a real cluster: every fault it draws takes effect, is reverted, and the
//! run's checks still hold (nothing acknowledged lost).

use std::time::Duration;

use crate::support::{aivo, report_json, text};

/// A 40 s run with a nemesis that draws kill and pause on random nodes (partitions have tests of their
/// own; a partitioned replica can take minutes to catch up on a loaded machine): faults at 5, 14,
/// 23 and 32 s, each held 5 s (see `Nemesis::expand`).
const SCENARIO: &str = r#"
name = "nemesis-test"
duration = "40s"
seed = 11

[population]
tenants = 2
learners = 200

[publishers]
count = 2
in_flight = 64
ack_timeout = "5s"

[[traffic]]
domain = "focus"
rate = "150/s"

[[chaos]]
fault = "nemesis"
at = "5s"
every = "4s"
for = "5s"
faults = ["kill", "pause"]
targets = ["random"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_nemesis_applies_and_reverts_every_fault_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("nemesis.toml");
    std::fs::write(&file, SCENARIO).expect("write scenario");
    let reports = dir.path().join("reports");
    let output = aivo(
        &[
            "run",
            file.to_str().expect("utf-8 path"),
            "--reports-dir",
            reports.to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(240),
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");

    let report = report_json(&reports);
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(
        faults.len(),
        8,
        "four faults applied and reverted: {faults:#?}"
    );
    assert!(
        faults.iter().all(|f| f["confirmed"] == true),
        "every effect and every recovery confirmed: {faults:#?}"
    );
    let applied: Vec<&str> = faults
        .iter()
        .filter(|f| f["phase"] == "apply")
        .map(|f| f["fault"].as_str().expect("fault name"))
        .collect();
    assert_eq!(applied.len(), 4, "{faults:#?}");
    assert!(
        applied
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 2,
        "the nemesis drew more than one kind of fault: {applied:?}"
    );
    let ledger = report["ledger"].as_array().expect("ledger");
    assert!(
        !ledger.is_empty() && ledger.iter().all(|c| c["lost"] == 0 && c["passed"] == true),
        "{ledger:#?}"
    );
}
