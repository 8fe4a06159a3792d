//! `run --metrics-addr`: the live metrics are valid Prometheus text (`promtool check metrics`), and
//! a scrape mid-run agrees with the run's own timeline.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{report_json, BackgroundRun};

/// `GET path` on `addr`: (status line, body).
async fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the sample line starting with `name ` (no labels).
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

fn promtool_check(text: &str) -> std::process::Output {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    child.wait_with_output().expect("promtool ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    aivo_no_promtool,
    ignore = "needs promtool (scripts/setup --test installs Debian's prometheus as root)"
)]
async fn live_metrics_are_valid_and_agree_with_the_timeline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let reports = tempfile::tempdir().expect("tempdir");
    let mut run = BackgroundRun::spawn(&[
        "run",
        "focus-burst",
        "--duration",
        "20s",
        "--rate-scale",
        "0.1",
        "--metrics-addr",
        &addr,
        "--reports-dir",
        reports.path().to_str().expect("utf-8 path"),
    ]);
    run.wait_for_line("live metrics on").await;
    run.wait_for_line("cluster ready").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, text) = get(&addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let (missing, _) = get(&addr, "/elsewhere").await;
    assert!(missing.contains("404"), "{missing}");
    let checked = promtool_check(&text);
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    for family in [
        "aivo_load_events_intended_total",
        "aivo_load_subject_acked_total{stream=\"FOCUS\",subject=\"focus.ping\"}",
        "aivo_load_publish_latency_seconds_bucket{measure=\"corrected\",le=\"+Inf\"}",
        "aivo_load_publish_latency_seconds_count{measure=\"service_time\"}",
        "aivo_load_harness_resident_memory_bytes",
        "aivo_load_node_up{node=\"nats1\"}",
        "aivo_load_faults_active",
    ] {
        assert!(text.contains(family), "{family} not in\n{text}");
    }
    let elapsed = value(&text, "aivo_load_elapsed_seconds") as usize;
    let acked = value(&text, "aivo_load_events_acked_total") as u64;
    assert!(elapsed >= 3 && acked > 0, "{text}");

    let code = run.finish().await;
    assert!(matches!(code, Some(0 | 1)), "the run ended: {code:?}");
    let report = report_json(reports.path());
    let rows = report["timeline"].as_array().expect("timeline");
    let acked_through = |seconds: usize| -> u64 {
        rows.iter()
            .take(seconds)
            .map(|r| r["acked"].as_u64().expect("acked"))
            .sum()
    };
    let (before, after) = (acked_through(elapsed - 1), acked_through(elapsed + 1));
    assert!(
        before <= acked && acked <= after,
        "scraped acked {acked} at second {elapsed}: the timeline has {before} one second before, \
         {after} one second after"
    );
}
