//! `aivo-load verify --production`: a read-only audit of any cluster (external included) against
//! the seed's "Production Considerations", from the nodes' monitoring endpoints (`/varz`,
//! `/accountz`) and one plain connect attempt. A table with pass/fail per item, like `verify`'s
//! drift table; the command exits 1 if any item fails.
//!
//! Items, per node unless said otherwise:
//! - `auth required`, `client TLS required`, `route TLS required` (`/varz`);
//! - `no no_auth_user` (cluster): a connection with the given TLS settings but no identity must be
//!   refused for authorization (`/varz` does not show `no_auth_user`, so it is tried);
//! - `max_file_store`, `max_memory_store` (cluster): the nodes' limits together hold every declared
//!   stream's `max_bytes` × replicas of that storage. `/varz` cannot tell a configured limit from
//!   the server's default (75 % of the disk or memory), so "set" is judged as "large enough";
//! - `JetStream domain`: configured (not empty);
//! - `system account`: configured, not only the implicit `$SYS` of a server with no accounts.

use std::fmt::Write as _;
use std::time::Duration;

use async_nats::jetstream::stream::StorageType;

use crate::cluster::monitor::{self, Varz};
use crate::exit::{AppError, ExitStatus};
use crate::security::ClientAuth;
use crate::topology::Topology;

/// How long a node's monitoring or the connect attempt may take.
const WITHIN: Duration = Duration::from_secs(5);

