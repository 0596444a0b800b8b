//! [`SimFs`]: a simulated file system with a page cache (see its documentation).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use walden_core::StorageErrorKind;

use crate::effect::{FileEffect, Medium, resolve_file_effect, sector_pieces};
use crate::explore::{CaseId, CrashBounds, CrashStates, PlanPick, random_plan};
use crate::fault::FaultSchedule;
use crate::plan::CrashPlan;
use crate::rng::Fingerprint;
use crate::sim::SimConfig;
use crate::trace::{KindCounts, OpKind};

mod ops;
#[cfg(test)]
mod tests;

/// Identifies a file of a [`SimFs`] independently of its names.
pub type Inode = u64;

#[derive(Clone, Debug, Default)]
struct InodeData {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    pending: Vec<FileEffect>,
    /// How many syncs of this file failed and dropped dirty data: Linux's `errseq_t`. Every
    /// open file description remembers the count it has reported, and its next sync fails
    /// once if the count moved on (see [`SimFs::sync_handle`]).
    errors: u64,
}

/// A namespace change that is volatile until the directory (for `Mkdir`, its parent) is synced.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DirOp {
    Mkdir,
    Create {
        name: String,
        inode: Inode,
    },
    Link {
        name: String,
        inode: Inode,
    },
    Unlink {
        name: String,
        inode: Inode,
    },
    Rename {
        from: String,
        to: String,
        inode: Inode,
    },
}

impl DirOp {
    fn inode(&self) -> Option<Inode> {
        match self {
            DirOp::Mkdir => None,
            DirOp::Create { inode, .. }
            | DirOp::Link { inode, .. }
            | DirOp::Unlink { inode, .. }
            | DirOp::Rename { inode, .. } => Some(*inode),
        }
    }

    /// Applies the change to `ns` as it would land on the medium.
    fn apply(&self, ns: &mut Namespace) {
        match self {
            DirOp::Mkdir => ns.exists = true,
            DirOp::Create { name, inode } | DirOp::Link { name, inode } => {
                ns.entries.insert(name.clone(), *inode);
            }
            DirOp::Unlink { name, inode } => {
                if ns.entries.get(name) == Some(inode) {
                    ns.entries.remove(name);
                }
            }
            DirOp::Rename { from, to, inode } => {
                if ns.entries.get(from) == Some(inode) {
                    ns.entries.remove(from);
                }
                ns.entries.insert(to.clone(), *inode);
            }
        }
    }
}

/// The log directory: whether it exists, and its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Namespace {
    exists: bool,
    entries: BTreeMap<String, Inode>,
}

/// One state-changing call of a [`SimFs`], as its trace records it. Files are named by inode;
/// [`SimFs::describe_op`] adds their names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsOp {
    /// `mkdir` of the log directory.
    Mkdir,
    /// `open(O_CREAT)` of a new file.
    Create {
        /// The name.
        name: String,
    },
    /// `link(from, to)`.
    Link {
        /// The existing name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `rename(from, to)`.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `unlink(name)`.
    Unlink {
        /// The name.
        name: String,
    },
    /// `pwrite`.
    Write {
        /// The file.
        inode: Inode,
        /// Where.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// `ftruncate` (either way).
    SetLen {
        /// The file.
        inode: Inode,
        /// The new length.
        len: u64,
    },
    /// `fallocate(KEEP_SIZE)`.
    Allocate {
        /// The file.
        inode: Inode,
        /// Up to where.
        len: u64,
    },
    /// `fdatasync` / `fsync` of a file.
    Sync {
        /// The file.
        inode: Inode,
    },
    /// `fsync` of the log directory.
    SyncDir,
    /// `fsync` of the directory that holds the log directory.
    SyncParent,
}

impl FsOp {
    /// The [`OpKind`] a [`FaultSchedule`] matches this call as: the storage operation it plays
    /// (`create`, `link`, `rename` and `mkdir` are creates, `unlink` a remove, `set_len` a
    /// truncate, `allocate` a reserve, both directory syncs a `sync_dir`).
    pub const fn kind(&self) -> OpKind {
        match self {
            FsOp::Mkdir | FsOp::Create { .. } | FsOp::Link { .. } | FsOp::Rename { .. } => {
                OpKind::Create
            }
            FsOp::Unlink { .. } => OpKind::Remove,
            FsOp::Write { .. } => OpKind::Write,
            FsOp::SetLen { .. } => OpKind::Truncate,
            FsOp::Allocate { .. } => OpKind::Reserve,
            FsOp::Sync { .. } => OpKind::Sync,
            FsOp::SyncDir | FsOp::SyncParent => OpKind::SyncDir,
        }
    }

    /// `true` if the call can change what a crash leaves (only `allocate` cannot): crashing
    /// after one that cannot is the same as crashing before it.
    pub const fn changes_state(&self) -> bool {
        !matches!(self, FsOp::Allocate { .. })
    }
}

/// One line of a [`SimFs`] trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsTraceEntry {
    /// The operation index.
    pub index: u64,
    /// The call.
    pub op: FsOp,
    /// `None` if it succeeded, else the kind of error it returned.
    pub failure: Option<StorageErrorKind>,
}

