//! The security check of a production-profile cluster (the seed's "Production Considerations",
//! issue #14): six probes, each trying something the profile must refuse, and each judged by what
//! the cluster did, not by what its config says.
//!
//! 1. `unauthenticated`: TLS with the CA and a valid client certificate but no identity is refused
//!    for authorization (there is no `no_auth_user`);
//! 2. `plaintext`: a plaintext connection, even one that signs the server's nonce with the admin's
//!    nkey, is never served (no `PONG`);
//! 3. `cross-domain-publish`: the focus publisher's publish to `learning.x` draws a Permissions
//!    Violation, no ack, and nothing is stored in LEARNING;
//! 4. `publisher-stream-admin`: no domain publisher can purge or delete a stream through the
//!    JetStream API (a probe stream the admin makes for the purpose keeps its message);
//! 5. `indexer-publish-focus`: the indexer's publish to `focus.>` is refused the same way;
//! 6. `rogue-route`: a fourth `nats-server` with a route certificate the cluster's CA never signed
//!    (`cluster::rogue`; plaintext if the nodes' `/varz` say routes speak no TLS) never appears in
//!    any node's `/routez`.
//!
//! Every probe is bounded (a few seconds; they run side by side). A probe that cannot judge (a
//! role that cannot connect, a stream that is missing) fails with the reason: a probe passes only
//! on the refusal it looks for. The probes write nothing to the run's streams unless the profile is
//! loosened (a test's `Loosening`), in which case what got through is exactly what the probe
//! reports; so the run calls this after its stream checks.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::monitor;
use crate::cluster::rogue::{RogueRoutes, RogueServer, RogueVantage, ROGUE_NAME};
use crate::cluster::ClusterEndpoints;
use crate::security::{pki, profile::PUBLISHER_DOMAINS, ClientAuth, Profile, Role};

/// How long a probe waits for an answer that a refusal never sends (an ack, an API reply).
const REFUSAL_WAIT: Duration = Duration::from_secs(2);
/// How long the admin's own requests may take (a busy cluster answers a stream create slowly).
const ADMIN_WAIT: Duration = Duration::from_secs(10);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the route probe watches `/routez` for the rogue. A route that is let in shows within
/// a second; five leave room for a busy machine.
const ROUTE_WATCH: Duration = Duration::from_secs(5);
/// The stream the stream-admin probe tries to purge and delete (memory, one replica, one
/// message), made and removed by the admin; the admin may publish to `_AIVO.>`.
pub const PROBE_STREAM: &str = "AIVO_SECURITY_PROBE";
const PROBE_SUBJECTS: &str = "_AIVO.security-probe.>";
const PROBE_SUBJECT: &str = "_AIVO.security-probe.kept";

/// One probe: what it tried and what the cluster did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// `unauthenticated`, `plaintext`, `cross-domain-publish`, `publisher-stream-admin`,
    /// `indexer-publish-focus`, `rogue-route`.
    pub name: String,
    /// The cluster refused what it should have.
    pub passed: bool,
    /// What was tried and what came back.
    pub detail: String,
}

impl Probe {
    fn new(name: &str, passed: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            passed,
            detail: detail.into(),
        }
    }
}

/// The security check: every probe, passed when all are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityCheck {
    pub passed: bool,
    pub detail: String,
    pub probes: Vec<Probe>,
}

impl SecurityCheck {
    fn judge(probes: Vec<Probe>) -> Self {
        let failed: Vec<&str> = probes
            .iter()
            .filter(|p| !p.passed)
            .map(|p| p.name.as_str())
            .collect();
        let detail = if failed.is_empty() {
            format!("all {} probes were refused", probes.len())
        } else {
            format!("let through: {}", failed.join(", "))
        };
        Self {
            passed: failed.is_empty(),
            detail,
            probes,
        }
    }

    fn unjudged(reason: String) -> Self {
        Self {
            passed: false,
            detail: format!("cannot probe: {reason}"),
            probes: Vec::new(),
        }
    }
}

