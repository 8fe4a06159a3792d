//! The harness's costs at everyday rates: the route proxies per forwarded byte, and `run` per event.
//!
//! 1. **Route proxy vs `tokio::io::copy_bidirectional`.** A sender pushes `BENCH_PROXY_MB` MiB in
//!    writes of `BENCH_PROXY_WRITE` bytes (route traffic is many small frames) through a forwarder
//!    to a sink that reads and discards them, and answers every 64 KiB with one byte (so both
//!    directions are used, as on a route). The forwarder is either the local backend's
//!    [`Proxy`](aivo_load::cluster::proxy::Proxy) (latency injection off) or a plain
//!    `copy_bidirectional` pair; each runs alone on a one-worker runtime of its own, as the route
//!    mesh does, and only that thread's CPU is counted. Alternating rounds, medians, ratio
//!    (target: the proxy within 2x the plain pair's CPU per byte).
//! 2. **`run` at 1,300 events/s.** The real load phase of `run` (`aivo_load::run::bench_load`:
//!    publishers, schedule, synthesis, ledger, histograms, sampler, progress) on the focus mix at
//!    `BENCH_EVERYDAY_RATE` events/s for `BENCH_EVERYDAY_SECONDS`, against the embedded cluster. Its
//!    route proxies run in this process; their threads are left out of the figure, which is thus
//!    the harness's CPU against a cluster without proxies (target: at most 30 µs per event). Beside
//!    it, in alternating rounds, a bare paced loop at the same rate (async-nats only: a fixed payload
//!    with a message id, acks awaited concurrently): the floor the client and the kernel set here.
//!
//! Run it:
//!
//!     cargo bench --bench proxy
//!     BENCH_PROXY_MB=512 BENCH_PROXY_WRITE=512 BENCH_ROUNDS=5 BENCH_EVERYDAY_SECONDS=30 cargo bench --bench proxy

