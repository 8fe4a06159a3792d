//! Stuck replicas: a stream replica that stays behind its leader after the faults on a cluster were
//! reverted (issue #13 part 7, `docs/stuck-replica.md`). Seen after a route partition heals: the
//! cut-off node's replica stays "not current" for minutes, its lag growing, while its routes are
//! full, and it logs `Expected first catchup entry to be a snapshot and peerstate, will retry`;
//! a restart of that node makes it current at once.
//!
//! A replica is *lagging* in one look at the cluster when
//! - its stream's leader sees it online, not current and behind (`lag` > 0 in the leader's
//!   `/jsz?streams=true`), or
//! - its own node's `/healthz` says that stream is not current (`JetStream stream '$G > FOCUS' is
//!   not current`).
//!
//! A leader alone is not enough: an idle stream's followers can stay "not current" in the leader's
//! view with nothing to catch up (lag 0) until the next write reaches them, which is no fault.
//!
//! A replica is *stuck* when it lagged in every look for the whole bound given to [`watch`]. The
//! finding names node, stream, the leader, the lag, and the last line of the node's log that names
//! the stream's RAFT group (or the stream), when the backend keeps logs ([`Cluster::node_log`]).
//! What to do about it (restart the node) is the caller's: `heal --restart-stuck`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::monitor::{self, Health, Jsz};
use super::{Cluster, ClusterEndpoints};

/// How long a replica may stay behind after the faults were reverted before it counts as stuck.
/// A healthy catch-up after a 20 s partition under 300 events/s takes a few seconds.
pub const DEFAULT_BOUND: Duration = Duration::from_secs(30);

/// How often [`watch`] looks.
const POLL: Duration = Duration::from_secs(1);

/// One replica behind its leader in one look at the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lagging {
    pub node: String,
    pub stream: String,
    /// The stream's RAFT group (`S-R3F-…`), as the leader names it; empty if unknown.
    pub group: String,
    /// The stream's leader; empty if no leader answered.
    pub leader: String,
    /// Operations behind the leader, as the leader sees it (0 when only the node's own `/healthz`
    /// says it is not current).
    pub lag: u64,
}

/// A replica that stayed behind for the whole bound: the `stuck-replica` finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StuckReplica {
    pub node: String,
    pub stream: String,
    pub leader: String,
    /// Operations behind the leader at the last look.
    pub lag: u64,
    /// Seconds it was seen behind, without a look in between where it was current.
    pub behind_s: f64,
    /// The last line of the node's log naming the stream's RAFT group or the stream; `None` when
    /// the backend keeps no logs here (external) or no line matched.
    pub log_line: Option<String>,
}

impl StuckReplica {
    /// One line for a terminal or a report.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "stuck-replica: {} replica of stream {} still not current after {:.0}s, {} behind \
             leader {}",
            self.node,
            self.stream,
            self.behind_s,
            self.lag,
            if self.leader.is_empty() {
                "(none)"
            } else {
                &self.leader
            }
        );
        if let Some(log) = &self.log_line {
            line.push_str(&format!("; its log: {log}"));
        }
        line
    }
}

/// `cluster status`: one look, a line per replica behind right now (node, stream, lag, leader, the
/// node's last log line on it), or nothing. One look cannot tell stuck from catching up: the lines
/// say so and point at `heal --restart-stuck`, which watches for a bound.
pub async fn status_lines(cluster: &Cluster) -> Vec<String> {
    let behind = watch(cluster, Instant::now(), Duration::ZERO).await;
    if behind.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![
        "Replicas behind their leader (a stuck-replica if it lasts; `aivo-load heal \
         --restart-stuck` restarts the node after a bound):"
            .to_string(),
    ];
    for replica in behind {
        lines.push(format!(
            "  {:<6} stream {:<10} {} behind leader {}",
            replica.node,
            replica.stream,
            replica.lag,
            if replica.leader.is_empty() {
                "(none)"
            } else {
                &replica.leader
            }
        ));
        if let Some(log) = replica.log_line {
            lines.push(format!("         last log line: {log}"));
        }
    }
    lines
}

