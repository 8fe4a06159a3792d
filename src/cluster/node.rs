//! One `nats-server` child of the local cluster: its ports, config file, log and process.
//!
//! Children must never outlive the harness. Three layers make sure of it:
//! - `Drop` / `shutdown` in `local.rs` kill and reap them;
//! - `PR_SET_PDEATHSIG(SIGKILL)` kills them if the harness dies without running `Drop` (SIGKILL, a
//!   panic that aborts), forked from the harness's one long-lived spawner thread (`crate::child`,
//!   which says why a thread of its own);
//! - each child runs in its own process group, so a Ctrl-C in the terminal reaches only the harness,
//!   which then stops the nodes in order (after reverting faults).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::security::Profile;

/// JetStream file storage each node may reserve. The seed's streams declare about 42 GB of limits and
/// JetStream refuses a stream whose limits exceed what is left of `max_file_store` (by default 75 % of
/// the free disk), so a laptop with little free space could not even create them. This is a cap on
/// reservations, not space taken: a test fills a few MB. The fill-storage fault sets its own limits.
const MAX_FILE_STORE: u64 = 1 << 40;

/// The production profile's JetStream memory limit per node (a cap on memory streams'
/// reservations; the seed declares none in memory, the security check's probe stream is tiny).
const MAX_MEMORY_STORE: u64 = 1 << 30;
/// The production profile's JetStream domain.
pub const JETSTREAM_DOMAIN: &str = "aivo";

/// The production profile's lines of a node's `jetstream` block (the seed's production list: a
/// memory limit set and a JetStream domain), for the local and the docker nodes alike.
pub fn production_jetstream_lines() -> String {
    format!("  max_memory_store: {MAX_MEMORY_STORE}\n  domain: {JETSTREAM_DOMAIN}\n")
}

/// Lines of a node's log quoted in an error.
pub const LOG_TAIL_LINES: usize = 20;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ports chosen by binding `127.0.0.1:0`. The listeners are held until [`PortReservation::release`]
/// so that ports picked for one cluster never repeat; the short window between release and the node's
/// own bind is covered by retrying on "address already in use".
#[derive(Debug)]
pub struct PortReservation {
    listeners: Vec<std::net::TcpListener>,
}

impl PortReservation {
    /// Reserves `count` distinct free loopback ports.
    pub fn new(count: usize) -> io::Result<Self> {
        let listeners = (0..count)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { listeners })
    }

    /// The reserved port numbers, in reservation order.
    pub fn ports(&self) -> io::Result<Vec<u16>> {
        self.listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect()
    }

    /// Frees the ports for the nodes to bind.
    pub fn release(self) {}
}

/// The three listening ports of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    pub client: u16,
    pub monitor: u16,
    /// Route (cluster) listen port; only the proxies connect to it.
    pub cluster: u16,
}

impl NodePorts {
    /// `[client, monitor, cluster]`.
    pub fn from_slice(ports: &[u16]) -> Self {
        Self {
            client: ports[0],
            monitor: ports[1],
            cluster: ports[2],
        }
    }
}

/// A loopback address that is bound but never listens: connecting to it is refused, and no one else
/// can bind it while the hold lives. Nodes advertise it so that gossip names no usable route address.
#[derive(Debug)]
pub struct DeadAddress {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl DeadAddress {
    /// Binds (without listening) a fresh loopback port.
    pub fn new() -> io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = socket.local_addr()?;
        Ok(Self {
            _socket: socket,
            addr,
        })
    }
}

/// One node: where it lives, how it is configured and its process.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    /// `<cluster dir>/<name>`.
    pub dir: PathBuf,
    pub ports: NodePorts,
    /// Where the node advertises its route address (nothing listens there).
    pub advertise: SocketAddr,
    /// The proxies this node solicits routes through, one per peer.
    pub routes: Vec<SocketAddr>,
    child: Mutex<Option<Child>>,
    /// Length of the log when the current process started, to read only its own lines.
    log_offset: Mutex<u64>,
    /// Set while the process is stopped with SIGSTOP (a paused node ignores SIGTERM until resumed).
    paused: AtomicBool,
    /// JetStream `max_file_store` written into the config (the fill-storage fault lowers it).
    max_file_store: AtomicU64,
    /// The production profile's TLS and accounts, if the cluster has one.
    security: Option<Arc<Profile>>,
    /// JetStream `sync_interval`; `None`: the server's default (2 minutes).
    sync_interval: Option<super::SyncInterval>,
}

