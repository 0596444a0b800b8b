//! Looking at a log directory without changing it: what is in it, and walden-std's read-only
//! `Storage` over its segment files ([`walden_std::ReadOnlyDir`]), which holds a shared lock on
//! `walden.lock`.
//!
//! Nothing here creates, writes, truncates or removes a file, and no symlink inside the
//! directory is ever followed: entries are classified with `lstat`, and segment files and the
//! lock file are opened with `O_NOFOLLOW`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use walden_core::{SegmentId, parse_segment_name};
use walden_std::{CLEAN_FILE, LOCK_FILE, ReadOnlyDir};

/// Why a command could not run at all: exit status 3, or 64 when a value given on the command
/// line is wrong ([`Failure::usage`]).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// [`crate::EXIT_FAILURE`] or [`crate::EXIT_USAGE`].
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn new(message: String) -> Self {
        Failure {
            message,
            code: crate::EXIT_FAILURE,
        }
    }

    /// A bad value on the command line (an option clap cannot check alone, a malformed key
    /// file): the command was not run.
    pub(crate) fn usage(message: String) -> Self {
        Failure {
            message,
            code: crate::EXIT_USAGE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<walden_std::Error> for Failure {
    fn from(e: walden_std::Error) -> Self {
        match e {
            walden_std::Error::Locked { dir } => locked(&dir),
            other => Failure::new(other.to_string()),
        }
    }
}

pub(crate) fn locked(dir: &Path) -> Failure {
    Failure::new(format!(
        "{} is in use: another process holds {LOCK_FILE}; stop it first (walden never touches a log that is open elsewhere)",
        dir.display()
    ))
}

/// An entry with a segment's name that is not a regular file.
#[derive(Clone, Debug)]
pub(crate) struct Unusable {
    pub(crate) path: PathBuf,
    pub(crate) why: &'static str,
}

/// What a log directory holds.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// Segment files (regular files with a segment name), by id, with their lengths.
    pub(crate) segments: BTreeMap<SegmentId, u64>,
    /// Entries named like segments that walden refuses to use (symlinks, directories, …).
    pub(crate) unusable: Vec<Unusable>,
    /// Spare segment files prepared by walden-std (removed by its next open).
    pub(crate) spares: Vec<PathBuf>,
    /// Unfinished backup copies (`<segment name>.repair-partial`) left by a `walden repair`
    /// that stopped while copying: never a backup, removed by the next repair that changes
    /// the log.
    pub(crate) partial_backups: Vec<PathBuf>,
    /// Everything else except the lock file: left alone, reported.
    pub(crate) foreign: Vec<PathBuf>,
}

impl Survey {
    pub(crate) fn total_bytes(&self) -> u64 {
        self.segments.values().sum()
    }
}

/// What `walden repair` names a backup copy while writing it: `<segment name>` followed by
/// this. It becomes `<name>.broken` only once complete and synced, so a file with this name is
/// never a backup (a repair stopped part of the way: a kill, a crash, a full disk).
pub(crate) const PARTIAL_SUFFIX: &str = ".repair-partial";

/// Whether `name` is one of `walden repair`'s unfinished copies ([`PARTIAL_SUFFIX`] after a
/// segment's name).
pub(crate) fn is_partial_backup(name: &str) -> bool {
    name.strip_suffix(PARTIAL_SUFFIX)
        .is_some_and(|segment| parse_segment_name(segment).is_some())
}

fn is_spare(name: &str) -> bool {
    name.strip_suffix(".spare")
        .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Read-only, never through a symlink, and never waiting: `O_NONBLOCK` changes nothing for a
/// regular file, but opening a FIFO for reading without it waits for a writer (a FIFO named
/// `walden.lock` hung every command).
fn nofollow() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    o
}

/// Checks that `dir` is a directory (following a symlink for `dir` itself, which the operator
/// named, but for nothing inside it).
pub(crate) fn check_dir(dir: &Path) -> Result<(), Failure> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::new(format!(
            "{} is not a directory (a log is a directory of segment files)",
            dir.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(Failure::new(format!("{} does not exist", dir.display())))
        }
        Err(e) => Err(Failure::new(format!("cannot open {}: {e}", dir.display()))),
    }
}

/// Why a directory without a segment file is refused: it holds no log. A log always has one
/// (walden-std's open creates the first segment before it returns, and `truncate_front` never
/// removes the newest), so calling it clean would pass a mistyped path, or a log whose segments
/// were deleted, as healthy.
pub(crate) fn no_log(dir: &Path) -> Failure {
    Failure::new(format!(
        "no log in {}: it holds no Walden segment files (named like 00000000000000000000.wal)",
        dir.display()
    ))
}

/// Lists `dir`, classifying every entry without following symlinks.
pub(crate) fn survey(dir: &Path) -> Result<Survey, Failure> {
    let fail = |e: io::Error| Failure::new(format!("cannot list {}: {e}", dir.display()));
    let mut s = Survey::default();
    for entry in fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        let path = entry.path();
        let kind = entry.file_type().map_err(fail)?;
        match name.to_str().and_then(parse_segment_name) {
            Some(id) if kind.is_file() => {
                let len = fs::symlink_metadata(&path).map_err(fail)?.len();
                s.segments.insert(id, len);
            }
            Some(_) => s.unusable.push(Unusable {
                path,
                why: if kind.is_symlink() {
                    "is a symlink; walden never follows symlinks"
                } else if kind.is_dir() {
                    "is a directory"
                } else {
                    "is not a regular file"
                },
            }),
            None if name == LOCK_FILE || name == CLEAN_FILE => {}
            // walden-std's preallocated spare segments (`{id:020}.spare`): its own files.
            None if kind.is_file() && is_spare(&name.to_string_lossy()) => s.spares.push(path),
            // A `walden repair` copy that was never completed: not a backup.
            None if kind.is_file() && is_partial_backup(&name.to_string_lossy()) => {
                s.partial_backups.push(path);
            }
            None => s.foreign.push(path),
        }
    }
    s.foreign.sort();
    s.partial_backups.sort();
    s.spares.sort();
    s.unusable.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(s)
}

