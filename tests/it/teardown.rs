//! A run that fails after its cluster started still takes the cluster down: no node left running,
//! no store left on disk, the node logs kept with the report, and the exit status the error's.

use std::path::Path;
use std::time::Duration;

use crate::support::{aivo, nats_servers_under, text};

/// Every `nats*/store` under a run's `cluster/` dir.
fn stores_left(cluster_dir: &Path) -> Vec<String> {
    std::fs::read_dir(cluster_dir)
        .map(|nodes| {
            nodes
                .flatten()
                .map(|n| n.path().join("store"))
                .filter(|store| store.exists())
                .map(|store| store.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_the_cluster_started_still_tears_it_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("indexer-without-postgres.toml");
    // The indexer needs Postgres; DATABASE_URL points at a port nothing listens on, so the run
    // fails in its consumers phase, after the cluster started and the streams were declared.
    std::fs::write(
        &scenario,
        r#"name = "indexer-without-postgres"
description = "fails after the cluster is up"
duration = "5s"
seed = 1

[population]
tenants = 2
learners = 20

[[traffic]]
domain = "focus"
rate = [ { at = "0s", rate = "50/s" } ]

[consumers]
indexer = true
"#,
    )
    .expect("write scenario");
    let reports = dir.path().join("reports");
    let output = aivo(
        &[
            "run",
            scenario.to_str().expect("utf-8 path"),
            "--reports-dir",
            reports.to_str().expect("utf-8 path"),
        ],
        &[("DATABASE_URL", "postgres://aivo@127.0.0.1:9/aivo")],
        Duration::from_secs(120),
    )
    .await;
    let log = text(&output);
    assert_eq!(
        output.status.code(),
        Some(3),
        "environment error expected:\n{log}"
    );
    assert!(log.contains("starting a local 3-node cluster"), "{log}");
    let run_dir = std::fs::read_dir(&reports)
        .expect("reports dir")
        .flatten()
        .next()
        .expect("a run dir")
        .path();
    let cluster_dir = run_dir.join("cluster");
    // The cluster had started: its nodes wrote configs and logs, and the run said who owns it.
    assert!(cluster_dir.join("owner.json").is_file(), "{log}");
    assert!(
        std::fs::read_dir(&cluster_dir)
            .expect("cluster dir")
            .flatten()
            .any(|n| n.path().join("nats.log").is_file()),
        "node logs are kept with the report"
    );
    // ... and it is gone: no store on disk, no node running.
    assert_eq!(stores_left(&cluster_dir), Vec::<String>::new(), "{log}");
    let leftover = nats_servers_under(&run_dir);
    assert!(
        leftover.is_empty(),
        "nats-server left running: {leftover:?}"
    );
}
