//! The command line (clap derive) and its translation into a validated [`Command`].
//!
//! Nothing here does work: flags are checked and turned into plans, and `lib.rs` executes them.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use anyhow::anyhow;

use crate::capacity::forecast::{self, Forecast};
use crate::capacity::step::Slo;
use crate::capacity::CapacityPlan;
use crate::chaos::commands::{ChaosRequest, HealRequest};
use crate::chaos::schedule::FaultParams;
use crate::checks::thresholds::parse_ratio;
use crate::cluster::commands::{ClusterRequest, ClusterTarget};
use crate::cluster::{BackendKind, ClusterPlan, ClusterProfile, StateDir};
use crate::consumers::{DlqPlan, ServiceConfig, ServiceKind};
use crate::exit::AppError;
use crate::report::trend::TrendPlan;
use crate::run::checkpoint::ScenarioSource;
use crate::run::merge::MergePlan;
use crate::run::segment::Segment;
use crate::run::RunPlan;
use crate::scenario::catalog::{self, CatalogRequest};
use crate::security::context::NatsContext;
use crate::security::{ClientAuth, Role};
use crate::topology::TopologyRequest;
use crate::traffic::Domain;
use crate::Command;

/// Load-and-chaos test harness for AIVO's NATS JetStream event backbone.
#[derive(Debug, Parser)]
#[command(name = "aivo-load", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run a scenario: cluster up, init, load, checks, report, cluster down.
    Run(RunArgs),
    /// List, show or validate scenario files.
    #[command(subcommand)]
    Scenarios(ScenariosCommand),
    /// Start, inspect or stop a cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create or update the declared streams and consumers (idempotent).
    Init(TopologyArgs),
    /// Compare the declared streams and consumers with the live ones; exit 1 on drift.
    Verify(TopologyArgs),
    /// Run the reference indexer: every event of every stream into the Postgres table `events`.
    Indexer(ConsumerArgs),
    /// Run the reference analytics consumer: dashboard aggregates from LEARNING and FOCUS.
    Analytics(ConsumerArgs),
    /// Inspect or replay the dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Apply one fault to the `cluster up` cluster; reverted after --for, on Ctrl-C, or by `heal`.
    Chaos(ChaosArgs),
    /// Revert faults that a killed run or `chaos` command left behind (from the fault journal).
    Heal(HealArgs),
    /// Work with finished runs' reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Find the sustainable rate within a latency SLO (saturation search), the scalability curve,
    /// and what saturated first; writes reports/<UTC>-capacity/capacity.{json,md,html}.
    Capacity(CapacityArgs),
    /// Build the image the workers run (docker `--workers`, Kubernetes' deploy/k8s/) and export
    /// it for a cluster without a registry.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the workers' image from this very binary through the Docker API (FROM scratch +
    /// the binary, the shared libraries it loads and the loader; no base image, no registry;
    /// rebuilt only when the binary changed), tag it, and with --save write a `docker save`
    /// archive for `docker load -i`, `kind load image-archive` or `ctr -n k8s.io images import`.
    /// The image has no shell: its entrypoint is aivo-load. A release build makes a smaller one.
    Build(ImageBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// The name to tag the image as, besides aivo-load/aivo-load:local (what deploy/k8s/ and the
    /// docker workers run).
    #[arg(long, default_value = crate::cluster::docker::harness_image::HARNESS_IMAGE)]
    pub tag: String,
    /// Write the image, under --tag, to this `docker save` archive (a tar).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// Scenario whose traffic mix is measured (its rates only give each source's share).
    #[arg(default_value = "capacity-mix")]
    pub scenario: String,
    /// Measure one domain of the scenario only: learning, focus, homework, recommendation.
    #[arg(long)]
    pub domain: Option<String>,
    /// The latency objective on corrected latency: any percentile (p50, p90, p99, p99.9, max).
    #[arg(long, default_value = "p99 < 50ms")]
    pub slo: String,
    /// Largest share of failed or unknown publishes a sustainable step may have.
    #[arg(long, default_value = "0.1%")]
    pub error_budget: String,
    /// Run the reference indexer (with an embedded Postgres) and require its lag not to grow.
    #[arg(long)]
    pub indexer: bool,
    /// A coarse search that fits in a few minutes (factor-2 steps, 2 s warm-up, 5 s windows,
    /// 2 bisections, scalability at 1, 2 and 4 publishers).
    #[arg(long)]
    pub quick: bool,
    /// The first rate tried, events/s.
    #[arg(long)]
    pub start_rate: Option<f64>,
    /// No rate above this is tried, events/s.
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// Each step's rate is the last one times this.
    #[arg(long)]
    pub step_factor: Option<f64>,
    /// Warm-up of each step (not measured).
    #[arg(long, value_parser = parse_duration_arg)]
    pub warmup: Option<Duration>,
    /// Measured window of each step.
    #[arg(long, value_parser = parse_duration_arg)]
    pub window: Option<Duration>,
    /// Bisection stops when the bad rate is within this share of the good one (e.g. 5%).
    #[arg(long)]
    pub tolerance: Option<String>,
    /// Publishers per traffic source during the search (default: the scenario's).
    #[arg(long)]
    pub publishers: Option<u32>,
    /// Unacknowledged publishes per publisher (default: the scenario's).
    #[arg(long)]
    pub in_flight: Option<u32>,
    /// Publish without a `Nats-Msg-Id` (no JetStream dedup): what producers that never retry cost
    /// the cluster. Default: the scenario's `[publishers] message_id` (on).
    #[arg(long)]
    pub no_message_id: bool,
    /// Publisher counts for the scalability curve, comma-separated; "none" skips it.
    #[arg(long)]
    pub concurrency: Option<String>,
    /// Volumes for the storage model (TOML: learners, events per learner per school day, growth,
    /// horizon, headroom); default: the seed's forecast (`forecasts/seed.toml`).
    #[arg(long)]
    pub forecast: Option<PathBuf>,
    /// Where the cluster comes from.
    #[arg(long, value_parser = backend_parser(), default_value = "local")]
    pub backend: BackendKind,
    /// Cluster URL(s) for --backend external, comma-separated.
    #[arg(long, env = "NATS_URL")]
    pub server: Option<String>,
    /// Directory that receives the `<UTC time>-capacity/` folder.
    #[arg(long, default_value = "reports")]
    pub reports_dir: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Two runs side by side (e.g. the same scenario on --backend local and docker): every headline
    /// figure of A and B, and B against A, with "worse" where B is worse.
    Compare {
        /// A run directory under reports/, or its report.json.
        a: PathBuf,
        /// The run to compare with A.
        b: PathBuf,
    },
    /// Turn a dead run's last checkpoint into a full report: revert the faults it left (as `heal`
    /// does) and, if its cluster is still reachable (a kept, docker or external cluster), run the
    /// ledger and retention checks on everything acked up to the checkpoint. Exit 0 if they pass.
    Recover {
        /// The run directory (holds checkpoint.json).
        run_dir: PathBuf,
    },
    /// Runs over time (nightly soaks): one row per run, oldest first, each headline figure flagged
    /// where it is worse than the median of the earlier runs by more than --tolerance; exit 1 if any
    /// is.
    Trend(TrendArgs),
    /// Merge the partial reports of a segmented run's workers (`run --segment I/N`) into one
    /// report: histograms added, counters summed, timelines aligned on the intended second; then
    /// the ledger read-back, stream counts and retention checks once over every worker's ledgers,
    /// and the thresholds on the merged figures. A worker that never reported fails the verdict
    /// with "worker lost", naming its segment. Exit 0 if every check passed.
    Merge(Box<MergeArgs>),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run's directory (holding segment-I-of-N/ dirs), or the workers' own dirs.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged report goes (default: the run's directory, when one is given).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cluster URL(s) the checks read, comma-separated (default: those the workers used).
    #[arg(long, env = "NATS_URL")]
    pub server: Option<String>,
    /// Warn when two workers' clock offsets to the cluster differ by more than this.
    #[arg(long, default_value = "50ms", value_parser = parse_duration_arg)]
    pub clock_tolerance: Duration,
    /// The Postgres the scenario's indexer (`aivo-load indexer`, run beside the cluster while the
    /// workers ran with --no-consumers) writes to: the merge waits for the indexer's and
    /// analytics' catch-up, then judges `events` and the DLQ against every worker's ledger.
    #[arg(long, env = "DATABASE_URL")]
    pub postgres_url: Option<String>,
    /// The nodes' monitoring endpoints, comma-separated (e.g. http://nats1:8222,...): every
    /// replica of each stream is then compared, and read one by one where they may differ.
    #[arg(long, env = "NATS_MONITOR", value_delimiter = ',', value_name = "URLS")]
    pub monitor: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args)]
