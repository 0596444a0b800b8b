//! Workloads over the raft store, the events they report, and the model of what those events
//! promise.

use core::fmt::Debug;
use core::future::Future;
use core::ops::RangeBounds;
use core::pin::{Pin, pin};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Wake;
use std::thread::Thread;

use futures::FutureExt;
use futures::executor::block_on;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftLogStorageExt};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};
use walden_core::{Config, Lsn};
use walden_openraft::LogStore;
use walden_openraft::kv::{Request, TypeConfig};
use walden_sim::{SimConfig, SimFs};
use walden_std::{FileStorage, Options, SharedWal};

use super::fs::{PairFs, RAFT_DIR, Tape};

/// The store over the simulated pair of directories.
pub type SimStore = LogStore<TypeConfig, PairFs>;

/// What the explorer runs: the store as it ships, or with one deliberate defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RaftVariant {
    /// The store as it ships.
    Correct,
    /// The flush callback fires at append, before the entries are durable
    /// (`acknowledge_before_sync_for_testing`).
    AckBeforeSync,
    /// A purge removes whole segments of entries before the meta record with the new purge
    /// point is durable (`purge_before_meta_durable_for_testing`): the store's own ordering
    /// across its two logs.
    PurgeBeforeMetaDurable,
    /// Every reopen after a crash "compacts" the entries log wrongly: it cuts its last record
    /// (`truncate_back`, durable) and appends the same bytes again. Finished, it changes
    /// nothing; interrupted by a power loss, it loses a flushed entry. Only the crashes during
    /// the store's open (the explorer's nested crash points) can catch it.
    RewriteOnReopen,
    /// `save_vote` returns before the meta record holding the vote is durable
    /// (`vote_before_sync_for_testing`).
    VoteBeforeSync,
    /// `save_vote` and `purge` do not wait for entries appended before them to be durable
    /// (`meta_before_entries_durable_for_testing`): their meta record can name entries a
    /// power loss then loses.
    MetaBeforeEntriesDurable,
}

impl RaftVariant {
    /// Every variant, the correct one first.
    pub const ALL: [RaftVariant; 6] = [
        RaftVariant::Correct,
        RaftVariant::AckBeforeSync,
        RaftVariant::PurgeBeforeMetaDurable,
        RaftVariant::RewriteOnReopen,
        RaftVariant::VoteBeforeSync,
        RaftVariant::MetaBeforeEntriesDurable,
    ];

    fn apply(self, store: &SimStore) {
        match self {
            RaftVariant::Correct => {}
            RaftVariant::AckBeforeSync => store.acknowledge_before_sync_for_testing(),
            RaftVariant::PurgeBeforeMetaDurable => store.purge_before_meta_durable_for_testing(),
            RaftVariant::RewriteOnReopen => {}
            RaftVariant::VoteBeforeSync => store.vote_before_sync_for_testing(),
            RaftVariant::MetaBeforeEntriesDurable => {
                store.meta_before_entries_durable_for_testing();
            }
        }
    }

    /// What the variant does when the explorer reopens the store after a crash.
    pub(crate) fn on_reopen(self, store: &SimStore) {
        if self != RaftVariant::RewriteOnReopen {
            return;
        }
        let wal = store.entries_wal();
        let (first, last) = (wal.first_lsn(), wal.last_lsn());
        if last < first {
            return; // nothing to rewrite
        }
        let Ok(mut reader) = wal.reader(last) else {
            return;
        };
        let Ok(Some(record)) = reader.read_next() else {
            return;
        };
        let bytes = record.payload.to_vec();
        drop(reader);
        // Errors are the simulated disk's (none in a crash state): the variant stops there.
        if wal.truncate_back(Lsn(last.0 - 1)).is_ok() && wal.append(&bytes).is_ok() {
            let _ = wal.sync();
        }
    }
}

