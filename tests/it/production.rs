//! The production profile on real nats-server clusters: TLS on clients and routes, accounts,
//! least-privilege users. What a client without TLS or without an identity gets, and that the
//! profile's roles connect.

use std::time::Duration;

use aivo_load::cluster::ClusterProfile;
use aivo_load::security::{ClientAuth, Role};

use crate::support::TestCluster;

async fn connect(url: &str, auth: &ClientAuth) -> Result<async_nats::Client, String> {
    let options = auth
        .apply(
            async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(3))
                .name("aivo-load production test"),
        )
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(10), options.connect(url)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("{e} ({:?})", e.kind())),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

/// Connects over plain TCP, reads the INFO, sends `CONNECT {} PING` in plaintext and returns all
/// the server said until it closed the connection (or 5 s passed).
async fn plaintext_session(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("nats://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("INFO in time")
        .expect("read INFO");
    seen.extend_from_slice(&buf[..n]);
    let _ = stream
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn the_production_cluster_refuses_plaintext_and_anonymous_clients_and_admits_its_roles() {
    let cluster = TestCluster::start_with(ClusterProfile::Production).await;
    let endpoints = cluster.endpoints().clone();
    let url = endpoints.nodes[0].client_url.clone();
    let profile = endpoints
        .profile()
        .expect("profile readable")
        .expect("a production cluster names its profile");

    // Plaintext, spoken raw (a NATS client would upgrade on seeing `tls_required`): the server
    // announces TLS as required and never answers a plaintext CONNECT + PING with a PONG.
    let answer = plaintext_session(&url).await;
    assert!(answer.contains("\"tls_required\":true"), "{answer}");
    assert!(
        !answer.contains("PONG"),
        "a plaintext client got a PONG: {answer}"
    );
    // A client without our CA refuses the server's certificate itself.
    assert!(connect(&url, &ClientAuth::default()).await.is_err());

    // TLS with the CA and a valid client certificate but no identity: no no_auth_user, refused.
    let admin = profile.client_auth(&Role::Admin).expect("admin");
    let anonymous = ClientAuth {
        nkey: None,
        ..admin.clone()
    };
    let refused = connect(&url, &anonymous).await;
    let reason = refused.expect_err("an anonymous TLS connect was accepted");
    assert!(
        reason.to_lowercase().contains("authorization"),
        "refused, but not for authorization: {reason}"
    );

    // TLS without a client certificate: the server verifies clients, refused.
    let no_cert = ClientAuth {
        tls_cert: None,
        tls_key: None,
        ..admin.clone()
    };
    assert!(
        connect(&url, &no_cert).await.is_err(),
        "a connect without a client certificate was accepted"
    );

    // The admin connects and JetStream answers in the AIVO account.
    let client = connect(&url, &admin).await.expect("admin connects");
    let js = async_nats::jetstream::new(client);
    let account = tokio::time::timeout(Duration::from_secs(10), js.query_account())
        .await
        .expect("JetStream answers in time")
        .expect("JetStream enabled for AIVO");
    assert_eq!(account.streams, 0, "a fresh account holds no stream");

    // Every role connects through every node (each node has its own certificate).
    for node in &endpoints.nodes {
        for role in Role::all() {
            let auth = profile.client_auth(&role).expect("role");
            connect(&node.client_url, &auth)
                .await
                .unwrap_or_else(|e| panic!("{} on {}: {e}", role.name(), node.name));
        }
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_domain_publisher_may_publish_only_its_domain() {
    let cluster = TestCluster::start_with(ClusterProfile::Production).await;
    let endpoints = cluster.endpoints().clone();
    let url = endpoints.nodes[0].client_url.clone();
    let profile = endpoints.profile().expect("profile").expect("production");
    let admin = connect(&url, &profile.client_auth(&Role::Admin).expect("admin"))
        .await
        .expect("admin connects");
    let admin_js = async_nats::jetstream::new(admin);
    for (name, subject) in [("FOCUS", "focus.>"), ("LEARNING", "learning.>")] {
        admin_js
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                ..Default::default()
            })
            .await
            .expect("the admin creates streams");
    }
    let focus = connect(
        &url,
        &profile
            .client_auth(&Role::Publisher("focus".into()))
            .expect("focus publisher"),
    )
    .await
    .expect("the focus publisher connects");
    let mut js = async_nats::jetstream::new(focus);
    js.set_timeout(Duration::from_secs(2));
    // Its own domain: acknowledged (the ack comes back on its inbox).
    js.publish("focus.ping", "{}".into())
        .await
        .expect("publish sent")
        .await
        .expect("focus.ping acknowledged");
    // Another domain's subject: the server drops it (Permissions Violation), so no ack comes.
    let refused = js
        .publish("learning.session.started", "{}".into())
        .await
        .expect("publish sent")
        .await;
    assert!(refused.is_err(), "a focus publisher wrote to LEARNING");
    // Nor may it manage streams.
    assert!(
        js.delete_stream("FOCUS").await.is_err(),
        "a publisher deleted a stream"
    );
    let learning = admin_js
        .get_stream("LEARNING")
        .await
        .expect("LEARNING")
        .info()
        .await
        .expect("info")
        .state
        .messages;
    assert_eq!(learning, 0, "the refused publish was stored");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_burst_passes_on_the_production_profile() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = crate::support::aivo(
        &[
            "run",
            "focus-burst",
            "--profile",
            "production",
            "--duration",
            "12s",
            "--rate-scale",
            "0.2",
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(120),
    )
    .await;
    let report = crate::support::report_json(reports.path());
    crate::support::assert_passed_but_for(&output, &report, &["publish.latency"]);
    let acked = report["counts"]["acked"].as_u64().expect("acked");
    let intended = report["counts"]["intended"].as_u64().expect("intended");
    assert!(
        acked > 1000 && acked == intended,
        "acked {acked} of {intended}"
    );
    // The run's nodes had TLS and accounts, and its publishers were the focus user.
    let run_dir = std::fs::read_dir(reports.path())
        .expect("reports")
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("a run dir")
        .path();
    let config = std::fs::read_to_string(run_dir.join("cluster/nats1/nats.conf")).expect("config");
    assert!(
        config.contains("verify: true") && config.contains("accounts {"),
        "{config}"
    );
    assert!(!config.contains("no_auth_user"), "{config}");
}

/// A fault scenario on the production profile, compressed to `duration`: every check holds (the
/// faults check among them: each revert left a whole cluster, so the routes came back under mutual
/// TLS) and the security check too; the thresholds, calibrated for the scenario's own length, may
/// fail at this one.
async fn fault_scenario_on_the_production_profile(scenario: &str, duration: &str) {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = crate::support::aivo(
        &[
            "run",
            scenario,
            "--profile",
            "production",
            "--duration",
            duration,
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(180),
    )
    .await;
    let report = crate::support::report_json(reports.path());
    crate::support::assert_passed_but_for(&output, &report, &["publish."]);
    let log = crate::support::text(&output);
    assert_eq!(report["fault_check"]["passed"], true, "{log}");
    assert_eq!(report["security"]["passed"], true, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_kill_passes_on_the_production_profile() {
    fault_scenario_on_the_production_profile("node-kill", "30s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_partition_passes_on_the_production_profile() {
    fault_scenario_on_the_production_profile("route-partition", "30s").await;
}