pub struct TrendArgs {
    /// Run directories (or their report.json), a directory of run directories such as reports/,
    /// or a quoted pattern such as 'reports/*-chaos-soak'.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// How far a figure may move in the worse direction from the median of the earlier runs.
    #[arg(long, default_value = "20%")]
    pub tolerance: String,
    /// Earlier runs (with the figure) a baseline needs; the runs before are shown, not judged.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_history: u64,
    /// Also write an offline HTML page with a chart per figure (inline SVG).
    #[arg(long)]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConsumerArgs {
    /// Cluster URL(s), comma-separated. Default: the local cluster from `cluster up`, else nats://127.0.0.1:4222.
    #[arg(long, env = "NATS_URL")]
    pub server: Option<String>,
    /// Postgres to write to, e.g. postgres://aivo@127.0.0.1:5432/aivo.
    #[arg(long, env = "DATABASE_URL")]
    pub postgres_url: Option<String>,
    /// Most events per transaction (capped so that the batches in flight, up to four, fit in the consumer's max_ack_pending).
    #[arg(long, default_value_t = 2500)]
    pub batch: usize,
    /// How often to print a status line (rate, lag) on stderr; 0s for never.
    #[arg(long, value_parser = parse_duration_arg, default_value = "5s")]
    pub status_every: Duration,
    /// Streams to read, comma-separated (default: all the consumer's streams).
    #[arg(long, value_delimiter = ',')]
    pub streams: Vec<String>,
    /// Durable consumer name (default: `indexer` / `analytics`).
    #[arg(long)]
    pub consumer: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters grouped by reason, stream and consumer, with counts and samples.
    List(DlqListArgs),
    /// Republish dead letters to their original subjects with their original payloads.
    Replay(DlqReplayArgs),
}

