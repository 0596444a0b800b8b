//! Walden on real files: segments as files in one directory, `fdatasync` for `sync`, `fsync` of
//! the directory after every create and remove, and an exclusive lock on the directory.
//!
//! The lock is an `flock` on `walden.lock`, released when the last descriptor of it closes.
//! A child process started by any thread holds copies of every descriptor from its fork until
//! its exec (close-on-exec closes them only then), so a log dropped at that moment may still
//! look locked to a reopen for that instant. A program that spawns processes while reopening
//! logs should treat [`Error::Locked`] right after its own close as that, and retry once the spawn
//! has returned. A [`SharedWal`]'s own background threads (the syncer, the interval flusher)
//! never hold the log past its last handle: dropping the last handle waits for a sync they are
//! running and releases the log (its lock with it) before `drop` returns, on any thread (also
//! in a durability callback of another log). The exceptions are the waits that could never
//! end: a log's own durability callback running on its syncer, which cannot wait for itself,
//! and callbacks of two logs (or a ring of them) dropping each other's last handle at the same
//! moment, which would wait for each other; a last handle dropped there releases the log once
//! the syncer's turn ends.
//!
//! Two handles:
//!
//! * [`Wal`]: one owner (`&mut self`), with the core log's methods (append, sync, read,
//!   truncate, …) spelled out.
//! * [`SharedWal`]: `Send + Sync`, cheap to clone, for many appending and reading threads, with
//!   group commit, every [`SyncPolicy`] (every append, every N records or bytes, an interval
//!   flusher, manual), poisoning across threads, concurrent [`SharedReader`]s and [`Metrics`].
//!
//! **One durability setting.** When appends become durable is the configuration's
//! [`SyncPolicy`] ([`Options::with_sync_policy`], or `Config::sync_policy`), for both handles;
//! there is no other knob. [`Wal`] carries out every policy but `Interval` (which needs a
//! flusher thread: opening a `Wal` with it is [`Error::InvalidOptions`], before anything on
//! disk is touched); [`SharedWal`] carries out all of them, with group commit. The durable LSN,
//! the poison and the counts of unsynced records and bytes are the core log's; a `SharedWal`
//! reads them under its lock and only publishes the durable LSN and the poison to waiting
//! threads (the group-commit protocol's own state, see the `group` module's docs).
//!
//! For async code, with no runtime dependency (the futures are woken through plain `Waker`s by
//! the log's own syncer thread, so they work under tokio, smol or any executor):
//!
//! * [`SharedWal::append_durable`] appends and returns a [`DurableFuture`];
//!   [`SharedWal::durable`] waits for an LSN; [`SharedWal::append_then`] and
//!   [`SharedWal::on_durable`] take a callback instead (what openraft's flush callback needs).
//!   They resolve with a [`DurableError`] on poison, truncation or close.
//! * [`SharedWal::tail`]: a [`Tail`] follows the log as it grows, across rotation, and reports
//!   what `truncate_front` made it miss and what `truncate_back` rewound ([`TailEvent`]); a
//!   blocking iterator and a `Stream`. `examples/tokio_durable.rs` shows both under tokio.
//!
//! Every file operation goes through a [`FileSystem`]: [`OsFs`], the real one, unless a log is
//! opened with [`Wal::open_in`] or [`SharedWal::open_in`]. Tests use that seam to run the
//! shipped file protocol on a simulated file system that crashes in every legal way
//! (`SimFileSystem`, feature `sim`) and to kill the process after any chosen file operation.
//!
//! ```
//! use walden_std::{Options, Wal};
//! let dir = tempfile::tempdir()?;
//! let (mut wal, report) = Wal::open(dir.path(), Options::default())?;
//! assert!(report.created);
//! let lsn = wal.append(b"hello")?;        // durable on return (SyncPolicy::Always)
//! drop(wal);
//! let (wal, report) = Wal::open(dir.path(), Options::default())?;
//! assert_eq!(report.last_lsn, lsn);
//! assert_eq!(wal.read_all_from(lsn)?[0].1, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use walden_std::{Options, SharedWal};
//! let dir = tempfile::tempdir()?;
//! let (wal, _) = SharedWal::open(dir.path(), Options::default())?;
//! let writers: Vec<_> = (0..4u8)
//!     .map(|t| {
//!         let wal = wal.clone();
//!         std::thread::spawn(move || wal.append(&[t; 16]).map(|a| a.durable))
//!     })
//!     .collect();
//! for w in writers {
//!     assert!(w.join().unwrap()?); // durable: SyncPolicy::Always, shared fsyncs
//! }
//! let mut reader = wal.reader(walden_std::Lsn(1))?;
//! let mut n = 0;
//! while let Some(_record) = reader.read_next()? {
//!     n += 1;
//! }
//! assert_eq!(n, 4);
//! println!("{}", serde_json::to_string(&wal.metrics())?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use walden_std::{Lsn, Options, SharedWal, SyncPolicy, TailEvent};
//! let dir = tempfile::tempdir()?;
//! let options = Options::default().with_sync_policy(SyncPolicy::Manual);
//! let (wal, _) = SharedWal::open(dir.path(), options)?;
//! let mut tail = wal.tail(Lsn(1));
//! // Any executor will do; this one is `futures::executor`.
//! futures::executor::block_on(async {
//!     let (appended, durable) = wal.append_durable(&[b"a", b"b"])?;
//!     assert!(durable.await? >= appended.last); // one fsync, run by the log's syncer thread
//!     assert_eq!(tail.next_async().await?, TailEvent::Record { lsn: Lsn(1), payload: b"a".to_vec() });
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

mod clean;
mod closer;
mod durable;
mod early_sync;
mod error;
mod filesystem;
mod fill;
mod gate;
mod group;
mod metrics;
mod read_only;
mod reader;
mod replay;
mod shared;
mod spare;
mod storage;
mod tail;
mod transform;
mod verify;
mod wal;

pub use clean::CLEAN_FILE;
pub use durable::{DurableError, DurableFuture};
pub use error::{Error, FileError};
#[doc(hidden)]
pub use filesystem::Mutation;
#[cfg(feature = "sim")]
pub use filesystem::{Background, SIM_TUNING, SimFile, SimFileSystem};
pub use filesystem::{
    Before, DirEntry, FileKind, FileSystem, FsFile, Hooked, HookedFile, Hooks, Job, JobStep,
    Metadata, Op, OpenMode, OsFs, SteppedJobs, Tuning, Worker, run_to_end,
};
pub use group::{
    ADAPTIVE_SPIN, DetachedSync, GroupSync, GroupWindow, POLL_CPUS, Spin, SyncUnderLock,
};
pub use metrics::{Bucket, HistogramSnapshot, Metrics};
pub use read_only::ReadOnlyDir;
pub use reader::{SharedReader, SharedRecord};
pub use replay::ReplayError;
pub use shared::{Appended, SharedWal};
pub use storage::{FileStorage, LOCK_FILE, read_at};
pub use tail::{BlockingTail, Tail, TailEvent};
#[cfg(feature = "encrypt")]
pub use transform::{KeyFileError, load_key_file};
pub use verify::{SegmentVerdict, VerifyReport, verify_dir, verify_dir_in};
pub use wal::{CoreWal, Options, Wal, random_seed};
#[cfg(feature = "encrypt")]
pub use walden_core::{Keyring, KeyringError};

/// The repository README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
pub use walden_core::{
    AppendError, Config, Lsn, OpenError, ReadError, RecoveryPolicy, RecoveryReport, SyncError,
    SyncPolicy, TruncateError,
};
