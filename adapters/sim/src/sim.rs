//! [`SimStorage`]: the in-memory [`Storage`](walden_core::Storage) with separate volatile and durable images.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU64, Ordering};

use walden_core::{SegmentId, StorageError, StorageErrorKind};

use crate::effect::{FileEffect, Medium, UnsyncedEffect, resolve_file_effect, sector_pieces};
use crate::error::{SimError, SimErrorCause, refused};
use crate::fault::{FaultAction, FaultSchedule};
use crate::plan::{CrashPlan, Fate};
use crate::rng::Fingerprint;
use crate::trace::{KindCounts, Op, TraceEntry};

#[cfg(test)]
mod tests;

/// Settings of a [`SimStorage`]. The default is a 4096-byte sector, seed 0, no media faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimConfig {
    /// Seeds everything random the storage does by itself (garbage in enumerated crash states).
    pub seed: u64,
    /// The unit a write tears at: 512 or 4096 in practice (any non-zero value works).
    pub sector_size: u32,
    /// Media fault: after a crash, space that was never written (holes, extensions without
    /// data) reads as garbage instead of zeros.
    pub garbage_holes: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            sector_size: 4096,
            garbage_holes: false,
        }
    }
}

/// Identifies a file (an inode) independently of the segment name it is linked under, so that a
/// removed segment and a new one with the same id stay distinct until the directory is synced.
type FileId = u64;

/// Images are shared between copies of a simulator (the explorer copies one per crash state and
/// per recovery) and copied only when one of them changes (`Arc::make_mut`).
#[derive(Clone, Debug)]
struct SegmentFile {
    segment: SegmentId,
    durable: Arc<Vec<u8>>,
    /// The digest of `durable`, computed at most once per image and shared by every copy that
    /// shares the image (a crash state changes few files; `fingerprint` rehashes only those).
    /// Replaced whenever `durable` changes. 0: not computed yet (a digest of 0 is stored as 1).
    durable_digest: Arc<AtomicU64>,
    volatile: Arc<Vec<u8>>,
    pending: Vec<FileEffect>,
}

impl SegmentFile {
    fn new(segment: SegmentId, image: Arc<Vec<u8>>) -> Self {
        Self {
            segment,
            durable: Arc::clone(&image),
            durable_digest: Arc::default(),
            volatile: image,
            pending: Vec::new(),
        }
    }

    /// The durable image, to be changed: its digest is forgotten.
    fn durable_mut(&mut self) -> &mut Vec<u8> {
        self.durable_digest = Arc::default();
        Arc::make_mut(&mut self.durable)
    }

