//! Enumerating the legal crash states of one moment, drawing random ones, and naming a case so
//! it can be replayed.

use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::effect::UnsyncedEffect;
use crate::plan::{CrashPlan, Fate, Tear, TearShape, TornFill};
use crate::rng::{SimRng, mix};
use crate::sim::SimStorage;

/// Which fates the enumerator tries for each unsynced effect (FAULT-MODEL "How exhaustive").
///
/// Creates, removes and truncates always get two fates: lost, happened. A write covering `n`
/// sector pieces gets, with every option on, `3n + 1`: lost; whole; torn after each of the
/// `n - 1` inner sector boundaries with the rest keeping old contents; and a zero-filled and a
/// garbage tail after each of the first `n` boundaries (`p0z` is "size without data").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrashBounds {
    /// Torn writes at every inner sector boundary (`p1o`, `p2o`, ...).
    pub torn_at_sectors: bool,
    /// Zero-filled tails (`p0z`, `p1z`, ...).
    pub zero_tails: bool,
    /// Garbage tails (`p0g`, `p1g`, ...).
    pub garbage_tails: bool,
    /// The most plans one enumeration yields. Past it, plans are sampled evenly over the whole
    /// index range, and [`CrashStates::is_exhaustive`] says so.
    pub max_plans: u64,
}

impl Default for CrashBounds {
    fn default() -> Self {
        Self {
            torn_at_sectors: true,
            zero_tails: true,
            garbage_tails: true,
            max_plans: 4096,
        }
    }
}

impl CrashBounds {
    /// Only whole or lost, for every effect: the coarse, cheap enumeration.
    pub fn whole_or_lost() -> Self {
        Self {
            torn_at_sectors: false,
            zero_tails: false,
            garbage_tails: false,
            ..Self::default()
        }
    }

    /// The fates of one effect: `Some(pieces)` for a write covering that many sector pieces,
    /// `None` for anything else (a namespace change, a truncate).
    fn fates_for(&self, pieces: Option<u32>) -> Vec<Fate> {
        let mut fates = alloc::vec![Fate::Lost, Fate::Happened];
        let Some(pieces) = pieces else {
            return fates;
        };
        let tear = |n, fill| {
            Fate::Torn(Tear {
                shape: TearShape::Prefix(n),
                fill,
            })
        };
        if self.torn_at_sectors {
            fates.extend((1..pieces).map(|n| tear(n, TornFill::Old)));
        }
        if self.zero_tails {
            fates.extend((0..pieces).map(|n| tear(n, TornFill::Zeros)));
        }
        if self.garbage_tails {
            fates.extend((0..pieces).map(|n| tear(n, TornFill::Garbage)));
        }
        fates
    }
}

/// The crash states of one moment, as [`CrashPlan`]s indexed `0..total()`.
///
/// Index `i` is a mixed-radix number whose digit `j` picks the fate of effect `j`, so a plan is
/// rebuilt from its index alone ([`CrashStates::plan`]) and index 0 loses everything. Iterating
/// yields `(index, plan)`: every index when the count is within the bound, else an even sample.
#[derive(Clone, Debug)]
pub struct CrashStates {
    choices: Vec<Vec<Fate>>,
    count: u64,
    garbage_seed: u64,
    yielded: u64,
    limit: u64,
}

impl CrashStates {
    /// The crash states of `sim`'s current unsynced effects.
    pub fn new(sim: &SimStorage, bounds: &CrashBounds) -> Self {
        let pieces = sim.unsynced_effects().into_iter().map(|e| e.pieces());
        Self::of_effects(pieces, sim.config().seed, bounds)
    }

