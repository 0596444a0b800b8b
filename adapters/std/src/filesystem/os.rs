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

    #[cfg(target_os = "linux")]
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<bool> {
        use rustix::fs::FallocateFlags;
        use rustix::io::Errno;
        // `FALLOC_FL_WRITE_ZEROES` (linux/falloc.h, 6.17), which rustix does not name yet.
        let mode = FallocateFlags::from_bits_retain(0x80);
        if len == 0 {
            return Ok(true);
        }
        loop {
            match rustix::fs::fallocate(self, mode, offset, len) {
                Ok(()) => return Ok(true),
                Err(Errno::INTR) => {}
                // Not offered: an older kernel (an unknown mode), a file system without it, a
                // device that cannot zero by unmapping. Nothing was changed.
                Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
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

    fn check_writable_dir(&self, path: &Path) -> io::Result<()> {
        use rustix::fs::{Access, AtFlags, CWD, accessat};
        accessat(
            CWD,
            path,
            Access::WRITE_OK | Access::EXEC_OK,
            AtFlags::EACCESS,
        )?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `FALLOC_FL_WRITE_ZEROES` either zeroes the range (extending the file) or, where it is
    /// not offered (this project's CI machine: a virtio disk without write-zeroes-unmap),
    /// changes nothing and says so; it is never an error for lack of support.
    #[cfg(target_os = "linux")]
    #[test]
    fn zeros_are_made_by_the_file_system_or_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = OsFs.open(&path, OpenMode::CreateNew).unwrap();
        FsFile::write_all_at(&f, &[7u8; 10_000], 0).unwrap();
        let offered = f.write_zeroes(4096, 1 << 20).unwrap();
        let mut all = vec![1u8; 2 << 20];
        let n = crate::storage::read_at(&f, 0, &mut all).unwrap();
        assert!(
            all[..4096].iter().all(|&b| b == 7),
            "bytes before the range kept"
        );
        if offered {
            assert_eq!(
                n,
                4096 + (1 << 20),
                "the file is extended to the range's end"
            );
            assert!(
                all[4096..n].iter().all(|&b| b == 0),
                "the range reads as zeros"
            );
        } else {
            assert_eq!(n, 10_000, "nothing changed");
            assert!(all[..n].iter().all(|&b| b == 7), "nothing changed");
        }
        assert!(
            f.write_zeroes(0, 0).unwrap(),
            "an empty range needs nothing"
        );
    }
}
