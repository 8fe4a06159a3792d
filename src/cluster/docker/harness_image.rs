//! The image the docker backend's segmented workers run (`run --workers N --backend docker`):
//! `FROM scratch` plus this very `aivo-load` binary, the shared libraries `ldd` says it loads and
//! the program loader, each at the path the binary asks for. There is no registry to pull a base
//! image from, and no musl target to link a static binary with, so the image is made of exactly
//! what this machine runs the binary with: the worker in the container is the same build as the
//! coordinator, bit for bit.
//!
//! Besides them: an empty `/tmp` (1777) and an `/etc/nsswitch.conf` that resolves host names from
//! `/etc/hosts` and DNS (Docker's resolver names the compose services, `nats1`), with glibc's
//! `libnss_files` / `libnss_dns` copied when this machine has them as separate files.
//!
//! The image is rebuilt only when the binary changes (its size and modification time, a label), so
//! a test suite's runs build it once per build of the binary.
//!
//! The same image is what Kubernetes runs (`deploy/k8s/`): `aivo-load image build` makes it,
//! tags it (`--tag`) and writes it out as a `docker save` archive (`--save`) that `docker load`,
//! `kind load image-archive` or `ctr -n k8s.io images import` take where there is no registry
//! ([`tag`], [`save`]). One recipe, two users: a worker container here and a pod there run the
//! same bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptions};
use bollard::Docker;
use futures::StreamExt;

use super::DockerError;

/// The tag of the workers' image.
pub const HARNESS_IMAGE: &str = "aivo-load/aivo-load:local";

/// Label naming the binary inside (size and mtime), so a rebuilt binary means a rebuilt image.
const BINARY_LABEL: &str = "aivo-load.binary";

/// How long a build may take: the context is the binary (a debug build is ~250 MB) and a few
/// libraries, sent over the API socket and stored as one layer.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

const DOCKERFILE: &str =
    "# aivo-load's worker image (built by aivo-load through the Docker API, no registry):\n\
# the aivo-load binary, the shared libraries ldd names and the loader, at their own paths.\n\
FROM scratch\n\
COPY rootfs/ /\n\
ENV LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/lib\n\
ENTRYPOINT [\"/aivo-load\"]\n";

const NSSWITCH: &str = "hosts: files dns\n";

/// Glibc's name-service modules: loaded at run time (not in `ldd`'s list) where glibc keeps them
/// as separate files.
const NSS_MODULES: [&str; 2] = ["libnss_files.so.2", "libnss_dns.so.2"];

/// Builds [`HARNESS_IMAGE`] from `binary` unless it holds that binary already; whether it built.
pub async fn ensure(docker: &Docker, binary: &Path) -> Result<bool, DockerError> {
    let identity = identity(binary)?;
    let present =
        tokio::time::timeout(Duration::from_secs(10), docker.inspect_image(HARNESS_IMAGE))
            .await
            .ok()
            .and_then(Result::ok);
    let previous = present.as_ref().and_then(|image| image.id.clone());
    let present = present
        .and_then(|image| image.config)
        .and_then(|config| config.labels)
        .and_then(|labels| labels.get(BINARY_LABEL).cloned());
    if present.as_deref() == Some(identity.as_str()) {
        return Ok(false);
    }
    let context = build_context(binary)?;
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(HARNESS_IMAGE)
        .rm(true)
        .forcerm(true)
        .labels(&HashMap::from([(BINARY_LABEL.to_string(), identity)]))
        .build();
    let build = async {
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|source| DockerError::Api {
                call: format!("build image {HARNESS_IMAGE}"),
                source,
            })?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Image(format!(
                    "building {HARNESS_IMAGE} failed: {detail}"
                )));
            }
        }
        Ok(())
    };
    tokio::time::timeout(BUILD_TIMEOUT, build)
        .await
        .map_err(|_| DockerError::Timeout {
            call: format!("build image {HARNESS_IMAGE}"),
            timeout: BUILD_TIMEOUT,
        })??;
    eprintln!(
        "aivo-load: built {HARNESS_IMAGE} (FROM scratch + {} and its shared libraries)",
        binary.display()
    );
    // The image of the previous build is a quarter of a gigabyte nobody names any more; one a
    // container still runs stays (the engine refuses to remove it without force).
    if let Some(previous) = previous {
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            docker.remove_image(&previous, None::<RemoveImageOptions>, None),
        )
        .await;
    }
    Ok(true)
}

