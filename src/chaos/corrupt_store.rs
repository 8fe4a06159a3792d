//! `corrupt-store`: damage one class of a stream's files in a node's JetStream store while the node
//! is down (kill → corrupt → start), as a failing disk or a torn write would. Jepsen's NATS 2.12.1
//! analysis lost acknowledged writes when the files of a *minority* of nodes were truncated or
//! bit-flipped; this fault makes that reproducible.
//!
//! The change is made by this process on the node's store directory on this machine (the local
//! backend's `<cluster>/<node>/store`, the docker backend's tmpfs bind-mounted at `/data`), so it
//! is the same for every backend that has one; an external cluster refuses it like every fault.
//! Every byte to change is journaled (file, offset, old and new bytes; for a truncation the old
//! length and the start of what is cut) before it is changed, and so before the node is started
//! again. It cannot be reverted:
//! `heal` only starts the node.
//!
//! File classes, as nats-server 2.15 lays a stream out under `jetstream/`:
//!
//! | class | files |
//! |---|---|
//! | `blocks` | `<account>/streams/<STREAM>/msgs/*.blk` (the messages) |
//! | `index` | `<account>/streams/<STREAM>/msgs/index.db` (the stream state written on flush) |
//! | `meta` | `<account>/streams/<STREAM>/meta.inf`, `meta.sum`, and each consumer's `obs/*/{meta.inf,meta.sum,o.dat}` |
//! | `raft` | `$SYS/_js_/<stream's raft group>/` files outside `snapshots/` (the Raft log in `msgs/*.blk`, `tav.idx`, `peers.idx`, …) |
//! | `snapshots` | `$SYS/_js_/<stream's raft group>/snapshots/*` |

use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Effect, FaultPlan, Step};
use crate::cluster::ControlOp;

/// Which of a stream's files are damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FileClass {
    #[default]
    Blocks,
    Index,
    Meta,
    Raft,
    Snapshots,
}

impl FileClass {
    pub const NAMES: &'static str = "blocks, index, meta, raft or snapshots";

    pub fn name(self) -> &'static str {
        match self {
            Self::Blocks => "blocks",
            Self::Index => "index",
            Self::Meta => "meta",
            Self::Raft => "raft",
            Self::Snapshots => "snapshots",
        }
    }

    /// Whether the files live in the stream's Raft group directory (whose name the cluster's
    /// monitoring gives) rather than its own.
    pub fn in_raft_group(self) -> bool {
        matches!(self, Self::Raft | Self::Snapshots)
    }
}

impl FromStr for FileClass {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text.trim() {
            "blocks" | "blk" => Self::Blocks,
            "index" => Self::Index,
            "meta" => Self::Meta,
            "raft" => Self::Raft,
            "snapshots" => Self::Snapshots,
            other => {
                return Err(format!(
                    "unknown store file class {other:?}: expected {}",
                    Self::NAMES
                ))
            }
        })
    }
}

/// How each chosen file is damaged. Fractions are in thousandths, so plans compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum CorruptMode {
    /// Cut the file to `keep_per_mille` thousandths of its length.
    Truncate { keep_per_mille: u32 },
    /// Flip `bits` bits at seeded random positions.
    Bitflip { bits: u32 },
    /// Overwrite `len` bytes with zeros, starting `at_per_mille` thousandths into the file.
    Zero { at_per_mille: u32, len: u64 },
}

impl CorruptMode {
    pub const NAMES: &'static str = "truncate, bitflip or zero";

    /// The mode `name` with its parameters: `fraction` (truncate: the part kept; zero: where the
    /// range starts; default one half), `bits` (bitflip, default 1), `len` (zero, default 4096).
    pub fn parse(
        name: &str,
        fraction: Option<f64>,
        bits: Option<u32>,
        len: Option<u64>,
    ) -> Result<Self, String> {
        let per_mille = |value: Option<f64>| -> Result<u32, String> {
            let Some(value) = value else { return Ok(500) };
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("fraction {value}: expected a number from 0 to 1"));
            }
            Ok((value * 1000.0).round() as u32)
        };
        Ok(match name.trim() {
            "truncate" => Self::Truncate {
                keep_per_mille: per_mille(fraction)?,
            },
            "bitflip" => {
                let bits = bits.unwrap_or(1);
                if bits == 0 {
                    return Err("bitflip needs at least 1 bit".into());
                }
                Self::Bitflip { bits }
            }
            "zero" => {
                let len = len.unwrap_or(4096);
                if len == 0 {
                    return Err("zero needs a length above 0".into());
                }
                Self::Zero {
                    at_per_mille: per_mille(fraction)?,
                    len,
                }
            }
            other => {
                return Err(format!(
                    "unknown corrupt-store mode {other:?}: expected {}",
                    Self::NAMES
                ))
            }
        })
    }
}

