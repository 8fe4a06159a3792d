//! Stream snapshots and restores through the JetStream API (`topology::backup`) and the
//! disaster-recovery drill (`run/drill.rs`, `checks::recovery`), on real nats-server clusters: a
//! snapshot restored into a cluster that lost the stream gives every message back; a snapshot that
//! lost a chunk is refused; the `disaster-recovery` scenario passes on the open and the production
//! profile with its recovery point and time reported, and fails naming the events when the
//! restored streams lack some acknowledged before the snapshot.

use std::time::Duration;

use aivo_load::topology::backup;

use crate::support::{self, TestCluster};

/// A stream of `count` messages on a fresh cluster, snapshotted into `dir`, then deleted.
async fn snapshot_then_lose(
    cluster: &TestCluster,
    count: u64,
    dir: &std::path::Path,
) -> (async_nats::jetstream::Context, backup::StreamBackup) {
    let js = aivo_load::topology::connect(&cluster.endpoints().server_list())
        .await
        .expect("connect");
    let config = async_nats::jetstream::stream::Config {
        name: "FOCUS".into(),
        subjects: vec!["focus.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    support::create_stream_with_retry(&js, config, Duration::from_secs(30))
        .await
        .expect("FOCUS");
    // Incompressible payloads, so the snapshot spans several chunks.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..count {
        let payload: Vec<u8> = (0..2_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        js.publish(format!("focus.ping.{i}"), payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let taken = tokio::time::timeout(
        Duration::from_secs(30),
        backup::snapshot_stream(&js.client(), "FOCUS", dir),
    )
    .await
    .expect("the snapshot finishes in time")
    .expect("a snapshot");
    js.delete_stream("FOCUS").await.expect("delete FOCUS");
    (js, taken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restored_into_a_cluster_that_lost_the_stream_gives_every_message_back() {
    let cluster = TestCluster::start().await;
    let dir = cluster.dir().join("backup-FOCUS");
    // 2 000 messages of 2 kB: several 128 KiB chunks, each acked.
    let (js, taken) = snapshot_then_lose(&cluster, 2_000, &dir).await;
    assert_eq!(taken.meta.messages(), 2_000);
    assert_eq!(taken.meta.last_seq(), 2_000);
    assert!(taken.chunks > 2, "{taken:?}");
    assert!(dir.join(backup::META_FILE).is_file() && dir.join(backup::DATA_FILE).is_file());
    // What a later process does: read the backup from disk and restore it.
    let read = backup::read_backup("FOCUS", &dir).expect("the backup reads back");
    let restored = tokio::time::timeout(
        Duration::from_secs(60),
        backup::restore_stream(&js.client(), &read),
    )
    .await
    .expect("the restore finishes in time")
    .expect("restored");
    assert_eq!(
        (restored.messages, restored.first_seq, restored.last_seq),
        (2_000, 1, 2_000)
    );
    let mut stream = js.get_stream("FOCUS").await.expect("FOCUS is back");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 2_000);
    assert_eq!(info.config.num_replicas, 3);
    let last = stream
        .get_raw_message(2_000)
        .await
        .expect("the last message");
    assert_eq!(last.subject.as_str(), "focus.ping.1999");
    // A restore into a cluster that has the stream is refused, not merged.
    let again = backup::restore_stream(&js.client(), &read).await;
    assert!(again.is_err(), "{again:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_missing_a_chunk_is_refused_by_the_restore() {
    let cluster = TestCluster::start().await;
    let dir = cluster.dir().join("backup-FOCUS");
    let (js, taken) = snapshot_then_lose(&cluster, 500, &dir).await;
    // Drop the second 128 KiB chunk of the snapshot.
    const CHUNK: usize = 128 * 1024;
    let path = dir.join(backup::DATA_FILE);
    let data = std::fs::read(&path).expect("data");
    assert!(data.len() > 3 * CHUNK, "{} bytes", data.len());
    let without = [&data[..CHUNK], &data[2 * CHUNK..]].concat();
    std::fs::write(&path, without).expect("write");
    let damaged = backup::read_backup("FOCUS", &dir).expect("reads");
    assert_eq!(damaged.meta.messages(), taken.meta.messages());
    let restored = tokio::time::timeout(
        Duration::from_secs(60),
        backup::restore_stream(&js.client(), &damaged),
    )
    .await
    .expect("the restore ends in time");
    assert!(
        restored.is_err(),
        "a damaged snapshot restored: {restored:?}"
    );
    cluster.shutdown().await;
}

/// `aivo-load run disaster-recovery --duration 14s` (the snapshot at 10 s) in `reports`.
async fn drill(reports: &std::path::Path, extra: &[&str]) -> (std::process::Output, String) {
    let mut args = vec![
        "run",
        "disaster-recovery",
        "--duration",
        "14s",
        "--reports-dir",
        reports.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let output = support::aivo(&args, &[], Duration::from_secs(85)).await;
    let log = support::text(&output);
    (output, log)
}

/// The streams the run wrote, from the drill's report.
fn written(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["disaster_recovery"]["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| s["acked_before"].as_u64().unwrap_or(0) > 0)
        .cloned()
        .collect()
}

async fn the_drill_passes_on(profile: &str) {
    let reports = tempfile::tempdir().expect("tempdir");
    let (output, log) = drill(reports.path(), &["--profile", profile]).await;
    assert_eq!(output.status.code(), Some(0), "{log}");
    let report = support::report_json(reports.path());
    let dr = &report["disaster_recovery"];
    assert_eq!(dr["passed"], true, "{dr:#}");
    assert_eq!(
        dr["streams"].as_array().expect("streams").len(),
        5,
        "{dr:#}"
    );
    let streams = written(&report);
    let mut names: Vec<&str> = streams
        .iter()
        .filter_map(|s| s["stream"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["FOCUS", "LEARNING"], "{dr:#}");
    let mut after = 0;
    for s in &streams {
        assert_eq!(s["missing_before"], 0, "{s:#}");
        assert_eq!(s["duplicated"], 0, "{s:#}");
        // The snapshot holds what was acked before it, and perhaps a few acked just after the cut.
        let before = s["acked_before"].as_u64().expect("acked_before");
        let messages = s["snapshot_messages"].as_u64().expect("snapshot_messages");
        let restored_after = s["restored_after"].as_u64().expect("restored_after");
        assert_eq!(before + restored_after, messages, "{s:#}");
        assert_eq!(s["restored_messages"].as_u64(), Some(messages), "{s:#}");
        after += s["lost_after"].as_u64().expect("lost_after");
    }
    // About 4 s of traffic (300 events/s) came after the snapshots: the recovery point.
    assert_eq!(dr["recovery_point_events"].as_u64(), Some(after));
    assert!(after > 300, "{dr:#}");
    let point = dr["recovery_point_s"].as_f64().expect("recovery_point_s");
    assert!(point > 3.0, "{dr:#}");
    assert!(dr["recovery_time_s"].as_f64().expect("recovery_time_s") > 0.0);
    let lines = report["checks"].as_array().expect("checks");
    assert!(lines
        .iter()
        .any(|c| c["name"] == "disaster-recovery FOCUS" && c["passed"] == true));
    let run_dir = crate::support::run_dir(reports.path());
    for stream in ["FOCUS", "LEARNING", "HOMEWORK", "RECOMMENDATION", "DLQ"] {
        let dir = run_dir.join("backup").join(stream);
        assert!(dir.join(backup::DATA_FILE).is_file(), "{}", dir.display());
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).expect("summary");
    assert!(summary.contains("**recovery time**"), "{summary}");
    assert!(log.contains("recovery point"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disaster_recovery_drill_restores_every_event_acked_before_the_snapshot() {
    the_drill_passes_on("open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disaster_recovery_drill_passes_on_the_production_profile() {
    the_drill_passes_on("production").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_lacking_events_acked_before_the_snapshot_fails_naming_them() {
    let reports = tempfile::tempdir().expect("tempdir");
    // Delete the first 5 messages the run wrote to each restored stream.
    let (output, log) = drill(reports.path(), &["--drill-tamper", "5"]).await;
    assert_eq!(output.status.code(), Some(1), "{log}");
    let report = support::report_json(reports.path());
    let dr = &report["disaster_recovery"];
    assert_eq!(dr["passed"], false, "{dr:#}");
    for s in written(&report) {
        assert_eq!(s["passed"], false, "{s:#}");
        assert_eq!(s["missing_before"], 5, "{s:#}");
        let missing = s["missing_events"].as_array().expect("missing_events");
        assert_eq!(missing.len(), 5, "{s:#}");
        // The first events of the run: acked in its first seconds, before the snapshot (10 s).
        for e in missing {
            let acked = e["acked_between_s"].as_array().expect("an ack time");
            assert!(acked[1].as_u64().expect("to") <= 10, "{e:#}");
        }
    }
    let failures = report["verdict"]["failures"].as_array().expect("failures");
    assert!(
        failures.iter().any(|f| f
            .as_str()
            .is_some_and(|f| f.starts_with("disaster-recovery FOCUS")
                && f.contains("missing after the restore: publisher"))),
        "{failures:#?}"
    );
    // Every other check of the run (on the cluster before the drill) still passed.
    assert!(
        failures.iter().all(|f| f
            .as_str()
            .is_some_and(|f| f.starts_with("disaster-recovery"))),
        "{failures:#?}"
    );
    assert!(log.contains("missing: publisher"), "{log}");
}
