//! The file system the files explorer runs walden-std on: [`SimFileSystem`] behind a wrapper
//! ([`TestFs`]) that can break the file protocol on purpose ([`FileVariant`]), to prove the
//! explorer catches each broken variant.

use core::sync::atomic::{AtomicBool, Ordering};
use std::io;
use std::path::Path;
use std::sync::Arc;

use walden_std::{
    DirEntry, FileSystem, FsFile, Job, Metadata, Mutation, OpenMode, SimFile, SimFileSystem,
    Tuning, Worker,
};

/// What the files explorer runs: walden-std as it ships, or with one deliberate defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileVariant {
    /// walden-std as it ships.
    Correct,
    /// The directory `fsync` that follows a link does nothing: a rotation's spare, linked
    /// into place as the new segment, may vanish after a power loss with the acknowledged
    /// records appended to it since.
    LinkNotDirSynced,
    /// The write buffer reports `sync` before handing its bytes to the file
    /// ([`Mutation::SyncSkipsFlush`]).
    SyncSkipsFlush,
    /// The background zero-fill ignores the writer's stop signal and writes zeros over
    /// records ([`Mutation::FillIgnoresStop`]).
    FillIgnoresStop,
    /// Spare files hold a copy of the previous segment instead of zeros
    /// ([`Mutation::StaleSpare`]).
    StaleSpare,
    /// A reservation deferred at open is carried out by the first write to any segment, even
    /// a successor created after the reserved one was sealed
    /// ([`Mutation::DeferredReserveAnyWrite`]).
    DeferredReserveAnyWrite,
    /// `fadvise(DONTNEED)` does nothing: a process restarted after a failed `fdatasync` reads
    /// cached data the disk never got and calls it durable.
    ForgetCacheIsNoop,
    /// Closing leaves the clean-close marker even after a failed `fdatasync`
    /// ([`Mutation::CleanAlways`]): the restarted process trusts the page cache and skips
    /// `fadvise(DONTNEED)`.
    CleanAlways,
    /// Opening to replay hands over a sealed segment's records even after damage in the one
    /// before, or a gap ([`Mutation::ReplayIgnoresDamage`]).
    ReplayIgnoresDamage,
    /// A rotation's early syncs (the directory's after the successor's link, the sealed
    /// segment's after its seal) report success without syncing
    /// ([`Mutation::EarlySyncNoop`]).
    EarlySyncNoop,
    /// A replay's read-ahead reads every chunk after a segment's first a byte off
    /// ([`Mutation::ReadAheadMisplaced`]).
    ReadAheadMisplaced,
    /// A removed segment's file is shrunk to nothing before the directory sync that makes its
    /// unlink durable ([`Mutation::ShrinkBeforeUnlinkDurable`]).
    ShrinkBeforeUnlinkDurable,
}

impl FileVariant {
    /// Every variant, the correct one first.
    pub const ALL: [FileVariant; 12] = [
        FileVariant::Correct,
        FileVariant::LinkNotDirSynced,
        FileVariant::SyncSkipsFlush,
        FileVariant::FillIgnoresStop,
        FileVariant::StaleSpare,
        FileVariant::DeferredReserveAnyWrite,
        FileVariant::ForgetCacheIsNoop,
        FileVariant::CleanAlways,
        FileVariant::ReplayIgnoresDamage,
        FileVariant::EarlySyncNoop,
        FileVariant::ReadAheadMisplaced,
        FileVariant::ShrinkBeforeUnlinkDurable,
    ];

    /// The walden-std mutation this variant turns on, if any.
    pub fn mutation(self) -> Option<Mutation> {
        match self {
            FileVariant::SyncSkipsFlush => Some(Mutation::SyncSkipsFlush),
            FileVariant::FillIgnoresStop => Some(Mutation::FillIgnoresStop),
            FileVariant::StaleSpare => Some(Mutation::StaleSpare),
            FileVariant::DeferredReserveAnyWrite => Some(Mutation::DeferredReserveAnyWrite),
            FileVariant::CleanAlways => Some(Mutation::CleanAlways),
            FileVariant::ReplayIgnoresDamage => Some(Mutation::ReplayIgnoresDamage),
            FileVariant::EarlySyncNoop => Some(Mutation::EarlySyncNoop),
            FileVariant::ReadAheadMisplaced => Some(Mutation::ReadAheadMisplaced),
            FileVariant::ShrinkBeforeUnlinkDurable => Some(Mutation::ShrinkBeforeUnlinkDurable),
            _ => None,
        }
    }
}

/// [`SimFileSystem`] with the file-system-level defects of a [`FileVariant`].
#[derive(Clone, Debug)]
pub struct TestFs {
    sim: SimFileSystem,
    variant: FileVariant,
    /// A link was made and the directory not synced since ([`FileVariant::LinkNotDirSynced`]).
    linked: Arc<AtomicBool>,
}

impl TestFs {
    /// Wraps `sim` (which should already carry `variant.mutation()`).
    pub fn new(sim: SimFileSystem, variant: FileVariant) -> Self {
        Self {
            sim,
            variant,
            linked: Arc::new(AtomicBool::new(false)),
        }
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
    /// For the log directory under [`FileVariant::LinkNotDirSynced`]: set while a link waits
    /// for the directory sync that will not happen.
    skip_sync: Option<Arc<AtomicBool>>,
    forget_is_noop: bool,
}

impl TestFile {
    fn skips_sync(&self) -> bool {
        self.skip_sync
            .as_ref()
            .is_some_and(|linked| linked.swap(false, Ordering::AcqRel))
    }
}

impl FsFile for TestFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.skips_sync() {
            return Ok(());
        }
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        if self.skips_sync() {
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
        let skips = is_log_dir && self.variant == FileVariant::LinkNotDirSynced;
        TestFile {
            inner,
            skip_sync: skips.then(|| Arc::clone(&self.linked)),
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
        self.sim.hard_link(original, link)?;
        self.linked.store(true, Ordering::Release);
        Ok(())
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
