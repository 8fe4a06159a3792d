//! The production profile (the seed's "Production Considerations"): TLS on every client connection
//! and mutual TLS on routes, one account `AIVO` with JetStream beside the system account `SYS`,
//! no `no_auth_user`, and one user per role with least-privilege permissions.
//!
//! **Users are nkeys, not user/password.** A node's config then holds only public keys (configs sit
//! in run dirs that CI uploads as artifacts), each role's seed is a 0600 file beside its client
//! certificate, and the server authenticates by a signed challenge, so no secret crosses even a
//! TLS connection. The nats CLI takes the same seed file (`nats --nkey`, a context's `nkey`).
//!
//! [`Profile::create`] makes everything under one dir (`<cluster dir>/security/`); [`Profile::open`]
//! reads it back from any process (a `cluster up` supervisor's clients, `heal`, a test).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pki::{self, CertFiles, CertificateAuthority, Usage};
use super::{ClientAuth, SecurityError};

/// The file that lists the profile's users and certificates.
const PROFILE_FILE: &str = "profile.json";

/// The account the streams live in.
pub const ACCOUNT: &str = "AIVO";
/// The system account.
pub const SYSTEM_ACCOUNT: &str = "SYS";

/// The event domains a publisher role exists for (`traffic::Domain`'s names; a unit test keeps
/// them equal).
pub const PUBLISHER_DOMAINS: [&str; 4] = ["learning", "focus", "homework", "recommendation"];

/// The streams the indexer reads (the seed's five) and the two analytics reads.
const INDEXER_STREAMS: [&str; 5] = ["LEARNING", "FOCUS", "HOMEWORK", "RECOMMENDATION", "DLQ"];
const ANALYTICS_STREAMS: [&str; 2] = ["LEARNING", "FOCUS"];

/// Who connects, and so what it may do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// AIVO's producer of one domain (`focus`, ...): publishes its domain's events.
    Publisher(String),
    /// The reference indexer: its durable on every stream, dead letters to `dlq.>`.
    Indexer,
    /// The reference analytics consumer: its durable on LEARNING and FOCUS.
    Analytics,
    /// Stream and consumer management (`init`, `verify`) and the run's read-back and checks.
    Admin,
    /// The system account's user (server events, `$SYS` requests).
    System,
}

/// What a role may publish and subscribe to (allow lists: everything else is denied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Role {
    /// Every role of the profile, publishers first.
    pub fn all() -> Vec<Role> {
        let mut roles: Vec<Role> = PUBLISHER_DOMAINS
            .iter()
            .map(|d| Role::Publisher(d.to_string()))
            .collect();
        roles.extend([Role::Indexer, Role::Analytics, Role::Admin, Role::System]);
        roles
    }

    /// The role of a name as [`Role::name`] writes it.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::all().into_iter().find(|r| r.name() == name)
    }

    /// `publisher-focus`, `indexer`, ... (file names and certificate CNs).
    pub fn name(&self) -> String {
        match self {
            Role::Publisher(domain) => format!("publisher-{domain}"),
            Role::Indexer => "indexer".into(),
            Role::Analytics => "analytics".into(),
            Role::Admin => "admin".into(),
            Role::System => "system".into(),
        }
    }

    /// The account the role's user belongs to.
    pub fn account(&self) -> &'static str {
        match self {
            Role::System => SYSTEM_ACCOUNT,
            _ => ACCOUNT,
        }
    }

    /// Least privilege for the role. `None`: unrestricted within its account (the system user).
    ///
    /// Every role may subscribe to `_INBOX.>`, where replies come (a JetStream publish's ack, an
    /// API answer, a pull consumer's messages). A publisher needs nothing else: a plain JetStream
    /// publish goes to the subject itself and its ack comes back on the inbox; `$JS.API` is not
    /// needed. A consumer's rights name its own durable only.
    pub fn permissions(&self) -> Option<Permissions> {
        let inbox = vec!["_INBOX.>".to_string()];
        let consumer = |name: &str, streams: &[&str]| {
            let mut publish = vec![
                // `connect` waits until JetStream answers for the account.
                "$JS.API.INFO".to_string(),
                "dlq.>".to_string(),
            ];
            for stream in streams {
                publish.extend([
                    format!("$JS.API.STREAM.INFO.{stream}"),
                    format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
                    format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
                    // The original of a dead letter, fetched by sequence.
                    format!("$JS.API.STREAM.MSG.GET.{stream}"),
                    format!("$JS.API.DIRECT.GET.{stream}"),
                    format!("$JS.ACK.{stream}.{name}.>"),
                ]);
            }
            let mut subscribe = inbox.clone();
            subscribe.push(format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.*.{name}"
            ));
            Permissions { publish, subscribe }
        };
        match self {
            Role::Publisher(domain) => Some(Permissions {
                publish: vec![format!("{domain}.>")],
                subscribe: inbox,
            }),
            Role::Indexer => Some(consumer("indexer", &INDEXER_STREAMS)),
            Role::Analytics => Some(consumer("analytics", &ANALYTICS_STREAMS)),
            Role::Admin => Some(Permissions {
                publish: vec![
                    "$JS.API.>".into(),
                    // Acks and flow control of the read-back's and the DLQ check's consumers.
                    "$JS.ACK.>".into(),
                    "$JS.FC.>".into(),
                    // The latency fault's round-trip probe.
                    "_AIVO.>".into(),
                    // A stream snapshot's chunk acks and a restore's chunks (the drill).
                    "$JS.SNAPSHOT.>".into(),
                    // A segmented run's worker probes its clock offset into a stream of its own
                    // (`AIVO_LOAD_CLOCK`, `run/clock.rs`), never the scenario's streams.
                    "aivo_load_clock.>".into(),
                ],
                subscribe: vec!["_INBOX.>".into(), "$JS.EVENT.>".into(), "_AIVO.>".into()],
            }),
            Role::System => None,
        }
    }
}

