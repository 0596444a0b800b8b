//! [`LogStore`]: openraft's `RaftLogStorage` and `RaftLogReader` on two Walden logs.

// openraft's `StorageError` is what its traits return; boxing it here would only move the cost.
#![allow(clippy::result_large_err)]

use core::fmt::Debug;
use core::ops::{Bound, RangeBounds};
use core::sync::atomic::{AtomicBool, Ordering};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, StorageError, StorageIOError, Vote,
};
use walden_std::{
    Config, DurableError, FileError, FileKind, FileStorage, FileSystem, Lsn, Options, OsFs,
    SharedWal, SyncPolicy,
};

use crate::error::OpenError;
use crate::index::{Run, rebuild};
use crate::meta::Meta;

/// Bytes in front of every entry record: its raft index, little-endian.
const INDEX_LEN: usize = 8;

/// Meta log segments are small: each record is a few dozen bytes, and old segments are
/// dropped as soon as a newer record is durable.
const META_SEGMENT_SIZE: u64 = 1 << 20;

/// A raft log on Walden: entries in `<dir>/entries`, vote, committed and purge point in
/// `<dir>/meta` (see the crate documentation for the layout and the index mapping).
///
/// Cheap to share: the [`LogReader`]s it hands out read the same logs concurrently.
///
/// `F` is the file system both logs live on: the real one ([`OsFs`]) unless a test opens the
/// store on a simulated one with [`LogStore::open_in`].
pub struct LogStore<C: RaftTypeConfig, F: FileSystem = OsFs> {
    shared: Arc<Shared<C, F>>,
}

/// Reads entries for replication, concurrently with the store's writes.
pub struct LogReader<C: RaftTypeConfig, F: FileSystem = OsFs> {
    shared: Arc<Shared<C, F>>,
}

struct Shared<C: RaftTypeConfig, F: FileSystem> {
    entries: SharedWal<FileStorage<F>>,
    meta: SharedWal<FileStorage<F>>,
    /// The live run and the meta state. Held across an append, a truncation, a purge or a
    /// read, so each sees the mapping it starts with.
    state: Mutex<State<C::NodeId>>,
    /// The first failed write or sync of either log. From then on every call fails: memory may
    /// hold what never became durable (entries, a vote, a purge point), and the other log
    /// must not take writes that only make sense after the failed one (an entry appended after
    /// a purge point that was lost maps to the wrong records at the next open).
    failed: Arc<OnceLock<String>>,
    /// A deliberately broken mode for the crash test's checker: fire the flush callback on
    /// append, before anything is synced.
    ack_before_sync: AtomicBool,
    /// A deliberately broken mode for the crash explorer: a purge removes entries before
    /// the meta record that moves the purge point is durable.
    purge_before_meta_durable: AtomicBool,
    /// A deliberately broken mode for the crash explorer: `save_vote` returns before the
    /// meta record holding the vote is durable.
    vote_before_sync: AtomicBool,
    /// Test-only broken order: `save_vote` and `purge` do not wait for entries already
    /// appended to be durable ([`LogStore::meta_before_entries_durable_for_testing`]).
    meta_before_entries_durable: AtomicBool,
}

struct State<NID: openraft::NodeId> {
    run: Option<Run<NID>>,
    meta: Meta<NID>,
}

impl<C: RaftTypeConfig, F: FileSystem> Shared<C, F> {
    fn lock(&self) -> MutexGuard<'_, State<C::NodeId>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails once a write or sync of either log has failed (see `failed`).
    fn check(
        &self,
        err: impl Fn(&dyn core::fmt::Display) -> StorageError<C::NodeId>,
    ) -> Result<(), StorageError<C::NodeId>> {
        match self.failed.get() {
            Some(why) => Err(err(&format_args!(
                "an earlier write failed ({why}); reopen the store"
            ))),
            None => Ok(()),
        }
    }

    /// Records `e`, the error of a write or sync, as the store's failure (the first is kept).
    fn fail(&self, e: StorageError<C::NodeId>) -> StorageError<C::NodeId> {
        let _ = self.failed.set(e.to_string());
        e
    }

