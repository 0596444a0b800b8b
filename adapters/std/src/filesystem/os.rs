//! [`OsFs`]: the real file system, over `std::fs` and `rustix`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::{DirEntry, FileKind, FileSystem, FsFile, Job, Metadata, OpenMode, Worker};

/// The operating system's file system: the default everywhere, a zero-sized type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsFs;

fn kind(t: fs::FileType) -> FileKind {
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_file() {
        FileKind::File
    } else if t.is_dir() {
        FileKind::Dir
    } else {
        FileKind::Other
    }
}

fn metadata(m: &fs::Metadata) -> Metadata {
    Metadata {
        kind: kind(m.file_type()),
        len: m.len(),
    }
}

impl FsFile for File {
    #[inline]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    #[inline]
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    #[inline]
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    #[cfg(target_os = "linux")]
    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        sync_file_range(self, offset, len, flags)
    }

    #[cfg(target_os = "linux")]
    fn start_write_back(&self, offset: u64, len: u64) {
        // A hint: its result changes nothing.
        let _ = sync_file_range(self, offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        rustix::fs::fallocate(self, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len)?;
        Ok(())
    }

    fn forget_cache(&self) -> io::Result<()> {
        rustix::fs::fadvise(self, 0, None, rustix::fs::Advice::DontNeed)?;
        Ok(())
    }

    fn try_lock(&self) -> io::Result<()> {
        rustix::fs::flock(self, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        Ok(())
    }

    fn try_lock_shared(&self) -> io::Result<()> {
        rustix::fs::flock(self, rustix::fs::FlockOperation::NonBlockingLockShared)?;
        Ok(())
    }
}

impl FileSystem for OsFs {
    type File = File;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        Ok(metadata(&fs::metadata(path)?))
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        Ok(metadata(&fs::symlink_metadata(path)?))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<File> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
            OpenMode::CreateOrOpen => o.read(true).write(true).create(true).truncate(false),
        };
        // Every file walden-std opens is an entry directly inside the log directory (a
        // segment, a spare, the lock file, the clean-close marker): a symlink there is never
        // followed (`ELOOP`), so nothing outside the directory is created, locked or written.
        // `O_NONBLOCK` changes nothing for a regular file; a FIFO put where one was expected
        // is opened at once (and then refused as not a file) instead of waiting for a writer.
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        o.open(path)
    }

    fn open_dir(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        fs::hard_link(original, link)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            out.push(DirEntry {
                name: entry.file_name(),
                kind: kind(entry.file_type()?),
            });
        }
        Ok(out)
    }

    fn spawn(&self, name: &str, job: Job) -> io::Result<Worker> {
        Worker::thread(name, job)
    }
}

/// `sync_file_range(2)` on `file` with `flags`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // rustix has no `sync_file_range`
fn sync_file_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (offset, len) = (offset.min(i64::MAX as u64), len.min(i64::MAX as u64));
    // SAFETY: a system call on a descriptor `file` owns for the whole call; no memory is
    // passed to the kernel.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
