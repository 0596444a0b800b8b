//! The in-memory FUSE file system: a durable image under a volatile one.

use core::time::Duration;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// The inode number of the root directory.
const ROOT: u64 = 1;

/// No attribute or entry caching in the kernel: every lookup and `stat` asks the server.
const TTL: Duration = Duration::ZERO;

/// One file or directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file's bytes (its length is the file's length).
    File(Vec<u8>),
    /// A directory's entries, name to inode.
    Dir(BTreeMap<OsString, u64>),
}

/// A whole file system's state: inodes by number, the root directory at 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    nodes: BTreeMap<u64, Node>,
}

impl Default for Image {
    /// An empty root directory.
    fn default() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(BTreeMap::new()));
        Self { nodes }
    }
}

impl Image {
    /// The node at `path` (names separated by `/`, relative to the root), if any.
    pub fn node(&self, path: &str) -> Option<&Node> {
        let mut ino = ROOT;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            match self.nodes.get(&ino)? {
                Node::Dir(entries) => ino = *entries.get(OsStr::new(name))?,
                Node::File(_) => return None,
            }
        }
        self.nodes.get(&ino)
    }

    /// Entries reachable from the root, as `path: length` (files) or `path/` (directories),
    /// one a line: for failure reports.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        self.list(ROOT, "", &mut out);
        out
    }

    /// Everything reachable from the root: each path with its bytes (`None` for a
    /// directory).
    pub fn reachable(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![(ROOT, String::new())];
        while let Some((ino, prefix)) = stack.pop() {
            if let Some(Node::Dir(entries)) = self.nodes.get(&ino) {
                for (name, child) in entries {
                    let path = format!("{prefix}/{}", name.to_string_lossy());
                    match self.nodes.get(child) {
                        Some(Node::File(data)) => {
                            out.insert(path, Some(data.clone()));
                        }
                        _ => {
                            out.insert(path.clone(), None);
                            stack.push((*child, path));
                        }
                    }
                }
            }
        }
        out
    }

    fn list(&self, ino: u64, prefix: &str, out: &mut String) {
        if let Some(Node::Dir(entries)) = self.nodes.get(&ino) {
            for (name, child) in entries {
                let path = format!("{prefix}{}", name.to_string_lossy());
                match self.nodes.get(child) {
                    Some(Node::File(data)) => out.push_str(&format!("{path}: {}\n", data.len())),
                    Some(Node::Dir(_)) => {
                        out.push_str(&format!("{path}/\n"));
                        self.list(*child, &format!("{path}/"), out);
                    }
                    None => out.push_str(&format!("{path}: dangling\n")),
                }
            }
        }
    }

    fn next_ino(&self) -> u64 {
        self.nodes.keys().next_back().map_or(ROOT + 1, |k| k + 1)
    }
}

/// Deliberately broken file-system behaviours, to prove the harness can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BrokenFs {
    /// `fsync`/`fdatasync` of a file answers success and makes nothing durable.
    FsyncNoop,
    /// `fsync` of a directory answers success and makes nothing durable.
    FsyncDirNoop,
}

/// Which legal state the unsynced changes are left in by a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashPlan {
    /// Every unsynced change is lost: the durable image alone (the strictest legal state).
    DropAll,
    /// Every unsynced change is kept: the volatile image (what a process kill leaves).
    KeepAll,
    /// Each unsynced change independently kept or lost, as the seed says, applied in their
    /// order over the durable image: a write (kept whole, or torn to a prefix of whole
    /// 512-byte sectors), a length change, or one directory's entry change (a rename within a
    /// directory is one change: both names or neither).
    Subset(u64),
}

/// The kind of a state-changing operation, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// `write`.
    Write,
    /// `setattr` with a size (`ftruncate`).
    Truncate,
    /// `fallocate`.
    Fallocate,
    /// `create` (`open` with `O_CREAT` of a missing name).
    Create,
    /// `mkdir`.
    Mkdir,
    /// `unlink`.
    Unlink,
    /// `rename`.
    Rename,
    /// `link`.
    Link,
    /// `fsync`/`fdatasync` of a file.
    Fsync,
    /// `fsync` of a directory.
    FsyncDir,
}

