//! Shared helpers for the integration tests: a real local cluster in a tempdir, a `cluster up`
//! cluster that is taken down on every path, the `aivo-load` binary run with deadlines (killed with
//! its process group when it overstays), runs in the background, waits with deadlines, and a look
//! at the kernel's TCP table.
//!
//! [`TestCluster`] works under any test runtime, `#[tokio::test]` included: its route proxies run on
//! a runtime of their own, so routes keep flowing even while the test blocks (e.g. on a CLI child).
//!
//! Tests that need a Docker engine or root are marked at build time (`build.rs` sets
//! `aivo_no_docker` / `aivo_not_root`), so they show up as skipped instead of passing without
//! having run (the Docker ones in `docker.rs`).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aivo_load::cluster::local::{LocalCluster, LocalClusterConfig};
use aivo_load::cluster::{ClusterEndpoints, ClusterProfile};

/// How long a test waits for a cluster to form (the cluster's own limit is 20 s).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A local 3-node cluster in a temporary directory; dropping it kills the nodes and removes the dir.
pub struct TestCluster {
    /// Declared before `dir` so the nodes die before their directory is removed. Shared (an `Arc`)
    /// because a chaos engine holds the cluster too: whoever holds it must drop it before this.
    cluster: Option<Arc<LocalCluster>>,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts a cluster, panicking with the harness's message (node name, log tail) if it fails.
    pub async fn start() -> TestCluster {
        Self::start_with(ClusterProfile::Open).await
    }

    /// [`TestCluster::start`] with `profile` (the production profile: TLS and accounts).
    pub async fn start_with(profile: ClusterProfile) -> TestCluster {
        Self::start_loosened(profile, &[]).await
    }

    /// [`TestCluster::start_with`], the production profile weakened on purpose by `loosen` (to
    /// show a security probe failing).
    pub async fn start_loosened(
        profile: ClusterProfile,
        loosen: &[aivo_load::security::Loosening],
    ) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("aivo-it-")
            .tempdir()
            .expect("create tempdir");
        let mut config = LocalClusterConfig::new(dir.path().join("cluster")).with_profile(profile);
        config.loosen = loosen.to_vec();
        let cluster = tokio::time::timeout(START_TIMEOUT, LocalCluster::start(config))
            .await
            .expect("cluster start timed out")
            .unwrap_or_else(|err| panic!("cluster did not start: {err}"));
        TestCluster {
            cluster: Some(Arc::new(cluster)),
            dir,
        }
    }

    /// The cluster, for a [`ChaosEngine`](aivo_load::chaos::engine::ChaosEngine) to hold.
    pub fn shared(&self) -> Arc<LocalCluster> {
        self.cluster.clone().expect("cluster is present until drop")
    }

    pub fn endpoints(&self) -> &ClusterEndpoints {
        self.cluster().endpoints()
    }

    pub fn cluster(&self) -> &LocalCluster {
        self.cluster
            .as_deref()
            .expect("cluster is present until drop")
    }

    /// The temporary directory (the cluster lives in `<dir>/cluster`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the nodes gracefully (Drop kills them), unless someone still holds [`Self::shared`].
    pub async fn shutdown(mut self) {
        if let Some(Ok(cluster)) = self.cluster.take().map(Arc::try_unwrap) {
            cluster.shutdown().await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.cluster.take();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(value)) = tokio::time::timeout(Duration::from_secs(3), check()).await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One row of `/proc/net/tcp` (IPv4; the local cluster listens on 127.0.0.1 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub established: bool,
    pub inode: u64,
}

fn parse_addr(hex: &str) -> Option<SocketAddr> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints the address in host byte order of a network-order u32 (little endian here).
    Some(SocketAddr::from((ip.to_le_bytes(), port)))
}