/// An effect a crash resolves, with names, for failure reports and for
/// [`CrashStates::of_effects`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsEffect {
    /// The log directory was created and its parent not synced since.
    Mkdir,
    /// A name was created for a new file.
    Create {
        /// The name.
        name: String,
    },
    /// A name was linked to an existing file.
    Link {
        /// The name.
        name: String,
    },
    /// A name was removed.
    Unlink {
        /// The name.
        name: String,
    },
    /// A file was renamed (atomically: one effect).
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// Bytes were written and the file not synced since.
    Write {
        /// The file's name (see [`SimFs::name_of`]).
        file: String,
        /// Where the bytes land.
        offset: u64,
        /// How many.
        len: u64,
        /// Sector pieces covered: a torn write keeps some of them.
        pieces: u32,
    },
    /// The file's length was set and the file not synced since.
    SetLen {
        /// The file's name.
        file: String,
        /// The new length.
        len: u64,
    },
}

impl FsEffect {
    /// For a write, the sector pieces it covers; `None` for effects that happen or not.
    pub const fn pieces(&self) -> Option<u32> {
        match self {
            FsEffect::Write { pieces, .. } => Some(*pieces),
            _ => None,
        }
    }
}

impl fmt::Display for FsEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsEffect::Mkdir => f.write_str("mkdir (log directory)"),
            FsEffect::Create { name } => write!(f, "create {name}"),
            FsEffect::Link { name } => write!(f, "link {name}"),
            FsEffect::Unlink { name } => write!(f, "unlink {name}"),
            FsEffect::Rename { from, to } => write!(f, "rename {from} -> {to}"),
            FsEffect::Write {
                file, offset, len, ..
            } => write!(f, "write {file}@{offset}+{len}"),
            FsEffect::SetLen { file, len } => write!(f, "set_len {file} to {len}"),
        }
    }
}

/// A simulated file system with a page cache, one log directory deep, for exploring
/// what an adapter does on disk (walden-std's `FileStorage`), not only what core asks of a
/// [`Storage`](walden_core::Storage).
///
/// Where [`SimStorage`](crate::SimStorage) models the `Storage` contract, `SimFs` models the
/// POSIX calls behind it: files are **inodes** that any number of names can link to; names live
/// in one directory whose existence is itself a (parent) directory entry; every inode has a
/// durable and a volatile image; a crash resolves each unsynced effect with the same
/// [`Fate`](crate::Fate)s, enumerated by the same [`CrashStates`].
///
/// | Call | Volatile at once | Durable when |
/// |---|---|---|
/// | `mkdir` of the log directory | yes | the parent directory is synced ([`SimFs::sync_parent`]) |
/// | `create`, `link`, `unlink`, `rename` | yes | the directory is synced ([`SimFs::sync_dir`]); `rename` is one effect, so old name or new, never both or neither |
/// | `write` | yes | the inode is synced ([`SimFs::sync`]); until then lost, whole or torn at sector boundaries, in any subset (reordering) |
/// | `set_len` (shrink or grow) | yes | the inode is synced |
/// | `allocate` (`fallocate(KEEP_SIZE)`) | nothing visible | — (it only reserves blocks; it can fail with `NoSpace`) |
/// | `forget_cache` (`fadvise(DONTNEED)`) | clean cached pages dropped: reads show durable data plus the still-dirty writes | — |
///
/// Syncing an inode's data never makes a name of it durable, and syncing the directory never
/// makes data durable. A failed sync ([`FaultAction::SyncLosesData`](crate::FaultAction::SyncLosesData)) drops the inode's dirty
/// effects while reads still see them (the page cache keeps the pages, marked clean). As on
/// Linux (`errseq_t`), the error is then reported once to every open file description that
/// syncs the file afterwards, and only then do its syncs "succeed" again
/// ([`SimFs::sync_handle`]); a description opened after the failure never sees it. Until
/// [`SimFs::forget_cache`] drops those clean pages, a process reads data that will never reach
/// the medium.
///
/// Only state-changing calls are numbered: the operation index that
/// [`SimFs::crash_after`] counts, faults target and the trace records. Lookups, reads, lengths,
/// listings, `forget_cache` and locks are not numbered (they change nothing a crash could
/// leave), so threads that only read may run in any order without changing a run's numbering.
///
/// Like [`SimStorage`](crate::SimStorage) it is deterministic, `Clone` (a snapshot), crashes
/// into a new value ([`SimFs::crash`]) and can be told to cut the power after `n` operations
/// ([`SimFs::crash_after`]) or to fail a chosen one ([`SimFs::set_faults`]).
#[derive(Clone, Debug)]
pub struct SimFs {
    config: SimConfig,
    inodes: BTreeMap<Inode, InodeData>,
    next_inode: Inode,
    durable: Namespace,
    volatile: Namespace,
    pending_dir: Vec<DirOp>,
    /// The first name each inode was given, for reports about files no longer linked.
    first_names: BTreeMap<Inode, String>,
    locks: BTreeSet<Inode>,
    faults: FaultSchedule,
    op_budget: Option<u64>,
    crashed: bool,
    ops: u64,
    ops_by_kind: KindCounts,
    trace: Vec<FsTraceEntry>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new(SimConfig::default())
    }
}

