//! Harness-owned TCP proxies that carry every route between the local cluster's nodes.
//!
//! Why proxies: a partition on the local backend must not need root, iptables or network namespaces.
//! Each node's `routes` list names one proxy per peer (node i → node j, DESIGN.md §2), so the harness
//! sits on every route connection and can cut it. Gossip cannot bypass the proxies because the nodes
//! advertise an address nothing listens on (see `local.rs`).
//!
//! A [`RouteMesh`] owns the n·(n−1) [`Proxy`]s of one cluster and the partition state: which nodes are
//! isolated and which links are cut. A proxy whose link is cut closes its live connections and closes
//! every new one right after accepting it; healing lets the nodes' own route retries reconnect.
//!
//! The mesh runs its proxies on a Tokio runtime of its own (one worker thread), not on the caller's:
//! routes must keep flowing while the caller's runtime is busy or blocked (a current-thread test
//! runtime waiting on a child process, a saturated publisher), and the cluster can be dropped anywhere.
//!
//! Faults beyond a cut (latency, bandwidth, one-way partition) are applied by the pumps of
//! `link_shaping.rs`, which every forwarded connection runs; this file holds the proxies, their
//! switches and counters, and the mesh that keeps them in line with the partition state.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use super::link_shaping::LinkShape;
use super::link_shaping::{pump, Direction, PumpControl};

/// How long a proxy waits for its target to accept before giving up on one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Locks a mutex, ignoring poisoning: the guarded state stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The mutable control of one link, read by the accept loop and written by cut/heal.
///
/// `cut` and `live` sit under one mutex so that a connection accepted concurrently with a cut either
/// sees `cut` and is closed, or takes the token the cut is about to cancel: none slips through.
#[derive(Debug)]
struct LinkControl {
    /// New connections are closed on accept while this is set.
    cut: bool,
    /// Cancelled (and replaced) on a cut: every forwarded connection watches the token current when it
    /// was accepted.
    live: CancellationToken,
    /// Where connections go; changes if the target node is restarted on another port.
    target: SocketAddr,
}

/// Counters of one proxy, for tests and reports.
#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
    bytes: AtomicU64,
}

/// A snapshot of one proxy's counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// e.g. `nats1->nats2`.
    pub name: String,
    pub listen: SocketAddr,
    pub target: SocketAddr,
    pub cut: bool,
    /// Latency and bandwidth added to both directions.
    pub shape: LinkShape,
    /// The soliciting node's bytes are held (one-way partition).
    pub forward_blocked: bool,
    /// The target's bytes are held (one-way partition).
    pub reverse_blocked: bool,
    /// Connections accepted and forwarded to the target.
    pub forwarded: u64,
    /// Connections closed on accept because the link was cut.
    pub refused: u64,
    /// Connections forwarding now.
    pub active: u64,
    /// Bytes moved in both directions.
    pub bytes: u64,
}

#[derive(Debug)]
struct Shared {
    name: String,
    listen: SocketAddr,
    control: Mutex<LinkControl>,
    counters: Counters,
    /// Latency, bandwidth and blocked directions, watched by every pump.
    pumps: watch::Sender<PumpControl>,
    /// Cancelled when the proxy stops; every `live` token is a child of it.
    shutdown: CancellationToken,
}

