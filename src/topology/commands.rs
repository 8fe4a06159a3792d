//! `aivo-load init` and `aivo-load verify`: connect, apply or compare, print, pick the exit code.
//!
//! Exit codes (DESIGN.md §6): `init` exits 0 once every object matches the declaration; `verify`
//! exits 0 when nothing drifted and 1 when something did. An unreachable server or an unusable
//! JetStream is an environment error (3), and so is a live object `init` cannot bring in line
//! (a field the server cannot change in place): the cluster, not the invocation, is at fault.
//! A bad `--replicas` is a usage error (2).

use std::fmt::Write as _;

#[cfg(test)]
use super::connect::connect;
use super::connect::connect_as;
use super::{apply, validate_replicas, verify, ChangeKind, FieldCheck, Topology, TopologyError};
use crate::exit::{AppError, ExitStatus};

/// `init` or `verify`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct TopologyRequest {
    /// The cluster's URLs, comma-separated (resolved: `--server`, `NATS_URL`, else the `cluster
    /// up` cluster, else the seed's first node).
    pub server: String,
    /// Stream replicas.
    pub replicas: usize,
    /// Identity and TLS (`--creds`, `--nkey`, `--tls-ca`, ...; a production cluster's admin).
    pub auth: crate::security::ClientAuth,
}

/// `aivo-load init`: create or update the declared streams and consumers, one line per object.
pub async fn init_command(args: TopologyRequest) -> Result<ExitStatus, AppError> {
    let topology = Topology::seed(validate_replicas(args.replicas).map_err(app_error)?);
    let server = args.server.clone();
    let js = connect_as(&server, &args.auth).await.map_err(app_error)?;
    let changes = apply(&js, &topology).await.map_err(app_error)?;
    let mut out = String::new();
    for change in &changes {
        let _ = writeln!(out, "{change}");
    }
    let count =
        |wanted: fn(&ChangeKind) -> bool| changes.iter().filter(|c| wanted(&c.kind)).count();
    let _ = writeln!(
        out,
        "{} streams, {} consumers on {server}: {} created, {} updated, {} unchanged",
        topology.streams.len(),
        topology.consumers.len(),
        count(|k| matches!(k, ChangeKind::Created)),
        count(|k| matches!(k, ChangeKind::Updated(_))),
        count(|k| matches!(k, ChangeKind::Unchanged)),
    );
    print!("{out}");
    Ok(ExitStatus::Success)
}

/// `aivo-load verify`: print declared against live values, one row per field; exit 1 on drift.
pub async fn verify_command(args: TopologyRequest) -> Result<ExitStatus, AppError> {
    let topology = Topology::seed(validate_replicas(args.replicas).map_err(app_error)?);
    let server = args.server.clone();
    let js = connect_as(&server, &args.auth).await.map_err(app_error)?;
    let checks = verify(&js, &topology).await.map_err(app_error)?;
    print!("{}", render_checks(&checks));
    if checks.iter().all(|c| c.matches) {
        Ok(ExitStatus::Success)
    } else {
        Ok(ExitStatus::Failed)
    }
}

fn app_error(error: TopologyError) -> AppError {
    if error.is_usage() {
        AppError::usage(error)
    } else {
        AppError::environment(error)
    }
}

/// The `verify` table (a `✗` in the first column marks drift) and a closing line that names every
/// drifted field.
pub fn render_checks(checks: &[FieldCheck]) -> String {
    let header = ["", "OBJECT", "FIELD", "DECLARED", "LIVE"];
    let rows: Vec<[String; 5]> = checks
        .iter()
        .map(|c| {
            [
                if c.matches { " " } else { "✗" }.to_string(),
                c.object.clone(),
                c.field.to_string(),
                c.declared.to_string(),
                c.live.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            text.push_str(cell);
            text.push_str(&" ".repeat(pad));
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    let drifted: Vec<String> = checks
        .iter()
        .filter(|c| !c.matches)
        .map(|c| format!("{} {}", c.object, c.field))
        .collect();
    if drifted.is_empty() {
        let _ = writeln!(out, "no drift: all {} declared fields match", checks.len());
    } else {
        let _ = writeln!(
            out,
            "drift in {} of {} fields: {}",
            drifted.len(),
            checks.len(),
            drifted.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::topology::FieldValue;

    fn check(object: &str, field: &'static str, declared: u64, live: u64) -> FieldCheck {
        FieldCheck {
            object: object.into(),
            field,
            declared: FieldValue::DurationLimit(Duration::from_secs(declared)),
            live: FieldValue::DurationLimit(Duration::from_secs(live)),
            matches: declared == live,
        }
    }

    #[test]
    fn table_marks_drift_and_names_it_last() {
        let checks = [
            check("LEARNING", "max_age", 2_592_000, 2_592_000),
            check("FOCUS", "max_age", 604_800, 3600),
        ];
        let text = render_checks(&checks);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("   OBJECT"), "{text}");
        assert!(lines[1].starts_with("   LEARNING  max_age  30d"), "{text}");
        assert!(lines[2].starts_with("✗  FOCUS     max_age  7d "), "{text}");
        assert!(lines[2].ends_with("1h"), "{text}");
        assert_eq!(lines[3], "drift in 1 of 2 fields: FOCUS max_age");
    }

    #[test]
    fn table_without_drift_says_so() {
        let text = render_checks(&[check("DLQ", "max_age", 60, 60)]);
        assert!(
            text.ends_with("no drift: all 1 declared fields match\n"),
            "{text}"
        );
        assert!(!text.contains('✗'));
    }

    #[test]
    fn usage_and_environment_errors_map_to_their_exit_codes() {
        let usage = app_error(TopologyError::InvalidReplicas { replicas: 9 });
        assert_eq!(usage.exit_status(), ExitStatus::Usage);
        let env = app_error(TopologyError::Connect {
            url: "nats://127.0.0.1:1".into(),
            reason: "refused".into(),
        });
        assert_eq!(env.exit_status(), ExitStatus::Environment);
        let text = env.to_string();
        assert!(text.contains("nats://127.0.0.1:1"), "{text}");
        assert!(text.contains("aivo-load cluster up"), "{text}");
        assert!(text.contains("--server"), "{text}");
    }

    #[tokio::test]
    async fn empty_server_list_is_a_connect_error() {
        let err = connect(" , ").await.expect_err("nothing to connect to");
        assert!(matches!(err, TopologyError::Connect { .. }), "{err}");
    }
}