/// One call of openraft's storage API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftStep {
    /// `append` of `count` entries of the current term after the last one, each a `Set`
    /// whose value is `len` bytes; waits for the flush callback.
    Append {
        /// Entries in the call.
        count: u64,
        /// Bytes of each entry's value.
        len: usize,
    },
    /// `append` of `count` entries like [`RaftStep::Append`], whose flush callback is kept,
    /// not awaited: the entries' syncs are held back (see [`PairFs::hold_entries_syncs`])
    /// until a later `save_vote` or `purge` waits for them, or a step other than
    /// `save_committed`, another queued append, a vote or a purge comes. A `Committed` of one of
    /// them in between is what openraft's API allows (a commit of entries whose append is
    /// queued before it).
    AppendQueued {
        /// Entries in the call.
        count: u64,
        /// Bytes of each entry's value.
        len: usize,
    },
    /// `save_vote` of the next term (the term of later appends).
    Vote,
    /// `truncate` at this raft index (it and everything after it go).
    Truncate(u64),
    /// `purge` up to this raft index; past the last entry it is a snapshot install, and the
    /// next append starts after it.
    Purge(u64),
    /// `save_committed` of the entry at this index (not synced by the store).
    Committed(u64),
    /// Drop the store (both logs close) and open it again.
    Reopen,
}

/// A named, seeded workload over the store.
#[derive(Clone, Debug)]
pub struct RaftWorkload {
    /// Shown in reports.
    pub name: &'static str,
    /// Names the workload in a case; unique across the catalog.
    pub seed: u64,
    /// The entries log's segment size.
    pub entries_segment: u64,
    /// The meta log's segment size.
    pub meta_segment: u64,
    /// The simulator's sector size.
    pub sector_size: u32,
    /// The calls.
    pub steps: Vec<RaftStep>,
}

impl RaftWorkload {
    /// The options of the entries log.
    pub fn options(&self) -> Options {
        small_options(self.entries_segment)
    }

    /// The options of the meta log.
    pub fn meta_options(&self) -> Options {
        small_options(self.meta_segment)
    }

    /// An empty simulator for one of the two directories.
    pub fn fresh_sim(&self) -> SimFs {
        SimFs::new(SimConfig {
            seed: self.seed,
            sector_size: self.sector_size,
            garbage_holes: false,
        })
    }

    /// Opens the store on `fs`.
    pub fn open(&self, fs: PairFs) -> Result<SimStore, walden_openraft::OpenError> {
        SimStore::open_in_with_meta(fs, RAFT_DIR, self.options(), self.meta_options())
    }
}

fn small_options(segment_size: u64) -> Options {
    let mut config = Config::default()
        .with_segment_size(segment_size)
        .with_max_record_size(16 * 1024);
    config.max_batch_size = 64 * 1024;
    let mut options = Options::from(config);
    options.open_threads = 1;
    // Segments are a few KiB here: a megabyte of scratch per recovery is only cost.
    options.scratch_size = 64 << 10;
    options
}

/// What the workload reports, in order, on the tape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An entry is about to be appended (no promise yet: what may be recovered).
    Appending {
        /// Raft index.
        index: u64,
        /// Its term.
        term: u64,
        /// Its value (unique).
        value: String,
    },
    /// The flush callback fired for the entries appended up to this index.
    Flushed(u64),
    /// A `save_vote` of this term starts (its record may be durable before it returns).
    Voting(u64),
    /// A `purge` up to this index starts.
    Purging(u64),
    /// `save_vote` of this term returned.
    Voted(u64),
    /// A `truncate` at this index starts (a crash during it may or may not remove entries).
    Truncating(u64),
    /// The `truncate` returned.
    Truncated(u64),
    /// A `purge` up to this index returned.
    Purged(u64),
}