/// Every IPv4 TCP socket on the machine.
pub fn tcp_table() -> Vec<TcpRow> {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(TcpRow {
                local: parse_addr(fields.get(1)?)?,
                remote: parse_addr(fields.get(2)?)?,
                established: *fields.get(3)? == "01",
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Socket inodes a process holds open.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let text = target.to_string_lossy().into_owned();
            text.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// True if `pid` is a live (not zombie) process.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Creates (or updates) a stream, retrying until `timeout`.
///
/// Right after a cluster forms, the first JetStream API answers and publish acks are now and then lost
/// (seen about once in ten fresh clusters, with or without the route proxies): retry like a real
/// client would instead of failing.
pub async fn create_stream_with_retry(
    js: &async_nats::jetstream::Context,
    config: async_nats::jetstream::stream::Config,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let error = match js.get_or_create_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!("stream {}: {error}", config.name));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes to JetStream and waits for the ack, retrying (same message id) until `timeout`.
pub async fn publish_acked(
    js: &async_nats::jetstream::Context,
    subject: &str,
    payload: &'static str,
    timeout: Duration,
) -> Result<(), String> {
    let id = format!("{subject}-{}", std::process::id());
    publish_acked_as(js, subject, &id, payload.into(), timeout).await
}

/// Publishes `payload` with the dedup id `id` until the stream acknowledges it or `timeout`
/// passes: a stream between leaders (nats-server takes seconds to elect one) answers with no
/// responders, and the id keeps a retried write that was stored after all from counting twice.
pub async fn publish_acked_as(
    js: &async_nats::jetstream::Context,
    subject: &str,
    id: &str,
    payload: bytes::Bytes,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let error = match js
            .publish_with_headers(subject.to_string(), headers, payload.clone())
            .await
        {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(err) => err.to_string(),
            },
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!("publish to {subject}: {error}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// --- the `aivo-load` binary -------------------------------------------------------------------

pub const BIN: &str = env!("CARGO_BIN_EXE_aivo-load");

/// Runs the `aivo-load` binary with a deadline, without blocking the runtime that moves the proxies' bytes.
pub async fn aivo(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command.args(args).kill_on_drop(true).env_remove("NATS_URL");
    for (k, v) in envs {
        command.env(k, v);
    }
    tokio::time::timeout(timeout, command.output())
        .await
        .unwrap_or_else(|_| panic!("aivo-load {args:?} did not finish within {timeout:?}"))
        .expect("spawn aivo-load")
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A short real run on the local backend (its own cluster): the default scenario (focus-burst) for
/// 6 s at a tenth of its rates, the report under `reports`.
pub async fn short_local_run(reports: &Path) -> Output {
    aivo(
        &[
            "run",
            "--duration",
            "6s",
            "--rate-scale",
            "0.1",
            "--reports-dir",
            reports.to_str().expect("utf-8 path"),
        ],
        &[],
        Duration::from_secs(90),
    )
    .await
}

/// The single report directory written under `reports`.
pub fn report_json(reports: &Path) -> serde_json::Value {
    let dir = run_dir(reports);
    assert!(dir.join("summary.md").is_file() && dir.join("timeline.csv").is_file());
    read_report(&dir.join("report.json"))
}

/// The one run dir a run made under `reports`.
pub fn run_dir(reports: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(reports)
        .expect("reports dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "one run dir expected: {dirs:?}");
    dirs[0].clone()
}

/// `schemas/report.schema.json`, compiled once.
fn report_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json");
        let schema: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("the schema")).expect("JSON");
        jsonschema::validator_for(&schema).expect("a valid JSON Schema")
    })
}

/// Where `report` breaks `schemas/report.schema.json`, one line per error (empty: it conforms).
pub fn schema_errors(report: &serde_json::Value) -> Vec<String> {
    report_schema()
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// A report.json read back and checked against the schema: every test that reads a run's report
/// through here also tests that aivo-load writes what the schema promises.
pub fn read_report(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).expect("report.json");
    let report: serde_json::Value = serde_json::from_slice(&bytes).expect("report.json is JSON");
    let errors = schema_errors(&report);
    assert!(
        errors.is_empty(),
        "{} breaks schemas/report.schema.json:\n{}",
        path.display(),
        errors.join("\n")
    );
    report
}

/// The DOM headless Chromium builds from a local page (`--dump-dom`): what a browser parsed,
/// inline SVG included. Only for tests marked `#[cfg_attr(aivo_no_chromium, ignore = ...)]`.
pub fn chromium_dom(page: &Path) -> String {
    let chromium = std::env::var("AIVO_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("file://{}", page.display());
    let mut command = Command::new(&chromium);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        &format!("--user-data-dir={}", profile.path().display()),
        "--dump-dom",
        &url,
    ]);
    let dumped = output_within(command, Duration::from_secs(90));
    assert!(dumped.status.success(), "{}", text(&dumped));
    String::from_utf8_lossy(&dumped.stdout).into_owned()
}

/// `aivo-load` with `AIVO_STATE_DIR` set, for the `cluster`, `chaos` and `heal` commands.
pub fn aivo_in(state_dir: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .env("AIVO_STATE_DIR", state_dir)
        .env_remove("NATS_URL")
        .env_remove("RUST_LOG");
    command
}

/// Runs a blocking command with its output captured, so that a hang fails the test after `limit`
/// instead of blocking it; an overstaying command is killed with its process group first.
pub fn output_within(command: Command, limit: Duration) -> Output {
    run_within(command, limit).unwrap_or_else(|err| panic!("{err}"))
}

/// [`output_within`] without the panic (for `Drop`). The command runs in a process group of its
/// own, so that past `limit` SIGKILL reaches what it started in that group too (a `cluster up`
/// supervisor escapes it with `setsid`: that is [`ClusterUp`]'s job). The child is reaped by the
/// thread that collects its output; that thread is waited for a few seconds more after the kill.
fn run_within(mut command: Command, limit: Duration) -> Result<Output, String> {
    use std::os::unix::process::CommandExt;
    let shown = format!("{command:?}");
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command
        .spawn()
        .map_err(|err| format!("spawn {shown}: {err}"))?;
    let group = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(result) => result.map_err(|err| format!("wait for {shown}: {err}")),
        Err(_) => {
            // SAFETY: kill(2) with a valid signal on the group whose leader is our child; the
            // leader is not reaped yet (its thread has not answered), so the id is still ours.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
            let reaped = match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(_) => "killed and reaped with its process group",
                Err(_) => "killed its process group, not reaped within 5s (a pipe held open)",
            };
            Err(format!("{shown} did not finish within {limit:?}: {reaped}"))
        }
    }
}

