//! Where a cluster can be reached: each node's name, client URL and monitoring URL. Everything
//! outside `src/cluster/` talks to a cluster through these (and the [`Cluster`](super::Cluster)
//! handle that gives them).

use serde::{Deserialize, Serialize};

/// Where one node can be reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeEndpoints {
    /// `nats1`, `nats2`, ... (the server_name).
    pub name: String,
    /// `nats://127.0.0.1:PORT`.
    pub client_url: String,
    /// `http://127.0.0.1:PORT` (monitoring).
    pub monitor_url: String,
}

/// Where a whole cluster can be reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ClusterEndpoints {
    /// In node order (`nats1` first).
    pub nodes: Vec<NodeEndpoints>,
    /// A production-profile cluster's profile dir (`security::Profile::open` reads its users'
    /// credentials and CA from it); `None` for an open cluster, or one whose credentials are
    /// not aivo-load's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<std::path::PathBuf>,
}

impl ClusterEndpoints {
    /// Every node's client URL, for a client that should fail over between them.
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_url.clone()).collect()
    }

    /// The client URLs joined with commas, as `--server` and `NATS_URL` take them. (`async_nats::connect`
    /// does not split this form; give it [`ClusterEndpoints::client_urls`].)
    pub fn server_list(&self) -> String {
        self.client_urls().join(",")
    }

    /// The production profile whose users this cluster knows, if it has one. Its files are
    /// looked for in the dir it is opened from, wherever it was made (`profile.json` names them
    /// under the dir it was written in): a copy mounted elsewhere — a worker's `--profile-dir`, a
    /// Kubernetes secret holding only `profile.json`, `ca.pem` and `users/` — works as well.
    pub fn profile(
        &self,
    ) -> Result<Option<crate::security::Profile>, crate::security::SecurityError> {
        self.security
            .as_deref()
            .map(|dir| crate::security::Profile::open(dir).map(|p| p.relocated(dir)))
            .transpose()
    }

    /// How a client of `role` connects: that role's credentials on a production-profile cluster,
    /// none on an open one.
    pub fn client_auth(
        &self,
        role: &crate::security::Role,
    ) -> Result<crate::security::ClientAuth, crate::security::SecurityError> {
        match self.profile()? {
            Some(profile) => profile.client_auth(role),
            None => Ok(crate::security::ClientAuth::default()),
        }
    }
}
