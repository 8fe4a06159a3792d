//! Forking the harness's children (nats-server nodes, Postgres, indexer, analytics) so that they die
//! with the harness.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. Tokio's
//! blocking threads come and go (one idle for 10 s exits and would take its children along), so
//! every child is forked from one thread that lives as long as the process: then the signal means
//! exactly "the harness is gone".

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use std::os::unix::process::CommandExt;

struct SpawnRequest {
    command: Command,
    reply: tokio::sync::oneshot::Sender<io::Result<Child>>,
}

static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

fn spawner() -> io::Result<mpsc::Sender<SpawnRequest>> {
    if let Some(sender) = SPAWNER.get() {
        return sender
            .lock()
            .map(|s| s.clone())
            .map_err(|_| io::Error::other("the spawner lock is poisoned"));
    }
    let (requests, inbox) = mpsc::channel::<SpawnRequest>();
    std::thread::Builder::new()
        .name("aivo-spawner".to_string())
        .spawn(move || {
            // Never returns while the process lives: the sender sits in a static.
            while let Ok(request) = inbox.recv() {
                let mut command = request.command;
                if let Err(Ok(mut orphan)) = request.reply.send(command.spawn()) {
                    let _ = orphan.kill();
                    let _ = orphan.wait();
                }
            }
        })?;
    let sender = SPAWNER.get_or_init(|| Mutex::new(requests));
    sender
        .lock()
        .map(|s| s.clone())
        .map_err(|_| io::Error::other("the spawner lock is poisoned"))
}

/// Forks `command` in a process group of its own (a Ctrl-C at the terminal reaches the harness, which
/// then stops the child in order) with `death_signal` sent to it if the harness dies.
pub(crate) async fn spawn_tied(
    mut command: Command,
    death_signal: libc::c_int,
) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs between fork and exec; prctl and getppid are async-signal-safe and building an
    // io::Error from a raw code does not allocate. std runs this after any setuid/setgid, so the
    // death signal survives the credential change.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                death_signal as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command.process_group(0);
    let (reply, answer) = tokio::sync::oneshot::channel();
    spawner()?
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
    answer
        .await
        .map_err(|_| io::Error::other("the spawner thread has stopped"))?
}

/// Sends `signal` to `pid` (ignoring a process that is already gone).
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned and still hold (not yet reaped).
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}
