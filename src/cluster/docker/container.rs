//! A container aivo-load runs beside a compose project's nodes, on one of its networks, through the
//! Docker API: the security check's rogue server (on the cluster network) and the segmented
//! workers of `run --workers N` (on the client network).
//!
//! Each carries the compose project's label, so `docker-compose down --remove-orphans` (every
//! teardown of the project, `Drop` included) removes one that its owner could not; its owner
//! removes it first ([`ProjectContainer::remove`], or `Drop`, which calls `docker rm -f` since
//! no runtime may be at hand there).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use super::{call, DockerError, CALL_TIMEOUT};

/// The label compose finds a project's containers by (and removes orphans by).
const PROJECT_LABEL: &str = "com.docker.compose.project";

/// What to run.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// The container's name (`{project}-rogue`, `{project}-worker-2`).
    pub name: String,
    pub image: String,
    /// Arguments to the image's entrypoint.
    pub args: Vec<String>,
    /// `NAME=value` each.
    pub env: Vec<String>,
    /// `host:container[:ro]` each.
    pub binds: Vec<String>,
    /// The network it joins (the project's `-cluster` or `-client`).
    pub network: String,
    /// `uid:gid`, so that what it writes into a bind mount belongs to the harness's user.
    pub user: Option<String>,
    /// What it is, as the `aivo-load.role` label says (`rogue`, `worker`).
    pub role: &'static str,
}

/// A container of the project; removed by [`ProjectContainer::remove`] or on drop.
#[derive(Debug)]
pub struct ProjectContainer {
    docker: Docker,
    name: String,
    removed: bool,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEnd {
    Running,
    /// Exited with this code (137: SIGKILL).
    Exited(i64),
    /// Not there any more (removed by someone else).
    Gone(String),
}

impl ProjectContainer {
    /// Creates and starts `plan`'s container in `project` (any container of that name left from
    /// an earlier attempt is removed first).
    pub async fn start(
        docker: &Docker,
        project: &str,
        plan: ContainerPlan,
    ) -> Result<Self, DockerError> {
        let _ = docker
            .remove_container(
                &plan.name,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
        let labels = HashMap::from([
            (PROJECT_LABEL.to_string(), project.to_string()),
            ("aivo-load.role".to_string(), plan.role.to_string()),
        ]);
        let body = ContainerCreateBody {
            image: Some(plan.image.clone()),
            cmd: Some(plan.args.clone()),
            env: Some(plan.env.clone()),
            user: plan.user.clone(),
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(plan.binds.clone()),
                network_mode: Some(plan.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&plan.name)
            .build();
        call(
            format!("create container {}", plan.name),
            CALL_TIMEOUT,
            docker.create_container(Some(options), body),
        )
        .await?;
        let container = Self {
            docker: docker.clone(),
            name: plan.name,
            removed: false,
        };
        call(
            format!("start container {}", container.name),
            CALL_TIMEOUT,
            docker.start_container(&container.name, None),
        )
        .await?;
        Ok(container)
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it still runs, or how it ended.
    pub async fn end(&self) -> ContainerEnd {
        let inspect = call(
            format!("inspect container {}", self.name),
            CALL_TIMEOUT,
            self.docker.inspect_container(&self.name, None),
        )
        .await;
        match inspect {
            Ok(inspect) => {
                let state = inspect.state.unwrap_or_default();
                if state.running.unwrap_or(false) {
                    ContainerEnd::Running
                } else {
                    ContainerEnd::Exited(state.exit_code.unwrap_or(-1))
                }
            }
            Err(err) => ContainerEnd::Gone(err.to_string()),
        }
    }

    /// Sends `signal` (`SIGTERM`, `SIGKILL`) to the container's process; a container that is no
    /// longer running is not an error.
    pub async fn signal(&self, signal: &str) {
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        let _ = call(
            format!("kill {} {}", signal, self.name),
            CALL_TIMEOUT,
            self.docker.kill_container(&self.name, Some(options)),
        )
        .await;
    }

    /// The last `lines` lines it wrote to stdout and stderr.
    pub async fn log_tail(&self, lines: usize) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(&self.name, Some(options));
        let mut text = String::new();
        let read = async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => text.push_str(&chunk.to_string()),
                    Err(err) => {
                        text.push_str(&format!("(cannot read the log: {err})"));
                        break;
                    }
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .is_err()
        {
            return format!("(the log of {} did not come within 10s)", self.name);
        }
        text
    }

    /// Removes the container (killing it if it still runs).
    pub async fn remove(mut self) -> Result<(), DockerError> {
        self.removed = true;
        call(
            format!("remove container {}", self.name),
            CALL_TIMEOUT,
            self.docker.remove_container(
                &self.name,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            ),
        )
        .await
    }
}

impl Drop for ProjectContainer {
    fn drop(&mut self) {
        if !self.removed {
            // No runtime may be at hand (a panic, an error path): the CLI, a second at most. If it
            // is missing, the project's `down --remove-orphans` removes the container by its label.
            let _ = Command::new("docker")
                .args(["rm", "-f", &self.name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
