//! The safety faults end to end on real clusters: a coordinated power loss on the power-loss
//! store takes the acknowledged writes JetStream had not fsynced, the run fails and its safety
//! section says which fault, how many events and which acknowledged window; `durability-compare`
//! runs the same power loss with `sync_interval` at the default and at `always` and compares them.

use std::path::Path;
use std::time::Duration;

use crate::support::{aivo, read_report, report_json, text};

/// `aivo-load run ARGS --reports-dir REPORTS`, and what it said.
async fn run(args: &[&str], reports: &Path, limit: u64) -> (std::process::Output, String) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--reports-dir", reports.to_str().expect("utf-8 path")]);
    let out = aivo(&all, &[], Duration::from_secs(limit)).await;
    let said = text(&out);
    (out, said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    aivo_not_root,
    ignore = "needs root for the power-loss store's FUSE mounts"
)]
async fn a_coordinated_power_loss_loses_unsynced_acked_events_and_the_safety_section_names_them() {
    let reports = tempfile::tempdir().expect("tempdir");
    let (out, said) = run(&["power-loss", "--duration", "20s"], reports.path(), 240).await;
    assert_eq!(out.status.code(), Some(1), "{said}");
    let report = report_json(reports.path());
    let finding = &report["safety"][0];
    assert_eq!(finding["fault"], "power-loss", "{finding}");
    assert_eq!(finding["node"], "all", "{finding}");
    let done = finding["done"].as_str().unwrap_or_default();
    for node in ["nats1", "nats2", "nats3"] {
        assert!(done.contains(&format!("{node}: ")), "{done}");
    }
    assert!(done.contains("bytes discarded"), "{done}");
    // Every acknowledged event the ledger lost went to the power loss (all were acked before
    // it), and the window ends by the time the cluster was back.
    let lost: u64 = report["ledger"]
        .as_array()
        .expect("ledger")
        .iter()
        .map(|c| c["lost"].as_u64().unwrap_or(0))
        .sum();
    assert!(lost > 0, "{said}");
    assert_eq!(finding["lost"].as_u64(), Some(lost), "{finding}");
    let window = finding["lost_window_s"].as_array().expect("a lost window");
    let confirmed = finding["confirmed_s"].as_f64().expect("confirmed");
    assert!(
        window[1].as_f64().unwrap_or(f64::MAX) <= confirmed + 1.0,
        "{finding}"
    );
    assert!(
        finding["lost_seconds"].as_u64().unwrap_or(0) > 0,
        "{finding}"
    );
    let first = &report["ledger"][0]["lost_events"][0];
    assert!(
        first["lost_to"]
            .as_str()
            .is_some_and(|f| f.starts_with("power-loss all at")),
        "{first}"
    );
    // The summaries and the page say it too.
    assert!(
        said.contains("safety") && said.contains("lost to power-loss all"),
        "{said}"
    );
    let run_dir = crate::support::run_dir(reports.path());
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).expect("summary");
    assert!(summary.contains("## Safety"), "{summary}");
    let page = std::fs::read_to_string(run_dir.join("report.html")).expect("html");
    assert!(
        page.contains("class=\"lost\""),
        "no lost window on the timeline"
    );
    // The stores went with the run, the power-loss store's backing files too (unmounted first).
    for node in ["nats1", "nats2", "nats3"] {
        let dir = run_dir.join("cluster").join(node);
        assert!(dir.join("nats.log").is_file(), "{}", dir.display());
        assert!(!dir.join("store.durable").exists(), "{}", dir.display());
        assert!(!dir.join("store").exists(), "{}", dir.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    aivo_not_root,
    ignore = "needs root for the power-loss store's FUSE mounts"
)]
async fn durability_compare_prices_sync_always_against_the_default() {
    let reports = tempfile::tempdir().expect("tempdir");
    let (out, said) = run(
        &[
            "durability-compare",
            "--duration",
            "24s",
            "--run-id",
            "compare",
        ],
        reports.path(),
        420,
    )
    .await;
    let dir = reports.path().join("compare");
    let default = read_report(&dir.join("sync-default/report.json"));
    let always = read_report(&dir.join("sync-always/report.json"));
    let lost = |r: &serde_json::Value| -> u64 {
        r["ledger"]
            .as_array()
            .expect("ledger")
            .iter()
            .map(|c| c["lost"].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(lost(&default) > 0, "the default lost nothing: {said}");
    assert_eq!(lost(&always), 0, "{said}");
    assert_eq!(always["run"]["sync_interval"], "always");
    assert!(default["run"]["sync_interval"].is_null());
    // A setting that loses acknowledged events fails the comparison.
    assert_eq!(out.status.code(), Some(1), "{said}");
    let comparison = std::fs::read_to_string(dir.join("comparison.md")).expect("comparison.md");
    for row in ["| default | FAIL |", "| always | PASS |", "acked but lost"] {
        assert!(comparison.contains(row), "{row} not in:\n{comparison}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_on_a_cluster_it_cannot_mount_is_refused_with_the_reason() {
    let reports = tempfile::tempdir().expect("tempdir");
    let (out, said) = run(
        &[
            "power-loss",
            "--backend",
            "external",
            "--server",
            "nats://127.0.0.1:1",
        ],
        reports.path(),
        60,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("power-loss"), "{said}");
    // The docker backend has no power-loss store: refused before a container starts.
    let (out, said) = run(&["power-loss", "--backend", "docker"], reports.path(), 60).await;
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("power-loss fault needs a run's own local cluster") && said.contains("FUSE"),
        "{said}"
    );
}
