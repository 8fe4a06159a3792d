//! nats CLI contexts: `~/.config/nats/context/NAME.json` (`$XDG_CONFIG_HOME` when set), read as
//! the nats CLI writes them, so an existing `nats context` works unchanged; and the context
//! aivo-load writes for a production-profile cluster.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ClientAuth, SecurityError};

/// The fields of a nats CLI context that a connection needs (others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsContext {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub creds: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nkey: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_first: bool,
}

/// Where the nats CLI keeps context `name`.
pub fn context_path(name: &str) -> Result<PathBuf, SecurityError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(SecurityError::Invalid(format!(
            "--context {name:?}: a context name is a file name without a path"
        )));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            SecurityError::Invalid("--context: neither XDG_CONFIG_HOME nor HOME is set".into())
        })?;
    Ok(config
        .join("nats")
        .join("context")
        .join(format!("{name}.json")))
}

impl NatsContext {
    /// Reads context `name` from the nats CLI's directory.
    pub fn load(name: &str) -> Result<Self, SecurityError> {
        Self::read(&context_path(name)?)
    }

    /// Reads a context file.
    pub fn read(path: &Path) -> Result<Self, SecurityError> {
        let text = std::fs::read_to_string(path).map_err(SecurityError::io(path))?;
        let context: Self = serde_json::from_str(&text).map_err(|e| {
            SecurityError::Invalid(format!("{}: not a nats context: {e}", path.display()))
        })?;
        if !context.token.is_empty() {
            return Err(SecurityError::Invalid(format!(
                "{}: the context authenticates with a token, which aivo-load does not take \
                 (use creds, nkey or user/password)",
                path.display()
            )));
        }
        Ok(context)
    }

    /// The server list, if the context names one (`nats://a:4222,nats://b:4222`).
    pub fn server(&self) -> Option<String> {
        (!self.url.trim().is_empty()).then(|| self.url.clone())
    }

    /// The identity and TLS settings. Paths are taken as written (the nats CLI expands `~`;
    /// so do we).
    pub fn auth(&self) -> ClientAuth {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let path = |s: &str| text(s).map(|s| expand_home(&s));
        ClientAuth {
            creds: path(&self.creds),
            nkey: path(&self.nkey),
            user: text(&self.user),
            password: text(&self.password),
            tls_ca: path(&self.ca),
            tls_cert: path(&self.cert),
            tls_key: path(&self.key),
            tls_first: self.tls_first,
        }
    }

    /// The context for `server` and `auth` (what `cluster up --profile production` writes).
    pub fn for_auth(description: &str, server: &str, auth: &ClientAuth) -> Self {
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        Self {
            description: description.to_string(),
            url: server.to_string(),
            user: auth.user.clone().unwrap_or_default(),
            password: auth.password.clone().unwrap_or_default(),
            token: String::new(),
            creds: path(&auth.creds),
            nkey: path(&auth.nkey),
            cert: path(&auth.tls_cert),
            key: path(&auth.tls_key),
            ca: path(&auth.tls_ca),
            tls_first: auth.tls_first,
        }
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nats_cli_context_reads_as_url_and_client_options() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prod.json");
        // As `nats context save` writes one (fields we do not use included).
        std::fs::write(
            &path,
            r#"{"description":"prod","url":"nats://a:4222,nats://b:4222","socks_proxy":"",
                "token":"","user":"","password":"","creds":"","nkey":"/k/admin.nk",
                "cert":"/k/admin.pem","key":"/k/admin-key.pem","ca":"/k/ca.pem","nsc":"",
                "jetstream_domain":"","jetstream_api_prefix":"","jetstream_event_prefix":"",
                "inbox_prefix":"","user_jwt":"","color_scheme":"","tls_first":true}"#,
        )
        .expect("write");
        let context = NatsContext::read(&path).expect("context");
        assert_eq!(
            context.server().as_deref(),
            Some("nats://a:4222,nats://b:4222")
        );
        let auth = context.auth();
        assert_eq!(auth.nkey, Some("/k/admin.nk".into()));
        assert_eq!(auth.tls_ca, Some("/k/ca.pem".into()));
        assert_eq!(auth.tls_cert, Some("/k/admin.pem".into()));
        assert!(auth.tls_first);
        assert_eq!(auth.user, None);
        // What we write reads back the same.
        let written = NatsContext::for_auth("prod", "nats://a:4222,nats://b:4222", &auth);
        assert_eq!(written.auth(), auth);
    }

    #[test]
    fn bad_contexts_are_clear_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{ not json").expect("write");
        assert!(NatsContext::read(&path)
            .unwrap_err()
            .to_string()
            .contains("not a nats context"));
        std::fs::write(&path, r#"{"url":"nats://x","token":"s3cret"}"#).expect("write");
        assert!(NatsContext::read(&path)
            .unwrap_err()
            .to_string()
            .contains("token"));
        assert!(context_path("../etc/passwd").is_err());
        assert!(NatsContext::read(&dir.path().join("missing.json")).is_err());
    }
}
