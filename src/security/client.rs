//! [`ClientAuth`]: who a connection says it is and how it does TLS, as the nats CLI's flags say
//! it. One value carries it from the command line (or a nats context, or a production-profile
//! cluster's state) to every place that builds `async_nats::ConnectOptions`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::SecurityError;

/// The identity and TLS settings of a connection. The default is none: a plain, anonymous
/// connection (what an open cluster takes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAuth {
    /// A `.creds` file (user JWT and nkey seed), as `nsc` writes them.
    pub creds: Option<PathBuf>,
    /// A file holding a user's nkey seed (`SU...`).
    pub nkey: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// CA certificate(s) to verify the server with (PEM); replaces the system roots.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for servers that verify clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// TLS before the server's INFO (servers configured with `handshake_first`).
    pub tls_first: bool,
}

impl ClientAuth {
    /// No identity, no TLS settings.
    pub fn is_anonymous(&self) -> bool {
        self == &Self::default()
    }

    /// Whether any TLS option is set (then the connection must be TLS).
    pub fn uses_tls(&self) -> bool {
        self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_first
    }

    /// Fills every field `self` leaves unset from `fallback` (flags over a context, say). The
    /// identity is taken whole: a user given on the command line is not paired with a context's
    /// nkey.
    pub fn or(mut self, fallback: &ClientAuth) -> ClientAuth {
        if self.creds.is_none() && self.nkey.is_none() && self.user.is_none() {
            self.creds.clone_from(&fallback.creds);
            self.nkey.clone_from(&fallback.nkey);
            self.user.clone_from(&fallback.user);
            self.password.clone_from(&fallback.password);
        }
        if self.tls_cert.is_none() && self.tls_key.is_none() {
            self.tls_cert.clone_from(&fallback.tls_cert);
            self.tls_key.clone_from(&fallback.tls_key);
        }
        if self.tls_ca.is_none() {
            self.tls_ca.clone_from(&fallback.tls_ca);
        }
        self.tls_first |= fallback.tls_first;
        self
    }