/// A weakening of the profile made on purpose, so that a test can show a security probe
/// (`checks::security`) failing on the configuration it guards. No user-facing option sets one:
/// only the hidden, test-only `run --loosen` and `LocalClusterConfig::loosen`. A loosened profile
/// says so in `profile.json` and in a comment of every node config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loosening {
    /// `publisher-focus` may also publish to `learning.>`.
    FocusPublishesLearning,
    /// Every publisher may also call the stream API (`$JS.API.STREAM.>`: purge, delete).
    PublishersManageStreams,
    /// `indexer` may also publish to `focus.>`.
    IndexerPublishesFocus,
    /// `no_auth_user` names `publisher-focus`: a connection without an identity is that user.
    NoAuthUser,
    /// `allow_non_tls: true`: plaintext clients are accepted beside TLS ones.
    PlaintextClients,
    /// No `tls` block inside `cluster`: routes in plaintext, so a server needs no certificate to
    /// join. (`verify: false` on routes loosens nothing: nats-server 2.15 still refused a route
    /// peer with a self-signed certificate then, so it is not offered.)
    PlaintextRoutes,
}

impl Loosening {
    /// Every loosening, in the order the probes that catch them run.
    pub const ALL: [Loosening; 6] = [
        Self::NoAuthUser,
        Self::PlaintextClients,
        Self::FocusPublishesLearning,
        Self::PublishersManageStreams,
        Self::IndexerPublishesFocus,
        Self::PlaintextRoutes,
    ];

    /// The flag value (`no-auth-user`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::FocusPublishesLearning => "focus-publishes-learning",
            Self::PublishersManageStreams => "publishers-manage-streams",
            Self::IndexerPublishesFocus => "indexer-publishes-focus",
            Self::NoAuthUser => "no-auth-user",
            Self::PlaintextClients => "plaintext-clients",
            Self::PlaintextRoutes => "plaintext-routes",
        }
    }
}

impl std::str::FromStr for Loosening {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|l| l.name()).collect();
                format!("unknown loosening \"{text}\" ({})", names.join(", "))
            })
    }
}

/// One role's user: its nkey and client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UserFiles {
    /// The user's public nkey (`U...`), what the server config names.
    public_key: String,
    /// The seed, 0600.
    seed: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// The production profile's files, as [`Profile::create`] wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    dir: PathBuf,
    ca: PathBuf,
    /// Node name → its certificate (server and client auth).
    nodes: BTreeMap<String, (PathBuf, PathBuf)>,
    /// Role name → its user.
    users: BTreeMap<String, UserFiles>,
    /// What was weakened on purpose (tests only; empty for every real cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    loosened: Vec<Loosening>,
}

impl Profile {
    /// A new CA, a certificate per node (SANs `127.0.0.1`, `localhost` and the node's name, as the
    /// compose network calls it), and per role an nkey and a client certificate, under `dir`
    /// (replacing what was there); `profile.json` lists them.
    pub fn create(dir: &Path, nodes: &[String]) -> Result<Profile, SecurityError> {
        Self::create_loosened(dir, nodes, &[])
    }

