//! The operation trace: every call made on a [`SimStorage`](crate::SimStorage), numbered, so an
//! explorer can crash "after operation i" and a failure report can show what led there.

use core::fmt;

use walden_core::{SegmentId, StorageErrorKind};

/// One storage call, with its arguments (data is summarised by its length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Storage::list`](walden_core::Storage::list).
    List,
    /// [`Storage::create`](walden_core::Storage::create).
    Create {
        /// The segment.
        segment: SegmentId,
    },
    /// [`Storage::remove`](walden_core::Storage::remove).
    Remove {
        /// The segment.
        segment: SegmentId,
    },
    /// [`Storage::len`](walden_core::Storage::len).
    Len {
        /// The segment.
        segment: SegmentId,
    },
    /// [`Storage::read`](walden_core::Storage::read).
    Read {
        /// The segment.
        segment: SegmentId,
        /// Where the read starts.
        offset: u64,
        /// The buffer length.
        len: u64,
    },
    /// [`Storage::write`](walden_core::Storage::write).
    Write {
        /// The segment.
        segment: SegmentId,
        /// Where the write starts.
        offset: u64,
        /// How many bytes were passed.
        len: u64,
    },
    /// [`Storage::truncate`](walden_core::Storage::truncate).
    Truncate {
        /// The segment.
        segment: SegmentId,
        /// The new length.
        len: u64,
    },
    /// [`Storage::sync`](walden_core::Storage::sync).
    Sync {
        /// The segment.
        segment: SegmentId,
    },
    /// [`Storage::sync_dir`](walden_core::Storage::sync_dir).
    SyncDir,
    /// [`Storage::reserve`](walden_core::Storage::reserve).
    Reserve {
        /// The segment.
        segment: SegmentId,
        /// The hinted length.
        len: u64,
    },
}

/// The kind of an [`Op`], without arguments; what a [`Trigger`](crate::Trigger) matches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// `list`.
    List,
    /// `create`.
    Create,
    /// `remove`.
    Remove,
    /// `len`.
    Len,
    /// `read`.
    Read,
    /// `write`.
    Write,
    /// `truncate`.
    Truncate,
    /// `sync`.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// `reserve`.
    Reserve,
}

/// How many operations of each [`OpKind`] a simulator has run: what `Trigger::Nth` counts.
/// An array, not a map: it is bumped on every operation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KindCounts([u64; KindCounts::KINDS]);

impl KindCounts {
    const KINDS: usize = OpKind::Reserve as usize + 1;

    /// Counts one more operation of `kind`; returns how many came before it.
    pub(crate) fn bump(&mut self, kind: OpKind) -> u64 {
        let count = &mut self.0[kind as usize];
        *count += 1;
        *count - 1
    }
}

impl Op {
    /// The kind of this operation.
    pub const fn kind(&self) -> OpKind {
        match self {
            Op::List => OpKind::List,
            Op::Create { .. } => OpKind::Create,
            Op::Remove { .. } => OpKind::Remove,
            Op::Len { .. } => OpKind::Len,
            Op::Read { .. } => OpKind::Read,
            Op::Write { .. } => OpKind::Write,
            Op::Truncate { .. } => OpKind::Truncate,
            Op::Sync { .. } => OpKind::Sync,
            Op::SyncDir => OpKind::SyncDir,
            Op::Reserve { .. } => OpKind::Reserve,
        }
    }

    /// `true` if the operation can change what a crash leaves behind. Crashing after an
    /// operation that does not is the same as crashing before it, so explorers may skip those.
    pub const fn changes_state(&self) -> bool {
        !matches!(
            self,
            Op::List | Op::Len { .. } | Op::Read { .. } | Op::Reserve { .. }
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::List => f.write_str("list"),
            Op::Create { segment } => write!(f, "create {segment}"),
            Op::Remove { segment } => write!(f, "remove {segment}"),
            Op::Len { segment } => write!(f, "len {segment}"),
            Op::Read {
                segment,
                offset,
                len,
            } => write!(f, "read {segment}@{offset}+{len}"),
            Op::Write {
                segment,
                offset,
                len,
            } => write!(f, "write {segment}@{offset}+{len}"),
            Op::Truncate { segment, len } => write!(f, "truncate {segment} to {len}"),
            Op::Sync { segment } => write!(f, "sync {segment}"),
            Op::SyncDir => f.write_str("sync_dir"),
            Op::Reserve { segment, len } => write!(f, "reserve {segment} to {len}"),
        }
    }
}

/// One line of the trace: which operation ran at which index, and how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceEntry {
    /// Position in the trace, starting at 0 for each storage (a crash starts a new trace).
    pub index: u64,
    /// What was called.
    pub op: Op,
    /// `None` if it succeeded, else the kind of error it returned.
    pub failure: Option<StorageErrorKind>,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.index, self.op)?;
        match self.failure {
            None => Ok(()),
            Some(kind) => write!(f, " -> {kind}"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use alloc::format;

    use super::*;

    #[test]
    fn reads_do_not_change_state_but_writes_do() {
        assert!(
            !Op::Read {
                segment: 1,
                offset: 0,
                len: 4
            }
            .changes_state()
        );
        assert!(
            Op::Write {
                segment: 1,
                offset: 0,
                len: 4
            }
            .changes_state()
        );
        assert!(Op::SyncDir.changes_state());
    }

    #[test]
    fn entry_display_is_one_line() {
        let entry = TraceEntry {
            index: 3,
            op: Op::Write {
                segment: 2,
                offset: 10,
                len: 5,
            },
            failure: Some(StorageErrorKind::NoSpace),
        };
        assert_eq!(
            format!("{entry}"),
            "#3 write 2@10+5 -> no space left on the medium"
        );
    }
}
