//! Segmented workers (`run --workers N`, `run --segment I/N`, `report merge`) on real local
//! clusters: the merged report is one run's, checks included; a worker SIGKILLed mid-run is named
//! lost, never counted as lost events.

use std::time::Duration;

use crate::support::{
    aivo, assert_passed_but_for, read_report, schema_errors, text, BackgroundRun, TestCluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_merge_into_one_report_whose_checks_pass() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = aivo(
        &[
            "run",
            "focus-burst",
            "--workers",
            "3",
            "--duration",
            "6s",
            "--rate-scale",
            "0.1",
            "--reports-dir",
            reports.path().to_str().expect("utf-8"),
        ],
        &[],
        Duration::from_secs(120),
    )
    .await;
    let log = text(&output);
    let dir = crate::support::run_dir(reports.path());
    let report = read_report(&dir.join("report.json"));
    // Three debug-build workers share 2 cores here: latency is not what this test is about.
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    let workers = &report["run"]["workers"];
    assert_eq!(workers["count"], 3, "{log}");
    let segments = workers["segments"].as_array().expect("segments");
    assert!(
        segments.iter().all(|s| s["state"] == "complete"),
        "{segments:?}"
    );
    // The merged counts are the sum of the workers' and the whole scenario's.
    let acked_by_workers: u64 = segments
        .iter()
        .map(|s| s["acked"].as_u64().expect("acked"))
        .sum();
    let counts = &report["counts"];
    assert_eq!(counts["acked"].as_u64(), Some(acked_by_workers), "{log}");
    assert_eq!(
        counts["attempted"].as_u64().expect("attempted")
            + counts["never_sent"].as_u64().expect("n"),
        counts["intended"].as_u64().expect("intended"),
        "the segments together send the whole run's schedule: {log}"
    );
    // Checked once over every worker's ledgers: the stream holds exactly what they acked.
    let streams = report["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "{log}");
    assert_eq!(streams[0]["passed"], true, "{streams:?}");
    let ledgers = report["ledger"].as_array().expect("ledger");
    assert_eq!(ledgers.len(), 1, "{log}");
    assert_eq!(ledgers[0]["passed"], true, "{ledgers:?}");
    // The timeline's counts add up to the whole run's, second by second from one start.
    let timeline = report["timeline"].as_array().expect("timeline");
    let attempted: u64 = timeline
        .iter()
        .map(|r| r["attempted"].as_u64().expect("attempted"))
        .sum();
    assert_eq!(Some(attempted), counts["attempted"].as_u64());
    assert!(dir.join("latency.hlog").is_file());
    for index in 1..=3 {
        let part = dir.join(format!("segment-{index}-of-3"));
        assert!(part.join("partial.json").is_file(), "{}", part.display());
        let partial = read_report(&part.join("report.json"));
        assert_eq!(partial["run"]["state"], "partial");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_is_named_lost_not_its_events() {
    // With the coordinator's consumers and chaos: the lost worker's events, in the streams, in
    // Postgres and (its poison) in the DLQ but in no ledger, fail none of those checks either.
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("workers-coordinated.toml");
    std::fs::write(&scenario, COORDINATED).expect("scenario");
    let out = dir.path().join("reports");
    let mut run = BackgroundRun::spawn(&[
        "run",
        scenario.to_str().expect("utf-8"),
        "--workers",
        "3",
        "--reports-dir",
        out.to_str().expect("utf-8"),
    ]);
    let line = run.wait_for_line("worker 2/3 started (pid ").await;
    let pid: i32 = line
        .rsplit("(pid ")
        .next()
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    // The workers start their load 10 s after the spawn; kill this one a few seconds into it.
    tokio::time::sleep(Duration::from_secs(14)).await;
    // SAFETY: kill(2) on the worker the run just started and reported.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
    let code = run.finish().await;
    assert_eq!(code, Some(1), "a lost worker fails the verdict");
    let dir = crate::support::run_dir(&out);
    let report = read_report(&dir.join("report.json"));
    let failures: Vec<&str> = report["verdict"]["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f.as_str().expect("text"))
        .collect();
    assert!(
        failures[0].starts_with("worker lost: segment 2/3"),
        "{failures:?}"
    );
    assert!(
        failures.iter().all(|f| !f.contains("events lost")
            && !f.starts_with("ledger")
            && !f.starts_with("✗ ledger")),
        "the lost worker's events are not counted lost: {failures:?}"
    );
    let segments = report["run"]["workers"]["segments"]
        .as_array()
        .expect("segments");
    assert_eq!(segments[1]["state"], "incomplete", "{segments:?}");
    assert_eq!(segments[0]["state"], "complete", "{segments:?}");
    let ledgers = report["ledger"].as_array().expect("ledger");
    assert!(
        ledgers.iter().all(|l| l["passed"] == true),
        "the reporting workers' ledgers pass: {ledgers:?}"
    );
    let indexer = &report["indexer"]["ledger"];
    assert_eq!(indexer["passed"], true, "{indexer}");
    assert_eq!(indexer["unexpected"], 0, "{indexer}");
    let dlq = &report["dlq"];
    assert_eq!(dlq["unexpected"], 0, "{dlq}");
    assert_eq!(dlq["missing"], 0, "{dlq}");
    assert!(
        failures
            .iter()
            .all(|f| !f.contains("dlq") && !f.contains("events (Postgres)")),
        "{failures:?}"
    );
}

/// Three publishers per source (so three workers), poison in both streams, the indexer and
/// analytics beside them, the indexer killed and a node killed while the workers publish.
pub const COORDINATED: &str = r#"
name = "workers-coordinated"
description = "Three workers; consumers, DLQ and chaos run by the coordinator."
duration = "14s"
seed = 61

[population]
tenants = 4
learners = 300

[publishers]
count = 3
in_flight = 64
ack_timeout = "5s"

[[traffic]]
domain = "learning"
rate = "60/s"
poison = "3%"

[[traffic]]
domain = "focus"
rate = "120/s"
poison = "3%"

[consumers]
indexer = true
analytics = true
catch_up_timeout = "90s"

[[chaos]]
at = "3s"
fault = "kill-indexer"
target = "indexer"
for = "3s"

[[chaos]]
at = "5s"
fault = "kill"
target = "nats3"
for = "4s"

# No error-rate threshold: when the killed node leads a stream, the stream takes no writes until
# a new leader is elected (nats-server's Raft waits 4-9 s) or the node is back, and which node
# leads is up to the cluster. Publishes that failed are in the ledgers as failed, not lost.
[thresholds]
"dlq.missing" = "== 0"
"dlq.unexpected" = "== 0"
"dlq.injected" = "> 0"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_with_the_coordinators_consumers_and_chaos_and_every_check_is_merged() {
    let reports = tempfile::tempdir().expect("tempdir");
    let scenario = reports.path().join("workers-coordinated.toml");
    std::fs::write(&scenario, COORDINATED).expect("scenario");
    let out = reports.path().join("reports");
    let output = aivo(
        &[
            "run",
            scenario.to_str().expect("utf-8"),
            "--workers",
            "3",
            "--reports-dir",
            out.to_str().expect("utf-8"),
        ],
        &[],
        Duration::from_secs(300),
    )
    .await;
    let log = text(&output);
    let dir = crate::support::run_dir(&out);
    let report = read_report(&dir.join("report.json"));
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    assert!(
        report["run"]["workers"]["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .all(|s| s["state"] == "complete"),
        "{log}"
    );
    // The coordinator's faults, on the workers' clock: both applied and recovered.
    let faults = &report["fault_check"];
    assert_eq!(faults["applied"], 2, "{faults}\n{log}");
    assert_eq!(faults["recovered"], 2, "{faults}\n{log}");
    let kinds: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|f| f["fault"].as_str())
        .collect();
    // Each on time: the kill's revert (due at 9 s) did not wait for the indexer to catch up
    // after its restart (due at 6 s).
    let kill_revert = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .find(|f| f["fault"] == "kill" && f["phase"] == "revert")
        .expect("the kill's revert");
    let at = kill_revert["requested_s"].as_f64().expect("requested_s");
    assert!((8.5..12.0).contains(&at), "{kill_revert}");
    assert!(
        kinds.contains(&"kill-indexer") && kinds.contains(&"kill"),
        "{kinds:?}"
    );
    // The indexer caught up on every worker's valid events: Postgres holds each acked one once.
    let indexer = &report["indexer"];
    assert_eq!(indexer["ledger"]["passed"], true, "{indexer}\n{log}");
    let acked = report["counts"]["acked"].as_u64().expect("acked");
    let dlq = &report["dlq"];
    let injected = dlq["injected"].as_u64().expect("injected");
    assert!(injected > 0, "{dlq}");
    // (An event whose ack the node kill swallowed but that was stored is "recovered".)
    let recovered = indexer["ledger"]["recovered"].as_u64().expect("recovered");
    assert_eq!(
        indexer["rows"].as_u64(),
        Some(acked + recovered - injected),
        "every valid acked event of the three workers, once: {indexer}"
    );
    // The DLQ over all three workers' poison: each once per consumer reading its stream.
    assert_eq!(dlq["passed"], true, "{dlq}\n{log}");
    assert_eq!(dlq["missing"], 0, "{dlq}");
    assert_eq!(dlq["unexpected"], 0, "{dlq}");
    // The replicas compared on the coordinator's cluster after the node came back.
    let replicas = report["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 2, "LEARNING and FOCUS: {replicas:?}");
    assert!(replicas.iter().all(|r| r["passed"] == true), "{replicas:?}");
    // The workers drove load only.
    for index in 1..=3 {
        let part = dir.join(format!("segment-{index}-of-3"));
        assert!(
            !part.join("faults.jsonl").exists(),
            "no worker applied a fault"
        );
        assert!(
            !part.join("indexer.log").exists(),
            "no worker ran the indexer"
        );
    }
    assert!(dir.join("faults.jsonl").is_file());
    assert!(dir.join("indexer.log").is_file());
}

/// The path a segmented run takes on machines of its own (the Kubernetes Jobs): workers by hand
/// against an existing cluster, the indexer and analytics deployed beside it, then `report merge`
/// with the indexer's Postgres and the nodes' monitoring endpoints makes every check a run makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_by_hand_judges_the_consumers_beside_the_cluster_and_every_replica() {
    let cluster = crate::support::TestCluster::start().await;
    let dir = cluster.dir().to_path_buf();
    let servers = cluster.endpoints().client_urls().join(",");
    let monitor: Vec<String> = cluster
        .endpoints()
        .nodes
        .iter()
        .map(|n| n.monitor_url.clone())
        .collect();
    let pg = aivo_load::consumers::EmbeddedPostgres::start(&dir.join("pg"))
        .await
        .expect("postgres");
    let url = pg.url();
    let scenario = dir.join("workers-coordinated.toml");
    std::fs::write(&scenario, COORDINATED).expect("scenario");
    let init = aivo(
        &["init", "--server", &servers],
        &[],
        Duration::from_secs(60),
    )
    .await;
    assert!(init.status.success(), "{}", text(&init));
    // The consumers as deployed services, not children of any run.
    let consumer = |kind: &str| {
        let log = std::fs::File::create(dir.join(format!("{kind}.log"))).expect("log");
        tokio::process::Command::new(crate::support::BIN)
            .args([kind, "--server", &servers, "--postgres-url", &url])
            .env_remove("NATS_URL")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn consumer")
    };
    let mut indexer = consumer("indexer");
    let mut analytics = consumer("analytics");
    let reports = dir.join("reports");
    let start_at = (time::OffsetDateTime::now_utc() + Duration::from_secs(8))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    let worker = |index: u32| {
        let segment = format!("{index}/2");
        let args: Vec<String> = [
            "run",
            scenario.to_str().expect("utf-8"),
            "--backend",
            "external",
            "--server",
            &servers,
            "--segment",
            &segment,
            "--run-id",
            "by-hand",
            "--start-at",
            &start_at,
            "--no-chaos",
            "--no-consumers",
            "--checkpoint",
            "off",
            "--reports-dir",
            reports.to_str().expect("utf-8"),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            aivo(&args, &[], Duration::from_secs(120)).await
        }
    };
    let (one, two) = tokio::join!(worker(1), worker(2));
    assert!(one.status.success(), "{}", text(&one));
    assert!(two.status.success(), "{}", text(&two));
    let run_dir = reports.join("by-hand");
    let merge = |out: &str| {
        let args: Vec<String> = [
            "report",
            "merge",
            run_dir.to_str().expect("utf-8"),
            "--server",
            &servers,
            "--postgres-url",
            &url,
            "--monitor",
            &monitor.join(","),
            "--out",
            dir.join(out).to_str().expect("utf-8"),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            aivo(&args, &[], Duration::from_secs(180)).await
        }
    };
    let output = merge("merged").await;
    let log = text(&output);
    let report = read_report(&dir.join("merged").join("report.json"));
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    let indexer_report = &report["indexer"];
    assert_eq!(
        indexer_report["ledger"]["passed"], true,
        "{indexer_report}\n{log}"
    );
    let acked = report["counts"]["acked"].as_u64().expect("acked");
    let dlq = &report["dlq"];
    let injected = dlq["injected"].as_u64().expect("injected");
    assert!(injected > 0, "{dlq}");
    let recovered = indexer_report["ledger"]["recovered"]
        .as_u64()
        .expect("recovered");
    assert_eq!(
        indexer_report["rows"].as_u64(),
        Some(acked + recovered - injected),
        "{indexer_report}"
    );
    assert_eq!(dlq["passed"], true, "{dlq}");
    let replicas = report["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    assert!(replicas.iter().all(|r| r["passed"] == true), "{replicas:?}");
    // The check fails on what it guards: an indexed event gone from Postgres is named lost.
    let client = aivo_load::consumers::connect_postgres(&url)
        .await
        .expect("connect");
    let deleted = client
        .execute(
            "DELETE FROM events WHERE event_id = (SELECT event_id FROM events LIMIT 1)",
            &[],
        )
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    let output = merge("merged-after-delete").await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = read_report(&dir.join("merged-after-delete").join("report.json"));
    let ledger = &report["indexer"]["ledger"];
    assert_eq!(ledger["passed"], false, "{ledger}");
    assert_eq!(ledger["lost"], 1, "{ledger}");
    let _ = indexer.kill().await;
    let _ = analytics.kill().await;
    cluster.shutdown().await;
}

/// A pod of a Kubernetes Indexed Job has no shell to add one to `JOB_COMPLETION_INDEX`: the
/// binary takes the 0-based index from the environment itself (`--segment-from-env VAR/N`), as
/// `deploy/k8s/workers-job.yaml` runs it, and refuses an index the Job's N does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_its_segment_from_the_indexed_jobs_completion_index() {
    let cluster = TestCluster::start().await;
    let servers = cluster.endpoints().server_list();
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8");
    let args = [
        "run",
        "focus-burst",
        "--backend",
        "external",
        "--server",
        &servers,
        "--segment-from-env",
        "JOB_COMPLETION_INDEX/3",
        "--run-id",
        "k8s-index",
        "--duration",
        "3s",
        "--rate-scale",
        "0.05",
        "--checkpoint",
        "off",
        "--reports-dir",
        reports_dir,
    ];
    let refused = aivo(
        &args,
        &[("JOB_COMPLETION_INDEX", "3")],
        Duration::from_secs(30),
    )
    .await;
    let log = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{log}");
    assert!(
        log.contains("JOB_COMPLETION_INDEX is 3, out of range for 3 segments (0..=2)"),
        "{log}"
    );
    let unset = aivo(&args, &[], Duration::from_secs(30)).await;
    assert_eq!(unset.status.code(), Some(2), "{}", text(&unset));
    assert!(text(&unset).contains("JOB_COMPLETION_INDEX is not set"));

    let output = aivo(
        &args,
        &[("JOB_COMPLETION_INDEX", "1")],
        Duration::from_secs(90),
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    // Index 1 is segment 2 of 3: its dir, its partial report, its share of the publishers.
    let dir = reports.path().join("k8s-index").join("segment-2-of-3");
    let partial: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("partial.json")).expect("partial.json"),
    )
    .expect("partial JSON");
    assert_eq!(
        partial["segment"],
        serde_json::json!({"index": 2, "count": 3}),
        "{log}"
    );
    let report = read_report(&dir.join("report.json"));
    assert_eq!(report["run"]["state"], "partial");
    assert!(
        report["counts"]["acked"].as_u64().is_some_and(|n| n > 0),
        "{log}"
    );
}

/// `--workers 3 --profile production`: the run's cluster has TLS and accounts, and each worker is
/// handed the profile's dir (`--profile-dir`, a path: no secret on a command line), so its
/// publishers connect as their domain's user and its admin connection (declare, clock probe) as
/// the admin. Given only the admin's credentials, as a plain external run would be, the workers'
/// publishes time out (the admin may not publish to `focus.>`) and no clock offset is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_production_profile_workers_merge_into_one_report_whose_checks_pass() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = aivo(
        &[
            "run",
            "focus-burst",
            "--workers",
            "3",
            "--profile",
            "production",
            "--duration",
            "5s",
            "--rate-scale",
            "0.1",
            "--reports-dir",
            reports.path().to_str().expect("utf-8"),
        ],
        &[],
        Duration::from_secs(120),
    )
    .await;
    let log = text(&output);
    let dir = crate::support::run_dir(reports.path());
    assert!(
        dir.join("cluster/security/profile.json").is_file(),
        "a production-profile cluster: {log}"
    );
    let report = read_report(&dir.join("report.json"));
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    let counts = &report["counts"];
    assert_eq!(counts["acked"], counts["intended"], "{log}");
    let segments = report["run"]["workers"]["segments"]
        .as_array()
        .expect("segments");
    assert_eq!(segments.len(), 3, "{log}");
    for segment in segments {
        assert_eq!(segment["state"], "complete", "{segments:?}");
        assert!(
            segment["clock_offset_ms"].is_number(),
            "the admin probed the clock: {segments:?}"
        );
    }
    let ledgers = report["ledger"].as_array().expect("ledger");
    assert!(ledgers.iter().all(|l| l["passed"] == true), "{ledgers:?}");
    let streams = report["streams"].as_array().expect("streams");
    assert!(streams.iter().all(|s| s["passed"] == true), "{streams:?}");
    // The coordinator probed its cluster's security after the merge.
    let security = &report["security"];
    assert_eq!(security["passed"], true, "{security}\n{log}");
}

/// A worker on a cluster secured by aivo-load's production profile needs only the profile's
/// public side and the users' files — `profile.json`, `ca.pem`, `users/` — wherever they are
/// mounted (a Kubernetes secret, not the dir the profile was made in, and without the CA's or the
/// nodes' keys): `--profile-dir COPY` finds them there. A whole run is refused the flag (its
/// security probes need monitoring endpoints an external cluster does not give).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_connects_with_a_copy_of_the_profiles_users_mounted_elsewhere() {
    let cluster = TestCluster::start_with(aivo_load::cluster::ClusterProfile::Production).await;
    let servers = cluster.endpoints().server_list();
    let made_in = cluster
        .endpoints()
        .security
        .clone()
        .expect("a production-profile cluster");
    let copy = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(copy.path().join("users")).expect("users/");
    for file in ["profile.json", "ca.pem"] {
        std::fs::copy(made_in.join(file), copy.path().join(file)).expect("copy");
    }
    for entry in std::fs::read_dir(made_in.join("users")).expect("users") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        std::fs::copy(&path, copy.path().join("users").join(name)).expect("copy");
    }
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8");
    let profile_dir = copy.path().to_str().expect("utf-8");
    let mut args = vec![
        "run",
        "focus-burst",
        "--backend",
        "external",
        "--server",
        &servers,
        "--profile-dir",
        profile_dir,
        "--duration",
        "3s",
        "--rate-scale",
        "0.05",
        "--checkpoint",
        "off",
        "--reports-dir",
        reports_dir,
    ];
    let whole = aivo(&args, &[], Duration::from_secs(30)).await;
    assert_eq!(whole.status.code(), Some(2), "{}", text(&whole));
    assert!(text(&whole).contains("--profile-dir is for a worker of a segmented run"));

    args.extend(["--segment", "1/3", "--run-id", "profile-copy"]);
    let output = aivo(&args, &[], Duration::from_secs(90)).await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let dir = reports.path().join("profile-copy").join("segment-1-of-3");
    let report = read_report(&dir.join("report.json"));
    let counts = &report["counts"];
    assert!(counts["acked"].as_u64().is_some_and(|n| n > 0), "{log}");
    assert_eq!(counts["acked"], counts["attempted"], "{log}");
    let partial: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("partial.json")).expect("partial.json"),
    )
    .expect("partial JSON");
    assert!(
        partial["clock"].is_object(),
        "the admin probed the clock: {}",
        partial["clock_error"]
    );
}