    /// A change to the meta state in memory whose record is not yet durable; see [`Unsettled`].
    fn unsettled(&self, what: &'static str) -> Unsettled<'_> {
        Unsettled {
            failed: &self.failed,
            what,
            settled: false,
        }
    }
}

/// Poisons the store if dropped before [`Unsettled::settle`]. A `save_vote` or `purge` changes
/// the meta state in memory, then waits for its record to become durable. Stopped in between
/// (its future dropped, or an error before the record was written) memory is ahead of the
/// disk: the new vote or purge point is visible and may never become durable. So the store,
/// as after a failed write, takes and reports nothing more until it is reopened and reads what
/// the disk holds.
#[must_use = "dropped unsettled, it poisons the store"]
struct Unsettled<'a> {
    failed: &'a OnceLock<String>,
    what: &'static str,
    settled: bool,
}

impl Unsettled<'_> {
    /// The change is durable (or the store is already poisoned by its failure).
    fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.failed.set(format!(
                "a {} was stopped before its meta record was durable",
                self.what
            ));
        }
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// Opens (recovers) or creates the store in `dir`, with Walden's default configuration
    /// for the entries log (64 MiB segments).
    ///
    /// A store one of whose logs is missing while the other proves the store existed is
    /// refused with [`OpenError::Missing`], and the missing log is not created (see "Creating
    /// the store, and a missing log" in the crate documentation).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(dir, Options::default())
    }

    /// Opens with `options` for the entries log. Its durability is replaced: the store makes
    /// entries durable itself and reports it through openraft's flush callback.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self, OpenError> {
        Self::open_in(OsFs, dir, options)
    }
}

impl<C: RaftTypeConfig, F: FileSystem> LogStore<C, F> {
    /// [`LogStore::open_with`] on the file system `fs` (a simulated one, in tests: the crash
    /// explorer of `walden-tests` opens the store on `walden_std::SimFileSystem`s).
    pub fn open_in(fs: F, dir: impl AsRef<Path>, options: Options) -> Result<Self, OpenError> {
        let meta_options = Options::from(Config::default().with_segment_size(META_SEGMENT_SIZE));
        Self::open_in_with_meta(fs, dir, options, meta_options)
    }