/// What the engine holds under a tag: the image's id and its size in bytes.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    pub id: String,
    pub size: u64,
}

/// The id and size of the image `name` names.
pub async fn facts(docker: &Docker, name: &str) -> Result<ImageFacts, DockerError> {
    let image = tokio::time::timeout(Duration::from_secs(10), docker.inspect_image(name))
        .await
        .map_err(|_| DockerError::Timeout {
            call: format!("inspect image {name}"),
            timeout: Duration::from_secs(10),
        })?
        .map_err(|source| DockerError::Api {
            call: format!("inspect image {name}"),
            source,
        })?;
    Ok(ImageFacts {
        id: image.id.unwrap_or_default(),
        size: image.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
    })
}

/// Splits `repo[:tag]` at the tag's colon (one after the last `/`: `host:5000/aivo-load` has
/// no tag); the tag defaults to `latest`, as `docker tag` does.
pub fn split_reference(reference: &str) -> Result<(&str, &str), DockerError> {
    let bad = |why: &str| DockerError::Image(format!("--tag {reference:?}: {why}"));
    if reference.is_empty() || reference.contains(char::is_whitespace) || reference.contains('@') {
        return Err(bad("give a name such as aivo-load:local or registry.example/aivo-load:1.2 (no spaces, no @digest)"));
    }
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match reference[slash..].rfind(':') {
        Some(colon) => reference.split_at(slash + colon),
        None => (reference, ":latest"),
    };
    let tag = &tag[1..];
    if repo.is_empty() || repo.ends_with('/') || tag.is_empty() {
        return Err(bad("a repository and a tag, as in aivo-load:local"));
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("a repository name is lower case"));
    }
    Ok((repo, tag))
}

/// Tags [`HARNESS_IMAGE`] as `reference` too (nothing to do when they are the same).
pub async fn tag(docker: &Docker, reference: &str) -> Result<(), DockerError> {
    let (repo, tag) = split_reference(reference)?;
    if format!("{repo}:{tag}") == HARNESS_IMAGE {
        return Ok(());
    }
    let options = bollard::query_parameters::TagImageOptionsBuilder::new()
        .repo(repo)
        .tag(tag)
        .build();
    tokio::time::timeout(
        Duration::from_secs(30),
        docker.tag_image(HARNESS_IMAGE, Some(options)),
    )
    .await
    .map_err(|_| DockerError::Timeout {
        call: format!("tag image {reference}"),
        timeout: Duration::from_secs(30),
    })?
    .map_err(|source| DockerError::Api {
        call: format!("tag image {HARNESS_IMAGE} as {reference}"),
        source,
    })
}

/// Writes the image `reference` names as a `docker save` archive (its `manifest.json` names the
/// tag, so `docker load` and `ctr images import` restore it under that name) into `to`: first
/// into a sibling `.partial` file, renamed when complete, so a failed save leaves no archive
/// that looks whole.
pub async fn save(docker: &Docker, reference: &str, to: &Path) -> Result<u64, DockerError> {
    use tokio::io::AsyncWriteExt;
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let io = |what: &str| DockerError::io(format!("cannot {what} {}", partial.display()));
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(io("create"))?;
    let write = async {
        let mut written = 0u64;
        let mut stream = docker.export_image(reference);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| DockerError::Api {
                call: format!("save image {reference}"),
                source,
            })?;
            file.write_all(&chunk).await.map_err(io("write"))?;
            written += chunk.len() as u64;
        }
        file.sync_all().await.map_err(io("sync"))?;
        Ok::<u64, DockerError>(written)
    };
    let written = match tokio::time::timeout(BUILD_TIMEOUT, write).await {
        Ok(Ok(written)) => written,
        Ok(Err(err)) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err);
        }
        Err(_) => {
            let _ = std::fs::remove_file(&partial);
            return Err(DockerError::Timeout {
                call: format!("save image {reference}"),
                timeout: BUILD_TIMEOUT,
            });
        }
    };
    std::fs::rename(&partial, to).map_err(DockerError::io(format!(
        "cannot rename {} to {}",
        partial.display(),
        to.display()
    )))?;
    Ok(written)
}

