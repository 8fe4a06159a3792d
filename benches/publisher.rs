//! `run`'s load phase vs a bare async-nats publish loop at overload, side by side in one bench run.
//!
//! Four sides, on the same embedded 3-node cluster, each on a freshly created R3 FOCUS stream, in an
//! order that reverses every round (ABCD DCBA …) so drift in the machine hits all of them:
//!
//! - **bare, plain**: `P` tasks (one per publisher, spread over one connection per node, as `run`
//!   connects), each with at most `W` acks outstanding, a fixed payload of the harness's mean size,
//!   no headers;
//! - **run, message_id = false**: the real load phase of `run` (`aivo_load::run::bench_load`): a
//!   scenario parsed from TOML, its publishers (open-model schedule, Poisson arrivals, JSON
//!   synthesis, ledger, three histograms per event and one per subject), the per-second sampler
//!   with its abort-on-fail check, and the progress bar (drawn only on a terminal);
//! - **bare, Nats-Msg-Id**: as the plain loop, each message with a unique `Nats-Msg-Id` of the
//!   harness's shape and length (`<run id>/<publisher>/<seq>`);
//! - **run, message_id = true**.
//!
//! The scenario's rate is above what the cluster takes (overload): publishers send as fast as their
//! windows allow and skip what is overdue by more than the send grace (5 s), so a side lasts about
//! `BENCH_SECONDS` + 5 s. Reported per side: acked events per second and CPU per acked event, the
//! process's CPU (`/proc/self/stat`, utime + stime) over the side *minus* the threads of the local
//! cluster's route proxies (`aivo-route-prox`, in this process but no part of a publisher; their
//! share is printed apart). Not included on the run side: connecting, declaring streams, the checks
//! after the load, tracing output (no subscriber is installed here; `run` installs one but logs
//! nothing per event). Medians over the rounds and the ratios run / matching bare loop.
//!
//!     cargo bench --bench publisher
//!     BENCH_ROUNDS=5 BENCH_SECONDS=6 BENCH_RATE=90000 BENCH_PUBLISHERS=4 BENCH_WINDOW=256 cargo bench --bench publisher
//!
//! `BENCH_SIDES` picks sides by number (1 bare plain, 2 run without ids, 3 bare with ids, 4 run
//! with ids), e.g. `BENCH_SIDES=2` to profile the run path alone under `perf record`; the ratios
//! are then printed only for pairs that ran.

mod common;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/focus.rs"]
mod focus;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aivo_load::cluster::local::{LocalCluster, LocalClusterConfig};
use aivo_load::traffic::population::Population;
use aivo_load::traffic::{make_source, Domain, Mix};
use async_nats::jetstream;
use bytes::Bytes;
use cpu::{median, CpuSample};
use futures::stream::{FuturesUnordered, StreamExt};

/// The route proxies' thread name (`cluster/proxy.rs`), excluded from the sides' CPU.
const PROXY_THREAD: &str = "aivo-route-prox";
/// A run id of the usual length (`<UTC time>-<scenario>`), so message ids have their real size.
const RUN_ID: &str = "20261202T061500Z-focus-burs";

fn main() -> anyhow::Result<()> {
    common::run("publisher", bench)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    BarePlain,
    RunPlain,
    BareMsgId,
    RunMsgId,
}

impl Side {
    const ALL: [Side; 4] = [
        Side::BarePlain,
        Side::RunPlain,
        Side::BareMsgId,
        Side::RunMsgId,
    ];

    fn name(self) -> &'static str {
        match self {
            Side::BarePlain => "bare, plain",
            Side::RunPlain => "run, message_id=false",
            Side::BareMsgId => "bare, Nats-Msg-Id",
            Side::RunMsgId => "run, message_id=true",
        }
    }

    fn message_id(self) -> bool {
        matches!(self, Side::BareMsgId | Side::RunMsgId)
    }
}

/// What one side did in one round.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    rate: f64,
    cpu_us_per_event: f64,
    proxy_cpu_share: f64,
}

struct Knobs {
    rounds: u64,
    seconds: u64,
    rate: u64,
    publishers: u64,
    window: u64,
}