    /// [`LogStore::open_in`] with `meta_options` for the meta log instead of its defaults
    /// (1 MiB segments), so that a simulated file system of a few KiB rotates and compacts it
    /// too. Its durability is replaced, as for the entries log. Tests only: a store must be
    /// opened with the same meta options every time.
    #[doc(hidden)]
    pub fn open_in_with_meta(
        fs: F,
        dir: impl AsRef<Path>,
        options: Options,
        meta_options: Options,
    ) -> Result<Self, OpenError> {
        let dir = dir.as_ref();
        let (entries_dir, meta_dir) = (dir.join("entries"), dir.join("meta"));
        let options = options.with_sync_policy(SyncPolicy::Manual);
        let mut meta_options = meta_options.with_sync_policy(SyncPolicy::Manual);
        // An open told not to create the entries log's directory creates no meta log either.
        meta_options.create_dir &= options.create_dir;
        // The meta log is created first, with a record, then the entries log, then a second
        // meta record (see "Creating the store, and a missing log" in the crate documentation).
        // So an entries log proves that the meta log held a record, and a second meta record
        // proves that the entries log was created: a log missing against that proof is lost,
        // not new.
        let entries_found = holds_log(&fs, &entries_dir, "entries")?;
        let meta_missing = || OpenError::Missing {
            log: "meta",
            dir: meta_dir.clone(),
            evidence: format!(
                "the entries log ({}) exists, and it is only created once the meta log holds a record",
                entries_dir.display()
            ),
        };
        if entries_found && !holds_log(&fs, &meta_dir, "meta")? {
            // Refused before the meta log is opened, so that it is not created.
            return Err(meta_missing());
        }
        let (meta_log, _) = SharedWal::open_in(fs.clone(), &meta_dir, meta_options)
            .map_err(|error| OpenError::Wal { log: "meta", error })?;
        let meta = match last_record(&meta_log)? {
            Some((lsn, bytes)) => Meta::decode(&bytes).map_err(|detail| OpenError::Corrupted {
                log: "meta",
                lsn,
                detail,
            })?,
            None if entries_found => return Err(meta_missing()),
            None => {
                // A new store, or a first open cut short before this record was durable.
                let meta = Meta::default();
                write_synced(&meta_log, &meta)?;
                meta
            }
        };
        let evidence = entries_evidence(&meta, meta_log.last_lsn());
        let entries_missing = |evidence: String| OpenError::Missing {
            log: "entries",
            dir: entries_dir.clone(),
            evidence,
        };
        if let Some(evidence) = evidence.clone().filter(|_| !entries_found) {
            // Refused before the entries log is opened, so that it is not created.
            return Err(entries_missing(evidence));
        }
        let (entries, report) =
            SharedWal::open_in(fs, &entries_dir, options).map_err(|error| OpenError::Wal {
                log: "entries",
                error,
            })?;
        if let Some(evidence) = evidence.filter(|_| report.created) {
            // Walden found no log where `holds_log` saw a segment file, and created one.
            return Err(entries_missing(evidence));
        }
        let last = match last_record(&entries)? {
            Some((lsn, bytes)) => {
                let entry: C::Entry = decode(&bytes).map_err(|detail| OpenError::Corrupted {
                    log: "entries",
                    lsn,
                    detail,
                })?;
                if entry.get_log_id().index == u64::MAX {
                    // `append` refuses it: the index after the last entry must exist.
                    return Err(OpenError::Corrupted {
                        log: "entries",
                        lsn,
                        detail: "the last entry's raft index is u64::MAX, which the store never writes",
                    });
                }
                Some((lsn, entry.get_log_id().clone()))
            }
            None => None,
        };
        let run = rebuild(entries.first_lsn(), last, meta.purged.as_ref()).map_err(|m| {
            OpenError::Corrupted {
                log: "entries",
                lsn: entries.first_lsn(),
                detail: match m {
                    crate::index::Mismatch::IndexBelowPosition => {
                        "the last entry's raft index is below its position in the log"
                    }
                    crate::index::Mismatch::Hole => {
                        "entries after the purged index are missing from the front of the log"
                    }
                },
            }
        })?;
        // A meta log or entries log restored from an older copy than the other.
        check_terms(&meta, run.as_ref())?;
        check_committed(&meta, run.as_ref())?;
        if meta_log.last_lsn() < SECOND_META_LSN {
            // The entries log is durable (Walden syncs a new log's segment and directory), and
            // it makes a raft log with the meta state: from this record on, a missing entries
            // log is refused. (Written after every check: an open that refuses an existing
            // store writes no record.)
            write_synced(&meta_log, &meta)?;
        }
        Ok(Self {
            shared: Arc::new(Shared {
                entries,
                meta: meta_log,
                state: Mutex::new(State { run, meta }),
                failed: Arc::new(OnceLock::new()),
                ack_before_sync: AtomicBool::new(false),
                purge_before_meta_durable: AtomicBool::new(false),
                vote_before_sync: AtomicBool::new(false),
                meta_before_entries_durable: AtomicBool::new(false),
            }),
        })
    }

    /// **Breaks the store, for testing crash checkers only**: from now on the flush callback
    /// fires as soon as entries are appended, before they are durable. `tests/crash.rs` uses
    /// it to show that its checker catches a store that acknowledges too early.
    #[doc(hidden)]
    pub fn acknowledge_before_sync_for_testing(&self) {
        self.shared.ack_before_sync.store(true, Ordering::Relaxed);
    }

    /// **Breaks the store, for testing crash checkers only**: from now on a purge removes
    /// whole segments of entries before the meta record holding the new purge point is
    /// written (let alone durable), so a power loss between the two leaves a log that starts
    /// after a purge point the store no longer knows. The crash explorer of `walden-tests`
    /// must catch it.
    #[doc(hidden)]
    pub fn purge_before_meta_durable_for_testing(&self) {
        self.shared
            .purge_before_meta_durable
            .store(true, Ordering::Relaxed);
    }

    /// **Breaks the store, for testing crash checkers only**: from now on `save_vote` appends
    /// the meta record holding the vote and returns without syncing it (nothing syncs it
    /// until a later call does), so a power loss can forget a vote reported saved. The crash
    /// explorer of `walden-tests` must catch it.
    #[doc(hidden)]
    pub fn vote_before_sync_for_testing(&self) {
        self.shared.vote_before_sync.store(true, Ordering::Relaxed);
    }

