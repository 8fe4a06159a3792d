//! The fault journal (`faults.jsonl`): one JSON object per line, appended and fsynced.
//!
//! A fault's `begin` entry — with the operations that revert it and the files to clean — is on disk
//! before the fault is applied, so whatever happens to the process afterwards, `aivo-load heal` knows
//! what to undo. `applied` and `reverted` entries follow with what was observed and when. A fault is
//! active while it has a `begin` and no `reverted`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ChaosError;
use crate::cluster::{ClusterRef, ControlOp};

/// Something on disk a fault leaves that must go even if its cluster is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cleanup {
    /// A tmpfs mounted over a node's store (the real store parked beside it).
    Mount { store: PathBuf },
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum JournalEntry {
    /// Written (and synced) before the fault is applied.
    Begin {
        id: String,
        /// RFC 3339, UTC.
        at: String,
        fault: String,
        target: String,
        node: String,
        /// Which backend owns the cluster, and how to reach it again.
        owner: ClusterRef,
        revert: Vec<ControlOp>,
        #[serde(default)]
        cleanup: Vec<Cleanup>,
    },
    /// The fault was applied; whether and when its effect showed.
    Applied {
        id: String,
        at: String,
        confirmed: bool,
        detail: String,
    },
    /// A fault changed a node's store files (`corrupt-store`): exactly what it changed, written
    /// before the node is started again. Nothing reverts it.
    Changed {
        id: String,
        at: String,
        node: String,
        /// The node's store directory on this machine; each change's file is relative to it.
        store: PathBuf,
        seed: u64,
        changes: Vec<super::corrupt_store::StoreChange>,
        note: String,
    },
    /// A node's store lost what it had not fsynced (`power-loss`), written before the node is
    /// started again. Nothing reverts it.
    PowerLost {
        id: String,
        at: String,
        node: String,
        loss: crate::durable_fs::PowerLoss,
    },
    /// The fault was reverted (by the run, the guard or `heal`).
    Reverted {
        id: String,
        at: String,
        by: String,
        confirmed: bool,
        detail: String,
    },
}

/// An append-only, synced fault journal.
#[derive(Debug)]
pub struct FaultJournal {
    path: PathBuf,
    file: File,
}

impl FaultJournal {
    /// Opens (creating) the journal at `path` for appending.
    pub fn open(path: &Path) -> Result<Self, ChaosError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| journal_error(path, source))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| journal_error(path, source))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and waits until it is on disk.
    pub fn append(&mut self, entry: &JournalEntry) -> Result<(), ChaosError> {
        let mut line = serde_json::to_string(entry)
            .map_err(|e| journal_error(&self.path, std::io::Error::other(e)))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| journal_error(&self.path, source))
    }
}

fn journal_error(path: &Path, source: std::io::Error) -> ChaosError {
    ChaosError::Journal {
        path: path.display().to_string(),
        source,
    }
}

/// Every entry of a journal (a torn last line, from a crash mid-write, is skipped).
pub fn read(path: &Path) -> Result<Vec<JournalEntry>, ChaosError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(journal_error(path, source)),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The `begin` entries of faults not reverted, in the order they began.
pub fn active(entries: &[JournalEntry]) -> Vec<JournalEntry> {
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        match entry {
            JournalEntry::Begin { id, .. } => {
                open.insert(id, i);
            }
            JournalEntry::Reverted { id, .. } => {
                open.remove(id.as_str());
            }
            JournalEntry::Applied { .. }
            | JournalEntry::Changed { .. }
            | JournalEntry::PowerLost { .. } => {}
        }
    }
    let mut indices: Vec<usize> = open.into_values().collect();
    indices.sort_unstable();
    indices.into_iter().map(|i| entries[i].clone()).collect()
}

/// Now, RFC 3339 UTC.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin(id: &str) -> JournalEntry {
        JournalEntry::Begin {
            id: id.into(),
            at: now(),
            fault: "pause".into(),
            target: "nats2".into(),
            node: "nats2".into(),
            owner: ClusterRef::InProcess {
                dir: PathBuf::from("/x"),
            },
            revert: vec![ControlOp::Resume {
                node: "nats2".into(),
            }],
            cleanup: Vec::new(),
        }
    }

    #[test]
    fn active_faults_are_begun_and_not_reverted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faults.jsonl");
        let mut journal = FaultJournal::open(&path).expect("open");
        journal.append(&begin("a")).expect("append");
        journal.append(&begin("b")).expect("append");
        journal
            .append(&JournalEntry::Reverted {
                id: "a".into(),
                at: now(),
                by: "run".into(),
                confirmed: true,
                detail: String::new(),
            })
            .expect("append");
        // A torn line from a crash is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"event\":\"begin\",\"id\""))
            .expect("torn");
        let entries = read(&path).expect("read");
        assert_eq!(entries.len(), 3);
        let open = active(&entries);
        assert_eq!(open.len(), 1);
        assert!(matches!(&open[0], JournalEntry::Begin { id, .. } if id == "b"));
    }
}