/// The raft log id of `index` in `term` (the leader is always node 1).
pub fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// The value of an entry (what the checks compare, besides the term).
pub fn value_of(entry: &Entry<TypeConfig>) -> String {
    match &entry.payload {
        EntryPayload::Normal(Request::Set { value, .. }) => value.clone(),
        other => format!("{other:?}"),
    }
}

/// Runs `workload` against `variant` on a fresh pair of directories, recording every moment.
/// Returns the tape and the problems seen while driving (a call that failed).
pub fn record(workload: &RaftWorkload, variant: RaftVariant) -> (Tape, Vec<String>) {
    let fs = PairFs::new(workload.fresh_sim(), workload.fresh_sim(), true);
    let problems = block_on(drive(workload, variant, &fs));
    (fs.finish(), problems)
}

async fn drive(workload: &RaftWorkload, variant: RaftVariant, fs: &PairFs) -> Vec<String> {
    let mut problems = Vec::new();
    let open = |problems: &mut Vec<String>| match workload.open(fs.clone()) {
        Ok(store) => {
            variant.apply(&store);
            Some(store)
        }
        Err(e) => {
            problems.push(format!("open failed: {e}"));
            None
        }
    };
    let Some(mut store) = open(&mut problems) else {
        return problems;
    };
    let mut term = 1u64;
    // As openraft does: a vote of a term is saved before any entry of that term is appended
    // (the store refuses to open a log whose entries are of a later term than its vote,
    // `OpenError::VoteBehind`).
    if let Err(e) = store.save_vote(&Vote::new(term, 1)).await {
        problems.push(format!("first save_vote: {e}"));
        return problems;
    }
    fs.note(Event::Voted(term));
    let mut next = 0u64; // the index of the next append
    let mut terms: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seq = 0u64;
    // Queued appends: the last index of each and its flush callback's receiving end.
    let mut queued: Vec<(u64, Flushed)> = Vec::new();
    for (n, step) in workload.steps.iter().enumerate() {
        let failed = |what: &str, e: &dyn core::fmt::Display| format!("step {n} ({what}): {e}");
        if !matches!(
            step,
            RaftStep::AppendQueued { .. }
                | RaftStep::Committed(_)
                | RaftStep::Vote
                | RaftStep::Purge(_)
        ) && let Err(e) = settle(fs, &mut queued).await
        {
            problems.push(failed("queued append's flush", &e));
            return problems;
        }
        match step {
            RaftStep::Append { count, len } => {
                let entries =
                    new_entries(workload, fs, &mut terms, &mut seq, next, *count, *len, term);
                if let Err(e) = store.blocking_append(entries).await {
                    problems.push(failed("append", &e));
                    return problems;
                }
                next += count;
                fs.note(Event::Flushed(next - 1));
            }
            RaftStep::AppendQueued { count, len } => {
                fs.hold_entries_syncs();
                let entries =
                    new_entries(workload, fs, &mut terms, &mut seq, next, *count, *len, term);
                let (callback, mut flushed) = flush_callback();
                if let Err(e) = store.append(entries, callback).await {
                    problems.push(failed("append (queued)", &e));
                    return problems;
                }
                next += count;
                match (&mut flushed).now_or_never() {
                    // The callback fired already (a store that acknowledges at once).
                    Some(Ok(())) => fs.note(Event::Flushed(next - 1)),
                    Some(Err(e)) => {
                        problems.push(failed("queued append's flush", &e));
                        return problems;
                    }
                    None => {
                        // Walden's syncer thread is on its way to sync them: let it reach the
                        // hold, so that what it writes before the sync comes before the next
                        // call's writes in every run.
                        fs.wait_for_held_sync(Duration::from_secs(5));
                        queued.push((next - 1, flushed));
                    }
                }
            }
            RaftStep::Vote => {
                term += 1;
                fs.note(Event::Voting(term));
                let vote = Vote::new(term, 1);
                if let Err(e) = held(fs, &store.meta_wal().clone(), store.save_vote(&vote)).await {
                    problems.push(failed("save_vote", &e));
                    return problems;
                }
                flushed_so_far(fs, &mut queued);
                fs.note(Event::Voted(term));
                if let Err(e) = settle(fs, &mut queued).await {
                    problems.push(failed("queued append's flush", &e));
                    return problems;
                }
            }
            RaftStep::Truncate(index) => {
                let at = log_id(terms.get(index).copied().unwrap_or(term), *index);
                fs.note(Event::Truncating(*index));
                if let Err(e) = store.truncate(at).await {
                    problems.push(failed("truncate", &e));
                    return problems;
                }
                fs.note(Event::Truncated(*index));
                next = next.min(*index);
                terms.retain(|i, _| i < index);
            }
            RaftStep::Purge(index) => {
                let at = log_id(terms.get(index).copied().unwrap_or(term), *index);
                fs.note(Event::Purging(*index));
                if let Err(e) = held(fs, &store.meta_wal().clone(), store.purge(at)).await {
                    problems.push(failed("purge", &e));
                    return problems;
                }
                flushed_so_far(fs, &mut queued);
                fs.note(Event::Purged(*index));
                if let Err(e) = settle(fs, &mut queued).await {
                    problems.push(failed("queued append's flush", &e));
                    return problems;
                }
                next = next.max(index + 1);
            }
            RaftStep::Committed(index) => {
                let at = log_id(terms.get(index).copied().unwrap_or(term), *index);
                if let Err(e) = store.save_committed(Some(at)).await {
                    problems.push(failed("save_committed", &e));
                    return problems;
                }
            }
            RaftStep::Reopen => {
                drop(store);
                let Some(again) = open(&mut problems) else {
                    return problems;
                };
                store = again;
            }
        }
    }
    if let Err(e) = settle(fs, &mut queued).await {
        problems.push(format!("the last queued append's flush: {e}"));
        return problems;
    }
    drop(store);
    problems
}

