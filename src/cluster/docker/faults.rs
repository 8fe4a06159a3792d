//! The fault vocabulary on containers: each [`ControlOp`](crate::cluster::op::ControlOp) of
//! [`DockerCluster::apply`] carried out through the Docker API (kill, stop, start, pause, network
//! disconnect/connect, ballast upload) or, for route links, through `netem.rs`. Every operation first
//! reads the container's state, so applying or reverting twice is harmless (as `heal` may).

use std::time::{Duration, Instant};

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest};
use bollard::query_parameters::{
    KillContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};

use super::ballast::{ballast_tar, free_bytes};
use super::netem::{self, LinkRule};
use super::{
    call, DockerCluster, DockerError, BALLAST, CALL_TIMEOUT, CONTAINER_STORE, FILL_TIMEOUT,
    STOP_GRACE_S,
};
use crate::cluster::op::ControlOp;

impl DockerCluster {
    /// Applies one change; see the table in the module header.
    pub async fn apply(&self, op: &ControlOp) -> Result<(), DockerError> {
        let _turn = self.serial.lock().await;
        tracing::info!(op = %op.describe(), project = %self.spec.project, "docker control");
        match op {
            ControlOp::Kill { node } => self.kill(node).await,
            ControlOp::Stop { node } => self.stop(node).await,
            ControlOp::Start { node } => self.start_node(node).await,
            ControlOp::Restart { node } => {
                self.stop(node).await?;
                self.start_node(node).await
            }
            ControlOp::Pause { node } => self.pause(node).await,
            ControlOp::Resume { node } => self.resume(node).await,
            ControlOp::CutNode { node } => self.disconnect(node).await,
            ControlOp::HealNode { node } => self.reconnect(node).await,
            ControlOp::CutLink { a, b } => {
                self.link(a, b, Some(LinkRule::Drop)).await?;
                self.link(b, a, Some(LinkRule::Drop)).await
            }
            ControlOp::HealLink { a, b } => {
                self.link(a, b, None).await?;
                self.link(b, a, None).await
            }
            ControlOp::Block { from, to } => self.link(from, to, Some(LinkRule::Drop)).await,
            ControlOp::Unblock { from, to } => self.link(from, to, None).await,
            ControlOp::Shape { a, b, shape } => {
                let rule = (!shape.is_clear()).then_some(LinkRule::Shape(*shape));
                self.link(a, b, rule).await?;
                self.link(b, a, rule).await
            }
            ControlOp::FillStorage { node, .. } => self.fill(node).await,
            ControlOp::DrainStorage { node } => self.drain(node).await,
            ControlOp::MakeWhole => self.make_whole().await,
            ControlOp::Status => Ok(()),
        }
    }

