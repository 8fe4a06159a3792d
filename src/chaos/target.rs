//! Which node a fault hits: a name (`nats2`), `random` (from the run's seeded generator),
//! `leader:STREAM` (the stream's current leader from `/jsz`) or `meta-leader`. Leaders are resolved
//! at the moment the fault is applied, so `leader:FOCUS` hits whoever leads FOCUS then.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ChaosError;
use crate::cluster::monitor;
use crate::cluster::ClusterEndpoints;

/// A fault's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Node(String),
    Random,
    /// A minority of the nodes, chosen at random: one node of a 3- or 4-node cluster (faults act
    /// on one node, so a larger cluster's minority is refused).
    Minority,
    StreamLeader(String),
    /// A replica of the stream that is not its leader, chosen at random.
    StreamFollower(String),
    MetaLeader,
    /// The run's indexer process (for `kill-indexer` only).
    Indexer,
    /// Every node at once (for `power-loss` only: a coordinated power failure).
    All,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "random" {
            Ok(Self::Random)
        } else if text == "minority" {
            Ok(Self::Minority)
        } else if text == "meta-leader" {
            Ok(Self::MetaLeader)
        } else if text == "indexer" {
            Ok(Self::Indexer)
        } else if text == "all" {
            Ok(Self::All)
        } else if let Some(stream) = text.strip_prefix("leader:") {
            if stream.is_empty() {
                Err("leader: needs a stream name, e.g. leader:FOCUS".into())
            } else {
                Ok(Self::StreamLeader(stream.to_string()))
            }
        } else if let Some(stream) = text.strip_prefix("follower:") {
            if stream.is_empty() {
                Err("follower: needs a stream name, e.g. follower:FOCUS".into())
            } else {
                Ok(Self::StreamFollower(stream.to_string()))
            }
        } else if text.starts_with("nats")
            && text.len() > 4
            && text[4..].chars().all(|c| c.is_ascii_digit())
        {
            Ok(Self::Node(text.to_string()))
        } else {
            Err(format!(
                "unknown target {text:?}: expected nats1..nats3, random, minority, all, leader:STREAM, follower:STREAM, meta-leader or indexer"
            ))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(node) => f.write_str(node),
            Self::Random => f.write_str("random"),
            Self::Minority => f.write_str("minority"),
            Self::StreamLeader(stream) => write!(f, "leader:{stream}"),
            Self::StreamFollower(stream) => write!(f, "follower:{stream}"),
            Self::MetaLeader => f.write_str("meta-leader"),
            Self::Indexer => f.write_str("indexer"),
            Self::All => f.write_str("all"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Target {
    /// The node this target names now.
    pub async fn resolve(
        &self,
        endpoints: &ClusterEndpoints,
        rng: &mut impl Rng,
    ) -> Result<String, ChaosError> {
        let failed = |reason: &str| ChaosError::Target {
            target: self.to_string(),
            reason: reason.to_string(),
        };
        match self {
            Self::Node(node) => endpoints
                .nodes
                .iter()
                .find(|n| &n.name == node)
                .map(|n| n.name.clone())
                .ok_or_else(|| failed("no such node in this cluster")),
            Self::Minority if endpoints.nodes.len() > 4 => Err(failed(&format!(
                "a minority of {} nodes is more than one node, and a fault acts on one: name \
                 the nodes one by one",
                endpoints.nodes.len()
            ))),
            Self::Random | Self::Minority => {
                if endpoints.nodes.is_empty() {
                    return Err(failed("the cluster has no nodes"));
                }
                let i = rng.random_range(0..endpoints.nodes.len());
                Ok(endpoints.nodes[i].name.clone())
            }
            Self::MetaLeader => monitor::meta_leader(endpoints)
                .await
                .ok_or_else(|| failed("no node reports a JetStream meta leader")),
            Self::StreamLeader(stream) => monitor::stream_leader(endpoints, stream)
                .await
                .ok_or_else(|| failed("no node reports a leader for this stream")),
            Self::StreamFollower(stream) => {
                let followers = monitor::stream_followers(endpoints, stream).await;
                if followers.is_empty() {
                    return Err(failed(
                        "no node reports a leader and followers for this stream",
                    ));
                }
                Ok(followers[rng.random_range(0..followers.len())].clone())
            }
            Self::Indexer => Err(failed("the indexer is a target of kill-indexer only")),
            Self::All => Ok(super::power_loss::ALL_NODES.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("nats2".parse(), Ok(Target::Node("nats2".into())));
        assert_eq!("random".parse(), Ok(Target::Random));
        assert_eq!("meta-leader".parse(), Ok(Target::MetaLeader));
        assert_eq!(
            "leader:FOCUS".parse(),
            Ok(Target::StreamLeader("FOCUS".into()))
        );
        assert!("leader:".parse::<Target>().is_err());
        assert_eq!("indexer".parse(), Ok(Target::Indexer));
        assert_eq!("all".parse(), Ok(Target::All));
        assert_eq!(Target::All.to_string(), "all");
        assert!("indexer2".parse::<Target>().is_err());
        assert_eq!(Target::StreamLeader("X".into()).to_string(), "leader:X");
        assert_eq!("minority".parse(), Ok(Target::Minority));
        assert_eq!(
            "follower:FOCUS".parse(),
            Ok(Target::StreamFollower("FOCUS".into()))
        );
        assert!("follower:".parse::<Target>().is_err());
        assert_eq!(Target::StreamFollower("X".into()).to_string(), "follower:X");
    }
}