/// One TCP forwarder on a loopback port, with a switch that cuts it.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// Binds `127.0.0.1:0` and starts forwarding to `target`, as tasks on `runtime`.
    pub fn start(
        name: impl Into<String>,
        target: SocketAddr,
        runtime: &Handle,
    ) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let listen = listener.local_addr()?;
        let _context = runtime.enter();
        let listener = TcpListener::from_std(listener)?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            name: name.into(),
            listen,
            control: Mutex::new(LinkControl {
                cut: false,
                live: shutdown.child_token(),
                target,
            }),
            counters: Counters::default(),
            pumps: watch::Sender::new(PumpControl::default()),
            shutdown,
        });
        runtime.spawn(accept_loop(listener, shared.clone()));
        Ok(Self { shared })
    }

    /// The loopback address nodes connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// Refuses new connections and closes the live ones, until [`Proxy::heal`].
    pub fn cut(&self) {
        let mut control = lock(&self.shared.control);
        control.cut = true;
        control.live.cancel();
        control.live = self.shared.shutdown.child_token();
    }

    /// Accepts and forwards connections again.
    pub fn heal(&self) {
        lock(&self.shared.control).cut = false;
    }

    /// Whether new connections are refused.
    pub fn is_cut(&self) -> bool {
        lock(&self.shared.control).cut
    }

    /// Sets the latency and bandwidth of both directions, live connections included.
    pub fn set_shape(&self, shape: LinkShape) {
        self.shared.pumps.send_if_modified(|c| {
            let changed = c.shape != shape;
            c.shape = shape;
            changed
        });
    }

    /// Blocks or unblocks one direction: `forward` is the soliciting node's bytes to the target.
    fn set_blocked(&self, forward: bool, reverse: bool) {
        self.shared.pumps.send_if_modified(|c| {
            let changed = (c.forward_blocked, c.reverse_blocked) != (forward, reverse);
            c.forward_blocked = forward;
            c.reverse_blocked = reverse;
            changed
        });
    }

    /// Points new connections at another address (a restarted node on a new port).
    pub fn set_target(&self, target: SocketAddr) {
        lock(&self.shared.control).target = target;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        let control = lock(&self.shared.control);
        let c = &self.shared.counters;
        let pumps = *self.shared.pumps.borrow();
        ProxyStats {
            name: self.shared.name.clone(),
            listen: self.shared.listen,
            target: control.target,
            cut: control.cut,
            shape: pumps.shape,
            forward_blocked: pumps.forward_blocked,
            reverse_blocked: pumps.reverse_blocked,
            forwarded: c.forwarded.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let inbound = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(proxy = %shared.name, "accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = {
            let control = lock(&shared.control);
            (!control.cut).then(|| (control.live.clone(), control.target))
        };
        match admitted {
            None => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                drop(inbound);
            }
            Some((live, target)) => {
                tokio::spawn(forward(inbound, target, live, shared.clone()));
            }
        }
    }
}

/// Forwards one connection until either side closes or the link is cut.
async fn forward(
    inbound: TcpStream,
    target: SocketAddr,
    live: CancellationToken,
    shared: Arc<Shared>,
) {
    let outbound = tokio::select! {
        _ = live.cancelled() => return,
        connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)) => connected,
    };
    let outbound = match outbound {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::debug!(proxy = %shared.name, %target, "connect failed: {err}");
            return;
        }
        Err(_) => {
            tracing::debug!(proxy = %shared.name, %target, "connect timed out");
            return;
        }
    };
    // Route traffic is latency sensitive (pings, RAFT heartbeats): never wait for Nagle.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
    shared.counters.active.fetch_add(1, Ordering::Relaxed);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    // A NATS route is closed as a whole, so the first direction to end ends the connection; dropping
    // both halves closes both sockets.
    let (control, bytes) = (&shared.pumps, &shared.counters.bytes);
    let forward = pump(in_read, out_write, Direction::Forward, control, bytes);
    let reverse = pump(out_read, in_write, Direction::Reverse, control, bytes);
    tokio::select! {
        _ = live.cancelled() => {}
        _ = forward => {}
        _ = reverse => {}
    }
    shared.counters.active.fetch_sub(1, Ordering::Relaxed);
}

/// Partition state of a mesh: a link is cut when either end is isolated or the link itself is cut.
#[derive(Debug, Default)]
struct Partition {
    isolated: BTreeSet<usize>,
    /// Unordered pairs `(low, high)`.
    cut_links: BTreeSet<(usize, usize)>,
    /// Ordered pairs `(from, to)`: bytes from `from` to `to` are held (one-way partition).
    blocked: BTreeSet<(usize, usize)>,
    /// Shapes of links, by unordered pair.
    shapes: BTreeMap<(usize, usize), LinkShape>,
}

