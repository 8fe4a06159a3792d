//! `aivo-load report recover RUN_DIR`: a dead run's last checkpoint made into a full report.
//!
//! 1. Reads `checkpoint.json` ([`CheckpointState`]) and rebuilds the run's scenario from how it was
//!    chosen (name or path, `--duration`, `--rate-scale`, `--seed`).
//! 2. Reverts the faults the run left active, from its journal, as `heal` does.
//! 3. If the run's cluster can still be reached (`cluster/owner.json`: a `cluster up` supervisor, a
//!    docker project, an external cluster; a run's own local nodes died with it), runs the ledger
//!    check on every stream the run wrote, for everything each publisher had attempted by the
//!    checkpoint (events sent after it are in the stream but in no ledger, and are left out), and
//!    the retention check on the streams as they stand. A docker cluster the run owned is removed
//!    afterwards, as the run would have.
//! 4. Writes the report files with `run.state = "recovered"` and the checkpoint's timeline,
//!    counters and histograms; exit 0 if every check passed, 1 if not (a cluster that cannot be
//!    reached fails the verdict: nothing was checked).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::checkpoint::CheckpointState;
use super::setup;
use super::verdict::{build_report, ReportInputs};
use crate::chaos::engine::{FaultEvent, Phase};
use crate::chaos::{heal, journal};
use crate::checks::no_loss::LedgerCheck;
use crate::checks::retention::RetentionCheck;
use crate::checks::streams::{self, StreamWindow};
use crate::cluster::{BackendKind, Cluster, ClusterRef};
use crate::exit::{AppError, ExitStatus};
use crate::load::ledger::PublisherLedger;
use crate::report::{self, RunState};
use crate::scenario::Scenario;

