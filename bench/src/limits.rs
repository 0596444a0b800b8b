//! The machine's own limits, measured in the same run as the workloads: a raw `write` +
//! `fdatasync` loop per size, sequential write and read bandwidth, random 128-byte `pread`s and
//! `memcpy`. Nothing here has framing, checksums or locks, so no log can beat these numbers;
//! every row of the results table is divided by the matching one.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::FileExt,
    path::Path,
    time::Instant,
};

use core::time::Duration;

use rustix::fs::{Advice, fadvise, fdatasync};

use crate::{
    measure::{Budget, Summary, histogram, record, timed_loop},
    subject::payload,
};

const CHUNK: usize = 1 << 20;
/// Size of the zero-filled file the preallocated fsync loop overwrites, wrapping around.
const PREALLOCATED: u64 = 16 << 20;

/// Everything measured about the machine itself.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// `(bytes per write, run)` for a loop of one appending `write` + `fdatasync`; records =
    /// syncs. Each sync also commits the file's new size (a journal write on ext4/xfs).
    pub(crate) fsync: Vec<(usize, Summary)>,
    /// The same into a preallocated, zero-filled file (overwrites: no size or extent change, as
    /// okaywal and raft-engine arrange).
    pub(crate) fsync_preallocated: Vec<(usize, Summary)>,
    /// 1 MiB `write`s of a whole file, then one `fdatasync`.
    pub(crate) seq_write: Summary,
    /// Reading that file back in 1 MiB `read`s, page cache warm.
    pub(crate) seq_read_warm: Summary,
    /// The same after `posix_fadvise(DONTNEED)` (cold as far as the guest kernel knows).
    pub(crate) seq_read_cold: Summary,
    /// Random 128-byte `pread`s over that file, warm; records = reads.
    pub(crate) random_read: Summary,
    /// `copy_from_slice` of 64 MiB buffers; bytes = bytes copied.
    pub(crate) memcpy: Summary,
}

