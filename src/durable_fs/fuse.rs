//! The FUSE passthrough in front of a backing directory, journaling writes for a power loss.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

use super::{Journals, PowerLoss};

/// How long the kernel may cache attributes and entries: short, since a power loss changes
/// files behind its back (the node is down then, and the mount is remade before it starts).
const TTL: Duration = Duration::from_millis(100);

/// A mounted store: the FUSE session and the journals a power loss rolls back.
pub struct DurableStore {
    backing: PathBuf,
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
}

impl DurableStore {
    /// Serves `backing` at `mountpoint` (both directories; needs root or `fusermount3`, and
    /// `/dev/fuse`).
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(backing)?;
        std::fs::create_dir_all(mountpoint)?;
        let state = Arc::new(Mutex::new(State::new(backing)));
        let fs = Passthrough {
            state: state.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("aivo-durable".into()),
            MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(Self {
            backing: backing.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            state,
            session: Some(session),
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Bytes written since their files were last fsynced.
    pub fn pending(&self) -> u64 {
        lock(&self.state).journals.pending(&self.backing)
    }

    /// Rolls every file back to its last fsynced state. Call it only while nothing has the
    /// store open (the node is down): open handles are closed first.
    pub fn power_loss(&self) -> io::Result<PowerLoss> {
        let mut state = lock(&self.state);
        state.handles.clear();
        let backing = self.backing.clone();
        state.journals.roll_back(&backing)
    }

    /// Unmounts (also on drop).
    pub fn unmount(mut self) {
        self.end_session();
    }

    /// Ends the FUSE session, which unmounts the store. (A harness killed by SIGKILL leaves the
    /// mount behind, disconnected: `umount -l` removes it.)
    fn end_session(&mut self) {
        self.session.take();
    }
}

impl std::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStore")
            .field("backing", &self.backing)
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl Drop for DurableStore {
    fn drop(&mut self) {
        self.end_session();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

struct State {
    backing: PathBuf,
    /// inode → path under the backing directory ("" is the root, inode 1).
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_inode: u64,
    /// Open files, by handle.
    handles: HashMap<u64, Handle>,
    next_handle: u64,
    journals: Journals,
}

impl State {
    fn new(backing: &Path) -> Self {
        let mut state = Self {
            backing: backing.to_path_buf(),
            paths: HashMap::new(),
            inodes: HashMap::new(),
            next_inode: 2,
            handles: HashMap::new(),
            next_handle: 1,
            journals: Journals::default(),
        };
        state.paths.insert(1, PathBuf::new());
        state.inodes.insert(PathBuf::new(), 1);
        state
    }

    fn rel(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel(parent)?.join(name))
    }

    fn inode(&mut self, rel: &Path) -> u64 {
        if let Some(&ino) = self.inodes.get(rel) {
            return ino;
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.paths.insert(ino, rel.to_path_buf());
        self.inodes.insert(rel.to_path_buf(), ino);
        ino
    }

    fn attr(&mut self, rel: &Path) -> Result<FileAttr, Errno> {
        let meta = std::fs::symlink_metadata(self.backing.join(rel)).map_err(Errno::from)?;
        let ino = self.inode(rel);
        Ok(attr_of(ino, &meta))
    }

    fn open_handle(&mut self, file: File, rel: &Path, flags: i32) -> u64 {
        let ino = self.inode(rel);
        let fh = self.next_handle;
        self.next_handle += 1;
        let sync_writes = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        self.handles.insert(
            fh,
            Handle {
                file,
                ino,
                sync_writes,
            },
        );
        fh
    }

    /// An open handle's file, the path it has now (`None`: removed since it was opened, so
    /// nothing of it can come back), and the journals.
    fn handle(
        &mut self,
        fh: FileHandle,
    ) -> Result<(&Handle, Option<PathBuf>, &mut Journals), Errno> {
        let handle = self.handles.get(&fh.0).ok_or(Errno::EBADF)?;
        Ok((
            handle,
            self.paths.get(&handle.ino).cloned(),
            &mut self.journals,
        ))
    }

    fn forget_path(&mut self, rel: &Path) {
        if let Some(ino) = self.inodes.remove(rel) {
            self.paths.remove(&ino);
        }
    }
}

/// An open file and the inode it was opened as (its path follows renames).
struct Handle {
    file: File,
    ino: u64,
    /// Opened with `O_SYNC` or `O_DSYNC`: each write is durable once it returns.
    sync_writes: bool,
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = u32::try_from(nsecs).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos),
        Err(_) => UNIX_EPOCH,
    }
}

fn attr_of(ino: u64, meta: &std::fs::Metadata) -> FileAttr {
    let kind = if meta.is_dir() {
        FileType::Directory
    } else if meta.file_type().is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    };
    FileAttr {
        ino: INodeNo(ino),
        size: meta.len(),
        blocks: meta.blocks(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: time(meta.ctime(), meta.ctime_nsec()),
        kind,
        perm: (meta.mode() & 0o7777) as u16,
        nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX),
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: u32::try_from(meta.rdev()).unwrap_or(0),
        blksize: u32::try_from(meta.blksize()).unwrap_or(4096),
        flags: 0,
    }
}

struct Passthrough {
    state: Arc<Mutex<State>>,
}

impl Passthrough {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Filesystem for Passthrough {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.state();
        match state.child(parent, name).and_then(|rel| state.attr(&rel)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut state = self.state();
        match state.rel(ino).and_then(|rel| state.attr(&rel)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        let result = (|| {
            let rel = state.rel(ino)?;
            let path = state.backing.join(&rel);
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(Errno::from)?;
            }
            if let Some(size) = size {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(Errno::from)?;
                state
                    .journals
                    .before_truncate(&rel, &file, size)
                    .map_err(Errno::from)?;
                file.set_len(size).map_err(Errno::from)?;
            }
            state.attr(&rel)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        let result = state.child(parent, name).and_then(|rel| {
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(state.backing.join(&rel))
                .map_err(Errno::from)?;
            state.attr(&rel)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        let result = state.child(parent, name).and_then(|rel| {
            std::fs::remove_file(state.backing.join(&rel)).map_err(Errno::from)?;
            state.journals.removed(&rel);
            state.forget_path(&rel);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        let result = state.child(parent, name).and_then(|rel| {
            std::fs::remove_dir(state.backing.join(&rel)).map_err(Errno::from)?;
            state.forget_path(&rel);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        let result = (|| {
            let from = state.child(parent, name)?;
            let to = state.child(newparent, newname)?;
            std::fs::rename(state.backing.join(&from), state.backing.join(&to))
                .map_err(Errno::from)?;
            state.journals.renamed(&from, &to);
            // Inodes follow their paths (a directory's children too).
            state.forget_path(&to);
            let moved: Vec<(PathBuf, u64)> = state
                .inodes
                .iter()
                .filter(|(p, _)| p.starts_with(&from))
                .map(|(p, &i)| (p.clone(), i))
                .collect();
            for (path, ino) in moved {
                let Ok(rest) = path.strip_prefix(&from) else {
                    continue;
                };
                // `join("")` would add a trailing slash: the renamed path itself is `to`.
                let new = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                state.inodes.remove(&path);
                state.inodes.insert(new.clone(), ino);
                state.paths.insert(ino, new);
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut state = self.state();
        let result = state.rel(ino).and_then(|rel| {
            let file = open_with(&state.backing.join(&rel), flags.0, None)?;
            truncate_on_open(&mut state.journals, &rel, &file, flags.0)?;
            Ok(state.open_handle(file, &rel, flags.0))
        });
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let result = state.child(parent, name).and_then(|rel| {
            let path = state.backing.join(&rel);
            let existed = path.exists();
            let file = open_with(&path, flags | libc::O_CREAT, Some(mode))?;
            if existed {
                truncate_on_open(&mut state.journals, &rel, &file, flags)?;
            } else {
                state.journals.created(&rel);
            }
            let attr = state.attr(&rel)?;
            let fh = state.open_handle(file, &rel, flags);
            Ok((attr, fh))
        });
        match result {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.state();
        let Some(Handle { file, .. }) = state.handles.get(&fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        let mut buf = vec![0; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    reply.error(Errno::from(e));
                    return;
                }
            }
        }
        reply.data(&buf[..filled]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        let result = state.handle(fh).and_then(|(handle, rel, journals)| {
            if let Some(rel) = &rel {
                journals
                    .before_write(rel, &handle.file, offset, data.len() as u64)
                    .map_err(Errno::from)?;
            }
            handle
                .file
                .write_all_at(data, offset)
                .map_err(Errno::from)?;
            // O_SYNC / O_DSYNC: the write is durable when it returns (nats-server writes its
            // metadata this way with `sync_interval: always`).
            if let (true, Some(rel)) = (handle.sync_writes, &rel) {
                journals.synced(rel);
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not fsync: nothing becomes durable here.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, ds: bool, reply: ReplyEmpty) {
        // Passed on to the backing file, so an fsync costs what it costs on this machine's disk
        // (`durability-compare` measures that price); what a power loss keeps is what the
        // journal says.
        let mut state = self.state();
        let result = state.handle(fh).and_then(|(handle, rel, journals)| {
            let synced = if ds {
                handle.file.sync_data()
            } else {
                handle.file.sync_all()
            };
            synced.map_err(Errno::from)?;
            if let Some(rel) = rel {
                journals.synced(&rel);
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut state = self.state();
        let result = (|| {
            let rel = state.rel(ino)?;
            let mut entries: Vec<(u64, FileType, std::ffi::OsString)> = vec![
                (ino.0, FileType::Directory, ".".into()),
                (1, FileType::Directory, "..".into()),
            ];
            let dir = std::fs::read_dir(state.backing.join(&rel)).map_err(Errno::from)?;
            for entry in dir.flatten() {
                let name = entry.file_name();
                let kind = match entry.file_type() {
                    Ok(t) if t.is_dir() => FileType::Directory,
                    Ok(t) if t.is_symlink() => FileType::Symlink,
                    _ => FileType::RegularFile,
                };
                let child = state.inode(&rel.join(&name));
                entries.push((child, kind, name));
            }
            Ok(entries)
        })();
        match result {
            Ok(entries) => {
                for (i, (child, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(*child), (i + 1) as u64, *kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ds: bool,
        reply: ReplyEmpty,
    ) {
        // Directory operations are durable at once (see the module header).
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let state = self.state();
        match nix_statvfs(&state.backing) {
            Ok(s) => reply.statfs(s.0, s.1, s.2, s.3, s.4, s.5, 255, s.5),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

/// Opens `path` with the kernel's open flags (`O_CREAT` with `mode` on create).
fn open_with(path: &Path, flags: i32, mode: Option<u32>) -> Result<File, Errno> {
    let access = flags & libc::O_ACCMODE;
    let mut options = OpenOptions::new();
    options
        // Always readable: the journal reads the bytes a write or truncation replaces.
        .read(true)
        .write(access == libc::O_WRONLY || access == libc::O_RDWR)
        // Appends are positioned writes from the kernel: O_APPEND is not passed on.
        .custom_flags(flags & !(libc::O_ACCMODE | libc::O_APPEND | libc::O_CREAT | libc::O_TRUNC));
    if flags & libc::O_CREAT != 0 {
        options.create(true).mode(mode.unwrap_or(0o644));
    }
    // O_TRUNC is left to the caller, which journals what it cuts (`truncate_on_open`).
    options.open(path).map_err(Errno::from)
}

/// Applies an open's `O_TRUNC` to `file`, journaling the durable bytes it cuts.
fn truncate_on_open(
    journals: &mut Journals,
    rel: &Path,
    file: &File,
    flags: i32,
) -> Result<(), Errno> {
    if flags & libc::O_TRUNC == 0 {
        return Ok(());
    }
    journals
        .before_truncate(rel, file, 0)
        .and_then(|()| file.set_len(0))
        .map_err(Errno::from)
}

/// (blocks, free, available, files, free files, block size) of the backing filesystem.
fn nix_statvfs(path: &Path) -> Result<(u64, u64, u64, u64, u64, u32), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(Errno::from(io::Error::last_os_error()));
    }
    Ok((
        s.f_blocks,
        s.f_bfree,
        s.f_bavail,
        s.f_files,
        s.f_ffree,
        u32::try_from(s.f_bsize).unwrap_or(4096),
    ))
}
