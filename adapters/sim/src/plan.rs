//! Crash plans: how each unsynced effect resolves when the power goes out.
//!
//! A [`CrashPlan`] is a list of [`Fate`]s, one per unsynced effect, in the order
//! [`SimStorage::unsynced_effects`](crate::SimStorage::unsynced_effects) reports them. It is
//! plain data: build one by hand, take one from the enumerator ([`CrashStates`](crate::CrashStates))
//! or draw one from a seed ([`SimStorage::random_plan`](crate::SimStorage::random_plan)).

use alloc::vec::Vec;
use core::fmt;

/// Which sectors of a torn write reached the medium. Sectors are counted over the sector-aligned
/// pieces the write covers: a write of 10 bytes at offset 508 with 512-byte sectors has two pieces
/// (4 bytes, then 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TearShape {
    /// The first `n` pieces persisted; the rest did not.
    Prefix(u32),
    /// The last `n` pieces persisted; the rest did not.
    Suffix(u32),
    /// Piece `i` persisted if bit `i % 64` is set.
    Sectors(u64),
}

/// What the pieces of a torn write that did not persist read as afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TornFill {
    /// Zeros, and the file's length still grows to cover the whole write (an extension that
    /// persisted without its data).
    Zeros,
    /// Whatever was there before the write; the length grows only as far as the last piece that
    /// persisted.
    Old,
    /// Random bytes (from the plan's garbage seed), and the length covers the whole write.
    Garbage,
}

/// A torn write: some sectors persisted, the others read as `fill`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tear {
    /// Which pieces persisted.
    pub shape: TearShape,
    /// What the others read as.
    pub fill: TornFill,
}

/// How one unsynced effect resolves in a crash.
///
/// Creates, removes and truncates only know [`Fate::Happened`] and [`Fate::Lost`]; a
/// [`Fate::Torn`] given to them counts as `Happened`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fate {
    /// The effect reached the medium whole.
    Happened,
    /// The effect left no trace.
    Lost,
    /// Part of the write reached the medium (writes only).
    Torn(Tear),
}

impl Fate {
    /// The length of the file grew to cover the write, but none of its data persisted: the
    /// range reads as zeros (FAULT-MODEL "size without data").
    pub const fn size_only() -> Self {
        Fate::Torn(Tear {
            shape: TearShape::Prefix(0),
            fill: TornFill::Zeros,
        })
    }

    /// Whether a create, remove or truncate with this fate took effect.
    pub const fn took_effect(&self) -> bool {
        !matches!(self, Fate::Lost)
    }

    /// Whether this fate can put random bytes on the medium.
    pub const fn uses_garbage(&self) -> bool {
        matches!(
            self,
            Fate::Torn(Tear {
                fill: TornFill::Garbage,
                ..
            })
        )
    }
}

impl fmt::Display for Fate {
    /// `+` happened, `-` lost, and a torn write as shape + count + fill:
    /// `p2z` (first two pieces, zeros), `s1o` (last piece, old contents),
    /// `m5g` (pieces in mask 0b101, garbage).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Happened => f.write_str("+"),
            Fate::Lost => f.write_str("-"),
            Fate::Torn(tear) => {
                match tear.shape {
                    TearShape::Prefix(n) => write!(f, "p{n}")?,
                    TearShape::Suffix(n) => write!(f, "s{n}")?,
                    TearShape::Sectors(mask) => write!(f, "m{mask:x}")?,
                }
                f.write_str(match tear.fill {
                    TornFill::Zeros => "z",
                    TornFill::Old => "o",
                    TornFill::Garbage => "g",
                })
            }
        }
    }
}

/// How every unsynced effect resolves in one crash.
///
/// Effects beyond the end of `fates` are [`Fate::Lost`], so the empty plan
/// ([`CrashPlan::lose_everything`]) is the classic "nothing unsynced survived".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CrashPlan {
    /// One fate per unsynced effect, in the order of
    /// [`SimStorage::unsynced_effects`](crate::SimStorage::unsynced_effects).
    pub fates: Vec<Fate>,
    /// Seeds the random bytes of [`TornFill::Garbage`] and of garbage holes.
    pub garbage_seed: u64,
}

impl CrashPlan {
    /// Every unsynced effect is lost.
    pub fn lose_everything() -> Self {
        Self::default()
    }

    /// Every one of `effects` unsynced effects gets the same fate; `keep_everything(n)` is
    /// `uniform(n, Fate::Happened)`.
    pub fn uniform(effects: usize, fate: Fate) -> Self {
        Self {
            fates: alloc::vec![fate; effects],
            garbage_seed: 0,
        }
    }

    /// Every unsynced effect takes effect whole, as if everything had been synced.
    pub fn keep_everything(effects: usize) -> Self {
        Self::uniform(effects, Fate::Happened)
    }

    /// The fate of effect `index`.
    pub fn fate(&self, index: usize) -> Fate {
        self.fates.get(index).copied().unwrap_or(Fate::Lost)
    }

    /// Sets the fate of effect `index`, padding with [`Fate::Lost`].
    pub fn set(&mut self, index: usize, fate: Fate) -> &mut Self {
        if self.fates.len() <= index {
            self.fates.resize(index + 1, Fate::Lost);
        }
        self.fates[index] = fate;
        self
    }
}

impl fmt::Display for CrashPlan {
    /// Compact, for failure reports: `[+ - p1z +] g=1f` (the garbage seed only when it matters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, fate) in self.fates.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{fate}")?;
        }
        f.write_str("]")?;
        if self.fates.iter().any(Fate::uses_garbage) {
            write!(f, " g={:x}", self.garbage_seed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;

    use super::*;

    #[test]
    fn missing_fates_are_lost() {
        let mut plan = CrashPlan::lose_everything();
        plan.set(2, Fate::Happened);
        assert_eq!(plan.fate(0), Fate::Lost);
        assert_eq!(plan.fate(2), Fate::Happened);
        assert_eq!(plan.fate(99), Fate::Lost);
    }

    #[test]
    fn display_is_compact() {
        let mut plan = CrashPlan::keep_everything(2);
        plan.set(
            2,
            Fate::Torn(Tear {
                shape: TearShape::Sectors(5),
                fill: TornFill::Garbage,
            }),
        );
        plan.set(3, Fate::size_only());
        plan.set(4, Fate::Lost);
        plan.garbage_seed = 0x1f;
        assert_eq!(format!("{plan}"), "[+ + m5g p0z -] g=1f");
        assert_eq!(format!("{}", CrashPlan::uniform(1, Fate::Lost)), "[-]");
    }
}