impl fmt::Display for CorruptMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncate { keep_per_mille } => {
                write!(f, "truncate to {:.3}", f64::from(*keep_per_mille) / 1000.0)
            }
            Self::Bitflip { bits } => write!(f, "bitflip {bits} bit(s)"),
            Self::Zero { at_per_mille, len } => write!(
                f,
                "zero {len} bytes at {:.3}",
                f64::from(*at_per_mille) / 1000.0
            ),
        }
    }
}

/// What to damage: one stream's files of one class, in one way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptSpec {
    pub stream: String,
    pub files: FileClass,
    #[serde(flatten)]
    pub mode: CorruptMode,
}

impl fmt::Display for CorruptSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} of {}", self.mode, self.files.name(), self.stream)
    }
}

/// Kill `node`, damage its store as `spec` says, start it. The revert only starts the node (the
/// bytes stay changed).
pub fn plan(node: &str, spec: &CorruptSpec) -> FaultPlan {
    let node = node.to_string();
    FaultPlan {
        steps: vec![
            Step::Op(ControlOp::Kill { node: node.clone() }),
            Step::Await(Effect::Down { node: node.clone() }),
            Step::CorruptStore(spec.clone()),
            Step::Op(ControlOp::Start { node: node.clone() }),
        ],
        revert: vec![ControlOp::Start { node: node.clone() }],
        effect: Effect::Back { node },
        note: Some(format!(
            "{spec}; cannot be reverted: the store keeps the changed bytes (heal only starts the \
             node)"
        )),
    }
}

/// One change to one file, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreChange {
    /// Relative to the node's store directory.
    pub file: PathBuf,
    pub offset: u64,
    /// The bytes that were there, hex (for a truncation: the first [`TRUNCATED_SHOWN`] of them).
    pub old: String,
    /// The bytes written, hex (empty for a truncation).
    pub new: String,
    /// For a truncation: the file's length before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<(u64, u64)>,
}

/// How many of a truncation's removed bytes the journal keeps.
pub const TRUNCATED_SHOWN: usize = 64;

/// Errors of finding or changing the files.
#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    #[error("{0}")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The files of `class` for `stream` in the store at `store` (sorted), the raft group's name
/// given for the classes that live there.
pub fn files_of(
    store: &Path,
    stream: &str,
    class: FileClass,
    raft_group: Option<&str>,
) -> Result<Vec<PathBuf>, CorruptError> {
    let jetstream = store.join("jetstream");
    let dir = if class.in_raft_group() {
        let group = raft_group.ok_or_else(|| {
            CorruptError::NotFound(format!(
                "no Raft group known for stream {stream} (the cluster's /jsz did not name one)"
            ))
        })?;
        jetstream.join("$SYS").join("_js_").join(group)
    } else {
        // The account dir is `$G` without accounts, the account's name with them.
        let accounts = read_dir_sorted(&jetstream)?;
        accounts
            .into_iter()
            .map(|account| account.join("streams").join(stream))
            .find(|dir| dir.is_dir())
            .ok_or_else(|| {
                CorruptError::NotFound(format!(
                    "stream {stream} has no store under {} (is it a file-stored stream with a \
                     replica on this node?)",
                    jetstream.display()
                ))
            })?
    };
    let mut files = Vec::new();
    walk(&dir, &mut files)?;
    let rel = |f: &PathBuf| {
        f.strip_prefix(&dir)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    files.retain(|f| {
        let rel = rel(f);
        let first = rel.components().next().map(|c| c.as_os_str().to_owned());
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        match class {
            FileClass::Blocks => {
                first.as_deref() == Some("msgs".as_ref()) && name.ends_with(".blk")
            }
            FileClass::Index => first.as_deref() == Some("msgs".as_ref()) && name == "index.db",
            FileClass::Meta => first.as_deref() != Some("msgs".as_ref()),
            FileClass::Raft => first.as_deref() != Some("snapshots".as_ref()),
            FileClass::Snapshots => first.as_deref() == Some("snapshots".as_ref()),
        }
    });
    files.retain(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0));
    files.sort();
    if files.is_empty() {
        return Err(CorruptError::NotFound(format!(
            "no {} files (non-empty) for stream {stream} under {}",
            class.name(),
            dir.display()
        )));
    }
    Ok(files)
}

