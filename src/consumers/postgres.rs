//! Postgres for the consumers: an embedded server started in a run (or test) directory, and the
//! connection helper every consumer uses.
//!
//! [`EmbeddedPostgres::start`] runs `initdb` once in `<dir>/data`, then starts `postgres` on a free
//! loopback port with its Unix socket inside the data directory, and creates the `aivo` database.
//! Postgres refuses to run as root; when the harness is root, the server runs as the `postgres` system
//! user (else `nobody`), the data directory is owned by that user, and directories above it that we
//! own but that user cannot traverse get the search bit (`o+x`, no read) so it can reach its data.
//! The server is forked with `PR_SET_PDEATHSIG(SIGQUIT)` (Postgres' immediate shutdown) so it dies
//! with the harness, and [`Drop`] stops it. The directory stays (it is part of the run dir; a test's
//! tempdir removes it).
//!
//! The embedded server is a disposable fixture, so it trades durability for speed: `fsync`,
//! `synchronous_commit` and `full_page_writes` are off. A crash of the Postgres *process* still loses
//! nothing committed (that needs an OS crash); the harness never simulates one.
//!
//! `--postgres-url` / `DATABASE_URL` selects an existing server instead; [`connect`] serves both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

use tokio_postgres::{Client, NoTls};

use super::ConsumersError;
use crate::child::{signal, spawn_tied};

/// The role `initdb` creates (a superuser, trust authentication on loopback only).
pub const EMBEDDED_USER: &str = "aivo";
/// The database the consumers write to.
pub const EMBEDDED_DATABASE: &str = "aivo";

/// How long a connection attempt may take; a local server answers in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a started server may take to accept connections (crash recovery after a kill included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest Unix socket path the kernel accepts is 107 bytes; Postgres adds `/.s.PGSQL.NNNNN`.
const MAX_SOCKET_DIR: usize = 90;

/// Settings written once into `postgresql.conf` (see the module header for why durability is off).
const CONFIG: &str = "\n# aivo-load embedded server\n\
listen_addresses = '127.0.0.1'\n\
fsync = off\n\
synchronous_commit = off\n\
full_page_writes = off\n\
max_connections = 100\n\
shared_buffers = 128MB\n\
max_wal_size = 4GB\n\
checkpoint_timeout = 15min\n\
log_min_messages = warning\n\
log_checkpoints = off\n";

/// Where the Postgres server binaries are: `AIVO_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` holding both `initdb` and `postgres`.
pub fn find_binaries() -> Result<PathBuf, ConsumersError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("AIVO_PG_BIN").map(PathBuf::from) {
        return if has_both(&dir) {
            Ok(dir)
        } else {
            Err(ConsumersError::PostgresMissing {
                searched: format!("AIVO_PG_BIN={}", dir.display()),
            })
        };
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    has_both(&bin).then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| ConsumersError::PostgresMissing {
            searched: format!("{}/*/bin (and AIVO_PG_BIN is not set)", root.display()),
        })
}

/// The unprivileged account the server runs as when the harness is root.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

