//! The end-of-run checks on real clusters, each twice: clean (it passes) and with the fault it
//! guards against injected from outside the harness (the run fails with exit code 1 and says why).
//! The ledger check's lost / unexpected cases live in `run.rs` and `consumers.rs`.

use std::time::Duration;

use crate::run::{aivo, report_json, text, BackgroundRun};
use crate::support::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_max_age_and_max_bytes_and_retention_removals_are_not_lost() {
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    let output = aivo(
        &[
            "run",
            "retention",
            "--duration",
            "40s",
            "--rate-scale",
            "0.6",
            "--reports-dir",
            reports_dir,
        ],
        &[],
        Duration::from_secs(150),
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let report = report_json(reports.path());
    let retention = report["retention"].as_array().expect("retention checks");
    assert_eq!(retention.len(), 2, "{retention:?}");
    let focus = &retention[0];
    assert_eq!(focus["stream"], "FOCUS");
    assert_eq!(focus["passed"], true, "{}", focus["detail"]);
    let oldest = focus["max_oldest_age_s"].as_f64().expect("oldest age");
    assert!(
        (9.0..=12.5).contains(&oldest),
        "retention kicked in around 10 s: {oldest}"
    );
    assert!(focus["first_seq_advance"].as_u64().expect("advance") > 1000);
    assert!(focus["samples"].as_array().expect("samples").len() >= 30);
    let homework = &retention[1];
    assert_eq!(homework["stream"], "HOMEWORK");
    assert_eq!(homework["passed"], true, "{}", homework["detail"]);
    let peak = homework["peak_bytes"].as_u64().expect("peak");
    assert!(peak <= 2 * 1024 * 1024 && peak > 1024 * 1024, "peak {peak}");
    assert!(homework["first_seq_advance"].as_u64().expect("advance") > 0);
    // The ledger counts what retention removed and calls none of it lost.
    for ledger in report["ledger"].as_array().expect("ledger") {
        assert_eq!(ledger["passed"], true, "{ledger}");
        assert_eq!(ledger["lost"], 0, "{ledger}");
        assert!(ledger["removed_by_retention"].as_u64().expect("removed") > 0);
    }
    assert!(log.contains("retention FOCUS"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_override_the_server_ignores_fails_the_run_and_names_the_stream() {
    let cluster = TestCluster::start().await;
    let servers = cluster.endpoints().server_list();
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    let mut run = BackgroundRun::spawn(&[
        "run",
        "retention",
        "--backend",
        "external",
        "--server",
        &servers,
        "--duration",
        "30s",
        "--rate-scale",
        "0.5",
        "--reports-dir",
        reports_dir,
    ]);
    run.wait_for_line("cluster ready").await;

    // From outside the harness: FOCUS keeps an hour instead of 10 s, as a server (or an operator)
    // that ignores the override would.
    let client = async_nats::connect(cluster.endpoints().nodes[1].client_url.as_str())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut focus = js.get_stream("FOCUS").await.expect("FOCUS");
    let mut config = focus.info().await.expect("info").config.clone();
    config.max_age = Duration::from_secs(3600);
    js.update_stream(config).await.expect("update FOCUS");

    assert_eq!(run.finish().await, Some(1), "the run must fail");
    let report = report_json(reports.path());
    let focus = &report["retention"][0];
    assert_eq!(focus["stream"], "FOCUS");
    assert_eq!(focus["passed"], false, "{focus}");
    let detail = focus["detail"].as_str().expect("detail");
    assert!(
        detail.contains("the server holds max_age 3600s, the scenario declared 10s"),
        "{detail}"
    );
    assert!(detail.contains("oldest message was"), "{detail}");
    // HOMEWORK was left alone and still passes.
    assert_eq!(report["retention"][1]["passed"], true);
    let failures = report["verdict"]["failures"].to_string();
    assert!(failures.contains("retention FOCUS"), "{failures}");
}