/// A cluster kept by `aivo-load cluster up` (or `run --keep-cluster`): a detached supervisor and
/// its nodes, which outlive the test unless something runs `cluster down`. Made before the cluster
/// comes up, its `Drop` runs `cluster down` with the same state dir, backend and settings, bounded
/// in time, so a failed assertion (or a hung `up`) leaves nothing running.
pub struct ClusterUp {
    backend: &'static str,
    /// `AIVO_STATE_DIR` and whatever else the backend reads (docker project, ports).
    envs: Vec<(String, String)>,
    /// How long `cluster down` may take on drop (a docker project takes longer than processes).
    down_limit: Duration,
}

impl ClusterUp {
    /// Guards the local cluster kept in `state_dir`, whoever brings it up.
    pub fn local(state_dir: &Path) -> ClusterUp {
        ClusterUp {
            backend: "local",
            envs: vec![("AIVO_STATE_DIR".into(), state_dir.display().to_string())],
            down_limit: Duration::from_secs(30),
        }
    }

    /// Guards the docker cluster that `envs` (`AIVO_STATE_DIR`, `AIVO_DOCKER_PROJECT`, ports)
    /// describe.
    pub fn docker(envs: &[(&str, &str)]) -> ClusterUp {
        ClusterUp {
            backend: "docker",
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            down_limit: Duration::from_secs(120),
        }
    }

    /// Runs `cluster up` on a local cluster in `state_dir` (up waits at most 25 s itself), after
    /// making the guard, so that even a hung `up` ends in `cluster down`.
    pub fn start_local(state_dir: &Path) -> (ClusterUp, Output) {
        let guard = ClusterUp::local(state_dir);
        let up = output_within(guard.command(&["cluster", "up"]), Duration::from_secs(45));
        (guard, up)
    }

    /// `aivo-load ARGS` with this cluster's settings in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("NATS_URL")
            .env_remove("RUST_LOG");
        command
    }
}

