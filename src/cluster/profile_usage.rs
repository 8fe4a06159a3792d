//! What `cluster up` prints for a production-profile cluster, whichever backend made it: the
//! admin's nats context (written beside the profile), the `nats context save` line, the
//! environment the nats CLI reads, and the aivo-load flags that reach the cluster as admin.

use super::endpoints::ClusterEndpoints;

/// For a production-profile cluster: the admin's nats context (written beside the profile, ready
/// to copy into `~/.config/nats/context/`), the `nats context save` line that makes it, and the
/// environment the nats CLI reads. aivo-load's own verbs aimed at this state dir find the
/// credentials by themselves.
pub fn production_usage(endpoints: &ClusterEndpoints) -> Option<String> {
    use crate::security::context::NatsContext;
    use crate::security::Role;
    let profile = match endpoints.profile() {
        Ok(profile) => profile?,
        Err(e) => return Some(format!("  (the production profile cannot be read: {e})\n")),
    };
    let server = endpoints.server_list();
    let admin = match profile.client_auth(&Role::Admin) {
        Ok(admin) => admin,
        Err(e) => return Some(format!("  (no admin user: {e})\n")),
    };
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let context = NatsContext::for_auth(
        "aivo-load production-profile cluster (admin)",
        &server,
        &admin,
    );
    let file = profile.dir().join("aivo-admin.json");
    let written = serde_json::to_string_pretty(&context)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&file, json));
    let mut out = String::new();
    out.push_str(&format!(
        "Production profile: TLS with client certificates, nkey users per role (credentials in {}).\n",
        profile.dir().display()
    ));
    if written.is_ok() {
        out.push_str(&format!(
            "  nats context (admin): {}\n    cp {} ~/.config/nats/context/aivo.json && nats --context aivo stream ls\n",
            file.display(),
            file.display()
        ));
    }
    out.push_str(&format!(
        "  nats context save aivo --server {server} --nkey {} --tlscert {} --tlskey {} --tlsca {}\n",
        path(&admin.nkey),
        path(&admin.tls_cert),
        path(&admin.tls_key),
        path(&admin.tls_ca)
    ));
    out.push_str(&format!(
        "  export NATS_NKEY={} NATS_CERT={} NATS_KEY={} NATS_CA={}\n",
        path(&admin.nkey),
        path(&admin.tls_cert),
        path(&admin.tls_key),
        path(&admin.tls_ca)
    ));
    out.push_str(&format!(
        "  aivo-load init --nkey {} --tls-cert {} --tls-key {} --tls-ca {}   (or no flags: found from the state dir)\n",
        path(&admin.nkey),
        path(&admin.tls_cert),
        path(&admin.tls_key),
        path(&admin.tls_ca)
    ));
    Some(out)
}