impl Node {
    /// A node that is not running yet.
    pub fn new(
        name: String,
        dir: PathBuf,
        ports: NodePorts,
        advertise: SocketAddr,
        routes: Vec<SocketAddr>,
    ) -> Self {
        Self {
            name,
            dir,
            ports,
            advertise,
            routes,
            child: Mutex::new(None),
            log_offset: Mutex::new(0),
            paused: AtomicBool::new(false),
            max_file_store: AtomicU64::new(MAX_FILE_STORE),
            security: None,
            sync_interval: None,
        }
    }

    /// The node with its JetStream `sync_interval` set (`None`: the server's default).
    pub fn syncing(mut self, sync_interval: Option<super::SyncInterval>) -> Self {
        self.sync_interval = sync_interval;
        self
    }

    /// The node with the production profile's TLS (clients and routes) and accounts.
    pub fn secured(mut self, profile: Arc<Profile>) -> Self {
        self.security = Some(profile);
        self
    }

    /// `<dir>/nats.conf`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    /// `<dir>/nats.log` (stdout and stderr of every start, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    /// `<dir>/store`, the JetStream file store.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn client_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports.client)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.monitor)
    }

    /// The route listen address (the proxies' target).
    pub fn cluster_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.cluster))
    }

    /// The node's configuration file.
    ///
    /// `no_advertise` keeps the node from telling clients and peers about other nodes' addresses, and
    /// `advertise` points at a dead address, so implicit (gossiped) routes cannot bypass the proxies.
    pub fn render_config(&self, cluster_name: &str) -> io::Result<String> {
        let quote = |text: &str| serde_json::Value::String(text.to_string()).to_string();
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|addr| format!("    {}", quote(&format!("nats-route://{addr}"))))
            .collect();
        // With the production profile: TLS (client certificates verified) on the client port,
        // mutual TLS on routes, and the accounts. The route proxies forward TCP, so TLS passes
        // through them untouched; the route URLs keep naming 127.0.0.1, which every node
        // certificate carries as a SAN.
        let (client_tls, route_tls, accounts) = match &self.security {
            None => (String::new(), String::new(), String::new()),
            Some(profile) => {
                let error = |e: crate::security::SecurityError| io::Error::other(e.to_string());
                (
                    profile.tls_block(&self.name, 0).map_err(error)?,
                    profile.route_tls_block(&self.name, 2).map_err(error)?,
                    profile.accounts_block(),
                )
            }
        };
        Ok(format!(
            "# Written by aivo-load for the local backend; regenerated on every start.\n\
             server_name: {name}\n\
             listen: \"127.0.0.1:{client}\"\n\
             http: \"127.0.0.1:{monitor}\"\n\
             {client_tls}\
             jetstream {{\n  store_dir: {store}\n  max_file_store: {max_file_store}\n{production_js}{sync}}}\n\
             cluster {{\n  name: {cluster}\n  listen: \"127.0.0.1:{cport}\"\n  \
             no_advertise: true\n  advertise: \"{advertise}\"\n{route_tls}  routes: [\n{routes}\n  ]\n}}\n\
             {accounts}",
            name = quote(&self.name),
            client = self.ports.client,
            monitor = self.ports.monitor,
            store = quote(&self.store_dir().to_string_lossy()),
            max_file_store = self.max_file_store.load(Ordering::Relaxed),
            // The seed's production list: a memory limit set and a JetStream domain.
            production_js = if self.security.is_some() {
                production_jetstream_lines()
            } else {
                String::new()
            },
            sync = self
                .sync_interval
                .map(|s| s.config_line())
                .unwrap_or_default(),
            cluster = quote(cluster_name),
            cport = self.ports.cluster,
            advertise = self.advertise,
            routes = routes.join("\n"),
        ))
    }

    /// Creates the node's directories and writes its config file.
    pub fn write_config(&self, cluster_name: &str) -> io::Result<()> {
        fs::create_dir_all(self.store_dir())?;
        fs::write(self.config_path(), self.render_config(cluster_name)?)
    }

    /// Starts the process (stdout and stderr appended to the log).
    pub async fn spawn(&self, binary: &Path) -> io::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let offset = log.metadata()?.len();
        let mut command = Command::new(binary);
        command
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = crate::child::spawn_tied(command, libc::SIGKILL).await?;
        self.paused.store(false, Ordering::Relaxed);
        *lock(&self.log_offset) = offset;
        *lock(&self.child) = Some(child);
        Ok(())
    }

    /// Sets the JetStream `max_file_store` of the next [`Node::write_config`] (`None`: the default).
    pub fn set_max_file_store(&self, bytes: Option<u64>) {
        self.max_file_store
            .store(bytes.unwrap_or(MAX_FILE_STORE), Ordering::Relaxed);
    }

    /// True if a process was started and has not exited (paused counts as running).
    pub fn is_running(&self) -> bool {
        lock(&self.child)
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// True while the process is stopped with SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed) && self.is_running()
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        self.paused.store(true, Ordering::Relaxed);
    }

    /// Thaws a paused process (SIGCONT); harmless on a running one.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
        self.paused.store(false, Ordering::Relaxed);
    }

    /// Pid of the current process, if one was started and not reaped.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.child).as_ref().map(Child::id)
    }

    /// The exit status if the process has ended (it stays recorded until the next spawn).
    pub fn exited(&self) -> Option<ExitStatus> {
        lock(&self.child)
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Sends a signal to the running process (no-op if there is none).
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(child) = lock(&self.child).as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                // SAFETY: plain kill(2) on our own unreaped child's pid, which cannot be reused yet.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, signal);
                }
            }
        }
    }

    /// Kills the process and reaps it. Blocking, but SIGKILL ends a process within milliseconds.
    pub fn kill_and_reap(&self) {
        self.paused.store(false, Ordering::Relaxed);
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM), waits up to `grace`, then kills it.
    pub async fn stop(&self, grace: Duration) {
        // A paused process would hold SIGTERM pending until the grace runs out: thaw it first.
        self.signal(libc::SIGTERM);
        self.resume();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.kill_and_reap();
    }

    /// Log lines written by the current process.
    pub fn log_since_spawn(&self) -> String {
        let offset = *lock(&self.log_offset);
        read_from(&self.log_path(), offset).unwrap_or_default()
    }

    /// The last lines of the node's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), LOG_TAIL_LINES)
    }
}