/// Probes a production-profile cluster; `None` when the cluster has no profile of aivo-load's
/// (an open cluster, or an external one: `verify --production` audits those). The route probe's
/// rogue server lives under `work_dir` and runs from `vantage` (`Cluster::rogue_vantage`).
pub async fn audit(
    endpoints: &ClusterEndpoints,
    vantage: &RogueVantage,
    work_dir: &Path,
) -> Option<SecurityCheck> {
    let profile = match endpoints.profile() {
        Ok(None) => return None,
        Ok(Some(profile)) => profile,
        Err(e) => return Some(SecurityCheck::unjudged(e.to_string())),
    };
    let Some(url) = endpoints.nodes.first().map(|n| n.client_url.clone()) else {
        return Some(SecurityCheck::unjudged("the cluster has no node".into()));
    };
    let probes = tokio::join!(
        unauthenticated(&url, &profile),
        plaintext(&url, &profile),
        refused_publish(
            "cross-domain-publish",
            &url,
            &profile,
            Role::Publisher("focus".into()),
            "learning.x",
            "LEARNING"
        ),
        publisher_stream_admin(&url, &profile),
        refused_publish(
            "indexer-publish-focus",
            &url,
            &profile,
            Role::Indexer,
            "focus.aivo-security-probe",
            "FOCUS"
        ),
        rogue_route(endpoints, vantage, &profile, work_dir),
    );
    Some(SecurityCheck::judge(vec![
        probes.0, probes.1, probes.2, probes.3, probes.4, probes.5,
    ]))
}

/// A connection and the errors the server sent it (`-ERR 'Permissions Violation ...'` arrives as
/// an event, not as the failed call's error).
struct Probing {
    client: async_nats::Client,
    server_errors: Arc<Mutex<Vec<String>>>,
}

impl Probing {
    fn violations(&self) -> Vec<String> {
        self.server_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| e.to_lowercase().contains("permissions violation"))
            .cloned()
            .collect()
    }

    /// The violations, waiting up to a second for the first (the event may trail the timeout).
    async fn violations_within_a_second(&self) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let seen = self.violations();
            if !seen.is_empty() || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A JetStream context that waits `timeout` for an answer: [`REFUSAL_WAIT`] for a request
    /// that should be refused, [`ADMIN_WAIT`] for the admin's own.
    fn jetstream(&self, timeout: Duration) -> jetstream::Context {
        let mut js = jetstream::new(self.client.clone());
        js.set_timeout(timeout);
        js
    }
}

