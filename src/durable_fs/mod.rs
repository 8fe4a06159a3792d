//! **Leaf**: a store that forgets what was never fsynced, for the `power-loss` fault.
//!
//! A node's store directory is served through a small FUSE filesystem (`fuse.rs`) that passes
//! every operation through to a backing directory at once (the page cache of a real machine),
//! and remembers, per file, what was durable at its last `fsync`: the length it had then and the
//! old bytes of every range overwritten since (an undo log; JetStream's file store mostly appends,
//! so the log stays small). A power loss ([`Journals::roll_back`], reached through
//! [`DurableStore::power_loss`] while the node is down) puts each file back to that state: cut to
//! its durable length, overwritten bytes restored, files created and never fsynced removed. What
//! it discarded is counted, so the fault is confirmed by the bytes lost, never assumed.
//!
//! Directory operations (mkdir, unlink, rename) are taken as durable at once: only file contents
//! and the existence of never-synced new files roll back. That is the loss Jepsen's NATS 2.12.1
//! analysis describes (acknowledged writes in the page cache, fsynced every two minutes by
//! default); a directory entry lost with its file is covered by removing never-synced files.

mod fuse;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub use fuse::DurableStore;

/// What one file has done since it was last durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FileJournal {
    /// Created since the mount and never fsynced: a power loss removes it.
    created: bool,
    /// Its length at the last fsync (or when first seen).
    durable_len: u64,
    /// (offset, old bytes) of each durable range overwritten since, oldest first.
    undo: Vec<(u64, Vec<u8>)>,
}

/// What a power loss discarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PowerLoss {
    /// Files cut back or restored to their durable contents.
    pub files_rolled_back: u64,
    /// Files created and never fsynced, removed.
    pub files_removed: u64,
    /// Bytes written but never made durable: appended past a durable length, overwritten inside
    /// one, or in a removed file.
    pub bytes_discarded: u64,
}

impl PowerLoss {
    /// "24922 bytes discarded (3 files removed, 1 cut back)".
    pub fn describe(&self) -> String {
        format!(
            "{} bytes discarded ({} file(s) removed, {} cut back)",
            self.bytes_discarded, self.files_removed, self.files_rolled_back
        )
    }
}

/// The undo journals of every file changed since it was last durable, by path under the store.
#[derive(Debug, Default)]
pub struct Journals {
    files: HashMap<PathBuf, FileJournal>,
}

impl Journals {
    fn entry(&mut self, rel: &Path, file: &File) -> io::Result<&mut FileJournal> {
        if !self.files.contains_key(rel) {
            let durable_len = file.metadata()?.len();
            self.files.insert(
                rel.to_path_buf(),
                FileJournal {
                    durable_len,
                    ..FileJournal::default()
                },
            );
        }
        Ok(self.files.get_mut(rel).expect("inserted above"))
    }

    /// Before `len` bytes are written at `offset` of `file`: keeps the durable bytes they cover.
    pub fn before_write(
        &mut self,
        rel: &Path,
        file: &File,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        let journal = self.entry(rel, file)?;
        if journal.created {
            return Ok(());
        }
        let end = offset.saturating_add(len).min(journal.durable_len);
        if offset >= end {
            return Ok(());
        }
        // Bytes past the current length were cut since the fsync and are kept already.
        let end = end.min(file.metadata()?.len());
        if offset < end {
            let mut old = vec![0; (end - offset) as usize];
            file.read_exact_at(&mut old, offset)?;
            journal.undo.push((offset, old));
        }
        Ok(())
    }

    /// Before `file` is cut to `new_len`: keeps the durable bytes past it.
    pub fn before_truncate(&mut self, rel: &Path, file: &File, new_len: u64) -> io::Result<()> {
        let journal = self.entry(rel, file)?;
        let end = journal.durable_len;
        if journal.created || new_len >= end {
            return Ok(());
        }
        let mut old = vec![0; (end - new_len) as usize];
        file.read_exact_at(&mut old, new_len)?;
        journal.undo.push((new_len, old));
        Ok(())
    }

    /// A file created at `rel`: nothing of it is durable until its first fsync.
    pub fn created(&mut self, rel: &Path) {
        self.files.insert(
            rel.to_path_buf(),
            FileJournal {
                created: true,
                ..FileJournal::default()
            },
        );
    }

    /// `rel` was fsynced: everything in it now is durable.
    pub fn synced(&mut self, rel: &Path) {
        self.files.remove(rel);
    }

    /// `rel` was removed (taken as durable at once).
    pub fn removed(&mut self, rel: &Path) {
        self.files.remove(rel);
    }