/// See the module header.
pub async fn recover_command(run_dir: &Path) -> Result<ExitStatus, AppError> {
    let usage = |e: String| AppError::usage(anyhow!(e));
    let state = CheckpointState::read(run_dir).map_err(usage)?;
    if state_of_report(run_dir) == Some(RunState::Finished) {
        return Err(usage(format!(
            "{} holds a finished run: its report is complete (nothing to recover)",
            run_dir.display()
        )));
    }
    let scenario = state.source.resolve().map_err(usage)?;
    let outcome = state.outcome().map_err(usage)?;
    eprintln!(
        "aivo-load: recovering {} from its checkpoint at second {} of the load{}",
        state.run_id,
        state.load_s,
        if state.load_finished {
            " (the load had ended)"
        } else {
            ""
        }
    );

    let owner = ClusterRef::read(&run_dir.join("cluster"));
    let live = match &owner {
        Some(owner) => owner.reach().await,
        None => Err(format!(
            "{} names no cluster",
            run_dir
                .join("cluster")
                .join(crate::cluster::OWNER_FILE)
                .display()
        )),
    };
    let journal_path = run_dir.join("faults.jsonl");
    if journal_path.exists() {
        revert_faults(&journal_path, live.as_ref().ok()).await;
    }

    let windows: Vec<StreamWindow> = state
        .windows
        .iter()
        .filter_map(|w| w.window(&scenario))
        .collect();
    let mut unchecked = None;
    let (ledger_checks, retention_checks) = match &live {
        Ok(cluster) => {
            let checked = check_on(cluster, &scenario, &state, &windows, &outcome.ledgers).await;
            match checked {
                Ok(checks) => checks,
                Err(why) => {
                    unchecked = Some(format!("the checks could not read the cluster: {why}"));
                    (Vec::new(), Vec::new())
                }
            }
        }
        Err(why) => {
            unchecked = Some(format!(
                "the ledger and retention checks did not run: the run's cluster cannot be reached \
                 ({why})"
            ));
            (Vec::new(), Vec::new())
        }
    };
    let start_wall = outcome.start_wall;
    let started_at = OffsetDateTime::parse(&state.started_at, &Rfc3339).unwrap_or(start_wall);
    let backend: BackendKind = state.backend.parse().unwrap_or(BackendKind::Local);
    let mut report = build_report(ReportInputs {
        scenario: &scenario,
        backend,
        rate_scale: state.source.rate_scale,
        run_id: &state.run_id,
        started_at,
        servers: state.servers.clone(),
        nats_server_version: state.nats_server_version.clone(),
        outcome,
        stream_checks: Vec::new(),
        ledger_checks,
        retention_checks,
        replica_checks: Vec::new(),
        replica_reads: Vec::new(),
        security: None,
        sync_interval_applied: false,
        fault_events: fault_events(&journal_path, start_wall),
        indexer: None,
        dlq: None,
        indexer_lag: Vec::new(),
        end_to_end: Vec::new(),
        interrupted: false,
        state: RunState::Recovered,
        checkpoint_s: Some(state.load_s),
    });
    if let Some(why) = unchecked {
        report.verdict.passed = false;
        report.verdict.failures.push(why);
    }
    report.write_to(run_dir).map_err(|e| {
        AppError::environment(anyhow!("cannot write into {}: {e}", run_dir.display()))
    })?;
    print!(
        "{}",
        report::terminal::render(&report, &run_dir.display().to_string())
    );
    if let (Some(owner), Ok(cluster)) = (owner.as_ref(), live) {
        if owner.owned_by_run() {
            let name = cluster.name();
            match cluster.remove().await {
                Ok(()) => eprintln!("aivo-load: removed the run's {name} (left by the dead run)"),
                Err(e) => eprintln!("aivo-load: cannot remove the run's {name}: {e}"),
            }
        }
    }
    Ok(if report.verdict.passed {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// `run.state` of the report.json in `run_dir`, if there is one.
fn state_of_report(run_dir: &Path) -> Option<RunState> {
    let text = std::fs::read_to_string(run_dir.join("report.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    // A report of a version before checkpoints has no state: it was written at the run's end.
    match value.pointer("/run/state") {
        Some(state) => serde_json::from_value(state.clone()).ok(),
        None => Some(RunState::Finished),
    }
}

/// What `heal` does for a killed run, with its lines on stderr.
async fn revert_faults(journal_path: &Path, live: Option<&Cluster>) {
    match heal::heal(journal_path, live, None).await {
        Ok(healed) => {
            if healed.active > 0 {
                eprintln!(
                    "aivo-load: reverted {} fault(s) the run left",
                    healed.active
                );
            }
            for line in healed.lines.iter().chain(&healed.failures) {
                eprintln!("aivo-load:   {line}");
            }
            if let Some(whole) = healed.whole.filter(|w| !w.confirmed) {
                eprintln!("aivo-load: cluster NOT whole: {}", whole.detail);
            }
        }
        Err(e) => eprintln!("aivo-load: cannot revert the run's faults: {e}; run `aivo-load heal`"),
    }
}

/// The ledger check on everything attempted by the checkpoint, and the retention check now.
async fn check_on(
    cluster: &Cluster,
    scenario: &Scenario,
    state: &CheckpointState,
    windows: &[StreamWindow],
    ledgers: &[PublisherLedger],
) -> Result<(Vec<LedgerCheck>, Vec<RetentionCheck>), String> {
    let auth = cluster
        .client_auth(&crate::security::Role::Admin)
        .map_err(|e| e.to_string())?;
    let js = crate::topology::connect_as(&cluster.client_urls().join(","), &auth)
        .await
        .map_err(|e| e.to_string())?;
    let attempted: BTreeMap<u32, u64> =
        ledgers.iter().map(|l| (l.publisher, l.attempted)).collect();
    let checked =
        streams::check_streams(&js, windows, &state.run_id, ledgers, true, Some(&attempted))
            .await
            .map_err(|e| format!("{e:#}"))?;
    let retention_checks = setup::retention_from_one_sample(&js, scenario, windows).await;
    Ok((checked.ledgers, retention_checks))
}

/// The faults of the journal as report events, timed from the run's second 0.
pub(super) fn fault_events(journal_path: &Path, start_wall: OffsetDateTime) -> Vec<FaultEvent> {
    let Ok(entries) = journal::read(journal_path) else {
        return Vec::new();
    };
    let since_start = |at: &str| {
        OffsetDateTime::parse(at, &Rfc3339)
            .map(|t| (t - start_wall).as_seconds_f64().max(0.0))
            .unwrap_or(0.0)
    };
    let mut events: Vec<FaultEvent> = Vec::new();
    for entry in entries {
        match entry {
            journal::JournalEntry::Begin {
                id,
                at,
                fault,
                target,
                node,
                ..
            } => events.push(FaultEvent {
                id,
                phase: Phase::Apply,
                fault,
                target,
                node,
                requested_s: since_start(&at),
                confirmed_s: None,
                confirmed: false,
                detail: "from the fault journal".into(),
                note: None,
                error: None,
            }),
            journal::JournalEntry::Applied {
                id,
                at,
                confirmed,
                detail,
            } => {
                if let Some(applied) = events
                    .iter_mut()
                    .find(|e| e.id == id && e.phase == Phase::Apply)
                {
                    applied.confirmed = confirmed;
                    applied.confirmed_s = confirmed.then(|| since_start(&at));
                    applied.detail = detail;
                }
            }
            journal::JournalEntry::Reverted {
                id,
                at,
                by,
                confirmed,
                detail,
            } => {
                let Some(applied) = events.iter().find(|e| e.id == id).cloned() else {
                    continue;
                };
                events.push(FaultEvent {
                    phase: Phase::Revert,
                    requested_s: since_start(&at),
                    confirmed_s: confirmed.then(|| since_start(&at)),
                    confirmed,
                    detail: format!("{detail} (by {by})"),
                    ..applied
                });
            }
            journal::JournalEntry::Changed { id, changes, .. } => {
                if let Some(applied) = events
                    .iter_mut()
                    .find(|e| e.id == id && e.phase == Phase::Apply)
                {
                    applied.note = Some(crate::chaos::corrupt_store::summary(&changes));
                }
            }
            journal::JournalEntry::PowerLost { id, node, loss, .. } => {
                if let Some(applied) = events
                    .iter_mut()
                    .find(|e| e.id == id && e.phase == Phase::Apply)
                {
                    let said = format!("{node}: {}", loss.describe());
                    applied.note = Some(match applied.note.take() {
                        Some(note) if note.starts_with("power loss: ") => format!("{note}; {said}"),
                        _ => format!("power loss: {said}"),
                    });
                }
            }
        }
    }
    events
}
