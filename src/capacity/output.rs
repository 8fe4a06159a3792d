//! The capacity report put together from a session's measurements and written out:
//! `capacity.json`, `capacity.md`, `capacity.html` and `sustainable.toml`.

use std::fmt::Write as _;
use std::path::Path;

use super::plan::{mix_shares, CapacityPlan};
use super::report::{
    result_of, CapacityIdentity, CapacityReport, Measurements, Scaling, SCHEMA_VERSION,
};
use super::storage::{self, MeasuredSize, SizingInput};
use super::usl;
use crate::load::metrics::SubjectTable;
use crate::run::session::LoadSession;
use crate::scenario::Scenario;
use crate::traffic::arrival::ArrivalProcess;
use crate::traffic::Domain;
use std::collections::BTreeMap;

/// The report of a session's measurements.
pub async fn build(
    plan: &CapacityPlan,
    session: &LoadSession,
    id: &str,
    started_at: time::OffsetDateTime,
    m: Measurements,
) -> CapacityReport {
    let scenario = &plan.scenario;
    let run = CapacityIdentity {
        id: id.to_string(),
        scenario: scenario.name.clone(),
        origin: scenario.origin.clone(),
        started_at: rfc3339(started_at),
        finished_at: rfc3339(time::OffsetDateTime::now_utc()),
        backend: session
            .backend()
            .map_or_else(String::new, |b| b.to_string()),
        servers: session.client_urls().to_vec(),
        nats_server_version: session.nats_server_version().to_string(),
        aivo_load_version: env!("CARGO_PKG_VERSION").to_string(),
        slo: plan.slo.text.clone(),
        error_budget: plan.error_budget,
        quick: plan.quick,
        warmup_s: plan.warmup.as_secs_f64(),
        window_s: plan.window.as_secs_f64(),
        publishers: scenario.publishers,
        in_flight_per_publisher: scenario.in_flight,
        message_id: scenario.message_id,
        mix: scenario
            .traffic
            .iter()
            .zip(mix_shares(scenario))
            .map(|(t, share)| (t.domain.stream().to_string(), share))
            .collect(),
        indexer: session.has_indexer(),
        harness_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let result = result_of(&m);
    let points = m.scaling;
    let usl_points: Vec<usl::Point> = points
        .iter()
        .map(|p| usl::Point {
            concurrency: f64::from(p.publishers),
            throughput: p.acked_rate,
        })
        .collect();
    let (fit, fit_error) = if points.is_empty() {
        (
            None,
            Some("no scalability points were measured".to_string()),
        )
    } else {
        match usl::fit(&usl_points) {
            Ok(fit) => (Some(fit), None),
            Err(e) => (None, Some(e)),
        }
    };
    let storage = storage::size(&SizingInput {
        topology: session.topology(),
        forecast: &plan.forecast,
        measured: &measured_sizes(&m.subjects),
        nodes: session
            .cluster()
            .map_or(storage::SEED_NODES, |c| c.endpoints().nodes.len().max(1)),
        node_max_file_store: node_max_file_store(session).await,
    });
    CapacityReport {
        schema_version: SCHEMA_VERSION,
        run,
        result,
        steps: m.steps,
        scaling: Scaling {
            points,
            fit,
            fit_error,
        },
        storage,
    }
}

/// Mean subject and payload bytes per stream of the events the steps sent. Headers are left to
/// the forecast: the harness's own (its ledger identity) are not what AIVO's producers send.
fn measured_sizes(subjects: &SubjectTable) -> BTreeMap<String, MeasuredSize> {
    let mut sums: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
    for s in &subjects.subjects {
        let Some(domain) = Domain::ALL
            .into_iter()
            .find(|d| d.subjects().contains(&s.subject.as_str()))
        else {
            continue;
        };
        let entry = sums.entry(domain.stream()).or_default();
        entry.0 += s.attempted;
        entry.1 += s.attempted * s.subject.len() as u64;
        entry.2 += s.payload_bytes;
    }
    sums.into_iter()
        .filter(|(_, (count, ..))| *count > 0)
        .map(|(stream, (count, subject, payload))| {
            let count = count as f64;
            (
                stream.to_string(),
                MeasuredSize {
                    subject_bytes: Some(subject as f64 / count),
                    header_bytes: None,
                    payload_bytes: Some(payload as f64 / count),
                },
            )
        })
        .collect()
}

/// The `max_file_store` the first node that answers reports (`/jsz` config), if any.
async fn node_max_file_store(session: &LoadSession) -> Option<u64> {
    let endpoints = session.cluster()?.endpoints();
    for node in &endpoints.nodes {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            crate::cluster::monitor::jsz(&node.monitor_url),
        )
        .await;
        if let Ok(Ok(jsz)) = answer {
            if jsz.config.max_storage > 0 {
                return Some(jsz.config.max_storage);
            }
        }
    }
    None
}