async fn connect(url: &str, auth: &ClientAuth) -> Result<Probing, String> {
    let server_errors = Arc::new(Mutex::new(Vec::new()));
    let sink = server_errors.clone();
    let options = async_nats::ConnectOptions::new()
        .name("aivo-load security probe")
        .connection_timeout(CONNECT_TIMEOUT)
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(e.to_string());
                }
            }
        });
    let options = auth.apply(options).await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, options.connect(url)).await {
        Ok(Ok(client)) => Ok(Probing {
            client,
            server_errors,
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", CONNECT_TIMEOUT * 2)),
    }
}

async fn connect_as(url: &str, profile: &Profile, role: &Role) -> Result<Probing, String> {
    let auth = profile.client_auth(role).map_err(|e| e.to_string())?;
    connect(url, &auth)
        .await
        .map_err(|e| format!("cannot connect as {}: {e}", role.name()))
}

/// Probe 1: TLS, the CA and the admin's client certificate, but no nkey.
async fn unauthenticated(url: &str, profile: &Profile) -> Probe {
    const NAME: &str = "unauthenticated";
    let anonymous = match profile.client_auth(&Role::Admin) {
        Ok(admin) => ClientAuth {
            nkey: None,
            ..admin
        },
        Err(e) => return Probe::new(NAME, false, format!("cannot judge: {e}")),
    };
    match connect(url, &anonymous).await {
        Ok(_) => Probe::new(
            NAME,
            false,
            "a TLS connection with a valid client certificate and no identity was accepted \
             (a no_auth_user?)",
        ),
        Err(reason) if reason.to_lowercase().contains("authoriz") => Probe::new(
            NAME,
            true,
            format!("a connection without an identity was refused: {reason}"),
        ),
        Err(reason) => Probe::new(
            NAME,
            false,
            format!("refused, but not for authorization (cannot judge): {reason}"),
        ),
    }
}

/// Probe 2: plaintext TCP, `CONNECT` signed with the admin's nkey, then `PING`. Spoken raw: a
/// NATS client would upgrade to TLS on seeing `tls_required`.
async fn plaintext(url: &str, profile: &Profile) -> Probe {
    const NAME: &str = "plaintext";
    match plaintext_session(url, profile).await {
        Ok(session) if session.served => Probe::new(
            NAME,
            false,
            format!(
                "a plaintext client was served (INFO tls_required: {}; answered {})",
                session.tls_required, session.answer
            ),
        ),
        Ok(session) => Probe::new(
            NAME,
            true,
            format!(
                "INFO tls_required: {}; a plaintext CONNECT with the admin's nkey and a PING got {}",
                session.tls_required, session.answer
            ),
        ),
        Err(reason) => Probe::new(NAME, false, format!("cannot judge: {reason}")),
    }
}

struct PlaintextSession {
    tls_required: bool,
    /// A PONG came back.
    served: bool,
    /// What the server said after its INFO, printable characters only.
    answer: String,
}

async fn plaintext_session(url: &str, profile: &Profile) -> Result<PlaintextSession, String> {
    let addr = url
        .trim_start_matches("nats://")
        .trim_start_matches("tls://");
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: no TCP connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    while !seen.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return Err("the server sent no INFO".into()),
        }
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    let line = text.lines().next().unwrap_or_default();
    let info: serde_json::Value = serde_json::from_str(line.trim_start_matches("INFO ").trim())
        .map_err(|e| format!("an INFO that is not JSON ({e}): {line}"))?;
    let tls_required = info["tls_required"].as_bool().unwrap_or(false);
    let admin = profile
        .client_auth(&Role::Admin)
        .map_err(|e| e.to_string())?;
    let mut connect = serde_json::json!({
        "verbose": false, "pedantic": false, "tls_required": false, "lang": "rust",
        "version": "aivo-load", "protocol": 1, "name": "aivo-load plaintext probe",
    });
    if let (Some(nonce), Some(seed)) = (info["nonce"].as_str(), admin.nkey.as_deref()) {
        let seed = crate::security::client::read_nkey_seed(seed).map_err(|e| e.to_string())?;
        let pair = nkeys::KeyPair::from_seed(&seed).map_err(|e| e.to_string())?;
        let signature = pair.sign(nonce.as_bytes()).map_err(|e| e.to_string())?;
        use base64::Engine as _;
        connect["nkey"] = pair.public_key().into();
        connect["sig"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(signature)
            .into();
    }
    let _ = stream
        .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await;
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + REFUSAL_WAIT;
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let printable: String = String::from_utf8_lossy(&answer)
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(60)
        .collect();
    let served = printable.contains("PONG");
    let answer = match (printable.is_empty(), closed) {
        (true, true) => "no answer: the server closed the connection".to_string(),
        (true, false) => format!("no answer within {REFUSAL_WAIT:?}"),
        (false, closed) => format!(
            "\"{printable}\"{}",
            if closed {
                ", then the server closed"
            } else {
                ""
            }
        ),
    };
    Ok(PlaintextSession {
        tls_required,
        served,
        answer,
    })
}

/// Probes 3 and 5: `role` publishes to `subject` (which `stream` would store): refused with a
/// Permissions Violation, no ack, nothing stored.
async fn refused_publish(
    name: &str,
    url: &str,
    profile: &Profile,
    role: Role,
    subject: &str,
    stream: &str,
) -> Probe {
    let (admin, client) = match tokio::join!(
        connect_as(url, profile, &Role::Admin),
        connect_as(url, profile, &role)
    ) {
        (Ok(admin), Ok(client)) => (admin, client),
        (Err(e), _) | (_, Err(e)) => return Probe::new(name, false, format!("cannot judge: {e}")),
    };
    let stored_in = match admin.jetstream(ADMIN_WAIT).get_stream(stream).await {
        Ok(stored_in) => stored_in,
        Err(e) => {
            return Probe::new(
                name,
                false,
                format!("cannot judge: the stream {stream} that would store {subject}: {e}"),
            )
        }
    };
    let payload = r#"{"probe":"aivo-load security check"}"#;
    let ack = match client
        .jetstream(REFUSAL_WAIT)
        .publish(subject.to_string(), payload.into())
        .await
    {
        Ok(ack) => ack.await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let violations = client.violations_within_a_second().await;
    let stored = match stored_in.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Some(format!("stored as {stream} sequence {}", message.sequence)),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
        Err(e) => Some(format!("cannot read {stream} back: {e}")),
    };
    let who = role.name();
    match (ack, stored, violations.first()) {
        (Err(_), None, Some(violation)) => Probe::new(
            name,
            true,
            format!("{who}'s publish to {subject} was refused ({violation}); nothing in {stream}"),
        ),
        (Ok(ack), _, _) => Probe::new(
            name,
            false,
            format!(
                "{who}'s publish to {subject} was acknowledged ({} sequence {})",
                ack.stream, ack.sequence
            ),
        ),
        (_, Some(stored), _) => Probe::new(
            name,
            false,
            format!("{who}'s publish to {subject}: {stored}"),
        ),
        (Err(e), None, None) => Probe::new(
            name,
            false,
            format!(
                "{who}'s publish to {subject} got no ack ({e}) but the server named no \
                 Permissions Violation (cannot judge)"
            ),
        ),
    }
}

/// Probe 4: every domain publisher asks the JetStream API to purge, then delete, a probe stream.
async fn publisher_stream_admin(url: &str, profile: &Profile) -> Probe {
    const NAME: &str = "publisher-stream-admin";
    let admin = match connect_as(url, profile, &Role::Admin).await {
        Ok(admin) => admin.jetstream(ADMIN_WAIT),
        Err(e) => return Probe::new(NAME, false, format!("cannot judge: {e}")),
    };
    if let Err(e) = make_probe_stream(&admin).await {
        return Probe::new(NAME, false, format!("cannot judge: {e}"));
    }
    let attempts = futures::future::join_all(
        PUBLISHER_DOMAINS
            .iter()
            .map(|domain| stream_admin_attempt(url, profile, domain)),
    )
    .await;
    let messages = match admin.get_stream(PROBE_STREAM).await {
        Ok(mut stream) => match stream.info().await {
            Ok(info) => Ok(info.state.messages),
            Err(e) => Err(format!("{PROBE_STREAM} unreadable afterwards: {e}")),
        },
        Err(e) => Err(format!("{PROBE_STREAM} gone afterwards: {e}")),
    };
    let _ = admin.delete_stream(PROBE_STREAM).await;
    let mut granted = Vec::new();
    let mut refusals = Vec::new();
    for attempt in attempts {
        match attempt {
            Ok(outcome) => {
                granted.extend(outcome.granted);
                refusals.extend(outcome.violations);
            }
            Err(e) => return Probe::new(NAME, false, format!("cannot judge: {e}")),
        }
    }
    match messages {
        Ok(1) if granted.is_empty() && refusals.len() >= 2 * PUBLISHER_DOMAINS.len() => Probe::new(
            NAME,
            true,
            format!(
                "{} publishers' purge and delete of {PROBE_STREAM} drew no answer ({}); it kept its \
                 message",
                PUBLISHER_DOMAINS.len(),
                refusals.first().map(String::as_str).unwrap_or_default()
            ),
        ),
        Ok(messages) if granted.is_empty() => Probe::new(
            NAME,
            false,
            format!(
                "no publisher was answered, but {PROBE_STREAM} holds {messages} of 1 message and \
                 {} of {} requests named a Permissions Violation (cannot judge)",
                refusals.len(),
                2 * PUBLISHER_DOMAINS.len()
            ),
        ),
        Ok(_) | Err(_) => Probe::new(
            NAME,
            false,
            format!(
                "granted: {}; afterwards: {}",
                granted.join("; "),
                match messages {
                    Ok(m) => format!("{PROBE_STREAM} holds {m} of 1 message"),
                    Err(e) => e,
                }
            ),
        ),
    }
}

async fn make_probe_stream(admin: &jetstream::Context) -> Result<(), String> {
    let _ = admin.delete_stream(PROBE_STREAM).await;
    admin
        .create_stream(jetstream::stream::Config {
            name: PROBE_STREAM.into(),
            subjects: vec![PROBE_SUBJECTS.into()],
            storage: jetstream::stream::StorageType::Memory,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("the admin cannot make {PROBE_STREAM}: {e}"))?;
    admin
        .publish(PROBE_SUBJECT, "kept".into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| format!("the admin's message to {PROBE_STREAM}: {e}"))?;
    Ok(())
}

struct StreamAdminAttempt {
    /// Requests the API answered with success.
    granted: Vec<String>,
    /// Permissions Violations the server sent.
    violations: Vec<String>,
}

async fn stream_admin_attempt(
    url: &str,
    profile: &Profile,
    domain: &str,
) -> Result<StreamAdminAttempt, String> {
    let role = Role::Publisher(domain.to_string());
    let publisher = connect_as(url, profile, &role).await?;
    let mut granted = Vec::new();
    for action in ["PURGE", "DELETE"] {
        let subject = format!("$JS.API.STREAM.{action}.{PROBE_STREAM}");
        let answer = tokio::time::timeout(
            REFUSAL_WAIT,
            publisher.client.request(subject.clone(), "".into()),
        )
        .await;
        if let Ok(Ok(message)) = answer {
            let reply: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or_default();
            if reply["success"].as_bool() == Some(true) {
                granted.push(format!(
                    "{} {action} answered {}",
                    role.name(),
                    String::from_utf8_lossy(&message.payload)
                ));
            }
        }
    }
    let violations = publisher.violations_within_a_second().await;
    Ok(StreamAdminAttempt {
        granted,
        violations,
    })
}

/// Probe 6: a rogue server with a self-signed route certificate tries every node's route port,
/// from where the backend says route ports are reached (`vantage`).
async fn rogue_route(
    endpoints: &ClusterEndpoints,
    vantage: &RogueVantage,
    profile: &Profile,
    work_dir: &Path,
) -> Probe {
    const NAME: &str = "rogue-route";
    let mut cluster_name = String::new();
    let mut routes = Vec::new();
    let mut tls_routes = true;
    for node in &endpoints.nodes {
        let varz = match monitor::varz(&node.monitor_url).await {
            Ok(varz) => varz,
            Err(e) => return Probe::new(NAME, false, format!("cannot judge: {}: {e}", node.name)),
        };
        let host: IpAddr = match varz.cluster.addr.parse() {
            Ok(ip) if !IpAddr::is_unspecified(&ip) => ip,
            _ => IpAddr::from([127, 0, 0, 1]),
        };
        cluster_name = varz.cluster.name;
        tls_routes &= varz.cluster.tls_required;
        routes.push(SocketAddr::new(host, varz.cluster.cluster_port).to_string());
    }
    if let RogueVantage::Container {
        routes: in_network, ..
    } = vantage
    {
        routes = in_network.clone();
    }
    let dir = work_dir.join("rogue");
    let cert = match pki::self_signed(&dir, ROGUE_NAME, &["127.0.0.1", "localhost", ROGUE_NAME]) {
        Ok(cert) => cert,
        Err(e) => return Probe::new(NAME, false, format!("cannot judge: {e}")),
    };
    // Given routes without TLS, the rogue speaks plaintext: it tries what would work.
    let join = RogueRoutes {
        cluster_name: &cluster_name,
        routes: &routes,
        cert: tls_routes.then_some(&cert),
        trust: profile.ca(),
    };
    let credential = if tls_routes {
        "a self-signed route certificate"
    } else {
        "plaintext routes (what the nodes' /varz offer)"
    };
    let mut rogue = match RogueServer::start(&dir, &join, vantage).await {
        Ok(rogue) => rogue,
        Err(e) => return Probe::new(NAME, false, format!("cannot judge: {e}")),
    };
    let deadline = tokio::time::Instant::now() + ROUTE_WATCH;
    let joined = loop {
        let mut joined = Vec::new();
        for node in &endpoints.nodes {
            if let Ok(routez) = monitor::routez(&node.monitor_url).await {
                if routez.routes.iter().any(|r| r.remote_name == ROGUE_NAME) {
                    joined.push(node.name.clone());
                }
            }
        }
        if !joined.is_empty() || tokio::time::Instant::now() >= deadline {
            break joined;
        }
        if let Some(status) = rogue.exited().await {
            let log = rogue.log_tail().await;
            rogue.stop().await;
            return Probe::new(
                NAME,
                false,
                format!("cannot judge: the rogue server exited ({status}): {log}"),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let log = rogue.log_tail().await;
    rogue.stop().await;
    let refusal = log
        .lines()
        .rev()
        // The node refuses the rogue's certificate in the TLS handshake, so the rogue sees its
        // route connection closed (a read error) or a TLS error.
        .find(|l| {
            l.contains("[ERR]")
                || l.contains("connection closed")
                || l.to_lowercase().contains("tls")
        })
        .map(|l| l.split("] ").last().unwrap_or(l).trim().to_string());
    if !joined.is_empty() {
        return Probe::new(
            NAME,
            false,
            format!(
                "a server with {credential} joined: {ROGUE_NAME} in the /routez of {}",
                joined.join(", ")
            ),
        );
    }
    match refusal {
        Some(refusal) => Probe::new(
            NAME,
            true,
            format!(
                "{ROGUE_NAME} ({credential}) tried {} route ports for {:?} and never appeared in a node's /routez; the rogue's log: {refusal}",
                routes.len(),
                ROUTE_WATCH
            ),
        ),
        None => Probe::new(
            NAME,
            false,
            format!(
                "{ROGUE_NAME} never appeared in a node's /routez, but its log shows no refused \
                 route either (cannot judge): {log}"
            ),
        ),
    }
}