impl Partition {
    fn is_cut(&self, from: usize, to: usize) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.cut_links.contains(&(from.min(to), from.max(to)))
    }
}

/// One proxy per ordered pair of nodes, and which of them are cut.
#[derive(Debug)]
pub struct RouteMesh {
    names: Vec<String>,
    /// `links[i][j]` carries node i's route to node j; `None` on the diagonal.
    links: Vec<Vec<Option<Proxy>>>,
    partition: Mutex<Partition>,
    /// Runs every proxy task; shut down in the background on drop.
    runtime: Option<Runtime>,
}

/// Errors of mesh operations.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("no node named {0:?} in this cluster")]
    UnknownNode(String),
    #[error("cannot start route proxy {name}: {source}")]
    Bind { name: String, source: io::Error },
    #[error("cannot start the route proxies' runtime: {0}")]
    Runtime(io::Error),
}

impl RouteMesh {
    /// Starts a proxy for every ordered pair; `targets[j]` is node j's cluster (route) listen address.
    pub fn start(names: &[String], targets: &[SocketAddr]) -> Result<Self, MeshError> {
        // One worker copies route traffic at memory speed; more would only compete with the nodes.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aivo-route-proxy")
            .enable_all()
            .build()
            .map_err(MeshError::Runtime)?;
        let mut links = Vec::with_capacity(names.len());
        for (i, from) in names.iter().enumerate() {
            let mut row = Vec::with_capacity(names.len());
            for (j, to) in names.iter().enumerate() {
                if i == j {
                    row.push(None);
                    continue;
                }
                let name = format!("{from}->{to}");
                let proxy = Proxy::start(name.clone(), targets[j], runtime.handle())
                    .map_err(|source| MeshError::Bind { name, source })?;
                row.push(Some(proxy));
            }
            links.push(row);
        }
        Ok(Self {
            names: names.to_vec(),
            links,
            partition: Mutex::new(Partition::default()),
            runtime: Some(runtime),
        })
    }

    /// The proxy addresses node `from` names in its `routes` list.
    pub fn routes_of(&self, from: usize) -> Vec<SocketAddr> {
        self.links[from]
            .iter()
            .flatten()
            .map(Proxy::listen_addr)
            .collect()
    }

    /// Points every proxy towards node `to` at a new cluster address.
    pub fn retarget(&self, to: usize, target: SocketAddr) {
        for row in &self.links {
            if let Some(proxy) = &row[to] {
                proxy.set_target(target);
            }
        }
    }

    fn index(&self, node: &str) -> Result<usize, MeshError> {
        self.names
            .iter()
            .position(|n| n == node)
            .ok_or_else(|| MeshError::UnknownNode(node.to_string()))
    }

    /// Isolates a node: every proxy to or from it refuses new connections and closes its live ones.
    pub fn cut_node(&self, node: &str) -> Result<(), MeshError> {
        let k = self.index(node)?;
        self.update(|p| {
            p.isolated.insert(k);
        });
        Ok(())
    }

    /// Ends a node's isolation (links cut on their own stay cut).
    pub fn heal_node(&self, node: &str) -> Result<(), MeshError> {
        let k = self.index(node)?;
        self.update(|p| {
            p.isolated.remove(&k);
        });
        Ok(())
    }

    /// Cuts the routes between two nodes, both directions.
    pub fn cut_link(&self, a: &str, b: &str) -> Result<(), MeshError> {
        let (a, b) = (self.index(a)?, self.index(b)?);
        self.update(|p| {
            p.cut_links.insert((a.min(b), a.max(b)));
        });
        Ok(())
    }

    /// Restores the routes between two nodes (unless either end is isolated).
    pub fn heal_link(&self, a: &str, b: &str) -> Result<(), MeshError> {
        let (a, b) = (self.index(a)?, self.index(b)?);
        self.update(|p| {
            p.cut_links.remove(&(a.min(b), a.max(b)));
        });
        Ok(())
    }