    /// Checks that the options go together and the files they name exist, with a message that
    /// names the flag: at most one of creds, nkey and user; a password only with a user; a
    /// certificate only with its key.
    pub fn validate(&self) -> Result<(), SecurityError> {
        let identities = [
            self.creds.is_some(),
            self.nkey.is_some(),
            self.user.is_some(),
        ];
        if identities.iter().filter(|set| **set).count() > 1 {
            return Err(SecurityError::Invalid(
                "give one of --creds, --nkey and --user (a connection has one identity)".into(),
            ));
        }
        if self.password.is_some() && self.user.is_none() {
            return Err(SecurityError::Invalid("--password needs --user".into()));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(SecurityError::Invalid(
                    "--tls-cert needs --tls-key (the certificate's private key)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(SecurityError::Invalid("--tls-key needs --tls-cert".into()))
            }
            _ => {}
        }
        let files = [
            ("--creds", &self.creds),
            ("--nkey", &self.nkey),
            ("--tls-ca", &self.tls_ca),
            ("--tls-cert", &self.tls_cert),
            ("--tls-key", &self.tls_key),
        ];
        for (flag, path) in files {
            if let Some(path) = path {
                if !path.is_file() {
                    return Err(SecurityError::Invalid(format!(
                        "{flag} {}: no such file",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// `options` with this identity and TLS applied. Reads the creds and nkey files now, so a bad
    /// file is an error here rather than a failed connect.
    pub async fn apply(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, SecurityError> {
        self.validate()?;
        if let Some(path) = &self.creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| SecurityError::Invalid(format!("--creds {}: {e}", path.display())))?;
        }
        if let Some(path) = &self.nkey {
            options = options.nkey(read_nkey_seed(path)?);
        }
        if let Some(user) = &self.user {
            options =
                options.user_and_password(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls_first {
            options = options.tls_first();
        }
        if self.uses_tls() {
            options = options.require_tls(true);
        }
        Ok(options)
    }

    /// The same options with every file named by an absolute path (against this process's
    /// working directory), for a process that runs elsewhere: a worker container sees the files
    /// bind-mounted at those paths.
    pub fn with_absolute_paths(mut self) -> std::io::Result<ClientAuth> {
        for path in [
            &mut self.creds,
            &mut self.nkey,
            &mut self.tls_ca,
            &mut self.tls_cert,
            &mut self.tls_key,
        ]
        .into_iter()
        .flatten()
        {
            *path = std::path::absolute(&*path)?;
        }
        Ok(self)
    }

    /// The files these options name (creds, nkey, CA, certificate, key), as given.
    pub fn files(&self) -> Vec<&Path> {
        [
            &self.creds,
            &self.nkey,
            &self.tls_ca,
            &self.tls_cert,
            &self.tls_key,
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect()
    }

    /// The same options as `aivo-load` flags, for a child process (`indexer`, `analytics`). A
    /// password is not among them (the process list would show it): the caller passes it as
    /// `NATS_PASSWORD` in the child's environment.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut path = |flag: &str, value: &Option<PathBuf>| {
            if let Some(value) = value {
                args.push(flag.into());
                args.push(value.into());
            }
        };
        path("--creds", &self.creds);
        path("--nkey", &self.nkey);
        path("--tls-ca", &self.tls_ca);
        path("--tls-cert", &self.tls_cert);
        path("--tls-key", &self.tls_key);
        if let Some(user) = &self.user {
            args.push("--user".into());
            args.push(user.into());
        }
        if self.tls_first {
            args.push("--tls-first".into());
        }
        args
    }
}

/// The seed in an nkey file: the first line that is one (`S...`, the nats CLI's and nsc's files
/// hold it alone or among comments).
pub fn read_nkey_seed(path: &Path) -> Result<String, SecurityError> {
    let text = std::fs::read_to_string(path).map_err(SecurityError::io(path))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with('S') && !line.contains(char::is_whitespace))
        .ok_or_else(|| {
            SecurityError::Invalid(format!(
                "--nkey {}: no nkey seed (a line starting with S) in the file",
                path.display()
            ))
        })?;
    nkeys::KeyPair::from_seed(seed).map_err(|e| {
        SecurityError::Invalid(format!("--nkey {}: not an nkey seed: {e}", path.display()))
    })?;
    Ok(seed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_do_not_go_together_are_refused_with_the_flag_named() {
        let two = ClientAuth {
            nkey: Some("a".into()),
            user: Some("u".into()),
            ..ClientAuth::default()
        };
        assert!(two.validate().unwrap_err().to_string().contains("one of"));
        let cert_alone = ClientAuth {
            tls_cert: Some("c".into()),
            ..ClientAuth::default()
        };
        assert!(cert_alone
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--tls-key"));
        let missing = ClientAuth {
            tls_ca: Some("/nonexistent/ca.pem".into()),
            ..ClientAuth::default()
        };
        assert!(missing
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--tls-ca /nonexistent/ca.pem: no such file"));
    }

    #[test]
    fn a_bad_nkey_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.nk");
        std::fs::write(&path, "# no seed here\nnot one\n").expect("write");
        assert!(read_nkey_seed(&path)
            .unwrap_err()
            .to_string()
            .contains("no nkey seed"));
        std::fs::write(&path, "SUAXXXXX\n").expect("write");
        assert!(read_nkey_seed(&path)
            .unwrap_err()
            .to_string()
            .contains("not an nkey seed"));
        let seed = nkeys::KeyPair::new_user().seed().expect("seed");
        std::fs::write(&path, format!("# a user\n{seed}\n")).expect("write");
        assert_eq!(read_nkey_seed(&path).expect("seed"), seed);
    }

    #[test]
    fn flags_override_a_fallback_identity_whole() {
        let context = ClientAuth {
            nkey: Some("ctx.nk".into()),
            tls_ca: Some("ca.pem".into()),
            ..ClientAuth::default()
        };
        let flags = ClientAuth {
            user: Some("me".into()),
            ..ClientAuth::default()
        };
        let merged = flags.or(&context);
        assert_eq!(merged.user.as_deref(), Some("me"));
        assert_eq!(merged.nkey, None);
        assert_eq!(merged.tls_ca, Some("ca.pem".into()));
        let args = merged.to_args();
        assert_eq!(args, ["--tls-ca", "ca.pem", "--user", "me"]);
    }
}