/// What the audit looks at: validated by `cli.rs`.
#[derive(Debug, Clone)]
pub struct ProductionAudit {
    /// Client URLs, comma-separated (the connect attempt goes to the first).
    pub server: String,
    /// The nodes' monitoring URLs.
    pub monitor_urls: Vec<String>,
    /// The TLS settings of the connect attempt (its identity is dropped).
    pub auth: ClientAuth,
    /// The declared streams' replicas.
    pub replicas: usize,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditItem {
    pub item: String,
    /// A node's name, or `cluster`.
    pub scope: String,
    pub passed: bool,
    pub expected: String,
    pub found: String,
}

/// `verify --production`: the table on stdout, exit 1 if an item failed.
pub async fn verify_production_command(audit: ProductionAudit) -> Result<ExitStatus, AppError> {
    let topology = Topology::seed(audit.replicas);
    let items = run_audit(&audit, &topology).await;
    print!("{}", render(&items));
    Ok(if items.iter().all(|i| i.passed) {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// Every item, nodes in the order given.
pub async fn run_audit(audit: &ProductionAudit, topology: &Topology) -> Vec<AuditItem> {
    let answers = futures::future::join_all(
        audit
            .monitor_urls
            .iter()
            .map(|url| monitor::get_json_within::<Varz>(url, "/varz", WITHIN)),
    )
    .await;
    let mut items = Vec::new();
    let mut nodes = Vec::new();
    for (url, answer) in audit.monitor_urls.iter().zip(answers) {
        match answer {
            Ok(varz) => {
                node_items(&mut items, &varz);
                nodes.push(varz);
            }
            Err(e) => items.push(AuditItem {
                item: "monitoring".into(),
                scope: url.clone(),
                passed: false,
                expected: "/varz answers".into(),
                found: e.to_string(),
            }),
        }
    }
    items.push(no_auth_user_item(audit).await);
    for storage in [StorageType::File, StorageType::Memory] {
        items.push(store_item(&nodes, topology, storage));
    }
    items
}

fn node_items(items: &mut Vec<AuditItem>, varz: &Varz) {
    let scope = if varz.server_name.is_empty() {
        varz.server_id.clone()
    } else {
        varz.server_name.clone()
    };
    let mut item = |name: &str, passed: bool, expected: &str, found: String| {
        items.push(AuditItem {
            item: name.into(),
            scope: scope.clone(),
            passed,
            expected: expected.into(),
            found,
        })
    };
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    item(
        "auth required",
        varz.auth_required,
        "yes",
        yes_no(varz.auth_required),
    );
    item(
        "client TLS required",
        varz.tls_required,
        "yes",
        format!(
            "{} (client certificates verified: {})",
            yes_no(varz.tls_required),
            yes_no(varz.tls_verify)
        ),
    );
    item(
        "route TLS required",
        varz.cluster.tls_required,
        "yes",
        format!(
            "{} (peers verified: {})",
            yes_no(varz.cluster.tls_required),
            yes_no(varz.cluster.tls_verify)
        ),
    );
    let domain = &varz.jetstream.config.domain;
    item(
        "JetStream domain",
        !domain.is_empty(),
        "set",
        if domain.is_empty() {
            "none".into()
        } else {
            domain.clone()
        },
    );
    let system = &varz.system_account;
    item(
        "system account",
        !system.is_empty() && system != "$SYS",
        "configured",
        match system.as_str() {
            "" => "none".into(),
            "$SYS" => "only the implicit $SYS (no system_account configured)".into(),
            name => name.into(),
        },
    );
}

/// A connection with the audit's TLS settings but no identity: refused for authorization.
async fn no_auth_user_item(audit: &ProductionAudit) -> AuditItem {
    let anonymous = ClientAuth {
        creds: None,
        nkey: None,
        user: None,
        password: None,
        ..audit.auth.clone()
    };
    let url = audit
        .server
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_string();
    let attempt = async {
        let options = anonymous
            .apply(async_nats::ConnectOptions::new().connection_timeout(WITHIN))
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(WITHIN * 2, options.connect(url.as_str())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", WITHIN * 2)),
        }
    };
    let (passed, found) = match attempt.await {
        Ok(()) => (
            false,
            format!("a connection without an identity was accepted on {url}"),
        ),
        Err(e) if e.to_lowercase().contains("authoriz") => {
            (true, format!("refused without an identity: {e}"))
        }
        Err(e) => (
            false,
            format!("refused before authentication, so cannot tell (give --tls-*): {e}"),
        ),
    };
    AuditItem {
        item: "no no_auth_user".into(),
        scope: "cluster".into(),
        passed,
        expected: "an anonymous connect is refused".into(),
        found,
    }
}

/// The nodes' `max_file_store` (or `max_memory_store`) together against the declared streams of
/// that storage: `max_bytes` × replicas each.
fn store_item(nodes: &[Varz], topology: &Topology, storage: StorageType) -> AuditItem {
    let (name, limit): (&str, fn(&Varz) -> u64) = match storage {
        StorageType::Memory => ("max_memory_store", |v| v.jetstream.config.max_memory),
        StorageType::File => ("max_file_store", |v| v.jetstream.config.max_storage),
    };
    let needed: u64 = topology
        .streams
        .iter()
        .filter(|s| s.storage == storage)
        .map(|s| u64::try_from(s.max_bytes.max(0)).unwrap_or(0) * s.replicas as u64)
        .sum();
    let limits: Vec<u64> = nodes.iter().map(limit).collect();
    let total: u64 = limits.iter().sum();
    let passed = !nodes.is_empty() && limits.iter().all(|l| *l > 0) && total >= needed;
    let each: Vec<String> = limits.iter().map(|l| monitor::human_bytes(*l)).collect();
    AuditItem {
        item: name.into(),
        scope: "cluster".into(),
        passed,
        expected: format!(
            "≥ {} (declared max_bytes × replicas)",
            monitor::human_bytes(needed)
        ),
        found: format!(
            "{} on {} nodes ({})",
            monitor::human_bytes(total),
            nodes.len(),
            each.join(", ")
        ),
    }
}

/// The table (a `✗` in the first column marks a failed item) and a closing line naming them.
pub fn render(items: &[AuditItem]) -> String {
    let header = ["", "ITEM", "WHERE", "EXPECTED", "FOUND"];
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|i| {
            [
                if i.passed { "✓" } else { "✗" }.to_string(),
                i.item.clone(),
                i.scope.clone(),
                i.expected.clone(),
                i.found.clone(),
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
    let mut line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < cells.len() {
                text.push_str(&" ".repeat(width.saturating_sub(cell.chars().count())));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    let mut failed: Vec<String> = Vec::new();
    for i in items.iter().filter(|i| !i.passed) {
        let name = format!("{} ({})", i.item, i.scope);
        failed.push(name);
    }
    if failed.is_empty() {
        let _ = writeln!(out, "production audit: all {} items pass", items.len());
    } else {
        let _ = writeln!(
            out,
            "production audit: {} of {} items fail: {}",
            failed.len(),
            items.len(),
            failed.join(", ")
        );
    }
    out
}