/// What opening the segment file `path` for reading (`opened`: the open and its `fstat`) says
/// about it. A file that is no longer a regular file (replaced between the listing and the
/// open: a symlink, which `O_NOFOLLOW` refuses with `ELOOP`, a directory, a device, a socket)
/// or no longer there is left out of the view and reported as unusable (`Ok(Some(..))`). Any
/// other error (permission denied, an I/O error) says nothing about the log: the command could
/// not run (exit status 3), and the failure names the file and the OS error. A segment the
/// caller may not read is never reported as corruption, and `repair` never asks for a healthy
/// one to be moved away.
fn classify_open(
    path: &Path,
    opened: io::Result<fs::Metadata>,
) -> Result<Option<Unusable>, Failure> {
    let unusable = |why| {
        Ok(Some(Unusable {
            path: path.to_path_buf(),
            why,
        }))
    };
    match opened {
        Ok(m) if m.is_file() => Ok(None),
        Ok(_) => unusable("is not a regular file (it was replaced while being opened)"),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            unusable("is a symlink; walden never follows symlinks")
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => unusable("was removed while being opened"),
        Err(e) => match fs::symlink_metadata(path) {
            // Not a regular file (a socket or device that cannot be opened: ENXIO, ENODEV).
            Ok(m) if !m.is_file() => unusable("is not a regular file"),
            _ => Err(Failure::new(format!(
                "cannot open segment {} for reading: {e}",
                path.display()
            ))),
        },
    }
}

/// Opens `dir` read-only: walden-std's [`walden_std::ReadOnlyDir`], which holds a shared lock
/// so that no writer can open the log while it is being read (and refuses if one already has),
/// and the survey of the directory. Segments that are not regular files are left out of the
/// view and reported in the survey as unusable; one that cannot be opened for reading for any
/// other reason (permission denied, an I/O error) is a failure to run ([`classify_open`]). A
/// directory with no entry named like a segment is refused ([`no_log`]).
pub(crate) fn open_read_only(dir: &Path) -> Result<(ReadOnlyDir, Survey), Failure> {
    check_dir(dir)?;
    let mut view = ReadOnlyDir::open(dir)?;
    let mut survey = survey(dir)?;
    let ids: Vec<SegmentId> = survey.segments.keys().copied().collect();
    for id in ids {
        let path = dir.join(walden_core::SegmentName::new(id).as_str());
        let opened = nofollow().open(&path).and_then(|f| f.metadata());
        if let Some(unusable) = classify_open(&path, opened)? {
            survey.segments.remove(&id);
            survey.unusable.push(unusable);
        }
    }
    if survey.segments.is_empty() && survey.unusable.is_empty() {
        return Err(no_log(dir));
    }
    view.retain(|id| survey.segments.contains_key(&id));
    Ok((view, survey))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_copies_are_told_apart_from_segments_spares_and_backups() {
        assert!(is_partial_backup("00000000000000000003.wal.repair-partial"));
        assert!(is_partial_backup("18446744073709551615.wal.repair-partial"));
        for other in [
            "00000000000000000003.wal",
            "00000000000000000003.wal.broken",
            "00000000000000000003.spare",
            "notes.repair-partial",
            "3.wal.repair-partial",
        ] {
            assert!(!is_partial_backup(other), "{other}");
        }
        let partial = "00000000000000000003.wal.repair-partial";
        assert!(parse_segment_name(partial).is_none() && !is_spare(partial));
    }

    /// A segment the caller may not read, or cannot read (an I/O error), is a failure to run
    /// (exit status 3) naming the file and the OS error, never an unusable entry (which is
    /// reported as corruption, and which `repair` asks to be moved away). Only a symlink or a
    /// file that is not a regular file is unusable.
    #[test]
    fn a_segment_that_cannot_be_read_is_a_failure_not_an_unusable_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("00000000000000000000.wal");
        fs::write(&path, b"segment").unwrap();
        for errno in [libc::EACCES, libc::EIO, libc::EPERM] {
            let e = classify_open(&path, Err(io::Error::from_raw_os_error(errno))).unwrap_err();
            assert_eq!(e.code, crate::EXIT_FAILURE, "{e}");
            assert!(e.message.contains(&path.display().to_string()), "{e}");
            let os = io::Error::from_raw_os_error(errno).to_string();
            assert!(e.message.contains(&os), "{e}");
        }
        let u = classify_open(&path, Err(io::Error::from_raw_os_error(libc::ELOOP)))
            .unwrap()
            .unwrap();
        assert!(u.why.contains("symlink"), "{}", u.why);
        assert!(classify_open(&path, fs::metadata(&path)).unwrap().is_none());
        let u = classify_open(&path, fs::metadata(tmp.path()))
            .unwrap()
            .unwrap();
        assert!(u.why.contains("not a regular file"), "{}", u.why);
    }
}
