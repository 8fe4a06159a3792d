//! `aivo-load report trend`: five nights derived from a real run's report.json (the same run's
//! figures, a few percent apart, dated a night apart), with a regression planted in one of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{aivo, chromium_dom, report_json, short_local_run, text};

/// Directory names out of time order: the reports' start times must decide the order.
const NIGHTS: [&str; 5] = ["soak-e", "soak-b", "soak-d", "soak-a", "soak-c"];
/// Each night's figures against the real run's: within a few percent, as nights of one build are.
const JITTER: [f64; 5] = [1.00, 0.97, 1.03, 0.99, 1.02];

/// One short real run (focus-burst, local backend, its own cluster), its report.json.
async fn real_report() -> Value {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = short_local_run(reports.path()).await;
    // A loaded machine may miss the latency threshold; the report is what matters here.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        text(&output)
    );
    let report = report_json(reports.path());
    assert!(
        report["latency"]["corrected"]["p99"]
            .as_f64()
            .is_some_and(|p| p > 0.0),
        "{report}"
    );
    report
}

/// Five run directories under `root/nights`, night `k` started on 2026-01-0(k+1), figures scaled by
/// `JITTER[k]`, and the p99 of `planted` (oldest first) times three.
fn nights(root: &Path, real: &Value, planted: Option<usize>) -> PathBuf {
    let parent = root.join("nights");
    for (k, name) in NIGHTS.iter().enumerate() {
        let mut report = real.clone();
        report["run"]["started_at"] = Value::from(format!("2026-01-0{}T02:00:00Z", k + 1));
        let scale = |v: &mut Value, by: f64| {
            let x = v.as_f64().expect("a number");
            *v = Value::from(x * by);
        };
        for p in ["p50", "p99", "p99.9"] {
            scale(&mut report["latency"]["corrected"][p], JITTER[k]);
        }
        scale(&mut report["throughput"]["achieved_mean"], 1.0 / JITTER[k]);
        if planted == Some(k) {
            scale(&mut report["latency"]["corrected"]["p99"], 3.0);
        }
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).expect("run dir");
        std::fs::write(dir.join("report.json"), report.to_string()).expect("report.json");
    }
    parent
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The table's row of a run, as cells.
fn row(table: &str, name: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("| {name} ")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

fn header(table: &str) -> Vec<String> {
    row(table, "run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trend_over_five_real_runs_flags_only_the_planted_regression() {
    let real = real_report().await;
    let root = tempfile::tempdir().expect("tempdir");

    // Five steady nights: exit 0, oldest first, nothing flagged.
    let steady = nights(&root.path().join("steady"), &real, None);
    let output = aivo(
        &["report", "trend", steady.to_str().expect("utf-8")],
        &[],
        Duration::from_secs(30),
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let order: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| soak-"))
        .map(|l| &l[..1])
        .collect();
    assert_eq!(order, ["e", "b", "d", "a", "c"], "by start time:\n{table}");
    assert!(!table.contains(" ✗ |"), "{table}");
    assert!(table.contains("PASS: no figure moved past 20%"), "{table}");
    let columns = header(&table);
    let at = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name}: {columns:?}"))
    };
    let first = row(&table, "soak-e");
    assert_eq!(
        first[at("p99")],
        aivo_load::checks::thresholds::format_millis(
            real["latency"]["corrected"]["p99"].as_f64().expect("p99")
        ),
        "the real run's p99:\n{table}"
    );
    assert_eq!(first[at("lost")], "0", "{table}");
    assert_eq!(first[at("faults")], "0", "{table}");
    // focus-burst runs no indexer: shown as `-`, not an error.
    assert_eq!(first[at("catch-up")], "-", "{table}");
    assert_eq!(first[at("e2e p99")], "-", "{table}");
    assert!(row(&table, "soak-b")
        .last()
        .expect("judged")
        .starts_with("no"));
    assert_eq!(row(&table, "soak-a").last().expect("judged"), "ok");

    // p99 × 3 in the fourth night (soak-a), read through an unexpanded pattern: exit 1, that figure
    // of that run named, nothing else flagged.
    let planted = nights(&root.path().join("planted"), &real, Some(3));
    let page = root.path().join("trend.html");
    let pattern = format!("{}/soak-*", planted.display());
    let output = aivo(
        &[
            "report",
            "trend",
            &pattern,
            "--html",
            page.to_str().expect("utf-8"),
        ],
        &[],
        Duration::from_secs(30),
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let regressions: Vec<&str> = table.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(regressions.len(), 1, "{table}");
    assert!(
        regressions[0].starts_with("- soak-a (run 4): latency p99 ")
            && regressions[0].contains("×"),
        "{table}"
    );
    let soak_a = row(&table, "soak-a");
    let flagged: Vec<&str> = columns
        .iter()
        .zip(&soak_a)
        .filter(|(_, cell)| cell.ends_with('✗'))
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(flagged, ["p99"], "{table}");
    assert_eq!(table.matches(" ✗ |").count(), 1, "{table}");
    assert!(table.contains("FAIL: 1 figure(s) in 1 run(s)"), "{table}");
    let html = std::fs::read_to_string(&page).expect("the HTML page");
    assert_eq!(html.matches("<circle class=\"regression\"").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    aivo_no_chromium,
    ignore = "needs headless chromium (scripts/setup --test installs it as root on Debian)"
)]
async fn trend_html_marks_the_regression_in_the_browsers_dom() {
    let real = real_report().await;
    let root = tempfile::tempdir().expect("tempdir");
    let planted = nights(root.path(), &real, Some(3));
    let page = root.path().join("trend.html");
    let output = aivo(
        &[
            "report",
            "trend",
            planted.to_str().expect("utf-8"),
            "--html",
            page.to_str().expect("utf-8"),
        ],
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let dom = chromium_dom(&page);
    // The browser parsed a chart per figure; the one ring is in the p99 chart and names the run.
    assert_eq!(
        dom.matches("<svg class=\"trend-chart\"").count(),
        8,
        "{dom}"
    );
    let p99 = &dom[dom.find("data-figure=\"latency p99\"").expect("p99 chart")..];
    let p99 = &p99[..p99.find("</svg>").expect("end of the chart")];
    assert_eq!(
        dom.matches("<circle class=\"regression\"").count(),
        1,
        "{dom}"
    );
    assert!(
        p99.contains("<circle class=\"regression\"") && p99.contains("soak-a (run 4)"),
        "{p99}"
    );
    assert_eq!(p99.matches("class=\"baseline-band\"").count(), 2, "{p99}");
    assert!(p99.contains("class=\"baseline-median\""), "{p99}");
}

#[tokio::test]
async fn trend_without_a_report_is_a_usage_error_naming_the_path() {
    let empty = tempfile::tempdir().expect("tempdir");
    let path = empty.path().to_str().expect("utf-8");
    let output = aivo(&["report", "trend", path], &[], Duration::from_secs(20)).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("no report.json in {path}")),
        "{}",
        text(&output)
    );
    let output = aivo(
        &["report", "trend", path, "--tolerance", "lots"],
        &[],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--tolerance"), "{}", text(&output));
}