    /// **Breaks the store, for testing crash checkers only**: from now on `save_vote` and
    /// `purge` do not wait for entries already appended (submitted, not yet flushed) to be
    /// durable, so their meta record (which carries the committed id) can be durable before
    /// the entries it names: a power loss then loses them, and the reopen refuses with
    /// `CommittedBeyondLog`. The crash explorer of `walden-tests` must catch it.
    #[doc(hidden)]
    pub fn meta_before_entries_durable_for_testing(&self) {
        self.shared
            .meta_before_entries_durable
            .store(true, Ordering::Relaxed);
    }

    /// The entries log (for inspection and metrics).
    pub fn entries_wal(&self) -> &SharedWal<FileStorage<F>> {
        &self.shared.entries
    }

    /// The meta log (votes, commits, purge points; for inspection and metrics).
    pub fn meta_wal(&self) -> &SharedWal<FileStorage<F>> {
        &self.shared.meta
    }
}

/// Refuses a vote older than a log id the store holds ([`OpenError::VoteBehind`]).
///
/// openraft 0.9 saves a vote of term T before the node appends, purges or commits anything of
/// term T: its commands run one at a time in `RaftCore`, each awaited (`run_engine_commands`,
/// `run_command`), and the engine queues `SaveVote` before the entries of a term. A leader
/// saves its committed vote (`establish_leader`, through `VoteHandler::update_vote`) before
/// `leader_append_entries` queues its first entry; a follower saves the leader's vote
/// (`Engine::append_entries`, `handle_install_full_snapshot`) before appending the leader's
/// entries, which are of its term or older, or purging up to a snapshot of them; committed
/// and purged log ids name such entries. The store never lets the vote go back (each meta
/// record holds the whole state, Walden recovers a prefix, `save_vote` returns once durable).
/// So a newer term beside an older vote means the meta log went back.
fn check_terms<NID: openraft::NodeId>(
    meta: &Meta<NID>,
    run: Option<&Run<NID>>,
) -> Result<(), OpenError> {
    let vote_term = meta.vote.as_ref().map_or(0, |v| v.leader_id().term);
    let ids = [
        ("the last entry", run.map(|r| &r.last)),
        ("the purge point", meta.purged.as_ref()),
        ("the committed log id", meta.committed.as_ref()),
    ];
    let newest = (ids.into_iter())
        .filter_map(|(of, id)| id.map(|id| (of, id.leader_id.term)))
        .max_by_key(|&(_, term)| term);
    match newest {
        Some((of, term)) if term > vote_term => Err(OpenError::VoteBehind {
            vote_term,
            term,
            of,
        }),
        _ => Ok(()),
    }
}

/// Refuses a committed log id past the end of the log ([`OpenError::CommittedBeyondLog`]): the
/// last entry, or the purge point when no entry is left.
///
/// openraft 0.9 saves a committed log id only for entries already durable here: `append_to_log`
/// awaits the flush callback before the next command runs, a leader counts its own entries as
/// replicated (`update_local_progress`) only after it, and sends them to followers by commands
/// queued after it, so a quorum never covers an entry not flushed on the leader; a follower
/// commits up to what it accepted, capped (`FollowingHandler::commit_entries`) at entries whose
/// append is queued before the commit. Raft never truncates a committed entry, and a purge
/// point is committed. A committed record saved without a sync may be lost in a crash (an older
/// one is then read, never a newer one), but no entry it names can be.
fn check_committed<NID: openraft::NodeId>(
    meta: &Meta<NID>,
    run: Option<&Run<NID>>,
) -> Result<(), OpenError> {
    let Some(committed) = &meta.committed else {
        return Ok(());
    };
    let last = run
        .map(|r| r.last.index)
        .or(meta.purged.as_ref().map(|p| p.index));
    if last.is_none_or(|l| committed.index > l) {
        return Err(OpenError::CommittedBeyondLog {
            committed: committed.index,
            last,
        });
    }
    Ok(())
}

/// The LSN of the meta log's second record, written once the entries log exists.
const SECOND_META_LSN: Lsn = Lsn(2);

