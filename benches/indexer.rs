//! Indexer catch-up on a backlog vs a plain COPY of the same rows into the same table, in one run.
//!
//! Fills FOCUS (R3 on an embedded 3-node cluster, the seed's topology) with a backlog of focus-mix
//! events from the real generator, then:
//! 1. COPY: one binary `COPY events FROM STDIN` of exactly the rows the indexer would write, prepared
//!    beforehand (no NATS, no parsing in the timed part): the fastest way those rows get in. It runs
//!    twice and the faster run is the baseline;
//! 2. `TRUNCATE events`, then the indexer (the same service `aivo-load indexer` runs, in-process)
//!    from a cold start until every event is a row and acknowledged.
//!
//! Prints the backlog fill rate (a closed-loop publish rate, for reference), both ingest rates and
//! their ratio (target ≥ 0.5).
//!
//!     cargo bench --bench indexer                       # 500000 events
//!     BENCH_EVENTS=100000 cargo bench --bench indexer   # quicker
//!     BENCH_REPLICAS=1 BENCH_BATCH=500 cargo bench --bench indexer
//!     BENCH_FOLLOW_LEADER=0 cargo bench --bench indexer  # pull through any server, not the leader's

mod common;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aivo_load::cluster::local::{LocalCluster, LocalClusterConfig};
use aivo_load::consumers::indexer::{self, EventRow};
use aivo_load::consumers::{self, ConsumerStats, EmbeddedPostgres, ServiceConfig, ServiceKind};
use aivo_load::topology::{self, Topology};
use aivo_load::traffic::population::Population;
use aivo_load::traffic::{make_source, Domain, Mix};
use async_nats::jetstream;
use futures::stream::{FuturesUnordered, StreamExt};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    common::run("indexer", bench)
}

