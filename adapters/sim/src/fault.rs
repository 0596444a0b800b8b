//! Faults on demand: make a chosen operation fail, drop synced data, or misdirect a write.

use alloc::vec::Vec;

use walden_core::StorageErrorKind;

use crate::rng::SimRng;
use crate::trace::OpKind;

/// When a scheduled fault fires. Each fault fires once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// At the operation with this trace index, whatever it is.
    AtOp(u64),
    /// At the `n`-th (from 0) operation of this kind.
    Nth {
        /// Which operations count.
        kind: OpKind,
        /// How many of them pass first.
        n: u64,
    },
}

/// What a fault does to the operation it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultAction {
    /// The operation fails with this kind and changes nothing.
    Fail(StorageErrorKind),
    /// A write stores only its first `kept` bytes (volatile, like any write) and fails with
    /// [`StorageErrorKind::ShortWrite`]. On other operations: `Fail(ShortWrite)`.
    ShortWrite {
        /// Bytes stored before the failure.
        kept: u64,
    },
    /// A `sync` (or `sync_dir`) fails with [`StorageErrorKind::Io`] and the kernel drops the dirty
    /// state: the unsynced effects never reach the medium, reads still see them, and the next
    /// `sync` returns `Ok` (PostgreSQL's "fsyncgate"). On other operations: `Fail(Io)`.
    SyncLosesData,
    /// A write returns `Ok`, and reads see it where it was aimed, but on the medium it lands
    /// `shift` bytes away (clamped at offset 0). A media fault. On other operations: no fault.
    Misdirect {
        /// Signed distance from the intended offset.
        shift: i64,
    },
}

/// The faults to inject into one [`SimStorage`](crate::SimStorage).
#[derive(Clone, Debug, Default)]
pub struct FaultSchedule {
    scheduled: Vec<(Trigger, FaultAction)>,
    random: Option<RandomFaults>,
}

#[derive(Clone, Debug)]
struct RandomFaults {
    rng: SimRng,
    one_in: u64,
}

impl FaultSchedule {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fault at the operation with trace index `index`.
    #[must_use]
    pub fn at_op(mut self, index: u64, action: FaultAction) -> Self {
        self.scheduled.push((Trigger::AtOp(index), action));
        self
    }

    /// Adds a fault at the `n`-th (from 0) operation of `kind`.
    #[must_use]
    pub fn nth(mut self, kind: OpKind, n: u64, action: FaultAction) -> Self {
        self.scheduled.push((Trigger::Nth { kind, n }, action));
        self
    }

    /// Also fails about one state-changing operation in `one_in` with a fault suited to it,
    /// drawn from `seed`. Reads, lengths and listings are spared: they are not where the
    /// fault model puts errors.
    #[must_use]
    pub fn random(mut self, seed: u64, one_in: u64) -> Self {
        self.random = Some(RandomFaults {
            rng: SimRng::derived(seed, 0xfa17),
            one_in: one_in.max(1),
        });
        self
    }

    /// `true` if nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.scheduled.is_empty() && self.random.is_none()
    }

    /// Removes and returns the fault for the operation at `index`, which is the `nth_of_kind`
    /// operation of `kind`.
    pub(crate) fn take(
        &mut self,
        index: u64,
        kind: OpKind,
        nth_of_kind: u64,
    ) -> Option<FaultAction> {
        let hit = self
            .scheduled
            .iter()
            .position(|(trigger, _)| match *trigger {
                Trigger::AtOp(at) => at == index,
                Trigger::Nth { kind: k, n } => k == kind && n == nth_of_kind,
            });
        if let Some(position) = hit {
            return Some(self.scheduled.remove(position).1);
        }
        let random = self.random.as_mut()?;
        let action = random_action(&mut random.rng, kind)?;
        random.rng.chance(1, random.one_in).then_some(action)
    }
}

fn random_action(rng: &mut SimRng, kind: OpKind) -> Option<FaultAction> {
    let io = FaultAction::Fail(StorageErrorKind::Io);
    Some(match kind {
        OpKind::List | OpKind::Len | OpKind::Read | OpKind::Reserve => return None,
        OpKind::Write => match rng.below(3) {
            0 => io,
            1 => FaultAction::Fail(StorageErrorKind::NoSpace),
            _ => FaultAction::ShortWrite {
                kept: rng.below(64),
            },
        },
        OpKind::Sync | OpKind::SyncDir => {
            if rng.chance(1, 2) {
                FaultAction::SyncLosesData
            } else {
                io
            }
        }
        OpKind::Create => FaultAction::Fail(StorageErrorKind::NoSpace),
        OpKind::Remove | OpKind::Truncate => io,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_faults_fire_once() {
        let io = FaultAction::Fail(StorageErrorKind::Io);
        let mut faults =
            FaultSchedule::new()
                .at_op(3, io)
                .nth(OpKind::Sync, 1, FaultAction::SyncLosesData);
        assert_eq!(faults.take(2, OpKind::Write, 0), None);
        assert_eq!(faults.take(3, OpKind::Write, 1), Some(io));
        assert_eq!(faults.take(3, OpKind::Write, 1), None);
        assert_eq!(faults.take(4, OpKind::Sync, 0), None);
        assert_eq!(
            faults.take(5, OpKind::Sync, 1),
            Some(FaultAction::SyncLosesData)
        );
        assert!(faults.is_empty());
    }

    #[test]
    fn random_faults_are_deterministic_and_spare_reads() {
        let run = |seed| {
            let mut faults = FaultSchedule::new().random(seed, 3);
            (0..64)
                .map(|i| faults.take(i, OpKind::Write, i).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert!(run(5).contains(&true));
        let mut faults = FaultSchedule::new().random(5, 1);
        assert_eq!(faults.take(0, OpKind::Read, 0), None);
    }
}
