//! `run SCENARIO --workers N`: one machine standing in for N. The run starts its cluster once, then
//! N worker processes of this binary, each `run --segment i/N` against that cluster as an external
//! one, all sharing the run id and one `--start-at` a few seconds ahead; waits for them, merges
//! their partial reports (`merge.rs`) into the run dir and tears the cluster down.
//!
//! A worker that dies is not retried and does not stop the others: the merge names its segment
//! and fails the verdict with "worker lost". Ctrl-C / SIGTERM is passed on to the workers (each
//! stops its publishers and still writes its partial report). The workers die with the run
//! (`PR_SET_PDEATHSIG`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::anyhow;
use time::OffsetDateTime;

use super::merge::{merge_command, MergePlan};
use super::RunContext;
use crate::exit::{AppError, ExitStatus};

/// How far ahead of the spawn the workers' common start is: long enough for each to connect,
/// declare the streams and probe its clock on a loaded 2-core machine (three debug-build workers
/// declaring at once took 7 s here: 4 s left them all starting late, their first events overdue).
const START_LEAD: Duration = Duration::from_secs(10);

impl RunContext {
    /// The phases of a `--workers N` run (see the module header).
    pub(super) async fn coordinate(&mut self, count: u32) -> Result<ExitStatus, AppError> {
        let scenario = self.scenario.clone();
        eprintln!(
            "aivo-load: {} — {} ({count} workers)",
            scenario.name, scenario.description
        );
        let Some(cluster) = self.start_cluster().await? else {
            return Ok(ExitStatus::Interrupted);
        };
        let urls = cluster.client_urls().join(",");
        let auth = cluster
            .client_auth(&crate::security::Role::Admin)
            .map_err(|e| AppError::environment(anyhow!("{e}")))?;
        if !auth.is_anonymous() {
            return Err(AppError::usage(anyhow!(
                "--workers runs with --profile open only (its workers would need the profile's \
                 credentials on their command lines)"
            )));
        }
        let start_at = OffsetDateTime::now_utc() + START_LEAD;
        let start_text = start_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| AppError::environment(anyhow!("{e}")))?;
        let reports_dir = self
            .run_dir
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut children = Vec::new();
        for index in 1..=count {
            let mut command = Command::new(
                std::env::current_exe()
                    .map_err(|e| AppError::environment(anyhow!("cannot find this binary: {e}")))?,
            );
            command
                .args(["run", &self.source.name_or_path])
                .args(["--backend", "external", "--server", &urls])
                .args(["--segment", &format!("{index}/{count}")])
                .args(["--run-id", &self.run_id, "--start-at", &start_text])
                .arg("--reports-dir")
                .arg(&reports_dir)
                .args(["--rate-scale", &self.source.rate_scale.to_string()])
                .args(["--checkpoint", "off"])
                // Each worker's summary is in its own dir; its progress stays on stderr.
                .stdout(std::process::Stdio::null())
                .env_remove("NATS_URL");
            if let Some(duration) = self.source.duration_s {
                command.args(["--duration", &format!("{duration}s")]);
            }
            if let Some(seed) = self.source.seed {
                command.args(["--seed", &seed.to_string()]);
            }
            let child = crate::child::spawn_tied(command, libc::SIGTERM)
                .await
                .map_err(|e| AppError::environment(anyhow!("cannot start worker {index}: {e}")))?;
            eprintln!(
                "aivo-load: worker {index}/{count} started (pid {})",
                child.id()
            );
            children.push(child);
        }
        let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
        let waited = tokio::task::spawn_blocking(move || {
            children
                .into_iter()
                .map(|mut child| child.wait().ok().and_then(|s| s.code()))
                .collect::<Vec<_>>()
        });
        tokio::pin!(waited);
        let codes = tokio::select! {
            codes = &mut waited => codes,
            _ = self.cancel.cancelled() => {
                for pid in &pids {
                    crate::child::signal(*pid, libc::SIGTERM);
                }
                waited.await
            }
        }
        .unwrap_or_default();
        for (index, code) in codes.iter().enumerate() {
            if *code != Some(0) {
                eprintln!(
                    "aivo-load: worker {}/{count} ended with {}",
                    index + 1,
                    code.map_or("a signal".to_string(), |c| format!("exit code {c}"))
                );
            }
        }
        let merged = merge_command(MergePlan {
            inputs: vec![self.run_dir.clone()],
            out: Some(self.run_dir.clone()),
            server: Some(urls),
            auth,
            clock_tolerance: Duration::from_millis(50),
        })
        .await?;
        Ok(if self.was_interrupted() {
            ExitStatus::Interrupted
        } else {
            merged
        })
    }
}
