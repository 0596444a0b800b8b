//! Verifying every checksum of a log directory on several threads.
//!
//! Segments are independent to scan (each has its own header, salt and first LSN), so they are
//! scanned in parallel, threads taking segments from a shared counter; the scans then go to
//! core's recovery planner, the same one `Wal::open` and `walden_core::inspect` use, so what
//! verification reports is exactly what an open would find.
//!
//! Verification changes nothing: it reads through a [`ReadOnlyDir`], which takes a shared lock
//! (so the log must not be open: [`Error::Locked`]) and creates, syncs and removes no file, the
//! clean-close marker and a crash's spare files included. A log on a read-only mount verifies.

use std::path::Path;

use walden_core::MAX_RECORD_SIZE_LIMIT;
use walden_core::inspect::{
    InspectError, Inspection, SegmentReport, Verdict, inspect_with_summaries,
};
use walden_core::{Config, Growable, Lsn, OpenError, SegmentId, SegmentName};

use crate::error::{Error, FileError};
use crate::filesystem::{FileSystem, OsFs};
use crate::read_only::ReadOnlyDir;
use crate::wal::scan_in_parallel;

/// What verification found in one segment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SegmentVerdict {
    /// The segment.
    pub id: SegmentId,
    /// Records that verified (in complete batches, from the start of the segment).
    pub records: u64,
    /// Bytes up to the end of the last valid record.
    pub valid_bytes: u64,
    /// LSN of the first record (from the header), if the header verified.
    #[serde(serialize_with = "lsn_opt")]
    pub first_lsn: Option<Lsn>,
    /// The recovery case (`"Clean"` when nothing is wrong; see `docs/FORMAT.md`).
    pub case: &'static str,
    /// The first problem, with its offset (`None`: clean; zeros after the last record are
    /// clean).
    pub problem: Option<(u64, &'static str)>,
    /// Valid records found after the problem (they are not part of the log).
    pub after_problem: u32,
}

/// The result of [`verify_dir`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// One verdict per segment, oldest first.
    pub segments: Vec<SegmentVerdict>,
    /// Records verified in total (including valid records after a problem).
    pub records: u64,
    /// Bytes read in total.
    pub bytes: u64,
    /// What the planner found and what an open would do.
    #[serde(skip)]
    pub inspection: Inspection,
}

impl VerifyReport {
    /// Whether every segment verified to its end, an open would change nothing, and no segment
    /// file lies outside the log (`Inspection::stale`).
    ///
    /// A directory with no segment file at all (`Verdict::Empty`: not a log yet, or a wrong
    /// path) counts as clean here; `segments.is_empty()` tells it apart. The `walden` tool
    /// refuses such a directory instead (exit status 3): a log always has a segment file once
    /// its first open returns.
    pub fn is_clean(&self) -> bool {
        self.segments.iter().all(|s| s.problem.is_none())
            && matches!(self.inspection.verdict, Verdict::Clean | Verdict::Empty)
            && self.inspection.missing_front.is_none()
            && self.inspection.stale == 0
    }
}

/// Verifies every record checksum of every segment in `dir`, scanning on `threads` threads (1
/// scans on the calling thread), and classifies what it finds as recovery would. A problem in
/// the newest segment may be an ordinary torn tail; in a sealed segment it is damage. Records
/// of any length a log can hold are accepted (a record longer than the writer's
/// `max_record_size` is the writer's business).
///
/// A segment file that cannot be read (a FIFO, socket or symlink named like a segment, a file
/// this process may not read) stops verification with the error an open of the directory
/// gives: [`Error::Open`], naming the file.
pub fn verify_dir(dir: impl AsRef<Path>, threads: usize) -> Result<VerifyReport, Error> {
    verify_dir_in(OsFs, dir, threads)
}

/// [`verify_dir`] on the file system `fs`.
pub fn verify_dir_in<F: FileSystem>(
    fs: F,
    dir: impl AsRef<Path>,
    threads: usize,
) -> Result<VerifyReport, Error> {
    let dir = dir.as_ref();
    let window = fs.tuning().scan_window;
    let storage = ReadOnlyDir::open_in(fs, dir)?;
    let config = Config::default()
        .with_max_record_size(MAX_RECORD_SIZE_LIMIT)
        .with_max_batch_size(u64::MAX);
    let summaries = scan_in_parallel(&storage, &config, threads, window);
    let mut scratch = vec![0u8; 4 << 20];
    let mut segments = Vec::new();
    let inspection = inspect_with_summaries::<ReadOnlyDir<F>, Growable>(
        &storage,
        &config,
        &mut scratch,
        &|id| summaries.get(&id).copied(),
        &mut |s| segments.push(verdict(s)),
    )
    .map_err(|e| refusal(dir, e))?;
    Ok(VerifyReport {
        records: inspection.records,
        bytes: inspection.bytes,
        segments,
        inspection,
    })
}

/// What an open of `dir` would return for the same failure: [`Error::Open`], naming the
/// segment file a failed read concerns (a FIFO or a symlink named like a segment, an
/// unreadable file). Verification used to return `Error::Directory` with the storage error
/// alone ("cannot verify DIR: unsupported operation"), naming no file.
fn refusal(dir: &Path, e: InspectError<FileError>) -> Error {
    let error = match e {
        InspectError::ScratchTooSmall { min } => OpenError::ScratchTooSmall { min },
        InspectError::TooManySegments { capacity } => OpenError::TooManySegments { capacity },
        InspectError::Storage(s) => OpenError::Storage(s),
        InspectError::EarlyRotationNotBuiltIn { segment } => {
            OpenError::EarlyRotationNotBuiltIn { segment }
        }
        // A reason this build does not know of: the planner's own words are lost, not the
        // fact that it could not run.
        _ => {
            return Error::Directory {
                dir: dir.to_path_buf(),
                action: "verify",
                error: FileError::new(walden_core::StorageErrorKind::Unsupported),
            };
        }
    };
    let file = match &error {
        OpenError::Storage(s) => s.segment,
        OpenError::EarlyRotationNotBuiltIn { segment } => Some(*segment),
        _ => None,
    }
    .map(|id| dir.join(SegmentName::new(id).as_str()));
    Error::Open { file, error }
}

fn verdict(s: &SegmentReport) -> SegmentVerdict {
    SegmentVerdict {
        id: s.id,
        records: s.records,
        valid_bytes: s.end,
        first_lsn: s.header.ok().map(|h| h.first_lsn),
        case: s.case.name(),
        problem: s.problem.map(|p| (p.offset, p.detail)),
        after_problem: s.orphans,
    }
}

fn lsn_opt<Ser: serde::Serializer>(v: &Option<Lsn>, s: Ser) -> Result<Ser::Ok, Ser::Error> {
    serde::Serialize::serialize(&v.map(|l| l.0), s)
}
