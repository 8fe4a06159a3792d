//! A rogue `nats-server`: a fourth server that tries to join a cluster's routes with a route
//! certificate the cluster's CA never signed. The security check's route probe
//! (`checks::security`) starts one and watches every node's `/routez` for it.
//!
//! The rogue is given every advantage but the right certificate: the cluster's name, every node's
//! route listener, and the cluster's CA certificate as its own trust root (a CA certificate is
//! public), so it accepts the nodes' certificates. Only the nodes' check of *its* certificate
//! keeps it out. It runs no JetStream and listens on loopback only.
//!
//! Where it runs is the backend's [`RogueVantage`]: for a local cluster a process on this machine
//! trying the route listeners the nodes' `/varz` name, dying with its handle (`Drop`) or with the
//! harness (`PR_SET_PDEATHSIG`); for a docker cluster, whose route ports are on the project's
//! internal cluster network only, a container of the nodes' image on that network, trying the
//! route names the node certificates carry (`nats1-route`), removed with its handle or with the
//! project (`docker/container.rs`).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::docker::container::{ContainerEnd, ContainerPlan, ProjectContainer};
use super::node::log_tail;
use crate::security::pki::CertFiles;

/// The rogue's `server_name`, what a node's `/routez` would name it by.
pub const ROGUE_NAME: &str = "aivo-rogue";

/// Lines of the rogue's log quoted in a probe's detail.
const LOG_LINES: usize = 12;

/// Where the rogue dir is mounted inside a rogue container.
const CONTAINER_DIR: &str = "/rogue";

/// Where a rogue server can reach a cluster's route ports from ([`crate::cluster::Cluster::rogue_vantage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RogueVantage {
    /// A process on this machine, trying the route listeners the nodes' `/varz` name (the local
    /// backend's are on loopback).
    Host,
    /// A container on a compose project's cluster network (routes are not published on the
    /// host), trying the nodes by the route names their certificates carry.
    Container {
        project: String,
        /// The project's cluster network.
        network: String,
        /// The NATS image the nodes run (it has the same `/nats-server`).
        image: String,
        /// Every node's route address on that network (`nats1-route:6222`).
        routes: Vec<String>,
    },
}

/// What a rogue server needs to try to join.
pub struct RogueRoutes<'a> {
    /// The cluster's name (`/varz` `cluster.name`).
    pub cluster_name: &'a str,
    /// Every node's route listener, `host:port`.
    pub routes: &'a [String],
    /// The rogue's own route certificate (not signed by the cluster's CA); `None`: plaintext
    /// routes, for a cluster whose routes do not speak TLS.
    pub cert: Option<&'a CertFiles>,
    /// What the rogue trusts: the cluster's CA, so that it accepts the nodes' certificates.
    pub trust: &'a Path,
}

/// A running rogue server; killed and removed on drop.
#[derive(Debug)]
pub enum RogueServer {
    /// A child process of the harness.
    Process(RogueProcess),
    /// A container on the project's cluster network (its log is the container's).
    Container(ProjectContainer),
}

impl RogueServer {
    /// Writes `<dir>/rogue.conf` and starts the rogue from `vantage`: a process, its output
    /// appended to `<dir>/rogue.log`, or a container with `dir` mounted read-only (the CA copied
    /// in beside the rogue's certificate).
    pub async fn start(
        dir: &Path,
        join: &RogueRoutes<'_>,
        vantage: &RogueVantage,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match vantage {
            RogueVantage::Host => Self::start_process(dir, join).await,
            RogueVantage::Container {
                project,
                network,
                image,
                ..
            } => Self::start_container(dir, join, project, network, image).await,
        }
    }

