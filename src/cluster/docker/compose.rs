//! The compose project: the files of `compose/` (built into the binary) written next to the cluster's
//! data, and the `docker-compose` tool (or the `docker compose` plugin) run on them.
//!
//! Compose, not the Docker API, creates and removes the project, so the cluster aivo-load drives is
//! exactly the one an engineer gets from `docker-compose up -d` (seed-README.md, Quick Start). Every
//! change to a running container afterwards goes through the Docker API (`mod.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{DockerError, DockerSpec};

/// The compose file and the three node configs, as shipped in `compose/`.
pub const FILES: [(&str, &str); 5] = [
    (
        "docker-compose.yml",
        include_str!("../../../compose/docker-compose.yml"),
    ),
    ("nats1.conf", include_str!("../../../compose/nats1.conf")),
    ("nats2.conf", include_str!("../../../compose/nats2.conf")),
    ("nats3.conf", include_str!("../../../compose/nats3.conf")),
    ("Dockerfile", include_str!("../../../compose/Dockerfile")),
];

/// How long `docker-compose up -d` / `down` may take (creating networks and three containers takes
/// ~7 s on a busy 2-core machine; pulling an official image takes longer).
pub const COMPOSE_TIMEOUT: Duration = Duration::from_secs(180);

/// The line of each node's config that the JetStream settings of a run go after.
const STORE_DIR_LINE: &str = "  store_dir: \"/data/jetstream\"\n";

/// Writes the compose files into `dir`, each node's config with `sync_interval` when given;
/// returns the compose file's path.
pub fn write_files(
    dir: &Path,
    sync_interval: Option<crate::cluster::SyncInterval>,
) -> Result<PathBuf, DockerError> {
    std::fs::create_dir_all(dir)
        .map_err(DockerError::io(format!("cannot create {}", dir.display())))?;
    for (name, text) in FILES {
        let path = dir.join(name);
        let text = match sync_interval {
            Some(sync) if name.ends_with(".conf") => text.replacen(
                STORE_DIR_LINE,
                &format!("{STORE_DIR_LINE}{}", sync.config_line()),
                1,
            ),
            _ => text.to_string(),
        };
        std::fs::write(&path, text)
            .map_err(DockerError::io(format!("cannot write {}", path.display())))?;
    }
    Ok(dir.join("docker-compose.yml"))
}

/// The variables `compose/docker-compose.yml` reads, for this cluster.
pub fn environment(spec: &DockerSpec) -> Vec<(String, String)> {
    let mut env = vec![
        ("COMPOSE_PROJECT_NAME".to_string(), spec.project.clone()),
        ("AIVO_NATS_IMAGE".to_string(), spec.image.clone()),
    ];
    for (i, node) in spec.nodes.iter().enumerate() {
        let n = i + 1;
        env.push((format!("NATS{n}_CLIENT_PORT"), node.client_port.to_string()));
        env.push((
            format!("NATS{n}_MONITOR_PORT"),
            node.monitor_port.to_string(),
        ));
        env.push((
            format!("NATS{n}_STORE"),
            node.store.to_string_lossy().into_owned(),
        ));
    }
    env
}

/// `docker-compose` if it is on PATH, else the `docker compose` plugin.
fn tool() -> (String, Vec<String>) {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("docker-compose").is_file()))
        .unwrap_or(false);
    if on_path {
        ("docker-compose".into(), Vec::new())
    } else {
        ("docker".into(), vec!["compose".into()])
    }
}

/// Runs `docker-compose -f FILE ARGS...` with the cluster's variables; returns its stdout, or an
/// error quoting its stderr.
pub async fn run(spec: &DockerSpec, args: &[&str]) -> Result<String, DockerError> {
    let (program, mut full) = tool();
    full.push("-f".into());
    full.push(spec.compose_file().to_string_lossy().into_owned());
    full.extend(args.iter().map(|a| a.to_string()));
    let shown = format!("{program} {}", full.join(" "));
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&full)
        .envs(environment(spec))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(COMPOSE_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => {
            return Err(DockerError::Compose(format!(
                "cannot run `{shown}`: {err} (install docker-compose, or the docker compose plugin)"
            )))
        }
        Err(_) => {
            return Err(DockerError::Compose(format!(
                "`{shown}` did not finish within {COMPOSE_TIMEOUT:?}"
            )))
        }
    };
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(DockerError::Compose(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// `down -v --remove-orphans`, blocking: for `Drop`, where no runtime may be at hand.
pub fn down_blocking(spec: &DockerSpec) -> Result<(), DockerError> {
    let (program, mut full) = tool();
    full.push("-f".into());
    full.push(spec.compose_file().to_string_lossy().into_owned());
    full.extend(["down", "-v", "--remove-orphans", "-t", "2"].map(String::from));
    let status = Command::new(&program)
        .args(&full)
        .envs(environment(spec))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(DockerError::io(format!("cannot run {program}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(DockerError::Compose(format!(
            "`{program} {}` failed ({status})",
            full.join(" ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_interval_goes_into_every_node_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_files(dir.path(), Some(crate::cluster::SyncInterval::Always)).expect("write");
        for n in 1..=3 {
            let conf =
                std::fs::read_to_string(dir.path().join(format!("nats{n}.conf"))).expect("conf");
            assert!(
                conf.contains("  store_dir: \"/data/jetstream\"\n  sync_interval: always\n"),
                "{conf}"
            );
        }
        let plain = tempfile::tempdir().expect("tempdir");
        write_files(plain.path(), None).expect("write");
        let conf = std::fs::read_to_string(plain.path().join("nats1.conf")).expect("conf");
        assert!(!conf.contains("sync_interval"), "{conf}");
    }
}
