//! A seeded nemesis against a real cluster: every fault it draws takes effect, is reverted, and the
//! run's checks still hold (nothing acknowledged lost).

use std::time::Duration;

use crate::support::{aivo, report_json, text, BackgroundRun};

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
    // The faults check passes, and is one of the run's listed checks.
    assert_eq!(
        report["fault_check"]["passed"], true,
        "{}",
        report["fault_check"]
    );
    assert_eq!(report["fault_check"]["recovered"], 4);
    let listed: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert!(listed.contains(&"faults"), "{listed:?}");
}

/// A pause whose revert cannot leave a whole cluster, because a node was killed from outside the
/// harness while the pause was held: the faults check fails the run (exit 1) and names the revert,
/// while the ledger still holds (two of three replicas kept every acknowledged event).
const UNRECOVERED: &str = r#"
name = "unrecovered-test"
duration = "12s"
seed = 5

[population]
tenants = 2
learners = 200

[publishers]
count = 2
in_flight = 64

[[traffic]]
domain = "focus"
rate = "100/s"

[[chaos]]
at = "3s"
fault = "pause"
target = "nats2"
for = "3s"
recovery = "4s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_not_whole_after_a_revert_fails_the_faults_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("unrecovered.toml");
    std::fs::write(&file, UNRECOVERED).expect("write scenario");
    let reports = dir.path().join("reports");
    let mut run = BackgroundRun::spawn(&[
        "run",
        file.to_str().expect("utf-8 path"),
        "--reports-dir",
        reports.to_str().expect("utf-8 path"),
    ]);
    run.wait_for_line("chaos applied pause on nats2").await;
    // nats3 of this run's own cluster, behind the harness's back.
    let killed = std::process::Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("nats-server.*{}.*nats3", reports.display()),
        ])
        .status()
        .expect("pkill");
    assert!(killed.success(), "no nats3 of this run to kill");
    let code = run.finish().await;
    assert_eq!(code, Some(1), "the faults check fails the run");

    let report = report_json(&reports);
    let check = &report["fault_check"];
    assert_eq!(check["passed"], false, "{check:#}");
    assert_eq!(check["applied"], 1, "{check:#}");
    assert_eq!(check["unrecovered"], 1, "{check:#}");
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|d| d.contains("pause nats2") && d.contains("not whole")),
        "{check:#}"
    );
    // The faults check is the only failure: nothing acknowledged was lost.
    let failures = report["verdict"]["failures"].as_array().expect("failures");
    assert!(
        failures
            .iter()
            .all(|f| f.as_str().is_some_and(|f| f.starts_with("faults: "))),
        "{failures:#?}"
    );
    let ledger = report["ledger"].as_array().expect("ledger");
    assert!(ledger.iter().all(|c| c["passed"] == true), "{ledger:#?}");
    // The same verdict as a JUnit test case for CI.
    let run_dir = std::fs::read_dir(&reports)
        .expect("reports")
        .next()
        .expect("one run")
        .expect("entry")
        .path();
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("<testcase classname=\"aivo-load.unrecovered-test.checks\" name=\"faults\""),
        "{junit}"
    );
    assert!(junit.contains("failures=\"1\""), "{junit}");
    assert!(junit.contains("<failure message=\"0 of 1 faults not seen to take effect, 1 without a whole cluster after"), "{junit}");
}