    /// The crash states of a list of unsynced effects, each given by its shape: `Some(pieces)`
    /// for a write covering that many sector pieces, `None` for an effect that either happens
    /// or not. Any simulator can enumerate its effects this way ([`SimStorage`] and
    /// [`SimFs`](crate::SimFs) both do).
    pub fn of_effects(
        pieces: impl IntoIterator<Item = Option<u32>>,
        garbage_seed: u64,
        bounds: &CrashBounds,
    ) -> Self {
        let choices: Vec<Vec<Fate>> = pieces
            .into_iter()
            .map(|pieces| bounds.fates_for(pieces))
            .collect();
        let count = choices.iter().fold(1u64, |count, fates| {
            count.saturating_mul(fates.len() as u64)
        });
        Self {
            choices,
            count,
            garbage_seed,
            yielded: 0,
            limit: count.min(bounds.max_plans),
        }
    }

    /// How many distinct crash plans there are (saturating at `u64::MAX`). Different plans can
    /// still produce equal images (a torn write whose old contents equal its data); compare
    /// [`SimStorage::fingerprint`]s to count distinct images.
    pub fn total(&self) -> u64 {
        self.count
    }

    /// `true` if iterating visits every plan.
    pub fn is_exhaustive(&self) -> bool {
        self.limit == self.count
    }

    /// The plan with this index, or `None` past the end.
    pub fn plan(&self, index: u64) -> Option<CrashPlan> {
        if index >= self.count {
            return None;
        }
        let mut rest = index;
        let fates = self
            .choices
            .iter()
            .map(|fates| {
                let radix = fates.len() as u64;
                let fate = fates[(rest % radix) as usize];
                rest /= radix;
                fate
            })
            .collect();
        Some(CrashPlan {
            fates,
            garbage_seed: self.garbage_seed,
        })
    }
}

impl Iterator for CrashStates {
    type Item = (u64, CrashPlan);

    fn next(&mut self) -> Option<(u64, CrashPlan)> {
        if self.yielded >= self.limit {
            return None;
        }
        let index = if self.is_exhaustive() {
            self.yielded
        } else {
            (u128::from(self.yielded) * u128::from(self.count) / u128::from(self.limit)) as u64
        };
        self.yielded += 1;
        self.plan(index).map(|plan| (index, plan))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.limit - self.yielded).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for CrashStates {}

impl SimStorage {
    /// The legal crash states of the current moment within `bounds`.
    pub fn crash_states(&self, bounds: &CrashBounds) -> CrashStates {
        CrashStates::new(self, bounds)
    }

    /// A random crash plan for the current moment, drawn from `seed`. Unlike the enumerator it
    /// also tears suffixes and arbitrary sector subsets.
    pub fn random_plan(&self, seed: u64) -> CrashPlan {
        random_plan(
            self.unsynced_effects().iter().map(UnsyncedEffect::pieces),
            seed,
        )
    }

    /// The plan a [`CaseId`] names, for this storage (which must be in the state the case was
    /// found in: same seed, workload replayed up to the same operation).
    pub fn plan_for(&self, case: &CaseId, bounds: &CrashBounds) -> Option<CrashPlan> {
        match case.plan {
            PlanPick::Enumerated(index) => self.crash_states(bounds).plan(index),
            PlanPick::Random(index) => Some(self.random_plan(case.random_seed(index))),
        }
    }