#[derive(Debug, Args)]
pub struct DlqSelection {
    /// Cluster URL(s), comma-separated. Default: the local cluster from `cluster up`, else nats://127.0.0.1:4222.
    #[arg(long, env = "NATS_URL")]
    pub server: Option<String>,
    /// Only dead letters matching key=value terms (stream, consumer, reason, subject with NATS
    /// wildcards, seq as N or N-M of the DLQ stream); repeat or comma-separate.
    #[arg(long)]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// kill | stop | restart | pause | partition | latency | bandwidth | fill-storage | rolling-restart
    /// | corrupt-store
    pub fault: String,
    /// nats1..nats3 | random | minority | leader:STREAM | follower:STREAM | meta-leader
    #[arg(long, default_value = "random")]
    pub target: String,
    /// Revert after this long (e.g. 30s); without it the fault stays until `aivo-load heal`.
    #[arg(long = "for", value_parser = parse_duration_arg)]
    pub hold: Option<Duration>,
    /// Added latency for `latency`, e.g. 200ms.
    #[arg(long)]
    pub latency: Option<String>,
    /// Rate for `bandwidth`, e.g. 256KiB/s.
    #[arg(long)]
    pub bandwidth: Option<String>,
    /// partition: isolate | one-way | bridge; fill-storage: tmpfs | max-file-store;
    /// corrupt-store: bitflip (default) | truncate | zero.
    #[arg(long)]
    pub mode: Option<String>,
    /// corrupt-store: the stream whose store files are damaged, e.g. FOCUS.
    #[arg(long)]
    pub stream: Option<String>,
    /// corrupt-store: blocks (default) | index | meta | raft | snapshots.
    #[arg(long)]
    pub files: Option<String>,
    /// corrupt-store: truncate keeps this part of each file, zero starts there (0..1, default 0.5).
    #[arg(long)]
    pub fraction: Option<f64>,
    /// corrupt-store bitflip: bits flipped in each file (default 1).
    #[arg(long)]
    pub bits: Option<u32>,
    /// corrupt-store zero: bytes zeroed in each file (default 4KiB).
    #[arg(long)]
    pub len: Option<String>,
    /// Seed for `random` targets and corrupt-store's bit positions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Faults run only on clusters aivo-load manages (`local`, or `docker` for the
    /// `cluster up --backend docker` cluster); `external` is refused (exit 2).
    #[arg(long, value_parser = backend_parser(), default_value = "local")]
    pub backend: BackendKind,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub selection: DlqSelection,
    /// Samples shown per group.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
}

#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    #[command(flatten)]
    pub selection: DlqSelection,
    /// Delete each dead letter from the DLQ once its replay is acknowledged.
    #[arg(long)]
    pub remove: bool,
    /// Only say what would be replayed.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct HealArgs {
    /// A run's report directory (its `faults.jsonl`); default: the `cluster up` state dir's journal.
    pub run_dir: Option<PathBuf>,
    /// Which `cluster up` cluster to make whole afterwards (and whose journal is the default).
    #[arg(long, value_parser = backend_parser(), default_value = "local")]
    pub backend: BackendKind,
    /// Restart a node whose stream replica is still behind its leader --stuck-after the reverts
    /// (a stuck replica), then confirm the cluster whole again.
    #[arg(long)]
    pub restart_stuck: bool,
    /// How long a replica may stay behind before --restart-stuck restarts its node.
    #[arg(long, value_parser = parse_duration_arg, default_value = "30s", requires = "restart_stuck")]
    pub stuck_after: Duration,
    #[command(flatten)]
    pub state: StateArgs,
}

/// How a connection identifies itself and does TLS, as the nats CLI's flags say it. Without any of
/// them, a verb aimed at a `cluster up --profile production` cluster (its state dir) takes that
/// cluster's CA and the credentials of the role it needs (admin for `init`, `verify`, `dlq`).
#[derive(Debug, Args, Clone, Default)]
pub struct ClientArgs {
    /// User credentials file (JWT and nkey seed, as nsc writes them).
    #[arg(long, env = "NATS_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// File holding a user's nkey seed (SU...).
    #[arg(long, value_name = "FILE")]
    pub nkey: Option<PathBuf>,
    /// User name (with --password).
    #[arg(long)]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// CA certificate(s) to verify the servers with (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for servers that verify clients; with --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// TLS handshake before the server's INFO (servers with `handshake_first`).
    #[arg(long)]
    pub tls_first: bool,
    /// A nats CLI context (~/.config/nats/context/NAME.json): its url, creds, nkey, user,
    /// password, ca, cert, key and tls_first; flags given beside it win.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClientArgs {
    fn flags(&self) -> ClientAuth {
        ClientAuth {
            creds: self.creds.clone(),
            nkey: self.nkey.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_first: self.tls_first,
        }
    }
}

/// `--profile`: the values and their help come from [`ClusterProfile`].
fn profile_parser() -> impl TypedValueParser<Value = ClusterProfile> {
    let values = ClusterProfile::ALL.map(|p| PossibleValue::new(p.name()).help(p.help()));
    PossibleValuesParser::new(values).try_map(|name| name.parse::<ClusterProfile>())
}