/// Whether `dir` holds a log: a segment file, named as docs/FORMAT.md ("Layout of a log")
/// says, 20 decimal digits and `.wal`. Walden creates a log where it finds none; checked
/// first, a missing log is refused without being created, so the next open refuses it too.
fn holds_log<F: FileSystem>(fs: &F, dir: &Path, log: &'static str) -> Result<bool, OpenError> {
    let fail = |action, e: io::Error| OpenError::Wal {
        log,
        error: walden_std::Error::Directory {
            dir: dir.to_path_buf(),
            action,
            error: FileError::from_io(&e),
        },
    };
    match fs.metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fail("examine", e)),
        // Not a directory: Walden's open says so.
        Ok(m) if m.kind != FileKind::Dir => return Ok(true),
        Ok(_) => {}
    }
    let is_segment = |name: &str| {
        name.strip_suffix(".wal")
            .is_some_and(|id| id.len() == 20 && id.bytes().all(|b| b.is_ascii_digit()))
    };
    let names = fs.read_dir(dir).map_err(|e| fail("list", e))?;
    Ok(names
        .iter()
        .any(|e| e.name.to_str().is_some_and(is_segment)))
}

/// What the meta log holds that proves the entries log was created, if anything: a vote, a
/// committed log id or a purge point (saved only while the store is open), or a record after
/// the first (the second is written once the entries log exists).
fn entries_evidence<NID: openraft::NodeId>(meta: &Meta<NID>, last: Lsn) -> Option<String> {
    let mut held = Vec::new();
    if let Some(vote) = &meta.vote {
        held.push(format!("vote {vote}"));
    }
    if let Some(committed) = &meta.committed {
        held.push(format!("committed log id {committed}"));
    }
    if let Some(purged) = &meta.purged {
        held.push(format!("purge point {purged}"));
    }
    if !held.is_empty() {
        Some(format!("the meta log holds {}", held.join(", ")))
    } else if last >= SECOND_META_LSN {
        Some("the meta log records that the entries log was created".to_owned())
    } else {
        None
    }
}

/// Appends `meta` to the meta log and syncs it (a step of the store's creation).
fn write_synced<F: FileSystem, NID: openraft::NodeId>(
    wal: &SharedWal<FileStorage<F>>,
    meta: &Meta<NID>,
) -> Result<(), OpenError> {
    let bytes = meta.encode().map_err(|e| OpenError::Create(Box::new(e)))?;
    let _appended = (wal.append(&bytes)).map_err(|e| OpenError::Create(Box::new(e)))?;
    wal.sync().map_err(|e| OpenError::Create(Box::new(e)))?;
    Ok(())
}

/// The last record of a log, if it has any.
fn last_record<F: FileSystem>(
    wal: &SharedWal<FileStorage<F>>,
) -> Result<Option<(Lsn, Vec<u8>)>, OpenError> {
    let last = wal.last_lsn();
    if last < wal.first_lsn() {
        return Ok(None);
    }
    let mut reader = wal.reader(last).map_err(OpenError::Read)?;
    match reader.read_next().map_err(OpenError::Read)? {
        Some(r) => Ok(Some((r.lsn, r.payload.to_vec()))),
        None => Ok(None),
    }
}

/// Decodes an entry record (raft index, then the postcard-encoded entry) and checks that the
/// two agree.
fn decode<E: RaftLogId<NID> + serde::de::DeserializeOwned, NID: openraft::NodeId>(
    bytes: &[u8],
) -> Result<E, &'static str> {
    if bytes.len() < INDEX_LEN {
        return Err("entry record is shorter than its index");
    }
    let (index, body) = bytes.split_at(INDEX_LEN);
    let index = u64::from_le_bytes(index.try_into().map_err(|_| "entry index")?);
    let entry: E = match postcard::take_from_bytes(body) {
        Ok((entry, [])) => entry,
        Ok(_) => return Err("entry record has bytes after the entry"),
        Err(_) => return Err("entry does not decode"),
    };
    if entry.get_log_id().index != index {
        return Err("entry's log id does not match the index stored with it");
    }
    Ok(entry)
}

