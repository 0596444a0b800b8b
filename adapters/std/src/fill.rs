//! Zero-filling the rest of the active segment in the background, ahead of the writer.
//!
//! A segment that did not come from a spare (the first one of a new log, a reopened log's
//! active segment that was never fully filled, a rotation that came before its spare was
//! ready) would otherwise have appends land in unwritten space, where every `fdatasync` must
//! also commit file-system metadata (measured here: 16-writer group commits ran at 8x instead
//! of 12x the one-writer rate once the writer passed the synchronously filled part).
//!
//! # Why the filler never overwrites a record
//!
//! The filler writes zeros only at or above `filled`, one chunk at a time, and each chunk is
//! written and `filled` advanced while it holds `stop`'s lock after checking `stop`. Bytes of
//! the segment reach the file only through [`FillAhead::before_write`]: bytes that end at or
//! below `filled` are below every chunk the filler will ever write; bytes that end above it
//! first set `stop` under the lock, which waits for a chunk in progress, and the filler never
//! writes after seeing `stop`.
//!
//! # Why it cannot hide a failed sync
//!
//! The filler syncs what it wrote (so the zeros are not left dirty for the writer's next
//! `fdatasync` to flush) through its **own** open file description. Linux reports a writeback
//! error once to every file description that syncs after it (`errseq_t`), so the filler's
//! sync cannot consume an error that the log's own `fdatasync` must see.

use core::sync::atomic::{AtomicU64, Ordering};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use walden_core::SegmentId;

use crate::filesystem::{FileSystem, FsFile, JobStep, Mutation, OpenMode, Tuning, Worker};

/// A background zero-fill of `[from, to)` of one segment.
pub(crate) struct FillAhead {
    id: SegmentId,
    /// Everything below is zero-filled or the writer's; the filler writes only at or above.
    filled: AtomicU64,
    /// The furthest end of the writer's bytes handed to the OS.
    written: AtomicU64,
    stop: Mutex<bool>,
    worker: Mutex<Option<Worker>>,
}

/// The filler's own state, moved into its job.
struct Filler<File> {
    fill: Arc<FillAhead>,
    file: File,
    zeros: Vec<u8>,
    at: u64,
    from: u64,
    to: u64,
    unsynced: u64,
    tuning: Tuning,
    ignore_stop: bool,
}

impl FillAhead {
    /// Starts filling `[from, to)` of the file at `path` (segment `id`). `None` if the file
    /// cannot be opened again or no job can be started: the fill is only an optimisation.
    pub(crate) fn start<F: FileSystem>(
        fs: &F,
        path: &Path,
        id: SegmentId,
        from: u64,
        to: u64,
    ) -> Option<Arc<Self>> {
        let file = fs.open(path, OpenMode::ReadWrite).ok()?;
        let fill = Arc::new(Self {
            id,
            filled: AtomicU64::new(from),
            written: AtomicU64::new(from),
            stop: Mutex::new(false),
            worker: Mutex::new(None),
        });
        let tuning = fs.tuning();
        let mut filler = Filler {
            fill: Arc::clone(&fill),
            file,
            zeros: vec![0u8; tuning.fill_chunk.min(to.saturating_sub(from)) as usize],
            at: from,
            from,
            to,
            unsynced: 0,
            tuning,
            ignore_stop: fs.mutation() == Some(Mutation::FillIgnoresStop),
        };
        let worker = fs
            .spawn("walden-fill", Box::new(move || filler.step()))
            .ok()?;
        *fill.worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(worker);
        Some(fill)
    }

    /// The segment being filled.
    pub(crate) fn id(&self) -> SegmentId {
        self.id
    }

    /// Called before the writer hands bytes of this segment ending at `end` to the OS.
    pub(crate) fn before_write(&self, end: u64) {
        self.written.fetch_max(end, Ordering::AcqRel);
        if end > self.filled.load(Ordering::Acquire) {
            self.halt();
        }
    }

