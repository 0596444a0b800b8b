//! [`NorSim`]: a NOR flash in memory that can lose power in the middle of an operation.
//!
//! The physics it models (FAULT-MODEL.md applied to raw flash, as littlefs's emulated block
//! device and sequential-storage's mock flash do):
//!
//! * Erasing sets every bit of whole erase blocks (`0xFF`); programming can only clear bits
//!   (the stored byte becomes `old & new`). A program that asks to set a cleared bit changes
//!   nothing and is counted ([`NorSim::misuse`]).
//! * There is no cache: an operation that returned is on the medium.
//! * Power lost during a program leaves the words before the current one programmed, the ones
//!   after it untouched, and the current word with only some of the bits it was clearing
//!   cleared. Power lost during an erase leaves the blocks before the current one erased, the
//!   ones after it untouched, and the current block with arbitrary bits set (old bits or ones).
//!
//! [`NorSim::crash_after`] makes the `n`-th program or erase the interrupted one;
//! [`NorSim::crash_states`] lists every outcome of that operation (within bounds) and
//! [`NorSim::crash`] gives the flash as found after power-up in one of them.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
    check_erase, check_read, check_write,
};

use crate::rng::{Fingerprint, SimRng, mix};

#[cfg(test)]
mod tests;

/// An error of the [`NorSim`]: a misuse the driver would refuse, or the power being off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NorSimError {
    /// The embedded-storage kind.
    pub kind: NorFlashErrorKind,
    /// `true` when the operation failed because the power is off (or went off during it).
    pub power_off: bool,
}

impl NorFlashError for NorSimError {
    fn kind(&self) -> NorFlashErrorKind {
        self.kind
    }
}

impl fmt::Display for NorSimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.power_off {
            f.write_str("the power is off")
        } else {
            write!(f, "{}", self.kind)
        }
    }
}

/// A program or erase that changed (or would have changed) the flash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NorOp {
    /// `write(offset, data)`.
    Program {
        /// Flash offset.
        offset: u32,
        /// What was programmed.
        data: Vec<u8>,
    },
    /// `erase(from, to)`.
    Erase {
        /// First byte.
        from: u32,
        /// One past the last byte.
        to: u32,
    },
}

impl fmt::Display for NorOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Program { offset, data } => write!(f, "program {}@{offset:#x}", data.len()),
            Self::Erase { from, to } => write!(f, "erase {from:#x}..{to:#x}"),
        }
    }
}

/// Which bits of a torn word or block reached their new value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partial {
    /// Only the lowest-numbered bit that was changing.
    FirstBit,
    /// The first half of the changing bits (in bit order).
    FirstHalf,
    /// The second half.
    SecondHalf,
    /// A random half (each changing bit with probability 1/2), from this seed.
    Random(u64),
}

/// How the interrupted operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NorFate {
    /// It never started.
    Untouched,
    /// It completed (the power went just after).
    Done,
    /// Units (words of a program, blocks of an erase) before `unit` completed, `unit` itself
    /// changed in part, later ones not at all.
    Torn {
        /// The torn word or block, counted from the operation's start.
        unit: u32,
        /// Which of its changing bits changed.
        partial: Partial,
    },
}

impl fmt::Display for NorFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Untouched => f.write_str("untouched"),
            Self::Done => f.write_str("done"),
            Self::Torn { unit, partial } => write!(f, "torn at unit {unit} ({partial:?})"),
        }
    }
}

/// A NOR flash of `bytes.len()` bytes with `W`-byte program words and `E`-byte erase blocks,
/// which allows a word to be programmed more than once ([`MultiwriteNorFlash`]).
#[derive(Clone, Debug)]
pub struct NorSim<const W: usize, const E: usize> {
    bytes: Vec<u8>,
    seed: u64,
    ops: u64,
    budget: Option<u64>,
    interrupted: Option<NorOp>,
    misuse: u64,
    trace: Vec<NorOp>,
}