/// `--backend`: the values and their help come from [`BackendKind`], which says what each allows.
fn backend_parser() -> impl TypedValueParser<Value = BackendKind> {
    let values = BackendKind::ALL.map(|kind| PossibleValue::new(kind.name()).help(kind.help()));
    PossibleValuesParser::new(values).try_map(|name| name.parse::<BackendKind>())
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario name (see `aivo-load scenarios list`) or path to a scenario file.
    #[arg(default_value = "focus-burst")]
    pub scenario: String,
    /// Override the scenario's duration, e.g. 30s or 2m; phases are compressed to fit.
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Multiply every rate in the scenario by this factor (e.g. 0.5 on a slow laptop).
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the cluster comes from.
    #[arg(long, value_parser = backend_parser(), default_value = "local")]
    pub backend: BackendKind,
    /// Cluster URL(s) for --backend external, comma-separated.
    #[arg(long, env = "NATS_URL")]
    pub server: Option<String>,
    /// Leave the local cluster running after the run (stop it with `aivo-load cluster down`; local
    /// backend only).
    #[arg(long)]
    pub keep_cluster: bool,
    /// How the run's local cluster is secured; with `production` the publishers and consumers
    /// connect as their role's user.
    #[arg(long, value_parser = profile_parser(), default_value = "open")]
    pub profile: ClusterProfile,
    /// Test-only, hidden: weaken the production profile on purpose (comma-separated:
    /// no-auth-user, plaintext-clients, focus-publishes-learning, publishers-manage-streams,
    /// indexer-publishes-focus, plaintext-routes), to show the security check failing.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub loosen: Vec<crate::security::Loosening>,
    /// Test-only, hidden: after a `[drill]`'s restore, delete this many of the messages the run
    /// wrote to each restored stream, to show the disaster-recovery check failing.
    #[arg(long, hide = true, default_value_t = 0)]
    pub drill_tamper: u64,
    /// Directory that receives `<UTC time>-<scenario>/` report folders.
    #[arg(long, default_value = "reports")]
    pub reports_dir: PathBuf,
    /// Write what the run has measured so far into its run dir this often (report files with
    /// state "running", and checkpoint.json for `report recover`); `off` for never.
    #[arg(long, default_value = "60s", value_parser = parse_checkpoint_arg)]
    pub checkpoint: Checkpoint,
    /// Serve live metrics (Prometheus text format) at http://ADDR/metrics while the run goes,
    /// e.g. 127.0.0.1:9464 (port 0: any free port, printed at the start).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Run only the I-th of N slices of the scenario (a worker of a segmented run): the
    /// publishers whose index within their traffic source is I-1 mod N, with their learners and
    /// their share of the rate; chaos in segment 1 only. N is at most the scenario's publishers.
    /// The run dir is `<reports-dir>/<run id>/segment-I-of-N/` and holds partial.json for
    /// `report merge`.
    #[arg(long, value_name = "I/N")]
    pub segment: Option<String>,
    /// --segment from the environment, for a Kubernetes Indexed Job's pods: VAR holds this
    /// worker's 0-based index (JOB_COMPLETION_INDEX, 0..N-1), so the segment is VAR+1 of N. No
    /// shell needed (the image has none). An unset VAR, or an index outside 0..N-1 (the Job's
    /// completions differ from N), is refused.
    #[arg(long, value_name = "VAR/N", conflicts_with = "segment")]
    pub segment_from_env: Option<String>,
    /// The run id (every worker of a segmented run must share it: it is in every event's
    /// identity). Default: `<UTC time>-<scenario>`, the time being --start-at's if given.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Start the load at this moment (RFC 3339, e.g. 2026-12-03T18:00:00Z): every worker of a
    /// segmented run counts its intended times from it. Refused if more than 1 s in the past.
    #[arg(long, value_name = "RFC3339")]
    pub start_at: Option<String>,
    /// Run none of the scenario's [[chaos]].
    #[arg(long)]
    pub no_chaos: bool,
    /// Run none of the scenario's [consumers] (indexer, analytics) and drive load only: a worker
    /// of a segmented run whose consumers run elsewhere (beside the cluster, or in the `--workers`
    /// run that started it).
    #[arg(long)]
    pub no_consumers: bool,
    /// Start the cluster, declare the streams, run the scenario's consumers and N worker processes
    /// (`--segment i/N`, one --run-id, one --start-at) against it, apply its chaos from their
    /// common second 0, wait for them and merge their partial reports into the run dir (`report
    /// merge`), with the consumers' and the cluster's checks made by this run. The workers drive
    /// load only.
    #[arg(long, value_name = "N", conflicts_with_all = ["segment", "segment_from_env"], value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// A worker (--segment) of a segmented run on an external cluster secured by this aivo-load
    /// production profile (the `security/` dir of a production-profile cluster, or a copy of its
    /// profile.json, ca.pem and users/): each role connects as its own user with the dir's nkey,
    /// certificate and CA files (publishers to their domain, the admin for streams and the clock
    /// probe), as `run --workers N --profile production` starts its workers. Instead of
    /// --creds/--nkey/--user/--tls-*/--context.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["creds", "nkey", "user", "tls_ca", "tls_cert", "tls_key", "context"])]
    pub profile_dir: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `--checkpoint`: an interval, or off.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint(Option<Duration>);

fn parse_checkpoint_arg(text: &str) -> Result<Checkpoint, String> {
    if matches!(text, "off" | "0" | "none") {
        return Ok(Checkpoint(None));
    }
    let every = crate::units::parse_duration(text)?;
    if every < Duration::from_secs(1) {
        return Err("a checkpoint interval is at least 1s (or `off`)".into());
    }
    Ok(Checkpoint(Some(every)))
}

#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// List the scenarios that ship with aivo-load.
    List,
    /// Print a scenario file.
    Show { name: String },
    /// Check a scenario file; errors name file, line and column.
    Validate { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a 3-node cluster in the background (local processes, or with --backend docker the
    /// seed's compose project on ports 4222-4224/8222-8224) and return once it is healthy.
    Up(ClusterArgs),
    /// Show each node's health, routes, JetStream usage and the meta leader.
    Status(ClusterArgs),
    /// Stop the cluster and remove its data (docker: containers, networks and volumes).
    Down(ClusterArgs),
    /// Build the docker backend's FROM scratch NATS image (aivo-load/nats-server:local) from the
    /// local nats-server binary, through the Docker API (no registry needed).
    BuildImage,
    /// Host a local cluster in the foreground until SIGTERM/SIGINT (used by `cluster up`).
    #[command(hide = true)]
    Serve(ClusterArgs),
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[arg(long, value_parser = backend_parser(), default_value = "local")]
    pub backend: BackendKind,
    /// Monitoring URL(s) of an external cluster, comma-separated (for `status --backend external`).
    #[arg(long)]
    pub monitor: Option<String>,
    /// How `up` secures the local cluster; `production` prints a nats context and the
    /// environment to reach it.
    #[arg(long, value_parser = profile_parser(), default_value = "open")]
    pub profile: ClusterProfile,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args, Clone)]
pub struct StateArgs {
    /// Where the local cluster keeps its state file, logs and stores.
    #[arg(long, env = "AIVO_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TopologyArgs {
    /// Cluster URL(s), comma-separated. Default: the local cluster from `cluster up`, else nats://127.0.0.1:4222.
    #[arg(long, env = "NATS_URL")]
    pub server: Option<String>,
    /// Stream replicas (the seed uses 3 on its 3-node cluster).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// `verify` only: audit the cluster (read-only) against the seed's production list instead:
    /// auth and TLS required (clients and routes), no no_auth_user, max_file_store and
    /// max_memory_store large enough for the declared streams, a JetStream domain, a system
    /// account. Exit 1 if an item fails.
    #[arg(long)]
    pub production: bool,
    /// With --production: the nodes' monitoring URLs, comma-separated. Default: the `cluster up`
    /// cluster's, else port 8222 on each server's host.
    #[arg(long)]
    pub monitor: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Parses "90s", "2m", "1h30m", "250ms".
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    crate::units::parse_duration(text)
}

/// Parses the process's arguments (clap prints help or a usage error and exits itself).
pub fn parse() -> Cli {
    Cli::parse()
}

/// Turns parsed flags into a validated command.
pub fn into_command(cli: Cli) -> Result<Command, AppError> {
    Ok(match cli.command {
        CliCommand::Run(args) => Command::Run(Box::new(run_plan(args)?)),
        CliCommand::Scenarios(cmd) => Command::Scenarios(catalog_request(cmd)),
        CliCommand::Cluster(cmd) => Command::Cluster(cluster_request(cmd)),
        CliCommand::Init(args) => Command::Init(topology_request(args)?),
        CliCommand::Verify(args) if args.production => {
            Command::VerifyProduction(production_audit(args)?)
        }
        CliCommand::Verify(args) => Command::Verify(topology_request(args)?),
        CliCommand::Indexer(args) => {
            Command::Consumer(consumer_config(ServiceKind::Indexer, args)?)
        }
        CliCommand::Analytics(args) => {
            Command::Consumer(consumer_config(ServiceKind::Analytics, args)?)
        }
        CliCommand::Dlq(cmd) => Command::Dlq(dlq_plan(cmd)?),
        CliCommand::Chaos(args) => Command::Chaos(chaos_request(args)),
        CliCommand::Heal(args) => Command::Heal(HealRequest {
            run_dir: args.run_dir,
            backend: args.backend,
            state: args.state.into(),
            restart_stuck: args.restart_stuck.then_some(args.stuck_after),
        }),
        CliCommand::Report(ReportCommand::Compare { a, b }) => Command::ReportCompare { a, b },
        CliCommand::Report(ReportCommand::Recover { run_dir }) => {
            Command::ReportRecover { run_dir }
        }
        CliCommand::Report(ReportCommand::Trend(args)) => Command::ReportTrend(TrendPlan {
            inputs: args.runs,
            tolerance: parse_ratio(&args.tolerance)
                .map_err(|e| AppError::usage(anyhow!("--tolerance: {e}")))?,
            min_history: usize::try_from(args.min_history).unwrap_or(usize::MAX),
            html: args.html,
        }),
        CliCommand::Capacity(args) => Command::Capacity(Box::new(capacity_plan(args)?)),
        CliCommand::Image(ImageCommand::Build(args)) => {
            // A bad name is refused before a build spends seconds on it.
            crate::cluster::docker::harness_image::split_reference(&args.tag)
                .map_err(|e| AppError::usage(anyhow!(e)))?;
            Command::ImageBuild(crate::cluster::docker::commands::ImageBuildPlan {
                tag: args.tag,
                save: args.save,
            })
        }
        CliCommand::Report(ReportCommand::Merge(args)) => {
            let args = *args;
            let (server, auth) =
                client_target(args.server, &args.client, &args.state, Role::Admin)?;
            Command::ReportMerge(MergePlan {
                inputs: args.dirs,
                out: args.out,
                server,
                auth,
                clock_tolerance: args.clock_tolerance,
                backend: None,
                postgres_url: args.postgres_url,
                monitor: args.monitor,
            })
        }
    })
}

impl From<StateArgs> for StateDir {
    fn from(args: StateArgs) -> Self {
        StateDir {
            explicit: args.state_dir,
        }
    }
}

/// The scenario resolved and adjusted, the cluster's flags checked together.
fn run_plan(args: RunArgs) -> Result<RunPlan, AppError> {
    let mut scenario = catalog::resolve(&args.scenario)?
        .adjusted(args.duration, args.rate_scale, args.seed)
        .map_err(|e| AppError::usage(anyhow!(e)))?;
    let usage = |e: String| AppError::usage(anyhow!(e));
    let segment = match (&args.segment, &args.segment_from_env) {
        (Some(text), _) => text
            .parse::<Segment>()
            .map_err(|e| usage(format!("--segment: {e}")))?,
        (None, Some(spec)) => Segment::from_index_variable(spec, |name| std::env::var(name).ok())
            .map_err(|e| usage(format!("--segment-from-env {spec}: {e}")))?,
        (None, None) => Segment::WHOLE,
    };
    segment.fits(scenario.publishers).map_err(usage)?;
    if args.no_consumers {
        scenario.consumers = Default::default();
    }
    if !segment.is_whole() && scenario.consumers.any() {
        return Err(usage(format!(
            "--segment {segment}: the scenario {} runs consumers (indexer/analytics), which one \
             worker of a segmented run cannot judge alone: add --no-consumers and run them beside \
             the cluster, or use `run --workers N`, which runs them itself",
            scenario.name
        )));
    }
    if let Some(count) = args.workers {
        Segment { index: 1, count }
            .fits(scenario.publishers)
            .map_err(usage)?;
    }
    if args.no_chaos || !segment.runs_chaos() {
        scenario.chaos = crate::chaos::schedule::ChaosPlan::default();
    }
    let start_at = args
        .start_at
        .as_deref()
        .map(|text| parse_start_at(text, time::OffsetDateTime::now_utc()))
        .transpose()
        .map_err(|e| usage(format!("--start-at: {e}")))?;
    if let Some(id) = &args.run_id {
        check_run_id(id).map_err(|e| usage(format!("--run-id: {e}")))?;
    }
    if !segment.is_whole() && args.run_id.is_none() && start_at.is_none() {
        return Err(usage(format!(
            "--segment {segment}: give --run-id or --start-at (every worker must share one run id: \
             it is in each event's identity)"
        )));
    }
    let (server, auth) = client_target(args.server, &args.client, &args.state, Role::Admin)?;
    // A scenario with `[cluster] profile = "production"` (security-audit) implies the flag.
    let profile = if scenario.requires_production {
        ClusterProfile::Production
    } else {
        args.profile
    };
    let cluster = ClusterPlan::new(args.backend, server.as_deref(), args.state.into())
        .map_err(usage)?
        .with_profile(profile)
        .map_err(|e| {
            usage(if scenario.requires_production {
                format!(
                    "the scenario {} needs the production profile: {e}",
                    scenario.name
                )
            } else {
                e
            })
        })?
        .with_auth(auth)
        .with_profile_dir(args.profile_dir.clone())
        .map_err(usage)?;
    if args.profile_dir.is_some() && segment.is_whole() {
        return Err(usage(
            "--profile-dir is for a worker of a segmented run (--segment I/N or \
             --segment-from-env VAR/N): a whole run on a production-profile cluster also runs the \
             security probes, which need the monitoring endpoints an external cluster does not \
             give (audit one with `verify --production`)"
                .into(),
        ));
    }
    if let Some(drill) = scenario.drill {
        let workers = args.workers.is_some_and(|n| n > 1);
        let own_cluster = !args.keep_cluster && args.backend.manages_faults();
        refuse_drill(
            &scenario.name,
            drill,
            scenario.duration,
            own_cluster,
            workers,
            &segment,
        )?;
    } else if args.drill_tamper > 0 {
        return Err(usage(
            "--drill-tamper needs a scenario with a [drill]".into(),
        ));
    }
    if !args.loosen.is_empty() && (profile != ClusterProfile::Production || args.keep_cluster) {
        return Err(usage(
            "--loosen weakens the production profile of the run's own cluster: it needs \
             --profile production and no --keep-cluster"
                .into(),
        ));
    }
    let cluster = ClusterPlan {
        loosen: args.loosen,
        ..cluster
    };
    crate::chaos::guard::refuse_external(args.backend, &scenario.chaos.faults())?;
    let cluster = cluster.keeping(args.keep_cluster).map_err(usage)?;
    Ok(RunPlan {
        drill_tamper: args.drill_tamper,
        scenario,
        rate_scale: args.rate_scale,
        cluster,
        reports_dir: args.reports_dir,
        source: ScenarioSource {
            name_or_path: args.scenario,
            duration_s: args.duration.map(|d| d.as_secs_f64()),
            rate_scale: args.rate_scale,
            seed: args.seed,
        },
        checkpoint: args.checkpoint.0,
        metrics_addr: args.metrics_addr,
        segment,
        run_id: args.run_id,
        start_at,
        workers: args.workers.filter(|n| *n > 1),
    })
}

/// A `[drill]` deletes the stores of the cluster it runs on: only a cluster the run starts itself,
/// in one process, whose load outlasts the snapshot.
fn refuse_drill(
    name: &str,
    drill: crate::scenario::model::DrillSettings,
    duration: std::time::Duration,
    own_cluster: bool,
    workers: bool,
    segment: &crate::run::segment::Segment,
) -> Result<(), AppError> {
    let why = if !own_cluster {
        "it deletes the stores of the cluster it runs on, so it runs only on a cluster the run \
         starts itself (local or docker backend, no --keep-cluster)"
    } else if !segment.is_whole() || workers {
        "it needs every publisher's ledger in one process (no --segment or --workers)"
    } else if drill.snapshot_at >= duration {
        "its snapshot_at falls after the end of the load (a shorter --duration?)"
    } else {
        return Ok(());
    };
    Err(AppError::usage(anyhow!(
        "the scenario {name} has a [drill]: {why}"
    )))
}

/// `--start-at`: an RFC 3339 moment no more than a second before `now`.
fn parse_start_at(text: &str, now: time::OffsetDateTime) -> Result<time::OffsetDateTime, String> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("\"{text}\" is not an RFC 3339 time such as 2026-12-03T18:00:00Z ({e})")
        })?;
    let past = now - at;
    if past > time::Duration::seconds(1) {
        return Err(format!(
            "{text} is {:.1} s in the past (a start more than 1 s ago is refused: the workers \
             would disagree on their intended times)",
            past.as_seconds_f64()
        ));
    }
    Ok(at)
}

