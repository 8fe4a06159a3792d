//! The storage model (`capacity::storage`) against a real cluster: messages of known subjects,
//! headers and payloads published into an R1 and an R3 file stream, then the stream's
//! `state.bytes` and every node's `/jsz` compared with the record sizes the model gives.

use std::time::Duration;

use aivo_load::capacity::storage::{header_block_len, record_bytes};
use aivo_load::cluster::monitor;
use async_nats::jetstream;

use crate::support::{create_stream_with_retry, publish_acked, wait_for, TestCluster};

/// Messages per stream.
const MESSAGES: usize = 240;

/// The model must be within this share of what the server reports.
const TOLERANCE: f64 = 0.02;

/// One message of the test set: everything that decides its record size is fixed.
struct Message {
    subject: String,
    headers: Vec<(&'static str, String)>,
    payload: Vec<u8>,
}

/// A mix the harness and AIVO's producers send: short and long subjects; no headers, a
/// `Nats-Msg-Id` alone, and a `Nats-Msg-Id` with a second header (like the harness's ledger header);
/// payloads from 50 B to 1.5 kB.
fn messages(prefix: &str) -> Vec<Message> {
    (0..MESSAGES)
        .map(|i| {
            let subject = if i % 2 == 0 {
                format!("{prefix}.ping")
            } else {
                format!("{prefix}.activity.completed")
            };
            let id = format!("{prefix}-{i:06}");
            let headers = match i % 4 {
                1 => vec![("Nats-Msg-Id", id)],
                2 => vec![
                    ("Nats-Msg-Id", id),
                    ("Aivo-Ledger", format!("run-1/p0/{i}")),
                ],
                _ => Vec::new(),
            };
            let payload = vec![b'x'; [50, 424, 1500][i % 3]];
            Message {
                subject,
                headers,
                payload,
            }
        })
        .collect()
}

fn modelled_bytes(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| {
            let headers: Vec<(&str, &str)> =
                m.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            record_bytes(
                m.subject.len() as u64,
                header_block_len(&headers),
                m.payload.len() as u64,
            )
        })
        .sum()
}

/// Creates `name` capturing `<prefix>.>`, proves it takes writes, and empties it again.
async fn empty_stream(js: &jetstream::Context, name: &str, prefix: &str, replicas: usize) {
    let config = jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{prefix}.>")],
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    create_stream_with_retry(js, config, Duration::from_secs(30))
        .await
        .expect("stream");
    // Right after a cluster forms the first acks are now and then lost (support.rs): one retried
    // publish first, then a purge, so that the measured messages go out once each.
    publish_acked(
        js,
        &format!("{prefix}.warmup"),
        "x",
        Duration::from_secs(20),
    )
    .await
    .expect("warm-up publish");
    let stream = js.get_stream(name).await.expect("stream handle");
    stream.purge().await.expect("purge");
}

async fn publish_all(js: &jetstream::Context, messages: &[Message]) {
    let mut acks = Vec::new();
    for m in messages {
        let mut headers = async_nats::HeaderMap::new();
        for (k, v) in &m.headers {
            headers.insert(*k, v.as_str());
        }
        let ack = if m.headers.is_empty() {
            js.publish(m.subject.clone(), m.payload.clone().into())
                .await
        } else {
            js.publish_with_headers(m.subject.clone(), headers, m.payload.clone().into())
                .await
        };
        acks.push(ack.expect("publish"));
    }
    for ack in acks {
        let ack = tokio::time::timeout(Duration::from_secs(20), ack)
            .await
            .expect("ack in time")
            .expect("ack");
        assert!(
            !ack.duplicate,
            "a unique message id was taken for a duplicate"
        );
    }
}

fn within_tolerance(measured: u64, modelled: u64) -> bool {
    (measured as f64 - modelled as f64).abs() <= TOLERANCE * modelled as f64
}

/// Per node: (bytes of `stream` in its `/jsz` stream details, its `/jsz` storage total).
async fn jsz_bytes(cluster: &TestCluster, stream: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for node in &cluster.endpoints().nodes {
        let jsz = monitor::jsz_streams(&node.monitor_url).await.expect("jsz");
        let bytes = jsz
            .account_details
            .iter()
            .flat_map(|a| &a.stream_detail)
            .filter(|s| s.name == stream)
            .map(|s| s.state.bytes)
            .sum();
        out.push((bytes, jsz.storage));
    }
    out
}

#[tokio::test]
async fn record_sizes_match_stream_bytes_and_jsz_for_r1_and_r3() {
    let cluster = TestCluster::start().await;
    let client = async_nats::connect(cluster.endpoints().client_urls())
        .await
        .expect("connect");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));

    let nodes = &cluster;
    let mut modelled_total = 0;
    for (name, prefix, replicas) in [("SIZE_R1", "sizer1", 1), ("SIZE_R3", "sizer3", 3)] {
        empty_stream(&js, name, prefix, replicas).await;
        let set = messages(prefix);
        publish_all(&js, &set).await;
        let modelled = modelled_bytes(&set);

        let info = js
            .get_stream(name)
            .await
            .expect("stream")
            .info()
            .await
            .expect("info")
            .clone();
        assert_eq!(info.state.messages, MESSAGES as u64, "{name}");
        let state_bytes = info.state.bytes;
        eprintln!(
            "{name}: state.bytes {state_bytes}, model {modelled} ({:+.3} %)",
            (state_bytes as f64 / modelled as f64 - 1.0) * 100.0
        );
        assert!(
            within_tolerance(state_bytes, modelled),
            "{name}: state.bytes {state_bytes} vs model {modelled}"
        );

        // Every replica holds the same records: /jsz summed over the nodes is the model times the
        // replica count, once the followers have caught up.
        let cluster_bytes = modelled * replicas as u64;
        let per_node = wait_for(
            &format!("{name}'s replicas in /jsz"),
            Duration::from_secs(20),
            || async move {
                let per_node = jsz_bytes(nodes, name).await;
                let sum: u64 = per_node.iter().map(|(b, _)| b).sum();
                within_tolerance(sum, cluster_bytes).then_some(per_node)
            },
        )
        .await;
        eprintln!("{name}: /jsz bytes per node {per_node:?}, model × R{replicas} {cluster_bytes}");
        modelled_total += cluster_bytes;
    }

    // The nodes' `storage` totals: both streams, every replica.
    let storage = wait_for(
        "/jsz storage totals",
        Duration::from_secs(20),
        || async move {
            let sum: u64 = jsz_bytes(nodes, "").await.iter().map(|(_, s)| s).sum();
            within_tolerance(sum, modelled_total).then_some(sum)
        },
    )
    .await;
    eprintln!(
        "/jsz storage summed over nodes {storage}, model {modelled_total} ({:+.3} %)",
        (storage as f64 / modelled_total as f64 - 1.0) * 100.0
    );
    cluster.shutdown().await;
}

