//! Sitting on the server that leads a consumer.
//!
//! A JetStream consumer lives on one server of its stream's peers, its leader. A client connected
//! elsewhere gets every delivery forwarded over a route and sends every ack back the same way: on a
//! three-node cluster that is a third more server work per event (measured with `benches/indexer.rs`:
//! catch-up 56k rows/s through another server, 66k rows/s on the leader's). So a stream worker asks
//! each URL of the list which server answers there ([`Nodes::discover`]) and, when its consumer's
//! leader is one of them, pulls through a connection of its own to that URL ([`Near`]), the rest of
//! the list as fallback. Where no leader is known (one URL, a standalone server, a URL that did not
//! answer) the worker uses the service's shared connection, as before.
//!
//! The leader can move (a node killed, a partition); a worker looks again each time it resubscribes,
//! and until then its deliveries are merely routed.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};

/// How long discovery waits for one URL.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(2);

/// The servers of a comma-separated URL list, by server name.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    /// The whole list, as given.
    server: String,
    /// How every connection to it identifies itself.
    auth: crate::security::ClientAuth,
    /// Server name → the URL it answers on.
    url_by_name: HashMap<String, String>,
}

impl Nodes {
    /// Asks every URL of `server` which server answers there. A URL that does not answer within
    /// [`DISCOVER_TIMEOUT`] is left out; a list of one URL has nothing to choose from.
    pub(crate) async fn discover(server: &str, auth: &crate::security::ClientAuth) -> Nodes {
        let urls: Vec<&str> = server
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let mut url_by_name = HashMap::new();
        if urls.len() > 1 {
            for url in urls {
                let options = async_nats::ConnectOptions::new()
                    .name("aivo-load discovery")
                    .connection_timeout(DISCOVER_TIMEOUT)
                    .ignore_discovered_servers();
                // Options that do not apply were refused by the service's first connect.
                let Ok(options) = auth.apply(options).await else {
                    continue;
                };
                let connected =
                    tokio::time::timeout(DISCOVER_TIMEOUT * 2, options.connect(url)).await;
                if let Ok(Ok(client)) = connected {
                    let name = client.server_info().server_name;
                    if !name.is_empty() {
                        url_by_name.insert(name, url.to_string());
                    }
                }
            }
        }
        Nodes {
            server: server.to_string(),
            auth: auth.clone(),
            url_by_name,
        }
    }

    /// The URL that reaches server `name`, if discovery found it.
    pub(crate) fn url_of(&self, name: &str) -> Option<&str> {
        self.url_by_name.get(name).map(String::as_str)
    }
}

/// A stream worker's own connection to the server leading its consumer.
#[derive(Default)]
pub(crate) struct Near {
    /// The URL it prefers, and the context connected that way.
    connection: Option<(String, jetstream::Context)>,
}

impl Near {
    /// `consumer` (looked up through any connection) as seen through a connection to its leader's
    /// server, opened here unless the last one already prefers that server. `None` when the leader
    /// is unknown or cannot be reached: the caller keeps `consumer` as it is.
    pub(crate) async fn rebind(
        &mut self,
        nodes: &Nodes,
        stream: &str,
        consumer: &PullConsumer,
    ) -> Option<PullConsumer> {
        let info = consumer.cached_info();
        let leader = info.cluster.as_ref()?.leader.as_deref()?;
        let url = nodes.url_of(leader)?;
        if self.connection.as_ref().map(|(u, _)| u.as_str()) != Some(url) {
            let js = crate::topology::connect_preferring(&nodes.server, Some(url), &nodes.auth)
                .await
                .map_err(|e| tracing::debug!("{stream}: no connection to {leader} ({e})"))
                .ok()?;
            self.connection = Some((url.to_string(), js));
        }
        let (_, js) = self.connection.as_ref()?;
        js.get_consumer_from_stream(&info.name, stream)
            .await
            .map_err(|e| tracing::debug!("{stream}: {} through {leader}: {e}", info.name))
            .ok()
    }
}