impl Drop for ClusterUp {
    fn drop(&mut self) {
        let down = self.command(&["cluster", "down", "--backend", self.backend]);
        match run_within(down, self.down_limit) {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!("cluster down on drop failed: {}", status_text(&output)),
            Err(err) => eprintln!("cluster down on drop: {err}"),
        }
    }
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn status_text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The run passed, or failed only thresholds on `metrics` (name prefixes) and no check. On a
/// loaded 2-core CI machine a short run's latency or error budget is not what a test of the
/// report's structure or of a fault is about; the checks (ledger, streams, DLQ, ...) are, and
/// those must pass either way.
pub fn assert_passed_but_for(output: &Output, report: &serde_json::Value, metrics: &[&str]) {
    let log = text(output);
    match output.status.code() {
        Some(0) => assert_eq!(report["verdict"]["passed"], true, "{log}"),
        Some(1) => {
            let failed: Vec<&str> = report["thresholds"]
                .as_array()
                .expect("thresholds")
                .iter()
                .filter(|t| t["passed"] == false)
                .map(|t| t["metric"].as_str().expect("metric"))
                .collect();
            let failures = report["verdict"]["failures"]
                .as_array()
                .expect("failures")
                .len();
            assert_eq!(
                failures,
                failed.len(),
                "a check failed, not only thresholds: {log}"
            );
            assert!(
                failed
                    .iter()
                    .all(|m| metrics.iter().any(|allowed| m.starts_with(allowed))),
                "thresholds other than {metrics:?} failed: {failed:?}\n{log}"
            );
        }
        other => panic!("exit {other:?}: {log}"),
    }
}

/// A run in the background writing into the Postgres at `url` (`DATABASE_URL`), with a client of
/// that Postgres: for tests that change `events` from outside the harness while the run writes.
pub struct RunIntoPostgres {
    run: tokio::task::JoinHandle<std::io::Result<Output>>,
    pub client: tokio_postgres::Client,
}

impl RunIntoPostgres {
    pub async fn start(args: &[&str], url: &str) -> Self {
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(args)
            .env_remove("NATS_URL")
            .env("DATABASE_URL", url)
            .kill_on_drop(true);
        let run = tokio::spawn(async move { command.output().await });
        let client = aivo_load::consumers::connect_postgres(url)
            .await
            .expect("connect");
        Self { run, client }
    }

    /// Retries `sql` every 200 ms until it affects exactly one row (the run's row is there);
    /// false if that never happens within a minute.
    pub async fn until_one_row(&self, sql: &str) -> bool {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Ok(1) = self.client.execute(sql, &[]).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .is_ok()
    }

    /// Waits (up to 2 minutes) for the run to end.
    pub async fn finish(self) -> Output {
        tokio::time::timeout(Duration::from_secs(120), self.run)
            .await
            .expect("the run finishes")
            .expect("join")
            .expect("run")
    }
}

/// A run in the background whose stderr is read line by line.
pub struct BackgroundRun {
    pub child: tokio::process::Child,
    stderr: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
}

impl BackgroundRun {
    pub fn spawn(args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .env_remove("NATS_URL")
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn aivo-load");
        let stderr = child.stderr.take().expect("stderr");
        Self {
            child,
            stderr: tokio::io::BufReader::new(stderr).lines(),
        }
    }

    /// Waits for a stderr line containing `needle` and returns it; fails with the lines the run
    /// printed instead.
    pub async fn wait_for_line(&mut self, needle: &str) -> String {
        let mut seen: Vec<String> = Vec::new();
        let mut matched = String::new();
        let found = tokio::time::timeout(Duration::from_secs(40), async {
            while let Ok(Some(line)) = self.stderr.next_line().await {
                if line.contains(needle) {
                    matched = line;
                    return true;
                }
                seen.push(line);
            }
            false
        })
        .await;
        let tail = seen[seen.len().saturating_sub(40)..].join("\n");
        assert_eq!(
            found,
            Ok(true),
            "the run never printed {needle:?} ({}); it printed:\n{tail}",
            if found.is_ok() {
                "its stderr ended"
            } else {
                "40 s passed"
            }
        );
        matched
    }

    /// Drains stderr (so the run cannot block on a full pipe) and waits for the exit code.
    pub async fn finish(mut self) -> Option<i32> {
        let drain = async { while let Ok(Some(_)) = self.stderr.next_line().await {} };
        let (_, status) = tokio::time::timeout(Duration::from_secs(90), async {
            tokio::join!(drain, self.child.wait())
        })
        .await
        .expect("the run finishes");
        status.expect("wait").code()
    }
}

/// The run id of the single run writing into `reports` (its report directory's name).
pub fn run_id_in(reports: &Path) -> String {
    let dirs: Vec<_> = std::fs::read_dir(reports)
        .expect("reports dir")
        .flatten()
        .collect();
    assert_eq!(dirs.len(), 1, "one report directory expected");
    dirs[0].file_name().to_string_lossy().into_owned()
}

/// An 8 s focus-burst at a tenth of its rate against a fresh local cluster, 2 s into its load, with
/// a JetStream client of one node: for tests that tamper with a stream from outside the harness
/// while the run writes, then look at what the run's checks made of it.
pub struct FocusBurstUnderWay {
    /// Declared first: the run is killed before its cluster goes.
    pub run: BackgroundRun,
    pub js: async_nats::jetstream::Context,
    pub cluster: TestCluster,
    pub reports: tempfile::TempDir,
}

impl FocusBurstUnderWay {
    /// Starts the cluster and the run; `js` talks to node `node` (0-based) only.
    pub async fn start(node: usize) -> FocusBurstUnderWay {
        Self::start_with(node, true).await
    }