/// One stored message as `$JS.API.STREAM.MSG.GET` returns it: the raw header block, not a
/// re-serialised one.
async fn stored_message(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
) -> (usize, usize, usize) {
    use base64::Engine as _;
    let request = serde_json::json!({ "seq": seq }).to_string();
    let reply = client
        .request(format!("$JS.API.STREAM.MSG.GET.{stream}"), request.into())
        .await
        .expect("msg get");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
    let message = &body["message"];
    let decoded = |key: &str| {
        message[key].as_str().map_or(0, |text| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64")
                .len()
        })
    };
    let subject = message["subject"].as_str().expect("subject").len();
    (subject, decoded("hdrs"), decoded("data"))
}

/// The model on what a real `aivo-load run` stored: every message of LEARNING read back raw, and
/// the mean-size form the capacity verb uses (mean subject and headers of what was stored, mean
/// payload from the run's report) against `state.bytes` and `/jsz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_matches_what_a_real_run_stored() {
    use aivo_load::capacity::forecast::MessageShape;
    use aivo_load::capacity::storage::{mean_record_bytes, Store};

    let cluster = TestCluster::start().await;
    let servers = cluster.endpoints().server_list();
    let reports = tempfile::tempdir().expect("tempdir");
    let reports_dir = reports.path().to_str().expect("utf-8 path");
    let output = crate::support::aivo(
        &[
            "run",
            "learning-steady",
            "--backend",
            "external",
            "--server",
            &servers,
            "--duration",
            "4s",
            "--rate-scale",
            "0.5",
            "--reports-dir",
            reports_dir,
        ],
        &[],
        Duration::from_secs(120),
    )
    .await;
    assert!(
        output.status.code().is_some(),
        "{}",
        crate::support::text(&output)
    );
    let report = crate::support::report_json(reports.path());
    let counts = &report["counts"];
    let acked = counts["acked"].as_u64().expect("acked");
    let payload_bytes = counts["payload_bytes"].as_u64().expect("payload_bytes");
    assert!(acked > 50, "too few events to compare: {counts}");

    let client = async_nats::connect(cluster.endpoints().client_urls())
        .await
        .expect("connect");
    let js = jetstream::new(client.clone());
    let info = js
        .get_stream("LEARNING")
        .await
        .expect("LEARNING")
        .info()
        .await
        .expect("info")
        .clone();
    let state = info.state;
    let mut exact = 0;
    let (mut subjects, mut headers, mut payloads) = (0, 0, 0);
    for seq in state.first_sequence..=state.last_sequence {
        let (s, h, p) = stored_message(&client, "LEARNING", seq).await;
        exact += record_bytes(s as u64, h as u64, p as u64);
        (subjects, headers, payloads) = (subjects + s, headers + h, payloads + p);
    }
    let n = state.messages as f64;
    eprintln!(
        "run: {acked} acked, {payload_bytes} payload bytes in the report; LEARNING holds {} \
         messages, {} bytes; {payloads} payload bytes read back; exact model {exact}",
        state.messages, state.bytes
    );
    assert!(
        within_tolerance(state.bytes, exact),
        "{} vs {exact}",
        state.bytes
    );
    assert!(
        within_tolerance(payloads as u64, payload_bytes),
        "stored payloads {payloads} vs the report's {payload_bytes}"
    );
    let shape = MessageShape {
        subject_bytes: subjects as f64 / n,
        header_bytes: headers as f64 / n,
        payload_bytes: payload_bytes as f64 / acked as f64,
    };
    let mean_model = (mean_record_bytes(&shape, Store::File) * n).round() as u64;
    eprintln!(
        "mean shape {shape:?}: {:.1} B per message, model {mean_model} vs state.bytes {} ({:+.3} %)",
        mean_record_bytes(&shape, Store::File),
        state.bytes,
        (state.bytes as f64 / mean_model as f64 - 1.0) * 100.0
    );
    assert!(within_tolerance(state.bytes, mean_model));

    // The seed's LEARNING is R3: every node holds one replica.
    let nodes = &cluster;
    let replicas = wait_for(
        "LEARNING's replicas in /jsz",
        Duration::from_secs(20),
        || async move {
            let per_node = jsz_bytes(nodes, "LEARNING").await;
            let sum: u64 = per_node.iter().map(|(b, _)| b).sum();
            within_tolerance(sum, mean_model * 3).then_some(sum)
        },
    )
    .await;
    eprintln!(
        "/jsz LEARNING bytes over the nodes {replicas}, model × 3 {}",
        mean_model * 3
    );
    cluster.shutdown().await;
}
