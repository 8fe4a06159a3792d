//! The ballast of the fill-storage fault: a tar archive of one zero-filled file as large as the free
//! space of a node's tmpfs store, streamed to `PUT /containers/{id}/archive` without holding it in
//! memory.

use std::path::Path;

use bytes::Bytes;

use super::{DockerError, BALLAST};

/// Bytes an unprivileged write could still take on the filesystem holding `path`.
pub(super) fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: statvfs(3) writes into a zeroed struct we own; the path is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// A tar archive holding one file, [`BALLAST`], of `size` zero bytes, in 1 MiB chunks (the chunks
/// share one buffer: memory stays at 1 MiB whatever the size).
pub(super) fn ballast_tar(size: u64) -> Result<Vec<Bytes>, DockerError> {
    const CHUNK: u64 = 1 << 20;
    let mut header = tar::Header::new_gnu();
    header
        .set_path(BALLAST)
        .map_err(DockerError::io("cannot make the ballast archive"))?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let zeros = Bytes::from(vec![0u8; CHUNK as usize]);
    let mut parts = vec![Bytes::copy_from_slice(header.as_bytes())];
    let mut left = size;
    while left > 0 {
        let take = left.min(CHUNK);
        parts.push(zeros.slice(0..take as usize));
        left -= take;
    }
    // Pad the file to a 512-byte block, then two empty blocks end the archive.
    let pad = ((512 - size % 512) % 512) as usize;
    parts.push(Bytes::from(vec![0u8; pad + 1024]));
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballast_archive_is_a_valid_tar_of_the_size() {
        let parts = ballast_tar(5000).expect("tar");
        let bytes: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(bytes.len() % 512, 0);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<_> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (e.path().expect("path").display().to_string(), e.size())
            })
            .collect();
        assert_eq!(entries, vec![(BALLAST.to_string(), 5000)]);
    }
}