impl SimFs {
    /// A file system whose log directory does not exist yet.
    pub fn new(config: SimConfig) -> Self {
        Self {
            config: SimConfig {
                sector_size: config.sector_size.max(1),
                ..config
            },
            inodes: BTreeMap::new(),
            next_inode: 1,
            durable: Namespace::default(),
            volatile: Namespace::default(),
            pending_dir: Vec::new(),
            first_names: BTreeMap::new(),
            locks: BTreeSet::new(),
            faults: FaultSchedule::new(),
            op_budget: None,
            crashed: false,
            ops: 0,
            ops_by_kind: KindCounts::default(),
            trace: Vec::new(),
        }
    }

    /// The settings.
    pub const fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Replaces the scheduled faults. Operation indices and kinds are [`FsOp`]'s.
    pub fn set_faults(&mut self, faults: FaultSchedule) {
        self.faults = faults;
    }

    /// Cuts the power once `ops` state-changing operations have run: that one and every later
    /// call (reads included) fail with a [`SimErrorCause::Crashed`](crate::SimErrorCause::Crashed) error and change nothing.
    pub fn crash_after(&mut self, ops: u64) {
        self.op_budget = Some(ops);
    }

    /// Cuts the power now.
    pub fn power_off(&mut self) {
        self.op_budget = Some(self.ops);
        self.crashed = true;
    }

    /// `true` once a call was refused because the power is off.
    pub fn has_crashed(&self) -> bool {
        self.crashed
    }

    /// How many state-changing operations have been issued.
    pub fn op_count(&self) -> u64 {
        self.ops
    }

    /// Every state-changing operation so far, in order.
    pub fn trace(&self) -> &[FsTraceEntry] {
        &self.trace
    }

    /// A name of `inode` for reports: a current name, else a durable one, else the first name
    /// it had (with `(unlinked)`).
    pub fn name_of(&self, inode: Inode) -> String {
        let find = |ns: &Namespace| {
            ns.entries
                .iter()
                .find(|(_, i)| **i == inode)
                .map(|(n, _)| n.clone())
        };
        find(&self.volatile)
            .or_else(|| find(&self.durable))
            .unwrap_or_else(|| match self.first_names.get(&inode) {
                Some(name) => alloc::format!("{name} (unlinked)"),
                None => alloc::format!("inode {inode}"),
            })
    }

