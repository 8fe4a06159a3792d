//! aivo-load: a load-and-chaos test harness for AIVO's NATS JetStream event backbone.
//!
//! The binary is thin (`main.rs`); this crate holds the work. A command line becomes a [`Command`]
//! (validated in `cli.rs`), and [`execute`] runs it on a Tokio runtime and returns the exit status.

pub mod capacity;
pub mod chaos;
pub mod checks;
mod child;
pub mod cli;
pub mod cluster;
pub mod consumers;
pub mod durable_fs;
pub mod event;
pub mod exit;
pub mod load;
pub mod report;
pub mod run;
pub mod scenario;
pub mod security;
pub mod topology;
pub mod traffic;
pub mod units;

pub use exit::{AppError, ExitStatus};

/// A validated command, ready to execute.
#[derive(Debug)]
pub enum Command {
    Run(Box<run::RunPlan>),
    Scenarios(scenario::catalog::CatalogRequest),
    Cluster(cluster::commands::ClusterRequest),
    Init(topology::TopologyRequest),
    Verify(topology::TopologyRequest),
    /// `verify --production`: the production audit.
    VerifyProduction(checks::production::ProductionAudit),
    /// `indexer` / `analytics`: a reference consumer as a long-running service.
    Consumer(consumers::ServiceConfig),
    /// `dlq list` / `dlq replay`.
    Dlq(consumers::DlqPlan),
    Chaos(chaos::commands::ChaosRequest),
    Heal(chaos::commands::HealRequest),
    /// `capacity`: the saturation search and the capacity report.
    Capacity(Box<capacity::CapacityPlan>),
    /// `report compare A B`.
    ReportCompare {
        a: std::path::PathBuf,
        b: std::path::PathBuf,
    },
    /// `report recover RUN_DIR`.
    ReportRecover {
        run_dir: std::path::PathBuf,
    },
    /// `report trend DIR...`.
    ReportTrend(report::trend::TrendPlan),
    /// `report merge DIR...`.
    ReportMerge(run::merge::MergePlan),
    /// `image build`: the workers' image, tagged and saved.
    ImageBuild(cluster::docker::commands::ImageBuildPlan),
}

/// Runs a command to completion.
pub fn execute(command: Command) -> Result<ExitStatus, AppError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            AppError::environment(anyhow::anyhow!("cannot start the async runtime: {e}"))
        })?;
    runtime.block_on(async move {
        match command {
            Command::Run(plan) => run::execute(*plan).await,
            Command::Scenarios(cmd) => scenario::catalog::execute(cmd),
            Command::Cluster(cmd) => cluster::commands::execute(cmd).await,
            Command::Init(args) => topology::init_command(args).await,
            Command::Verify(args) => topology::verify_command(args).await,
            Command::VerifyProduction(audit) => {
                checks::production::verify_production_command(audit).await
            }
            Command::Consumer(config) => consumers::service_command(config).await,
            Command::Dlq(plan) => consumers::dlq_command(plan).await,
            Command::Chaos(args) => chaos::commands::chaos(args).await,
            Command::Heal(args) => chaos::commands::heal(args).await,
            Command::Capacity(plan) => capacity::execute(*plan).await,
            Command::ReportCompare { a, b } => report::compare::compare_command(&a, &b),
            Command::ReportRecover { run_dir } => run::recover::recover_command(&run_dir).await,
            Command::ReportTrend(plan) => report::trend::trend_command(&plan),
            Command::ReportMerge(plan) => run::merge::merge_command(plan).await,
            Command::ImageBuild(plan) => cluster::docker::commands::image_build(plan).await,
        }
    })
}

/// Logs go to stderr; `-v` raises the level, `RUST_LOG` overrides it.
pub fn init_tracing(verbosity: u8) {
    // fuser (the power-loss store) warns once per operation the passthrough leaves to the kernel
    // (poll, xattrs): noise, not news.
    let default = match verbosity {
        0 => "warn,fuser=error",
        1 => "info,aivo_load=info,fuser=error",
        _ => "debug,async_nats=info,fuser=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
