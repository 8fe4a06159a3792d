//! Memory and time of the ledger check on a big stream: does the checker stay bounded?
//!
//! Publishes `BENCH_EVENTS` (default 2,000,000) focus events from 4 publishers into a real FOCUS
//! stream on an embedded 3-node cluster (R1 by default, `BENCH_REPLICAS=3` for R3: the checker's
//! memory does not depend on it, the publishing time does), each with this run's ledger identity as
//! its `Nats-Msg-Id` and a small payload (the check reads headers only), and deletes 3 of them from
//! outside.
//! Then it runs the check — headers-only read-back of the whole stream plus the judgement against
//! the 4 ledgers — in a child process of its own, so the child's peak RSS (`VmHWM`) is the
//! checker's alone, and prints it with the check's duration and result (which must be 3 lost).
//!
//!     cargo bench --bench checker                         # 2M events
//!     BENCH_EVENTS=10000000 cargo bench --bench checker   # the 10M figure in the README

mod common;

use std::time::Instant;

use aivo_load::checks::no_loss;
use aivo_load::cluster::local::{LocalCluster, LocalClusterConfig};
use aivo_load::load::ledger::PublisherLedger;
use async_nats::jetstream::{self, stream};
use futures::stream::{FuturesUnordered, StreamExt};

const RUN_ID: &str = "20260101T000000Z-checker-bench";
const PUBLISHERS: u32 = 4;
/// Unacknowledged publishes per publisher.
const WINDOW: usize = 2048;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--check-child") {
        return check_child(&args[2..]);
    }
    common::run("checker", bench)
}

/// Peak and current resident set of this process, KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn bench() -> anyhow::Result<()> {
    let events = common::env_or("BENCH_EVENTS", 2_000_000);
    let replicas = common::env_or("BENCH_REPLICAS", 1) as usize;
    let dir = tempfile::tempdir()?;
    let cluster = LocalCluster::start(LocalClusterConfig::new(dir.path().to_path_buf())).await?;
    let url = cluster.endpoints().nodes[0].client_url.clone();
    let client = async_nats::connect(url.as_str()).await?;
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "FOCUS".into(),
        subjects: vec!["focus.>".into()],
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    println!(
        "checker bench: {events} events from {PUBLISHERS} publishers into FOCUS (R{replicas})"
    );

    let started = Instant::now();
    let per_publisher = events / u64::from(PUBLISHERS);
    let mut tasks = Vec::new();
    for publisher in 0..PUBLISHERS {
        let client = async_nats::connect(url.as_str()).await?;
        tasks.push(tokio::spawn(publish(client, publisher, per_publisher)));
    }
    let mut ledgers = Vec::new();
    for task in tasks {
        ledgers.push(task.await??);
    }
    let acked: u64 = ledgers.iter().map(|l| l.acked.len()).sum();
    let publish_s = started.elapsed().as_secs_f64();
    println!(
        "  published {acked} acked in {publish_s:.1}s ({:.0}/s)",
        acked as f64 / publish_s
    );

    // Three events lost from outside: the check must name exactly these.
    let mut focus = js.get_stream("FOCUS").await?;
    let last = focus.info().await?.state.last_sequence;
    for seq in [10, last / 2, last - 10] {
        focus.delete_message(seq).await?;
    }
    let ledger_file = dir.path().join("ledgers.json");
    std::fs::write(&ledger_file, serde_json::to_vec(&ledgers)?)?;

    let exe = std::env::current_exe()?;
    let output = tokio::process::Command::new(exe)
        .args([
            "--check-child",
            url.as_str(),
            ledger_file.to_str().unwrap_or_default(),
            &last.to_string(),
        ])
        .output()
        .await?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    drop(client);
    cluster.shutdown().await;
    anyhow::ensure!(output.status.success(), "the check child failed");
    Ok(())
}

/// One publisher: `count` events with the ledger header, acks awaited through a window.
async fn publish(
    client: async_nats::Client,
    publisher: u32,
    count: u64,
) -> anyhow::Result<PublisherLedger> {
    let js = jetstream::new(client);
    let mut ledger = PublisherLedger {
        publisher,
        stream: "FOCUS".into(),
        ..PublisherLedger::default()
    };
    let payload = bytes::Bytes::from_static(b"{\"type\":\"focus.ping\"}");
    let mut in_flight = FuturesUnordered::new();
    let started = Instant::now();
    for seq in 1..=count {
        while in_flight.len() >= WINDOW {
            if let Some((seq, result)) = in_flight.next().await {
                settle(&mut ledger, seq, result, started);
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{RUN_ID}/{publisher}/{seq}").as_str(),
        );
        ledger.attempted = seq;
        let ack = js
            .publish_with_headers("focus.ping", headers, payload.clone())
            .await?;
        in_flight.push(async move { (seq, ack.await) });
    }
    while let Some((seq, result)) = in_flight.next().await {
        settle(&mut ledger, seq, result, started);
    }
    Ok(ledger)
}

fn settle<T, E>(ledger: &mut PublisherLedger, seq: u64, result: Result<T, E>, started: Instant) {
    match result {
        Ok(_) => {
            ledger.acked.insert(seq);
            ledger.ack_clock.record(started.elapsed().as_secs(), seq);
        }
        Err(_) => {
            ledger.unknown.insert(seq);
        }
    }
}

/// The check, alone in this process: read-back + judgement; prints peak RSS and duration.
fn check_child(args: &[String]) -> anyhow::Result<()> {
    let [url, ledger_file, last] = args else {
        anyhow::bail!("usage: --check-child URL LEDGERS LAST_SEQ");
    };
    let last: u64 = last.parse()?;
    let ledgers: Vec<PublisherLedger> = serde_json::from_slice(&std::fs::read(ledger_file)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await?;
        let js = jetstream::new(client);
        let (baseline_hwm, _) = rss_kib();
        let started = Instant::now();
        let back = no_loss::read_back(&js, "FOCUS", RUN_ID, 1, last)
            .await
            .map_err(anyhow::Error::msg)?;
        let read_s = started.elapsed().as_secs_f64();
        let writers: Vec<&PublisherLedger> = ledgers.iter().collect();
        let check = no_loss::judge("FOCUS", &writers, &back, 0);
        let total_s = started.elapsed().as_secs_f64();
        let (peak, now) = rss_kib();
        println!(
            "  check: read {} in {read_s:.1}s ({:.0}/s), judged in {:.1}s, total {total_s:.1}s",
            check.read,
            check.read as f64 / read_s.max(1e-9),
            total_s - read_s
        );
        println!(
            "  check: lost {} (expected 3), duplicated {}, unexpected {}: {}",
            check.lost, check.duplicated, check.unexpected, check.detail
        );
        for event in &check.lost_events {
            println!("    lost: {}", event.describe());
        }
        let ranges: usize = back.seen.values().map(|r| r.range_count()).sum();
        println!(
            "  checker memory: peak RSS {:.1} MiB (VmHWM; {:.1} MiB before the check, {:.1} MiB at its end), {ranges} ranges held",
            peak as f64 / 1024.0,
            baseline_hwm as f64 / 1024.0,
            now as f64 / 1024.0
        );
        anyhow::ensure!(check.lost == 3, "expected 3 lost events");
        Ok(())
    })
}