    /// One trace line with file names, e.g. `#7 write 00000000000000000001.wal@64+100`.
    pub fn describe_op(&self, entry: &FsTraceEntry) -> String {
        let op = match &entry.op {
            FsOp::Mkdir => "mkdir".into(),
            FsOp::Create { name } => alloc::format!("create {name}"),
            FsOp::Link { from, to } => alloc::format!("link {from} -> {to}"),
            FsOp::Rename { from, to } => alloc::format!("rename {from} -> {to}"),
            FsOp::Unlink { name } => alloc::format!("unlink {name}"),
            FsOp::Write { inode, offset, len } => {
                alloc::format!("write {}@{offset}+{len}", self.name_of(*inode))
            }
            FsOp::SetLen { inode, len } => {
                alloc::format!("set_len {} to {len}", self.name_of(*inode))
            }
            FsOp::Allocate { inode, len } => {
                alloc::format!("allocate {} to {len}", self.name_of(*inode))
            }
            FsOp::Sync { inode } => alloc::format!("sync {}", self.name_of(*inode)),
            FsOp::SyncDir => "sync_dir".into(),
            FsOp::SyncParent => "sync_parent".into(),
        };
        match entry.failure {
            None => alloc::format!("#{} {op}", entry.index),
            Some(kind) => alloc::format!("#{} {op} -> {kind}", entry.index),
        }
    }

    /// Whether the log directory exists (volatile view).
    pub fn dir_exists(&self) -> bool {
        self.volatile.exists
    }

    /// The durable names and their contents, in name order: what a crash that loses every
    /// unsynced effect leaves. Empty if the directory itself is not durable.
    pub fn durable_files(&self) -> Vec<(String, Vec<u8>)> {
        if !self.durable.exists {
            return Vec::new();
        }
        self.durable
            .entries
            .iter()
            .map(|(name, inode)| (name.clone(), self.inodes[inode].durable.clone()))
            .collect()
    }

    /// The volatile contents of `name`, if it exists.
    pub fn contents(&self, name: &str) -> Option<&[u8]> {
        let inode = self.volatile.entries.get(name)?;
        Some(&self.inodes[inode].volatile)
    }

    /// Inodes whose effects can still matter after a crash: those with a durable name or named
    /// by an unsynced namespace change. (An inode that lost its last name durably is
    /// unreachable whatever it still gets written.)
    fn relevant(&self) -> BTreeSet<Inode> {
        let mut set: BTreeSet<Inode> = if self.durable.exists || self.pending_mkdir() {
            self.durable.entries.values().copied().collect()
        } else {
            BTreeSet::new()
        };
        set.extend(self.pending_dir.iter().filter_map(DirOp::inode));
        set
    }

    fn pending_mkdir(&self) -> bool {
        self.pending_dir.contains(&DirOp::Mkdir)
    }

    /// The effects a crash would resolve, in the order a [`CrashPlan`] indexes them: namespace
    /// changes first, then each relevant inode's writes and length changes in inode order.
    pub fn unsynced_effects(&self) -> Vec<FsEffect> {
        let mut effects: Vec<FsEffect> = self
            .pending_dir
            .iter()
            .map(|op| match op {
                DirOp::Mkdir => FsEffect::Mkdir,
                DirOp::Create { name, .. } => FsEffect::Create { name: name.clone() },
                DirOp::Link { name, .. } => FsEffect::Link { name: name.clone() },
                DirOp::Unlink { name, .. } => FsEffect::Unlink { name: name.clone() },
                DirOp::Rename { from, to, .. } => FsEffect::Rename {
                    from: from.clone(),
                    to: to.clone(),
                },
            })
            .collect();
        let sector = self.config.sector_size as usize;
        for inode in self.relevant() {
            let data = &self.inodes[&inode];
            if data.pending.is_empty() {
                continue;
            }
            let file = self.name_of(inode);
            effects.extend(data.pending.iter().map(|effect| match effect {
                FileEffect::Write { offset, data } => FsEffect::Write {
                    file: file.clone(),
                    offset: *offset as u64,
                    len: data.len() as u64,
                    pieces: sector_pieces(*offset, data.len(), sector).len() as u32,
                },
                FileEffect::Truncate { len } => FsEffect::SetLen {
                    file: file.clone(),
                    len: *len as u64,
                },
            }));
        }
        effects
    }

    /// The legal crash states of this moment within `bounds`.
    pub fn crash_states(&self, bounds: &CrashBounds) -> CrashStates {
        let pieces = self.unsynced_effects().into_iter().map(|e| e.pieces());
        CrashStates::of_effects(pieces, self.config.seed, bounds)
    }

    /// A random crash plan for this moment (also tears suffixes and sector subsets).
    pub fn random_plan(&self, seed: u64) -> CrashPlan {
        random_plan(self.unsynced_effects().iter().map(FsEffect::pieces), seed)
    }