    fn durable_digest(&self) -> u64 {
        let known = self.durable_digest.load(Ordering::Relaxed);
        if known != 0 {
            return known;
        }
        let mut hash = Fingerprint::new(0x6a09_e667_f3bc_c908);
        hash.bytes(&self.durable);
        let digest = hash.finish().max(1);
        self.durable_digest.store(digest, Ordering::Relaxed);
        digest
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirEffect {
    Create { segment: SegmentId, file: FileId },
    Remove { segment: SegmentId, file: FileId },
}

/// An in-memory [`Storage`](walden_core::Storage) that remembers what is durable, what is not, and can crash.
///
/// * Writes and truncates change the volatile image at once (reads see them) and are queued as
///   unsynced effects of their file; `sync` applies the queue to the durable image.
/// * Creates and removes change the volatile directory and are queued as unsynced directory
///   effects; `sync_dir` applies them to the durable directory.
/// * [`SimStorage::crash`] resolves every queued effect as a [`CrashPlan`] says and returns the
///   storage as it would be found after power-up.
///
/// Operations that take `&self` (`read`, `len`, `list`) are traced too, through interior
/// mutability, so the type is `Send` but not `Sync`.
#[derive(Clone, Debug)]
pub struct SimStorage {
    config: SimConfig,
    files: BTreeMap<FileId, SegmentFile>,
    next_file: FileId,
    durable_dir: BTreeMap<SegmentId, FileId>,
    volatile_dir: BTreeMap<SegmentId, FileId>,
    pending_dir: Vec<DirEffect>,
    faults: RefCell<FaultSchedule>,
    op_budget: Option<u64>,
    crashed: Cell<bool>,
    ops: Cell<u64>,
    ops_by_kind: RefCell<KindCounts>,
    trace: RefCell<Vec<TraceEntry>>,
}

impl Default for SimStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl SimStorage {
    /// An empty storage with the default [`SimConfig`] and no faults: a plain in-memory
    /// storage as long as nobody calls [`SimStorage::crash`].
    pub fn new() -> Self {
        Self::with_config(SimConfig::default())
    }

    /// An empty storage with these settings.
    pub fn with_config(config: SimConfig) -> Self {
        Self {
            config: SimConfig {
                sector_size: config.sector_size.max(1),
                ..config
            },
            files: BTreeMap::new(),
            next_file: 0,
            durable_dir: BTreeMap::new(),
            volatile_dir: BTreeMap::new(),
            pending_dir: Vec::new(),
            faults: RefCell::new(FaultSchedule::new()),
            op_budget: None,
            crashed: Cell::new(false),
            ops: Cell::new(0),
            ops_by_kind: RefCell::new(KindCounts::default()),
            trace: RefCell::new(Vec::new()),
        }
    }

    /// The settings.
    pub const fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Replaces the scheduled faults.
    pub fn set_faults(&mut self, faults: FaultSchedule) {
        self.faults = RefCell::new(faults);
    }

    /// Cuts the power once `ops` operations (counted from the start of this storage's trace)
    /// have run: that operation and every later one fail with a [`SimErrorCause::Crashed`]
    /// error of kind [`StorageErrorKind::Io`] and change nothing. The state is then frozen as it
    /// was after operation `ops - 1`, ready for [`SimStorage::crash`].
    pub fn crash_after(&mut self, ops: u64) {
        self.op_budget = Some(ops);
    }

    /// Cuts the power now (see [`SimStorage::crash_after`]).
    pub fn power_off(&mut self) {
        self.op_budget = Some(self.ops.get());
        self.crashed.set(true);
    }

    /// `true` once an operation was refused because the power is off.
    pub fn has_crashed(&self) -> bool {
        self.crashed.get()
    }

    /// How many operations have been issued (the index the next one will get).
    pub fn op_count(&self) -> u64 {
        self.ops.get()
    }

    /// Every operation issued so far, in order.
    pub fn trace(&self) -> Vec<TraceEntry> {
        self.trace.borrow().clone()
    }

    /// The unsynced effects a crash would resolve, in the order a [`CrashPlan`] indexes them:
    /// directory effects first, then each file's effects.
    pub fn unsynced_effects(&self) -> Vec<UnsyncedEffect> {
        let mut effects: Vec<UnsyncedEffect> = self
            .pending_dir
            .iter()
            .map(|effect| match *effect {
                DirEffect::Create { segment, .. } => UnsyncedEffect::Create { segment },
                DirEffect::Remove { segment, .. } => UnsyncedEffect::Remove { segment },
            })
            .collect();
        let sector = self.config.sector_size as usize;
        for file in self.files.values() {
            let segment = file.segment;
            effects.extend(file.pending.iter().map(|effect| match effect {
                FileEffect::Write { offset, data } => UnsyncedEffect::Write {
                    segment,
                    offset: *offset as u64,
                    len: data.len() as u64,
                    pieces: sector_pieces(*offset, data.len(), sector).len() as u32,
                },
                FileEffect::Truncate { len } => UnsyncedEffect::Truncate {
                    segment,
                    len: *len as u64,
                },
            }));
        }
        effects
    }

    /// The volatile contents of a segment (what `read` sees), if it exists.
    pub fn contents(&self, segment: SegmentId) -> Option<&[u8]> {
        let file = self.volatile_dir.get(&segment)?;
        Some(&self.files[file].volatile)
    }

    /// The durable contents of a segment, if its creation is durable: what a crash that loses
    /// every unsynced effect leaves.
    pub fn durable_contents(&self, segment: SegmentId) -> Option<&[u8]> {
        let file = self.durable_dir.get(&segment)?;
        Some(&self.files[file].durable)
    }

    /// The segments in the durable directory, ascending.
    pub fn durable_segments(&self) -> Vec<SegmentId> {
        self.durable_dir.keys().copied().collect()
    }

    /// A 64-bit digest of the durable state (directory and images). Two storages just out of
    /// [`SimStorage::crash`] with equal fingerprints are, barring a collision, the same crash
    /// state, so an explorer can count distinct states and skip repeats.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Fingerprint::new(0xcbf2_9ce4_8422_2325);
        hash.word(self.durable_dir.len() as u64);
        for (segment, file) in &self.durable_dir {
            hash.word(*segment);
            hash.word(self.files[file].durable_digest());
        }
        hash.finish()
    }

    /// A 64-bit digest of everything a crash of this storage can lead to: the durable state,
    /// the volatile images and directory, and every unsynced effect in order. Two storages
    /// with equal state fingerprints (barring a collision) have the same crash states, so an
    /// explorer that already went on from one need not go on from the other. (Traces, faults
    /// and operation counts are left out: they describe how the storage got here.)
    pub fn state_fingerprint(&self) -> u64 {
        let mut hash = Fingerprint::new(0x5be0_cd19_137e_2179);
        hash.word(self.fingerprint());
        hash.word(self.config.seed);
        hash.word(u64::from(self.config.sector_size));
        hash.word(u64::from(self.config.garbage_holes));
        for dir in [&self.durable_dir, &self.volatile_dir] {
            hash.word(dir.len() as u64);
            for (segment, file) in dir {
                hash.word(*segment);
                hash.word(*file);
            }
        }
        hash.word(self.pending_dir.len() as u64);
        for effect in &self.pending_dir {
            let (tag, segment, file) = match *effect {
                DirEffect::Create { segment, file } => (1, segment, file),
                DirEffect::Remove { segment, file } => (2, segment, file),
            };
            hash.word(tag);
            hash.word(segment);
            hash.word(file);
        }
        hash.word(self.next_file);
        hash.word(self.files.len() as u64);
        for (id, file) in &self.files {
            hash.word(*id);
            hash.word(file.segment);
            hash.word(file.durable_digest());
            hash.bytes(&file.volatile);
            hash.word(file.pending.len() as u64);
            for effect in &file.pending {
                match effect {
                    FileEffect::Write { offset, data } => {
                        hash.word(1);
                        hash.word(*offset as u64);
                        hash.bytes(data);
                    }
                    FileEffect::Truncate { len } => {
                        hash.word(2);
                        hash.word(*len as u64);
                    }
                }
            }
        }
        hash.finish()
    }

    /// Media fault: flips bit `bit % 8` of the durable byte at `offset` of `segment`. Reads
    /// before a crash still see the cached, correct byte. Returns `false` if there is no such
    /// durable byte.
    pub fn flip_durable_bit(&mut self, segment: SegmentId, offset: u64, bit: u8) -> bool {
        let Some(file) = self.durable_dir.get(&segment) else {
            return false;
        };
        let image = self
            .files
            .get_mut(file)
            .expect("linked file exists")
            .durable_mut();
        match usize::try_from(offset)
            .ok()
            .and_then(|at| image.get_mut(at))
        {
            Some(byte) => {
                *byte ^= 1 << (bit % 8);
                true
            }
            None => false,
        }
    }

    /// The storage as found after a power loss in the current state, with every unsynced effect
    /// resolved as `plan` says. The result has no unsynced effects, no faults scheduled, an
    /// empty trace and the same settings; `self` is unchanged, so one state can be crashed many
    /// ways.
    pub fn crash(&self, plan: &CrashPlan) -> SimStorage {
        let medium = Medium {
            sector_size: self.config.sector_size as usize,
            garbage_seed: plan.garbage_seed,
            garbage_holes: self.config.garbage_holes,
        };
        let mut dir = self.durable_dir.clone();
        for (index, effect) in self.pending_dir.iter().enumerate() {
            if !plan.fate(index).took_effect() {
                continue;
            }
            match *effect {
                DirEffect::Create { segment, file } => {
                    dir.insert(segment, file);
                }
                DirEffect::Remove { segment, file } => {
                    if dir.get(&segment) == Some(&file) {
                        dir.remove(&segment);
                    }
                }
            }
        }
        let mut files = BTreeMap::new();
        let mut index = self.pending_dir.len();
        for (id, file) in &self.files {
            let mut image = Arc::clone(&file.durable);
            for effect in &file.pending {
                let image = Arc::make_mut(&mut image);
                resolve_file_effect(image, effect, plan.fate(index), &medium, index);
                index += 1;
            }
            if dir.values().any(|linked| linked == id) {
                let mut after = SegmentFile::new(file.segment, image);
                if file.pending.is_empty() {
                    // The same image: the same digest.
                    after.durable_digest = Arc::clone(&file.durable_digest);
                }
                files.insert(*id, after);
            }
        }
        let mut after = SimStorage::with_config(self.config);
        after.files = files;
        after.next_file = self.next_file;
        after.volatile_dir = dir.clone();
        after.durable_dir = dir;
        after
    }

    /// The storage as a new process finds it when only the process died, not the machine:
    /// everything unsynced stays unsynced (and a crash can still resolve it), but the trace,
    /// operation budget and faults start afresh. Use it to reopen a poisoned log.
    pub fn reopen(&self) -> SimStorage {
        let mut reopened = SimStorage::with_config(self.config);
        reopened.files = self.files.clone();
        reopened.next_file = self.next_file;
        reopened.durable_dir = self.durable_dir.clone();
        reopened.volatile_dir = self.volatile_dir.clone();
        reopened.pending_dir = self.pending_dir.clone();
        reopened
    }

    /// How many unsynced effects a crash would resolve: the length a [`CrashPlan`] for the
    /// current state should have.
    pub fn unsynced_effect_count(&self) -> usize {
        self.pending_dir.len() + self.files.values().map(|f| f.pending.len()).sum::<usize>()
    }

    fn begin(&self, op: Op) -> Result<(u64, Option<FaultAction>), SimError> {
        let index = self.ops.get();
        self.ops.set(index + 1);
        let kind = op.kind();
        let nth_of_kind = self.ops_by_kind.borrow_mut().bump(kind);
        if self.op_budget.is_some_and(|budget| index >= budget) {
            self.crashed.set(true);
            let error = SimError::new(
                StorageErrorKind::Io,
                SimErrorCause::Crashed,
                index,
                "the power is off",
            );
            self.record(index, op, Some(error.kind()));
            return Err(error);
        }
        let fault = self.faults.borrow_mut().take(index, kind, nth_of_kind);
        Ok((index, fault))
    }

    fn record(&self, index: u64, op: Op, failure: Option<StorageErrorKind>) {
        self.trace
            .borrow_mut()
            .push(TraceEntry { index, op, failure });
    }

    fn finish<T>(&self, index: u64, op: Op, result: Result<T, SimError>) -> Result<T, SimError> {
        self.record(index, op, result.as_ref().err().map(StorageError::kind));
        result
    }

    fn file_id(&self, segment: SegmentId, index: u64) -> Result<FileId, SimError> {
        self.volatile_dir
            .get(&segment)
            .copied()
            .ok_or_else(|| refused(StorageErrorKind::NotFound, index, "no such segment"))
    }

    fn sync_file(&mut self, file: FileId) {
        let medium = Medium {
            sector_size: self.config.sector_size as usize,
            garbage_seed: 0,
            garbage_holes: false,
        };
        let file = self.files.get_mut(&file).expect("linked file exists");
        let pending = core::mem::take(&mut file.pending);
        for effect in pending {
            resolve_file_effect(file.durable_mut(), &effect, Fate::Happened, &medium, 0);
        }
    }

    fn sync_directory(&mut self) {
        for effect in self.pending_dir.drain(..) {
            match effect {
                DirEffect::Create { segment, file } => {
                    self.durable_dir.insert(segment, file);
                }
                DirEffect::Remove { segment, file } => {
                    if self.durable_dir.get(&segment) == Some(&file) {
                        self.durable_dir.remove(&segment);
                    }
                }
            }
        }
        self.collect_unlinked_files();
    }

    fn collect_unlinked_files(&mut self) {
        let (durable, volatile) = (&self.durable_dir, &self.volatile_dir);
        let pending = &self.pending_dir;
        self.files.retain(|id, _| {
            durable.values().any(|f| f == id)
                || volatile.values().any(|f| f == id)
                || pending.iter().any(|effect| match effect {
                    DirEffect::Create { file, .. } | DirEffect::Remove { file, .. } => file == id,
                })
        });
    }
}

mod operations;