mod common;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/focus.rs"]
mod focus;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use aivo_load::cluster::local::{LocalCluster, LocalClusterConfig};
use aivo_load::cluster::proxy::Proxy;
use async_nats::jetstream;
use cpu::{median, CpuSample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Names of the forwarders' threads: `fwd-<n>`, a new name for every round, so a previous round's
/// thread still exiting in the background is not counted (or subtracted).
const FORWARDER_THREAD: &str = "fwd-";
static ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const PROXY_THREAD: &str = "aivo-route-prox";

fn main() -> anyhow::Result<()> {
    common::run("proxy", bench)
}

async fn bench() -> anyhow::Result<()> {
    proxy_vs_copy().await?;
    everyday_run().await
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Forwarder {
    RouteProxy,
    CopyBidirectional,
    /// The route proxy's pump before the direct copy (kept here for the before/after figure).
    PreviousPump,
}

async fn proxy_vs_copy() -> anyhow::Result<()> {
    let rounds = common::env_or("BENCH_ROUNDS", 3);
    let megabytes = common::env_or("BENCH_PROXY_MB", 256);
    let write = common::env_or("BENCH_PROXY_WRITE", 512) as usize;
    println!(
        "route proxy bench: {megabytes} MiB in {write} B writes per round, {rounds} rounds, latency injection off"
    );
    let (mut proxy, mut plain, mut previous) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut order = [
            Forwarder::RouteProxy,
            Forwarder::CopyBidirectional,
            Forwarder::PreviousPump,
        ];
        if round % 2 == 1 {
            order.reverse();
        }
        for kind in order {
            let (ns_per_kib, rate) = forward_once(kind, megabytes << 20, write).await?;
            println!(
                "  round {}: {:<20} {ns_per_kib:>8.0} ns CPU/KiB  {rate:>7.0} MiB/s",
                round + 1,
                match kind {
                    Forwarder::RouteProxy => "route proxy",
                    Forwarder::CopyBidirectional => "copy_bidirectional",
                    Forwarder::PreviousPump => "previous pump",
                }
            );
            match kind {
                Forwarder::RouteProxy => proxy.push(ns_per_kib),
                Forwarder::CopyBidirectional => plain.push(ns_per_kib),
                Forwarder::PreviousPump => previous.push(ns_per_kib),
            }
        }
    }
    let (proxy, plain, previous) = (median(&proxy), median(&plain), median(&previous));
    println!(
        "median: route proxy {proxy:.0} ns CPU/KiB, copy_bidirectional {plain:.0} ns CPU/KiB, ratio {:.2}x (target <= 2x); previous pump {previous:.0} ns CPU/KiB ({:.2}x)",
        proxy / plain,
        previous / plain
    );
    Ok(())
}

/// A runtime that may be dropped inside another one (in the background), on every path.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for OwnRuntime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Pushes `total` bytes through one forwarder: (forwarder CPU ns per KiB, MiB/s).
async fn forward_once(kind: Forwarder, total: u64, write: usize) -> anyhow::Result<(f64, f64)> {
    // The forwarder's own runtime: one worker, named, so its CPU can be told apart.
    let thread = format!(
        "{FORWARDER_THREAD}{}-",
        ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let runtime = OwnRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread.clone())
            .enable_all()
            .build()?,
    ));
    let sink = TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    let sink_task = tokio::spawn(async move {
        let (mut conn, _) = sink.accept().await?;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut read, mut since_ack) = (0u64, 0u64);
        // Until everything arrived: the sender never half-closes (a route proxy ends a connection
        // when either direction ends, as a NATS route does, which would reset the sink's socket).
        while read < total {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            read += n as u64;
            since_ack += n as u64;
            if since_ack >= 64 * 1024 {
                since_ack = 0;
                conn.write_all(b"+").await?;
            }
        }
        Ok::<u64, std::io::Error>(read)
    });
    // Keep the proxy alive until the round ends.
    let mut _proxy = None;
    let listen: SocketAddr = match kind {
        Forwarder::RouteProxy => {
            let proxy = Proxy::start("bench", sink_addr, runtime.handle())?;
            let addr = proxy.listen_addr();
            _proxy = Some(proxy);
            addr
        }
        Forwarder::CopyBidirectional | Forwarder::PreviousPump => {
            let previous = kind == Forwarder::PreviousPump;
            let listener = {
                let _guard = runtime.enter();
                let std = std::net::TcpListener::bind("127.0.0.1:0")?;
                std.set_nonblocking(true)?;
                TcpListener::from_std(std)?
            };
            let addr = listener.local_addr()?;
            runtime.spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(sink_addr).await {
                            let _ = inbound.set_nodelay(true);
                            let _ = outbound.set_nodelay(true);
                            if previous {
                                previous_forward(inbound, outbound).await;
                            } else {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        }
                    });
                }
            });
            addr
        }
    };
    let before = CpuSample::now(&thread);
    let started = Instant::now();
    let conn = TcpStream::connect(listen).await?;
    conn.set_nodelay(true)?;
    let (mut read_half, mut write_half) = conn.into_split();
    let acks = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = read_half.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let chunk = vec![b'x'; write];
    let mut sent = 0u64;
    while sent < total {
        write_half.write_all(&chunk).await?;
        sent += write as u64;
    }
    let received = sink_task.await??;
    let elapsed = started.elapsed();
    let after = CpuSample::now(&thread);
    drop(write_half);
    acks.abort();
    drop(_proxy);
    drop(runtime);
    anyhow::ensure!(received == sent, "sink got {received} of {sent} bytes");
    let cpu = after.excluded_since(&before);
    Ok((
        cpu.as_nanos() as f64 / (sent as f64 / 1024.0),
        sent as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
    ))
}

/// The route proxy's forwarding as it was before the direct copy: per direction a reader that
/// allocates a zeroed 64 KiB chunk per read and queues it with its arrival time, and a writer that
/// checks the link's control (a `watch`) per chunk before writing it.
async fn previous_forward(inbound: TcpStream, outbound: TcpStream) {
    let (_keep, control) = tokio::sync::watch::channel(false);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::select! {
        _ = previous_pump(in_read, out_write, &control) => {}
        _ = previous_pump(out_read, in_write, &control) => {}
    }
}