/// Damages `files` (under `store`) as `mode` says, seeded, and returns every change made:
/// [`plan_changes`] then [`apply`].
pub fn corrupt(
    store: &Path,
    files: &[PathBuf],
    mode: CorruptMode,
    seed: u64,
) -> Result<Vec<StoreChange>, CorruptError> {
    let changes = plan_changes(store, files, mode, seed)?;
    apply(store, &changes)?;
    Ok(changes)
}

/// What damaging `files` (under `store`) as `mode` says would change, seeded, reading the bytes
/// that are there now and changing nothing: the journal records it before [`apply`] does it.
pub fn plan_changes(
    store: &Path,
    files: &[PathBuf],
    mode: CorruptMode,
    seed: u64,
) -> Result<Vec<StoreChange>, CorruptError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut changes = Vec::new();
    for path in files {
        let io = |source| CorruptError::Io {
            path: path.clone(),
            source,
        };
        let rel = path.strip_prefix(store).unwrap_or(path).to_path_buf();
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut read_at = |offset: u64, n: usize| -> Result<Vec<u8>, CorruptError> {
            let mut bytes = vec![0u8; n];
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            file.read_exact(&mut bytes).map_err(io)?;
            Ok(bytes)
        };
        match mode {
            CorruptMode::Truncate { keep_per_mille } => {
                let keep = len * u64::from(keep_per_mille) / 1000;
                let cut = read_at(keep, ((len - keep) as usize).min(TRUNCATED_SHOWN))?;
                changes.push(StoreChange {
                    file: rel,
                    offset: keep,
                    old: hex(&cut),
                    new: String::new(),
                    truncated: Some((len, keep)),
                });
            }
            CorruptMode::Bitflip { bits } => {
                // Bits that land in the same byte are flipped in one change.
                let mut masks: std::collections::BTreeMap<u64, u8> = Default::default();
                for _ in 0..bits {
                    let bit = rng.random_range(0..len * 8);
                    *masks.entry(bit / 8).or_default() ^= 1 << (bit % 8);
                }
                for (offset, mask) in masks.into_iter().filter(|(_, m)| *m != 0) {
                    let old = read_at(offset, 1)?;
                    let new = [old[0] ^ mask];
                    changes.push(StoreChange {
                        file: rel.clone(),
                        offset,
                        old: hex(&old),
                        new: hex(&new),
                        truncated: None,
                    });
                }
            }
            CorruptMode::Zero {
                at_per_mille,
                len: want,
            } => {
                let at = (len * u64::from(at_per_mille) / 1000).min(len.saturating_sub(1));
                let n = want.min(len - at) as usize;
                let old = read_at(at, n)?;
                changes.push(StoreChange {
                    file: rel,
                    offset: at,
                    old: hex(&old),
                    new: hex(&vec![0u8; n]),
                    truncated: None,
                });
            }
        }
    }
    Ok(changes)
}

/// Makes `changes` (from [`plan_changes`]) to the files under `store`, each file synced.
pub fn apply(store: &Path, changes: &[StoreChange]) -> Result<(), CorruptError> {
    for change in changes {
        let path = store.join(&change.file);
        let io = |source| CorruptError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io)?;
        match change.truncated {
            Some((_, keep)) => file.set_len(keep).map_err(io)?,
            None => {
                let mut file = file;
                file.seek(SeekFrom::Start(change.offset)).map_err(io)?;
                file.write_all(&unhex(&change.new)).map_err(io)?;
                file.sync_all().map_err(io)?;
                continue;
            }
        }
        file.sync_all().map_err(io)?;
    }
    Ok(())
}