    pub(super) async fn kill(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        let state = self.state(node).await?;
        if !state.running {
            return Ok(());
        }
        if state.paused {
            self.resume_container(&n.container).await?;
        }
        call(
            format!("kill container {} (SIGKILL)", n.container),
            CALL_TIMEOUT,
            self.docker.kill_container(
                &n.container,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal("SIGKILL")
                        .build(),
                ),
            ),
        )
        .await?;
        // The kill is asynchronous: wait (bounded) until Docker reports the container stopped.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.state(node).await?.running && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub(super) async fn stop(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        let state = self.state(node).await?;
        if !state.running {
            return Ok(());
        }
        if state.paused {
            self.resume_container(&n.container).await?;
        }
        call(
            format!("stop container {}", n.container),
            CALL_TIMEOUT,
            self.docker.stop_container(
                &n.container,
                Some(
                    StopContainerOptionsBuilder::default()
                        .t(STOP_GRACE_S)
                        .build(),
                ),
            ),
        )
        .await
    }

    pub(super) async fn start_node(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        let state = self.state(node).await?;
        if state.paused {
            self.resume_container(&n.container).await?;
        }
        if state.running {
            return Ok(());
        }
        call(
            format!("start container {}", n.container),
            CALL_TIMEOUT,
            self.docker.start_container(&n.container, None),
        )
        .await
    }

    pub(super) async fn pause(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        let state = self.state(node).await?;
        if !state.running {
            return Err(DockerError::Unsupported(format!(
                "cannot pause {node}: its container is not running"
            )));
        }
        if state.paused {
            return Ok(());
        }
        call(
            format!("pause container {}", n.container),
            CALL_TIMEOUT,
            self.docker.pause_container(&n.container),
        )
        .await
    }

    pub(super) async fn resume(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        if self.state(node).await?.paused {
            self.resume_container(&n.container).await?;
        }
        Ok(())
    }

    pub(super) async fn resume_container(&self, container: &str) -> Result<(), DockerError> {
        call(
            format!("unpause container {container}"),
            CALL_TIMEOUT,
            self.docker.unpause_container(container),
        )
        .await
    }

    /// Disconnects the node from the cluster network: its routes go, its client port stays.
    pub(super) async fn disconnect(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        if self.state(node).await?.cluster_ip.is_none() {
            return Ok(());
        }
        let network = self.spec.cluster_network();
        call(
            format!("disconnect {} from network {network}", n.container),
            CALL_TIMEOUT,
            self.docker.disconnect_network(
                &network,
                NetworkDisconnectRequest {
                    container: n.container.clone(),
                    force: Some(true),
                },
            ),
        )
        .await
    }

    /// Connects the node to the cluster network again, under its route alias.
    pub(super) async fn reconnect(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        if self.state(node).await?.cluster_ip.is_some() {
            return Ok(());
        }
        let network = self.spec.cluster_network();
        call(
            format!("connect {} to network {network}", n.container),
            CALL_TIMEOUT,
            self.docker.connect_network(
                &network,
                NetworkConnectRequest {
                    container: n.container.clone(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(vec![format!("{node}-route"), node.to_string()]),
                        ..Default::default()
                    }),
                },
            ),
        )
        .await
    }

    /// Sets (or with `None` clears) what happens to packets `from` sends `to` over the cluster network.
    pub(super) async fn link(
        &self,
        from: &str,
        to: &str,
        rule: Option<LinkRule>,
    ) -> Result<(), DockerError> {
        let (_, _) = self.node(from)?;
        let (slot, _) = self.node(to)?;
        let source = self.state(from).await?;
        let Some(from_ip) = source.cluster_ip.filter(|_| source.running) else {
            return match rule {
                // Nothing runs to shape; nothing to clear either.
                None => Ok(()),
                Some(_) => Err(DockerError::Unsupported(format!(
                    "cannot change the link {from}->{to}: {from} is not running on the cluster network"
                ))),
            };
        };
        let dev = netem::interface_of(source.pid, &from_ip).await?;
        match rule {
            None => {
                let to_ip = self.state(to).await?.cluster_ip;
                netem::clear(source.pid, &dev, slot, to_ip.as_deref()).await
            }
            Some(rule) => {
                let target = self.state(to).await?;
                let to_ip = target.cluster_ip.ok_or_else(|| {
                    DockerError::Unsupported(format!(
                        "cannot change the link {from}->{to}: {to} has no cluster-network address"
                    ))
                })?;
                netem::set(source.pid, &dev, slot, &to_ip, rule).await
            }
        }
    }

    /// Fills the node's tmpfs store with a ballast file uploaded through the Docker API.
    pub(super) async fn fill(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        if !n.store_tmpfs {
            return Err(DockerError::Unsupported(format!(
                "fill-storage on the docker backend needs {node}'s store on a size-limited tmpfs, \
                 which aivo-load mounts only when it runs as root; {} is a plain directory",
                n.store.display()
            )));
        }
        if !self.state(node).await?.running {
            return Err(DockerError::Unsupported(format!(
                "cannot fill {node}'s storage: its container is not running"
            )));
        }
        let free = free_bytes(&n.store).map_err(DockerError::io(format!(
            "cannot statvfs {}",
            n.store.display()
        )))?;
        // Whole pages: tmpfs hands out space by the page, so this fills it to the last byte.
        let size = free / 4096 * 4096;
        let tar = ballast_tar(size)?;
        let upload = self.docker.upload_to_container(
            &n.container,
            Some(
                UploadToContainerOptionsBuilder::default()
                    .path(CONTAINER_STORE)
                    .build(),
            ),
            bollard::body_stream(futures::stream::iter(tar)),
        );
        match call(
            format!(
                "upload {size} B of ballast to {}:{CONTAINER_STORE}/{BALLAST}",
                n.container
            ),
            FILL_TIMEOUT,
            upload,
        )
        .await
        {
            Ok(()) => Ok(()),
            // Space ran out a few pages early (metadata): the store is full, which was the point.
            Err(DockerError::Api { source, .. })
                if source.to_string().contains("no space left") =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Removes the ballast and restarts the node (JetStream, once disabled by a full store, stays
    /// disabled until the server restarts).
    pub(super) async fn drain(&self, node: &str) -> Result<(), DockerError> {
        let (_, n) = self.node(node)?;
        let ballast = n.store.join(BALLAST);
        match std::fs::remove_file(&ballast) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(DockerError::io(format!(
                    "cannot remove {}",
                    ballast.display()
                ))(err))
            }
        }
        self.stop(node).await?;
        self.start_node(node).await
    }

    /// Every node resumed, started, on the cluster network, unshaped and without ballast.
    pub(super) async fn make_whole(&self) -> Result<(), DockerError> {
        let mut problems = Vec::new();
        for n in &self.spec.nodes {
            let node = n.name.as_str();
            let steps = async {
                self.resume(node).await?;
                self.start_node(node).await?;
                self.reconnect(node).await?;
                let state = self.state(node).await?;
                if let Some(ip) = state.cluster_ip.as_deref() {
                    if state.running && state.pid > 0 {
                        let dev = netem::interface_of(state.pid, ip).await?;
                        netem::clear_all(state.pid, &dev).await?;
                    }
                }
                if n.store.join(BALLAST).exists() {
                    self.drain(node).await?;
                }
                Ok::<(), DockerError>(())
            };
            if let Err(err) = steps.await {
                problems.push(format!("{node}: {err}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DockerError::Unsupported(problems.join("; ")))
        }
    }
}