impl<const W: usize, const E: usize> NorSim<W, E> {
    /// An erased flash of `blocks` erase blocks. `seed` draws the random torn bits.
    pub fn new(blocks: usize, seed: u64) -> Self {
        Self {
            bytes: vec![0xFF; blocks * E],
            seed,
            ops: 0,
            budget: None,
            interrupted: None,
            misuse: 0,
            trace: Vec::new(),
        }
    }

    /// The flash contents.
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    /// Programs and erases issued so far (the index the next one gets).
    pub fn op_count(&self) -> u64 {
        self.ops
    }

    /// Every program and erase that completed, in order.
    pub fn trace(&self) -> &[NorOp] {
        &self.trace
    }

    /// Bytes a program asked to hold a bit the flash had already cleared (a byte other than
    /// `0xFF`, which means "leave it"): NOR keeps the bit cleared, so the byte does not hold
    /// what was asked. A correct driver never asks.
    pub fn misuse(&self) -> u64 {
        self.misuse
    }

    /// Cuts the power during the program or erase with index `op` (counted from this flash's
    /// creation): it fails, changes nothing yet, and every later operation fails.
    pub fn crash_after(&mut self, op: u64) {
        self.budget = Some(op);
    }

    /// `true` once the power is off.
    pub fn has_crashed(&self) -> bool {
        self.budget.is_some_and(|b| self.ops > b) || self.interrupted.is_some()
    }

    /// The operation the power cut interrupted, if it cut one.
    pub fn interrupted(&self) -> Option<&NorOp> {
        self.interrupted.as_ref()
    }

    /// Every way the interrupted operation may have ended, at most `max` of them (sampled
    /// evenly over the whole list past that): untouched, done, and torn at each unit with
    /// each [`Partial`] pattern.
    pub fn crash_states(&self, max: usize) -> Vec<NorFate> {
        let units = match &self.interrupted {
            None => return vec![NorFate::Untouched],
            Some(NorOp::Program { data, .. }) => data.len() / W,
            Some(NorOp::Erase { from, to }) => (to - from) as usize / E,
        };
        let mut all = vec![NorFate::Untouched, NorFate::Done];
        for unit in 0..units as u32 {
            let random = mix(self.seed ^ mix(self.ops ^ u64::from(unit)));
            for partial in [
                Partial::FirstBit,
                Partial::FirstHalf,
                Partial::SecondHalf,
                Partial::Random(random),
            ] {
                all.push(NorFate::Torn { unit, partial });
            }
        }
        let max = max.max(3);
        if all.len() <= max {
            return all;
        }
        // Untouched and done always; the torn ones evenly over every unit.
        let torn = &all[2..];
        let keep = max - 2;
        all[..2]
            .iter()
            .copied()
            .chain((0..keep).map(|k| torn[k * torn.len() / keep]))
            .collect()
    }

    /// The flash as found after power-up, the interrupted operation having ended as `fate`
    /// says. The result has no power cut scheduled, an empty trace and the same seed.
    pub fn crash(&self, fate: NorFate) -> Self {
        let mut after = Self {
            bytes: self.bytes.clone(),
            seed: self.seed,
            ops: 0,
            budget: None,
            interrupted: None,
            misuse: 0,
            trace: Vec::new(),
        };
        let Some(op) = &self.interrupted else {
            return after;
        };
        let (start, unit_len, units, target): (usize, usize, usize, Vec<u8>) = match op {
            NorOp::Program { offset, data } => {
                let at = *offset as usize;
                let target = self.bytes[at..at + data.len()]
                    .iter()
                    .zip(data)
                    .map(|(old, new)| old & new)
                    .collect();
                (at, W, data.len() / W, target)
            }
            NorOp::Erase { from, to } => {
                let len = (to - from) as usize;
                (*from as usize, E, len / E, vec![0xFF; len])
            }
        };
        let done = match fate {
            NorFate::Untouched => 0,
            NorFate::Done => units,
            NorFate::Torn { unit, .. } => (unit as usize).min(units),
        };
        after.bytes[start..start + done * unit_len].copy_from_slice(&target[..done * unit_len]);
        if let NorFate::Torn { unit, partial } = fate {
            let unit = unit as usize;
            if unit < units {
                let range = unit * unit_len..(unit + 1) * unit_len;
                let old = &self.bytes[start + range.start..start + range.end];
                let torn = tear(old, &target[range.clone()], partial);
                after.bytes[start + range.start..start + range.end].copy_from_slice(&torn);
            }
        }
        after
    }