/// `count` new entries of `term` from `next`, each reported as [`Event::Appending`].
#[allow(clippy::too_many_arguments)]
fn new_entries(
    workload: &RaftWorkload,
    fs: &PairFs,
    terms: &mut BTreeMap<u64, u64>,
    seq: &mut u64,
    next: u64,
    count: u64,
    len: usize,
    term: u64,
) -> Vec<Entry<TypeConfig>> {
    let mut entries = Vec::new();
    for index in next..next + count {
        *seq += 1;
        let mut value = format!("{:x}-{:05}-", workload.seed, *seq);
        value.extend(core::iter::repeat_n('.', len.saturating_sub(value.len())));
        fs.note(Event::Appending {
            index,
            term,
            value: value.clone(),
        });
        terms.insert(index, term);
        entries.push(Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Request::Set {
                key: format!("k{index}"),
                value,
            }),
        });
    }
    entries
}

/// The receiving end of a flush callback: resolves once the store calls it.
type Flushed = Pin<Box<dyn Future<Output = Result<(), StorageError<u64>>> + Send>>;

/// An openraft flush callback ([`LogFlushed`]) and its receiving end. Only openraft can make
/// one (`LogFlushed::new` is crate-private), so this asks openraft's own `blocking_append`
/// to append to a [`Catcher`], which keeps the callback it is handed; the `blocking_append`
/// future, polled once, is left waiting for that callback.
fn flush_callback() -> (LogFlushed<TypeConfig>, Flushed) {
    let slot = Arc::new(Mutex::new(None));
    let mut catcher = Catcher(Arc::clone(&slot));
    let mut flushed: Flushed = Box::pin(async move {
        catcher
            .blocking_append(Vec::<Entry<TypeConfig>>::new())
            .await
    });
    assert!(
        (&mut flushed).now_or_never().is_none(),
        "blocking_append waits for the callback it hands over"
    );
    let callback = slot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("blocking_append called append");
    (callback, flushed)
}