/// A run id goes into every event's identity and names a directory: letters, digits, `-`, `_`,
/// `.` only.
fn check_run_id(id: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.len() > 100 || !id.chars().all(fine) || id.starts_with('.') {
        return Err(format!(
            "\"{id}\": use 1-100 letters, digits, '-', '_' or '.' (not starting with '.')"
        ));
    }
    Ok(())
}

fn capacity_plan(args: CapacityArgs) -> Result<CapacityPlan, AppError> {
    let usage = |e: String| AppError::usage(anyhow!(e));
    let mut scenario = catalog::resolve(&args.scenario)?;
    if let Some(domain) = &args.domain {
        let wanted: Domain = serde_json::from_value(serde_json::Value::String(domain.clone()))
            .map_err(|_| {
                usage(format!(
                    "--domain: unknown domain \"{domain}\" (learning, focus, homework, recommendation)"
                ))
            })?;
        scenario.traffic.retain(|t| t.domain == wanted);
        if scenario.traffic.is_empty() {
            return Err(usage(format!(
                "--domain {domain}: the scenario {} has no {domain} traffic",
                scenario.name
            )));
        }
    }
    if let Some(publishers) = args.publishers {
        scenario.publishers = publishers.max(1);
    }
    if let Some(in_flight) = args.in_flight {
        scenario.in_flight = in_flight.max(1);
    }
    if args.no_message_id {
        scenario.message_id = false;
    }
    scenario.consumers.indexer = args.indexer;
    scenario.consumers.analytics = false;
    let slo = Slo::parse(&args.slo).map_err(usage)?;
    let error_budget =
        parse_ratio(&args.error_budget).map_err(|e| usage(format!("--error-budget: {e}")))?;
    let (mut search, warmup, window, mut concurrency) = CapacityPlan::settings_for(args.quick);
    search.start = args.start_rate.unwrap_or(search.start);
    search.max = args.max_rate.unwrap_or(search.max);
    search.factor = args.step_factor.unwrap_or(search.factor);
    if let Some(tolerance) = &args.tolerance {
        search.tolerance =
            parse_ratio(tolerance).map_err(|e| usage(format!("--tolerance: {e}")))?;
    }
    crate::capacity::search::Search::new(search).map_err(usage)?;
    let warmup = args.warmup.unwrap_or(warmup);
    let window = args.window.unwrap_or(window);
    if window < Duration::from_secs(3) {
        return Err(usage(
            "--window must be at least 3s (its thirds are compared)".into(),
        ));
    }
    if let Some(list) = &args.concurrency {
        concurrency = if list == "none" {
            Vec::new()
        } else {
            list.split(',')
                .map(|n| n.trim().parse::<u32>().ok().filter(|n| *n > 0))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| {
                    usage(format!(
                        "--concurrency expects publisher counts like 1,2,4,8 or \"none\", found \"{list}\""
                    ))
                })?
        };
    }
    let forecast = match &args.forecast {
        None => Forecast::seed(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--forecast: cannot read {}: {e}", path.display())))?;
            forecast::parse(&path.display().to_string(), &text).map_err(|e| usage(e.to_string()))?
        }
    };
    let (server, auth) = client_target(args.server, &args.client, &args.state, Role::Admin)?;
    let cluster = ClusterPlan::new(args.backend, server.as_deref(), args.state.into())
        .map_err(usage)?
        .with_auth(auth);
    Ok(CapacityPlan {
        forecast,
        scenario,
        slo,
        error_budget,
        cluster,
        search,
        warmup,
        window,
        concurrency,
        quick: args.quick,
        reports_dir: args.reports_dir,
    })
}

