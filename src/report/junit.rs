//! `junit.xml`: the run's checks and thresholds as JUnit test cases, so a CI system (a nightly
//! soak) shows which one failed without reading `report.json`. One `<testsuite>` per run, named after
//! the scenario; a failed check carries its detail as the failure message.

use super::checks::{CheckKind, CheckLine};
use super::{escape_markup as escape, RunReport};

fn testcase(out: &mut String, suite: &str, line: &CheckLine) {
    let class = match line.kind {
        CheckKind::Check => "checks",
        CheckKind::Threshold => "thresholds",
    };
    out.push_str(&format!(
        "    <testcase classname=\"aivo-load.{}.{class}\" name=\"{}\" time=\"0\">\n",
        escape(suite),
        escape(&line.name)
    ));
    if !line.passed {
        out.push_str(&format!(
            "      <failure message=\"{}\" type=\"{class}\">{}\n{}</failure>\n",
            escape(&line.detail),
            escape(&line.measured),
            escape(&line.detail)
        ));
    }
    out.push_str(&format!(
        "      <system-out>{}</system-out>\n",
        escape(&line.measured)
    ));
    out.push_str("    </testcase>\n");
}

/// The `junit.xml` of a run. A run that was interrupted or aborted gets one more failed case saying
/// so, since its checks judged only part of the planned load.
pub fn render(report: &RunReport) -> String {
    let suite = &report.run.scenario;
    let mut cases = report.checks.clone();
    let stopped = if report.run.state == super::RunState::Running {
        Some(
            "incomplete: the run was still going at this checkpoint (or died after it)".to_string(),
        )
    } else if report.run.interrupted {
        Some("the run was interrupted before its end".to_string())
    } else {
        report.run.aborted.as_ref().map(|r| format!("aborted: {r}"))
    };
    if let Some(why) = stopped {
        cases.push(CheckLine {
            kind: CheckKind::Check,
            name: "run completed".into(),
            passed: false,
            measured: format!("{:.1} s of the planned load", report.run.duration_s),
            detail: why,
        });
    }
    let failures = cases.iter().filter(|c| !c.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"aivo-load\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        cases.len(),
        report.run.duration_s
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" id=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{}\">\n",
        escape(suite),
        escape(&report.run.id),
        cases.len(),
        report.run.duration_s,
        escape(&report.run.started_at)
    ));
    out.push_str("    <properties>\n");
    for (name, value) in [
        ("seed", report.run.seed.to_string()),
        ("backend", report.run.backend.clone()),
        (
            "nats_server_version",
            report.run.nats_server_version.clone(),
        ),
        ("aivo_load_version", report.run.aivo_load_version.clone()),
    ] {
        out.push_str(&format!(
            "      <property name=\"{name}\" value=\"{}\"/>\n",
            escape(&value)
        ));
    }
    out.push_str("    </properties>\n");
    for case in &cases {
        testcase(&mut out, suite, case);
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