fn run_as() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    ["postgres", "nobody"].iter().find_map(|name| {
        let cname = std::ffi::CString::new(*name).ok()?;
        // SAFETY: getpwnam returns a pointer into static storage or null; we copy the two ids out
        // before any other call could overwrite it.
        let entry = unsafe { libc::getpwnam(cname.as_ptr()) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: non-null, points to a valid passwd record.
        let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
        Some(RunAs {
            name: (*name).to_string(),
            uid,
            gid,
        })
    })
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ConsumersError {
    let what = what.into();
    move |source| ConsumersError::Io { what, source }
}

/// Makes `dir` and everything under it owned by `user`.
fn chown_tree(dir: &Path, user: &RunAs) -> Result<(), ConsumersError> {
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
        .map_err(io_error(format!("chown {}", dir.display())))?;
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).map_err(io_error(format!("read {}", dir.display())))? {
            let entry = entry.map_err(io_error(format!("read {}", dir.display())))?;
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// Gives `user` search (not read) permission on the directories above `dir` that we own and that
/// it could not traverse otherwise (a tempdir is 0700).
fn open_path_to(dir: &Path, user: &RunAs) -> Result<(), ConsumersError> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let can_search = mode & 0o001 != 0
            || (meta.uid() == user.uid && mode & 0o100 != 0)
            || (meta.gid() == user.gid && mode & 0o010 != 0);
        if can_search {
            continue;
        }
        if meta.uid() != me {
            return Err(ConsumersError::EmbeddedPostgres {
                what: format!("{} cannot reach {}", user.name, dir.display()),
                reason: format!(
                    "{} is not searchable by {} and not ours to change; put the run directory elsewhere",
                    ancestor.display(),
                    user.name
                ),
            });
        }
        tracing::info!(
            "giving others search permission on {} so {} can reach its data",
            ancestor.display(),
            user.name
        );
        std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | 0o001))
            .map_err(io_error(format!("chmod o+x {}", ancestor.display())))?;
    }
    Ok(())
}

fn free_port() -> Result<u16, ConsumersError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(io_error("bind a free loopback port"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("read a free loopback port"))?
        .port();
    Ok(port)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    if tail.is_empty() {
        format!("(nothing in {})", path.display())
    } else {
        format!("last lines of {}:\n{tail}", path.display())
    }
}

/// A Postgres server the harness started; dropping it stops the server.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
    child: Option<Child>,
}

