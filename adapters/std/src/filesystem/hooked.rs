//! A file system that passes every call to another one, with hooks around each: for tests
//! that fail, hold, count or skip chosen operations (fault injection, kill points) over the
//! real file system or the simulated one.
//!
//! Every method of [`FileSystem`] and [`FsFile`] is passed on, the provided ones included, so
//! a test runs exactly what the inner file system ships (a wrapper written by hand that forgets
//! one falls back to the trait's default: `write_back`'s is "unsupported", and walden-std then
//! syncs instead).

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{DirEntry, FileSystem, FsFile, Job, Metadata, Mutation, OpenMode, Tuning, Worker};

/// One call a [`Hooked`] file system is about to make, named by its [`FileSystem`] or
/// [`FsFile`] method. The fields are the method's arguments, named as there (`len` is a
/// buffer's length for reads and writes); a file's calls carry the path it was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields: see above
pub enum Op<'a> {
    /// [`FileSystem::create_dir_all`].
    CreateDirAll { path: &'a Path },
    /// [`FileSystem::metadata`].
    Metadata { path: &'a Path },
    /// [`FileSystem::symlink_metadata`].
    SymlinkMetadata { path: &'a Path },
    /// [`FileSystem::open`].
    Open { path: &'a Path, mode: OpenMode },
    /// [`FileSystem::open_dir`].
    OpenDir { path: &'a Path },
    /// [`FileSystem::hard_link`].
    HardLink { original: &'a Path, link: &'a Path },
    /// [`FileSystem::rename`].
    Rename { from: &'a Path, to: &'a Path },
    /// [`FileSystem::remove_file`].
    RemoveFile { path: &'a Path },
    /// [`FileSystem::read_dir`].
    ReadDir { path: &'a Path },
    /// [`FsFile::read_at`].
    Read {
        path: &'a Path,
        offset: u64,
        len: usize,
    },
    /// [`FsFile::write_all_at`].
    Write {
        path: &'a Path,
        offset: u64,
        len: usize,
    },
    /// [`FsFile::sync_data`].
    SyncData { path: &'a Path },
    /// [`FsFile::sync_all`]; `dir` if the file was opened with [`FileSystem::open_dir`].
    SyncAll { path: &'a Path, dir: bool },
    /// [`FsFile::write_back`].
    WriteBack {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
    /// [`FsFile::write_zeroes`] (skipped: reported as not offered, so the caller writes the
    /// zeros itself).
    WriteZeroes {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
    /// [`FsFile::start_write_back`] (it returns nothing: a failure from the hook is dropped).
    StartWriteBack {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
    /// [`FsFile::set_len`].
    SetLen { path: &'a Path, len: u64 },
    /// [`FsFile::len`].
    Len { path: &'a Path },
    /// [`FsFile::allocate`].
    Allocate { path: &'a Path, len: u64 },
    /// [`FsFile::forget_cache`].
    ForgetCache { path: &'a Path },
    /// [`FsFile::try_lock`].
    TryLock { path: &'a Path },
    /// [`FsFile::try_lock_shared`].
    TryLockShared { path: &'a Path },
}

impl Op<'_> {
    /// Whether the call may change what the file system holds, or what a crash keeps of it:
    /// writes, syncs, length changes, allocations, names (creating, linking, renaming,
    /// removing) and opens that may create. These are the moments a crash test stops at.
    /// Reads, lookups, locks and write-back hints are not.
    pub fn changes(&self) -> bool {
        match self {
            Op::CreateDirAll { .. }
            | Op::HardLink { .. }
            | Op::Rename { .. }
            | Op::RemoveFile { .. }
            | Op::Write { .. }
            | Op::WriteZeroes { .. }
            | Op::SyncData { .. }
            | Op::SyncAll { .. }
            | Op::SetLen { .. }
            | Op::Allocate { .. } => true,
            Op::Open { mode, .. } => matches!(mode, OpenMode::CreateNew | OpenMode::CreateOrOpen),
            _ => false,
        }
    }

    /// The path the call is about (a link's original, a rename's source).
    pub fn path(&self) -> &Path {
        match *self {
            Op::CreateDirAll { path }
            | Op::Metadata { path }
            | Op::SymlinkMetadata { path }
            | Op::Open { path, .. }
            | Op::OpenDir { path }
            | Op::RemoveFile { path }
            | Op::ReadDir { path }
            | Op::Read { path, .. }
            | Op::Write { path, .. }
            | Op::SyncData { path }
            | Op::SyncAll { path, .. }
            | Op::WriteBack { path, .. }
            | Op::WriteZeroes { path, .. }
            | Op::StartWriteBack { path, .. }
            | Op::SetLen { path, .. }
            | Op::Len { path }
            | Op::Allocate { path, .. }
            | Op::ForgetCache { path }
            | Op::TryLock { path }
            | Op::TryLockShared { path } => path,
            Op::HardLink { original, .. } => original,
            Op::Rename { from, .. } => from,
        }
    }
}

/// What [`Hooks::before`] decides for a call.
#[derive(Debug)]
pub enum Before {
    /// Make it.
    Run,
    /// Do not make it; return this error instead.
    Fail(io::Error),
    /// Do not make it; report success (a call that returns nothing but success: a sync, a
    /// write, a removal). A call that returns a value (a read, a length, an open) is made.
    Skip,
}

/// What a [`Hooked`] file system does around its inner one's calls. Every method has a
/// default that changes nothing.
pub trait Hooks: Send + Sync + 'static {
    /// Called before each call; see [`Before`].
    fn before(&self, op: &Op<'_>) -> Before {
        let _ = op;
        Before::Run
    }

    /// Called after each call that was made, with its error if it failed.
    fn after(&self, op: &Op<'_>, error: Option<&io::Error>) {
        let _ = (op, error);
    }

    /// [`FileSystem::spawn`]: the inner file system's by default.
    fn spawn<F: FileSystem>(&self, inner: &F, name: &str, job: Job) -> io::Result<Worker> {
        inner.spawn(name, job)
    }

    /// [`FileSystem::tuning`]: the inner file system's by default.
    fn tuning<F: FileSystem>(&self, inner: &F) -> Tuning {
        inner.tuning()
    }

    /// [`FileSystem::random_seed`]: the inner file system's by default.
    fn random_seed<F: FileSystem>(&self, inner: &F) -> u64 {
        inner.random_seed()
    }

    /// [`FileSystem::mutation`]: the inner file system's by default. Tests only.
    #[doc(hidden)]
    fn mutation<F: FileSystem>(&self, inner: &F) -> Option<Mutation> {
        inner.mutation()
    }
}

/// `F` with [`Hooks`] `H` around every call: for tests that inject failures, hold syncs,
/// count operations or kill the process at one (walden's own kill, fault and power-loss tests
/// are built on it).
///
/// ```
/// use std::io;
/// use walden_std::{Before, Hooked, Hooks, Op, Options, OsFs, Wal};
///
/// /// Every sync fails, as on a disk that died.
/// struct DeadDisk;
///
/// impl Hooks for DeadDisk {
///     fn before(&self, op: &Op<'_>) -> Before {
///         match op {
///             Op::SyncData { .. } | Op::SyncAll { .. } => Before::Fail(io::Error::other("EIO")),
///             _ => Before::Run,
///         }
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let fs = Hooked::new(OsFs, DeadDisk);
/// assert!(Wal::open_in(fs, dir.path(), Options::default()).is_err());
/// # Ok::<(), io::Error>(())
/// ```
pub struct Hooked<F, H> {
    inner: F,
    hooks: Arc<H>,
}

impl<F: Clone, H> Clone for Hooked<F, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hooks: Arc::clone(&self.hooks),
        }
    }
}

impl<F: FileSystem, H: Hooks> Hooked<F, H> {
    /// `inner` with `hooks` around its calls.
    pub fn new(inner: F, hooks: H) -> Self {
        Self {
            inner,
            hooks: Arc::new(hooks),
        }
    }

    /// The file system the calls go to.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    fn file(&self, file: F::File, path: &Path, dir: bool) -> HookedFile<F::File, H> {
        HookedFile {
            file,
            path: path.into(),
            dir,
            hooks: Arc::clone(&self.hooks),
        }
    }
}

/// Makes `call` between the hooks. `skipped` is what a [`Before::Skip`] returns: `None` for
/// a call that returns a value, which is then made.
fn hooked<H: Hooks, T>(
    hooks: &H,
    op: Op<'_>,
    skipped: Option<T>,
    call: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    match hooks.before(&op) {
        Before::Run => {}
        Before::Fail(e) => return Err(e),
        Before::Skip => {
            if let Some(value) = skipped {
                return Ok(value);
            }
        }
    }
    let result = call();
    hooks.after(&op, result.as_ref().err());
    result
}

/// An open file of a [`Hooked`] file system.
pub struct HookedFile<T, H> {
    file: T,
    path: Box<Path>,
    dir: bool,
    hooks: Arc<H>,
}

impl<T, H> HookedFile<T, H> {
    /// The inner file system's file.
    pub fn inner(&self) -> &T {
        &self.file
    }

    /// The path it was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<T: FsFile, H: Hooks> FsFile for HookedFile<T, H> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let op = Op::Read {
            path: &self.path,
            offset,
            len: buf.len(),
        };
        hooked(&*self.hooks, op, None, || self.file.read_at(buf, offset))
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let op = Op::Write {
            path: &self.path,
            offset,
            len: buf.len(),
        };
        hooked(&*self.hooks, op, Some(()), || {
            self.file.write_all_at(buf, offset)
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        let op = Op::SyncData { path: &self.path };
        hooked(&*self.hooks, op, Some(()), || self.file.sync_data())
    }

    fn sync_all(&self) -> io::Result<()> {
        let op = Op::SyncAll {
            path: &self.path,
            dir: self.dir,
        };
        hooked(&*self.hooks, op, Some(()), || self.file.sync_all())
    }

    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        let op = Op::WriteBack {
            path: &self.path,
            offset,
            len,
        };
        hooked(&*self.hooks, op, Some(()), || {
            self.file.write_back(offset, len)
        })
    }

    fn start_write_back(&self, offset: u64, len: u64) {
        let op = Op::StartWriteBack {
            path: &self.path,
            offset,
            len,
        };
        let _ = hooked(&*self.hooks, op, Some(()), || {
            self.file.start_write_back(offset, len);
            Ok(())
        });
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let op = Op::SetLen {
            path: &self.path,
            len,
        };
        hooked(&*self.hooks, op, Some(()), || self.file.set_len(len))
    }

    fn len(&self) -> io::Result<u64> {
        let op = Op::Len { path: &self.path };
        hooked(&*self.hooks, op, None, || self.file.len())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<bool> {
        let op = Op::WriteZeroes {
            path: &self.path,
            offset,
            len,
        };
        hooked(&*self.hooks, op, Some(false), || {
            self.file.write_zeroes(offset, len)
        })
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let op = Op::Allocate {
            path: &self.path,
            len,
        };
        hooked(&*self.hooks, op, Some(()), || self.file.allocate(len))
    }

    fn forget_cache(&self) -> io::Result<()> {
        let op = Op::ForgetCache { path: &self.path };
        hooked(&*self.hooks, op, Some(()), || self.file.forget_cache())
    }

    fn try_lock(&self) -> io::Result<()> {
        let op = Op::TryLock { path: &self.path };
        hooked(&*self.hooks, op, Some(()), || self.file.try_lock())
    }

    fn try_lock_shared(&self) -> io::Result<()> {
        let op = Op::TryLockShared { path: &self.path };
        hooked(&*self.hooks, op, Some(()), || self.file.try_lock_shared())
    }
}

impl<F: FileSystem, H: Hooks> FileSystem for Hooked<F, H> {
    type File = HookedFile<F::File, H>;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let op = Op::CreateDirAll { path };
        hooked(&*self.hooks, op, Some(()), || {
            self.inner.create_dir_all(path)
        })
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let op = Op::Metadata { path };
        hooked(&*self.hooks, op, None, || self.inner.metadata(path))
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        let op = Op::SymlinkMetadata { path };
        hooked(&*self.hooks, op, None, || self.inner.symlink_metadata(path))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File> {
        let op = Op::Open { path, mode };
        let file = hooked(&*self.hooks, op, None, || self.inner.open(path, mode))?;
        Ok(self.file(file, path, false))
    }

    fn open_dir(&self, path: &Path) -> io::Result<Self::File> {
        let op = Op::OpenDir { path };
        let file = hooked(&*self.hooks, op, None, || self.inner.open_dir(path))?;
        Ok(self.file(file, path, true))
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        let op = Op::HardLink { original, link };
        hooked(&*self.hooks, op, Some(()), || {
            self.inner.hard_link(original, link)
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let op = Op::Rename { from, to };
        hooked(&*self.hooks, op, Some(()), || self.inner.rename(from, to))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let op = Op::RemoveFile { path };
        hooked(&*self.hooks, op, Some(()), || self.inner.remove_file(path))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let op = Op::ReadDir { path };
        hooked(&*self.hooks, op, None, || self.inner.read_dir(path))
    }

    fn spawn(&self, name: &str, job: Job) -> io::Result<Worker> {
        self.hooks.spawn(&self.inner, name, job)
    }

    fn check_writable_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.check_writable_dir(path)
    }

    fn tuning(&self) -> Tuning {
        self.hooks.tuning(&self.inner)
    }

    fn random_seed(&self) -> u64 {
        self.hooks.random_seed(&self.inner)
    }

    fn mutation(&self) -> Option<Mutation> {
        self.hooks.mutation(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::OsFs;

    /// Records every call, fails writes to `fail`, skips syncs of directories.
    #[derive(Default)]
    struct Log {
        seen: Mutex<Vec<String>>,
        fail: Option<&'static str>,
    }

    impl Hooks for Log {
        fn before(&self, op: &Op<'_>) -> Before {
            let name = op
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            self.seen
                .lock()
                .unwrap()
                .push(format!("{name}:{}", op.changes()));
            match op {
                Op::Write { .. } if Some(name.as_str()) == self.fail => {
                    Before::Fail(io::ErrorKind::StorageFull.into())
                }
                Op::SyncAll { dir: true, .. } => Before::Skip,
                _ => Before::Run,
            }
        }
    }

    #[test]
    fn every_call_passes_through_the_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Hooked::new(
            OsFs,
            Log {
                fail: Some("b"),
                ..Log::default()
            },
        );
        let a = fs.open(&dir.path().join("a"), OpenMode::CreateNew).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        let mut buf = [0; 5];
        assert_eq!(a.read_at(&mut buf, 0).unwrap(), 5);
        assert_eq!(&buf, b"hello");
        // The wrapper passes on the provided methods too (OsFs implements `write_back`).
        #[cfg(target_os = "linux")]
        a.write_back(0, 5).unwrap();
        let b = fs.open(&dir.path().join("b"), OpenMode::CreateNew).unwrap();
        let e = b.write_all_at(b"x", 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(b.len().unwrap(), 0, "a failed call is not made");
        fs.open_dir(dir.path()).unwrap().sync_all().unwrap();
        let seen = fs.hooks().seen.lock().unwrap().clone();
        let mut expected = vec!["a:true", "a:true", "a:true", "a:false"];
        if cfg!(target_os = "linux") {
            expected.push("a:false");
        }
        let name = dir.path().file_name().unwrap().to_string_lossy();
        let (open_dir, sync_dir) = (format!("{name}:false"), format!("{name}:true"));
        expected.extend(["b:true", "b:true", "b:false", &open_dir, &sync_dir]);
        assert_eq!(seen, expected);
    }
}