    /// The plan a [`CaseId`] names, once the same run has been replayed to the same operation.
    pub fn plan_for(&self, case: &CaseId, bounds: &CrashBounds) -> Option<CrashPlan> {
        match case.plan {
            PlanPick::Enumerated(index) => self.crash_states(bounds).plan(index),
            PlanPick::Random(index) => Some(self.random_plan(case.random_seed(index))),
        }
    }

    /// The plan next to the effects it resolves, one `effect: fate` per line.
    pub fn describe(&self, plan: &CrashPlan) -> String {
        let mut text = alloc::format!("crash plan {plan}");
        for (index, effect) in self.unsynced_effects().iter().enumerate() {
            text.push_str(&alloc::format!(
                "\n  {index}: {effect}: {}",
                plan.fate(index)
            ));
        }
        text
    }

    /// The file system as found after a power loss now, every unsynced effect resolved as
    /// `plan` says. The result has nothing unsynced, no faults, no locks and an empty trace;
    /// `self` is unchanged.
    pub fn crash(&self, plan: &CrashPlan) -> SimFs {
        let medium = Medium {
            sector_size: self.config.sector_size as usize,
            garbage_seed: plan.garbage_seed,
            garbage_holes: self.config.garbage_holes,
        };
        let mut ns = self.durable.clone();
        for (index, op) in self.pending_dir.iter().enumerate() {
            if plan.fate(index).took_effect() {
                op.apply(&mut ns);
            }
        }
        if !ns.exists {
            ns.entries.clear();
        }
        let mut inodes = BTreeMap::new();
        let mut index = self.pending_dir.len();
        for inode in self.relevant() {
            let data = &self.inodes[&inode];
            if data.pending.is_empty() && !ns.entries.values().any(|i| *i == inode) {
                continue;
            }
            let mut image = data.durable.clone();
            for effect in &data.pending {
                resolve_file_effect(&mut image, effect, plan.fate(index), &medium, index);
                index += 1;
            }
            if ns.entries.values().any(|i| *i == inode) {
                inodes.insert(
                    inode,
                    InodeData {
                        durable: image.clone(),
                        volatile: image,
                        pending: Vec::new(),
                        errors: 0,
                    },
                );
            }
        }
        let mut after = SimFs::new(self.config);
        after.first_names = self
            .first_names
            .iter()
            .filter(|(inode, _)| inodes.contains_key(inode))
            .map(|(i, n)| (*i, n.clone()))
            .collect();
        after.inodes = inodes;
        after.next_inode = self.next_inode;
        after.volatile = ns.clone();
        after.durable = ns;
        after
    }

    /// The file system as a new process finds it when only the process died (SIGKILL), not the
    /// machine: everything unsynced stays unsynced (the kernel still holds it) and locks are
    /// released. The operation numbering, the power budget, the faults and the trace go on, so
    /// a run that kills its process midway is still numbered from its start.
    pub fn restart(&self) -> SimFs {
        let mut after = self.clone();
        after.locks.clear();
        after
    }

    /// Starts the operation numbering, trace, power budget and faults afresh, keeping every
    /// file and every unsynced effect: a restarted process whose operations are counted from
    /// its own start.
    pub fn renumber(&mut self) {
        self.ops = 0;
        self.ops_by_kind = KindCounts::default();
        self.trace.clear();
        self.op_budget = None;
        self.crashed = false;
        self.faults = FaultSchedule::new();
    }

    /// A 64-bit digest of the durable state (directory, names, contents), to count distinct
    /// crash states.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Fingerprint::new(0x8422_2325_cbf2_9ce4);
        hash.word(u64::from(self.durable.exists));
        let entries: Vec<(&String, &Inode)> = self.durable.entries.iter().collect();
        for (position, (name, inode)) in entries.iter().enumerate() {
            hash.bytes(name.as_bytes());
            // Which names share a file (hard links), by the position of the first name of
            // each file, not by inode number: two runs that reach the same files hash alike.
            let first = entries
                .iter()
                .position(|(_, i)| i == inode)
                .unwrap_or(position);
            hash.word(first as u64);
            hash.bytes(&self.inodes[*inode].durable);
        }
        hash.finish()
    }

    /// Media fault: flips bit `bit % 8` of the durable byte at `offset` of `name`. Returns
    /// `false` if there is no such durable byte.
    pub fn flip_durable_bit(&mut self, name: &str, offset: u64, bit: u8) -> bool {
        let Some(inode) = self.durable.entries.get(name) else {
            return false;
        };
        let image = &mut self.inodes.get_mut(inode).expect("named inode").durable;
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
}
