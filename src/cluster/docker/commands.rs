//! `aivo-load cluster up|status|down|build-image --backend docker`: the compose project kept in
//! `<state dir>/docker/` (compose files, tmpfs stores, `docker-cluster.json`, `faults.jsonl`).
//! Also `aivo-load image build`: the workers' image (`harness_image.rs`), tagged and saved for a
//! Kubernetes cluster.
//!
//! `up` uses the seed's ports (4222-4224, 8222-8224 on 127.0.0.1; `NATSn_CLIENT_PORT` /
//! `NATSn_MONITOR_PORT` override them) and the project `AIVO_DOCKER_PROJECT` (default `aivo`, so the
//! containers are the seed's `aivo-nats-1..3`). Exit codes as for the local backend: 3 when Docker or
//! the cluster cannot be reached.

use std::path::PathBuf;
use std::time::Instant;

use crate::cluster::monitor::ClusterStatus;
use crate::cluster::state::{self, StateDir};
use crate::cluster::ClusterProfile;
use crate::exit::{AppError, ExitStatus};

use super::{harness_image, image, DockerCluster, DockerClusterConfig, PortChoice};

/// `image build`: what to tag the workers' image as and where to save it.
#[derive(Debug, Clone)]
pub struct ImageBuildPlan {
    /// A second name for the image (default: [`harness_image::HARNESS_IMAGE`] itself).
    pub tag: String,
    /// A `docker save` archive of the image under `tag`.
    pub save: Option<PathBuf>,
}

/// `image build [--tag T] [--save FILE]`: builds the workers' image from this very binary (unless
/// the engine holds it already), tags it, saves it; prints its size and how long each step took.
pub async fn image_build(plan: ImageBuildPlan) -> Result<ExitStatus, AppError> {
    let docker = super::connect().await?;
    let exe = std::env::current_exe().map_err(super::DockerError::io("cannot find this binary"))?;
    let started = Instant::now();
    let built = harness_image::ensure(&docker, &exe).await?;
    let build_secs = started.elapsed().as_secs_f64();
    harness_image::tag(&docker, &plan.tag).await?;
    let facts = harness_image::facts(&docker, &plan.tag).await?;
    let also = if plan.tag == harness_image::HARNESS_IMAGE {
        String::new()
    } else {
        format!(", tagged {}", plan.tag)
    };
    println!(
        "{} {}{also} in {build_secs:.1}s: {} ({:.1} MB), FROM scratch + {} and its shared libraries",
        if built { "Built" } else { "Up to date:" },
        harness_image::HARNESS_IMAGE,
        facts.id,
        facts.size as f64 / 1e6,
        exe.display()
    );
    if let Some(to) = &plan.save {
        let started = Instant::now();
        let bytes = harness_image::save(&docker, &plan.tag, to).await?;
        println!(
            "Saved {tag} to {file} ({mb:.1} MB) in {secs:.1}s; load it with `docker load -i {file}`, \
             `kind load image-archive {file}` or `ctr -n k8s.io images import {file}`",
            tag = plan.tag,
            file = to.display(),
            mb = bytes as f64 / 1e6,
            secs = started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitStatus::Success)
}

/// The dir of the `cluster up --backend docker` cluster.
fn state_dir(args: &StateDir) -> Result<PathBuf, AppError> {
    Ok(state::paths(args)?.docker_dir())
}

/// `cluster up --backend docker [--profile production]`.
pub async fn up(args: &StateDir, profile: ClusterProfile) -> Result<ExitStatus, AppError> {
    let dir = state_dir(args)?;
    if let Ok(cluster) = DockerCluster::attach(&dir).await {
        let running = match cluster.spec().security {
            Some(_) => ClusterProfile::Production,
            None => ClusterProfile::Open,
        };
        if running != profile {
            return Err(AppError::usage(anyhow::anyhow!(
                "a docker cluster with the {} profile is running (compose project {}); stop it \
                 first with `aivo-load cluster down --backend docker`",
                running.name(),
                cluster.spec().project
            )));
        }
        if ClusterStatus::gather(cluster.endpoints())
            .await
            .is_healthy()
        {
            println!(
                "A docker cluster is already running (compose project {}).",
                cluster.spec().project
            );
            print!("{}", describe(&cluster, args));
            return Ok(ExitStatus::Success);
        }
        eprintln!(
            "aivo-load: the docker cluster in {} is not healthy; recreating it",
            dir.display()
        );
        cluster.shutdown().await?;
    }
    let project = std::env::var("AIVO_DOCKER_PROJECT")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "aivo".into());
    let mut config = DockerClusterConfig::new(dir, &project);
    config.ports = PortChoice::Seed;
    config.profile = profile;
    let started = Instant::now();
    let cluster = DockerCluster::start(config).await?;
    cluster.keep();
    println!(
        "Docker NATS cluster \"aivo\" is up in {:.1}s (compose project {}, image {}, {} profile).",
        started.elapsed().as_secs_f64(),
        cluster.spec().project,
        cluster.spec().image,
        profile.name()
    );
    print!("{}", describe(&cluster, args));
    Ok(ExitStatus::Success)
}

