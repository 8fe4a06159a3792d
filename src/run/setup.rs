//! The declare phase of a run: one client per node, the scenario's streams and consumers created
//! or updated, every stream the run writes given its leader and current replicas, and where each
//! stands before the load. Also what the later phases derive from the declaration: the retention
//! limits to sample and the DLQ check's consumers.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::anyhow;

use crate::checks::streams::StreamWindow;
use crate::checks::{dlq, retention};
use crate::cluster::Cluster;
use crate::exit::AppError;
use crate::load::ledger::PublisherLedger;
use crate::scenario::Scenario;
use crate::security::{ClientAuth, Role};
use crate::topology::{self, StreamOverride, Topology};
use crate::traffic::Domain;

/// How long a client may take to connect to one node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster as the run declared it.
pub(super) struct Declared {
    pub(super) clients: PublisherClients,
    pub(super) js: async_nats::jetstream::Context,
    pub(super) urls: Vec<String>,
    pub(super) nats_server_version: String,
    pub(super) topology: Topology,
    /// The streams the run writes, with where each stood before the load.
    pub(super) windows: Vec<StreamWindow>,
    /// The DLQ's last sequence before the load (0 without consumers).
    pub(super) dlq_before: u64,
}

impl Declared {
    /// The streams the run writes, by name.
    pub(super) fn stream_names(&self) -> Vec<&'static str> {
        self.windows.iter().map(|w| w.stream).collect()
    }
}

/// The publishers' connections: one per node for everyone on an open cluster; on a
/// production-profile cluster one per node for each domain's publisher user, so that each
/// publisher connects as its domain's role and may publish only that domain's subjects.
pub(crate) struct PublisherClients {
    /// The admin's (open cluster: everyone's) connections.
    shared: Vec<async_nats::Client>,
    /// A stream's own publisher connections, where its domain has a user.
    by_stream: BTreeMap<&'static str, Vec<async_nats::Client>>,
}

impl PublisherClients {
    /// The same connections for every publisher.
    pub(crate) fn shared(clients: Vec<async_nats::Client>) -> Self {
        Self {
            shared: clients,
            by_stream: BTreeMap::new(),
        }
    }

    /// The connection publisher `id` of `stream` uses (spread over the nodes by id).
    pub(crate) fn for_publisher(&self, stream: &str, id: u32) -> async_nats::Client {
        let list = self
            .by_stream
            .get(stream)
            .filter(|l| !l.is_empty())
            .unwrap_or(&self.shared);
        list[id as usize % list.len()].clone()
    }

    /// Every connection, to drain at the end.
    pub(crate) fn all(&self) -> impl Iterator<Item = &async_nats::Client> {
        self.shared.iter().chain(self.by_stream.values().flatten())
    }
}

/// Connects, applies the scenario's topology and waits until every stream it writes is replicated.
pub(super) async fn declare(scenario: &Scenario, cluster: &Cluster) -> Result<Declared, AppError> {
    let urls = cluster.client_urls();
    let auth_of = |role: Role| {
        cluster
            .client_auth(&role)
            .map_err(|e| AppError::environment(anyhow!(e)))
    };
    let admin = connect_all(&urls, &auth_of(Role::Admin)?).await?;
    let mut by_stream = BTreeMap::new();
    if cluster.endpoints().security.is_some() {
        let mut domains: Vec<Domain> = scenario.traffic.iter().map(|t| t.domain).collect();
        domains.sort_unstable();
        domains.dedup();
        for domain in domains {
            let auth = auth_of(Role::Publisher(domain.name().to_string()))?;
            by_stream.insert(domain.stream(), connect_all(&urls, &auth).await?);
        }
    }
    let nats_server_version = admin[0].server_info().version;
    let topology = scenario_topology(scenario)?;
    let js = async_nats::jetstream::new(admin[0].clone());
    let clients = PublisherClients {
        shared: admin,
        by_stream,
    };
    apply_topology(&js, &topology).await?;
    let mut streams: Vec<&'static str> =
        scenario.traffic.iter().map(|t| t.domain.stream()).collect();
    streams.sort_unstable();
    streams.dedup();
    let dlq_before = if scenario.consumers.any() {
        topology::stream_position(&js, crate::consumers::dlq::DLQ_STREAM)
            .await
            .map_err(AppError::environment)?
            .last_seq
    } else {
        0
    };
    let mut windows = Vec::new();
    for stream in streams {
        topology::wait_until_replicated(&js, stream, true)
            .await
            .map_err(AppError::environment)?;
        windows.push(StreamWindow {
            stream,
            before: topology::stream_position(&js, stream)
                .await
                .map_err(AppError::environment)?,
            expiring: scenario
                .streams
                .get(stream)
                .is_some_and(|s| s.max_age.is_some()),
        });
    }
    Ok(Declared {
        clients,
        js,
        urls,
        nats_server_version,
        topology,
        windows,
        dlq_before,
    })
}

