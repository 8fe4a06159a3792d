//! Checkpoints and `report recover`: a run SIGKILLed mid-load leaves a readable report ("running",
//! verdict INCOMPLETE) and a checkpoint; `report recover` turns them into a full report whose
//! ledger check passes on the checkpointed range, and fails once an acked event is removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{aivo, chromium_dom, read_report, text, wait_for, BackgroundRun, ClusterUp};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

/// The one run dir under `reports`, once it holds a checkpoint of at least `seconds` of load.
async fn checkpointed(reports: &Path, seconds: u64) -> PathBuf {
    wait_for("a checkpoint", Duration::from_secs(90), || async {
        let dir = std::fs::read_dir(reports).ok()?.flatten().next()?.path();
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("checkpoint.json")).ok()?).ok()?;
        (state["load_s"].as_u64()? >= seconds).then_some(dir)
    })
    .await
}

async fn recover(run_dir: &Path) -> std::process::Output {
    aivo(
        &["report", "recover", run_dir.to_str().expect("utf-8 path")],
        &[],
        Duration::from_secs(120),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_run_is_recovered_from_its_last_checkpoint() {
    let state = tempfile::tempdir().expect("tempdir");
    let _kept = ClusterUp::local(state.path());
    let state_dir = state.path().to_str().expect("utf-8 path");
    let reports = tempfile::tempdir().expect("tempdir");
    let mut run = BackgroundRun::spawn(&[
        "run",
        "focus-burst",
        "--duration",
        "60s",
        "--rate-scale",
        "0.1",
        "--checkpoint",
        "2s",
        "--keep-cluster",
        "--state-dir",
        state_dir,
        "--reports-dir",
        reports.path().to_str().expect("utf-8 path"),
    ]);
    run.wait_for_line("cluster ready").await;
    let run_dir = checkpointed(reports.path(), 6).await;

    // While the run goes, its dir reads as a report of the run so far.
    let running = read_report(&run_dir.join("report.json"));
    assert_eq!(running["run"]["state"], "running", "{running}");
    assert!(running["counts"]["acked"].as_u64().expect("acked") > 0);
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).expect("summary.md");
    assert!(summary.contains("INCOMPLETE"), "{summary}");
    assert!(run_dir.join("report.html").exists());

    let pid = run.child.id().expect("pid") as i32;
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert_eq!(run.finish().await, None, "killed by the signal");

    let checkpoint = json(&run_dir.join("checkpoint.json"));
    let load_s = checkpoint["load_s"].as_u64().expect("load_s");
    let acked_at_checkpoint: u64 = checkpoint["ledgers"]
        .as_array()
        .expect("ledgers")
        .iter()
        .map(|l| l["acked"]["len"].as_u64().expect("acked len"))
        .sum();
    assert!(acked_at_checkpoint > 0, "{checkpoint}");

    let recovered = recover(&run_dir).await;
    let report = read_report(&run_dir.join("report.json"));
    // Every check passes; on a busy machine (the suite runs tests side by side) a debug build may
    // miss the scenario's latency or rate thresholds, which then alone fail the verdict.
    let failed_checks: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["kind"] == "check" && c["passed"] != true)
        .collect();
    assert!(failed_checks.is_empty(), "{failed_checks:?}");
    let thresholds_failed = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .any(|c| c["kind"] == "threshold" && c["passed"] != true);
    let expected = if thresholds_failed { 1 } else { 0 };
    assert_eq!(
        recovered.status.code(),
        Some(expected),
        "{}",
        text(&recovered)
    );
    assert_eq!(report["run"]["state"], "recovered");
    assert_eq!(report["run"]["checkpoint_s"].as_u64(), Some(load_s));
    assert_eq!(
        report["timeline"].as_array().expect("timeline").len() as u64,
        load_s,
        "the timeline up to the last checkpoint"
    );
    let ledger = &report["ledger"][0];
    assert_eq!(ledger["stream"], "FOCUS");
    assert_eq!(ledger["lost"], 0, "{ledger}");
    assert!(
        ledger["read"].as_u64().expect("read") >= acked_at_checkpoint,
        "every event acked by the checkpoint was read back: {ledger}"
    );
    assert_eq!(
        report["verdict"]["passed"], !thresholds_failed,
        "{}",
        report["verdict"]
    );

    // The check can fail: remove one event acked before the checkpoint, and recover again.
    let cluster: serde_json::Value = json(&state.path().join("cluster.json"));
    let url = cluster["endpoints"]["nodes"][0]["client_url"]
        .as_str()
        .expect("url");
    let client = async_nats::connect(url).await.expect("connect");
    let focus = async_nats::jetstream::new(client)
        .get_stream("FOCUS")
        .await
        .expect("FOCUS");
    assert!(
        focus.delete_message(10).await.expect("delete"),
        "seq 10 deleted"
    );
    let again = recover(&run_dir).await;
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let report = read_report(&run_dir.join("report.json"));
    assert_eq!(report["ledger"][0]["lost"], 1, "{}", report["ledger"][0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    aivo_no_chromium,
    ignore = "needs headless chromium (scripts/setup --test installs it as root on Debian)"
)]
async fn a_checkpoint_report_renders_in_headless_chromium() {
    let reports = tempfile::tempdir().expect("tempdir");
    let mut run = BackgroundRun::spawn(&[
        "run",
        "focus-burst",
        "--duration",
        "30s",
        "--rate-scale",
        "0.05",
        "--checkpoint",
        "2s",
        "--reports-dir",
        reports.path().to_str().expect("utf-8 path"),
    ]);
    run.wait_for_line("cluster ready").await;
    let run_dir = checkpointed(reports.path(), 4).await;
    let dom = chromium_dom(&run_dir.join("report.html"));
    let pid = run.child.id().expect("pid") as i32;
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let _ = run.finish().await;
    assert!(dom.contains("INCOMPLETE"), "{dom}");
    assert!(dom.contains("<svg"), "the timeline chart: {dom}");
    // The latency-by-percentile chart, with its log-scaled percentile axis, is in the DOM.
    assert!(dom.contains("<svg class=\"percentile-chart\""), "{dom}");
    for label in [">90%<", ">99%<", ">99.9%<"] {
        assert!(dom.contains(label), "{label}: {dom}");
    }
    // A run's own local nodes died with it: recover says the checks could not run, and fails.
    let recovered = recover(&run_dir).await;
    assert_eq!(recovered.status.code(), Some(1), "{}", text(&recovered));
    let report = read_report(&run_dir.join("report.json"));
    assert_eq!(report["run"]["state"], "recovered");
    let failures = report["verdict"]["failures"].to_string();
    assert!(failures.contains("cannot be reached"), "{failures}");
}