impl EmbeddedPostgres {
    /// Initialises `<dir>/data` (unless it holds a cluster already), starts the server on a free
    /// loopback port and creates the `aivo` database. The server log is `<dir>/postgres.log`.
    pub async fn start(dir: &Path) -> Result<EmbeddedPostgres, ConsumersError> {
        let bin = find_binaries()?;
        let run_as = run_as();
        std::fs::create_dir_all(dir).map_err(io_error(format!("create {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io_error(format!("resolve {}", dir.display())))?;
        let data = dir.join("data");
        let log = dir.join("postgres.log");
        if let Some(user) = &run_as {
            open_path_to(&dir, user)?;
            tracing::info!("running Postgres as {} (the harness is root)", user.name);
        }
        if !data.join("PG_VERSION").is_file() {
            initdb(&bin, &data, &dir.join("initdb.log"), run_as.as_ref()).await?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_error(format!("create {}", log.display())))?;
        if let Some(user) = &run_as {
            chown_tree(&log, user)?;
        }
        let mut server = EmbeddedPostgres {
            bin,
            data,
            log,
            port: 0,
            run_as,
            child: None,
        };
        // Another process may take the free port between our probe and the server's bind: retry.
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.launch().await {
                Ok(()) => {
                    server.create_database().await?;
                    return Ok(server);
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| ConsumersError::EmbeddedPostgres {
            what: "start".into(),
            reason: "no attempt was made".into(),
        }))
    }

    /// `postgres://aivo@127.0.0.1:<port>/aivo`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{EMBEDDED_USER}@127.0.0.1:{}/{EMBEDDED_DATABASE}",
            self.port
        )
    }

    /// The loopback port the server listens on (kept across [`EmbeddedPostgres::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the server with a fast shutdown (clients are disconnected, nothing committed is lost).
    pub async fn stop(&mut self) -> Result<(), ConsumersError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(child.id(), libc::SIGINT);
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ConsumersError::EmbeddedPostgres {
                    what: "stop".into(),
                    reason: format!("no fast shutdown within {STOP_TIMEOUT:?}; killed it"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the server again on the same port (after [`EmbeddedPostgres::stop`]).
    pub async fn restart(&mut self) -> Result<(), ConsumersError> {
        if self.child.is_some() {
            self.stop().await?;
        }
        self.launch().await
    }

    async fn launch(&mut self) -> Result<(), ConsumersError> {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .map_err(io_error(format!("open {}", self.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io_error(format!("open {}", self.log.display())))?;
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(socket_dir(&self.data))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(user) = &self.run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let child = spawn_tied(command, libc::SIGQUIT)
            .await
            .map_err(io_error("start postgres"))?;
        self.child = Some(child);
        let admin = format!(
            "postgres://{EMBEDDED_USER}@127.0.0.1:{}/postgres",
            self.port
        );
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(ConsumersError::EmbeddedPostgres {
                        what: format!("start on port {}", self.port),
                        reason: format!("postgres exited ({status}); {}", log_tail(&self.log)),
                    });
                }
            }
            if connect(&admin).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConsumersError::EmbeddedPostgres {
                    what: format!("start on port {}", self.port),
                    reason: format!(
                        "not accepting connections after {READY_TIMEOUT:?}; {}",
                        log_tail(&self.log)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_database(&self) -> Result<(), ConsumersError> {
        let admin = format!(
            "postgres://{EMBEDDED_USER}@127.0.0.1:{}/postgres",
            self.port
        );
        let client = connect(&admin).await?;
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&EMBEDDED_DATABASE],
            )
            .await
            .map_err(|source| ConsumersError::Postgres {
                what: "look up the aivo database",
                source,
            })?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {EMBEDDED_DATABASE}"))
                .await
                .map_err(|source| ConsumersError::Postgres {
                    what: "create the aivo database",
                    source,
                })?;
        }
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the postmaster stops its backends and exits within moments.
            signal(child.id(), libc::SIGQUIT);
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The data directory when its path is short enough for a socket, else no Unix socket at all (the
/// consumers use TCP; the socket only serves people poking at the server with `psql -h`).
fn socket_dir(data: &Path) -> String {
    let text = data.to_string_lossy();
    if text.len() <= MAX_SOCKET_DIR {
        text.into_owned()
    } else {
        String::new()
    }
}

async fn initdb(
    bin: &Path,
    data: &Path,
    log: &Path,
    run_as: Option<&RunAs>,
) -> Result<(), ConsumersError> {
    std::fs::create_dir_all(data).map_err(io_error(format!("create {}", data.display())))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("chmod {}", data.display())))?;
    let out = std::fs::File::create(log).map_err(io_error(format!("create {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io_error(format!("open {}", log.display())))?;
    if let Some(user) = run_as {
        chown_tree(data, user)?;
        chown_tree(log, user)?;
    }
    let mut command = Command::new(bin.join("initdb"));
    command
        .arg("-D")
        .arg(data)
        .args(["-U", EMBEDDED_USER, "-A", "trust", "-E", "UTF8"])
        .args(["--locale=C", "--no-sync", "--no-instructions"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
    let status = tokio::task::spawn_blocking(move || command.status())
        .await
        .map_err(|e| ConsumersError::EmbeddedPostgres {
            what: "initdb".into(),
            reason: e.to_string(),
        })?
        .map_err(io_error("run initdb"))?;
    if !status.success() {
        return Err(ConsumersError::EmbeddedPostgres {
            what: format!("initdb in {}", data.display()),
            reason: format!("{status}; {}", log_tail(log)),
        });
    }
    let conf = data.join("postgresql.conf");
    let mut text =
        std::fs::read_to_string(&conf).map_err(io_error(format!("read {}", conf.display())))?;
    text.push_str(CONFIG);
    std::fs::write(&conf, text).map_err(io_error(format!("write {}", conf.display())))?;
    Ok(())
}

/// Connects to `url` (bounded by a timeout) and drives the connection on a task of its own.
pub async fn connect(url: &str) -> Result<Client, ConsumersError> {
    let fail = |reason: String| ConsumersError::PostgresConnect {
        url: url.to_string(),
        reason,
    };
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| fail(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!("postgres connection ended: {err}");
        }
    });
    Ok(client)
}