/// Runs `call` (a `save_vote` or a `purge`) with the entries' syncs still held back while it
/// makes progress without them, then lets them go and finishes it. Decided by what the call
/// did, not by time: its first poll runs up to its first wait. The store as it ships waits
/// there for the held entries (it appends nothing to `meta` before they are durable): the
/// syncs are let go at once. One that does not wait has appended its meta record by then:
/// the syncs stay held until the call returns (its meta record is synced first, the crash
/// state the explorer must see).
async fn held<T>(
    fs: &PairFs,
    meta: &SharedWal<FileStorage<PairFs>>,
    call: impl Future<Output = T>,
) -> T {
    let mut call = pin!(call);
    if !fs.holding_entries_syncs() {
        return call.await;
    }
    let before = meta.last_lsn();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    if let Poll::Ready(out) = call.as_mut().poll(&mut cx) {
        return out;
    }
    if meta.last_lsn() == before {
        fs.release_entries_syncs();
        return call.await;
    }
    loop {
        if let Poll::Ready(out) = call.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Wakes the workload's thread (for [`held`]'s polling).
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Reports the queued appends whose callbacks have fired by now, in order.
fn flushed_so_far(fs: &PairFs, queued: &mut Vec<(u64, Flushed)>) {
    while let Some((last, flushed)) = queued.first_mut() {
        match flushed.now_or_never() {
            Some(Ok(())) => {
                fs.note(Event::Flushed(*last));
                drop(queued.remove(0));
            }
            // Reported by `settle`, which awaits it again.
            Some(Err(_)) | None => break,
        }
    }
}

/// Lets the held syncs go and waits for every queued append's callback, reporting each.
async fn settle(fs: &PairFs, queued: &mut Vec<(u64, Flushed)>) -> Result<(), StorageError<u64>> {
    fs.release_entries_syncs();
    for (last, flushed) in queued.drain(..) {
        flushed.await?;
        fs.note(Event::Flushed(last));
    }
    Ok(())
}

/// A log store that only keeps the flush callback openraft's `blocking_append` hands it (see
/// [`flush_callback`]); nothing else of it is ever called.
struct Catcher(Arc<Mutex<Option<LogFlushed<TypeConfig>>>>);

impl RaftLogReader<TypeConfig> for Catcher {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        _range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        unreachable!("only append is called")
    }
}

impl RaftLogStorage<TypeConfig> for Catcher {
    type LogReader = Catcher;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        unreachable!("only append is called")
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        unreachable!("only append is called")
    }

    async fn save_vote(&mut self, _vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        unreachable!("only append is called")
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        unreachable!("only append is called")
    }

    async fn append<I>(
        &mut self,
        _entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(callback);
        Ok(())
    }

    async fn truncate(&mut self, _log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        unreachable!("only append is called")
    }

    async fn purge(&mut self, _log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        unreachable!("only append is called")
    }
}

/// What the events up to a moment promise.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// index -> (term, value) of every entry appended and not removed by a reported
    /// truncate: the latest at each index.
    appended: BTreeMap<u64, (u64, String)>,
    /// Entries whose flush was acknowledged and that no reported truncate or purge removed.
    pub expected: BTreeMap<u64, (u64, String)>,
    /// Every (index, term, value) ever appended: nothing else may be recovered.
    pub ever: HashSet<(u64, u64, String)>,
    /// Values of entries a reported truncate removed.
    pub dead: HashSet<String>,
    /// The last vote reported saved.
    pub vote: Option<u64>,
    /// The last purge reported.
    pub purged: Option<u64>,
    /// A truncate that started and did not report: it may have removed entries from here.
    pub truncating: Option<u64>,
    /// The `save_vote`s and `purge`s that started while appended entries were not yet
    /// reported flushed: once one of them is durable, so are those entries (openraft's writes
    /// in order; the store waits for them before it writes the meta record).
    pub barriers: Vec<Barrier>,
}

