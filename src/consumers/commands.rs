//! `aivo-load indexer | analytics | dlq list | dlq replay`: run the plan, print, pick the exit code.
//!
//! The consumers run until SIGTERM or SIGINT, finish the batch in hand, hand back what they pulled
//! but did not process, and exit 0. An unreachable NATS or Postgres at startup is exit 3.

use std::fmt::Write as _;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::dlq::{self, DlqFilter};
use super::service::{run_service, ServiceConfig};
use super::stats::ConsumerStats;
use super::ConsumersError;
use crate::exit::{AppError, ExitStatus};

/// A validated `dlq` command.
#[derive(Debug, Clone)]
pub enum DlqPlan {
    List {
        server: String,
        auth: crate::security::ClientAuth,
        filter: DlqFilter,
        samples: usize,
    },
    Replay {
        server: String,
        auth: crate::security::ClientAuth,
        filter: DlqFilter,
        remove: bool,
        dry_run: bool,
    },
}

fn app_error(e: ConsumersError) -> AppError {
    if e.is_usage() {
        AppError::usage(e)
    } else {
        AppError::environment(e)
    }
}

/// `aivo-load indexer` / `aivo-load analytics`.
pub async fn service_command(config: ServiceConfig) -> Result<ExitStatus, AppError> {
    let cancel = CancellationToken::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AppError::environment(anyhow::anyhow!("cannot watch SIGTERM: {e}")))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| AppError::environment(anyhow::anyhow!("cannot watch SIGINT: {e}")))?;
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            cancel.cancel();
        });
    }
    let kind = config.kind.command();
    eprintln!(
        "{kind}: consuming {} ({}) from {} into Postgres",
        config.consumer,
        config.streams.join(", "),
        config.server
    );
    let stats = Arc::new(ConsumerStats::default());
    run_service(config, stats.clone(), cancel)
        .await
        .map_err(app_error)?;
    let snap = stats.snapshot();
    eprintln!(
        "{kind}: stopped; {} written, {} duplicates, {} poison to DLQ",
        snap.written, snap.duplicates, snap.poison
    );
    Ok(ExitStatus::Success)
}

/// `aivo-load dlq list` / `aivo-load dlq replay`.
pub async fn dlq_command(plan: DlqPlan) -> Result<ExitStatus, AppError> {
    match plan {
        DlqPlan::List {
            server,
            auth,
            filter,
            samples,
        } => {
            let js = crate::topology::connect_as(&server, &auth)
                .await
                .map_err(|e| app_error(e.into()))?;
            let groups = dlq::list(&js, &filter, samples).await.map_err(app_error)?;
            let mut out = String::new();
            if groups.is_empty() {
                let _ = writeln!(out, "DLQ on {server}: no dead letters match");
            }
            let total: u64 = groups.values().map(|g| g.count).sum();
            for ((reason, stream, consumer), group) in &groups {
                let _ = writeln!(out, "{:>8}  {reason:<15} {stream}/{consumer}", group.count);
                for e in &group.samples {
                    let payload = String::from_utf8_lossy(&e.payload);
                    let mut preview: String = payload.chars().take(100).collect();
                    if payload.chars().count() > 100 {
                        preview.push('…');
                    }
                    let _ = writeln!(
                        out,
                        "          DLQ#{} {}#{} {} (delivered {}): {}\n            {preview}",
                        e.dlq_seq,
                        e.stream,
                        e.stream_seq.map_or("?".into(), |s| s.to_string()),
                        e.subject,
                        e.deliveries.map_or("?".into(), |d| d.to_string()),
                        e.error
                    );
                }
            }
            if total > 0 {
                let _ = writeln!(out, "{total} dead letters in {} groups", groups.len());
            }
            print!("{out}");
            Ok(ExitStatus::Success)
        }
        DlqPlan::Replay {
            server,
            auth,
            filter,
            remove,
            dry_run,
        } => {
            let js = crate::topology::connect_as(&server, &auth)
                .await
                .map_err(|e| app_error(e.into()))?;
            if dry_run {
                let mut by_subject = std::collections::BTreeMap::<String, u64>::new();
                dlq::scan(&js, &filter, |e| {
                    *by_subject.entry(e.subject).or_default() += 1
                })
                .await
                .map_err(app_error)?;
                for (subject, n) in &by_subject {
                    println!("would replay {n:>8} to {subject}");
                }
                println!(
                    "would replay {} dead letters (dry run)",
                    by_subject.values().sum::<u64>()
                );
                return Ok(ExitStatus::Success);
            }
            let report = dlq::replay(&js, &filter, remove).await.map_err(app_error)?;
            for (subject, n) in &report.replayed {
                println!("replayed {n:>8} to {subject}");
            }
            for (seq, why) in &report.failed {
                println!("failed   DLQ#{seq}: {why}");
            }
            println!(
                "replayed {} dead letters{}{}",
                report.total(),
                if remove {
                    format!(", removed {} from DLQ", report.removed)
                } else {
                    String::new()
                },
                if report.failed.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", report.failed.len())
                }
            );
            Ok(if report.failed.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Failed
            })
        }
    }
}