    async fn start_process(dir: &Path, join: &RogueRoutes<'_>) -> Result<Self, String> {
        let binary = super::binary::locate(None).map_err(|e| e.to_string())?;
        let config = dir.join("rogue.conf");
        let files = join.cert.map(|cert| {
            (
                cert.cert.clone(),
                cert.key.clone(),
                join.trust.to_path_buf(),
            )
        });
        std::fs::write(&config, render_config(join, files))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let log = dir.join("rogue.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                file.try_clone()
                    .map_err(|e| format!("{}: {e}", log.display()))?,
            ))
            .stderr(Stdio::from(file));
        let child = crate::child::spawn_tied(command, libc::SIGKILL)
            .await
            .map_err(|e| format!("cannot start the rogue nats-server: {e}"))?;
        Ok(Self::Process(RogueProcess { child, log }))
    }

    async fn start_container(
        dir: &Path,
        join: &RogueRoutes<'_>,
        project: &str,
        network: &str,
        image: &str,
    ) -> Result<Self, String> {
        let inside = Path::new(CONTAINER_DIR);
        let files = match join.cert {
            Some(cert) => {
                let trust = dir.join("trust-ca.pem");
                std::fs::copy(join.trust, &trust)
                    .map_err(|e| format!("{}: {e}", trust.display()))?;
                let moved = |path: &Path| -> Result<PathBuf, String> {
                    path.strip_prefix(dir)
                        .map(|rest| inside.join(rest))
                        .map_err(|_| format!("{} is not in {}", path.display(), dir.display()))
                };
                Some((moved(&cert.cert)?, moved(&cert.key)?, moved(&trust)?))
            }
            None => None,
        };
        let config = dir.join("rogue.conf");
        std::fs::write(&config, render_config(join, files))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let docker = super::docker::connect().await.map_err(|e| e.to_string())?;
        let plan = ContainerPlan {
            name: format!("{project}-rogue"),
            image: image.to_string(),
            args: vec!["--config".into(), format!("{CONTAINER_DIR}/rogue.conf")],
            env: Vec::new(),
            binds: vec![format!("{}:{CONTAINER_DIR}:ro", dir.display())],
            network: network.to_string(),
            user: None,
            role: "rogue",
        };
        let container = ProjectContainer::start(&docker, project, plan)
            .await
            .map_err(|e| format!("cannot start the rogue container: {e}"))?;
        Ok(Self::Container(container))
    }

    /// How the rogue ended, if it has (a config it refused, a port it could not bind).
    pub async fn exited(&mut self) -> Option<String> {
        match self {
            Self::Process(process) => process
                .child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| status.to_string()),
            Self::Container(container) => match container.end().await {
                ContainerEnd::Running => None,
                ContainerEnd::Exited(code) => Some(format!("container exit code {code}")),
                ContainerEnd::Gone(reason) => Some(format!("container gone: {reason}")),
            },
        }
    }

    /// The last lines of its log.
    pub async fn log_tail(&self) -> String {
        match self {
            Self::Process(process) => log_tail(&process.log, LOG_LINES),
            Self::Container(container) => container.log_tail(LOG_LINES).await,
        }
    }

    /// Stops and removes the rogue.
    pub async fn stop(self) {
        match self {
            Self::Process(process) => drop(process),
            Self::Container(container) => {
                if let Err(err) = container.remove().await {
                    eprintln!("aivo-load: {err}");
                }
            }
        }
    }
}

/// The rogue as a child process; killed and reaped on drop.
#[derive(Debug)]
pub struct RogueProcess {
    child: Child,
    log: PathBuf,
}

impl Drop for RogueProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rogue's config; `files` are its certificate, key and trusted CA as the rogue sees them
/// (`None`: plaintext routes).
fn render_config(join: &RogueRoutes<'_>, files: Option<(PathBuf, PathBuf, PathBuf)>) -> String {
    let quote = |text: &str| serde_json::Value::String(text.to_string()).to_string();
    let routes: Vec<String> = join
        .routes
        .iter()
        .map(|addr| format!("    {}", quote(&format!("nats-route://{addr}"))))
        .collect();
    let tls = files.map_or(String::new(), |(cert, key, trust)| {
        crate::security::profile::tls_block(&cert, &key, &trust, true, 2)
    });
    format!(
        "# A rogue server (aivo-load's route probe): its route certificate is not the cluster CA's.\n\
         server_name: {name}\n\
         listen: \"127.0.0.1:-1\"\n\
         cluster {{\n  name: {cluster}\n  listen: \"127.0.0.1:-1\"\n  no_advertise: true\n\
         {tls}  routes: [\n{routes}\n  ]\n}}\n",
        name = quote(ROGUE_NAME),
        cluster = quote(join.cluster_name),
        routes = routes.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rogue_names_the_cluster_and_every_route() {
        let cert = CertFiles {
            cert: "/x/rogue.pem".into(),
            key: "/x/rogue-key.pem".into(),
        };
        let routes = vec!["127.0.0.1:7001".to_string(), "127.0.0.1:7002".to_string()];
        let join = RogueRoutes {
            cluster_name: "aivo",
            routes: &routes,
            cert: Some(&cert),
            trust: Path::new("/x/ca.pem"),
        };
        let text = render_config(
            &join,
            Some((cert.cert.clone(), cert.key.clone(), "/x/ca.pem".into())),
        );
        assert!(text.contains("name: \"aivo\""), "{text}");
        assert!(text.contains("nats-route://127.0.0.1:7002"), "{text}");
        assert!(text.contains("cert_file: \"/x/rogue.pem\""), "{text}");
        assert!(!text.contains("jetstream"), "{text}");
    }
}
