//! `aivo-load init` and `aivo-load verify`: connect, apply or compare, print, pick the exit code.
//!
//! Exit codes (DESIGN.md §6): `init` exits 0 once every object matches the declaration; `verify`
//! exits 0 when nothing drifted and 1 when something did. An unreachable server or an unusable
//! JetStream is an environment error (3), and so is a live object `init` cannot bring in line
//! (a field the server cannot change in place): the cluster, not the invocation, is at fault.
//! A bad `--replicas` is a usage error (2).

use std::fmt::Write as _;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::AccountErrorKind;

use super::{apply, validate_replicas, verify, ChangeKind, FieldCheck, Topology, TopologyError};
use crate::cli::TopologyArgs;
use crate::exit::{AppError, ExitStatus};

/// How long one connection attempt to one server may take. A laptop cluster answers in
/// milliseconds; a few seconds also covers a remote cluster over a VPN.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for JetStream to answer after connecting. Right after `cluster up` the nodes
/// may still be electing a meta leader, which takes a few seconds.
const JETSTREAM_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long "no responders" on the JetStream API may last before we conclude JetStream is off.
const NO_RESPONDERS_TIMEOUT: Duration = Duration::from_secs(3);

/// Per JetStream API request. Creating an R3 stream waits for its Raft group to form, which can
/// take longer than the client's 5 s default on a busy machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `aivo-load init`: create or update the declared streams and consumers, one line per object.
pub async fn init_command(args: TopologyArgs) -> Result<ExitStatus, AppError> {
    let topology = Topology::seed(validate_replicas(args.replicas).map_err(app_error)?);
    let server = server_list(&args);
    let js = connect(&server).await.map_err(app_error)?;
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
pub async fn verify_command(args: TopologyArgs) -> Result<ExitStatus, AppError> {
    let topology = Topology::seed(validate_replicas(args.replicas).map_err(app_error)?);
    let server = server_list(&args);
    let js = connect(&server).await.map_err(app_error)?;
    let checks = verify(&js, &topology).await.map_err(app_error)?;
    print!("{}", render_checks(&checks));
    if checks.iter().all(|c| c.matches) {
        Ok(ExitStatus::Success)
    } else {
        Ok(ExitStatus::Failed)
    }
}

/// `--server` / `NATS_URL` (clap reads both), else the local cluster from `cluster up`.
fn server_list(args: &TopologyArgs) -> String {
    args.server
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| crate::cluster::state::default_server(&args.state))
}

/// Connects to the first reachable server of a comma-separated list and waits until JetStream
/// answers. Every step is bounded; failures name `server`.
pub async fn connect(server: &str) -> Result<jetstream::Context, TopologyError> {
    connect_preferring(server, None).await
}

/// [`connect`], but to `preferred` (one of the list's URLs) first and, after a disconnect, back to
/// it first as well; the rest of the list is the fallback. A consumer that sits on the server leading
/// its stream's consumer saves every delivery and every ack a route hop.
pub async fn connect_preferring(
    server: &str,
    preferred: Option<&str>,
) -> Result<jetstream::Context, TopologyError> {
    let mut urls: Vec<&str> = server
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if let Some(first) = preferred {
        urls.retain(|u| *u != first);
        urls.insert(0, first);
    }
    let connect_error = |reason: String| TopologyError::Connect {
        url: server.to_string(),
        reason,
    };
    if urls.is_empty() {
        return Err(connect_error("no server URL given".into()));
    }
    let mut options = async_nats::ConnectOptions::new()
        .name("aivo-load")
        .connection_timeout(CONNECT_TIMEOUT);
    if preferred.is_some() {
        options = options.retain_servers_order();
    }
    // The client tries each server once; bound the whole attempt as well.
    let overall = CONNECT_TIMEOUT * (urls.len() as u32 + 1);
    let client = match tokio::time::timeout(overall, options.connect(urls.as_slice())).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(connect_error(e.to_string())),
        Err(_) => return Err(connect_error(format!("no answer within {overall:?}"))),
    };
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    wait_for_jetstream(&js, server).await?;
    Ok(js)
}

async fn wait_for_jetstream(js: &jetstream::Context, server: &str) -> Result<(), TopologyError> {
    let start = tokio::time::Instant::now();
    loop {
        // Bounded by the context's request timeout.
        let (reason, give_up_after) = match js.query_account().await {
            Ok(_) => return Ok(()),
            // Nobody listens on the JetStream API: the server runs without JetStream. A node that
            // is still electing a meta leader answers (with an error) instead, so waiting the full
            // time would only delay the obvious.
            Err(e) if e.kind() == AccountErrorKind::JetStreamUnavailable => (
                format!("{e} (no JetStream API responders; is JetStream enabled?)"),
                NO_RESPONDERS_TIMEOUT,
            ),
            Err(e) => (e.to_string(), JETSTREAM_READY_TIMEOUT),
        };
        if start.elapsed() >= give_up_after {
            return Err(TopologyError::JetStreamUnavailable {
                url: server.to_string(),
                reason,
            });
        }
        tracing::debug!(%reason, "JetStream not ready yet");
        tokio::time::sleep(Duration::from_millis(250)).await;
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