    /// [`Profile::create`], weakened on purpose by `loosened` (a test's way to show a security
    /// probe failing).
    pub fn create_loosened(
        dir: &Path,
        nodes: &[String],
        loosened: &[Loosening],
    ) -> Result<Profile, SecurityError> {
        Self::create_with_aliases(dir, nodes, |_| Vec::new(), loosened)
    }

    /// [`Profile::create_loosened`] with more names in each node's certificate: `aliases(node)`
    /// are the other host names peers and clients reach that node by (the docker backend's
    /// `nats1-route`, the name its routes use on the cluster network).
    pub fn create_with_aliases(
        dir: &Path,
        nodes: &[String],
        aliases: impl Fn(&str) -> Vec<String>,
        loosened: &[Loosening],
    ) -> Result<Profile, SecurityError> {
        std::fs::create_dir_all(dir).map_err(SecurityError::io(dir))?;
        let dir = dir.canonicalize().map_err(SecurityError::io(dir))?;
        let ca = CertificateAuthority::create(&dir, "cluster")?;
        let mut node_certs = BTreeMap::new();
        for node in nodes {
            let aliases = aliases(node);
            let mut sans = vec!["127.0.0.1", "localhost", node.as_str()];
            sans.extend(aliases.iter().map(String::as_str));
            let files = ca.issue(&dir.join("nodes"), node, &sans, Usage::Node)?;
            node_certs.insert(node.clone(), (files.cert, files.key));
        }
        let users_dir = dir.join("users");
        let mut users = BTreeMap::new();
        for role in Role::all() {
            let name = role.name();
            let CertFiles { cert, key } = ca.issue(&users_dir, &name, &[&name], Usage::Client)?;
            let pair = nkeys::KeyPair::new_user();
            let seed_text = pair.seed().map_err(|e| SecurityError::Certificate {
                what: format!("nkey of {name}"),
                reason: e.to_string(),
            })?;
            let seed = users_dir.join(format!("{name}.nk"));
            pki::write_private(&seed, &format!("{seed_text}\n"))?;
            users.insert(
                name,
                UserFiles {
                    public_key: pair.public_key(),
                    seed,
                    cert,
                    key,
                },
            );
        }
        let profile = Profile {
            ca: ca.cert.clone(),
            dir: dir.clone(),
            nodes: node_certs,
            users,
            loosened: loosened.to_vec(),
        };
        let json = serde_json::to_string_pretty(&profile)
            .map_err(|e| SecurityError::Invalid(format!("cannot write {PROFILE_FILE}: {e}")))?;
        let path = dir.join(PROFILE_FILE);
        std::fs::write(&path, json).map_err(SecurityError::io(&path))?;
        Ok(profile)
    }

    /// The profile [`Profile::create`] wrote under `dir`.
    pub fn open(dir: &Path) -> Result<Profile, SecurityError> {
        let path = dir.join(PROFILE_FILE);
        let text = std::fs::read_to_string(&path).map_err(SecurityError::io(&path))?;
        serde_json::from_str(&text).map_err(|e| {
            SecurityError::Invalid(format!("{}: not a production profile: {e}", path.display()))
        })
    }

    /// Where the profile lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate every node and user certificate is signed by.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The options a client of `role` connects with: its nkey, its client certificate, the CA.
    pub fn client_auth(&self, role: &Role) -> Result<ClientAuth, SecurityError> {
        let user = self.users.get(&role.name()).ok_or_else(|| {
            SecurityError::Invalid(format!(
                "the production profile in {} has no user {}",
                self.dir.display(),
                role.name()
            ))
        })?;
        Ok(ClientAuth {
            nkey: Some(user.seed.clone()),
            tls_ca: Some(self.ca.clone()),
            tls_cert: Some(user.cert.clone()),
            tls_key: Some(user.key.clone()),
            ..ClientAuth::default()
        })
    }

    /// The same profile as seen where its dir is mounted at `to` (a container's
    /// `/etc/nats/security`): every file's path rebased from [`Profile::dir`] onto `to`, so the
    /// `tls` blocks it renders name the files where the container finds them.
    pub fn relocated(&self, to: &Path) -> Profile {
        let rebase = |path: &Path| match path.strip_prefix(&self.dir) {
            Ok(rest) => to.join(rest),
            Err(_) => path.to_path_buf(),
        };
        Profile {
            dir: to.to_path_buf(),
            ca: rebase(&self.ca),
            nodes: self
                .nodes
                .iter()
                .map(|(name, (cert, key))| (name.clone(), (rebase(cert), rebase(key))))
                .collect(),
            users: self
                .users
                .iter()
                .map(|(name, user)| {
                    let user = UserFiles {
                        public_key: user.public_key.clone(),
                        seed: rebase(&user.seed),
                        cert: rebase(&user.cert),
                        key: rebase(&user.key),
                    };
                    (name.clone(), user)
                })
                .collect(),
            loosened: self.loosened.clone(),
        }
    }