/// `cluster status --backend docker`: each container's state, then the monitoring table.
pub async fn status(args: &StateDir) -> Result<ExitStatus, AppError> {
    let cluster = DockerCluster::attach(&state_dir(args)?).await?;
    println!(
        "Docker cluster (compose project {}, image {})",
        cluster.spec().project,
        cluster.spec().image
    );
    for node in &cluster.spec().nodes {
        let line = match cluster.state(&node.name).await {
            Ok(s) => format!(
                "{}{}, cluster network {}",
                if s.running { "running" } else { "stopped" },
                if s.paused { " (paused)" } else { "" },
                s.cluster_ip.as_deref().unwrap_or("disconnected")
            ),
            Err(err) => err.to_string(),
        };
        println!("  {:<6} {:<18} {line}", node.name, node.container);
    }
    let status = ClusterStatus::gather(cluster.endpoints()).await;
    print!("{}", status.render_table());
    let cluster = crate::cluster::Cluster::Docker(std::sync::Arc::new(cluster));
    for line in crate::cluster::stuck::status_lines(&cluster).await {
        println!("{line}");
    }
    if status.all_unreachable() {
        return Err(AppError::environment(anyhow::anyhow!(
            "no node answered on its monitoring port"
        )));
    }
    Ok(if status.is_healthy() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// `cluster down --backend docker`: `docker-compose down -v`, stores unmounted, dir removed.
pub async fn down(args: &StateDir) -> Result<ExitStatus, AppError> {
    let dir = state_dir(args)?;
    match DockerCluster::attach(&dir).await {
        Ok(cluster) => {
            cluster.shutdown().await?;
            let _ = std::fs::remove_dir_all(&dir);
            println!(
                "Removed the docker cluster (compose project {}: containers, networks, volumes) and {}.",
                cluster.spec().project,
                dir.display()
            );
        }
        Err(super::DockerError::NotFound { .. }) => {
            println!("No docker cluster is running; nothing to stop.")
        }
        Err(err) => return Err(err.into()),
    }
    Ok(ExitStatus::Success)
}

/// `cluster build-image`: (re)builds the `FROM scratch` image from the local nats-server.
pub async fn build_image() -> Result<ExitStatus, AppError> {
    let docker = super::connect().await?;
    let binary = crate::cluster::binary::probe(None)
        .await
        .map_err(super::DockerError::from)?;
    let started = Instant::now();
    let path = image::static_binary(&binary.path)?;
    let outcome = image::ensure(&docker, &binary, true).await?;
    let id = match outcome {
        image::ImageOutcome::Built(id) => id,
        image::ImageOutcome::Present => String::new(),
    };
    println!(
        "Built {} in {:.1}s: FROM scratch + {} (nats-server {}) {id}",
        image::LOCAL_IMAGE,
        started.elapsed().as_secs_f64(),
        path.display(),
        binary.version
    );
    println!("With a registry, use the official image instead: AIVO_NATS_IMAGE=nats:2.10");
    Ok(ExitStatus::Success)
}

fn describe(cluster: &DockerCluster, args: &StateDir) -> String {
    let mut out = String::new();
    for (node, spec) in cluster.endpoints().nodes.iter().zip(&cluster.spec().nodes) {
        out.push_str(&format!(
            "  {}  {}  monitor {}  container {}\n",
            node.name, node.client_url, node.monitor_url, spec.container
        ));
    }
    let state_flag = args
        .explicit
        .as_ref()
        .map(|d| format!(" --state-dir {}", d.display()))
        .unwrap_or_default();
    out.push_str(&format!(
        "Compose file and stores: {}\n",
        cluster.dir().display()
    ));
    out.push_str("Use it:\n");
    out.push_str(&format!(
        "  export NATS_URL={}\n",
        cluster.endpoints().server_list()
    ));
    if let Some(production) = crate::cluster::profile_usage::production_usage(cluster.endpoints()) {
        out.push_str(&production);
    }
    out.push_str(&format!(
        "  aivo-load chaos kill --target nats2 --for 20s --backend docker{state_flag}\n"
    ));
    out.push_str(&format!(
        "  aivo-load cluster status --backend docker{state_flag}\n"
    ));
    out.push_str(&format!(
        "  aivo-load cluster down --backend docker{state_flag}\n"
    ));
    out
}
