//! Workloads over the raft store, the events they report, and the model of what those events
//! promise.

use std::collections::{BTreeMap, HashSet};

use futures::executor::block_on;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use walden_core::{Config, Lsn};
use walden_openraft::LogStore;
use walden_openraft::kv::{Request, TypeConfig};
use walden_sim::{SimConfig, SimFs};
use walden_std::Options;

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
}

impl RaftVariant {
    /// Every variant, the correct one first.
    pub const ALL: [RaftVariant; 5] = [
        RaftVariant::Correct,
        RaftVariant::AckBeforeSync,
        RaftVariant::PurgeBeforeMetaDurable,
        RaftVariant::RewriteOnReopen,
        RaftVariant::VoteBeforeSync,
    ];

    fn apply(self, store: &SimStore) {
        match self {
            RaftVariant::Correct => {}
            RaftVariant::AckBeforeSync => store.acknowledge_before_sync_for_testing(),
            RaftVariant::PurgeBeforeMetaDurable => store.purge_before_meta_durable_for_testing(),
            RaftVariant::RewriteOnReopen => {}
            RaftVariant::VoteBeforeSync => store.vote_before_sync_for_testing(),
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
    for (n, step) in workload.steps.iter().enumerate() {
        let failed = |what: &str, e: &dyn core::fmt::Display| format!("step {n} ({what}): {e}");
        match step {
            RaftStep::Append { count, len } => {
                let mut entries = Vec::new();
                for index in next..next + count {
                    seq += 1;
                    let mut value = format!("{:x}-{seq:05}-", workload.seed);
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
                if let Err(e) = store.blocking_append(entries).await {
                    problems.push(failed("append", &e));
                    return problems;
                }
                next += count;
                fs.note(Event::Flushed(next - 1));
            }
            RaftStep::Vote => {
                term += 1;
                if let Err(e) = store.save_vote(&Vote::new(term, 1)).await {
                    problems.push(failed("save_vote", &e));
                    return problems;
                }
                fs.note(Event::Voted(term));
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
                if let Err(e) = store.purge(at).await {
                    problems.push(failed("purge", &e));
                    return problems;
                }
                fs.note(Event::Purged(*index));
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
    drop(store);
    problems
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