    /// `from` was renamed to `to` (taken as durable at once; the contents' journal moves along).
    pub fn renamed(&mut self, from: &Path, to: &Path) {
        self.files.remove(to);
        if let Some(journal) = self.files.remove(from) {
            self.files.insert(to.to_path_buf(), journal);
        }
        // A directory renamed: every journal below it moves too.
        let below: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for path in below {
            if let (Some(journal), Ok(rest)) = (self.files.remove(&path), path.strip_prefix(from)) {
                self.files.insert(to.join(rest), journal);
            }
        }
    }

    /// Bytes written since the files were last durable (what a power loss now would discard).
    pub fn pending(&self, root: &Path) -> u64 {
        self.files
            .iter()
            .map(|(rel, j)| {
                let len = std::fs::metadata(root.join(rel)).map_or(0, |m| m.len());
                discarded(j, len)
            })
            .sum()
    }

    /// The power loss: every file under `root` back to what was durable; the journals emptied.
    pub fn roll_back(&mut self, root: &Path) -> io::Result<PowerLoss> {
        let mut loss = PowerLoss::default();
        let mut files: Vec<(PathBuf, FileJournal)> = self.files.drain().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (rel, journal) in files {
            let path = root.join(&rel);
            let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
                continue;
            };
            loss.bytes_discarded += discarded(&journal, len);
            if journal.created {
                std::fs::remove_file(&path)?;
                loss.files_removed += 1;
                continue;
            }
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(journal.durable_len)?;
            for (offset, old) in journal.undo.iter().rev() {
                file.write_all_at(old, *offset)?;
            }
            file.sync_all()?;
            loss.files_rolled_back += 1;
        }
        Ok(loss)
    }
}

/// Bytes a file of length `len` holds that its journal would discard.
fn discarded(journal: &FileJournal, len: u64) -> u64 {
    if journal.created {
        return len;
    }
    let overwritten: u64 = journal.undo.iter().map(|(_, old)| old.len() as u64).sum();
    len.saturating_sub(journal.durable_len) + overwritten
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(journals: &mut Journals, root: &Path, rel: &str, offset: u64, data: &[u8]) {
        let path = root.join(rel);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("open");
        journals
            .before_write(Path::new(rel), &file, offset, data.len() as u64)
            .expect("journal");
        file.write_all_at(data, offset).expect("write");
    }

    #[test]
    fn what_was_not_fsynced_is_lost_and_what_was_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let mut journals = Journals::default();
        // An existing file: durable as found.
        std::fs::File::create(root.join("old.blk"))
            .and_then(|mut f| f.write_all(b"durable"))
            .expect("seed");
        write(&mut journals, root, "old.blk", 7, b"+appended");
        write(&mut journals, root, "old.blk", 0, b"D");
        // A new file fsynced after its first write, then written again.
        journals.created(Path::new("new.blk"));
        write(&mut journals, root, "new.blk", 0, b"synced");
        journals.synced(Path::new("new.blk"));
        write(&mut journals, root, "new.blk", 6, b"-lost");
        // A new file never fsynced.
        journals.created(Path::new("tmp.idx"));
        write(&mut journals, root, "tmp.idx", 0, b"gone");
        assert_eq!(journals.pending(root), 9 + 1 + 5 + 4);

        let loss = journals.roll_back(root).expect("roll back");
        assert_eq!(
            std::fs::read(root.join("old.blk")).expect("old"),
            b"durable"
        );
        assert_eq!(std::fs::read(root.join("new.blk")).expect("new"), b"synced");
        assert!(!root.join("tmp.idx").exists());
        assert_eq!(
            loss,
            PowerLoss {
                files_rolled_back: 2,
                files_removed: 1,
                bytes_discarded: 19,
            }
        );
        // Nothing pending after a power loss.
        assert_eq!(
            journals.roll_back(root).expect("again"),
            PowerLoss::default()
        );
    }

    #[test]
    fn a_truncation_since_the_last_fsync_is_undone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let mut journals = Journals::default();
        std::fs::write(root.join("a.blk"), b"0123456789").expect("seed");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(root.join("a.blk"))
            .expect("open");
        journals
            .before_truncate(Path::new("a.blk"), &file, 4)
            .expect("journal");
        file.set_len(4).expect("truncate");
        write(&mut journals, root, "a.blk", 4, b"xy");
        journals.renamed(Path::new("a.blk"), Path::new("b.blk"));
        std::fs::rename(root.join("a.blk"), root.join("b.blk")).expect("rename");
        journals.roll_back(root).expect("roll back");
        assert_eq!(std::fs::read(root.join("b.blk")).expect("b"), b"0123456789");
    }
}