fn read_from(path: &Path, offset: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `lines` lines of a text file (reading at most its last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let length = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let text = match read_from(path, length.saturating_sub(64 * 1024)) {
        Ok(text) => text,
        Err(err) => return format!("(cannot read {}: {err})", path.display()),
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_routes_only_through_proxies() {
        let node = Node::new(
            "nats1".into(),
            PathBuf::from("/tmp/x/nats1"),
            NodePorts::from_slice(&[1001, 1002, 1003]),
            SocketAddr::from(([127, 0, 0, 1], 9)),
            vec![
                SocketAddr::from(([127, 0, 0, 1], 2001)),
                SocketAddr::from(([127, 0, 0, 1], 2002)),
            ],
        );
        let config = node.render_config("aivo").expect("config");
        assert!(config.contains("server_name: \"nats1\""), "{config}");
        assert!(config.contains("no_advertise: true"), "{config}");
        assert!(config.contains("advertise: \"127.0.0.1:9\""), "{config}");
        assert!(
            config.contains("\"nats-route://127.0.0.1:2001\""),
            "{config}"
        );
        assert!(
            config.contains("\"nats-route://127.0.0.1:2002\""),
            "{config}"
        );
        assert!(
            config.contains("store_dir: \"/tmp/x/nats1/store\""),
            "{config}"
        );
    }

    #[test]
    fn reserved_ports_are_distinct() {
        let reservation = PortReservation::new(9).expect("ports");
        let mut ports = reservation.ports().expect("ports");
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 9);
        assert!(!ports.contains(&4222));
    }
}