fn catalog_request(cmd: ScenariosCommand) -> CatalogRequest {
    match cmd {
        ScenariosCommand::List => CatalogRequest::List,
        ScenariosCommand::Show { name } => CatalogRequest::Show { name },
        ScenariosCommand::Validate { file } => CatalogRequest::Validate { file },
    }
}

fn cluster_request(cmd: ClusterCommand) -> ClusterRequest {
    let target = |args: ClusterArgs| ClusterTarget {
        backend: args.backend,
        monitor: args.monitor,
        state: args.state.into(),
        profile: args.profile,
    };
    match cmd {
        ClusterCommand::Up(args) => ClusterRequest::Up(target(args)),
        ClusterCommand::Status(args) => ClusterRequest::Status(target(args)),
        ClusterCommand::Down(args) => ClusterRequest::Down(target(args)),
        ClusterCommand::BuildImage => ClusterRequest::BuildImage,
        ClusterCommand::Serve(args) => ClusterRequest::Serve(target(args)),
    }
}

/// `verify --production`: the servers and client options as for `verify`; the monitoring URLs
/// from `--monitor`, the `cluster up` cluster, or port 8222 on each server's host.
fn production_audit(
    args: TopologyArgs,
) -> Result<crate::checks::production::ProductionAudit, AppError> {
    let replicas = crate::topology::validate_replicas(args.replicas)
        .map_err(|e| AppError::usage(anyhow!(e)))?;
    let (server, auth) = client_target(args.server, &args.client, &args.state, Role::Admin)?;
    let kept = crate::cluster::state::load(&args.state.clone().into());
    let server = server_or_default(server, args.state);
    let monitor_urls: Vec<String> = match (args.monitor, kept) {
        (Some(list), _) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        (None, Some(kept)) if kept.endpoints.server_list() == server => kept
            .endpoints
            .nodes
            .iter()
            .map(|n| n.monitor_url.clone())
            .collect(),
        (None, _) => server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|url| {
                let host = url.split("://").last().unwrap_or(url);
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                format!("http://{host}:8222")
            })
            .collect(),
    };
    if monitor_urls.is_empty() {
        return Err(AppError::usage(anyhow!(
            "verify --production needs the nodes' monitoring URLs: --monitor http://host:8222,..."
        )));
    }
    Ok(crate::checks::production::ProductionAudit {
        server,
        monitor_urls,
        auth,
        replicas,
    })
}

