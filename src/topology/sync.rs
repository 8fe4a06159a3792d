//! Bringing a live cluster in line with a [`Topology`] ([`apply`]) and comparing the two
//! ([`verify`]), through the JetStream API.
//!
//! `apply` reads each object first and only writes when a declared field differs, so applying twice
//! sends no update the second time and reports everything unchanged. An update starts from the live
//! config and sets the declared fields, leaving the rest as they are. Every request is bounded by the
//! JetStream context's request timeout (set by the caller).

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, consumer, stream};

use super::fields::{
    consumer_checks, drift, immutable_consumer_changes, immutable_stream_changes, merged_consumer,
    merged_stream, stream_checks,
};
use super::{Change, ChangeKind, ConsumerDecl, FieldCheck, StreamDecl, Topology, TopologyError};

/// Creates or updates every declared stream, then every declared consumer, and says what it did
/// to each, in declaration order.
///
/// Stops at the first object it cannot bring in line: a field the server cannot change in place
/// ([`TopologyError::Immutable`]), an update the server refuses, or a failed request.
pub async fn apply(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<Vec<Change>, TopologyError> {
    let mut changes = Vec::with_capacity(topology.streams.len() + topology.consumers.len());
    for decl in &topology.streams {
        changes.push(apply_stream(js, decl).await?);
    }
    for decl in &topology.consumers {
        changes.push(apply_consumer(js, decl).await?);
    }
    Ok(changes)
}

/// Compares every declared field of every declared stream and consumer with the live cluster, in
/// declaration order. A missing object is one drifted `exists` row.
pub async fn verify(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<Vec<FieldCheck>, TopologyError> {
    let mut checks = Vec::new();
    for decl in &topology.streams {
        let live = live_stream(js, &decl.name).await?;
        checks.extend(stream_checks(&decl.config(), live.as_ref()));
    }
    for decl in &topology.consumers {
        let live = live_consumer(js, decl).await?;
        checks.extend(consumer_checks(
            &decl.object(),
            &decl.config(),
            live.as_ref(),
        ));
    }
    Ok(checks)
}

async fn apply_stream(js: &jetstream::Context, decl: &StreamDecl) -> Result<Change, TopologyError> {
    let declared = decl.config();
    let kind = match live_stream(js, &decl.name).await? {
        None => {
            create_when_placed(js, declared)
                .await
                .map_err(|e| request(&decl.name, "creating stream", e))?;
            ChangeKind::Created
        }
        Some(live) => {
            let changes = drift(&stream_checks(&declared, Some(&live)));
            if changes.is_empty() {
                ChangeKind::Unchanged
            } else {
                let fixed = immutable_stream_changes(&changes);
                if !fixed.is_empty() {
                    return Err(TopologyError::Immutable {
                        object: decl.name.clone(),
                        changes: fixed,
                    });
                }
                let merged = merged_stream(&live, &declared);
                match js.update_stream(&merged).await {
                    Ok(_) => ChangeKind::Updated(changes),
                    Err(e) => {
                        return Err(match e.kind() {
                            jetstream::context::CreateStreamErrorKind::JetStream(reason) => {
                                TopologyError::UpdateRejected {
                                    object: decl.name.clone(),
                                    changes,
                                    reason: reason.to_string(),
                                }
                            }
                            _ => request(&decl.name, "updating stream", e),
                        })
                    }
                }
            }
        }
    };
    Ok(Change {
        object: decl.name.clone(),
        kind,
    })
}

async fn apply_consumer(
    js: &jetstream::Context,
    decl: &ConsumerDecl,
) -> Result<Change, TopologyError> {
    let object = decl.object();
    let declared = decl.config();
    let kind = match live_consumer(js, decl).await? {
        None => {
            js.create_consumer_strict_on_stream(declared, &decl.stream)
                .await
                .map_err(|e| request(&object, "creating consumer", e))?;
            ChangeKind::Created
        }
        Some(live) => {
            let changes = drift(&consumer_checks(&object, &declared, Some(&live)));
            if changes.is_empty() {
                ChangeKind::Unchanged
            } else {
                let fixed = immutable_consumer_changes(&changes);
                if !fixed.is_empty() {
                    return Err(TopologyError::Immutable {
                        object,
                        changes: fixed,
                    });
                }
                let merged = merged_consumer(&live, &declared);
                match js.update_consumer_on_stream(merged, &decl.stream).await {
                    Ok(_) => ChangeKind::Updated(changes),
                    Err(e) => {
                        return Err(match e.kind() {
                            stream::ConsumerUpdateErrorKind::JetStream(reason) => {
                                TopologyError::UpdateRejected {
                                    object,
                                    changes,
                                    reason: reason.to_string(),
                                }
                            }
                            _ => request(&object, "updating consumer", e),
                        })
                    }
                }
            }
        }
    };
    Ok(Change { object, kind })
}

/// The live config of stream `name`, or `None` if there is no such stream.
async fn live_stream(
    js: &jetstream::Context,
    name: &str,
) -> Result<Option<stream::Config>, TopologyError> {
    match js.get_stream(name).await {
        Ok(stream) => Ok(Some(stream.cached_info().config.clone())),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(err)
                if err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(request(name, "reading stream", e)),
        },
    }
}

/// The live config of a declared consumer, or `None` if it (or its stream) does not exist.
async fn live_consumer(
    js: &jetstream::Context,
    decl: &ConsumerDecl,
) -> Result<Option<consumer::Config>, TopologyError> {
    let stream = js
        .get_stream_no_info(&decl.stream)
        .await
        .map_err(|e| request(&decl.object(), "reading consumer", e))?;
    match stream.consumer_info(&decl.name).await {
        Ok(info) => Ok(Some(info.config)),
        Err(e) => match e.kind() {
            jetstream::context::ConsumerInfoErrorKind::NotFound
            | jetstream::context::ConsumerInfoErrorKind::StreamNotFound => Ok(None),
            _ => Err(request(&decl.object(), "reading consumer", e)),
        },
    }
}

fn request(
    object: &str,
    action: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> TopologyError {
    TopologyError::Request {
        object: object.to_string(),
        action,
        source: Box::new(source),
    }
}

/// Creates a stream, retrying for up to 20 s while the cluster answers "no suitable peers for
/// placement" (10005): a cluster that has just formed reports a peer offline until every node's
/// first meta heartbeat has arrived, and `init` right after `cluster up` should not fail on that.
async fn create_when_placed(
    js: &async_nats::jetstream::Context,
    config: async_nats::jetstream::stream::Config,
) -> Result<async_nats::jetstream::stream::Stream, async_nats::jetstream::context::CreateStreamError>
{
    use async_nats::jetstream::context::CreateStreamErrorKind;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match js.create_stream(config.clone()).await {
            Err(e)
                if matches!(e.kind(), CreateStreamErrorKind::JetStream(ref j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::CLUSTER_NO_PEERS)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}