fn encode<E: RaftLogId<NID> + serde::Serialize, NID: openraft::NodeId>(
    entry: &E,
    out: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    out.clear();
    out.extend_from_slice(&entry.get_log_id().index.to_le_bytes());
    out.extend(postcard::to_allocvec(entry)?);
    Ok(())
}

fn read_err<NID: openraft::NodeId>(e: impl core::fmt::Display) -> StorageError<NID> {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn write_err<NID: openraft::NodeId>(e: impl core::fmt::Display) -> StorageError<NID> {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn vote_err<NID: openraft::NodeId>(e: impl core::fmt::Display) -> StorageError<NID> {
    StorageIOError::write_vote(AnyError::error(e.to_string())).into()
}

/// Turns a range of raft indexes into `[start, end)`.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<C: RaftTypeConfig, F: FileSystem> Shared<C, F> {
    /// Entries with raft indexes in `[start, end)` that are live, in order.
    fn read(&self, start: u64, end: u64) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.check(|e| read_err(e))?;
        let st = self.lock();
        let Some(run) = &st.run else {
            return Ok(Vec::new());
        };
        let lo = start.max(run.first.0);
        let hi = end.min(run.last.index + 1);
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut reader = self.entries.reader(run.lsn(lo)).map_err(read_err)?;
        let mut out = Vec::with_capacity((hi - lo).min(4096) as usize);
        for index in lo..hi {
            let Some(r) = reader.read_next().map_err(read_err)? else {
                return Err(read_err(format_args!(
                    "entry {index} is missing from the log"
                )));
            };
            let entry: C::Entry = decode(r.payload)
                .map_err(|d| read_err(format_args!("entry {index} at {}: {d}", r.lsn.0)))?;
            if entry.get_log_id().index != index {
                return Err(read_err(format_args!(
                    "LSN {} holds raft index {}, expected {index}",
                    r.lsn.0,
                    entry.get_log_id().index
                )));
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Appends the meta state; returns a future for its durability. `err` names what the
    /// record is written for (the vote, or the logs' purge point).
    fn write_meta(
        &self,
        meta: &Meta<C::NodeId>,
        err: impl Fn(&dyn core::fmt::Display) -> StorageError<C::NodeId>,
    ) -> Result<walden_std::DurableFuture, StorageError<C::NodeId>> {
        let bytes = meta.encode().map_err(|e| err(&e))?;
        let (_, durable) = (self.meta.append_durable(&[&bytes])).map_err(|e| self.fail(err(&e)))?;
        Ok(durable)
    }

    /// Drops meta segments older than the one holding the newest durable record.
    fn compact_meta(&self) {
        if self.meta.segments().len() > 1
            && let Err(e) = self.meta.truncate_front(self.meta.durable_lsn())
        {
            tracing::warn!(error = %e, "could not drop old meta segments");
        }
    }

    /// Waits until every entry appended so far is durable, so a later write to the meta log
    /// never becomes durable before an earlier append (openraft requires its writes in order).
    async fn entries_durable(&self) -> Result<(), StorageError<C::NodeId>> {
        if self.meta_before_entries_durable.load(Ordering::Relaxed) {
            return Ok(()); // the broken order, for the crash explorer only
        }
        let last = self.entries.last_lsn();
        if self.entries.durable_lsn() < last {
            let durable = self.entries.durable(last).await;
            durable.map_err(|e| self.fail(write_err(e)))?;
        }
        Ok(())
    }
}

impl<C: RaftTypeConfig, F: FileSystem> Shared<C, F> {
    /// Appends `entries` one record each (not synced) and moves the run; `last` is the LSN of
    /// the last record written so far, also when an error stops it part way.
    fn append_entries<I>(
        &self,
        entries: I,
        last: &mut Option<Lsn>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        let mut st = self.lock();
        let mut buf = Vec::new();
        for entry in entries {
            let id = entry.get_log_id().clone();
            if id.index == u64::MAX {
                // The index after the last entry must exist (reads, the next append).
                return Err(write_err(format_args!(
                    "raft index {} is out of range",
                    id.index
                )));
            }
            let expected = match (&st.run, &st.meta.purged) {
                (Some(run), _) => Some(run.last.index + 1),
                (None, Some(p)) if id.index <= p.index => {
                    // Already purged (openraft purges up to the state machine's last applied
                    // entry at startup, and may then hand back older entries): nothing to keep.
                    tracing::debug!(index = id.index, purged = p.index, "skip purged entry");
                    continue;
                }
                (None, Some(p)) => Some(p.index + 1),
                (None, None) => None,
            };
            if let Some(expected) = expected.filter(|&e| e != id.index) {
                return Err(StorageError::from_io_error(
                    ErrorSubject::Log(id.clone()),
                    ErrorVerb::Write,
                    io::Error::other(format!(
                        "append would leave a hole: got index {}, expected {expected}",
                        id.index
                    )),
                ));
            }
            encode(&entry, &mut buf).map_err(write_err)?;
            let appended = (self.entries.append(&buf)).map_err(|e| self.fail(write_err(e)))?;
            match &mut st.run {
                Some(run) => run.last = id,
                None => {
                    st.run = Some(Run {
                        first: (id.index, appended.first),
                        last: id,
                    });
                }
            }
            *last = Some(appended.last);
        }
        Ok(())
    }
}

impl<C: RaftTypeConfig, F: FileSystem> RaftLogReader<C> for LogStore<C, F> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let (start, end) = bounds(&range);
        self.shared.read(start, end)
    }
}

impl<C: RaftTypeConfig, F: FileSystem> RaftLogReader<C> for LogReader<C, F> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let (start, end) = bounds(&range);
        self.shared.read(start, end)
    }
}