fn topology_request(args: TopologyArgs) -> Result<TopologyRequest, AppError> {
    let (server, auth) = client_target(args.server, &args.client, &args.state, Role::Admin)?;
    Ok(TopologyRequest {
        server: server_or_default(server, args.state),
        replicas: args.replicas,
        auth,
    })
}

fn chaos_request(args: ChaosArgs) -> ChaosRequest {
    ChaosRequest {
        fault: args.fault,
        params: FaultParams {
            latency: args.latency,
            bandwidth: args.bandwidth,
            mode: args.mode,
            stream: args.stream,
            files: args.files,
            fraction: args.fraction,
            bits: args.bits,
            len: args.len,
        },
        target: args.target,
        hold: args.hold,
        seed: args.seed,
        backend: args.backend,
        state: args.state.into(),
    }
}

/// `--server` / `NATS_URL` (clap reads both), else the local cluster from `cluster up`, else the
/// seed's first node.
fn server_or_default(server: Option<String>, state: StateArgs) -> String {
    server
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| crate::cluster::state::default_server(&state.into()))
}

/// The server list and client options of a verb that connects, from (first wins) its flags and
/// environment (`--server`/`NATS_URL`, `--creds`/`NATS_CREDS`, ...), its `--context`, and the
/// `cluster up` cluster of its state dir: when neither flags nor context give an identity or TLS
/// and that cluster has the production profile, `role`'s credentials and its CA. The server is
/// `None` when nothing names one (the caller's default applies).
fn client_target(
    server: Option<String>,
    client: &ClientArgs,
    state: &StateArgs,
    role: Role,
) -> Result<(Option<String>, ClientAuth), AppError> {
    let usage = |e: crate::security::SecurityError| AppError::usage(anyhow!(e));
    let context = client
        .context
        .as_deref()
        .map(NatsContext::load)
        .transpose()
        .map_err(usage)?;
    let server = server
        .filter(|s| !s.trim().is_empty())
        .or_else(|| context.as_ref().and_then(NatsContext::server));
    let mut auth = client.flags();
    if let Some(context) = &context {
        auth = auth.or(&context.auth());
    }
    if auth.is_anonymous() {
        if let Some(kept) = crate::cluster::Cluster::kept_endpoints(&state.clone().into()) {
            let ours = server.as_deref().is_none_or(|s| s == kept.server_list());
            if ours {
                auth = kept.client_auth(&role).map_err(usage)?;
            }
        }
    }
    auth.validate().map_err(usage)?;
    Ok((server, auth))
}

