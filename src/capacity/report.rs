//! The capacity report: `capacity.json` (schema 1), `capacity.md`, `capacity.html` (see `html.rs`),
//! `sustainable.toml`, and the lines on the terminal.

use std::fmt::Write as _;

use serde::Serialize;

use super::search::Outcome;
use super::step::{Broken, StepReport};
use super::storage::{self, StorageSizing};
use super::usl::UslFit;
use crate::load::metrics::Percentiles;
use crate::scenario::Scenario;

/// Everything the session measured.
pub struct Measurements {
    pub steps: Vec<StepReport>,
    pub outcome: Outcome,
    pub scaling: Vec<ScalingPoint>,
    /// Per-subject counts and payload sizes over every step.
    pub subjects: crate::load::metrics::SubjectTable,
}

pub const SCHEMA_VERSION: u32 = 1;

/// Everything `capacity.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    pub schema_version: u32,
    pub run: CapacityIdentity,
    pub result: CapacityResult,
    /// Every step of the search, in the order measured.
    pub steps: Vec<StepReport>,
    pub scaling: Scaling,
    /// Disk per stream at the forecast's volume (bytes per message from the measured events).
    pub storage: StorageSizing,
}

/// What was measured, how, and against what.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityIdentity {
    pub id: String,
    pub scenario: String,
    pub origin: String,
    pub started_at: String,
    pub finished_at: String,
    pub backend: String,
    pub servers: Vec<String>,
    pub nats_server_version: String,
    pub aivo_load_version: String,
    pub slo: String,
    pub error_budget: f64,
    pub quick: bool,
    pub warmup_s: f64,
    pub window_s: f64,
    /// Publishers per traffic source during the search.
    pub publishers: u32,
    pub in_flight_per_publisher: u32,
    /// True when each event carried a `Nats-Msg-Id` (JetStream dedup, as idempotent producers
    /// publish; `[publishers] message_id`). Dedup ids cost the cluster throughput, so a figure
    /// measured without them overstates what such producers get.
    pub message_id: bool,
    /// `(stream, share of the events)` of the mix measured.
    pub mix: Vec<(String, f64)>,
    /// True when the indexer ran beside the steps (its lag was a criterion).
    pub indexer: bool,
    /// Cores the harness could use.
    pub harness_cores: usize,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityResult {
    /// `knee`, `not-saturated`, `below-start`, `limited-by-load-generator`.
    pub verdict: String,
    /// One sentence a reviewer can quote.
    pub summary: String,
    /// The highest rate measured sustainable (none when the harness was the limit).
    pub sustainable_rate: Option<f64>,
    /// The lowest rate measured not sustainable.
    pub knee_rate: Option<f64>,
    /// Corrected latency at the sustainable rate.
    pub latency_at_sustainable: Option<Percentiles>,
    /// What broke first at the knee.
    pub saturated_first: Vec<Broken>,
    /// Set when the harness was the limit: why, and what to do.
    pub load_generator: Option<String>,
}

/// Throughput at overload against publishers, with the USL fit.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Scaling {
    pub points: Vec<ScalingPoint>,
    pub fit: Option<UslFit>,
    /// Why there is no fit.
    pub fit_error: Option<String>,
}

/// One measured point of the scalability curve.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingPoint {
    /// Publishers in all (per source × sources).
    pub publishers: u32,
    pub target_rate: f64,
    pub acked_rate: f64,
    pub latency_p99_ms: f64,
    pub harness_cpu_max: Option<f64>,
    pub load_generator_limited: bool,
}

impl ScalingPoint {
    /// The point a step at overload measured; limited by the load generator when the harness used
    /// 90 % of its `cores`.
    pub fn from_step(step: &StepReport, scenario: &Scenario, cores: usize) -> Self {
        Self {
            publishers: step.publishers * scenario.traffic.len().max(1) as u32,
            target_rate: step.target_rate,
            acked_rate: step.acked_rate,
            latency_p99_ms: step.latency.p99,
            harness_cpu_max: step.harness_cpu_max,
            load_generator_limited: step
                .harness_cpu_max
                .is_some_and(|c| c >= 0.9 * cores.max(1) as f64),
        }
    }
}