impl<C: RaftTypeConfig, F: FileSystem> RaftLogStorage<C> for LogStore<C, F> {
    type LogReader = LogReader<C, F>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        self.shared.check(|e| read_err(e))?;
        let st = self.shared.lock();
        let last_purged_log_id = st.meta.purged.clone();
        let last_log_id = match &st.run {
            Some(run) => Some(run.last.clone()),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.shared.check(|e| vote_err(e))?;
        self.shared.entries_durable().await?;
        let unsettled = self.shared.unsettled("vote save");
        let durable = {
            let mut st = self.shared.lock();
            st.meta.vote = Some(vote.clone());
            if self.shared.vote_before_sync.load(Ordering::Relaxed) {
                // The broken order: appended, no sync requested, reported saved.
                let bytes = st.meta.encode().map_err(vote_err)?;
                let _unsynced = self.shared.meta.append(&bytes).map_err(vote_err)?;
                unsettled.settle();
                return Ok(());
            }
            self.shared.write_meta(&st.meta, |e| vote_err(e))?
        };
        durable.await.map_err(|e| self.shared.fail(vote_err(e)))?;
        unsettled.settle();
        self.shared.compact_meta();
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.shared
            .check(|e| StorageIOError::read_vote(AnyError::error(e)).into())?;
        Ok(self.shared.lock().meta.vote.clone())
    }