impl Limits {
    /// Syncs per second for writes of `bytes` (the nearest measured size at or above it), the
    /// better of appending and preallocated: the best any log could do.
    pub(crate) fn fsync_rate(&self, bytes: usize) -> Option<f64> {
        let rate = |runs: &[(usize, Summary)]| {
            runs.iter()
                .filter(|(size, _)| *size >= bytes)
                .min_by_key(|(size, _)| *size)
                .map(|(_, s)| s.records_per_sec())
        };
        match (rate(&self.fsync), rate(&self.fsync_preallocated)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Limits {
    /// Measures the `write` + `fdatasync` loops of `bytes` again (appending and preallocated)
    /// and replaces the earlier figures, so that a durable case is compared with a limit
    /// measured seconds before it rather than minutes: the disk of a shared VM drifts (one run
    /// here measured 128 B at 8.7 k syncs/s at the start and the peers' one-writer rows at 0.58 to
    /// 0.73 of it twenty seconds later).
    pub(crate) fn remeasure_fsync(
        &mut self,
        dir: &Path,
        bytes: usize,
        budget: Budget,
    ) -> io::Result<()> {
        eprintln!("  raw write+fdatasync {bytes} B, again");
        let appending = raw_fsync(dir, bytes, budget, None)?;
        let preallocated = raw_fsync(dir, bytes, budget, Some(area(budget)))?;
        for (runs, run) in [
            (&mut self.fsync, appending),
            (&mut self.fsync_preallocated, preallocated),
        ] {
            runs.retain(|(size, _)| *size != bytes);
            runs.push((bytes, run));
            runs.sort_by_key(|(size, _)| *size);
        }
        Ok(())
    }
}

/// The preallocated file the overwriting fsync loop wraps around in.
fn area(budget: Budget) -> u64 {
    if budget.max_ops < 1000 {
        4 << 20
    } else {
        PREALLOCATED
    }
}

/// Measures every limit, using `dir` for files and `file_bytes` for the sequential file.
pub(crate) fn measure(
    dir: &Path,
    fsync_sizes: &[usize],
    file_bytes: u64,
    budget: Budget,
) -> io::Result<Limits> {
    let (mut fsync, mut fsync_preallocated) = (Vec::new(), Vec::new());
    for &size in fsync_sizes {
        eprintln!("  raw write+fdatasync {size} B");
        fsync.push((size, raw_fsync(dir, size, budget, None)?));
        fsync_preallocated.push((size, raw_fsync(dir, size, budget, Some(area(budget)))?));
    }
    let path = dir.join("raw-sequential");
    eprintln!("  raw sequential write/read {file_bytes} B");
    let seq_write = sequential_write(&path, file_bytes)?;
    let seq_read_warm = sequential_read(&path)?;
    drop_cache(&path)?;
    let seq_read_cold = sequential_read(&path)?;
    let random_read = random_reads(&path, file_bytes, budget)?;
    fs::remove_file(&path)?;
    let memcpy = memcpy(budget)?;
    Ok(Limits {
        fsync,
        fsync_preallocated,
        seq_write,
        seq_read_warm,
        seq_read_cold,
        random_read,
        memcpy,
    })
}

/// One `write` of `size` bytes then `fdatasync`, in a loop: appending to a fresh file, or with
/// `preallocated = Some(len)` overwriting a zero-filled, synced file of `len` bytes in order,
/// wrapping around at its end.
fn raw_fsync(
    dir: &Path,
    size: usize,
    budget: Budget,
    preallocated: Option<u64>,
) -> io::Result<Summary> {
    let path = dir.join(format!("raw-fsync-{size}"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    if let Some(len) = preallocated {
        let zeros = vec![0u8; CHUNK];
        for _ in 0..len.div_ceil(CHUNK as u64) {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
    }
    let data = payload(size, size as u64);
    let mut offset = 0u64;
    let summary = timed_loop(budget, |_| {
        match preallocated {
            None => file.write_all(&data)?,
            Some(len) => {
                if offset + size as u64 > len {
                    offset = 0;
                }
                file.write_all_at(&data, offset)?;
                offset += size as u64;
            }
        }
        fdatasync(&file)?;
        Ok((1, size as u64))
    })?;
    drop(file);
    fs::remove_file(&path)?;
    Ok(summary)
}

fn sequential_write(path: &Path, total: u64) -> io::Result<Summary> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let data = payload(CHUNK, 42);
    let mut hist = histogram();
    let start = Instant::now();
    let mut written = 0u64;
    while written < total {
        let t = Instant::now();
        file.write_all(&data)?;
        record(&mut hist, t.elapsed());
        written += CHUNK as u64;
    }
    fdatasync(&file)?;
    Ok(Summary::new(
        written / CHUNK as u64,
        written,
        start.elapsed(),
        &hist,
    ))
}

fn sequential_read(path: &Path) -> io::Result<Summary> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut hist = histogram();
    let start = Instant::now();
    let (mut reads, mut bytes) = (0u64, 0u64);
    loop {
        let t = Instant::now();
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        record(&mut hist, t.elapsed());
        reads += 1;
        bytes += n as u64;
    }
    Ok(Summary::new(reads, bytes, start.elapsed(), &hist))
}

fn random_reads(path: &Path, file_bytes: u64, budget: Budget) -> io::Result<Summary> {
    let file = File::open(path)?;
    let mut buf = [0u8; 128];
    let slots = (file_bytes / 128).max(1);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    timed_loop(budget, |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        file.read_exact_at(&mut buf, (state % slots) * 128)?;
        Ok((1, 128))
    })
}

fn memcpy(budget: Budget) -> io::Result<Summary> {
    let src = payload(64 << 20, 7);
    let mut dst = vec![0u8; src.len()];
    let budget = Budget {
        min_ops: budget.min_ops.min(4),
        ..budget
    };
    timed_loop(budget, |_| {
        dst.copy_from_slice(core::hint::black_box(&src));
        core::hint::black_box(&mut dst);
        Ok((1, src.len() as u64))
    })
}

/// Makes `path` (a file, or every file under a directory) cold: `fdatasync` so its pages are
/// clean, then `posix_fadvise(DONTNEED)` so the kernel drops them. A hypervisor or device cache
/// below the guest is not affected; the report says so.
pub(crate) fn drop_cache(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        for entry in fs::read_dir(path)? {
            drop_cache(&entry?.path())?;
        }
        return Ok(());
    }
    let file = File::open(path)?;
    fdatasync(&file)?;
    fadvise(&file, 0, None, Advice::DontNeed)?;
    Ok(())
}

/// How long `f` took.
pub(crate) fn time<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<(T, Duration)> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed()))
}
