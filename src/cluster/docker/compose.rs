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

/// The compose file, its production variant and the three node configs, as shipped in `compose/`.
pub const FILES: [(&str, &str); 6] = [
    (
        "docker-compose.yml",
        include_str!("../../../compose/docker-compose.yml"),
    ),
    (
        PRODUCTION_FILE,
        include_str!("../../../compose/docker-compose.production.yml"),
    ),
    ("nats1.conf", include_str!("../../../compose/nats1.conf")),
    ("nats2.conf", include_str!("../../../compose/nats2.conf")),
    ("nats3.conf", include_str!("../../../compose/nats3.conf")),
    ("Dockerfile", include_str!("../../../compose/Dockerfile")),
];

/// How long `docker-compose up -d` / `down` may take (creating networks and three containers takes
/// ~7 s on a busy 2-core machine; pulling an official image takes longer).
pub const COMPOSE_TIMEOUT: Duration = Duration::from_secs(180);

/// The production profile's override of the compose file: the node certificates and the CA
/// mounted read-only into each node (`compose -f docker-compose.yml -f THIS`).
pub const PRODUCTION_FILE: &str = "docker-compose.production.yml";

/// Where [`PRODUCTION_FILE`] mounts the profile's files inside each node's container.
pub const CONTAINER_SECURITY: &str = "/etc/nats/security";

/// The line of each node's config that the JetStream settings of a run go after.
const STORE_DIR_LINE: &str = "  store_dir: \"/data/jetstream\"\n";

/// The line of each node's `cluster` block that its route TLS goes after.
const NO_ADVERTISE_LINE: &str = "  no_advertise: true\n";

/// What a cluster adds to the shipped node configs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeSettings<'a> {
    /// Every node's JetStream `sync_interval`; `None`: the server's default.
    pub sync_interval: Option<crate::cluster::SyncInterval>,
    /// The production profile (its files on the host): TLS on clients, mutual TLS on routes,
    /// the accounts, a JetStream memory limit and domain, as the local backend's nodes have.
    pub security: Option<&'a crate::security::Profile>,
}

/// Writes the compose files into `dir`, each node's config with `settings`; returns the compose
/// file's path.
pub fn write_files(dir: &Path, settings: &NodeSettings<'_>) -> Result<PathBuf, DockerError> {
    std::fs::create_dir_all(dir)
        .map_err(DockerError::io(format!("cannot create {}", dir.display())))?;
    for (name, text) in FILES {
        let path = dir.join(name);
        let text = match name.strip_suffix(".conf") {
            Some(node) => node_config(node, text, settings)?,
            None => text.to_string(),
        };
        std::fs::write(&path, text)
            .map_err(DockerError::io(format!("cannot write {}", path.display())))?;
    }
    Ok(dir.join("docker-compose.yml"))
}

/// One shipped node config with `settings` written in. The production profile's blocks name the
/// files where [`PRODUCTION_FILE`] mounts them ([`CONTAINER_SECURITY`]).
fn node_config(node: &str, text: &str, settings: &NodeSettings<'_>) -> Result<String, DockerError> {
    let mut jetstream = settings
        .sync_interval
        .map(|sync| sync.config_line())
        .unwrap_or_default();
    let Some(profile) = settings.security else {
        return Ok(text.replacen(STORE_DIR_LINE, &format!("{STORE_DIR_LINE}{jetstream}"), 1));
    };
    let inside = profile.relocated(Path::new(CONTAINER_SECURITY));
    let client_tls = inside.tls_block(node, 0)?;
    let route_tls = inside.route_tls_block(node, 2)?;
    jetstream.push_str(&crate::cluster::node::production_jetstream_lines());
    Ok(format!(
        "{}\n# The production profile (aivo-load --profile production): TLS with client \
         certificates on the client port, the accounts and their nkey users.\n{client_tls}{}",
        text.replacen(STORE_DIR_LINE, &format!("{STORE_DIR_LINE}{jetstream}"), 1)
            .replacen(
                NO_ADVERTISE_LINE,
                &format!("{NO_ADVERTISE_LINE}{route_tls}"),
                1
            ),
        inside.accounts_block()
    ))
}

/// The variables `compose/docker-compose.yml` reads, for this cluster.
pub fn environment(spec: &DockerSpec) -> Vec<(String, String)> {
    let mut env = vec![
        ("COMPOSE_PROJECT_NAME".to_string(), spec.project.clone()),
        ("AIVO_NATS_IMAGE".to_string(), spec.image.clone()),
    ];
    if let Some(security) = &spec.security {
        env.push((
            "AIVO_SECURITY_DIR".to_string(),
            security.to_string_lossy().into_owned(),
        ));
    }
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
    full.extend(file_args(spec));
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

/// `-f FILE` for every compose file of the cluster.
fn file_args(spec: &DockerSpec) -> Vec<String> {
    spec.compose_files()
        .into_iter()
        .flat_map(|file| ["-f".to_string(), file.to_string_lossy().into_owned()])
        .collect()
}

/// `down -v --remove-orphans`, blocking: for `Drop`, where no runtime may be at hand.
pub fn down_blocking(spec: &DockerSpec) -> Result<(), DockerError> {
    let (program, mut full) = tool();
    full.extend(file_args(spec));
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
        let settings = NodeSettings {
            sync_interval: Some(crate::cluster::SyncInterval::Always),
            security: None,
        };
        write_files(dir.path(), &settings).expect("write");
        for n in 1..=3 {
            let conf =
                std::fs::read_to_string(dir.path().join(format!("nats{n}.conf"))).expect("conf");
            assert!(
                conf.contains("  store_dir: \"/data/jetstream\"\n  sync_interval: always\n"),
                "{conf}"
            );
        }
        let plain = tempfile::tempdir().expect("tempdir");
        write_files(plain.path(), &NodeSettings::default()).expect("write");
        let conf = std::fs::read_to_string(plain.path().join("nats1.conf")).expect("conf");
        assert!(!conf.contains("sync_interval"), "{conf}");
        assert!(!conf.contains("tls"), "{conf}");
    }

    #[test]
    fn the_production_profile_puts_tls_and_accounts_into_every_node_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes: Vec<String> = (1..=3).map(|n| format!("nats{n}")).collect();
        let profile = crate::security::Profile::create(&dir.path().join("security"), &nodes)
            .expect("profile");
        let settings = NodeSettings {
            sync_interval: None,
            security: Some(&profile),
        };
        write_files(&dir.path().join("compose"), &settings).expect("write");
        for node in &nodes {
            let conf = std::fs::read_to_string(dir.path().join(format!("compose/{node}.conf")))
                .expect("conf");
            let cluster = &conf[conf.find("cluster {").expect("cluster block")..];
            let cluster = &cluster[..cluster.find("\n}").expect("end of cluster")];
            assert!(
                cluster.contains(&format!(
                    "cert_file: \"/etc/nats/security/nodes/{node}.pem\""
                )) && cluster.contains("verify: true"),
                "mutual TLS on routes: {conf}"
            );
            assert!(conf.contains("\ntls {\n"), "client TLS: {conf}");
            assert!(conf.contains("system_account: SYS"), "{conf}");
            assert!(conf.contains("  domain: aivo\n"), "{conf}");
            assert!(
                !conf.contains(&dir.path().display().to_string()),
                "host paths: {conf}"
            );
        }
    }
}