    /// Pairs each unsynced effect with its fate under `plan`, for a failure report.
    pub fn describe<'a>(&'a self, plan: &'a CrashPlan) -> PlanDescription<'a> {
        PlanDescription {
            effects: self.unsynced_effects(),
            plan,
        }
    }
}

/// A random plan for effects of these shapes (see [`CrashStates::of_effects`]).
pub(crate) fn random_plan(pieces: impl Iterator<Item = Option<u32>>, seed: u64) -> CrashPlan {
    let mut rng = SimRng::derived(seed, 0xc4a5);
    let fates = pieces.map(|p| random_fate(&mut rng, p)).collect();
    CrashPlan {
        fates,
        garbage_seed: rng.next_u64(),
    }
}

fn random_fate(rng: &mut SimRng, pieces: Option<u32>) -> Fate {
    let Some(pieces) = pieces else {
        return if rng.chance(1, 2) {
            Fate::Happened
        } else {
            Fate::Lost
        };
    };
    match rng.below(10) {
        0..=2 => Fate::Happened,
        3..=5 => Fate::Lost,
        _ => {
            let n = rng.below(u64::from(pieces) + 1) as u32;
            let shape = match rng.below(3) {
                0 => TearShape::Prefix(n),
                1 => TearShape::Suffix(n),
                _ => TearShape::Sectors(rng.next_u64()),
            };
            let fill = match rng.below(3) {
                0 => TornFill::Zeros,
                1 => TornFill::Old,
                _ => TornFill::Garbage,
            };
            Fate::Torn(Tear { shape, fill })
        }
    }
}

/// A plan next to the effects it resolves; `Display` prints one `effect: fate` per line.
#[derive(Debug)]
pub struct PlanDescription<'a> {
    effects: Vec<UnsyncedEffect>,
    plan: &'a CrashPlan,
}

impl fmt::Display for PlanDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crash plan {}", self.plan)?;
        for (index, effect) in self.effects.iter().enumerate() {
            write!(f, "\n  {index}: {effect}: {}", self.plan.fate(index))?;
        }
        Ok(())
    }
}

/// Which plan of a crash point a case used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanPick {
    /// Index into [`SimStorage::crash_states`].
    Enumerated(u64),
    /// The `n`-th random plan ([`SimStorage::random_plan`] with a seed derived from the case).
    Random(u64),
}

/// Names one explored case so one command can replay it: the run's seed, the operation after
/// which the power was cut, and the plan. Prints and parses as `seed=2a op=17 plan=e5`
/// (hexadecimal seed; `e` enumerated, `r` random).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CaseId {
    /// The seed of the whole run.
    pub seed: u64,
    /// The budget passed to [`SimStorage::crash_after`].
    pub op_index: u64,
    /// Which plan.
    pub plan: PlanPick,
}

impl CaseId {
    pub(crate) fn random_seed(&self, index: u64) -> u64 {
        mix(self.seed ^ mix(self.op_index ^ mix(index)))
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tag, index) = match self.plan {
            PlanPick::Enumerated(i) => ('e', i),
            PlanPick::Random(i) => ('r', i),
        };
        write!(
            f,
            "seed={:x} op={} plan={tag}{index}",
            self.seed, self.op_index
        )
    }
}

/// The text was not of the form `seed=<hex> op=<decimal> plan=<e|r><decimal>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseIdParseError;

impl fmt::Display for CaseIdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected `seed=<hex> op=<decimal> plan=<e|r><decimal>`")
    }
}

impl FromStr for CaseId {
    type Err = CaseIdParseError;

    fn from_str(text: &str) -> Result<Self, CaseIdParseError> {
        let mut words = text.split_whitespace();
        let mut field = |name: &str| {
            words
                .next()
                .and_then(|word| word.strip_prefix(name))
                .and_then(|word| word.strip_prefix('='))
                .ok_or(CaseIdParseError)
        };
        let seed = u64::from_str_radix(field("seed")?, 16).map_err(|_| CaseIdParseError)?;
        let op_index = field("op")?.parse().map_err(|_| CaseIdParseError)?;
        let plan = field("plan")?;
        let number = |digits: &str| digits.parse::<u64>().map_err(|_| CaseIdParseError);
        let plan = if let Some(digits) = plan.strip_prefix('e') {
            PlanPick::Enumerated(number(digits)?)
        } else if let Some(digits) = plan.strip_prefix('r') {
            PlanPick::Random(number(digits)?)
        } else {
            return Err(CaseIdParseError);
        };
        if words.next().is_some() {
            return Err(CaseIdParseError);
        }
        Ok(Self {
            seed,
            op_index,
            plan,
        })
    }
}

#[cfg(test)]
mod tests;
