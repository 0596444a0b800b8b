//! Verifying every checksum of a log directory on several threads.
//!
//! Sealed segments are independent (each has its own header, salt and first LSN), so they are
//! verified in parallel with `std::thread::scope`; threads take segments from a shared counter.
//! The directory lock is taken, so the log must not be open.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::io;
use std::path::Path;
use std::sync::Mutex;

use walden_core::format::{
    RECORD_HEADER_LEN, RecordHeader, RecordKind, SEGMENT_HEADER_LEN, SegmentHeader,
};
use walden_core::{Lsn, SegmentId, Storage};

use crate::error::{Error, FileError};
use crate::filesystem::{FileKind, FileSystem, FsFile, OpenMode, OsFs};
use crate::storage::{FileStorage, read_at};

/// What verification found in one segment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SegmentVerdict {
    /// The segment.
    pub id: SegmentId,
    /// Records that verified.
    pub records: u64,
    /// Bytes up to the end of the last valid record.
    pub valid_bytes: u64,
    /// LSN of the first record (from the header), if the header verified.
    #[serde(serialize_with = "lsn_opt")]
    pub first_lsn: Option<Lsn>,
    /// The first problem, with its offset (`None`: clean; zeros after the last record are
    /// clean).
    pub problem: Option<(u64, &'static str)>,
}

/// The result of [`verify_dir`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// One verdict per segment, oldest first.
    pub segments: Vec<SegmentVerdict>,
    /// Records verified in total.
    pub records: u64,
    /// Bytes read in total.
    pub bytes: u64,
}

impl VerifyReport {
    /// Whether every segment verified to its end.
    pub fn is_clean(&self) -> bool {
        self.segments.iter().all(|s| s.problem.is_none())
    }
}

/// Verifies every record checksum of every segment in `dir` on `threads` threads (at least 1).
/// A problem in the newest segment may be an ordinary torn tail; in a sealed segment it is
/// damage. Continuity between segments (first LSNs) is checked too.
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
    let storage = FileStorage::open_in(fs, dir, false)?;
    let fail = |e: FileError| Error::Directory {
        dir: dir.to_path_buf(),
        action: "list",
        error: e,
    };
    let mut ids = Vec::new();
    storage.list(&mut |id| ids.push(id)).map_err(fail)?;
    ids.sort_unstable();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(SegmentVerdict, u64)>>> = Mutex::new(vec![None; ids.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(ids.len().max(1)) {
            s.spawn(|| {
                let mut buf = vec![0u8; 4 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&id) = ids.get(i) else { return };
                    let path = storage.segment_path(id);
                    let fs = storage.file_system();
                    let verdict = verify_segment(fs, &path, id, &mut buf).unwrap_or_else(|e| {
                        (
                            SegmentVerdict {
                                id,
                                records: 0,
                                valid_bytes: 0,
                                first_lsn: None,
                                problem: Some((0, io_problem(&e))),
                            },
                            0,
                        )
                    });
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(verdict);
                }
            });
        }
    });
    let mut report = VerifyReport::default();
    let mut expected: Option<Lsn> = None;
    for (mut v, bytes) in results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
    {
        if let (Some(want), Some(first), None) = (expected, v.first_lsn, v.problem) {
            if want != first {
                v.problem = Some((0, "first LSN does not continue the previous segment"));
            }
        }
        // Continuity is only checked after a segment that verified to its end.
        expected = match v.problem {
            None => v.first_lsn.map(|f| Lsn(f.0 + v.records)),
            Some(_) => None,
        };
        report.records += v.records;
        report.bytes += bytes;
        report.segments.push(v);
    }
    Ok(report)
}

fn io_problem(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => "segment vanished",
        _ => "I/O error reading the segment",
    }
}

