//! The security check's probes (`checks::security`) on real production-profile clusters: all
//! refused on the profile as built, and each one failing on a cluster loosened on purpose in the
//! one way it guards (`security::Loosening`, the test-only knob of the profile).

use std::time::Duration;

use aivo_load::checks::security::{self, SecurityCheck};
use aivo_load::cluster::rogue::RogueVantage;
use aivo_load::cluster::ClusterProfile;
use aivo_load::security::{Loosening, Role};

use crate::support::TestCluster;

/// The streams the publish probes look into, made by the admin.
async fn declare_probe_targets(cluster: &TestCluster) {
    let endpoints = cluster.endpoints();
    let auth = endpoints.client_auth(&Role::Admin).expect("admin");
    let js = aivo_load::topology::connect_as(&endpoints.server_list(), &auth)
        .await
        .expect("admin connects");
    for (name, subject) in [("FOCUS", "focus.>"), ("LEARNING", "learning.>")] {
        let config = async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        };
        // Six clusters start at once on two cores here: a create may time out while the meta
        // leader settles.
        let mut tries = 0;
        while let Err(e) = js.get_or_create_stream(config.clone()).await {
            tries += 1;
            assert!(tries < 5, "the admin cannot create {name}: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn audit(loosen: &[Loosening]) -> SecurityCheck {
    let cluster = TestCluster::start_loosened(ClusterProfile::Production, loosen).await;
    declare_probe_targets(&cluster).await;
    let check = tokio::time::timeout(
        Duration::from_secs(40),
        security::audit(cluster.endpoints(), &RogueVantage::Host, cluster.dir()),
    )
    .await
    .expect("the probes finish in time")
    .expect("a production cluster is probed");
    cluster.shutdown().await;
    check
}

fn probe<'a>(check: &'a SecurityCheck, name: &str) -> &'a security::Probe {
    check
        .probes
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no probe {name}: {check:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_is_refused_on_the_production_profile() {
    let check = audit(&[]).await;
    assert_eq!(check.probes.len(), 6, "{check:#?}");
    assert!(check.passed, "{check:#?}");
    for name in [
        "cross-domain-publish",
        "publisher-stream-admin",
        "indexer-publish-focus",
    ] {
        assert!(
            probe(&check, name).detail.contains("Permissions Violation"),
            "{check:#?}"
        );
    }
    assert!(
        probe(&check, "rogue-route")
            .detail
            .contains("self-signed route certificate"),
        "{check:#?}"
    );
}

/// The probe `name` fails on a cluster loosened by `loosening`, and only it.
async fn fails_only(loosening: Loosening, name: &str) {
    let check = audit(&[loosening]).await;
    assert!(!check.passed, "{check:#?}");
    let failed: Vec<&str> = check
        .probes
        .iter()
        .filter(|p| !p.passed)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(failed, [name], "{check:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_auth_user_fails_the_unauthenticated_probe() {
    fails_only(Loosening::NoAuthUser, "unauthenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_clients_allowed_fail_the_plaintext_probe() {
    fails_only(Loosening::PlaintextClients, "plaintext").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widened_focus_publisher_fails_the_cross_domain_probe() {
    fails_only(Loosening::FocusPublishesLearning, "cross-domain-publish").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_with_the_stream_api_fail_the_stream_admin_probe() {
    fails_only(Loosening::PublishersManageStreams, "publisher-stream-admin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexer_that_may_publish_focus_fails_its_probe() {
    fails_only(Loosening::IndexerPublishesFocus, "indexer-publish-focus").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_routes_fail_the_rogue_route_probe() {
    fails_only(Loosening::PlaintextRoutes, "rogue-route").await;
}

/// `aivo-load run security-audit` in `reports`, extra flags after it.
async fn security_audit(reports: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "security-audit",
        "--duration",
        "8s",
        "--reports-dir",
        reports.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    crate::support::aivo(&args, &[], Duration::from_secs(120)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_audit_scenario_passes_and_reports_every_probe() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = security_audit(reports.path(), &[]).await;
    let report = crate::support::report_json(reports.path());
    let log = crate::support::text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let probes = report["security"]["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), 6, "{log}");
    assert!(probes.iter().all(|p| p["passed"] == true), "{log}");
    // In the check list (junit, verdict), the summary and the terminal.
    let lines = report["checks"].as_array().expect("checks");
    assert!(lines
        .iter()
        .any(|c| c["name"] == "security rogue-route" && c["passed"] == true));
    let run_dir = std::fs::read_dir(reports.path())
        .expect("reports")
        .flatten()
        .next()
        .expect("run dir")
        .path();
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).expect("summary");
    assert!(summary.contains("cross-domain-publish"), "{summary}");
    assert!(log.contains("security plaintext"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loosened_profile_fails_the_run_naming_the_probes() {
    let reports = tempfile::tempdir().expect("tempdir");
    let output = security_audit(
        reports.path(),
        &["--loosen", "focus-publishes-learning,plaintext-routes"],
    )
    .await;
    let report = crate::support::report_json(reports.path());
    let log = crate::support::text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let failures: Vec<&str> = report["verdict"]["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].starts_with("security cross-domain-publish")
            && failures[1].starts_with("security rogue-route"),
        "{failures:?}"
    );
}

/// `verify --production` against a `cluster up` cluster of `profile` (its state dir gives the
/// servers, monitoring URLs and, on the production profile, the admin's TLS files).
fn verify_production(profile: &str) -> std::process::Output {
    let state = tempfile::tempdir().expect("state dir");
    let guard = crate::support::ClusterUp::local(state.path());
    let up = crate::support::output_within(
        guard.command(&["cluster", "up", "--profile", profile]),
        Duration::from_secs(45),
    );
    assert!(up.status.success(), "{}", crate::support::status_text(&up));
    crate::support::output_within(
        guard.command(&["verify", "--production"]),
        Duration::from_secs(30),
    )
}

#[test]
fn verify_production_passes_on_the_production_profile() {
    let output = verify_production("production");
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{table}");
    assert!(
        table.contains("production audit: all 18 items pass"),
        "{table}"
    );
}

#[test]
fn verify_production_names_each_failed_item_on_the_open_cluster() {
    let output = verify_production("open");
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{table}");
    let summary = table.lines().last().expect("a closing line").to_string();
    for item in [
        "auth required",
        "client TLS required",
        "route TLS required",
        "JetStream domain",
        "system account",
    ] {
        for node in ["nats1", "nats2", "nats3"] {
            assert!(summary.contains(&format!("{item} ({node})")), "{table}");
        }
    }
    assert!(summary.contains("no no_auth_user (cluster)"), "{table}");
    assert!(
        summary.starts_with("production audit: 16 of 18 items fail"),
        "{table}"
    );
}
