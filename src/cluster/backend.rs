//! Which kind of cluster a command works on. The flag's values, their help and what each kind
//! allows live here, so that nothing outside `src/cluster/` has to branch on the kind.

use serde::Serialize;

/// Which cluster a command works on (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Three embedded nats-server processes on free loopback ports (the default).
    Local,
    /// Any running cluster given by --server; load and checks only.
    External,
    /// The seed's docker-compose cluster (compose/) in containers, driven through the Docker API.
    Docker,
}

impl BackendKind {
    /// Every kind, in the order `--help` lists them.
    pub const ALL: [BackendKind; 3] = [Self::Local, Self::External, Self::Docker];

    /// The flag value (`local`, `external`, `docker`), also the report's `run.backend`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::External => "external",
            Self::Docker => "docker",
        }
    }

    /// One line of `--help` for this value.
    pub fn help(self) -> &'static str {
        match self {
            Self::Local => {
                "Three embedded nats-server processes on free loopback ports (the default)"
            }
            Self::External => "Any running cluster given by --server; load and checks only",
            Self::Docker => {
                "The seed's docker-compose cluster (compose/) in containers, driven through the \
                 Docker API; builds a FROM scratch NATS image from the local nats-server unless \
                 AIVO_NATS_IMAGE names one"
            }
        }
    }

    /// Whether aivo-load may apply faults to a cluster of this kind: only to clusters it manages.
    pub fn manages_faults(self) -> bool {
        self != Self::External
    }

    /// Whether aivo-load makes a cluster of this kind itself, and so can give it the production
    /// profile (`--profile production`): an external cluster brings its own security.
    pub fn makes_profiles(self) -> bool {
        self != Self::External
    }

    /// Whether `run --keep-cluster` can leave a cluster of this kind running.
    pub fn can_keep(self) -> bool {
        self == Self::Local
    }

    /// Whether the cluster's URLs must be given (`--server`).
    pub fn needs_servers(self) -> bool {
        self == Self::External
    }

    /// The flag a follow-up command needs to reach the same `cluster up` cluster ("" for the
    /// default, `local`).
    pub fn flag(self) -> &'static str {
        match self {
            Self::Local => "",
            Self::External => " --backend external",
            Self::Docker => " --backend docker",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| format!("unknown backend {text:?} (local, external or docker)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialise_as_the_flag_value() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.name().parse::<BackendKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_string(&kind).expect("json"),
                format!("\"{}\"", kind.name())
            );
        }
        assert!("podman".parse::<BackendKind>().is_err());
        assert!(!BackendKind::External.manages_faults());
        assert!(BackendKind::Docker.manages_faults());
    }
}

/// How a cluster is secured (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterProfile {
    /// The seed's cluster as it ships: no TLS, no accounts, anyone may do anything (the default).
    #[default]
    Open,
    /// The seed's "Production Considerations": TLS on every client connection, mutual TLS on
    /// routes, an `AIVO` account with a least-privilege user per role, a system account, no
    /// `no_auth_user` (`security::profile`).
    Production,
}

impl ClusterProfile {
    /// Both, in the order `--help` lists them.
    pub const ALL: [ClusterProfile; 2] = [Self::Open, Self::Production];

    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Production => "production",
        }
    }

    /// One line of `--help` for this value.
    pub fn help(self) -> &'static str {
        match self {
            Self::Open => "No TLS, no accounts: the seed's cluster as it ships (the default)",
            Self::Production => {
                "TLS on clients, mutual TLS on routes, an AIVO account with a least-privilege \
                 nkey user per role, a system account, no no_auth_user (local and docker backends)"
            }
        }
    }
}

impl std::str::FromStr for ClusterProfile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| format!("unknown profile \"{text}\" (open, production)"))
    }
}