async fn bench() -> anyhow::Result<()> {
    let knobs = Knobs {
        rounds: common::env_or("BENCH_ROUNDS", 3),
        seconds: common::env_or("BENCH_SECONDS", 5),
        rate: common::env_or("BENCH_RATE", 90_000),
        publishers: common::env_or("BENCH_PUBLISHERS", 4),
        window: common::env_or("BENCH_WINDOW", 256),
    };
    let dir = tempfile::tempdir()?;
    let cluster = LocalCluster::start(LocalClusterConfig::new(dir.path().to_path_buf())).await?;
    let mut clients = Vec::new();
    for node in &cluster.endpoints().nodes {
        clients.push(async_nats::connect(node.client_url.as_str()).await?);
    }
    let js = jetstream::new(clients[0].clone());
    let size = mean_payload_size()?;
    println!(
        "publisher bench: {} rounds x 4 sides, {} s of load + 5 s grace each, target {}/s, {} publishers x {} in flight, payload {size} B, R3 FOCUS",
        knobs.rounds, knobs.seconds, knobs.rate, knobs.publishers, knobs.window
    );

    let mut results: Vec<Vec<Round>> = vec![Vec::new(); Side::ALL.len()];
    let sides = chosen_sides()?;
    for round in 0..knobs.rounds {
        let mut order = sides.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for side in order {
            focus::fresh_stream(&js).await?;
            let before = CpuSample::now(PROXY_THREAD);
            let (acked, elapsed) = match side {
                Side::BarePlain | Side::BareMsgId => {
                    bare_loop(&clients, &knobs, size, side.message_id()).await
                }
                Side::RunPlain | Side::RunMsgId => {
                    harness(&clients, &knobs, round, side.message_id()).await?
                }
            };
            let after = CpuSample::now(PROXY_THREAD);
            let r = Round {
                rate: acked as f64 / elapsed.as_secs_f64(),
                cpu_us_per_event: after.since(&before).as_secs_f64() * 1e6 / acked.max(1) as f64,
                proxy_cpu_share: after.excluded_since(&before).as_secs_f64()
                    / elapsed.as_secs_f64(),
            };
            println!(
                "  round {}: {:<22} {:>8.0} acked/s  {:>6.2} µs CPU/event  (proxies {:.2} cores)",
                round + 1,
                side.name(),
                r.rate,
                r.cpu_us_per_event,
                r.proxy_cpu_share
            );
            results[Side::ALL.iter().position(|s| *s == side).unwrap_or(0)].push(r);
        }
    }
    let med = |i: usize| {
        let rate = median(&results[i].iter().map(|r| r.rate).collect::<Vec<_>>());
        let cpu = median(
            &results[i]
                .iter()
                .map(|r| r.cpu_us_per_event)
                .collect::<Vec<_>>(),
        );
        (rate, cpu)
    };
    println!("medians:");
    for (i, side) in Side::ALL.iter().enumerate() {
        if results[i].is_empty() {
            continue;
        }
        let (rate, cpu) = med(i);
        println!(
            "  {:<22} {rate:>8.0} acked/s  {cpu:>6.2} µs CPU/event",
            side.name()
        );
    }
    for (run, bare, what) in [(1, 0, "without dedup ids"), (3, 2, "with dedup ids")] {
        if results[run].is_empty() || results[bare].is_empty() {
            continue;
        }
        let ((run_rate, run_cpu), (bare_rate, bare_cpu)) = (med(run), med(bare));
        println!(
            "  {what:<18} run/bare rate {:.3} (target >= 0.95), CPU/event {:.2}x (target <= 1.2x)",
            run_rate / bare_rate,
            run_cpu / bare_cpu
        );
    }
    drop(js);
    for client in clients {
        let _ = client.drain().await;
    }
    cluster.shutdown().await;
    Ok(())
}