    /// A node's certificate and key files (what a container of that node must be given).
    pub fn node_files(&self, node: &str) -> Result<CertFiles, SecurityError> {
        let (cert, key) = self.node_cert(node)?;
        Ok(CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        })
    }

    /// What was weakened on purpose (empty but in tests).
    pub fn loosened(&self) -> &[Loosening] {
        &self.loosened
    }

    fn is_loosened(&self, loosening: Loosening) -> bool {
        self.loosened.contains(&loosening)
    }

    /// The client port's `tls` block for node `node`. `verify: true`: a client must present a
    /// certificate of our CA.
    pub fn tls_block(&self, node: &str, indent: usize) -> Result<String, SecurityError> {
        let (cert, key) = self.node_cert(node)?;
        Ok(tls_block(cert, key, &self.ca, true, indent))
    }

    /// The `tls` block inside `cluster` (mutual TLS on routes) for node `node`: a route peer
    /// must present a certificate of our CA, so a server with any other certificate cannot join
    /// (none with [`Loosening::PlaintextRoutes`]).
    pub fn route_tls_block(&self, node: &str, indent: usize) -> Result<String, SecurityError> {
        if self.is_loosened(Loosening::PlaintextRoutes) {
            return Ok(String::new());
        }
        self.tls_block(node, indent)
    }

    fn node_cert(&self, node: &str) -> Result<&(PathBuf, PathBuf), SecurityError> {
        self.nodes.get(node).ok_or_else(|| {
            SecurityError::Invalid(format!(
                "the production profile has no certificate for {node}"
            ))
        })
    }

    /// `role`'s permissions in this profile: [`Role::permissions`], widened by a loosening.
    fn permissions_of(&self, role: &Role) -> Option<Permissions> {
        let mut permissions = role.permissions()?;
        let mut widen = |loosening, subject: &str| {
            if self.is_loosened(loosening) {
                permissions.publish.push(subject.to_string());
            }
        };
        match role {
            Role::Publisher(domain) => {
                if domain == "focus" {
                    widen(Loosening::FocusPublishesLearning, "learning.>");
                }
                widen(Loosening::PublishersManageStreams, "$JS.API.STREAM.>");
            }
            Role::Indexer => widen(Loosening::IndexerPublishesFocus, "focus.>"),
            _ => {}
        }
        Some(permissions)
    }

    /// The `system_account` line and the `accounts` block: `AIVO` with JetStream and a user per
    /// role with its permissions, `SYS` with the system user. There is no `no_auth_user`, so a
    /// connection without an identity is refused. A loosened profile adds its `no_auth_user` or
    /// `allow_non_tls` line here, under a comment that says so.
    pub fn accounts_block(&self) -> String {
        let mut by_account: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for role in Role::all() {
            let Some(user) = self.users.get(&role.name()) else {
                continue;
            };
            let mut entry = format!(
                "      {{ # {}\n        nkey: {}\n",
                role.name(),
                quote(&user.public_key)
            );
            if let Some(permissions) = self.permissions_of(&role) {
                let list = |subjects: &[String]| {
                    subjects
                        .iter()
                        .map(|s| quote(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = write!(
                    entry,
                    "        permissions: {{\n          publish: {{ allow: [{}] }}\n          \
                     subscribe: {{ allow: [{}] }}\n        }}\n",
                    list(&permissions.publish),
                    list(&permissions.subscribe)
                );
            }
            entry.push_str("      }");
            by_account.entry(role.account()).or_default().push(entry);
        }
        let users = |account: &str| {
            by_account
                .get(account)
                .cloned()
                .unwrap_or_default()
                .join("\n")
        };
        let mut loosened = String::new();
        if !self.loosened.is_empty() {
            let names: Vec<&str> = self.loosened.iter().map(|l| l.name()).collect();
            let _ = writeln!(
                loosened,
                "# LOOSENED ON PURPOSE (a test of the security probes): {}",
                names.join(", ")
            );
        }
        if self.is_loosened(Loosening::NoAuthUser) {
            if let Some(user) = self.users.get(&Role::Publisher("focus".into()).name()) {
                let _ = writeln!(loosened, "no_auth_user: {}", quote(&user.public_key));
            }
        }
        if self.is_loosened(Loosening::PlaintextClients) {
            loosened.push_str("allow_non_tls: true\n");
        }
        format!(
            "{loosened}system_account: {SYSTEM_ACCOUNT}\n\
             accounts {{\n  {ACCOUNT} {{\n    jetstream: enabled\n    users: [\n{}\n    ]\n  }}\n  \
             {SYSTEM_ACCOUNT} {{\n    users: [\n{}\n    ]\n  }}\n}}\n",
            users(ACCOUNT),
            users(SYSTEM_ACCOUNT)
        )
    }
}

/// A nats-server `tls { }` block.
pub fn tls_block(cert: &Path, key: &Path, ca: &Path, verify: bool, indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}tls {{\n{pad}  cert_file: {}\n{pad}  key_file: {}\n{pad}  ca_file: {}\n{pad}  \
         verify: {verify}\n{pad}  timeout: 5\n{pad}}}\n",
        quote(&cert.to_string_lossy()),
        quote(&key.to_string_lossy()),
        quote(&ca.to_string_lossy()),
    )
}

