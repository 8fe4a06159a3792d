//! `aivo-load image build --tag T --save FILE`: the workers' image (the one `run --workers N
//! --backend docker` runs and `deploy/k8s/` names) built from this binary, tagged, written as a
//! `docker save` archive whose `manifest.json` names the tag, loadable again with `docker load`,
//! and runnable: `docker run --rm T --version` answers from the image's own binary. Gated like
//! `docker.rs`.

use std::time::Duration;

use crate::docker::require_docker;
use crate::support::{aivo, text};

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

/// Removes the test's tag on every path (the image stays under its own name).
struct Untag(String);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = docker(&["rmi", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_no_docker, ignore = "no Docker engine answers (start dockerd)")]
async fn image_build_tags_saves_a_loadable_archive_whose_binary_runs() {
    require_docker().await;
    let dir = tempfile::Builder::new()
        .prefix("aivo-image-")
        .tempdir()
        .expect("tempdir");
    let tag = format!("aivo-load-it/k8s:{}", std::process::id());
    let _untag = Untag(tag.clone());
    let archive = dir.path().join("aivo-load.tar");
    let archive_arg = archive.display().to_string();
    let output = aivo(
        &["image", "build", "--tag", &tag, "--save", &archive_arg],
        &[],
        Duration::from_secs(300),
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("Saved {tag} to {archive_arg}")),
        "{log}"
    );

    // The archive is `docker save`'s: a manifest naming the tag, its config and layer inside.
    let file = std::fs::File::open(&archive).expect("archive");
    let mut entries = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(file).entries().expect("a tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        let mut body = Vec::new();
        if name == "manifest.json" {
            std::io::Read::read_to_end(&mut entry, &mut body).expect("read");
        }
        entries.insert(name, body);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(entries.get("manifest.json").expect("manifest.json"))
            .expect("manifest JSON");
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!([tag]),
        "{manifest}"
    );
    let config = manifest[0]["Config"].as_str().expect("a config");
    assert!(entries.contains_key(config), "{config} not in the archive");
    let layer = manifest[0]["Layers"][0].as_str().expect("a layer");
    assert!(entries.contains_key(layer), "{layer} not in the archive");
    assert!(!dir.path().join("aivo-load.tar.partial").exists());

    // Loadable: with the tag gone, `docker load` brings it back from the archive alone.
    assert!(docker(&["rmi", &tag]).status.success());
    let loaded = docker(&["load", "-i", &archive_arg]);
    let loaded_text = String::from_utf8_lossy(&loaded.stdout);
    assert!(loaded.status.success(), "{loaded:?}");
    assert!(loaded_text.contains(&tag), "{loaded_text}");

    // Runnable: the entrypoint is this binary (no shell in the image).
    let run = docker(&["run", "--rm", &tag, "--version"]);
    let version = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        version.trim(),
        format!("aivo-load {}", env!("CARGO_PKG_VERSION"))
    );
    let shell = docker(&["run", "--rm", "--entrypoint", "/bin/sh", &tag, "-c", "true"]);
    assert!(!shell.status.success(), "the image has no shell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_image_tag_is_refused_before_any_build() {
    let output = aivo(
        &["image", "build", "--tag", "Aivo Load:x"],
        &[],
        Duration::from_secs(30),
    )
    .await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(2), "a usage error: {log}");
    assert!(log.contains("--tag \"Aivo Load:x\""), "{log}");
    assert!(!log.contains("built"), "{log}");
}