/// One client per node, each with every node's URL, its own node first: publishers spread over the
/// nodes, and when a node dies its clients fail over to the others (as AIVO's services, given the
/// whole server list, would) instead of waiting for it to come back.
async fn connect_all(
    urls: &[String],
    auth: &ClientAuth,
) -> Result<Vec<async_nats::Client>, AppError> {
    let mut clients = Vec::new();
    for first in 0..urls.len() {
        let url = &urls[first];
        let rotated: Vec<&str> = urls[first..]
            .iter()
            .chain(&urls[..first])
            .map(String::as_str)
            .collect();
        let options = async_nats::ConnectOptions::new()
            .name("aivo-load")
            .connection_timeout(CONNECT_TIMEOUT)
            .retain_servers_order();
        let options = auth
            .apply(options)
            .await
            .map_err(|e| AppError::usage(anyhow!(e)))?;
        let connect = options.connect(rotated);
        let client = tokio::time::timeout(CONNECT_TIMEOUT * 2, connect)
            .await
            .map_err(|_| anyhow!("no answer from {url} within {:?}", CONNECT_TIMEOUT * 2))
            .and_then(|r| r.map_err(|e| anyhow!("cannot connect to {url}: {e}")))
            .map_err(|e| {
                AppError::environment(e.context(
                    "is the cluster running? (`aivo-load cluster status`, or use --backend local)",
                ))
            })?;
        clients.push(client);
    }
    if clients.is_empty() {
        return Err(AppError::usage(anyhow!("no server URL to connect to")));
    }
    Ok(clients)
}

pub(super) fn scenario_topology(scenario: &Scenario) -> Result<Topology, AppError> {
    let mut topology = Topology::seed(3);
    for (stream, settings) in &scenario.streams {
        let ov = StreamOverride {
            max_age: settings.max_age,
            max_bytes: settings.max_bytes.map(|b| b.min(i64::MAX as u64) as i64),
            max_msgs: settings.max_msgs,
            replicas: settings.replicas,
        };
        topology = topology
            .with_stream_override(stream, ov)
            .map_err(|e| AppError::usage(anyhow!(e)))?;
    }
    Ok(topology)
}

/// Creates or updates the streams and consumers, retrying: right after a cluster forms, a JetStream
/// API answer is now and then lost (seen about once in ten fresh clusters), and a retry succeeds.
async fn apply_topology(
    js: &async_nats::jetstream::Context,
    topology: &Topology,
) -> Result<(), AppError> {
    let mut attempt = 1;
    loop {
        match topology::apply(js, topology).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_usage() => return Err(AppError::usage(anyhow!("init streams: {e}"))),
            Err(e) if attempt >= 3 => {
                return Err(AppError::environment(anyhow!("init streams: {e}")))
            }
            Err(e) => {
                tracing::warn!("init streams (attempt {attempt}): {e}; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The retention limits the scenario declared for the streams the run writes (max_age, max_bytes
/// and/or max_msgs overrides; a `max_msgs` of -1 is no limit); only these are sampled and checked.
pub(super) fn declared_retention(
    scenario: &Scenario,
    streams: &[&'static str],
) -> Vec<retention::DeclaredRetention> {
    scenario
        .streams
        .iter()
        .map(|(name, s)| retention::DeclaredRetention {
            stream: name.clone(),
            max_age: s.max_age,
            max_bytes: s.max_bytes,
            max_msgs: s.max_msgs.and_then(|m| u64::try_from(m).ok()),
        })
        .filter(|d| {
            streams.contains(&d.stream.as_str())
                && (d.max_age.is_some() || d.max_bytes.is_some() || d.max_msgs.is_some())
        })
        .collect()
}

/// The retention check from one sample of each stream with declared limits, taken now: how
/// `report recover` and `report merge` judge retention without the run's per-second samples.
pub(super) async fn retention_from_one_sample(
    js: &async_nats::jetstream::Context,
    scenario: &Scenario,
    windows: &[StreamWindow],
) -> Vec<retention::RetentionCheck> {
    let names: Vec<&'static str> = windows.iter().map(|w| w.stream).collect();
    let now = tokio::time::Instant::now();
    let mut checks = Vec::new();
    for declared in declared_retention(scenario, &names) {
        let sample = retention::sample(js, &declared.stream, now).await;
        checks.push(retention::judge(&declared, sample.as_slice()));
    }
    checks
}

/// The DLQ check: the dead letters of this run (after `dlq_before`) against the poison its
/// publishers injected, for the consumers the scenario ran.
pub(super) async fn check_dlq(
    scenario: &Scenario,
    declared: &Declared,
    run_id: &str,
    ledgers: &[PublisherLedger],
    up_to: Option<&BTreeMap<u32, u64>>,
) -> dlq::DlqCheck {
    let from = declared.dlq_before + 1;
    check_dlq_from(
        scenario,
        &declared.js,
        &declared.topology,
        from,
        run_id,
        ledgers,
        up_to,
    )
    .await
}

/// The DLQ check from the DLQ's sequence `from` (dead letters of other runs, by their header, are
/// foreign and ignored), for the consumers of `topology` the scenario runs; `up_to`: a merge with
/// a worker lost judges only the publishers that reported.
pub(super) async fn check_dlq_from(
    scenario: &Scenario,
    js: &async_nats::jetstream::Context,
    topology: &Topology,
    from: u64,
    run_id: &str,
    ledgers: &[PublisherLedger],
    up_to: Option<&BTreeMap<u32, u64>>,
) -> dlq::DlqCheck {
    let ran: Vec<_> = topology
        .consumers
        .iter()
        .filter(|c| {
            (c.name == "indexer" && scenario.consumers.indexer)
                || (c.name == "analytics" && scenario.consumers.analytics)
        })
        .cloned()
        .collect();
    eprintln!("aivo-load: reading the DLQ back");
    match dlq::read(js, run_id, from).await {
        Ok(mut read) => {
            if let Some(last) = up_to {
                read.records.retain(|r| {
                    last.get(&r.publisher)
                        .is_some_and(|attempted| r.seq <= *attempted)
                });
            }
            dlq::judge(run_id, ledgers, &ran, &read)
        }
        Err(e) => dlq::DlqCheck {
            detail: format!("cannot read the DLQ: {e}"),
            ..dlq::DlqCheck::default()
        },
    }
}