    /// A 64-bit digest of the contents, to count distinct crash states.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Fingerprint::new(0xcbf2_9ce4_8422_2325);
        hash.bytes(&self.bytes);
        hash.finish()
    }

    fn power(&mut self) -> Result<(), NorSimError> {
        if self.has_crashed() {
            return Err(NorSimError {
                kind: NorFlashErrorKind::Other,
                power_off: true,
            });
        }
        Ok(())
    }

    /// Counts a program or erase; `Err` if the power goes out during it (it is then recorded as
    /// the interrupted operation and changes nothing yet).
    fn begin(&mut self, op: NorOp) -> Result<(), NorSimError> {
        self.power()?;
        let index = self.ops;
        self.ops += 1;
        if self.budget.is_some_and(|b| index >= b) {
            self.interrupted = Some(op);
            return Err(NorSimError {
                kind: NorFlashErrorKind::Other,
                power_off: true,
            });
        }
        self.trace.push(op);
        Ok(())
    }
}

/// The bits of `old` that change to `new` (in either direction), of which `partial` says
/// which did.
fn tear(old: &[u8], new: &[u8], partial: Partial) -> Vec<u8> {
    let changing: Vec<(usize, u8)> = old
        .iter()
        .zip(new)
        .enumerate()
        .flat_map(|(i, (o, n))| {
            (0..8)
                .filter(move |b| (o ^ n) >> b & 1 == 1)
                .map(move |b| (i, b))
        })
        .collect();
    let mut out = old.to_vec();
    let half = changing.len() / 2;
    let mut rng = match partial {
        Partial::Random(seed) => Some(SimRng::new(seed)),
        _ => None,
    };
    for (k, &(i, b)) in changing.iter().enumerate() {
        let flips = match partial {
            Partial::FirstBit => k == 0,
            Partial::FirstHalf => k < half.max(1),
            Partial::SecondHalf => k >= half,
            Partial::Random(_) => rng.as_mut().is_some_and(|r| r.chance(1, 2)),
        };
        if flips {
            out[i] ^= 1 << b;
        }
    }
    out
}

impl<const W: usize, const E: usize> ErrorType for NorSim<W, E> {
    type Error = NorSimError;
}

impl<const W: usize, const E: usize> ReadNorFlash for NorSim<W, E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorSimError> {
        self.power()?;
        check_read(self, offset, bytes.len()).map_err(misused)?;
        let at = offset as usize;
        bytes.copy_from_slice(&self.bytes[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl<const W: usize, const E: usize> NorFlash for NorSim<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorSimError> {
        check_erase(self, from, to).map_err(misused)?;
        self.begin(NorOp::Erase { from, to })?;
        self.bytes[from as usize..to as usize].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorSimError> {
        check_write(self, offset, bytes.len()).map_err(misused)?;
        self.begin(NorOp::Program {
            offset,
            data: bytes.to_vec(),
        })?;
        let at = offset as usize;
        for (old, new) in self.bytes[at..at + bytes.len()].iter_mut().zip(bytes) {
            if *new != 0xFF && !*old & new != 0 {
                self.misuse += 1;
            }
            *old &= new;
        }
        Ok(())
    }
}

impl<const W: usize, const E: usize> MultiwriteNorFlash for NorSim<W, E> {}

fn misused(kind: NorFlashErrorKind) -> NorSimError {
    NorSimError {
        kind,
        power_off: false,
    }
}
