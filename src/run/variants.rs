//! A scenario run once per setting it compares (`[cluster] compare_sync_interval`, the
//! `durability-compare` scenario): each setting gets a whole run of its own — its own cluster,
//! load, faults, checks and report — one after the other, in `<reports>/<id>/sync-<setting>/`.
//! Then `comparison.md` beside them holds the decision table (what each setting lost against
//! its latency and saturation throughput) and `report compare`'s table of the first two, and the
//! terminal shows the same. The exit status is the worst of the runs': a setting that loses
//! acknowledged events fails the whole comparison, as its own run would.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{compact_utc, RunPlan};
use crate::cluster::SyncInterval;
use crate::exit::{AppError, ExitStatus};
use crate::report::compare;

/// A setting's name in directories and tables.
fn label(setting: Option<SyncInterval>) -> String {
    setting.map_or_else(|| "default".to_string(), |s| s.to_string())
}

/// Runs `plan`'s scenario once per compared setting and writes the comparison.
pub async fn execute(plan: RunPlan) -> Result<ExitStatus, AppError> {
    if !plan.segment.is_whole() || plan.workers.is_some() {
        return Err(AppError::usage(anyhow::anyhow!(
            "the scenario {} compares settings run after run (compare_sync_interval): it cannot \
             be split into segments or workers",
            plan.scenario.name
        )));
    }
    let settings = plan.scenario.compare_sync_interval.clone();
    let name = plan.scenario.name.clone();
    let id = plan
        .run_id
        .clone()
        .unwrap_or_else(|| format!("{}-{name}", compact_utc(OffsetDateTime::now_utc())));
    let dir = plan.reports_dir.join(&id);
    let mut runs: Vec<(String, std::path::PathBuf, ExitStatus)> = Vec::new();
    for (i, setting) in settings.iter().enumerate() {
        let mut sub = plan.clone();
        sub.scenario.compare_sync_interval.clear();
        sub.scenario.sync_interval = *setting;
        sub.reports_dir = dir.clone();
        let run_id = format!("sync-{}", label(*setting).replace(' ', ""));
        sub.run_id = Some(run_id.clone());
        eprintln!(
            "aivo-load: {name}: run {} of {} with sync_interval {}",
            i + 1,
            settings.len(),
            label(*setting)
        );
        let status = Box::pin(super::execute(sub)).await?;
        runs.push((label(*setting), dir.join(&run_id), status));
        if status == ExitStatus::Interrupted {
            return Ok(status);
        }
    }
    let comparison = comparison(&name, &runs)?;
    let path = dir.join("comparison.md");
    std::fs::write(&path, &comparison)
        .map_err(|e| AppError::environment(anyhow::anyhow!("{}: {e}", path.display())))?;
    println!(
        "\n{comparison}\naivo-load: the comparison is in {}",
        path.display()
    );
    Ok(runs
        .iter()
        .map(|(_, _, status)| *status)
        .max_by_key(|status| *status as u8)
        .unwrap_or(ExitStatus::Success))
}

/// `comparison.md`: the decision table of every run and the first two side by side.
fn comparison(
    name: &str,
    runs: &[(String, std::path::PathBuf, ExitStatus)],
) -> Result<String, AppError> {
    let mut reports = Vec::new();
    for (setting, dir, _) in runs {
        reports.push((setting.clone(), compare::load_report(dir)?));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {name}: what each sync_interval lost, and what it cost\n\n{}",
        compare::decision_table("sync_interval", &reports)
    );
    if let [(a_name, a), (b_name, b), ..] = reports.as_slice() {
        let _ = writeln!(
            out,
            "## sync_interval {a_name} (A) against {b_name} (B)\n\n```\n{}```",
            compare::render(a, b, a_name, b_name)
        );
    }
    let _ = writeln!(out, "Each run's own report:");
    for (setting, dir, _) in runs {
        let _ = writeln!(out, "- {setting}: {}", dir.display());
    }
    Ok(out)
}