/// `<size>-<mtime in ns>` of the binary.
fn identity(binary: &Path) -> Result<String, DockerError> {
    let meta = std::fs::metadata(binary)
        .map_err(DockerError::io(format!("cannot read {}", binary.display())))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}-{mtime}", meta.len()))
}

/// The files `ldd BINARY` names: every `=> /path` and the loader's absolute path.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, DockerError> {
    let output = std::process::Command::new("ldd")
        .arg(binary)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            DockerError::Image(format!(
                "cannot run ldd on {}: {e} (install it: Debian's libc-bin)",
                binary.display()
            ))
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(DockerError::Image(format!(
            "ldd {} failed ({}): {}{}",
            binary.display(),
            output.status,
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, target)) => target.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The build context: the Dockerfile and `rootfs/` with the binary, its libraries and the loader.
fn build_context(binary: &Path) -> Result<Vec<u8>, DockerError> {
    let mut libraries = shared_libraries(binary)?;
    let lib_dirs: Vec<PathBuf> = libraries
        .iter()
        .filter_map(|l| l.parent().map(Path::to_path_buf))
        .collect();
    for module in NSS_MODULES {
        if let Some(found) = lib_dirs
            .iter()
            .map(|d| d.join(module))
            .find(|p| p.is_file())
        {
            libraries.push(found);
        }
    }
    // The binary, then each library under its own absolute path (symlinks followed: the image
    // holds the file the link names, where the loader looks for it).
    let mut files = vec![(PathBuf::from("rootfs/aivo-load"), binary.to_path_buf())];
    files.extend(libraries.iter().map(|library| {
        (
            Path::new("rootfs").join(library.strip_prefix("/").unwrap_or(library)),
            library.clone(),
        )
    }));
    write_context(&files).map_err(DockerError::io(
        "cannot make the worker image's build context",
    ))
}

fn write_context(files: &[(PathBuf, PathBuf)]) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut append = |name: &Path, mode: u32, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive.append_data(&mut header, name, data)
    };
    append(Path::new("Dockerfile"), 0o644, DOCKERFILE.as_bytes())?;
    append(
        Path::new("rootfs/etc/nsswitch.conf"),
        0o644,
        NSSWITCH.as_bytes(),
    )?;
    for (name, source) in files {
        let data = std::fs::read(source)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", source.display())))?;
        append(name, 0o755, &data)?;
    }
    // `/tmp`, writable by whichever user a worker runs as.
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o1777);
    header.set_cksum();
    archive.append_data(&mut header, "rootfs/tmp/", std::io::empty())?;
    archive.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_every_library_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f8c)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8c)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f8c)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn an_image_reference_splits_at_its_tag_colon_not_a_registry_port() {
        let split = |r| split_reference(r).map_err(|e| e.to_string());
        assert_eq!(split("aivo-load:local"), Ok(("aivo-load", "local")));
        assert_eq!(
            split("aivo-load/aivo-load:local"),
            Ok(("aivo-load/aivo-load", "local"))
        );
        assert_eq!(
            split("host:5000/aivo-load"),
            Ok(("host:5000/aivo-load", "latest"))
        );
        assert_eq!(
            split("host:5000/team/aivo-load:1.2"),
            Ok(("host:5000/team/aivo-load", "1.2"))
        );
        for bad in [
            "",
            "aivo-load:",
            ":local",
            "Aivo:local",
            "a b:c",
            "a@sha256:00",
        ] {
            assert!(split(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn this_test_binary_needs_a_loader_ldd_names() {
        let exe = std::env::current_exe().expect("exe");
        let libraries = shared_libraries(&exe).expect("ldd");
        assert!(
            libraries
                .iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libraries:?}"
        );
        assert!(libraries.iter().all(|l| l.is_file()), "{libraries:?}");
    }
}