async fn previous_pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: &tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (queue, mut chunks) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(256);
    let (mut reader_control, mut writer_control) = (control.clone(), control.clone());
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let reader = async move {
        loop {
            if reader_control.wait_for(|blocked| !blocked).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            let mut buf = vec![0u8; 64 * 1024];
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if queue.send((Instant::now(), buf)).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async {
        while let Some((_read_at, buf)) = chunks.recv().await {
            if writer_control.wait_for(|blocked| !blocked).await.is_err() {
                return Ok(());
            }
            to.write_all(&buf).await?;
            bytes.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        to.shutdown().await
    };
    let (read, write) = tokio::join!(reader, writer);
    read.and(write)
}

/// `run`'s load phase at an everyday rate beside a bare paced loop at the same rate: CPU per acked
/// event, the route proxies left out, alternating rounds, medians.
async fn everyday_run() -> anyhow::Result<()> {
    let seconds = common::env_or("BENCH_EVERYDAY_SECONDS", 20);
    let rate = common::env_or("BENCH_EVERYDAY_RATE", 1300);
    let rounds = common::env_or("BENCH_EVERYDAY_ROUNDS", 2);
    let dir = tempfile::tempdir()?;
    let cluster = LocalCluster::start(LocalClusterConfig::new(dir.path().to_path_buf())).await?;
    let mut clients = Vec::new();
    for node in &cluster.endpoints().nodes {
        clients.push(async_nats::connect(node.client_url.as_str()).await?);
    }
    let js = jetstream::new(clients[0].clone());
    println!(
        "everyday bench: {rate} events/s for {seconds} s per side, {rounds} rounds, focus, R3, message ids on, 4 publishers"
    );
    let (mut bare, mut harness) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let sides: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_run in sides {
            focus::fresh_stream(&js).await?;
            let before = CpuSample::now(PROXY_THREAD);
            let started = Instant::now();
            let acked = if is_run {
                everyday_harness(&clients, rate, seconds, round).await?
            } else {
                paced_bare_loop(&clients, rate, seconds, round).await
            };
            let elapsed = started.elapsed().as_secs_f64();
            let after = CpuSample::now(PROXY_THREAD);
            let cpu = after.since(&before).as_secs_f64();
            let per_event = cpu * 1e6 / acked.max(1) as f64;
            println!(
                "  round {}: {:<16} acked {acked} in {elapsed:.1} s; CPU {:.3} cores = {per_event:.1} µs/event; route proxies {:.3} cores (not counted)",
                round + 1,
                if is_run { "run" } else { "bare paced loop" },
                cpu / elapsed,
                after.excluded_since(&before).as_secs_f64() / elapsed,
            );
            if is_run { &mut harness } else { &mut bare }.push(per_event);
        }
    }
    let (bare, harness) = (median(&bare), median(&harness));
    println!(
        "  medians: run {harness:.1} µs/event (target <= 30), bare paced loop {bare:.1} µs/event, ratio {:.2}x",
        harness / bare
    );
    drop(js);
    for client in clients {
        let _ = client.drain().await;
    }
    cluster.shutdown().await;
    Ok(())
}

/// `run`'s load phase on a constant-rate focus scenario; returns the acked count.
async fn everyday_harness(
    clients: &[async_nats::Client],
    rate: u64,
    seconds: u64,
    round: u64,
) -> anyhow::Result<u64> {
    let toml = format!(
        r#"
name = "everyday-bench"
duration = "{seconds}s"
seed = 7
[population]
tenants = 20
learners = 2000
[[traffic]]
domain = "focus"
rate = [ {{ at = "0s", rate = "{rate}/s" }} ]
"#
    );
    let scenario = aivo_load::scenario::load::parse("everyday.toml", &toml)?;
    let run_id = format!("20261202T061500Z-everyday-{round}");
    let outcome = aivo_load::run::bench_load(Arc::new(scenario), clients, &run_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(outcome.acked)
}

/// The floor: 4 tasks over the same connections (as `run` spreads its publishers), each sending a
/// fixed 424-byte payload with a unique `Nats-Msg-Id` at its share of `rate`, evenly spaced, acks
/// awaited concurrently. No synthesis, no ledger, no histograms.
async fn paced_bare_loop(
    clients: &[async_nats::Client],
    rate: u64,
    seconds: u64,
    round: u64,
) -> u64 {
    const TASKS: u64 = 4;
    let payload = bytes::Bytes::from(vec![b'x'; 424]);
    let gap = std::time::Duration::from_secs_f64(TASKS as f64 / rate.max(1) as f64);
    let count = rate * seconds / TASKS;
    let mut tasks = Vec::new();
    for p in 0..TASKS {
        let js = jetstream::new(clients[p as usize % clients.len()].clone());
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut in_flight = futures::stream::FuturesUnordered::new();
            let mut acked = 0u64;
            let mut seq = 0u64;
            while seq < count {
                let due = start + gap * seq as u32;
                tokio::select! {
                    Some(result) = futures::StreamExt::next(&mut in_flight), if !in_flight.is_empty() => {
                        acked += u64::from(matches!(result, Ok(Ok(_))));
                        continue;
                    }
                    _ = tokio::time::sleep_until(due) => {}
                }
                seq += 1;
                let message = jetstream::message::PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(format!("20261202T061500Z-everyday-{round}/{p}/{seq}"));
                if let Ok(ack) = js.send_publish("focus.ping", message).await {
                    in_flight.push(tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        std::future::IntoFuture::into_future(ack),
                    ));
                }
            }
            while let Some(result) = futures::StreamExt::next(&mut in_flight).await {
                acked += u64::from(matches!(result, Ok(Ok(_))));
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await.unwrap_or(0);
    }
    acked
}