struct State {
    vol: Image,
    dur: Image,
    /// State-changing operations answered so far (successful or not).
    ops: u64,
    /// The operation after which the file system freezes.
    crash_after: Option<u64>,
    frozen: bool,
    broken: Option<BrokenFs>,
    /// Every counted operation, in order.
    trace: Vec<OpKind>,
    /// The changes not yet durable, in order.
    pending: Vec<Pending>,
}

/// A change not yet durable.
#[derive(Clone, Debug)]
enum Pending {
    /// Bytes written at an offset of a file.
    Write {
        ino: u64,
        offset: usize,
        bytes: Vec<u8>,
    },
    /// A file's length set (`ftruncate`), or grown (`fallocate` without `KEEP_SIZE`).
    Len {
        ino: u64,
        len: usize,
        grow_only: bool,
    },
    /// Entry changes of one directory, together: each name to an inode, or removed.
    Names {
        dir: u64,
        changes: Vec<(OsString, Option<u64>)>,
    },
}

impl Pending {
    fn file(&self) -> Option<u64> {
        match self {
            Pending::Write { ino, .. } | Pending::Len { ino, .. } => Some(*ino),
            Pending::Names { .. } => None,
        }
    }

    /// Applies the change to `out` (`vol` says what kind a new child is); a write kept
    /// only up to `keep` bytes.
    fn apply(&self, out: &mut Image, vol: &Image, keep: usize) {
        match self {
            Pending::Write { ino, offset, bytes } => {
                let data = file_in(out, *ino);
                let bytes = &bytes[..keep.min(bytes.len())];
                let end = offset + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*offset..end].copy_from_slice(bytes);
            }
            Pending::Len {
                ino,
                len,
                grow_only,
            } => {
                let data = file_in(out, *ino);
                if !grow_only || data.len() < *len {
                    data.resize(*len, 0);
                }
            }
            Pending::Names { dir, changes } => {
                for (name, child) in changes {
                    if let Some(child) = child {
                        add_empty(out, vol, *child);
                    }
                    let entries = match out.nodes.entry(*dir).or_insert(Node::Dir(BTreeMap::new()))
                    {
                        Node::Dir(entries) => entries,
                        Node::File(_) => return,
                    };
                    match child {
                        Some(child) => entries.insert(name.clone(), *child),
                        None => entries.remove(name),
                    };
                }
            }
        }
    }
}

/// The bytes of file `ino` in `image` (an empty file if it has none there).
fn file_in(image: &mut Image, ino: u64) -> &mut Vec<u8> {
    let node = image.nodes.entry(ino).or_insert(Node::File(Vec::new()));
    if let Node::Dir(_) = node {
        *node = Node::File(Vec::new());
    }
    match node {
        Node::File(data) => data,
        Node::Dir(_) => unreachable!("replaced above"),
    }
}

/// Gives `image` an empty node for `child` (of the kind it is in `vol`) if it has none.
fn add_empty(image: &mut Image, vol: &Image, child: u64) {
    image
        .nodes
        .entry(child)
        .or_insert_with(|| match vol.nodes.get(&child) {
            Some(Node::Dir(_)) => Node::Dir(BTreeMap::new()),
            _ => Node::File(Vec::new()),
        });
}