/// The replicas behind in the view of `leader_node`'s `/jsz?accounts=true&streams=true`: only a
/// stream's leader tracks its followers, so streams this node does not lead are skipped.
pub fn lagging_in_leader_view(leader_node: &str, jsz: &Jsz) -> Vec<Lagging> {
    jsz.account_details
        .iter()
        .flat_map(|a| &a.stream_detail)
        .filter_map(|s| s.cluster.as_ref().map(|c| (s, c)))
        .filter(|(_, group)| group.leader == leader_node)
        .flat_map(|(stream, group)| {
            group
                .replicas
                .iter()
                .filter(|r| !r.offline && !r.current && r.lag > 0)
                .map(|r| Lagging {
                    node: r.name.clone(),
                    stream: stream.name.clone(),
                    group: group.raft_group.clone(),
                    leader: group.leader.clone(),
                    lag: r.lag,
                })
        })
        .collect()
}

/// The stream a `/healthz` reason says is not current on that node:
/// `JetStream stream '$G > FOCUS' is not current` → `FOCUS`.
pub fn stream_not_current(reason: &str) -> Option<String> {
    if !reason.contains("not current") {
        return None;
    }
    let start = reason.find("stream '")? + "stream '".len();
    let quoted = &reason[start..];
    let name = &quoted[..quoted.find('\'')?];
    let name = name.rsplit(" > ").next().unwrap_or(name).trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// One look at every node: the replicas behind right now. A node that does not answer adds
/// nothing (an offline replica is a different problem, which the whole-cluster check names).
pub async fn observe(endpoints: &ClusterEndpoints) -> Vec<Lagging> {
    let mut found: Vec<Lagging> = Vec::new();
    let mut unhealthy: Vec<(String, String)> = Vec::new();
    for node in &endpoints.nodes {
        if let Ok(jsz) = monitor::jsz_streams(&node.monitor_url).await {
            found.extend(lagging_in_leader_view(&node.name, &jsz));
        }
        if let Ok(Health::Unhealthy(reason)) = monitor::healthz(&node.monitor_url).await {
            if let Some(stream) = stream_not_current(&reason) {
                unhealthy.push((node.name.clone(), stream));
            }
        }
    }
    for (node, stream) in unhealthy {
        if found.iter().any(|l| l.node == node && l.stream == stream) {
            continue;
        }
        // The leader does not count it behind; name the leader all the same.
        let (group, leader) = leader_of(&found, endpoints, &stream).await;
        found.push(Lagging {
            node,
            stream,
            group,
            leader,
            lag: 0,
        });
    }
    found
}

/// The RAFT group and leader of `stream`, from what is known or by asking the nodes.
async fn leader_of(
    known: &[Lagging],
    endpoints: &ClusterEndpoints,
    stream: &str,
) -> (String, String) {
    if let Some(l) = known.iter().find(|l| l.stream == stream) {
        return (l.group.clone(), l.leader.clone());
    }
    for node in &endpoints.nodes {
        let Ok(jsz) = monitor::jsz_streams(&node.monitor_url).await else {
            continue;
        };
        let group = jsz
            .stream_groups(stream)
            .find(|c| !c.leader.is_empty())
            .map(|c| (c.raft_group.clone(), c.leader.clone()));
        if let Some(found) = group {
            return found;
        }
    }
    (String::new(), String::new())
}

/// Looks every second for up to `bound` (counted from `since`, the moment the faults were
/// reverted). Returns as soon as no replica is behind (empty), or at the bound the replicas that
/// were behind in every look since they were first seen, with the node's last matching log line.
pub async fn watch(cluster: &Cluster, since: Instant, bound: Duration) -> Vec<StuckReplica> {
    let endpoints = cluster.endpoints();
    let deadline = since + bound;
    // (node, stream) → (first seen behind, the latest look).
    let mut behind: BTreeMap<(String, String), (Instant, Lagging)> = BTreeMap::new();
    let mut first_look = true;
    loop {
        let now_lagging = observe(&endpoints).await;
        let now = Instant::now();
        behind.retain(|key, _| {
            now_lagging
                .iter()
                .any(|l| (&l.node, &l.stream) == (&key.0, &key.1))
        });
        for lagging in now_lagging {
            let key = (lagging.node.clone(), lagging.stream.clone());
            // Behind at the first look: behind since the revert, as far as anyone can tell.
            let seen = if first_look { since.min(now) } else { now };
            let first = behind.get(&key).map_or(seen, |(first, _)| *first);
            behind.insert(key, (first, lagging));
        }
        first_look = false;
        if behind.is_empty() || now >= deadline {
            break;
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(now))).await;
    }
    let mut stuck = Vec::new();
    for (_, (first, lagging)) in behind {
        let log_line = match cluster.node_log(&lagging.node).await {
            Some(log) => last_matching_line(&log, &lagging.group, &lagging.stream),
            None => None,
        };
        stuck.push(StuckReplica {
            behind_s: first.elapsed().as_secs_f64(),
            node: lagging.node,
            stream: lagging.stream,
            leader: lagging.leader,
            lag: lagging.lag,
            log_line,
        });
    }
    stuck
}

