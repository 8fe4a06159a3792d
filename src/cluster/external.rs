//! The `external` backend: someone else's cluster, given by its client URLs (`--server`) or, for
//! `cluster status`, its monitoring URLs (`--monitor`). aivo-load loads it and checks it, but never
//! changes it: every fault is refused, and starting or stopping it is its owner's business.

use super::endpoints::{ClusterEndpoints, NodeEndpoints};
use super::monitor;

/// A cluster aivo-load does not manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCluster {
    endpoints: ClusterEndpoints,
    /// How every connection identifies itself and does TLS (`--creds`, `--tls-ca`, ...).
    auth: crate::security::ClientAuth,
}

impl ExternalCluster {
    /// The cluster behind these client URLs. Its monitoring URLs are not known (they are not
    /// derivable from a client URL), so only client traffic reaches it.
    pub fn by_servers(servers: &[String]) -> Self {
        let nodes = servers
            .iter()
            .enumerate()
            .map(|(i, url)| NodeEndpoints {
                name: format!("server{}", i + 1),
                client_url: url.clone(),
                monitor_url: String::new(),
            })
            .collect();
        Self {
            endpoints: ClusterEndpoints {
                nodes,
                security: None,
            },
            auth: crate::security::ClientAuth::default(),
        }
    }

    /// The same cluster reached with `auth`.
    pub fn with_auth(mut self, auth: crate::security::ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// The client options its connections use.
    pub fn auth(&self) -> &crate::security::ClientAuth {
        &self.auth
    }

    /// The same cluster secured by the aivo-load production profile in `dir` (`--profile-dir`:
    /// a worker of a production-profile run): each role connects as its own user of that
    /// profile instead of with the one set of client options.
    pub fn with_profile_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.endpoints.security = dir;
        self
    }

    /// The cluster behind these monitoring URLs: each node's name and client URL are read from its
    /// `/varz` (a node that does not answer is named `nodeN`, with the default client port).
    pub async fn by_monitors(monitor_urls: &[String]) -> Self {
        Self {
            endpoints: monitor::discover_endpoints(monitor_urls).await,
            auth: crate::security::ClientAuth::default(),
        }
    }

    /// Client URLs, in the order given.
    pub fn client_urls(&self) -> Vec<String> {
        self.endpoints.client_urls()
    }

    /// What is known of each node.
    pub fn endpoints(&self) -> &ClusterEndpoints {
        &self.endpoints
    }

    /// Why a change to this cluster is refused.
    pub fn refusal(what: &str) -> String {
        format!(
            "refusing to {what} an external cluster: aivo-load only changes clusters it manages \
             (--backend local or docker)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_become_nodes_in_order() {
        let cluster = ExternalCluster::by_servers(&[
            "nats://127.0.0.1:4222".to_string(),
            "nats://127.0.0.1:4223".to_string(),
        ]);
        assert_eq!(
            cluster.client_urls(),
            ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        );
        assert_eq!(cluster.endpoints().nodes[1].name, "server2");
        assert!(ExternalCluster::refusal("kill a node of").contains("external"));
    }
}
