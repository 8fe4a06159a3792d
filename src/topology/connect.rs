//! Connecting to a cluster's JetStream, bounded at every step: the first reachable server of a
//! list (or a preferred one first), then a wait until JetStream answers. Used by `init`/`verify`,
//! the consumers and the run.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::AccountErrorKind;

use super::TopologyError;
use crate::security::ClientAuth;

/// How long one connection attempt to one server may take. A laptop cluster answers in
/// milliseconds; a few seconds also covers a remote cluster over a VPN.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for JetStream to answer after connecting. Right after `cluster up` the nodes
/// may still be electing a meta leader, which takes a few seconds.
const JETSTREAM_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long "no responders" on the JetStream API may last before we conclude JetStream is off.
const NO_RESPONDERS_TIMEOUT: Duration = Duration::from_secs(3);

/// Per JetStream API request. Creating an R3 stream waits for its Raft group to form, which can
/// take longer than the client's 5 s default on a busy machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the first reachable server of a comma-separated list and waits until JetStream
/// answers. Every step is bounded; failures name `server`.
pub async fn connect(server: &str) -> Result<jetstream::Context, TopologyError> {
    connect_as(server, &ClientAuth::default()).await
}

/// [`connect`] with an identity and TLS settings (`--creds`, `--nkey`, `--tls-ca` ..., or a
/// production-profile role's).
pub async fn connect_as(
    server: &str,
    auth: &ClientAuth,
) -> Result<jetstream::Context, TopologyError> {
    connect_preferring(server, None, auth).await
}

/// [`connect`], but to `preferred` (one of the list's URLs) first and, after a disconnect, back to
/// it first as well; the rest of the list is the fallback. A consumer that sits on the server leading
/// its stream's consumer saves every delivery and every ack a route hop.
pub async fn connect_preferring(
    server: &str,
    preferred: Option<&str>,
    auth: &ClientAuth,
) -> Result<jetstream::Context, TopologyError> {
    let mut urls: Vec<&str> = server
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if let Some(first) = preferred {
        urls.retain(|u| *u != first);
        urls.insert(0, first);
    }
    let connect_error = |reason: String| TopologyError::Connect {
        url: server.to_string(),
        reason,
    };
    if urls.is_empty() {
        return Err(connect_error("no server URL given".into()));
    }
    let options = async_nats::ConnectOptions::new()
        .name("aivo-load")
        .connection_timeout(CONNECT_TIMEOUT);
    let mut options = auth
        .apply(options)
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    if preferred.is_some() {
        options = options.retain_servers_order();
    }
    // The client tries each server once; bound the whole attempt as well.
    let overall = CONNECT_TIMEOUT * (urls.len() as u32 + 1);
    let client = match tokio::time::timeout(overall, options.connect(urls.as_slice())).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(connect_error(e.to_string())),
        Err(_) => return Err(connect_error(format!("no answer within {overall:?}"))),
    };
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    wait_for_jetstream(&js, server).await?;
    Ok(js)
}

async fn wait_for_jetstream(js: &jetstream::Context, server: &str) -> Result<(), TopologyError> {
    let start = tokio::time::Instant::now();
    loop {
        // Bounded by the context's request timeout.
        let (reason, give_up_after) = match js.query_account().await {
            Ok(_) => return Ok(()),
            // Nobody listens on the JetStream API: the server runs without JetStream. A node that
            // is still electing a meta leader answers (with an error) instead, so waiting the full
            // time would only delay the obvious.
            Err(e) if e.kind() == AccountErrorKind::JetStreamUnavailable => (
                format!("{e} (no JetStream API responders; is JetStream enabled?)"),
                NO_RESPONDERS_TIMEOUT,
            ),
            Err(e) => (e.to_string(), JETSTREAM_READY_TIMEOUT),
        };
        if start.elapsed() >= give_up_after {
            return Err(TopologyError::JetStreamUnavailable {
                url: server.to_string(),
                reason,
            });
        }
        tracing::debug!(%reason, "JetStream not ready yet");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