    /// Stops the filler: once this returns it writes nothing more.
    pub(crate) fn halt(&self) {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Stops the filler and waits for its job.
    pub(crate) fn finish(&self) {
        self.halt();
        Worker::join_slot(&self.worker);
    }
}

impl<File: FsFile> Filler<File> {
    /// One chunk (or the end): the body of the job.
    fn step(&mut self) -> JobStep {
        if self.at < self.to {
            let stop = self
                .fill
                .stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *stop && !self.ignore_stop {
                drop(stop);
                return self.end();
            }
            let written = self.fill.written.load(Ordering::Acquire);
            if self.at >= written.saturating_add(self.tuning.fill_ahead) && !self.ignore_stop {
                return JobStep::Wait(self.tuning.fill_pace);
            }
            let n = (self.to - self.at).min(self.tuning.fill_chunk);
            if self
                .file
                .write_all_at(&self.zeros[..n as usize], self.at)
                .is_err()
            {
                drop(stop);
                return self.end(); // out of space or an I/O error: the writer will meet it itself
            }
            self.at += n;
            self.unsynced += n;
            self.fill.filled.store(self.at, Ordering::Release);
            drop(stop);
            if self.unsynced >= self.tuning.fill_sync_every {
                let _ = self.file.sync_data();
                self.unsynced = 0;
            }
            return JobStep::Again;
        }
        self.end()
    }

    fn end(&mut self) -> JobStep {
        if self.unsynced > 0 {
            let _ = self.file.sync_data();
            self.unsynced = 0;
        }
        tracing::debug!(
            segment = self.fill.id,
            from = self.from,
            to = self.at,
            "background zero-fill done"
        );
        JobStep::Done
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{File, OpenOptions};

    use super::*;
    use crate::filesystem::OsFs;

    const AHEAD: u64 = Tuning::DEFAULT.fill_ahead;
    const CHUNK: u64 = Tuning::DEFAULT.fill_chunk;
    const PACE: core::time::Duration = Tuning::DEFAULT.fill_pace;

    fn create(path: &Path) -> File {
        OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn a_writer_past_the_frontier_stops_the_filler_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let f = create(&path);
        let fill = FillAhead::start(&OsFs, &path, 1, 0, 256 << 20).unwrap();
        // A write that ends past the frontier stops the filler first ...
        fill.before_write(u64::MAX);
        let frontier = fill.filled.load(Ordering::Acquire);
        f.write_all_at(b"RECORD!!", frontier).unwrap();
        std::thread::sleep(core::time::Duration::from_millis(20));
        fill.finish();
        // ... so the record survives, and the filler wrote nothing after it.
        let mut buf = [0u8; 8];
        assert_eq!(crate::read_at(&f, frontier, &mut buf).unwrap(), 8);
        assert_eq!(&buf, b"RECORD!!");
        assert_eq!(f.metadata().unwrap().len(), frontier + 8);
    }

    #[test]
    fn the_filler_stays_a_bounded_distance_ahead_of_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        create(&path);
        let fill = FillAhead::start(&OsFs, &path, 1, 0, 64 << 20).unwrap();
        let filled = || fill.filled.load(Ordering::Acquire);
        let wait_for = |target: u64| {
            let deadline = std::time::Instant::now() + core::time::Duration::from_secs(30);
            while filled() < target {
                assert!(
                    std::time::Instant::now() < deadline,
                    "filler stuck at {}",
                    filled()
                );
                std::thread::sleep(PACE);
            }
        };
        wait_for(AHEAD);
        std::thread::sleep(core::time::Duration::from_millis(50));
        assert!(filled() < AHEAD + CHUNK, "ran ahead: {}", filled());
        // The writer moves on: so does the filler.
        fill.before_write(4 << 20);
        wait_for((4 << 20) + AHEAD);
        fill.finish();
    }

    #[test]
    fn a_write_below_the_frontier_leaves_the_filler_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        create(&path);
        let fill = FillAhead::start(&OsFs, &path, 1, 0, 2 << 20).unwrap();
        fill.before_write(0);
        let worker = fill.worker.lock().unwrap().take().unwrap();
        worker.join();
        assert_eq!(fill.filled.load(Ordering::Acquire), 2 << 20);
    }

    #[test]
    fn the_filler_fills_the_whole_range_when_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let f = create(&path);
        f.write_all_at(b"head", 0).unwrap();
        let fill = FillAhead::start(&OsFs, &path, 1, 4, 3 << 20).unwrap();
        let worker = fill.worker.lock().unwrap().take().unwrap();
        worker.join();
        assert_eq!(fill.filled.load(Ordering::Acquire), 3 << 20);
        assert_eq!(f.metadata().unwrap().len(), 3 << 20);
        let mut head = [0u8; 4];
        assert_eq!(crate::read_at(&f, 0, &mut head).unwrap(), 4);
        assert_eq!(&head, b"head");
    }
}