/// The last log line naming the RAFT group (the server logs catch-up trouble by group), else the
/// last naming the stream.
pub fn last_matching_line(log: &str, group: &str, stream: &str) -> Option<String> {
    let last_with = |needle: &str| {
        (!needle.is_empty())
            .then(|| log.lines().rev().find(|line| line.contains(needle)))
            .flatten()
            .map(|line| line.trim().to_string())
    };
    last_with(group).or_else(|| {
        last_with(&format!("'{stream}'")).or_else(|| last_with(&format!("> {stream}'")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/jsz?accounts=true&streams=true` of the three nodes and nats3's `/healthz`, captured 10 s
    /// into a real stuck FOCUS replica (trial 12 of `scripts/trial-heal`, local backend): nats1
    /// leads FOCUS and counts nats3 46 behind (50 by the next look; nats3 at seq 4502 of 4782,
    /// no client writing); the other streams are current everywhere.
    fn captured(node: u8) -> Jsz {
        let raw = match node {
            1 => include_str!("testdata/stuck-jsz-nats1.json"),
            2 => include_str!("testdata/stuck-jsz-nats2.json"),
            _ => include_str!("testdata/stuck-jsz-nats3.json"),
        };
        serde_json::from_str(raw).expect("captured /jsz parses")
    }

    #[test]
    fn a_real_stuck_replica_is_named_by_its_leader_only() {
        let found = lagging_in_leader_view("nats1", &captured(1));
        assert_eq!(
            found,
            vec![Lagging {
                node: "nats3".into(),
                stream: "FOCUS".into(),
                group: "S-R3F-0EmBo92K".into(),
                leader: "nats1".into(),
                lag: 46,
            }]
        );
        // Followers do not track their peers; nothing they lead is behind.
        assert!(lagging_in_leader_view("nats2", &captured(2)).is_empty());
        assert!(lagging_in_leader_view("nats3", &captured(3)).is_empty());
        let health: serde_json::Value =
            serde_json::from_str(include_str!("testdata/stuck-healthz-nats3.json")).expect("json");
        let reason = health["error"].as_str().expect("an error");
        assert_eq!(stream_not_current(reason).as_deref(), Some("FOCUS"));
    }

    #[test]
    fn healthz_reason_names_the_stream() {
        assert_eq!(
            stream_not_current("JetStream stream '$G > FOCUS' is not current").as_deref(),
            Some("FOCUS")
        );
        assert_eq!(
            stream_not_current("JetStream stream 'FOCUS' is not current").as_deref(),
            Some("FOCUS")
        );
        assert_eq!(
            stream_not_current("JetStream is not current with the meta leader"),
            None
        );
        assert_eq!(
            stream_not_current("JetStream stream '$G > FOCUS' is recovering"),
            None
        );
    }

    #[test]
    fn last_matching_line_prefers_the_raft_group() {
        let log = "[1] [WRN] RAFT [abc - S-R3F-xyz] Expected first catchup entry to be a snapshot and peerstate, will retry\n\
                   [1] [INF] JetStream stream '$G > FOCUS' something\n\
                   [1] [INF] unrelated\n";
        assert!(last_matching_line(log, "S-R3F-xyz", "FOCUS")
            .is_some_and(|l| l.contains("Expected first catchup entry")));
        assert!(last_matching_line(log, "", "FOCUS").is_some_and(|l| l.contains("something")));
        assert_eq!(last_matching_line(log, "S-R3F-nope", "LEARNING"), None);
    }
}