    /// Holds every byte node `from` sends to node `to` (on whichever proxy carries their route),
    /// while `to`'s bytes still reach `from`: a one-way partition.
    pub fn block(&self, from: &str, to: &str) -> Result<(), MeshError> {
        let (from, to) = (self.index(from)?, self.index(to)?);
        self.update(|p| {
            p.blocked.insert((from, to));
        });
        Ok(())
    }

    /// Ends a [`RouteMesh::block`].
    pub fn unblock(&self, from: &str, to: &str) -> Result<(), MeshError> {
        let (from, to) = (self.index(from)?, self.index(to)?);
        self.update(|p| {
            p.blocked.remove(&(from, to));
        });
        Ok(())
    }

    /// Sets the latency and bandwidth of the link between two nodes (both proxies, both directions);
    /// a clear shape removes it.
    pub fn shape_link(&self, a: &str, b: &str, shape: LinkShape) -> Result<(), MeshError> {
        let (a, b) = (self.index(a)?, self.index(b)?);
        self.update(|p| {
            let key = (a.min(b), a.max(b));
            if shape.is_clear() {
                p.shapes.remove(&key);
            } else {
                p.shapes.insert(key, shape);
            }
        });
        Ok(())
    }

    /// Node names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Removes every cut, block and shape.
    pub fn heal_all(&self) {
        self.update(|p| *p = Partition::default());
    }

    /// Applies a change to the partition and brings every proxy in line with it.
    fn update(&self, change: impl FnOnce(&mut Partition)) {
        let mut partition = lock(&self.partition);
        change(&mut partition);
        for (i, row) in self.links.iter().enumerate() {
            for (j, proxy) in row.iter().enumerate() {
                let Some(proxy) = proxy else { continue };
                match (partition.is_cut(i, j), proxy.is_cut()) {
                    (true, false) => proxy.cut(),
                    (false, true) => proxy.heal(),
                    _ => {}
                }
                // Proxy i→j carries i's bytes forward and j's bytes in reverse.
                proxy.set_blocked(
                    partition.blocked.contains(&(i, j)),
                    partition.blocked.contains(&(j, i)),
                );
                let shape = partition
                    .shapes
                    .get(&(i.min(j), i.max(j)))
                    .copied()
                    .unwrap_or_default();
                proxy.set_shape(shape);
            }
        }
    }

    /// Counters of every proxy.
    pub fn stats(&self) -> Vec<ProxyStats> {
        self.links
            .iter()
            .flatten()
            .flatten()
            .map(Proxy::stats)
            .collect()
    }

    /// Stops every proxy and closes every route connection.
    pub fn stop(&self) {
        for proxy in self.links.iter().flatten().flatten() {
            proxy.stop();
        }
    }
}

