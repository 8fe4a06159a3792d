//! The DLQ in whole runs: the `dlq-poison` scenario routes exactly its injected poison, and the DLQ
//! check fails a run when a valid event of the run is put into the DLQ from outside the harness.

use std::time::Duration;

use aivo_load::consumers::dlq::{self, DeadLetter};
use aivo_load::event::ledger::identity_of;
use aivo_load::event::poison::PoisonKind;
use futures::StreamExt;

use crate::support::TestCluster;
use crate::support::{aivo, report_json, text, BIN};

/// The verdict's failures that are not latency thresholds (a debug build on a shared 2-core machine
/// may miss a latency threshold; no check may fail).
fn failures_other_than_latency(report: &serde_json::Value) -> Vec<String> {
    report["verdict"]["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f.as_str())
        .filter(|f| !f.contains("publish.latency"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_poison_routes_exactly_the_injected_poison_once_per_consumer() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = aivo(
        &[
            "run",
            "dlq-poison",
            "--duration",
            "20s",
            "--rate-scale",
            "0.5",
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(180),
    )
    .await;
    let log = text(&output);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{log}");
    let report = report_json(reports.path());
    assert_eq!(
        failures_other_than_latency(&report),
        Vec::<String>::new(),
        "{log}"
    );
    let dlq = &report["dlq"];
    assert_eq!(dlq["passed"], true, "{dlq}");
    let injected = dlq["injected"].as_u64().expect("injected");
    // 2% of ~7,000 events; both learning and focus are read by the indexer and analytics.
    assert!((60..=220).contains(&injected), "{dlq}");
    assert_eq!(dlq["expected"].as_u64(), Some(2 * injected), "{dlq}");
    assert_eq!(dlq["entries"].as_u64(), Some(2 * injected), "{dlq}");
    assert_eq!(
        dlq["verified_by_fetch"].as_u64(),
        Some(2 * injected),
        "{dlq}"
    );
    for zero in ["missing", "unexpected", "duplicated", "bad_headers"] {
        assert_eq!(dlq[zero], 0, "{zero}: {dlq}");
    }
    // The indexer was SIGKILLed mid-run and came back (the scenario's kill-indexer).
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(
        faults
            .iter()
            .all(|f| f["fault"] == "kill-indexer" && f["confirmed"] == true),
        "{faults:?}"
    );
    let detail = |i: usize, text: &str| {
        faults[i]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(text))
    };
    assert!(
        detail(0, "killed (SIGKILL) and gone") && detail(1, "indexer back"),
        "{faults:?}"
    );
    assert!(
        report["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|r| r["faults"].as_array().is_some_and(|f| !f.is_empty())),
        "the kill is on the timeline"
    );
    // End-to-end latency per second is on the timeline, and the seconds of the kill stand out.
    let timeline = report["timeline"].as_array().expect("timeline");
    let p99s: Vec<f64> = timeline
        .iter()
        .filter_map(|r| r["end_to_end_p99_ms"].as_f64())
        .collect();
    assert!(p99s.len() + 2 >= timeline.len(), "{timeline:?}");
    assert!(
        p99s.iter().copied().fold(0.0, f64::max) > 2000.0,
        "the indexer was down for ~3 s: {p99s:?}"
    );
    // Every valid event reached Postgres exactly once despite the kill; no poison did.
    let acked = report["counts"]["acked"].as_u64().expect("acked");
    let indexer = &report["indexer"];
    assert_eq!(
        indexer["rows"].as_u64(),
        Some(acked - injected),
        "{indexer}"
    );
    let ledger = &indexer["ledger"];
    assert_eq!(ledger["passed"], true, "{indexer}");
    assert_eq!(ledger["lost"], 0, "{indexer}");
    assert_eq!(ledger["duplicated"], 0, "{indexer}");
    assert!(
        log.contains("dlq ...") && log.contains("no valid event in the DLQ"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_event_put_into_the_dlq_from_outside_fails_the_run() {
    let cluster = TestCluster::start().await;
    let servers = cluster.endpoints().server_list();
    let scratch = tempfile::tempdir().expect("tempdir");
    let client = async_nats::connect(servers.split(',').next().expect("a server"))
        .await
        .expect("connect");
    // Subscribed before the run starts, so its first valid focus event is seen.
    let mut focus = client.subscribe("focus.>").await.expect("subscribe");
    // dlq-poison without its kill-indexer (faults are refused on an external cluster).
    let scenario = scratch.path().join("poison-external.toml");
    std::fs::write(
        &scenario,
        r#"
name = "poison-external"
duration = "15s"
seed = 53
[population]
tenants = 10
learners = 1000
[publishers]
count = 2
[[traffic]]
domain = "learning"
rate = "200/s"
poison = "2%"
[[traffic]]
domain = "focus"
rate = "500/s"
poison = "2%"
[consumers]
indexer = true
analytics = true
[thresholds]
"dlq.unexpected" = "== 0"
"#,
    )
    .expect("scenario file");
    let scenario = scenario.to_str().expect("utf-8 path").to_string();
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path").to_string();
    let mut command = tokio::process::Command::new(BIN);
    command
        .args([
            "run",
            &scenario,
            "--backend",
            "external",
            "--server",
            &servers,
            "--duration",
            "15s",
            "--rate-scale",
            "0.3",
            "--reports-dir",
            &reports_dir,
        ])
        .env_remove("NATS_URL")
        .env_remove("DATABASE_URL")
        .kill_on_drop(true);
    let run = tokio::spawn(async move { command.output().await });

    // From outside the harness: a buggy consumer dead-letters a valid event of the run.
    let valid = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = focus.next().await {
            let poison = message
                .headers
                .as_ref()
                .is_some_and(|h| h.get("Aivo-Poison").is_some());
            if !poison && identity_of(message.headers.as_ref(), &message.payload).is_some() {
                return message;
            }
        }
        panic!("the subscription ended");
    })
    .await
    .expect("a valid focus event of the run");
    let ledger = identity_of(valid.headers.as_ref(), &valid.payload)
        .map(|i| i.to_string())
        .expect("ledger identity");
    let js = async_nats::jetstream::new(client.clone());
    dlq::route(
        &js,
        &DeadLetter {
            subject: valid.subject.to_string(),
            stream: "FOCUS".into(),
            stream_seq: 1,
            consumer: "indexer".into(),
            deliveries: 5,
            reason: PoisonKind::MaxDeliveries,
            error: "injected by the test".into(),
            payload: valid.payload.clone(),
            headers: valid.headers.clone(),
        },
    )
    .await
    .expect("dead letter published");

    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the run finishes")
        .expect("join")
        .expect("run");
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let report = report_json(reports.path());
    let dlq = &report["dlq"];
    assert_eq!(dlq["passed"], false, "{dlq}");
    assert_eq!(dlq["unexpected"], 1, "{dlq}");
    assert_eq!(dlq["missing"], 0, "{dlq}");
    let (_, rest) = ledger.split_once('/').expect("run/publisher/seq");
    let (publisher, seq) = rest.split_once('/').expect("publisher/seq");
    let problem = &dlq["problems"][0];
    assert_eq!(problem["publisher"].to_string(), publisher, "{problem}");
    assert_eq!(problem["seq"].to_string(), seq, "{problem}");
    assert!(
        problem["why"]
            .as_str()
            .is_some_and(|w| w.contains("valid event")),
        "{problem}"
    );
    let failures = failures_other_than_latency(&report);
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("dlq: 1 valid event(s) in the DLQ")),
        "{failures:?}"
    );
    // Only the DLQ check (and its threshold) fails: the streams and `events` hold every event once.
    assert!(
        failures
            .iter()
            .all(|f| f.starts_with("dlq") || f.contains("dlq.unexpected")),
        "{failures:?}"
    );
}