fn consumer_config(kind: ServiceKind, args: ConsumerArgs) -> Result<ServiceConfig, AppError> {
    let postgres_url = args
        .postgres_url
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            AppError::usage(anyhow!(
                "{} needs a Postgres: give --postgres-url or set DATABASE_URL \
                 (`aivo-load run` starts an embedded one by itself)",
                kind.command()
            ))
        })?;
    if args.batch == 0 {
        return Err(AppError::usage(anyhow!("--batch must be at least 1")));
    }
    let role = match kind {
        ServiceKind::Indexer => Role::Indexer,
        ServiceKind::Analytics => Role::Analytics,
    };
    let (server, auth) = client_target(args.server, &args.client, &args.state, role)?;
    let server = server_or_default(server, args.state);
    let mut config = ServiceConfig::new(kind, &server, &postgres_url);
    config.auth = auth;
    config.batch = args.batch;
    config.status_every = (!args.status_every.is_zero()).then_some(args.status_every);
    if !args.streams.is_empty() {
        config.streams = args.streams;
    }
    if let Some(consumer) = args.consumer {
        config.consumer = consumer;
    }
    Ok(config)
}

fn dlq_plan(cmd: DlqCommand) -> Result<DlqPlan, AppError> {
    use crate::consumers::dlq::DlqFilter;
    let filter_of = |terms: &[String]| DlqFilter::parse(terms).map_err(AppError::usage);
    Ok(match cmd {
        DlqCommand::List(args) => {
            let s = args.selection;
            let (server, auth) = client_target(s.server, &s.client, &s.state, Role::Admin)?;
            DlqPlan::List {
                filter: filter_of(&s.filter)?,
                server: server_or_default(server, s.state),
                auth,
                samples: args.samples,
            }
        }
        DlqCommand::Replay(args) => {
            let s = args.selection;
            let (server, auth) = client_target(s.server, &s.client, &s.state, Role::Admin)?;
            DlqPlan::Replay {
                filter: filter_of(&s.filter)?,
                server: server_or_default(server, s.state),
                auth,
                remove: args.remove,
                dry_run: args.dry_run,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_more_than_a_second_ago_is_refused() {
        let now = time::macros::datetime!(2026-12-03 18:00:00 UTC);
        let at = parse_start_at("2026-12-03T18:00:05Z", now).expect("future");
        assert_eq!(at, time::macros::datetime!(2026-12-03 18:00:05 UTC));
        assert!(parse_start_at("2026-12-03T17:59:59.5Z", now).is_ok());
        let error = parse_start_at("2026-12-03T17:59:58Z", now).expect_err("2 s ago");
        assert!(error.contains("in the past"), "{error}");
        let error = parse_start_at("tomorrow", now).expect_err("not a time");
        assert!(error.contains("RFC 3339"), "{error}");
        assert!(check_run_id("20261203T180000Z-focus-burst").is_ok());
        assert!(check_run_id("../x").is_err());
    }

    #[test]
    fn a_profile_dir_is_for_an_external_cluster_with_a_profile_in_it() {
        use clap::Parser as _;
        let plan = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            into_command(cli).map(|_| ())
        };
        let error = plan(&["aivo-load", "run", "--profile-dir", "/tmp"]).expect_err("local");
        assert!(
            format!("{error:#}").contains("names the profile of an external cluster"),
            "{error:#}"
        );
        let empty = tempfile::tempdir().expect("tempdir");
        let dir = empty.path().to_str().expect("utf-8");
        let error = plan(&[
            "aivo-load",
            "run",
            "--backend",
            "external",
            "--server",
            "nats://127.0.0.1:4222",
            "--profile-dir",
            dir,
            "--segment",
            "1/2",
            "--run-id",
            "x",
        ])
        .expect_err("no profile.json");
        assert!(
            format!("{error:#}").contains("--profile-dir")
                && format!("{error:#}").contains("profile.json"),
            "{error:#}"
        );
        let both = Cli::try_parse_from([
            "aivo-load",
            "run",
            "--profile-dir",
            dir,
            "--creds",
            "x.creds",
        ]);
        assert!(both.is_err(), "one way to connect");
    }

    #[test]
    fn a_segment_without_a_shared_run_id_is_refused() {
        use clap::Parser as _;
        let plan = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            into_command(cli).map(|_| ())
        };
        let error =
            plan(&["aivo-load", "run", "focus-burst", "--segment", "2/3"]).expect_err("no run id");
        assert!(
            format!("{error:#}").contains("--run-id or --start-at"),
            "{error:#}"
        );
        let error = plan(&[
            "aivo-load",
            "run",
            "focus-burst",
            "--segment",
            "1/5",
            "--run-id",
            "r",
        ])
        .expect_err("5 > 4 publishers");
        assert!(
            format!("{error:#}").contains("at most 4 segments"),
            "{error:#}"
        );
        plan(&[
            "aivo-load",
            "run",
            "focus-burst",
            "--segment",
            "2/3",
            "--run-id",
            "r",
        ])
        .expect("a shared run id");
    }
}