/// A one-line account of `changes`, for the timeline and the terminal.
pub fn summary(changes: &[StoreChange]) -> String {
    let mut files: Vec<&Path> = changes.iter().map(|c| c.file.as_path()).collect();
    files.dedup();
    let bytes: u64 = changes
        .iter()
        .map(|c| match c.truncated {
            Some((before, after)) => before - after,
            None => (c.old.len() / 2) as u64,
        })
        .sum();
    format!(
        "{} change(s) in {} file(s), {bytes} byte(s) affected",
        changes.len(),
        files.len()
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string this module wrote (a stray odd digit is dropped).
fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, CorruptError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CorruptError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    Ok(paths)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CorruptError> {
    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (rel, bytes) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        }
        dir
    }

    const BLK: &str = "jetstream/$G/streams/FOCUS/msgs/1.blk";

    #[test]
    fn classes_pick_their_files() {
        let store = store_with(&[
            (BLK, b"aaaa"),
            ("jetstream/$G/streams/FOCUS/msgs/index.db", b"i"),
            ("jetstream/$G/streams/FOCUS/meta.inf", b"m"),
            ("jetstream/$G/streams/FOCUS/obs/indexer/o.dat", b"o"),
            ("jetstream/$G/streams/LEARNING/msgs/1.blk", b"x"),
            ("jetstream/$SYS/_js_/S-R3F-x/msgs/1.blk", b"r"),
            ("jetstream/$SYS/_js_/S-R3F-x/tav.idx", b"t"),
            ("jetstream/$SYS/_js_/S-R3F-x/snapshots/snap.1.2", b"s"),
        ]);
        let names = |class, group| -> Vec<String> {
            files_of(store.path(), "FOCUS", class, group)
                .expect("files")
                .iter()
                .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(FileClass::Blocks, None), ["1.blk"]);
        assert_eq!(names(FileClass::Index, None), ["index.db"]);
        assert_eq!(names(FileClass::Meta, None), ["meta.inf", "o.dat"]);
        assert_eq!(
            names(FileClass::Raft, Some("S-R3F-x")),
            ["1.blk", "tav.idx"]
        );
        assert_eq!(names(FileClass::Snapshots, Some("S-R3F-x")), ["snap.1.2"]);
        let missing = files_of(store.path(), "HOMEWORK", FileClass::Blocks, None);
        assert!(
            matches!(missing, Err(CorruptError::NotFound(ref m)) if m.contains("HOMEWORK")),
            "{missing:?}"
        );
    }

    #[test]
    fn each_mode_changes_exactly_the_bytes_it_records() {
        let original: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        for mode in [
            CorruptMode::Bitflip { bits: 5 },
            CorruptMode::Zero {
                at_per_mille: 500,
                len: 100,
            },
            CorruptMode::Truncate {
                keep_per_mille: 250,
            },
        ] {
            let store = store_with(&[(BLK, &original)]);
            let files = files_of(store.path(), "FOCUS", FileClass::Blocks, None).expect("files");
            let changes = corrupt(store.path(), &files, mode, 7).expect("corrupt");
            let now = std::fs::read(store.path().join(BLK)).expect("read");
            // Undo the recorded changes on a copy of what is there now: the original comes back.
            let mut undone = now.clone();
            for c in &changes {
                assert_eq!(c.file, Path::new(BLK));
                let old: Vec<u8> = (0..c.old.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&c.old[i..i + 2], 16).expect("hex"))
                    .collect();
                let at = c.offset as usize;
                match c.truncated {
                    Some((before, after)) => {
                        assert_eq!(now.len() as u64, after);
                        assert_eq!(before, original.len() as u64);
                        assert_eq!(&original[at..at + old.len()], old.as_slice());
                        undone.extend_from_slice(&original[at..]);
                    }
                    None => {
                        assert_ne!(&now[at..at + old.len()], old.as_slice(), "{mode}");
                        undone[at..at + old.len()].copy_from_slice(&old);
                    }
                }
            }
            assert_eq!(undone, original, "{mode}: only the recorded bytes changed");
            assert_ne!(now, original, "{mode} changed something");
        }
    }

    #[test]
    fn bitflips_are_seeded() {
        let original = vec![0u8; 4096];
        let run = |seed| {
            let store = store_with(&[(BLK, &original)]);
            let files = files_of(store.path(), "FOCUS", FileClass::Blocks, None).expect("files");
            corrupt(store.path(), &files, CorruptMode::Bitflip { bits: 3 }, seed).expect("ok")
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn modes_parse_with_their_defaults_and_refuse_nonsense() {
        assert_eq!(
            CorruptMode::parse("truncate", None, None, None),
            Ok(CorruptMode::Truncate {
                keep_per_mille: 500
            })
        );
        assert_eq!(
            CorruptMode::parse("bitflip", None, Some(3), None),
            Ok(CorruptMode::Bitflip { bits: 3 })
        );
        assert!(CorruptMode::parse("truncate", Some(1.5), None, None).is_err());
        assert!(CorruptMode::parse("shred", None, None, None)
            .unwrap_err()
            .contains("truncate, bitflip or zero"));
        assert!("wal".parse::<FileClass>().is_err());
    }
}
