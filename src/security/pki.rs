//! The production profile's certificates: a CA made at cluster start, a certificate per node
//! (server and client auth, so the same one serves client TLS and both ends of a mutual-TLS route)
//! and one per user (client auth). Written as PEM under the profile's dir, private keys 0600.
//!
//! ECDSA P-256 keys from `rcgen` (ring). Every cluster start makes a new CA: certificates live as
//! long as the cluster's dir, so there is nothing to rotate or revoke.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use super::SecurityError;

/// How long a certificate made here is valid. A cluster's certificates are made when it starts;
/// a soak of days stays far inside a year.
const VALIDITY: time::Duration = time::Duration::days(365);

/// A certificate and its private key as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What one certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A node: TLS server for clients and routes, and TLS client when it solicits a route.
    Node,
    /// A user's client certificate.
    Client,
}

/// A CA that signs the cluster's certificates; its key stays in memory only while it signs.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    /// `ca.pem`.
    pub cert: PathBuf,
}

impl CertificateAuthority {
    /// A new CA (`CN=aivo-load <name> CA`), its certificate written to `<dir>/ca.pem` (its key
    /// to `ca-key.pem`, 0600, for whoever wants to sign more certificates later).
    pub fn create(dir: &Path, name: &str) -> Result<Self, SecurityError> {
        fs::create_dir_all(dir).map_err(SecurityError::io(dir))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&format!("aivo-load {name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params);
        let key = KeyPair::generate().map_err(SecurityError::cert("CA key"))?;
        let key_pem = key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(params.clone(), key)
            .map_err(SecurityError::cert("CA certificate"))?;
        let cert = dir.join("ca.pem");
        write_public(&cert, &ca.pem())?;
        write_private(&dir.join("ca-key.pem"), &key_pem)?;
        let key = KeyPair::from_pem(&key_pem).map_err(SecurityError::cert("CA key"))?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert,
        })
    }

    /// A certificate for `name` signed by this CA, written to `<dir>/<name>.pem` and
    /// `<dir>/<name>-key.pem` (0600). `sans` are DNS names or IP addresses; a node's must name
    /// every host clients and peers reach it by.
    pub fn issue(
        &self,
        dir: &Path,
        name: &str,
        sans: &[&str],
        usage: Usage,
    ) -> Result<CertFiles, SecurityError> {
        fs::create_dir_all(dir).map_err(SecurityError::io(dir))?;
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params =
            CertificateParams::new(sans).map_err(SecurityError::cert("subject alt names"))?;
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match usage {
            // Routes verify both ends, and a node is the TLS client of the routes it solicits.
            Usage::Node => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let key = KeyPair::generate().map_err(SecurityError::cert("key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(SecurityError::cert("certificate"))?;
        let files = CertFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        write_public(&files.cert, &cert.pem())?;
        write_private(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

/// A certificate for `name` signed by nobody but itself (node usage): what a rogue node that
/// never saw the CA would present.
pub fn self_signed(dir: &Path, name: &str, sans: &[&str]) -> Result<CertFiles, SecurityError> {
    let rogue = CertificateAuthority::create(&dir.join(format!("{name}-own-ca")), name)?;
    rogue.issue(dir, name, sans, Usage::Node)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "aivo-load");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams) {
    // A minute back: a clock a little behind another process's must not see "not yet valid".
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + VALIDITY;
}

fn write_public(path: &Path, pem: &str) -> Result<(), SecurityError> {
    fs::write(path, pem).map_err(SecurityError::io(path))
}

/// Writes a secret (a key, an nkey seed) readable by its owner only: created 0600, never wider
/// for a moment; an existing file is replaced, not rewritten in place.
pub fn write_private(path: &Path, text: &str) -> Result<(), SecurityError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SecurityError::io(path)(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(SecurityError::io(path))?;
    file.write_all(text.as_bytes())
        .map_err(SecurityError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_signs_node_and_client_certificates_with_private_keys_0600() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = CertificateAuthority::create(dir.path(), "test").expect("CA");
        let node = ca
            .issue(
                dir.path(),
                "nats1",
                &["127.0.0.1", "localhost", "nats1"],
                Usage::Node,
            )
            .expect("node cert");
        let user = ca
            .issue(dir.path(), "admin", &["admin"], Usage::Client)
            .expect("user cert");
        for key in [&node.key, &user.key, &dir.path().join("ca-key.pem")] {
            let mode = fs::metadata(key).expect("key").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        // Read the certificates back with an X.509 parser: issuer, SANs, usages.
        let parse = |path: &Path| {
            let pem = fs::read_to_string(path).expect("pem");
            let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
            pem.contents
        };
        let ca_der = parse(&ca.cert);
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).expect("CA");
        assert!(ca_cert.is_ca());
        let node_der = parse(&node.cert);
        let (_, node_cert) = x509_parser::parse_x509_certificate(&node_der).expect("node");
        assert_eq!(node_cert.issuer(), ca_cert.subject());
        node_cert
            .verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        let eku = node_cert
            .extended_key_usage()
            .expect("EKU")
            .expect("present")
            .value;
        assert!(eku.server_auth && eku.client_auth, "{eku:?}");
        let sans: Vec<String> = node_cert
            .subject_alternative_name()
            .expect("SAN")
            .expect("present")
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        for want in [
            "IPAddress(7f:00:00:01)",
            "DNSName(localhost)",
            "DNSName(nats1)",
        ] {
            assert!(sans.iter().any(|s| s == want), "{want} in {sans:?}");
        }
        let user_der = parse(&user.cert);
        let (_, user_cert) = x509_parser::parse_x509_certificate(&user_der).expect("user");
        let eku = user_cert
            .extended_key_usage()
            .expect("EKU")
            .expect("present")
            .value;
        assert!(eku.client_auth && !eku.server_auth, "{eku:?}");
    }

    #[test]
    fn a_self_signed_certificate_is_not_the_cas() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = CertificateAuthority::create(dir.path(), "test").expect("CA");
        let rogue = self_signed(dir.path(), "rogue", &["127.0.0.1"]).expect("rogue");
        let ca_pem = fs::read_to_string(&ca.cert).expect("ca");
        let rogue_pem = fs::read_to_string(&rogue.cert).expect("rogue");
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).expect("PEM");
        let (_, rogue_pem) = x509_parser::pem::parse_x509_pem(rogue_pem.as_bytes()).expect("PEM");
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_pem.contents).expect("CA");
        let (_, rogue_cert) =
            x509_parser::parse_x509_certificate(&rogue_pem.contents).expect("rogue");
        assert!(rogue_cert
            .verify_signature(Some(ca_cert.public_key()))
            .is_err());
    }
}
