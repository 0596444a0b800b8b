//! The file system the files explorer runs walden-std on: [`SimFileSystem`] behind a wrapper
//! ([`TestFs`]) that can break the file protocol on purpose ([`FileVariant`]), to prove the
//! explorer catches each broken variant.

use std::io;
use std::path::Path;

use walden_std::{
    DirEntry, FileSystem, FsFile, Job, Metadata, Mutation, OpenMode, SimFile, SimFileSystem,
    Tuning, Worker,
};

/// What the files explorer runs: walden-std as it ships, or with one deliberate defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileVariant {
    /// walden-std as it ships.
    Correct,
    /// `fsync` of the log directory does nothing: a rotation's new segment (a linked spare or
    /// a fresh file) may vanish after a power loss, with acknowledged records in it.
    DirSyncIsNoop,
    /// The write buffer reports `sync` before handing its bytes to the file
    /// ([`Mutation::SyncSkipsFlush`]).
    SyncSkipsFlush,
    /// The background zero-fill ignores the writer's stop signal and writes zeros over
    /// records ([`Mutation::FillIgnoresStop`]).
    FillIgnoresStop,
    /// Spare files hold a copy of the previous segment instead of zeros
    /// ([`Mutation::StaleSpare`]).
    StaleSpare,
    /// `fadvise(DONTNEED)` does nothing: a process restarted after a failed `fdatasync` reads
    /// cached data the disk never got and calls it durable.
    ForgetCacheIsNoop,
}

impl FileVariant {
    /// Every variant, the correct one first.
    pub const ALL: [FileVariant; 6] = [
        FileVariant::Correct,
        FileVariant::DirSyncIsNoop,
        FileVariant::SyncSkipsFlush,
        FileVariant::FillIgnoresStop,
        FileVariant::StaleSpare,
        FileVariant::ForgetCacheIsNoop,
    ];

    /// The walden-std mutation this variant turns on, if any.
    pub fn mutation(self) -> Option<Mutation> {
        match self {
            FileVariant::SyncSkipsFlush => Some(Mutation::SyncSkipsFlush),
            FileVariant::FillIgnoresStop => Some(Mutation::FillIgnoresStop),
            FileVariant::StaleSpare => Some(Mutation::StaleSpare),
            _ => None,
        }
    }
}

/// [`SimFileSystem`] with the file-system-level defects of a [`FileVariant`].
#[derive(Clone, Debug)]
pub struct TestFs {
    sim: SimFileSystem,
    variant: FileVariant,
}

impl TestFs {
    /// Wraps `sim` (which should already carry `variant.mutation()`).
    pub fn new(sim: SimFileSystem, variant: FileVariant) -> Self {
        Self { sim, variant }
    }

    /// The simulated file system.
    pub fn sim(&self) -> &SimFileSystem {
        &self.sim
    }

    /// The variant.
    pub fn variant(&self) -> FileVariant {
        self.variant
    }
}

/// An open file of a [`TestFs`].
pub struct TestFile {
    inner: SimFile,
    sync_is_noop: bool,
    forget_is_noop: bool,
}

impl FsFile for TestFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.sync_is_noop {
            return Ok(());
        }
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        if self.sync_is_noop {
            return Ok(());
        }
        self.inner.sync_all()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }

    fn forget_cache(&self) -> io::Result<()> {
        if self.forget_is_noop {
            return Ok(());
        }
        self.inner.forget_cache()
    }

    fn try_lock(&self) -> io::Result<()> {
        self.inner.try_lock()
    }
}

impl TestFs {
    fn wrap(&self, inner: SimFile, is_log_dir: bool) -> TestFile {
        TestFile {
            inner,
            sync_is_noop: is_log_dir && self.variant == FileVariant::DirSyncIsNoop,
            forget_is_noop: self.variant == FileVariant::ForgetCacheIsNoop,
        }
    }
}

impl FileSystem for TestFs {
    type File = TestFile;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.sim.create_dir_all(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.sim.metadata(path)
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.sim.symlink_metadata(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<TestFile> {
        Ok(self.wrap(self.sim.open(path, mode)?, false))
    }

    fn open_dir(&self, path: &Path) -> io::Result<TestFile> {
        let is_log_dir = path == self.sim.root();
        Ok(self.wrap(self.sim.open_dir(path)?, is_log_dir))
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        self.sim.hard_link(original, link)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.sim.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.sim.remove_file(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.sim.read_dir(path)
    }

    fn spawn(&self, name: &str, job: Job) -> io::Result<Worker> {
        self.sim.spawn(name, job)
    }

    fn tuning(&self) -> Tuning {
        self.sim.tuning()
    }

    fn random_seed(&self) -> u64 {
        self.sim.random_seed()
    }

    fn mutation(&self) -> Option<Mutation> {
        self.sim.mutation()
    }
}
