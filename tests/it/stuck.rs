//! The `stuck-replica` finding (`cluster::stuck`) on a real cluster: a follower kept behind its
//! stream's leader in a controlled way (paused with SIGSTOP while the leader takes writes) is named
//! with its stream, leader and lag; an idle healthy cluster names nothing; and a restart of the
//! node (`ControlOp::Restart`, what `heal --restart-stuck` applies) leaves it current and the
//! cluster whole. The server's own stuck catch-up (docs/stuck-replica.md) cannot be made to happen
//! on demand, so `heal --restart-stuck` end to end is measured by `scripts/trial-heal`, not here.

use std::time::{Duration, Instant};

use aivo_load::chaos::effect::Effect;
use aivo_load::cluster::{monitor, stuck, Cluster, ControlOp};

use crate::support::{publish_acked, r3_stream_taking_writes, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_kept_behind_is_named_and_a_restart_makes_it_current() {
    let test_cluster = TestCluster::start().await;
    let cluster = Cluster::Local(test_cluster.shared());
    let endpoints = test_cluster.endpoints().clone();
    r3_stream_taking_writes(&endpoints, "STUCK", "stuck").await;

    // Healthy and idle: nothing behind (an idle follower "not current" with lag 0 is no finding).
    let none = stuck::watch(&cluster, Instant::now(), Duration::from_secs(3)).await;
    assert!(
        none.is_empty(),
        "a healthy cluster has no stuck replica: {none:?}"
    );

    let leader = monitor::stream_leader(&endpoints, "STUCK")
        .await
        .expect("STUCK has a leader");
    let follower = endpoints
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .find(|n| *n != leader)
        .expect("a follower");
    let leader_url = endpoints
        .nodes
        .iter()
        .find(|n| n.name == leader)
        .map(|n| n.client_url.clone())
        .expect("leader's client url");
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(leader_url.as_str())
        .await
        .expect("connect to the leader");
    let js = async_nats::jetstream::new(client);

    cluster
        .apply(&ControlOp::Pause {
            node: follower.clone(),
        })
        .await
        .expect("pause the follower");
    for i in 0..40 {
        publish_acked(&js, &format!("stuck.n{i}"), "x", Duration::from_secs(20))
            .await
            .expect("the leader and the other follower take writes");
    }
    let found = stuck::watch(&cluster, Instant::now(), Duration::from_secs(3)).await;
    let replica = found
        .iter()
        .find(|r| r.node == follower && r.stream == "STUCK")
        .unwrap_or_else(|| panic!("{follower}'s STUCK replica is named behind: {found:?}"));
    assert_eq!(replica.leader, leader, "{replica:?}");
    assert!(replica.lag > 0, "a lag is given: {replica:?}");
    assert!(
        replica.behind_s >= 2.5,
        "behind for the whole bound: {replica:?}"
    );
    assert!(
        replica
            .describe()
            .contains(&format!("{follower} replica of stream STUCK")),
        "{}",
        replica.describe()
    );
    assert!(
        found.iter().all(|r| r.node == follower),
        "only the paused follower is behind: {found:?}"
    );

    // The remedy: restart the node (a paused one is thawed first), then whole and caught up.
    let restarted = Instant::now();
    cluster
        .apply(&ControlOp::Restart {
            node: follower.clone(),
        })
        .await
        .expect("restart the follower");
    let whole = Effect::Whole
        .wait(&endpoints, Duration::from_secs(60))
        .await;
    assert!(whole.confirmed, "whole after the restart: {}", whole.detail);
    let after = stuck::watch(&cluster, restarted, Duration::from_secs(30)).await;
    assert!(after.is_empty(), "current after the restart: {after:?}");
    drop(cluster);
    test_cluster.shutdown().await;
}
