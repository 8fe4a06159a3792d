//! Making a node's JetStream store run out of space, and undoing it (the `fill-storage` fault).
//!
//! Two mechanisms, chosen by who runs the harness:
//!
//! - [`FillMode::Tmpfs`] (root): the node is stopped gracefully, its store dir is moved aside to
//!   `store.disk`, a size-limited tmpfs is mounted at `store`, the data is copied in, the node is
//!   started again and a ballast file fills the tmpfs to the last byte. The node's next store write
//!   fails with "no space left on device" and JetStream disables itself on that server, exactly as a
//!   full disk does. Reverting stops the node, copies the store (minus ballast) back to disk,
//!   unmounts and starts the node again.
//! - [`FillMode::MaxFileStore`] (anyone): the node is restarted with a JetStream `max_file_store` just
//!   above what it stores now, so the traffic itself fills the quota and the node answers
//!   "insufficient storage resources" where it must reserve or lead. No ballast file: the quota is
//!   the ballast. It is weaker than a full disk: nats-server 2.15 lets a follower replicate past its
//!   `max_file_store` (seen in the quota-mode chaos test).
//!
//! Both restart the node (a store cannot be swapped under a running server), which the fault's
//! report states. Everything here is plain file work; `local.rs` stops and starts the node.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the ballast file inside a tmpfs store.
pub const BALLAST: &str = "aivo-ballast";

/// Extra room given to a tmpfs store above the data copied in, before the ballast takes it.
pub const TMPFS_SLACK: u64 = 8 * 1024 * 1024;

/// Quota above current usage in max-file-store mode.
pub const QUOTA_HEADROOM: u64 = 256 * 1024;

/// How a node's store is made to run out of space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillMode {
    /// A size-limited tmpfs over the store, filled with a ballast file (needs root).
    Tmpfs,
    /// A JetStream `max_file_store` just above current usage.
    MaxFileStore,
}

impl FillMode {
    /// Tmpfs when running as root, else the quota.
    pub fn for_this_process() -> Self {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            Self::Tmpfs
        } else {
            Self::MaxFileStore
        }
    }

    /// How the report names the mechanism.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Tmpfs => "size-limited tmpfs over the node's store, filled with a ballast file",
            Self::MaxFileStore => "JetStream max_file_store lowered to the node's current usage",
        }
    }
}

/// Where the real store waits while a tmpfs covers `store`.
pub fn parked_dir(store: &Path) -> PathBuf {
    store.with_file_name("store.disk")
}

/// Bytes under a directory (regular files, not following links).
pub fn tree_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += tree_size(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Copies a directory tree (files and dirs only; JetStream stores hold nothing else).
pub fn copy_tree(from: &Path, to: &Path, skip: &str) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == skip {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target, skip)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// True if `path` is a mount point (listed in `/proc/self/mountinfo`).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    // Field 5 is the mount point, with spaces and the like octal-escaped.
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount| unescape(mount) == wanted)
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Mounts a tmpfs of `size` bytes at `at`.
pub fn mount_tmpfs(at: &Path, size: u64) -> io::Result<()> {
    let target = c_path(at)?;
    let source = c_path(Path::new("aivo-fill"))?;
    let fstype = c_path(Path::new("tmpfs"))?;
    let options = c_path(Path::new(&format!("size={size},mode=0755")))?;
    // SAFETY: mount(2) with valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unmounts `at` (lazily, so a straggling open file cannot keep it mounted).
pub fn unmount(at: &Path) -> io::Result<()> {
    let target = c_path(at)?;
    // SAFETY: umount2(2) with a valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves `store` aside and mounts a tmpfs holding a copy of it, with [`TMPFS_SLACK`] to spare.
/// The node must be stopped.
pub fn cover_with_tmpfs(store: &Path) -> io::Result<()> {
    let parked = parked_dir(store);
    if parked.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists: storage is already filled", parked.display()),
        ));
    }
    fs::create_dir_all(store)?;
    let used = tree_size(store)?;
    fs::rename(store, &parked)?;
    fs::create_dir_all(store)?;
    let size = (used + TMPFS_SLACK).div_ceil(4096) * 4096;
    if let Err(err) = mount_tmpfs(store, size).and_then(|()| copy_tree(&parked, store, "")) {
        let _ = unmount(store);
        let _ = fs::remove_dir(store);
        let _ = fs::rename(&parked, store);
        return Err(err);
    }
    Ok(())
}

/// Writes a ballast file until the filesystem under `store` is full; returns its size.
pub fn write_ballast(store: &Path) -> io::Result<u64> {
    let mut file = fs::File::create(store.join(BALLAST))?;
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(err) => return Err(err),
        }
    }
    // Whatever is left is smaller than a block: fill it byte-wise.
    while let Ok(n) = file.write(&[0u8; 512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    while let Ok(1) = file.write(&[0u8]) {
        written += 1;
    }
    Ok(written)
}

/// Undoes [`cover_with_tmpfs`]: copies the tmpfs's data (without ballast) back to disk, unmounts and
/// puts the store back. With `keep_data` false (the node is gone with its harness), the data written
/// meanwhile is dropped and the parked store restored as it was. The node must be stopped.
pub fn uncover(store: &Path, keep_data: bool) -> io::Result<()> {
    let parked = parked_dir(store);
    if !is_mount_point(store) {
        // Nothing mounted: restore a parked store if a crash left one.
        if parked.exists() {
            if store.exists() {
                fs::remove_dir_all(store)?;
            }
            fs::rename(&parked, store)?;
        }
        return Ok(());
    }
    if keep_data {
        let fresh = store.with_file_name("store.new");
        if fresh.exists() {
            fs::remove_dir_all(&fresh)?;
        }
        copy_tree(store, &fresh, BALLAST)?;
        unmount(store)?;
        fs::remove_dir(store)?;
        fs::rename(&fresh, store)?;
        if parked.exists() {
            fs::remove_dir_all(&parked)?;
        }
    } else {
        unmount(store)?;
        fs::remove_dir(store)?;
        if parked.exists() {
            fs::rename(&parked, store)?;
        } else {
            fs::create_dir_all(store)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_and_size_skip_the_ballast() {
        let dir = tempfile::tempdir().expect("tempdir");
        let from = dir.path().join("a");
        fs::create_dir_all(from.join("sub")).expect("mkdir");
        fs::write(from.join("sub/x"), b"12345").expect("write");
        fs::write(from.join(BALLAST), b"zzz").expect("write");
        assert_eq!(tree_size(&from).expect("size"), 8);
        copy_tree(&from, &dir.path().join("b"), BALLAST).expect("copy");
        assert_eq!(tree_size(&dir.path().join("b")).expect("size"), 5);
        assert!(!is_mount_point(&from));
    }

    #[test]
    fn uncover_without_mount_restores_a_parked_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        fs::create_dir_all(parked_dir(&store)).expect("mkdir");
        fs::write(parked_dir(&store).join("f"), b"x").expect("write");
        fs::create_dir_all(&store).expect("mkdir");
        uncover(&store, true).expect("uncover");
        assert!(store.join("f").exists());
        assert!(!parked_dir(&store).exists());
    }
}
