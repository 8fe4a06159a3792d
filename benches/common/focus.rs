//! The R3 FOCUS stream the publisher and proxy benches publish into.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// Deletes and recreates the R3 FOCUS stream (the seed's 2-minute dedup window) and waits until
/// its replicas are current.
pub async fn fresh_stream(js: &jetstream::Context) -> anyhow::Result<()> {
    let _ = js.delete_stream("FOCUS").await;
    js.create_stream(stream::Config {
        name: "FOCUS".into(),
        subjects: vec!["focus.>".into()],
        num_replicas: 3,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await?;
    for _ in 0..100 {
        let info = js.get_stream("FOCUS").await?.info().await?.clone();
        if let Some(cluster) = info.cluster {
            if cluster.leader.is_some() && cluster.replicas.iter().all(|p| p.current) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("FOCUS replicas not current after 10 s")
}
