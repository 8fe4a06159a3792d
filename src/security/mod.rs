//! **Leaf**: how aivo-load proves who it is to a cluster and what a production-profile cluster
//! lets each role do.
//!
//! - [`client`]: [`ClientAuth`], the client options NATS users know (`--creds`, `--nkey`,
//!   `--user/--password`, `--tls-ca`, `--tls-cert/--tls-key`, `--tls-first`, a nats CLI context),
//!   applied to `async_nats::ConnectOptions` wherever the harness connects.
//! - [`pki`]: the profile's CA and per-node and per-user certificates (rcgen).
//! - [`profile`]: the production profile: roles with least-privilege permissions, their nkeys, the
//!   `accounts` and `tls` blocks of a node's config, and the files a client of the profile needs.
//!
//! It names no other module of the crate: the cluster backends render what it returns into node
//! configs, and everything that connects takes a [`ClientAuth`].

pub mod client;
pub mod context;
pub mod pki;
pub mod profile;

use std::path::{Path, PathBuf};

pub use client::ClientAuth;
pub use profile::{Loosening, Profile, Role};

/// Errors of certificates, credentials and client options.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the {what}: {reason}")]
    Certificate { what: String, reason: String },
    /// Client options that do not go together, or a file that is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

impl SecurityError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn cert(what: &str) -> impl FnOnce(rcgen::Error) -> Self + '_ {
        move |e| Self::Certificate {
            what: what.to_string(),
            reason: e.to_string(),
        }
    }
}