    /// [`FocusBurstUnderWay::start`] with `[publishers] message_id` set to `message_id` (the
    /// built-in focus-burst, written to a file with that line added).
    pub async fn start_with(node: usize, message_id: bool) -> FocusBurstUnderWay {
        let cluster = TestCluster::start().await;
        let servers = cluster.endpoints().server_list();
        let reports = tempfile::tempdir().expect("tempdir");
        let scenario = cluster.dir().join("focus-burst.toml");
        let text = include_str!("../../scenarios/focus-burst.toml").replace(
            "[publishers]\n",
            &format!("[publishers]\nmessage_id = {message_id}\n"),
        );
        std::fs::write(&scenario, text).expect("scenario file");
        let mut run = BackgroundRun::spawn(&[
            "run",
            scenario.to_str().expect("utf-8 path"),
            "--backend",
            "external",
            "--server",
            &servers,
            "--duration",
            "8s",
            "--rate-scale",
            "0.1",
            "--reports-dir",
            reports.path().to_str().expect("utf-8 path"),
        ]);
        run.wait_for_line("cluster ready").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let client = async_nats::connect(cluster.endpoints().nodes[node].client_url.as_str())
            .await
            .expect("connect");
        FocusBurstUnderWay {
            run,
            js: async_nats::jetstream::new(client),
            cluster,
            reports,
        }
    }

    /// The run's id, for the ledger identity of events made up from outside.
    pub fn run_id(&self) -> String {
        run_id_in(self.reports.path())
    }

    /// Waits for the run to end: its exit code and its report.
    pub async fn finish(self) -> (Option<i32>, serde_json::Value) {
        let code = self.run.finish().await;
        (code, report_json(self.reports.path()))
    }
}

/// A JetStream client of `endpoints` (connecting with retries), an R3 stream `name` on
/// `<prefix>.>`, and one publish to `<prefix>.before` acknowledged: a cluster whose replicated
/// stream works, before a fault.
pub async fn r3_stream_taking_writes(
    endpoints: &ClusterEndpoints,
    name: &str,
    prefix: &str,
) -> async_nats::jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(endpoints.client_urls())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let config = async_nats::jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{prefix}.>")],
        num_replicas: 3,
        ..Default::default()
    };
    create_stream_with_retry(&js, config, Duration::from_secs(30))
        .await
        .expect("R3 stream");
    publish_acked(
        &js,
        &format!("{prefix}.before"),
        "x",
        Duration::from_secs(20),
    )
    .await
    .expect("publish before the fault");
    js
}

/// The monitoring URL of node `node` (`nats1`..`nats3`).
pub fn monitor_url(endpoints: &ClusterEndpoints, node: &str) -> String {
    endpoints
        .nodes
        .iter()
        .find(|n| n.name == node)
        .map(|n| n.monitor_url.clone())
        .unwrap_or_else(|| panic!("no node {node}"))
}

/// Injects `fault` on `target` through `engine`; it must take effect (no error, confirmed).
pub async fn inject_confirmed(
    engine: &aivo_load::chaos::engine::ChaosEngine,
    fault: aivo_load::chaos::Fault,
    target: &str,
) -> aivo_load::chaos::engine::FaultEvent {
    let target: aivo_load::chaos::Target = target.parse().expect("target");
    let event = engine.inject(&fault, &target).await.expect("inject");
    assert!(event.error.is_none(), "{event:?}");
    assert!(event.confirmed, "effect not confirmed: {event:?}");
    assert!(
        event.confirmed_s.is_some_and(|c| c >= event.requested_s),
        "{event:?}"
    );
    eprintln!("{} on {}: {}", event.fault, event.node, event.detail);
    event
}

/// The helper's own promise: an overstaying command is killed with what it started in its group,
/// and reaped, instead of being left to run past its test.
#[test]
fn run_within_kills_the_process_group_of_an_overstaying_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
    let started = Instant::now();
    let err = run_within(command, Duration::from_secs(1)).expect_err("sleeps past its limit");
    assert!(err.contains("killed and reaped"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    let sleeper: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(sleeper) {
        assert!(Instant::now() < deadline, "the group's sleep survived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of `nats-server` processes whose command line mentions `dir`.
pub fn nats_servers_under(dir: &Path) -> Vec<String> {
    let output = std::process::Command::new("pgrep")
        .args(["-f", &format!("nats-server.*{}", dir.display())])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}
