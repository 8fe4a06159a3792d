//! Harness publisher vs a bare async-nats publish loop, side by side in one run.
//!
//! Both publish the same number of events of the same mean size, with `Nats-Msg-Id`, through the same
//! in-flight window, to the same R3 stream on the same embedded 3-node cluster, alternating rounds so
//! drift in the machine hits both. The harness side does everything a run does per event: schedule,
//! JSON synthesis, headers, ledger, three histograms. Prints each round, the medians and the ratio.
//!
//!     cargo bench --bench publisher            # defaults: 100000 events x 3 rounds, window 256
//!     BENCH_EVENTS=300000 BENCH_ROUNDS=5 BENCH_WINDOW=512 cargo bench --bench publisher

mod common;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aivo_load::cluster::local::{LocalCluster, LocalClusterConfig};
use aivo_load::load::engine::{self, EngineSettings, PublisherPlan, RunClock, SharedStats};
use aivo_load::traffic::arrival::{PublisherArrivals, RateProfile};
use aivo_load::traffic::population::Population;
use aivo_load::traffic::{make_source, Domain, Mix};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    common::run("publisher", bench)
}

async fn bench() -> anyhow::Result<()> {
    let events = common::env_or("BENCH_EVENTS", 100_000);
    let rounds = common::env_or("BENCH_ROUNDS", 3);
    let window = common::env_or("BENCH_WINDOW", 256) as usize;
    let dir = tempfile::tempdir()?;
    let cluster = LocalCluster::start(LocalClusterConfig::new(dir.path().to_path_buf())).await?;
    let client = async_nats::connect(cluster.endpoints().nodes[0].client_url.as_str()).await?;
    let js = jetstream::new(client.clone());

    // The bare loop sends payloads of the harness's mean size.
    let population = Arc::new(Population::generate(7, 20, 2000));
    let mix = Mix::new(&Domain::Focus.default_mix()).map_err(anyhow::Error::msg)?;
    let mut probe = make_source(
        Domain::Focus,
        mix.clone(),
        population.clone(),
        "bench".into(),
        0,
        7,
    );
    let now = time::OffsetDateTime::now_utc();
    let mean_size = (1..=1000)
        .map(|s| probe.next_event(s, now).payload.len())
        .sum::<usize>()
        / 1000;
    println!("publisher bench: {events} events/round, {rounds} rounds, window {window}, payload {mean_size} B, R3 FOCUS");

    let (mut bare_rates, mut harness_rates) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Alternate which side goes first (ABBA), each on a freshly created stream, so neither a
        // trend in the machine nor the state a previous side left behind favours one of them.
        let harness_first = round % 2 == 0;
        let mut results = [0.0f64; 2];
        for side in 0..2 {
            let run_harness = (side == 0) == harness_first;
            fresh_stream(&js).await?;
            let rate = if run_harness {
                harness_publisher(&client, events, window, population.clone(), mix.clone()).await?
            } else {
                bare_loop(&client, events, window, mean_size).await?
            };
            results[usize::from(run_harness)] = rate;
        }
        let [bare, harness] = results;
        println!(
            "  round {round}: bare {bare:>9.0} ev/s   harness {harness:>9.0} ev/s   ratio {:.3}{}",
            harness / bare,
            if harness_first {
                "  (harness first)"
            } else {
                ""
            }
        );
        bare_rates.push(bare);
        harness_rates.push(harness);
    }
    let (bare, harness) = (median(&mut bare_rates), median(&mut harness_rates));
    println!("median: bare {bare:.0} ev/s, harness {harness:.0} ev/s, harness/bare = {:.3} (target >= 0.9)", harness / bare);
    drop(js);
    let _ = client.drain().await;
    cluster.shutdown().await;
    Ok(())
}

/// Deletes and recreates the R3 FOCUS stream and waits until its replicas are current.
async fn fresh_stream(js: &jetstream::Context) -> anyhow::Result<()> {
    let _ = js.delete_stream("FOCUS").await;
    js.create_stream(stream::Config {
        name: "FOCUS".into(),
        subjects: vec!["focus.>".into()],
        num_replicas: 3,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    for _ in 0..100 {
        let info = js.get_stream("FOCUS").await?.info().await?.clone();
        if let Some(cluster) = info.cluster {
            if cluster.leader.is_some() && cluster.replicas.iter().all(|p| p.current) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("FOCUS replicas not current after 10 s")
}

/// A plain publish loop: fixed payload, unique Nats-Msg-Id, at most `window` acks outstanding.
async fn bare_loop(
    client: &async_nats::Client,
    events: u64,
    window: usize,
    size: usize,
) -> anyhow::Result<f64> {
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_ack_inflight(window * 2)
        .build(client.clone());
    let payload = Bytes::from(vec![b'x'; size]);
    let mut in_flight = FuturesUnordered::new();
    let with_ledger_header = std::env::var_os("BENCH_BARE_LEDGER_HEADER").is_some();
    let started = Instant::now();
    let mut acked = 0u64;
    for seq in 0..events {
        if in_flight.len() >= window {
            if let Some(Ok(_)) = in_flight.next().await {
                acked += 1;
            }
        }
        let id = format!("bare-{seq}-{}", started.elapsed().as_nanos());
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(payload.clone())
            .message_id(id);
        if with_ledger_header {
            // Diagnosis only: the bare loop carrying a ledger header of the harness's size.
            let value = format!("20261127T112426Z-focus-burst/0/{seq}");
            publish = publish.header("Aivo-Ledger", value.as_str());
        }
        let ack = js.send_publish("focus.ping", publish).await?;
        in_flight.push(ack.into_future());
    }
    while let Some(result) = in_flight.next().await {
        if result.is_ok() {
            acked += 1;
        }
    }
    Ok(acked as f64 / started.elapsed().as_secs_f64())
}

/// The harness's publisher with every event due at once (its schedule far ahead of the cluster).
async fn harness_publisher(
    client: &async_nats::Client,
    events: u64,
    window: usize,
    population: Arc<Population>,
    mix: Mix,
) -> anyhow::Result<f64> {
    let profile = Arc::new(
        RateProfile::constant(events as f64 * 1000.0, Duration::from_millis(1))
            .map_err(anyhow::Error::msg)?,
    );
    let plan = PublisherPlan {
        id: 0,
        stream: "FOCUS".into(),
        client: client.clone(),
        arrivals: Box::new(PublisherArrivals::new(profile, 0, 1)),
        source: make_source(Domain::Focus, mix, population, "bench".into(), 0, 7),
    };
    let settings = EngineSettings {
        in_flight: window,
        ack_timeout: Duration::from_secs(5),
        send_grace: Duration::from_secs(600),
        message_id: true,
    };
    let stats: SharedStats = Arc::default();
    let started = Instant::now();
    let ledger = engine::run_publisher(
        plan,
        settings,
        "bench".into(),
        RunClock::now(),
        stats,
        CancellationToken::new(),
    )
    .await;
    Ok(ledger.ledger.acked.len() as f64 / started.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