impl CapacityReport {
    /// The terminal summary.
    pub fn terminal(&self, dir: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\ncapacity {} ({})", self.run.scenario, self.run.slo);
        let _ = writeln!(out, "  {}", self.result.summary);
        if let Some(advice) = &self.result.load_generator {
            let _ = writeln!(out, "  limited by the load generator: {advice}");
        }
        if let Some(fit) = &self.scaling.fit {
            let _ = writeln!(out, "  scalability: {}", fit_sentence(fit));
        }
        let _ = writeln!(out, "  report: {dir}/capacity.html");
        out
    }

    /// `capacity.md`.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let r = &self.run;
        let _ = writeln!(md, "# Capacity: {}\n", r.scenario);
        let _ = writeln!(md, "Result: {}.\n", self.result.summary);
        if let Some(advice) = &self.result.load_generator {
            let _ = writeln!(md, "Limited by the load generator: {advice}.\n");
        }
        let _ = writeln!(
            md,
            "SLO `{}` on corrected latency, error budget {:.3} %, backlog not growing{}. Backend {} ({}), nats-server {}, aivo-load {}; {} publishers per source × {} in flight, {}; warm-up {:.0} s, measured window {:.0} s per step{}.\n",
            r.slo,
            r.error_budget * 100.0,
            if r.indexer { ", indexer lag not growing" } else { "" },
            r.backend,
            r.servers.join(", "),
            r.nats_server_version,
            r.aivo_load_version,
            r.publishers,
            r.in_flight_per_publisher,
            if r.message_id {
                "each event with a Nats-Msg-Id (dedup on, as idempotent producers publish)"
            } else {
                "no Nats-Msg-Id (dedup off)"
            },
            r.warmup_s,
            r.window_s,
            if r.quick { " (--quick)" } else { "" },
        );
        let mix: Vec<String> = r
            .mix
            .iter()
            .map(|(s, share)| format!("{s} {:.1} %", share * 100.0))
            .collect();
        let _ = writeln!(md, "Mix: {}.\n", mix.join(", "));
        if !self.result.saturated_first.is_empty() {
            let _ = writeln!(md, "## What saturated first\n");
            for b in &self.result.saturated_first {
                let _ = writeln!(md, "- {}: {}", b.criterion, b.detail);
            }
            md.push('\n');
        }
        let _ = writeln!(md, "## Steps\n");
        let _ = writeln!(
            md,
            "| # | kind | target/s | acked/s | p50 ms | p99 ms | p99.9 ms | errors | send delay ms (first→last) | harness CPU | busiest node CPU | verdict |"
        );
        let _ = writeln!(
            md,
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|"
        );
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.1} → {:.1} | {} | {} | {} |",
                i + 1,
                s.kind,
                s.target_rate,
                s.acked_rate,
                s.latency.p50,
                s.latency.p99,
                s.latency.p999,
                s.errors,
                s.send_delay_first_ms,
                s.send_delay_last_ms,
                s.harness_cpu_max.map_or("–".into(), |c| format!("{c:.2}")),
                s.node_cpu_max
                    .as_ref()
                    .map_or("–".into(), |(n, c)| format!("{n} {c:.2}")),
                step_verdict(s)
            );
        }
        md.push('\n');
        let _ = writeln!(md, "## Scalability (throughput at overload)\n");
        if !self.scaling.points.is_empty() {
            let _ = writeln!(
                md,
                "| publishers | acked/s | USL fit/s | p99 ms | harness CPU |"
            );
            let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
            for p in &self.scaling.points {
                let fitted = self.scaling.fit.map_or("–".into(), |f| {
                    format!("{:.0}", f.throughput(f64::from(p.publishers)))
                });
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {} | {:.1} | {} |",
                    p.publishers,
                    p.acked_rate,
                    fitted,
                    p.latency_p99_ms,
                    p.harness_cpu_max.map_or("–".into(), |c| format!("{c:.2}"))
                );
            }
            md.push('\n');
        }
        match (&self.scaling.fit, &self.scaling.fit_error) {
            (Some(fit), _) => {
                let _ = writeln!(md, "{}\n", fit_sentence(fit));
            }
            (None, Some(e)) => {
                let _ = writeln!(md, "No fit: {e}.\n");
            }
            (None, None) => {}
        }
        let _ = writeln!(md, "## Storage\n");
        md.push_str(&storage::markdown(&self.storage));
        md
    }
}

