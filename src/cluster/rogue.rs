//! A rogue `nats-server`: a fourth server that tries to join a cluster's routes with a route
//! certificate the cluster's CA never signed. The security check's route probe
//! (`checks::security`) starts one and watches every node's `/routez` for it.
//!
//! The rogue is given every advantage but the right certificate: the cluster's name, every node's
//! route listener (read from `/varz`, so any backend whose route ports this machine reaches), and
//! the cluster's CA certificate as its own trust root (a CA certificate is public), so it accepts
//! the nodes' certificates. Only the nodes' check of *its* certificate keeps it out. It runs no
//! JetStream, listens on loopback only, and dies with its handle (`Drop`) or with the harness
//! (`PR_SET_PDEATHSIG`).

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::node::log_tail;
use crate::security::pki::CertFiles;

/// The rogue's `server_name`, what a node's `/routez` would name it by.
pub const ROGUE_NAME: &str = "aivo-rogue";

/// Lines of the rogue's log quoted in a probe's detail.
const LOG_LINES: usize = 12;

/// What a rogue server needs to try to join.
pub struct RogueRoutes<'a> {
    /// The cluster's name (`/varz` `cluster.name`).
    pub cluster_name: &'a str,
    /// Every node's route listener.
    pub routes: &'a [SocketAddr],
    /// The rogue's own route certificate (not signed by the cluster's CA); `None`: plaintext
    /// routes, for a cluster whose routes do not speak TLS.
    pub cert: Option<&'a CertFiles>,
    /// What the rogue trusts: the cluster's CA, so that it accepts the nodes' certificates.
    pub trust: &'a Path,
}

/// A running rogue server; killed and reaped on drop.
#[derive(Debug)]
pub struct RogueServer {
    child: Child,
    log: PathBuf,
}

impl RogueServer {
    /// Writes `<dir>/rogue.conf` and starts the rogue, its output appended to `<dir>/rogue.log`.
    pub async fn start(dir: &Path, join: &RogueRoutes<'_>) -> Result<Self, String> {
        let binary = super::binary::locate(None).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = dir.join("rogue.conf");
        std::fs::write(&config, render_config(join))
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
        Ok(Self { child, log })
    }

    /// How the rogue ended, if it has (a config it refused, a port it could not bind).
    pub fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| status.to_string())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, LOG_LINES)
    }
}

impl Drop for RogueServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn render_config(join: &RogueRoutes<'_>) -> String {
    let quote = |text: &str| serde_json::Value::String(text.to_string()).to_string();
    let routes: Vec<String> = join
        .routes
        .iter()
        .map(|addr| format!("    {}", quote(&format!("nats-route://{addr}"))))
        .collect();
    let tls = join.cert.map_or(String::new(), |cert| {
        crate::security::profile::tls_block(&cert.cert, &cert.key, join.trust, true, 2)
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
        let routes: Vec<SocketAddr> = vec![
            "127.0.0.1:7001".parse().expect("addr"),
            "127.0.0.1:7002".parse().expect("addr"),
        ];
        let text = render_config(&RogueRoutes {
            cluster_name: "aivo",
            routes: &routes,
            cert: Some(&cert),
            trust: Path::new("/x/ca.pem"),
        });
        assert!(text.contains("name: \"aivo\""), "{text}");
        assert!(text.contains("nats-route://127.0.0.1:7002"), "{text}");
        assert!(text.contains("cert_file: \"/x/rogue.pem\""), "{text}");
        assert!(!text.contains("jetstream"), "{text}");
    }
}