impl Drop for RouteMesh {
    fn drop(&mut self) {
        self.stop();
        // Never blocks, so the mesh may be dropped inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;

    /// An echo server on a free port.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn roundtrip(stream: &mut TcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(text).await?;
        let mut buf = vec![0u8; text.len()];
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "echo timed out"))??;
        Ok(buf)
    }

    /// Reads until EOF or error; true if the peer closed within the timeout.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn forwards_cuts_and_heals() {
        let echo = echo_server().await;
        let proxy = Proxy::start("t", echo, &Handle::current()).expect("proxy");
        let mut live = TcpStream::connect(proxy.listen_addr())
            .await
            .expect("connect");
        assert_eq!(roundtrip(&mut live, b"ping").await.expect("echo"), b"ping");

        proxy.cut();
        assert!(closed(&mut live).await, "live connection survives a cut");
        let mut refused = TcpStream::connect(proxy.listen_addr())
            .await
            .expect("connect");
        assert!(
            closed(&mut refused).await,
            "new connection admitted while cut"
        );

        proxy.heal();
        let mut again = TcpStream::connect(proxy.listen_addr())
            .await
            .expect("connect");
        assert_eq!(roundtrip(&mut again, b"pong").await.expect("echo"), b"pong");
        let stats = proxy.stats();
        assert_eq!(stats.forwarded, 2);
        assert_eq!(stats.refused, 1);
    }

    #[tokio::test]
    async fn mesh_isolation_cuts_both_directions_only() {
        let echo = echo_server().await;
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mesh = RouteMesh::start(&names, &[echo, echo, echo]).expect("mesh");
        mesh.cut_node("c").expect("cut");
        let cut: Vec<String> = mesh
            .stats()
            .into_iter()
            .filter(|s| s.cut)
            .map(|s| s.name)
            .collect();
        assert_eq!(cut, ["a->c", "b->c", "c->a", "c->b"]);
        mesh.cut_link("a", "b").expect("cut link");
        mesh.heal_node("c").expect("heal");
        let cut: Vec<String> = mesh
            .stats()
            .into_iter()
            .filter(|s| s.cut)
            .map(|s| s.name)
            .collect();
        assert_eq!(cut, ["a->b", "b->a"]);
        mesh.heal_all();
        assert!(mesh.stats().iter().all(|s| !s.cut));
        assert!(matches!(mesh.cut_node("z"), Err(MeshError::UnknownNode(_))));
    }

    #[tokio::test]
    async fn latency_delays_each_direction_and_clears() {
        let echo = echo_server().await;
        let proxy = Proxy::start("t", echo, &Handle::current()).expect("proxy");
        let mut stream = TcpStream::connect(proxy.listen_addr())
            .await
            .expect("connect");
        proxy.set_shape(LinkShape {
            latency_ms: 150,
            bandwidth: None,
        });
        let started = std::time::Instant::now();
        assert_eq!(
            roundtrip(&mut stream, b"slow").await.expect("echo"),
            b"slow"
        );
        // Out and back: two delayed directions.
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        proxy.set_shape(LinkShape::default());
        let started = std::time::Instant::now();
        assert_eq!(
            roundtrip(&mut stream, b"fast").await.expect("echo"),
            b"fast"
        );
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn bandwidth_paces_bytes() {
        let echo = echo_server().await;
        let proxy = Proxy::start("t", echo, &Handle::current()).expect("proxy");
        proxy.set_shape(LinkShape {
            latency_ms: 0,
            bandwidth: Some(200_000),
        });
        let mut stream = TcpStream::connect(proxy.listen_addr())
            .await
            .expect("connect");
        let payload = vec![7u8; 100_000];
        let started = std::time::Instant::now();
        stream.write_all(&payload).await.expect("write");
        let mut back = vec![0u8; payload.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
            .await
            .expect("in time")
            .expect("read");
        // 100 kB each way at 200 kB/s: at least ~0.5 s per direction, less the first chunk's pause.
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn one_way_block_holds_one_direction_only() {
        // A sink that reports what it received, and a source that writes on accept.
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let target = listener.local_addr().expect("addr");
        let (seen_tx, mut seen) = mpsc::channel::<Vec<u8>>(8);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen_tx = seen_tx.clone();
                tokio::spawn(async move {
                    let _ = stream.write_all(b"hello").await;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || seen_tx.send(buf[..n].to_vec()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start("t", target, &Handle::current()).expect("proxy");
        proxy.set_blocked(true, false);
        let mut stream = TcpStream::connect(proxy.listen_addr())
            .await
            .expect("connect");
        let mut greeting = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut greeting))
            .await
            .expect("reverse direction flows")
            .expect("read");
        assert_eq!(&greeting, b"hello");
        stream.write_all(b"held").await.expect("write");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), seen.recv())
                .await
                .is_err(),
            "bytes crossed a blocked direction"
        );
        proxy.set_blocked(false, false);
        let got = tokio::time::timeout(Duration::from_secs(2), seen.recv())
            .await
            .expect("released after unblock")
            .expect("sink open");
        assert_eq!(got, b"held");
    }
}
