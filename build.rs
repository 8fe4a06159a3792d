//! Probes, once per build, what some integration tests need from the machine, and tells rustc:
//! `aivo_no_docker` where no Docker engine answers, `aivo_not_root` where the build does not run as
//! root, `aivo_no_chromium` where no headless Chromium is found (`AIVO_CHROMIUM`, else `chromium`
//! on PATH), `aivo_no_promtool` where Prometheus's `promtool` is not on PATH. Those tests carry `#[cfg_attr(aivo_no_docker, ignore = "...")]` (resp. `aivo_not_root`),
//! so the test runner reports them as skipped instead of passing them unrun: nextest has no way to
//! skip a test once it runs. The library and the binary do not look at either cfg.
//!
//! - `AIVO_REQUIRE_DOCKER=1` never sets `aivo_no_docker`: where an engine must be there (CI on a
//!   machine whose `docker info` answers), the Docker tests run, and fail saying so if it is not.
//! - `AIVO_ASSUME_NOT_ROOT=1` sets `aivo_not_root` even as root, to see the root-only tests
//!   skipped on a machine where everything runs as root.
//!
//! The probe asks what the tests' Docker client (bollard's local defaults) would ask: the Engine
//! API's `GET /_ping` on the socket named by `DOCKER_HOST` (`unix://` or `tcp://`), else on
//! `/var/run/docker.sock`, within 2 s. It runs again only when this file, one of those variables
//! or the socket file itself changes, not on every edit of the crate (a re-run rebuilds the whole
//! package). An engine started after the build is found by `touch build.rs`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long the engine has to answer: a local engine answers `/_ping` in milliseconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(aivo_no_docker)");
    println!("cargo::rustc-check-cfg=cfg(aivo_not_root)");
    println!("cargo::rustc-check-cfg=cfg(aivo_no_chromium)");
    println!("cargo::rustc-check-cfg=cfg(aivo_no_promtool)");
    println!("cargo::rerun-if-changed=build.rs");
    for var in [
        "DOCKER_HOST",
        "AIVO_REQUIRE_DOCKER",
        "AIVO_ASSUME_NOT_ROOT",
        "AIVO_CHROMIUM",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
    if let Some(socket) = host.strip_prefix("unix://") {
        // A restarted engine makes its socket anew; a missing path here would re-run the probe on
        // every build, so it is named only while it exists.
        if Path::new(socket).exists() {
            println!("cargo::rerun-if-changed={socket}");
        }
    }
    let require_docker = std::env::var("AIVO_REQUIRE_DOCKER").as_deref() == Ok("1");
    match ping(&host) {
        Ok(()) => {}
        Err(reason) if require_docker => println!(
            "cargo::warning=AIVO_REQUIRE_DOCKER=1 but no Docker engine answers at {host} \
             ({reason}): the Docker tests will run and fail"
        ),
        Err(reason) => {
            println!("cargo::rustc-cfg=aivo_no_docker");
            println!(
                "cargo::warning=no Docker engine answers at {host} ({reason}): the Docker tests \
                 are skipped (AIVO_REQUIRE_DOCKER=1 runs them anyway)"
            );
        }
    }

    match chromium() {
        Some(path) => println!("cargo::rerun-if-changed={path}"),
        None => {
            println!("cargo::rustc-cfg=aivo_no_chromium");
            println!(
                "cargo::warning=no chromium on PATH (or AIVO_CHROMIUM): the HTML rendering tests \
                 are skipped (scripts/setup --test installs it as root on Debian)"
            );
        }
    }

    match on_path("promtool") {
        Some(path) => println!("cargo::rerun-if-changed={path}"),
        None => {
            println!("cargo::rustc-cfg=aivo_no_promtool");
            println!(
                "cargo::warning=no promtool on PATH: the live metrics validation test is skipped \
                 (scripts/setup --test installs Debian's prometheus as root)"
            );
        }
    }

    let assume_not_root = std::env::var("AIVO_ASSUME_NOT_ROOT").as_deref() == Ok("1");
    if assume_not_root || !effective_uid_is_root() {
        println!("cargo::rustc-cfg=aivo_not_root");
    }
}

/// The headless browser the HTML tests use: `AIVO_CHROMIUM`, else `chromium` on PATH.
fn chromium() -> Option<String> {
    if let Some(path) = std::env::var_os("AIVO_CHROMIUM").filter(|p| !p.is_empty()) {
        return Path::new(&path)
            .is_file()
            .then(|| path.to_string_lossy().into_owned());
    }
    on_path("chromium")
}

/// The first file called `name` in a directory of PATH.
fn on_path(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// `GET /_ping` on the engine at `host` (a `DOCKER_HOST` value), expecting `200 OK`.
fn ping(host: &str) -> Result<(), String> {
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let mut answer = Vec::new();
    if let Some(path) = host.strip_prefix("unix://") {
        let stream = UnixStream::connect(path).map_err(|e| format!("connect {path}: {e}"))?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok();
        stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok();
        exchange(stream, request, &mut answer)?;
    } else if let Some(address) = host.strip_prefix("tcp://") {
        let address = address.trim_end_matches('/');
        let socket = address
            .to_socket_addrs()
            .map_err(|e| format!("resolve {address}: {e}"))?
            .next()
            .ok_or_else(|| format!("{address} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&socket, PROBE_TIMEOUT)
            .map_err(|e| format!("connect {address}: {e}"))?;
        if std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty()) {
            // Speaking TLS would need a TLS stack here: an engine that accepts is taken as there.
            return Ok(());
        }
        stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok();
        stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok();
        exchange(stream, request, &mut answer)?;
    } else {
        return Err("not a unix:// or tcp:// address".into());
    }
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.starts_with("HTTP/1.") && status.contains(" 200") {
        Ok(())
    } else {
        Err(format!("GET /_ping answered {status:?}"))
    }
}

/// Sends `request` and reads the whole answer: with HTTP/1.0 the engine closes the connection
/// after it (the stream's timeouts bound both).
fn exchange(
    mut stream: impl Read + Write,
    request: &[u8],
    answer: &mut Vec<u8>,
) -> Result<(), String> {
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    stream
        .read_to_end(answer)
        .map_err(|e| format!("read: {e}"))?;
    Ok(())
}

/// The effective uid from `/proc/self/status` (`Uid: real effective saved fs`), without a
/// build dependency; unreadable counts as not root.
fn effective_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