/// A string as nats-server's config parser reads it literally (JSON quoting: `$` inside quotes is
/// not a variable).
fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_domains_are_the_traffic_domains() {
        let names: Vec<String> = crate::traffic::Domain::ALL
            .iter()
            .map(|d| {
                serde_json::to_value(d)
                    .expect("domain")
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(names, PUBLISHER_DOMAINS);
    }

    #[test]
    fn a_publisher_may_publish_only_its_domain_and_read_only_its_inbox() {
        let focus = Role::Publisher("focus".into())
            .permissions()
            .expect("restricted");
        assert_eq!(focus.publish, ["focus.>"]);
        assert_eq!(focus.subscribe, ["_INBOX.>"]);
        let indexer = Role::Indexer.permissions().expect("restricted");
        assert!(indexer.publish.contains(&"dlq.>".to_string()));
        assert!(indexer
            .publish
            .iter()
            .all(|s| !s.starts_with("focus.") && s != "$JS.API.>"));
        let analytics = Role::Analytics.permissions().expect("restricted");
        assert!(analytics.publish.iter().all(|s| !s.contains("HOMEWORK")));
    }

    #[test]
    fn the_profile_writes_users_with_permissions_and_reads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = vec!["nats1".to_string(), "nats2".to_string()];
        let profile = Profile::create(dir.path(), &nodes).expect("profile");
        let reopened = Profile::open(dir.path()).expect("open");
        assert_eq!(reopened, profile);
        let accounts = profile.accounts_block();
        assert!(accounts.contains("system_account: SYS"), "{accounts}");
        assert!(accounts.contains("jetstream: enabled"), "{accounts}");
        assert!(!accounts.contains("no_auth_user"), "{accounts}");
        assert!(
            accounts.contains("publish: { allow: [\"focus.>\"] }"),
            "{accounts}"
        );
        assert_eq!(accounts.matches("nkey: \"U").count(), Role::all().len());
        let admin = profile.client_auth(&Role::Admin).expect("admin");
        admin.validate().expect("every file exists");
        let tls = profile.tls_block("nats1", 2).expect("tls");
        assert!(tls.contains("verify: true"), "{tls}");
        assert!(profile.tls_block("nats9", 2).is_err());
    }

    #[test]
    fn a_relocated_profile_names_the_files_where_they_are_mounted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = vec!["nats1".to_string()];
        let profile =
            Profile::create_with_aliases(dir.path(), &nodes, |n| vec![format!("{n}-route")], &[])
                .expect("profile");
        let inside = profile.relocated(Path::new("/etc/nats/security"));
        let tls = inside.tls_block("nats1", 0).expect("tls");
        assert!(
            tls.contains("cert_file: \"/etc/nats/security/nodes/nats1.pem\""),
            "{tls}"
        );
        assert!(
            tls.contains("ca_file: \"/etc/nats/security/ca.pem\""),
            "{tls}"
        );
        assert_eq!(inside.accounts_block(), profile.accounts_block());
        // The alias is in the node's certificate.
        let pem =
            std::fs::read_to_string(profile.node_files("nats1").expect("files").cert).expect("pem");
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).expect("cert");
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .expect("SAN")
            .expect("present")
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert!(
            sans.contains(&"DNSName(nats1-route)".to_string()),
            "{sans:?}"
        );
    }
}