    /// Appended to the meta log without a sync: it becomes durable with the next vote or
    /// purge (or the next sync of the meta log), and a crash may forget it, which openraft
    /// allows (it only re-applies from further back). Once the meta log spans more than one
    /// segment, the newest record is synced and the older segments dropped, so commits alone
    /// (no election, no purge) keep it to about one segment: one sync per segment of commits.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.shared.check(|e| write_err(e))?;
        let last = {
            let mut st = self.shared.lock();
            if st.meta.committed == committed {
                return Ok(());
            }
            st.meta.committed = committed;
            let bytes = st.meta.encode().map_err(write_err)?;
            // A plain append: no durability watcher, so no sync is requested.
            let appended = self.shared.meta.append(&bytes);
            appended.map_err(|e| self.shared.fail(write_err(e)))?.last
        };
        if self.shared.meta.segments().len() > 1 {
            let durable = self.shared.meta.durable(last).await;
            durable.map_err(|e| self.shared.fail(write_err(e)))?;
            self.shared.compact_meta();
        }
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        self.shared.check(|e| read_err(e))?;
        Ok(self.shared.lock().meta.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let shared = &self.shared;
        shared.check(|e| write_err(e))?;
        let mut last = None;
        let written = shared.append_entries(entries, &mut last);
        if let Err(e) = written {
            // Entries of this call already in the log were never reported durable: nothing
            // (the next vote's sync) may make them durable behind openraft's back.
            return Err(if last.is_some() { shared.fail(e) } else { e });
        }
        if shared.ack_before_sync.load(Ordering::Relaxed) {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        match last {
            // Fired by whichever thread makes the entries durable (Walden's syncer, or a group
            // commit another caller leads), or at once if they already are.
            Some(lsn) => {
                let failed = Arc::clone(&shared.failed);
                shared.entries.on_durable(lsn, move |outcome| {
                    // Before openraft hears of it, so that its next call is refused.
                    if let Err(e @ DurableError::Poisoned(_)) = outcome {
                        let _ = failed.set(e.to_string());
                    }
                    callback.log_io_completed(outcome.map(|_| ()).map_err(io::Error::other));
                });
            }
            None => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.shared.check(|e| write_err(e))?;
        let Some(run) = self.shared.lock().run.clone() else {
            return Ok(());
        };
        if log_id.index > run.last.index {
            return Ok(());
        }
        if log_id.index <= run.first.0 {
            // Nothing live is left.
            let mut st = self.shared.lock();
            self.shared
                .entries
                .truncate_back(run.first.1.prev())
                .map_err(|e| self.shared.fail(write_err(e)))?;
            st.run = None;
            return Ok(());
        }
        // The new last entry's log id: its term is only known by reading it (before the cut,
        // so readers never see a run that ends past the log).
        let keep = log_id.index - 1;
        let kept = self.shared.read(keep, keep + 1)?;
        let Some(last) = kept.first().map(|e| e.get_log_id().clone()) else {
            return Err(read_err(format_args!("entry {keep} is missing")));
        };
        let mut st = self.shared.lock();
        self.shared
            .entries
            .truncate_back(run.lsn(keep))
            .map_err(|e| self.shared.fail(write_err(e)))?;
        if let Some(run) = &mut st.run {
            run.last = last;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        // The purge point is durable before anything is removed, and before any later append
        // (which, after a purge past the end, starts a new run that only it explains).
        self.shared.check(|e| write_err(e))?;
        self.shared.entries_durable().await?;
        let (durable, cut, unsettled) = {
            let mut st = self.shared.lock();
            if st
                .meta
                .purged
                .as_ref()
                .is_some_and(|p| p.index >= log_id.index)
            {
                return Ok(());
            }
            if let Some(run) = st
                .run
                .as_ref()
                .filter(|r| log_id.index.saturating_add(1) < r.first.0)
            {
                // Only a log never purged can start past the purge point + 1 (openraft's suite
                // appends index 1 first); a purge point below its first entry would not explain
                // where the live entries start, and the store would not open again.
                return Err(write_err(format_args!(
                    "purge to index {} would leave a hole before the first entry {}",
                    log_id.index, run.first.0
                )));
            }
            let unsettled = self.shared.unsettled("purge");
            st.meta.purged = Some(log_id.clone());
            let cut = match st.run.clone() {
                Some(run) if log_id.index < run.last.index => {
                    let first = (log_id.index + 1).max(run.first.0);
                    let lsn = run.lsn(first);
                    st.run = Some(Run {
                        first: (first, lsn),
                        last: run.last,
                    });
                    lsn
                }
                _ => {
                    st.run = None;
                    self.shared.entries.last_lsn().next()
                }
            };
            if self
                .shared
                .purge_before_meta_durable
                .load(Ordering::Relaxed)
            {
                // The broken order: the entries go (durably) before the purge point is even
                // written, so every run of the explorer sees the gap between the two.
                let cut = self.shared.entries.truncate_front(cut);
                cut.map_err(|e| self.shared.fail(write_err(e)))?;
            }
            let durable = self.shared.write_meta(&st.meta, |e| write_err(e))?;
            (durable, cut, unsettled)
        };
        durable.await.map_err(|e| self.shared.fail(write_err(e)))?;
        unsettled.settle();
        self.shared.compact_meta();
        if self
            .shared
            .purge_before_meta_durable
            .load(Ordering::Relaxed)
        {
            return Ok(());
        }
        // Whole segments entirely below the first live entry go (the active one never does).
        let removed = self.shared.entries.truncate_front(cut);
        removed.map_err(|e| self.shared.fail(write_err(e)))?;
        Ok(())
    }
}
