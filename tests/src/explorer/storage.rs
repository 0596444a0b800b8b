//! The storage the explorer drives: a shared handle on a [`SimStorage`], optionally broken on
//! purpose ([`Variant`]) to prove the checker can fail.

use core::cell::RefCell;
use std::rc::Rc;

use walden_core::{SegmentId, Storage};
use walden_sim::{SimError, SimStorage};

/// Which storage (or reader) the explorer runs against. Everything but [`Variant::Correct`] is
/// deliberately wrong, and the explorer must report a violation for each (FAULT-MODEL.md,
/// "Proving the checker can fail").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The simulator as it is.
    Correct,
    /// `sync` returns `Ok` and does nothing: acknowledged data never reaches the medium.
    SyncIsNoop,
    /// `truncate` does nothing while the log is being opened: recovery leaves a torn tail in
    /// place, and new appends land in front of it.
    TruncateIsNoopDuringOpen,
    /// `sync_dir` returns `Ok` and does nothing: a rotation's new segment may vanish.
    SyncDirIsNoop,
    /// Recovery is replaced by [`naive_scan`](crate::explorer::naive_scan), a reader that skips
    /// the payload checksum.
    NaiveReader,
    /// `sync` of any segment but the newest returns `Ok` and does nothing: the segments an early
    /// rotation leaves unsynced (`Config::early_rotation`) never reach the medium, as if the
    /// durable LSN advanced before they were synced.
    OlderSegmentSyncIsNoop,
}

impl Variant {
    /// Every variant, the correct one first.
    pub const ALL: [Variant; 6] = [
        Variant::Correct,
        Variant::SyncIsNoop,
        Variant::TruncateIsNoopDuringOpen,
        Variant::SyncDirIsNoop,
        Variant::NaiveReader,
        Variant::OlderSegmentSyncIsNoop,
    ];
}

#[derive(Debug)]
struct Shared {
    sim: SimStorage,
    variant: Variant,
    opening: bool,
}

/// A cloneable handle on one [`SimStorage`]. `Wal::open` consumes its storage, also when it
/// fails; the explorer keeps a second handle so that it can still crash the simulator after a
/// failed open.
#[derive(Clone, Debug)]
pub struct SimHandle {
    shared: Rc<RefCell<Shared>>,
}

impl SimHandle {
    /// A handle on `sim`, behaving as `variant` says.
    pub fn new(sim: SimStorage, variant: Variant) -> Self {
        Self {
            shared: Rc::new(RefCell::new(Shared {
                sim,
                variant,
                opening: false,
            })),
        }
    }

    /// The variant.
    pub fn variant(&self) -> Variant {
        self.shared.borrow().variant
    }

    /// Runs `f` on the simulator.
    pub fn with<T>(&self, f: impl FnOnce(&SimStorage) -> T) -> T {
        f(&self.shared.borrow().sim)
    }

    /// Runs `f` on the simulator, mutably.
    pub fn with_mut<T>(&self, f: impl FnOnce(&mut SimStorage) -> T) -> T {
        f(&mut self.shared.borrow_mut().sim)
    }

    /// A copy of the simulator as it is now.
    pub fn snapshot(&self) -> SimStorage {
        self.with(SimStorage::clone)
    }

    /// Marks the span of `Wal::open` (only [`Variant::TruncateIsNoopDuringOpen`] cares).
    pub fn set_opening(&self, opening: bool) {
        self.shared.borrow_mut().opening = opening;
    }

    /// The highest segment id that exists (start slots aside).
    fn newest(&self) -> Option<SegmentId> {
        let mut newest = None;
        let _ = self.with(|sim| {
            sim.list(&mut |id| {
                if id < u64::MAX - 1 {
                    newest = newest.max(Some(id));
                }
            })
        });
        newest
    }

    fn variant_now(&self) -> (Variant, bool) {
        let shared = self.shared.borrow();
        (shared.variant, shared.opening)
    }
}

impl Storage for SimHandle {
    type Error = SimError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), SimError> {
        self.with(|sim| sim.list(each))
    }

    fn create(&mut self, id: SegmentId) -> Result<(), SimError> {
        self.with_mut(|sim| sim.create(id))
    }

    fn remove(&mut self, id: SegmentId) -> Result<(), SimError> {
        self.with_mut(|sim| sim.remove(id))
    }

    fn len(&self, id: SegmentId) -> Result<u64, SimError> {
        self.with(|sim| sim.len(id))
    }

    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, SimError> {
        self.with(|sim| sim.read(id, offset, buf))
    }

    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), SimError> {
        self.with_mut(|sim| sim.write(id, offset, data))
    }

    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), SimError> {
        match self.variant_now() {
            (Variant::TruncateIsNoopDuringOpen, true) => Ok(()),
            _ => self.with_mut(|sim| sim.truncate(id, len)),
        }
    }

    fn sync(&mut self, id: SegmentId) -> Result<(), SimError> {
        match self.variant_now() {
            (Variant::SyncIsNoop, _) => Ok(()),
            (Variant::OlderSegmentSyncIsNoop, _) if self.newest().is_some_and(|n| id < n) => Ok(()),
            _ => self.with_mut(|sim| sim.sync(id)),
        }
    }

    fn sync_dir(&mut self) -> Result<(), SimError> {
        match self.variant_now() {
            (Variant::SyncDirIsNoop, _) => Ok(()),
            _ => self.with_mut(SimStorage::sync_dir),
        }
    }

    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), SimError> {
        self.with_mut(|sim| sim.reserve(id, len))
    }
}