/// Streams one segment through `buf`. Returns the verdict and the bytes read.
fn verify_segment<F: FileSystem>(
    fs: &F,
    path: &Path,
    id: SegmentId,
    buf: &mut [u8],
) -> io::Result<(SegmentVerdict, u64)> {
    if fs.symlink_metadata(path)?.kind != FileKind::File {
        return Ok((verdict(id, 0, 0, None, Some((0, "not a regular file"))), 0));
    }
    let f = fs.open(path, OpenMode::Read)?;
    let len = f.len()?;
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    let n = read_at(&f, 0, &mut head)?;
    let h = match SegmentHeader::decode(&head[..n]) {
        Ok(h) if h.segment_id == id => h,
        Ok(_) => {
            return Ok((
                verdict(id, 0, 0, None, Some((0, "wrong segment id"))),
                n as u64,
            ));
        }
        Err(_) => {
            return Ok((
                verdict(id, 0, 0, None, Some((0, "invalid segment header"))),
                n as u64,
            ));
        }
    };
    let mut lsn = h.first_lsn;
    let mut records = 0u64;
    let mut offset = SEGMENT_HEADER_LEN as u64;
    let mut in_batch = false;
    let mut batch_start = offset;
    let mut batch_records = 0;
    // A window over the file: `buf[..filled]` holds bytes from `win_start`.
    let (mut win_start, mut filled) = (offset, 0usize);
    let problem = loop {
        if offset >= len {
            break None;
        }
        // Make the header available.
        if offset + RECORD_HEADER_LEN as u64 > win_start + filled as u64 {
            win_start = offset;
            filled = read_at(&f, offset, buf)?;
        }
        let at = (offset - win_start) as usize;
        if filled < at + RECORD_HEADER_LEN {
            break tail_problem(&f, offset, len, "truncated record header")?;
        }
        let rh = match RecordHeader::decode(&buf[at..at + RECORD_HEADER_LEN], h.checksum, h.salt) {
            Ok(rh) if rh.lsn == lsn => rh,
            Ok(_) => break Some((offset, "unexpected LSN")),
            Err(_) => break tail_problem(&f, offset, len, "record header does not verify")?,
        };
        let total = RECORD_HEADER_LEN + rh.length as usize;
        let crc = if at + total <= filled {
            h.checksum
                .of_salted(h.salt, &buf[at + RECORD_HEADER_LEN..at + total])
        } else if total <= buf.len() {
            win_start = offset;
            filled = read_at(&f, offset, buf)?;
            if filled < total {
                break Some((offset, "record runs past the end of the segment"));
            }
            h.checksum.of_salted(h.salt, &buf[RECORD_HEADER_LEN..total])
        } else {
            let mut big = vec![0u8; rh.length as usize];
            if read_at(&f, offset + RECORD_HEADER_LEN as u64, &mut big)? < big.len() {
                break Some((offset, "record runs past the end of the segment"));
            }
            h.checksum.of_salted(h.salt, &big)
        };
        if crc != rh.payload_crc {
            break Some((offset, "payload checksum mismatch"));
        }
        match rh.kind {
            RecordKind::Single | RecordKind::First if in_batch => {
                break Some((batch_start, "batch not completed"));
            }
            RecordKind::Middle | RecordKind::Last if !in_batch => {
                break Some((offset, "batch record outside a batch"));
            }
            RecordKind::First => {
                in_batch = true;
                batch_start = offset;
                batch_records = 0;
            }
            RecordKind::Last => in_batch = false,
            _ => {}
        }
        if in_batch {
            batch_records += 1;
        } else {
            records += batch_records + 1;
            batch_records = 0;
        }
        offset += total as u64;
        lsn = lsn.next();
    };
    let valid = if in_batch {
        batch_start
    } else {
        offset.min(len)
    };
    let problem = problem.or(in_batch.then_some((batch_start, "batch not completed")));
    Ok((verdict(id, records, valid, Some(h.first_lsn), problem), len))
}

/// Zeros from `offset` to the end are clean (preallocated or extended space).
fn tail_problem(
    f: &impl FsFile,
    offset: u64,
    len: u64,
    what: &'static str,
) -> io::Result<Option<(u64, &'static str)>> {
    let mut at = offset;
    let mut buf = vec![0u8; 64 * 1024];
    while at < len {
        let n = read_at(f, at, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(Some((offset, what)));
        }
        at += n as u64;
    }
    Ok(None)
}

fn verdict(
    id: SegmentId,
    records: u64,
    valid_bytes: u64,
    first_lsn: Option<Lsn>,
    problem: Option<(u64, &'static str)>,
) -> SegmentVerdict {
    SegmentVerdict {
        id,
        records,
        valid_bytes,
        first_lsn,
        problem,
    }
}

fn lsn_opt<Ser: serde::Serializer>(v: &Option<Lsn>, s: Ser) -> Result<Ser::Ok, Ser::Error> {
    serde::Serialize::serialize(&v.map(|l| l.0), s)
}