async fn bench() -> anyhow::Result<()> {
    let events = common::env_or("BENCH_EVENTS", 500_000);
    let replicas = common::env_or("BENCH_REPLICAS", 3) as usize;
    let batch = common::env_or("BENCH_BATCH", 2500) as usize;
    let window = common::env_or("BENCH_WINDOW", 512) as usize;
    let dir = tempfile::Builder::new().prefix("aivo-bench-").tempdir()?;
    let cluster = LocalCluster::start(LocalClusterConfig::new(dir.path().join("cluster"))).await?;
    let server = cluster.endpoints().server_list();
    let postgres = EmbeddedPostgres::start(&dir.path().join("pg")).await?;
    let js = topology::connect(&server).await?;
    let mut applied = false;
    for _ in 0..50 {
        if topology::apply(&js, &Topology::seed(replicas))
            .await
            .is_ok()
        {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::ensure!(applied, "could not apply the topology");
    let mut pg = consumers::connect_postgres(&postgres.url()).await?;
    consumers::migrate(&mut pg).await?;

    // The backlog, and the rows a plain COPY will write.
    let population = Arc::new(Population::generate(7, 20, 2000));
    let mix = Mix::new(&Domain::Focus.default_mix()).map_err(anyhow::Error::msg)?;
    let run = "bench-indexer";
    let mut source = make_source(Domain::Focus, mix, population, run.into(), 0, 7);
    let mut rows = Vec::with_capacity(events as usize);
    let mut acks = FuturesUnordered::new();
    let mut bytes = 0u64;
    let fill_start = Instant::now();
    let start_wall = OffsetDateTime::now_utc();
    for seq in 1..=events {
        let event = source.next_event(seq, start_wall + Duration::from_micros(seq));
        let ledger = format!("{run}/0/{seq}");
        let row =
            EventRow::from_message(&event.subject, "FOCUS", seq, Some(&ledger), &event.payload)
                .map_err(|p| anyhow::anyhow!("generator produced poison: {}", p.error))?;
        rows.push(row);
        bytes += event.payload.len() as u64;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", ledger.as_str());
        while acks.len() >= window {
            if let Some(ack) = acks.next().await {
                ack?;
            }
        }
        let ack = js
            .publish_with_headers(event.subject, headers, event.payload)
            .await?;
        acks.push(ack.into_future());
    }
    while let Some(ack) = acks.next().await {
        ack?;
    }
    let fill = fill_start.elapsed();
    // The stream sequence of a row is only informative; make it match the stream anyway.
    let first_seq = jetstream::stream::Stream::info(&mut js.get_stream("FOCUS").await?)
        .await?
        .state
        .first_sequence;
    for (i, row) in rows.iter_mut().enumerate() {
        row.stream_seq = first_seq + i as u64;
    }
    println!(
        "backlog: {events} focus events ({} B mean) in FOCUS R{replicas}, filled at {:.0} events/s (closed loop, window {window})",
        bytes / events.max(1),
        events as f64 / fill.as_secs_f64()
    );

    // The topology declares max_ack_pending 10000, which bounds the batches in flight;
    // BENCH_MAX_ACK_PENDING shows what another setting does.
    let focus = js.get_stream_no_info("FOCUS").await?;
    let mut consumer_config = focus.consumer_info("indexer").await?.config;
    if let Some(n) = std::env::var("BENCH_MAX_ACK_PENDING")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        consumer_config.max_ack_pending = n;
        js.update_consumer_on_stream(consumer_config.clone(), "FOCUS")
            .await?;
    }
    let max_ack_pending = consumer_config.max_ack_pending;
    println!(
        "indexer consumer: max_ack_pending {max_ack_pending}, so batches of at most {}",
        consumers::indexer_batch(batch, max_ack_pending)
    );

    // 1. Plain COPY, twice into an empty table; the faster run is the baseline (the ratio is then
    //    the indexer's worst case, not a lucky one).
    let mut copy = Duration::MAX;
    for attempt in 1..=2 {
        pg.batch_execute("TRUNCATE events; CHECKPOINT").await?;
        let copy_start = Instant::now();
        let copied = indexer::copy_plain(&mut pg, &rows).await?;
        let took = copy_start.elapsed();
        anyhow::ensure!(copied == events, "COPY wrote {copied} of {events}");
        println!(
            "plain COPY #{attempt}:     {events} rows in {:>6.2} s = {:>9.0} rows/s",
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
        copy = copy.min(took);
    }
    let copy_rate = events as f64 / copy.as_secs_f64();
    drop(rows);
    pg.batch_execute("TRUNCATE events; CHECKPOINT").await?;

    // 2. The indexer from a cold start.
    let mut config = ServiceConfig::new(ServiceKind::Indexer, &server, &postgres.url());
    config.follow_leader = common::env_or("BENCH_FOLLOW_LEADER", 1) != 0;
    config.status_every = None;
    config.batch = batch;
    let config_follows_leader = config.follow_leader;
    let stats = Arc::new(ConsumerStats::default());
    let cancel = CancellationToken::new();
    let index_start = Instant::now();
    let service = tokio::spawn(consumers::run_service(
        config,
        stats.clone(),
        cancel.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(1800);
    while stats.snapshot().written < events {
        anyhow::ensure!(
            Instant::now() < deadline,
            "indexer stalled at {:?}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let index = index_start.elapsed();
    // Acknowledged too: the consumer has nothing pending.
    let mut caught_up = false;
    for _ in 0..100 {
        if consumers::read_lag(&js, "indexer", &["FOCUS"])
            .await?
            .is_caught_up()
        {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = index_start.elapsed();
    cancel.cancel();
    service.await??;
    let in_table = consumers::count_events(&pg).await?;
    anyhow::ensure!(
        in_table == events,
        "events holds {in_table} rows, expected {events}"
    );
    let index_rate = events as f64 / index.as_secs_f64();
    println!(
        "indexer catch-up:  {events} rows in {:>6.2} s = {index_rate:>9.0} rows/s (all acked after {:.2} s{})",
        index.as_secs_f64(),
        acked.as_secs_f64(),
        if caught_up { "" } else { ", NOT caught up" }
    );
    println!(
        "ratio indexer / COPY = {:.2} (target >= 0.50); batch {batch}, {}, {} duplicates, {} naks; \
         {:.2} s writing to Postgres, {:.2} s acking",
        index_rate / copy_rate,
        if config_follows_leader {
            "pulling through the consumer leader's server"
        } else {
            "pulling through any server (BENCH_FOLLOW_LEADER=0)"
        },
        stats.snapshot().duplicates,
        stats.snapshot().naks,
        stats.snapshot().write_micros as f64 / 1e6,
        stats.snapshot().ack_micros as f64 / 1e6,
    );
    drop(pg);
    drop(postgres);
    cluster.shutdown().await;
    Ok(())
}