/// The answer the measurements give.
pub fn result_of(m: &Measurements) -> CapacityResult {
    // The baseline step calibrates; the search's own steps give the answer.
    let searched = || m.steps.iter().filter(|s| s.kind != "baseline");
    let sustainable = searched()
        .filter(|s| s.sustainable)
        .max_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    let first_bad = searched()
        .filter(|s| !s.sustainable && !s.load_generator_limited)
        .min_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    let limited = searched().find(|s| s.load_generator_limited);
    let (verdict, summary) = match m.outcome {
        Outcome::Knee { good, bad } => (
            "knee",
            format!(
                "sustainable {} events/s (corrected p99 {:.1} ms); the knee lies between {} and {} events/s",
                rate(good),
                sustainable.map_or(0.0, |s| s.latency.p99),
                rate(good),
                rate(bad)
            ),
        ),
        Outcome::NotSaturated { good } => (
            "not-saturated",
            format!(
                "not saturated: every step up to {} events/s held (raise --max-rate)",
                rate(good)
            ),
        ),
        Outcome::BelowStart { bad } => (
            "below-start",
            format!(
                "even the first step, {} events/s, was not sustainable (lower --start-rate)",
                rate(bad)
            ),
        ),
        Outcome::Inconclusive { good, at } => (
            "limited-by-load-generator",
            format!(
                "limited by the load generator at {} events/s{}: no cluster figure",
                rate(at),
                good.map_or(String::new(), |g| format!(" (the cluster held {} events/s)", rate(g)))
            ),
        ),
    };
    let inconclusive = matches!(m.outcome, Outcome::Inconclusive { .. });
    CapacityResult {
        verdict: verdict.to_string(),
        summary,
        sustainable_rate: if inconclusive {
            None
        } else {
            sustainable.map(|s| s.target_rate)
        },
        knee_rate: if inconclusive {
            None
        } else {
            first_bad.map(|s| s.target_rate)
        },
        latency_at_sustainable: if inconclusive {
            None
        } else {
            sustainable.map(|s| s.latency)
        },
        saturated_first: if inconclusive {
            Vec::new()
        } else {
            first_bad.map(|s| s.broken.clone()).unwrap_or_default()
        },
        load_generator: limited.and_then(|s| {
            s.broken
                .iter()
                .find(|b| b.criterion == "load-generator")
                .map(|b| b.detail.clone())
        }),
    }
}

/// "sustainable" / "saturated: latency, backlog" / "load generator".
pub fn step_verdict(s: &StepReport) -> String {
    if s.load_generator_limited {
        "limited by the load generator".into()
    } else if s.sustainable {
        "sustainable".into()
    } else {
        let what: Vec<&str> = s.broken.iter().map(|b| b.criterion).collect();
        format!("saturated: {}", what.join(", "))
    }
}

/// The progress line of a step.
pub fn step_line(s: &StepReport) -> String {
    format!(
        "aivo-load capacity: {:<7} {:>8}/s → acked {:>8.0}/s  p99 {:>8.2} ms  {}",
        s.kind,
        rate(s.target_rate),
        s.acked_rate,
        s.latency.p99,
        step_verdict(s)
    )
}

/// The progress line of a scalability point.
pub fn scaling_line(p: &ScalingPoint) -> String {
    format!(
        "aivo-load capacity: scaling {:>3} publishers at {}/s → acked {:>8.0}/s{}",
        p.publishers,
        rate(p.target_rate),
        p.acked_rate,
        if p.load_generator_limited {
            "  (limited by the load generator)"
        } else {
            ""
        }
    )
}

fn fit_sentence(fit: &UslFit) -> String {
    let peak = match (fit.peak_concurrency, fit.peak_throughput) {
        (Some(n), Some(x)) => format!("peak {x:.0} events/s at {n:.1} publishers"),
        (None, Some(x)) => format!("no peak; asymptote {x:.0} events/s"),
        _ => "linear scaling in the measured range".to_string(),
    };
    format!(
        "USL fit: λ {:.0} events/s per publisher, σ (contention) {:.4}, κ (coherency) {:.6}, R² {:.3}; {peak}",
        fit.lambda, fit.sigma, fit.kappa, fit.r_squared
    )
}

fn rate(r: f64) -> String {
    format!("{:.0}", r)
}
