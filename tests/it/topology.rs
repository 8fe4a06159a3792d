//! `aivo-load init` / `verify` and the topology API against a real 3-node JetStream cluster.

use std::future::Future;
use std::net::TcpListener;
use std::process::Output;
use std::time::Duration;

use aivo_load::topology::{self, ChangeKind, StreamOverride, Topology, TopologyError};
use async_nats::jetstream;

use crate::support::TestCluster;

/// Bound for any single step (a CLI run, an apply, a request batch).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP_TIMEOUT:?}"))
}

async fn jetstream(cluster: &TestCluster) -> jetstream::Context {
    let client = within(
        "connect",
        async_nats::connect(cluster.endpoints().client_urls()),
    )
    .await
    .expect("connect to the test cluster");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    js
}

/// Runs the real binary with `args`, isolated from the caller's NATS_URL and cluster state.
async fn aivo_load(args: &[&str]) -> (i32, String, String) {
    let state = tempfile::tempdir().expect("state tempdir");
    let output: Output = within(
        &format!("aivo-load {}", args.join(" ")),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_aivo-load"))
            .args(args)
            .env_remove("NATS_URL")
            .env("AIVO_STATE_DIR", state.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run aivo-load");
    let code = output.status.code().expect("aivo-load exited, not killed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (code, stdout, stderr)
}

/// Full stream and consumer configs as the server reports them, for exact comparison.
async fn live_configs(js: &jetstream::Context, topology: &Topology) -> Vec<serde_json::Value> {
    let mut configs = Vec::new();
    for decl in &topology.streams {
        let stream = within("stream info", js.get_stream(&decl.name))
            .await
            .expect("stream exists");
        configs.push(serde_json::to_value(&stream.cached_info().config).expect("serialise"));
    }
    for decl in &topology.consumers {
        let stream = within("stream", js.get_stream_no_info(&decl.stream))
            .await
            .expect("stream handle");
        let info = within("consumer info", stream.consumer_info(&decl.name))
            .await
            .expect("consumer exists");
        configs.push(serde_json::to_value(&info.config).expect("serialise"));
    }
    configs
}

fn unreachable_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    format!("nats://127.0.0.1:{port}")
}

#[tokio::test]
async fn init_twice_leaves_identical_configs() {
    let cluster = TestCluster::start().await;
    let server = cluster.endpoints().server_list();
    let js = jetstream(&cluster).await;
    let seed = Topology::seed(3);

    let (code, stdout, stderr) = aivo_load(&["init", "--server", &server]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for object in ["LEARNING", "FOCUS", "DLQ/indexer", "FOCUS/analytics"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{object} ")) && l.ends_with(" created")),
            "{object} not created:\n{stdout}"
        );
    }
    let first = live_configs(&js, &seed).await;

    let (code, stdout, stderr) = aivo_load(&["init", "--server", &server]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let object_lines: Vec<&str> = stdout.lines().filter(|l| !l.contains(" on ")).collect();
    assert_eq!(object_lines.len(), 12, "{stdout}");
    assert!(
        object_lines.iter().all(|l| l.ends_with(" unchanged")),
        "{stdout}"
    );
    assert_eq!(live_configs(&js, &seed).await, first);

    // The library reports the same, object by object.
    let changes = within("apply", topology::apply(&js, &seed))
        .await
        .expect("apply");
    assert_eq!(changes.len(), 12);
    assert!(changes.iter().all(|c| c.kind == ChangeKind::Unchanged));
    assert_eq!(live_configs(&js, &seed).await, first);

    // The declared values are what the server holds.
    let focus = &first[1];
    assert_eq!(focus["max_age"], 7 * 86_400 * 1_000_000_000u64);
    assert_eq!(focus["max_bytes"], 20_000_000_000u64);
    assert_eq!(focus["num_replicas"], 3);
    assert_eq!(focus["duplicate_window"], 120 * 1_000_000_000u64);
    assert_eq!(focus["storage"], "file");
    assert_eq!(focus["retention"], "limits");
    assert_eq!(focus["discard"], "old");
    let indexer = &first[5];
    assert_eq!(indexer["durable_name"], "indexer");
    assert_eq!(indexer["ack_policy"], "explicit");
    assert_eq!(indexer["max_deliver"], 5);
    assert_eq!(indexer["ack_wait"], 30 * 1_000_000_000u64);
    assert_eq!(first[11]["max_deliver"], 3);
}

#[tokio::test]
async fn verify_names_hand_made_drift_until_init_repairs_it() {
    let cluster = TestCluster::start().await;
    let server = cluster.endpoints().server_list();
    let js = jetstream(&cluster).await;

    // Nothing declared yet: every object is missing.
    let (code, stdout, _) = aivo_load(&["verify", "--server", &server]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FOCUS exists"), "{stdout}");

    let (code, stdout, stderr) = aivo_load(&["init", "--server", &server]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (code, stdout, _) = aivo_load(&["verify", "--server", &server]).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("no drift"), "{stdout}");

    // Someone shortens FOCUS's retention by hand.
    let mut stream = within("stream info", js.get_stream("FOCUS"))
        .await
        .expect("FOCUS exists");
    let mut config = stream.cached_info().config.clone();
    config.max_age = Duration::from_secs(3600);
    within("update", js.update_stream(&config))
        .await
        .expect("update FOCUS by hand");
    let info = within("stream info", stream.info())
        .await
        .expect("FOCUS info");
    assert_eq!(info.config.max_age, Duration::from_secs(3600));

    let (code, stdout, stderr) = aivo_load(&["verify", "--server", &server]).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let drift_rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✗')).collect();
    assert_eq!(drift_rows.len(), 1, "{stdout}");
    assert!(drift_rows[0].contains("FOCUS"), "{stdout}");
    assert!(drift_rows[0].contains("max_age"), "{stdout}");
    assert!(
        drift_rows[0].contains("7d") && drift_rows[0].contains("1h"),
        "{stdout}"
    );
    let closing = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        closing, "drift in 1 of 94 fields: FOCUS max_age",
        "{stdout}"
    );

    let (code, stdout, stderr) = aivo_load(&["init", "--server", &server]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FOCUS ") && l.ends_with("updated: max_age 1h → 7d")),
        "{stdout}"
    );
    let (code, stdout, _) = aivo_load(&["verify", "--server", &server]).await;
    assert_eq!(code, 0, "{stdout}");
}

#[tokio::test]
async fn verify_against_unreachable_server_exits_3() {
    let url = unreachable_url();
    for command in ["verify", "init"] {
        let (code, stdout, stderr) = aivo_load(&[command, "--server", &url]).await;
        assert_eq!(code, 3, "{command}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stderr.contains(&url), "{stderr}");
        assert!(stderr.contains("aivo-load cluster up"), "{stderr}");
        assert!(stderr.contains("--server"), "{stderr}");
    }
}

#[tokio::test]
async fn bad_replicas_is_a_usage_error() {
    let (code, _, stderr) = aivo_load(&["init", "--replicas", "0", "--server", "nats://x:1"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("replicas"), "{stderr}");
}

#[tokio::test]
async fn stream_override_is_applied() {
    let cluster = TestCluster::start().await;
    let js = jetstream(&cluster).await;
    let ninety = Duration::from_secs(90);
    let topology = Topology::seed(3)
        .with_stream_override(
            "FOCUS",
            StreamOverride {
                max_age: Some(ninety),
                ..Default::default()
            },
        )
        .expect("FOCUS is declared");

    let changes = within("apply", topology::apply(&js, &topology))
        .await
        .expect("apply with override");
    assert!(changes.iter().all(|c| c.kind == ChangeKind::Created));
    let stream = within("stream info", js.get_stream("FOCUS"))
        .await
        .expect("FOCUS exists");
    assert_eq!(stream.cached_info().config.max_age, ninety);
    assert_eq!(stream.cached_info().config.max_bytes, 20_000_000_000);

    let checks = within("verify", topology::verify(&js, &topology))
        .await
        .expect("verify");
    assert!(checks.iter().all(|c| c.matches), "{checks:?}");

    // The 2 m dedup window would outlast a 90 s max_age, which JetStream refuses; it shrank too.
    assert_eq!(stream.cached_info().config.duplicate_window, ninety);

    // Against the seed, FOCUS drifts in exactly those two fields; applying the seed restores them.
    let checks = within("verify", topology::verify(&js, &Topology::seed(3)))
        .await
        .expect("verify");
    let drifted: Vec<_> = checks
        .iter()
        .filter(|c| !c.matches)
        .map(|c| (c.object.as_str(), c.field, c.live.to_string()))
        .collect();
    assert_eq!(
        drifted,
        [
            ("FOCUS", "max_age", "1m30s".to_string()),
            ("FOCUS", "duplicate_window", "1m30s".to_string())
        ]
    );
    let changes = within("apply", topology::apply(&js, &Topology::seed(3)))
        .await
        .expect("apply seed");
    let updated: Vec<_> = changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Unchanged)
        .collect();
    assert_eq!(updated.len(), 1, "{changes:?}");
    assert_eq!(updated[0].object, "FOCUS");
    assert_eq!(
        updated[0].to_string().split("updated: ").nth(1),
        Some("max_age 1m30s → 7d, duplicate_window 1m30s → 2m")
    );
    let checks = within("verify", topology::verify(&js, &Topology::seed(3)))
        .await
        .expect("verify");
    assert!(checks.iter().all(|c| c.matches), "{checks:?}");
}

#[tokio::test]
async fn storage_type_cannot_change_in_place() {
    let cluster = TestCluster::start().await;
    let server = cluster.endpoints().server_list();
    let js = jetstream(&cluster).await;
    let mut config = Topology::seed(3).streams[1].config();
    config.storage = jetstream::stream::StorageType::Memory;
    config.max_bytes = 1_000_000;
    within("create", js.create_stream(config))
        .await
        .expect("create FOCUS in memory by hand");

    let err = within("apply", topology::apply(&js, &Topology::seed(3)))
        .await
        .expect_err("memory → file is not an in-place update");
    match &err {
        TopologyError::Immutable { object, changes } => {
            assert_eq!(object, "FOCUS");
            assert_eq!(changes.len(), 1, "{changes:?}");
            assert_eq!(changes[0].field, "storage");
        }
        other => panic!("expected Immutable, got {other:?}"),
    }

    let (code, stdout, stderr) = aivo_load(&["init", "--server", &server]).await;
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("FOCUS: storage cannot be changed"),
        "{stderr}"
    );
}