/// Writes `capacity.json`, `capacity.md`, `capacity.html` and (with a figure)
/// `sustainable.toml` into `dir`.
pub fn write_to(report: &CapacityReport, dir: &Path, plan: &CapacityPlan) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("capacity.json"), json)?;
    std::fs::write(dir.join("capacity.md"), report.markdown())?;
    std::fs::write(dir.join("capacity.html"), super::html::render(report))?;
    if let Some(rate) = report.result.sustainable_rate {
        std::fs::write(
            dir.join("sustainable.toml"),
            sustainable_scenario(&plan.scenario, rate, plan),
        )?;
    }
    Ok(())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The scenario at `rate` as a constant-rate scenario file, with the SLO and the error budget as
/// thresholds: `aivo-load run sustainable.toml` confirms the figure, `--rate-scale 1.2` probes past it.
pub fn sustainable_scenario(base: &Scenario, rate: f64, plan: &CapacityPlan) -> String {
    let duration = (plan.warmup + plan.window * 3).as_secs().max(30);
    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "# Written by `aivo-load capacity`: {} at the sustainable rate it found, constant, with the SLO as\n# a threshold. Confirm with `aivo-load run <this file>`; probe past it with `--rate-scale 1.2`.",
        base.name
    );
    let _ = writeln!(toml, "name = \"{}-sustainable\"", base.name);
    let _ = writeln!(
        toml,
        "description = \"{} at {:.0} events/s, the sustainable rate measured by aivo-load capacity.\"",
        base.name, rate
    );
    let _ = writeln!(toml, "duration = \"{duration}s\"\nseed = {}\n", base.seed);
    let _ = writeln!(
        toml,
        "[population]\ntenants = {}\nlearners = {}\n",
        base.tenants, base.learners
    );
    let _ = writeln!(
        toml,
        "[publishers]\ncount = {}\nin_flight = {}\nack_timeout = \"{}\"\n",
        base.publishers,
        base.in_flight,
        crate::units::format_duration(base.ack_timeout)
    );
    for (source, share) in base.traffic.iter().zip(mix_shares(base)) {
        let _ = writeln!(
            toml,
            "[[traffic]]\ndomain = \"{}\"",
            domain_name(source.domain)
        );
        let mix: Vec<String> = source
            .mix
            .iter()
            .map(|(s, w)| format!("\"{s}\" = {w}"))
            .collect();
        let _ = writeln!(toml, "mix = {{ {} }}", mix.join(", "));
        let _ = writeln!(toml, "rate = \"{:.1}/s\"", rate * share);
        if matches!(source.profile.process(), ArrivalProcess::Poisson { .. }) {
            let _ = writeln!(toml, "arrivals = \"poisson\"");
        }
        toml.push('\n');
    }
    let _ = writeln!(toml, "[thresholds]");
    let _ = writeln!(
        toml,
        "\"publish.latency.{}\" = \"< {}ms\"",
        plan.slo.statistic, plan.slo.limit_ms
    );
    let _ = writeln!(
        toml,
        "\"publish.error_rate\" = \"< {}%\"",
        (plan.error_budget * 100.0).max(0.001)
    );
    toml
}

fn domain_name(domain: crate::traffic::Domain) -> String {
    serde_json::to_value(domain)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
