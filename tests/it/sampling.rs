//! Per-second resource samples in the timeline and the load-generator self-check, on real runs: a
//! deliberately starved harness is reported as the limit (a warning, not a failure), a comfortable
//! run is not, and a local run's timeline carries the harness's and every node's CPU and memory.

use std::path::Path;
use std::time::Duration;

use crate::support::{aivo, report_json, text, TestCluster};

/// One publisher on the focus stream at a constant `rate` for `duration`, `in_flight` at a time.
fn scenario(name: &str, rate: &str, duration: &str, in_flight: u32) -> String {
    format!(
        r#"
name = "{name}"
description = "self-check test"
duration = "{duration}"
seed = 3

[population]
tenants = 2
learners = 100

[publishers]
count = 1
in_flight = {in_flight}
ack_timeout = "5s"

[[traffic]]
domain = "focus"
rate = "{rate}"
"#
    )
}

/// Writes the scenario into `dir` and runs it with `backend_args`; the report dir is `dir/reports`.
async fn run_scenario(
    dir: &Path,
    text_of_scenario: &str,
    backend_args: &[&str],
) -> (String, serde_json::Value) {
    let file = dir.join("scenario.toml");
    std::fs::write(&file, text_of_scenario).expect("write scenario");
    let reports = dir.join("reports");
    let mut args = vec![
        "run",
        file.to_str().expect("utf-8 path"),
        "--reports-dir",
        reports.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(backend_args);
    let output = aivo(&args, &[], Duration::from_secs(90)).await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    (log, report_json(&reports))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_harness_is_reported_as_the_load_generator_not_the_cluster() {
    let cluster = TestCluster::start().await;
    let servers = cluster.endpoints().server_list();
    let dir = tempfile::tempdir().expect("tempdir");
    // Four in flight ack a few thousand events a second at most; the schedule asks for 20,000.
    let (log, report) = run_scenario(
        dir.path(),
        &scenario("starved", "20000/s", "10s", 4),
        &["--backend", "external", "--server", &servers],
    )
    .await;
    let limit = &report["load_generator"];
    assert!(limit.is_object(), "not reported as limited: {limit}\n{log}");
    let signals: Vec<&str> = limit["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(signals.contains(&"send_delay"), "{limit}");
    let reason = limit["reason"].as_str().expect("reason");
    assert!(reason.contains("send delay"), "{reason}");
    assert!(
        limit["advice"]
            .as_str()
            .is_some_and(|a| a.contains("more publishers")),
        "{limit}"
    );
    assert!(
        limit["send_delay_p99_last_ms"].as_f64().expect("last") > 1000.0,
        "{limit}"
    );
    // A warning, not a failed verdict.
    assert_eq!(report["verdict"]["passed"], true, "{}", report["verdict"]);
    assert!(
        log.contains("WARNING: limited by the load generator"),
        "{log}"
    );
    let run_dir = std::fs::read_dir(dir.path().join("reports"))
        .expect("reports")
        .flatten()
        .next()
        .expect("run dir")
        .path();
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).expect("summary.md");
    assert!(
        summary.contains("WARNING: limited by the load generator"),
        "{summary}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html");
    assert!(html.contains("<p class=\"warning\">WARNING: limited by the load generator"));
    // An external cluster given by client URLs has no known monitoring: no node samples, but the
    // harness's own figures are there.
    let timeline = report["timeline"].as_array().expect("timeline");
    assert!(timeline
        .iter()
        .all(|r| r["nodes"].as_array().is_some_and(|n| n.is_empty())));
    assert!(timeline.iter().all(|r| r["harness_cpu"].as_f64().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comfortable_local_run_samples_the_harness_and_every_node_and_is_not_limited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, report) =
        run_scenario(dir.path(), &scenario("comfortable", "200/s", "8s", 64), &[]).await;
    assert!(
        report["load_generator"].is_null(),
        "{}\n{log}",
        report["load_generator"]
    );
    assert!(
        !log.contains("WARNING: limited by the load generator"),
        "{log}"
    );
    assert!(log.contains("resources.nats1"), "{log}");

    let timeline = report["timeline"].as_array().expect("timeline");
    let load: Vec<&serde_json::Value> = timeline
        .iter()
        .filter(|r| r["second"].as_u64().is_some_and(|s| s < 8))
        .collect();
    assert_eq!(load.len(), 8, "a row a second");
    let mut answered = 0;
    for row in &load {
        let cpu = row["harness_cpu"].as_f64().expect("harness_cpu");
        assert!((0.0..=64.0).contains(&cpu), "harness cpu {cpu}");
        let rss = row["harness_rss_bytes"]
            .as_u64()
            .expect("harness_rss_bytes");
        assert!(rss > 1 << 20 && rss < 1 << 36, "harness rss {rss}");
        let nodes = row["nodes"].as_array().expect("nodes");
        let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
        assert_eq!(names, ["nats1", "nats2", "nats3"], "{row}");
        for node in nodes.iter().filter(|n| n["reachable"] == true) {
            let cpu = node["cpu"].as_f64().expect("node cpu");
            assert!((0.0..=64.0).contains(&cpu), "{node}");
            let mem = node["mem_bytes"].as_u64().expect("node mem");
            assert!(mem > 1 << 20, "{node}");
            assert!(node["js_storage_bytes"].as_u64().is_some(), "{node}");
            answered += 1;
        }
    }
    // Every node answers nearly every second (a loaded box may miss a poll's deadline now and then).
    assert!(
        answered >= 8 * 3 - 3,
        "{answered} of 24 node samples answered"
    );
    // The stream's bytes show up in JetStream storage by the end.
    let last = load.last().expect("last row");
    assert!(
        last["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["js_storage_bytes"].as_u64().is_some_and(|b| b > 0)),
        "{last}"
    );
    let run_dir = std::fs::read_dir(dir.path().join("reports"))
        .expect("reports")
        .flatten()
        .next()
        .expect("run dir")
        .path();
    let csv = std::fs::read_to_string(run_dir.join("timeline.csv")).expect("timeline.csv");
    let header = csv.lines().next().expect("header");
    assert!(
        header.contains(",harness_cpu,harness_rss_mb,")
            && header.contains(",nats3_cpu,nats3_mem_mb,"),
        "{header}"
    );
    // latency.hlog holds the same seconds as the timeline: one corrected interval per row, and
    // together exactly the events the timeline counts as acked.
    let hlog = std::fs::read_to_string(run_dir.join("latency.hlog")).expect("latency.hlog");
    let corrected = hlog_counts(&hlog, "corrected");
    let acked: u64 = timeline.iter().filter_map(|r| r["acked"].as_u64()).sum();
    assert_eq!(corrected.len(), timeline.len(), "{hlog}");
    assert_eq!(corrected.iter().sum::<u64>(), acked, "{hlog}");
    assert_eq!(hlog_counts(&hlog, "service").iter().sum::<u64>(), acked);
}

/// The sample count of each interval tagged `tag` in an HdrHistogram interval log.
fn hlog_counts(log: &str, tag: &str) -> Vec<u64> {
    use base64::Engine as _;
    use hdrhistogram::serialization::Deserializer;
    let prefix = format!("Tag={tag},");
    log.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|rest| {
            let encoded = rest.rsplit(',').next().expect("histogram field");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("base64");
            let histogram: hdrhistogram::Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .expect("V2 histogram");
            histogram.len()
        })
        .collect()
}

/// The schema can fail: a report missing its verdict, or with a state it does not know, breaks it.
#[test]
fn the_report_schema_rejects_a_report_that_breaks_it() {
    let reports = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.schema.json")).expect("schema"))
            .expect("JSON");
    assert_eq!(
        schema["properties"]["schema_version"]["const"], 1,
        "the schema is versioned with report.json's schema_version"
    );
    let good = serde_json::json!({
        "schema_version": 1,
        "run": {"id": "x", "scenario": "s", "seed": 1, "started_at": "t", "finished_at": "t",
                "duration_s": 1.0, "backend": "local", "aivo_load_version": "0", "nats_server_version": "2",
                "interrupted": false, "state": "finished"},
        "counts": {"intended": 1, "attempted": 1, "acked": 1, "failed": 0, "unknown": 0, "never_sent": 0, "errors": {}},
        "latency": {}, "throughput": {}, "timeline": [], "subjects": [], "streams": [], "ledger": [],
        "retention": [], "faults": [], "thresholds": [], "checks": [],
        "verdict": {"passed": true, "failures": []}, "histograms": {}
    });
    // The minimal report lacks required latency fields: exactly those are named.
    let errors = crate::support::schema_errors(&good);
    assert!(
        errors.iter().all(|e| e.contains("/latency")
            || e.contains("/throughput")
            || e.contains("/histograms")),
        "{errors:?}"
    );
    let mut bad = good.clone();
    bad.as_object_mut().expect("object").remove("verdict");
    bad["run"]["state"] = "paused".into();
    let errors = crate::support::schema_errors(&bad);
    assert!(errors.iter().any(|e| e.contains("verdict")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("/run/state")),
        "{errors:?}"
    );
}