/// The sides `BENCH_SIDES` names (`1,2,3,4`, the default: all), in the order of [`Side::ALL`].
fn chosen_sides() -> anyhow::Result<Vec<Side>> {
    let Ok(text) = std::env::var("BENCH_SIDES") else {
        return Ok(Side::ALL.to_vec());
    };
    let mut sides = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: usize = part
            .parse()
            .ok()
            .filter(|n| (1..=Side::ALL.len()).contains(n))
            .ok_or_else(|| anyhow::anyhow!("BENCH_SIDES: {part:?} is not a side (1 to 4)"))?;
        sides.push(Side::ALL[n - 1]);
    }
    sides.sort_by_key(|s| Side::ALL.iter().position(|a| a == s));
    sides.dedup();
    anyhow::ensure!(!sides.is_empty(), "BENCH_SIDES names no side");
    Ok(sides)
}

/// The mean payload size of the focus mix, for the bare loop's fixed payload.
fn mean_payload_size() -> anyhow::Result<usize> {
    let population = Arc::new(Population::generate(7, 20, 2000));
    let mix = Mix::new(&Domain::Focus.default_mix()).map_err(anyhow::Error::msg)?;
    let mut probe = make_source(Domain::Focus, mix, population, RUN_ID.into(), 0, 7);
    let now = time::OffsetDateTime::now_utc();
    Ok((1..=1000)
        .map(|s| probe.next_event(s, now).payload.len())
        .sum::<usize>()
        / 1000)
}

/// `run`'s load phase on a constant-rate focus scenario: (acked, elapsed).
async fn harness(
    clients: &[async_nats::Client],
    knobs: &Knobs,
    round: u64,
    message_id: bool,
) -> anyhow::Result<(u64, Duration)> {
    let toml = format!(
        r#"
name = "publisher-bench"
duration = "{seconds}s"
seed = 7
[population]
tenants = 20
learners = 2000
[publishers]
count = {publishers}
in_flight = {window}
ack_timeout = "5s"
message_id = {message_id}
[[traffic]]
domain = "focus"
rate = [ {{ at = "0s", rate = "{rate}/s" }} ]
"#,
        seconds = knobs.seconds,
        publishers = knobs.publishers,
        window = knobs.window,
        rate = knobs.rate,
    );
    let scenario = aivo_load::scenario::load::parse("bench.toml", &toml)?;
    // A distinct run id per round and mode, of the usual length.
    let run_id = format!(
        "{}{}{}",
        &RUN_ID[..RUN_ID.len() - 2],
        round % 10,
        u8::from(message_id)
    );
    let outcome = aivo_load::run::bench_load(Arc::new(scenario), clients, &run_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((outcome.acked, outcome.elapsed))
}

/// `knobs.publishers` plain publish loops for as long as a harness side lasts: (acked, elapsed).
async fn bare_loop(
    clients: &[async_nats::Client],
    knobs: &Knobs,
    size: usize,
    message_id: bool,
) -> (u64, Duration) {
    let payload = Bytes::from(vec![b'x'; size]);
    let until = Instant::now() + Duration::from_secs(knobs.seconds + 5);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..knobs.publishers {
        let client = clients[p as usize % clients.len()].clone();
        let payload = payload.clone();
        let window = knobs.window as usize;
        tasks.push(tokio::spawn(async move {
            let js = jetstream::ContextBuilder::new()
                .timeout(Duration::from_secs(5))
                .max_ack_inflight(window * 2)
                .build(client);
            let prefix = format!("{}/{p}/", &RUN_ID[..RUN_ID.len() - 1]);
            let mut in_flight = FuturesUnordered::new();
            let mut acked = 0u64;
            let mut seq = 0u64;
            while Instant::now() < until {
                if in_flight.len() >= window {
                    if let Some(Ok(_)) = in_flight.next().await {
                        acked += 1;
                    }
                }
                seq += 1;
                let mut publish =
                    jetstream::message::PublishMessage::build().payload(payload.clone());
                if message_id {
                    publish = publish.message_id(format!("{prefix}{seq}"));
                }
                match js.send_publish("focus.ping", publish).await {
                    Ok(ack) => in_flight.push(ack.into_future()),
                    Err(_) => continue,
                }
            }
            while let Some(result) = in_flight.next().await {
                if result.is_ok() {
                    acked += 1;
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await.unwrap_or(0);
    }
    (acked, started.elapsed())
}
