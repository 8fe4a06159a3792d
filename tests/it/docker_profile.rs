//! The production profile on the docker backend (issue #14): the compose project's production
//! variant comes up with TLS on clients, mutual TLS on routes and the nkey users, `run --profile
//! production --backend docker` passes every check with the security check's six probes (the
//! rogue server a container on the project's cluster network), each loosened probe fails, and
//! `cluster up --backend docker --profile production` serves `init` and `verify --production`
//! with the credentials found from its state dir. Gated like `docker.rs`.

use std::path::Path;
use std::time::Duration;

use crate::docker::{docker_object_exists, project, require_docker};
use crate::support::{aivo, assert_passed_but_for, read_report, text, ClusterUp};

/// `run focus-burst --backend docker --profile production`, short, with `extra` flags.
async fn production_run(reports: &Path, extra: &[&str]) -> std::process::Output {
    let reports = reports.display().to_string();
    let mut args = vec![
        "run",
        "focus-burst",
        "--backend",
        "docker",
        "--profile",
        "production",
        "--duration",
        "8s",
        "--rate-scale",
        "0.2",
        "--reports-dir",
        &reports,
    ];
    args.extend_from_slice(extra);
    aivo(
        &args,
        &[("AIVO_DOCKER_STORE_SIZE", "128MiB")],
        Duration::from_secs(240),
    )
    .await
}

/// The compose project of a run dir (`aivo-<run id>`) has no container left, the rogue's
/// included.
fn assert_project_gone(run_dir: &Path) {
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    for container in ["nats-1", "nats-2", "nats-3", "rogue"] {
        let container = format!("aivo-{name}-{container}");
        assert!(
            !docker_object_exists("container", &container),
            "{container} is left"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn focus_burst_on_docker_with_the_production_profile_passes_the_security_check() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-prod-")
        .tempdir()
        .expect("tempdir");
    let reports = dir.path().join("reports");
    let output = production_run(&reports, &[]).await;
    let log = text(&output);
    let run_dir = crate::support::run_dir(&reports);
    let report = read_report(&run_dir.join("report.json"));
    // Debug builds share 2 cores with three containers: the latency budget is not the point.
    assert_passed_but_for(&output, &report, &["publish.latency"]);
    assert_eq!(report["run"]["backend"], "docker", "{log}");
    let security = &report["security"];
    assert_eq!(security["passed"], true, "{log}");
    let probes = security["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), 6, "{probes:?}");
    let rogue = probes
        .iter()
        .find(|p| p["name"] == "rogue-route")
        .expect("rogue-route");
    assert_eq!(rogue["passed"], true, "{rogue}");
    // The nodes' configs are the compose project's production variant: client TLS, route TLS
    // with the mounted certificates, the accounts; their keys stay 0600 on the host.
    let compose = run_dir.join("cluster/compose");
    let conf = std::fs::read_to_string(compose.join("nats2.conf")).expect("nats2.conf");
    assert!(
        conf.contains("cert_file: \"/etc/nats/security/nodes/nats2.pem\""),
        "{conf}"
    );
    assert!(conf.contains("system_account: SYS"), "{conf}");
    assert!(compose.join("docker-compose.production.yml").is_file());
    use std::os::unix::fs::PermissionsExt;
    let key = run_dir.join("cluster/security/nodes/nats2-key.pem");
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", key.display());
    assert_project_gone(&run_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn the_docker_security_check_fails_on_plaintext_routes_and_a_widened_publisher() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-loose-")
        .tempdir()
        .expect("tempdir");
    let reports = dir.path().join("reports");
    let output = production_run(
        &reports,
        &["--loosen", "plaintext-routes,focus-publishes-learning"],
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let run_dir = crate::support::run_dir(&reports);
    let report = read_report(&run_dir.join("report.json"));
    let failed: Vec<&str> = report["security"]["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .filter(|p| p["passed"] == false)
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(failed, ["cross-domain-publish", "rogue-route"], "{log}");
    // The rogue container reached the route ports: with plaintext routes it joined.
    let rogue = report["security"]["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .find(|p| p["name"] == "rogue-route")
        .expect("rogue-route");
    assert!(
        rogue["detail"]
            .as_str()
            .is_some_and(|d| d.contains("joined")),
        "{rogue}"
    );
    assert_project_gone(&run_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn cluster_up_production_on_docker_serves_init_and_verify_with_its_own_credentials() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-docker-prod-up-")
        .tempdir()
        .expect("tempdir");
    let mut envs = vec![
        (
            "AIVO_STATE_DIR".to_string(),
            dir.path().display().to_string(),
        ),
        ("AIVO_DOCKER_PROJECT".to_string(), project("prod-up")),
        ("AIVO_DOCKER_STORE_SIZE".to_string(), "64MiB".to_string()),
    ];
    let listeners: Vec<std::net::TcpListener> = (0..6)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    drop(listeners);
    for i in 0..3 {
        envs.push((
            format!("NATS{}_CLIENT_PORT", i + 1),
            ports[2 * i].to_string(),
        ));
        envs.push((
            format!("NATS{}_MONITOR_PORT", i + 1),
            ports[2 * i + 1].to_string(),
        ));
    }
    let servers: Vec<String> = (0..3)
        .map(|i| format!("nats://127.0.0.1:{}", ports[2 * i]))
        .collect();
    let monitors: Vec<String> = (0..3)
        .map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1]))
        .collect();
    envs.push(("NATS_URL".to_string(), servers.join(",")));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _guard = ClusterUp::docker(&envs);
    let limit = Duration::from_secs(150);

    let up = aivo(
        &[
            "cluster",
            "up",
            "--backend",
            "docker",
            "--profile",
            "production",
        ],
        &envs,
        limit,
    )
    .await;
    let shown = text(&up);
    assert_eq!(up.status.code(), Some(0), "{shown}");
    assert!(shown.contains("production profile"), "{shown}");
    assert!(shown.contains("nats context save aivo"), "{shown}");
    // No credentials given: `init` finds the admin's from the state dir's docker cluster.
    let init = aivo(&["init"], &envs, limit).await;
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    let verify = aivo(
        &["verify", "--production", "--monitor", &monitors.join(",")],
        &envs,
        limit,
    )
    .await;
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(
        text(&verify).contains("all 18 items pass"),
        "{}",
        text(&verify)
    );
    // An open `cluster up` does not silently reuse (or replace) the production cluster.
    let open = aivo(&["cluster", "up", "--backend", "docker"], &envs, limit).await;
    assert_eq!(open.status.code(), Some(2), "{}", text(&open));
    let down = aivo(&["cluster", "down", "--backend", "docker"], &envs, limit).await;
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert!(!docker_object_exists(
        "container",
        &format!("{}-nats-1", project("prod-up"))
    ));
}