/// A `save_vote` or `purge` that started with entries appended and not yet flushed.
#[derive(Clone, Debug)]
pub struct Barrier {
    /// The call, as [`Barrier::what`] names it.
    pub call: BarrierCall,
    /// index -> (term, value) of the entries appended before it and not yet flushed.
    pub entries: BTreeMap<u64, (u64, String)>,
}

/// The call of a [`Barrier`].
#[derive(Clone, Copy, Debug)]
pub enum BarrierCall {
    /// `save_vote` of this term.
    Vote(u64),
    /// `purge` up to this index.
    Purge(u64),
}

impl Barrier {
    /// Whether a store holding this vote term and purge point holds the barrier's meta record
    /// (or a later one).
    pub fn durable(&self, vote: Option<u64>, purged: Option<u64>) -> bool {
        match self.call {
            BarrierCall::Vote(term) => vote >= Some(term),
            BarrierCall::Purge(index) => purged >= Some(index),
        }
    }

    /// The call, for reports.
    pub fn what(&self) -> String {
        match self.call {
            BarrierCall::Vote(term) => format!("the save_vote of term {term}"),
            BarrierCall::Purge(index) => format!("the purge up to {index}"),
        }
    }
}

impl Model {
    /// The promises of `events`.
    pub fn of(events: &[Event]) -> Self {
        let mut model = Model::default();
        for event in events {
            model.apply(event);
        }
        model
    }

    /// The promises after a recovery that read back `got`, `vote` and `purged` from durable
    /// state: all of it must stay, and nothing a reported truncate removed may come back.
    pub fn after_recovery(
        &self,
        got: &BTreeMap<u64, (u64, String)>,
        vote: Option<u64>,
        purged: Option<u64>,
    ) -> Self {
        Model {
            appended: got.clone(),
            expected: got.clone(),
            ever: self.ever.clone(),
            dead: self.dead.clone(),
            vote,
            purged,
            truncating: None,
            barriers: Vec::new(),
        }
    }

    /// A barrier of `call`, if entries appended before it are not yet reported flushed.
    fn barrier(&mut self, call: BarrierCall) {
        let floor = self.purged.map_or(0, |p| p + 1);
        let entries: BTreeMap<u64, (u64, String)> = (self.appended.range(floor..))
            .filter(|(index, entry)| self.expected.get(index) != Some(entry))
            .map(|(index, entry)| (*index, entry.clone()))
            .collect();
        if !entries.is_empty() {
            self.barriers.push(Barrier { call, entries });
        }
    }

    /// Adds one event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Appending { index, term, value } => {
                self.appended.insert(*index, (*term, value.clone()));
                self.ever.insert((*index, *term, value.clone()));
            }
            Event::Flushed(last) => {
                // Every entry appended up to `last` since the last truncate is flushed.
                let floor = self.purged.map_or(0, |p| p + 1);
                if floor > *last {
                    return;
                }
                for (index, entry) in self.appended.range(floor..=*last) {
                    self.expected.insert(*index, entry.clone());
                }
            }
            Event::Voted(term) => self.vote = Some(*term),
            Event::Voting(term) => self.barrier(BarrierCall::Vote(*term)),
            // A purge to an older point than the last one returns at once: its barrier would
            // be held by the older record.
            Event::Purging(index) if self.purged.is_none_or(|p| p < *index) => {
                self.barrier(BarrierCall::Purge(*index));
            }
            Event::Purging(_) => {}
            Event::Truncating(index) => self.truncating = Some(*index),
            Event::Truncated(index) => {
                self.truncating = None;
                self.expected.split_off(index);
                for (_, value) in self.appended.split_off(index).into_values() {
                    self.dead.insert(value);
                }
            }
            Event::Purged(index) => {
                self.expected = self.expected.split_off(&(index + 1));
                self.purged = Some(self.purged.map_or(*index, |p| p.max(*index)));
            }
        }
    }
}