/// The state a mounted [`LazyFs`] shares with the test.
pub struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// A file system whose durable and volatile images are both `image`.
    pub fn new(image: Image, broken: Option<BrokenFs>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                vol: image.clone(),
                dur: image,
                ops: 0,
                crash_after: None,
                frozen: false,
                broken,
                trace: Vec::new(),
                pending: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Freezes after the `n`-th state-changing operation from now on (`None`: never).
    pub fn crash_after(&self, n: Option<u64>) {
        let mut s = self.lock();
        s.crash_after = n.map(|n| s.ops.saturating_add(n));
        if n == Some(0) {
            s.frozen = true;
        }
    }

    /// Freezes now: every further operation fails with `EIO`.
    pub fn freeze(&self) {
        self.lock().frozen = true;
    }

    /// Whether the file system is frozen.
    pub fn frozen(&self) -> bool {
        self.lock().frozen
    }

    /// State-changing operations answered so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The counted operations, in order.
    pub fn trace(&self) -> Vec<OpKind> {
        self.lock().trace.clone()
    }

    /// The image a power loss now would leave, as `plan` resolves the unsynced changes.
    pub fn crash_image(&self, plan: CrashPlan) -> Image {
        let s = self.lock();
        match plan {
            CrashPlan::DropAll => s.dur.clone(),
            CrashPlan::KeepAll => s.vol.clone(),
            CrashPlan::Subset(seed) => {
                let mut rng = seed;
                let mut out = s.dur.clone();
                for p in &s.pending {
                    let r = splitmix(&mut rng);
                    if r & 1 == 0 {
                        continue; // lost
                    }
                    let keep = match p {
                        // One kept write in four is torn: a prefix of whole sectors.
                        Pending::Write { bytes, .. } if (r >> 1) & 3 == 0 => {
                            ((r >> 3) as usize % (bytes.len() / 512 + 1)) * 512
                        }
                        _ => usize::MAX,
                    };
                    p.apply(&mut out, &s.vol, keep);
                }
                out
            }
        }
    }

    /// The durable image with every pending change applied: equal to the volatile image in
    /// everything reachable (a check of the model's own bookkeeping).
    pub fn replayed_image(&self) -> Image {
        let s = self.lock();
        let mut out = s.dur.clone();
        for p in &s.pending {
            p.apply(&mut out, &s.vol, usize::MAX);
        }
        out
    }

    /// The volatile image: what the mounted file system shows now.
    pub fn volatile_image(&self) -> Image {
        self.lock().vol.clone()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Gives directory `ino` of `dur` the entries `entries` (from `vol`); a child new to `dur`
/// starts empty there (its contents become durable through its own sync).
fn make_dir_durable(dur: &mut Image, vol: &Image, ino: u64, entries: &BTreeMap<OsString, u64>) {
    for child in entries.values() {
        add_empty(dur, vol, *child);
    }
    dur.nodes.insert(ino, Node::Dir(entries.clone()));
}

/// The FUSE file system: answers from the volatile image, makes changes durable only on
/// `fsync`/`fsyncdir`, and freezes (every operation `EIO`) after the chosen operation.
pub struct LazyFs {
    shared: Arc<Shared>,
}

impl LazyFs {
    /// A file system over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Runs a read-only operation (`EIO` once frozen).
    fn look<T>(&self, f: impl FnOnce(&Image) -> Result<T, Errno>) -> Result<T, Errno> {
        let s = self.shared.lock();
        if s.frozen {
            return Err(Errno::EIO);
        }
        f(&s.vol)
    }

    /// Runs a state-changing operation, counts it, and freezes if it was the chosen one.
    fn change<T>(
        &self,
        kind: OpKind,
        f: impl FnOnce(&mut State) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let mut s = self.shared.lock();
        if s.frozen {
            return Err(Errno::EIO);
        }
        let result = f(&mut s);
        s.ops += 1;
        s.trace.push(kind);
        if s.crash_after == Some(s.ops) {
            s.frozen = true;
        }
        result
    }
}

fn attr(image: &Image, ino: u64) -> Result<FileAttr, Errno> {
    let node = image.nodes.get(&ino).ok_or(Errno::ENOENT)?;
    let (kind, size, perm, nlink) = match node {
        Node::File(data) => {
            let links = image
                .nodes
                .values()
                .map(|n| match n {
                    Node::Dir(e) => e.values().filter(|c| **c == ino).count() as u32,
                    Node::File(_) => 0,
                })
                .sum();
            (FileType::RegularFile, data.len() as u64, 0o644, links)
        }
        Node::Dir(_) => (FileType::Directory, 0, 0o755, 2),
    };
    let t = SystemTime::UNIX_EPOCH;
    Ok(FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind,
        perm,
        nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    })
}

fn entries_mut(image: &mut Image, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
    match image.nodes.get_mut(&dir) {
        Some(Node::Dir(entries)) => Ok(entries),
        Some(Node::File(_)) => Err(Errno::ENOTDIR),
        None => Err(Errno::ENOENT),
    }
}

fn entry(image: &Image, dir: u64, name: &OsStr) -> Result<u64, Errno> {
    match image.nodes.get(&dir) {
        Some(Node::Dir(entries)) => entries.get(name).copied().ok_or(Errno::ENOENT),
        Some(Node::File(_)) => Err(Errno::ENOTDIR),
        None => Err(Errno::ENOENT),
    }
}

fn data_mut(image: &mut Image, ino: u64) -> Result<&mut Vec<u8>, Errno> {
    match image.nodes.get_mut(&ino) {
        Some(Node::File(data)) => Ok(data),
        Some(Node::Dir(_)) => Err(Errno::EISDIR),
        None => Err(Errno::ENOENT),
    }
}

fn len(size: u64) -> Result<usize, Errno> {
    usize::try_from(size).map_err(|_| Errno::EFBIG)
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.look(|i| attr(i, entry(i, parent.0, name)?)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.look(|i| attr(i, ino.0)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
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
        // Only the size is kept; modes, owners and times are accepted and ignored.
        let result = match size {
            Some(size) => self.change(OpKind::Truncate, |s| {
                let size = len(size)?;
                data_mut(&mut s.vol, ino.0)?.resize(size, 0);
                s.pending.push(Pending::Len {
                    ino: ino.0,
                    len: size,
                    grow_only: false,
                });
                attr(&s.vol, ino.0)
            }),
            None => self.look(|i| attr(i, ino.0)),
        };
        match result {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.change(OpKind::Mkdir, |s| {
            let ino = s.vol.next_ino();
            let entries = entries_mut(&mut s.vol, parent.0)?;
            if entries.contains_key(name) {
                return Err(Errno::EEXIST);
            }
            entries.insert(name.to_owned(), ino);
            s.vol.nodes.insert(ino, Node::Dir(BTreeMap::new()));
            s.pending.push(Pending::Names {
                dir: parent.0,
                changes: vec![(name.to_owned(), Some(ino))],
            });
            attr(&s.vol, ino)
        });
        match result {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.change(OpKind::Unlink, |s| {
            let ino = entry(&s.vol, parent.0, name)?;
            if let Some(Node::Dir(_)) = s.vol.nodes.get(&ino) {
                return Err(Errno::EISDIR);
            }
            // The inode stays (open descriptors still reach it; the durable image may still
            // name it).
            entries_mut(&mut s.vol, parent.0)?.remove(name);
            s.pending.push(Pending::Names {
                dir: parent.0,
                changes: vec![(name.to_owned(), None)],
            });
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
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.change(OpKind::Rename, |s| {
            if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
                return Err(Errno::EINVAL);
            }
            let ino = entry(&s.vol, parent.0, name)?;
            if let Ok(existing) = entry(&s.vol, newparent.0, newname) {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                if existing == ino {
                    return Ok(()); // the same file: rename(2) does nothing
                }
                if let Some(Node::Dir(_)) = s.vol.nodes.get(&existing) {
                    return Err(Errno::EISDIR);
                }
            }
            entries_mut(&mut s.vol, parent.0)?.remove(name);
            entries_mut(&mut s.vol, newparent.0)?.insert(newname.to_owned(), ino);
            let (from, to) = ((name.to_owned(), None), (newname.to_owned(), Some(ino)));
            if parent == newparent {
                s.pending.push(Pending::Names {
                    dir: parent.0,
                    changes: vec![from, to],
                });
            } else {
                // Across directories each side becomes durable with its own directory.
                s.pending.push(Pending::Names {
                    dir: parent.0,
                    changes: vec![from],
                });
                s.pending.push(Pending::Names {
                    dir: newparent.0,
                    changes: vec![to],
                });
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = self.change(OpKind::Link, |s| {
            match s.vol.nodes.get(&ino.0) {
                Some(Node::File(_)) => {}
                Some(Node::Dir(_)) => return Err(Errno::EPERM),
                None => return Err(Errno::ENOENT),
            }
            let entries = entries_mut(&mut s.vol, newparent.0)?;
            if entries.contains_key(newname) {
                return Err(Errno::EEXIST);
            }
            entries.insert(newname.to_owned(), ino.0);
            s.pending.push(Pending::Names {
                dir: newparent.0,
                changes: vec![(newname.to_owned(), Some(ino.0))],
            });
            attr(&s.vol, ino.0)
        });
        match result {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.look(|i| attr(i, ino.0)) {
            Ok(a) if a.kind == FileType::RegularFile => {
                reply.opened(FileHandle(0), FopenFlags::empty());
            }
            Ok(_) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let result = self.look(|i| match i.nodes.get(&ino.0) {
            Some(Node::File(data)) => {
                let start = len(offset)?.min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                Ok(data[start..end].to_vec())
            }
            Some(Node::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        });
        match result {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        bytes: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let result = self.change(OpKind::Write, |s| {
            let data = data_mut(&mut s.vol, ino.0)?;
            let start = len(offset)?;
            let end = start.checked_add(bytes.len()).ok_or(Errno::EFBIG)?;
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(bytes);
            s.pending.push(Pending::Write {
                ino: ino.0,
                offset: start,
                bytes: bytes.to_vec(),
            });
            Ok(bytes.len() as u32)
        });
        match result {
            Ok(n) => reply.written(n),
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
        match self.look(|_| Ok(())) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // `fsync` and `fdatasync` alike make the file's data and length durable (nothing else
        // of a file's metadata is modelled); its name is its directory's business.
        let result = self.change(OpKind::Fsync, |s| {
            let data = match s.vol.nodes.get(&ino.0) {
                Some(Node::File(data)) => data.clone(),
                Some(Node::Dir(_)) => return Err(Errno::EISDIR),
                None => return Err(Errno::ENOENT),
            };
            if s.broken != Some(BrokenFs::FsyncNoop) {
                s.dur.nodes.insert(ino.0, Node::File(data));
                s.pending.retain(|p| p.file() != Some(ino.0));
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.look(|i| attr(i, ino.0)) {
            Ok(a) if a.kind == FileType::Directory => {
                reply.opened(FileHandle(0), FopenFlags::empty());
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let result = self.look(|i| {
            let Some(Node::Dir(entries)) = i.nodes.get(&ino.0) else {
                return Err(Errno::ENOTDIR);
            };
            let mut list = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (ROOT, FileType::Directory, OsString::from("..")),
            ];
            for (name, child) in entries {
                let kind = match i.nodes.get(child) {
                    Some(Node::Dir(_)) => FileType::Directory,
                    _ => FileType::RegularFile,
                };
                list.push((*child, kind, name.clone()));
            }
            Ok(list)
        });
        match result {
            Ok(list) => {
                for (k, (child, kind, name)) in list.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(child), k as u64 + 1, kind, name) {
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
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.change(OpKind::FsyncDir, |s| {
            let entries = match s.vol.nodes.get(&ino.0) {
                Some(Node::Dir(entries)) => entries.clone(),
                Some(Node::File(_)) => return Err(Errno::ENOTDIR),
                None => return Err(Errno::ENOENT),
            };
            if s.broken != Some(BrokenFs::FsyncDirNoop) {
                let State { dur, vol, .. } = &mut *s;
                make_dir_durable(dur, vol, ino.0, &entries);
                s.pending
                    .retain(|p| !matches!(p, Pending::Names { dir, .. } if *dir == ino.0));
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.look(|_| Ok(())) {
            Ok(()) => reply.statfs(1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 4096, 255, 4096),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = self.change(OpKind::Create, |s| {
            if let Ok(existing) = entry(&s.vol, parent.0, name) {
                if flags & libc::O_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                let a = attr(&s.vol, existing)?;
                if a.kind == FileType::Directory {
                    return Err(Errno::EISDIR);
                }
                return Ok(a);
            }
            let ino = s.vol.next_ino();
            entries_mut(&mut s.vol, parent.0)?.insert(name.to_owned(), ino);
            s.vol.nodes.insert(ino, Node::File(Vec::new()));
            s.pending.push(Pending::Names {
                dir: parent.0,
                changes: vec![(name.to_owned(), Some(ino))],
            });
            attr(&s.vol, ino)
        });
        match result {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let result = self.change(OpKind::Fallocate, |s| {
            let data = data_mut(&mut s.vol, ino.0)?;
            let end = len(offset.checked_add(length).ok_or(Errno::EFBIG)?)?;
            match mode {
                // A reservation: no bytes, no length (space is not modelled).
                libc::FALLOC_FL_KEEP_SIZE => Ok(()),
                0 => {
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    s.pending.push(Pending::Len {
                        ino: ino.0,
                        len: end,
                        grow_only: true,
                    });
                    Ok(())
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
