//! `run SCENARIO --workers N --backend docker` (issue #16): the workers are containers of the
//! locally built worker image (`FROM scratch` + this binary and the libraries it loads) on the
//! compose project's client network; their partial reports, written into the bind-mounted run dir,
//! merge into one report whose checks pass, and no worker container (nor the project) is left.
//! Gated like `docker.rs`.

use std::path::Path;
use std::time::Duration;

use crate::docker::{docker_object_exists, require_docker};
use crate::support::{aivo, assert_passed_but_for, read_report, schema_errors, text};

/// Containers of the project whose name contains `fragment` (`docker ps -a`).
fn containers_named(fragment: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|name| name.contains(fragment))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn three_docker_workers_merge_into_one_report_whose_checks_pass_and_leave_no_container() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-workers-")
        .tempdir()
        .expect("tempdir");
    let reports = dir.path().join("reports");
    let reports_arg = reports.display().to_string();
    // The local test's scenario: consumers, poison, and chaos played by the coordinator.
    let scenario = dir.path().join("workers-coordinated.toml");
    std::fs::write(&scenario, crate::workers::COORDINATED).expect("scenario");
    let output = aivo(
        &[
            "run",
            scenario.to_str().expect("utf-8"),
            "--backend",
            "docker",
            "--workers",
            "3",
            "--reports-dir",
            &reports_arg,
        ],
        &[("AIVO_DOCKER_STORE_SIZE", "128MiB")],
        Duration::from_secs(420),
    )
    .await;
    let log = text(&output);
    let run_dir = crate::support::run_dir(&reports);
    let report = read_report(&run_dir.join("report.json"));
    // Three debug-build workers and three nodes share 2 cores: latency is not the point here.
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    assert_eq!(report["run"]["backend"], "docker", "{log}");
    for index in 1..=3 {
        assert!(
            log.contains(&format!("worker {index}/3 started (container ")),
            "{log}"
        );
        let part = run_dir.join(format!("segment-{index}-of-3"));
        assert!(
            part.join("partial.json").is_file(),
            "{}: {log}",
            part.display()
        );
        assert!(run_dir.join(format!("worker-{index}-of-3.log")).is_file());
    }
    let workers = &report["run"]["workers"];
    assert_eq!(workers["count"], 3, "{log}");
    let segments = workers["segments"].as_array().expect("segments");
    assert!(
        segments.iter().all(|s| s["state"] == "complete"),
        "{segments:?}"
    );
    let acked_by_workers: u64 = segments
        .iter()
        .map(|s| s["acked"].as_u64().expect("acked"))
        .sum();
    let counts = &report["counts"];
    assert!(acked_by_workers > 0, "{log}");
    assert_eq!(counts["acked"].as_u64(), Some(acked_by_workers), "{log}");
    assert_eq!(
        counts["attempted"].as_u64().expect("attempted")
            + counts["never_sent"].as_u64().expect("never_sent"),
        counts["intended"].as_u64().expect("intended"),
        "the segments together send the whole run's schedule: {log}"
    );
    // Checked once over every worker's ledgers, from the host, against the containers' cluster.
    let ledgers = report["ledger"].as_array().expect("ledger");
    assert_eq!(ledgers.len(), 2, "{log}");
    assert!(ledgers.iter().all(|l| l["passed"] == true), "{ledgers:?}");
    let streams = report["streams"].as_array().expect("streams");
    assert!(streams.iter().all(|s| s["passed"] == true), "{streams:?}");
    // The coordinator's consumers and fault, judged over all three workers' events.
    assert_eq!(report["indexer"]["ledger"]["passed"], true, "{log}");
    assert_eq!(report["dlq"]["passed"], true, "{log}");
    assert!(report["dlq"]["injected"].as_u64() > Some(0), "{log}");
    assert_eq!(report["fault_check"]["recovered"], 2, "{log}");
    let replicas = report["replicas"].as_array().expect("replicas");
    assert!(
        replicas.len() == 2 && replicas.iter().all(|r| r["passed"] == true),
        "{replicas:?}"
    );
    // The workers and the project are gone.
    let project = run_dir
        .file_name()
        .map(|n| format!("aivo-{}", n.to_string_lossy().to_ascii_lowercase()))
        .unwrap_or_default();
    assert_eq!(containers_named(&project), Vec::<String>::new());
    assert!(!docker_object_exists(
        "network",
        &format!("{project}-client")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn a_docker_worker_killed_mid_run_is_named_lost_not_its_events() {
    require_docker().await;
    // Built first, so that the run's own steps fit the waits for its lines.
    let docker = aivo_load::cluster::docker::connect().await.expect("docker");
    aivo_load::cluster::docker::harness_image::ensure(&docker, Path::new(crate::support::BIN))
        .await
        .expect("the worker image");
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-lost-")
        .tempdir()
        .expect("tempdir");
    let reports = dir.path().join("reports");
    let reports_arg = reports.display().to_string();
    let mut run = crate::support::BackgroundRun::spawn(&[
        "run",
        "focus-burst",
        "--backend",
        "docker",
        "--workers",
        "3",
        "--duration",
        "12s",
        "--rate-scale",
        "0.1",
        "--reports-dir",
        &reports_arg,
    ]);
    let line = run.wait_for_line("worker 2/3 started (container ").await;
    let name = line
        .rsplit("(container ")
        .next()
        .map(|rest| rest.trim_end_matches(')').to_string())
        .unwrap_or_else(|| panic!("no container in {line:?}"));
    // The workers start their load 10 s after the spawn; kill this one a few seconds into it.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let killed = std::process::Command::new("docker")
        .args(["kill", &name])
        .output()
        .expect("docker kill");
    assert!(killed.status.success(), "docker kill {name}: {killed:?}");
    let code = run.finish().await;
    assert_eq!(code, Some(1), "a lost worker fails the verdict");
    let run_dir = crate::support::run_dir(&reports);
    let report = read_report(&run_dir.join("report.json"));
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
    assert_eq!(containers_named(&name), Vec::<String>::new());
    let project = name.trim_end_matches("-worker-2");
    assert_eq!(containers_named(project), Vec::<String>::new());
}

/// `--workers 3 --profile production --backend docker`: the compose nodes have TLS and accounts;
/// each worker container is given the profile's dir (`--profile-dir`, mounted read-only), so its
/// publishers reach `nats1:4222` over TLS as their domain's user (the node certificates name the
/// in-network hosts) and its admin connection probes the clock. The merged report passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn three_production_profile_docker_workers_merge_into_one_report_whose_checks_pass() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-workers-prod-")
        .tempdir()
        .expect("tempdir");
    let reports = dir.path().join("reports");
    let reports_arg = reports.display().to_string();
    let output = aivo(
        &[
            "run",
            "focus-burst",
            "--backend",
            "docker",
            "--profile",
            "production",
            "--workers",
            "3",
            "--duration",
            "5s",
            "--rate-scale",
            "0.1",
            "--reports-dir",
            &reports_arg,
        ],
        &[("AIVO_DOCKER_STORE_SIZE", "128MiB")],
        Duration::from_secs(420),
    )
    .await;
    let log = text(&output);
    let run_dir = crate::support::run_dir(&reports);
    let report = read_report(&run_dir.join("report.json"));
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    assert_eq!(report["run"]["backend"], "docker", "{log}");
    assert!(
        run_dir.join("cluster/security/profile.json").is_file(),
        "a production-profile cluster: {log}"
    );
    let counts = &report["counts"];
    assert_eq!(counts["acked"], counts["intended"], "{log}");
    let segments = report["run"]["workers"]["segments"]
        .as_array()
        .expect("segments");
    assert_eq!(segments.len(), 3, "{log}");
    for segment in segments {
        assert_eq!(segment["state"], "complete", "{segments:?}");
        assert!(segment["clock_offset_ms"].is_number(), "{segments:?}");
    }
    let ledgers = report["ledger"].as_array().expect("ledger");
    assert_eq!(ledgers[0]["passed"], true, "{ledgers:?}");
    let project = run_dir
        .file_name()
        .map(|n| format!("aivo-{}", n.to_string_lossy().to_ascii_lowercase()))
        .unwrap_or_default();
    assert_eq!(containers_named(&project), Vec::<String>::new());
}
