//! The file system the files explorer runs walden-std on: [`SimFileSystem`] behind a wrapper
//! ([`TestFs`]) that can break the file protocol on purpose ([`FileVariant`]), to prove the
//! explorer catches each broken variant.

use core::sync::atomic::{AtomicBool, Ordering};
use std::io;
use std::path::PathBuf;

use walden_std::{Before, Hooked, Hooks, Mutation, Op, SimFileSystem};

/// What the files explorer runs: walden-std as it ships, or with one deliberate defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileVariant {
    /// walden-std as it ships.
    Correct,
    /// The directory `fsync` that follows a link does nothing: a rotation's spare, linked
    /// into place as the new segment, may vanish after a power loss with the acknowledged
    /// records appended to it since.
    LinkNotDirSynced,
    /// The write buffer reports `sync` before handing its bytes to the file
    /// ([`Mutation::SyncSkipsFlush`]).
    SyncSkipsFlush,
    /// The background zero-fill ignores the writer's stop signal and writes zeros over
    /// records ([`Mutation::FillIgnoresStop`]).
    FillIgnoresStop,
    /// Spare files hold a copy of the previous segment instead of zeros
    /// ([`Mutation::StaleSpare`]).
    StaleSpare,
    /// A reservation deferred at open is carried out by the first write to any segment, even
    /// a successor created after the reserved one was sealed
    /// ([`Mutation::DeferredReserveAnyWrite`]).
    DeferredReserveAnyWrite,
    /// `fadvise(DONTNEED)` does nothing: a process restarted after a failed `fdatasync` reads
    /// cached data the disk never got and calls it durable.
    ForgetCacheIsNoop,
    /// Closing leaves the clean-close marker even after a failed `fdatasync`
    /// ([`Mutation::CleanAlways`]): the restarted process trusts the page cache and skips
    /// `fadvise(DONTNEED)`.
    CleanAlways,
    /// Opening to replay hands over a sealed segment's records even after damage in the one
    /// before, or a gap, and hands over stale segment files too (below a gap under the log's
    /// recorded start: the open leaves them out) ([`Mutation::ReplayIgnoresDamage`]).
    ReplayIgnoresDamage,
    /// A rotation's early syncs (the directory's after the successor's link, the sealed
    /// segment's after its seal) report success without syncing
    /// ([`Mutation::EarlySyncNoop`]).
    EarlySyncNoop,
    /// A replay's read-ahead reads every chunk after a segment's first a byte off
    /// ([`Mutation::ReadAheadMisplaced`]).
    ReadAheadMisplaced,
    /// A removed segment's file is shrunk to nothing before the directory sync that makes its
    /// unlink durable ([`Mutation::ShrinkBeforeUnlinkDurable`]).
    ShrinkBeforeUnlinkDurable,
    /// Zeros asked of the file system for the rest of the active segment start at the sector
    /// below its end ([`Mutation::ZeroesAlignedDown`]).
    ZeroesAlignedDown,
    /// A seal's early sync runs while a group-commit leader's detached sync of the same file
    /// is in flight ([`Mutation::EarlySealIgnoresDetached`]).
    EarlySealIgnoresDetached,
}

impl FileVariant {
    /// Every variant, the correct one first.
    pub const ALL: [FileVariant; 14] = [
        FileVariant::Correct,
        FileVariant::LinkNotDirSynced,
        FileVariant::SyncSkipsFlush,
        FileVariant::FillIgnoresStop,
        FileVariant::StaleSpare,
        FileVariant::DeferredReserveAnyWrite,
        FileVariant::ForgetCacheIsNoop,
        FileVariant::CleanAlways,
        FileVariant::ReplayIgnoresDamage,
        FileVariant::EarlySyncNoop,
        FileVariant::ReadAheadMisplaced,
        FileVariant::ShrinkBeforeUnlinkDurable,
        FileVariant::ZeroesAlignedDown,
        FileVariant::EarlySealIgnoresDetached,
    ];

    /// The walden-std mutation this variant turns on, if any.
    pub fn mutation(self) -> Option<Mutation> {
        match self {
            FileVariant::SyncSkipsFlush => Some(Mutation::SyncSkipsFlush),
            FileVariant::FillIgnoresStop => Some(Mutation::FillIgnoresStop),
            FileVariant::StaleSpare => Some(Mutation::StaleSpare),
            FileVariant::DeferredReserveAnyWrite => Some(Mutation::DeferredReserveAnyWrite),
            FileVariant::CleanAlways => Some(Mutation::CleanAlways),
            FileVariant::ReplayIgnoresDamage => Some(Mutation::ReplayIgnoresDamage),
            FileVariant::EarlySyncNoop => Some(Mutation::EarlySyncNoop),
            FileVariant::ReadAheadMisplaced => Some(Mutation::ReadAheadMisplaced),
            FileVariant::ShrinkBeforeUnlinkDurable => Some(Mutation::ShrinkBeforeUnlinkDurable),
            FileVariant::ZeroesAlignedDown => Some(Mutation::ZeroesAlignedDown),
            FileVariant::EarlySealIgnoresDetached => Some(Mutation::EarlySealIgnoresDetached),
            _ => None,
        }
    }
}

/// [`SimFileSystem`] with the file-system-level defects of a [`FileVariant`].
pub type TestFs = Hooked<SimFileSystem, Breaks>;

/// Wraps `sim` (which should already carry `variant.mutation()`).
pub fn test_fs(sim: SimFileSystem, variant: FileVariant) -> TestFs {
    let root = sim.root().to_path_buf();
    Hooked::new(
        sim,
        Breaks {
            variant,
            root,
            linked: AtomicBool::new(false),
        },
    )
}

/// [`TestFs`]'s hooks: the file-system-level defects of a [`FileVariant`].
#[derive(Debug)]
pub struct Breaks {
    variant: FileVariant,
    /// The log directory.
    root: PathBuf,
    /// A link was made and the directory not synced since ([`FileVariant::LinkNotDirSynced`]).
    linked: AtomicBool,
}

impl Breaks {
    /// The variant.
    pub fn variant(&self) -> FileVariant {
        self.variant
    }
}

impl Hooks for Breaks {
    fn before(&self, op: &Op<'_>) -> Before {
        let skip = match (self.variant, op) {
            // The log directory's next sync after a link does nothing.
            (FileVariant::LinkNotDirSynced, Op::SyncAll { path, dir: true }) => {
                *path == self.root && self.linked.swap(false, Ordering::AcqRel)
            }
            (FileVariant::ForgetCacheIsNoop, Op::ForgetCache { .. }) => true,
            _ => false,
        };
        if skip { Before::Skip } else { Before::Run }
    }

    fn after(&self, op: &Op<'_>, error: Option<&io::Error>) {
        if matches!(op, Op::HardLink { .. }) && error.is_none() {
            self.linked.store(true, Ordering::Release);
        }
    }
}
