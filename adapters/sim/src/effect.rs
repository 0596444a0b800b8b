//! Unsynced effects and how a [`Fate`] turns each one into bytes on the durable image.

use alloc::vec::Vec;
use core::fmt;

use walden_core::SegmentId;

use crate::plan::{Fate, TearShape, TornFill};
use crate::rng::SimRng;

/// An effect that has happened in the volatile state but is not yet durable; a crash resolves
/// each one with a [`Fate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnsyncedEffect {
    /// A segment was created and the directory not synced since.
    Create {
        /// The segment.
        segment: SegmentId,
    },
    /// A segment was removed and the directory not synced since.
    Remove {
        /// The segment.
        segment: SegmentId,
    },
    /// Bytes were written and the segment not synced since.
    Write {
        /// The segment the file was created as.
        segment: SegmentId,
        /// Where the bytes land on the medium (differs from where they were aimed only under a
        /// misdirected-write fault).
        offset: u64,
        /// How many bytes.
        len: u64,
        /// How many sector-aligned pieces the write covers: a torn write keeps some of them.
        pieces: u32,
    },
    /// The segment was truncated and not synced since.
    Truncate {
        /// The segment.
        segment: SegmentId,
        /// The new length.
        len: u64,
    },
}

impl UnsyncedEffect {
    /// `true` for writes, the only effects that can tear.
    pub const fn is_write(&self) -> bool {
        matches!(self, UnsyncedEffect::Write { .. })
    }

    /// For a write, how many sector pieces it covers (a torn write keeps some of them);
    /// `None` for effects that either happen or not.
    pub const fn pieces(&self) -> Option<u32> {
        match self {
            UnsyncedEffect::Write { pieces, .. } => Some(*pieces),
            _ => None,
        }
    }
}

impl fmt::Display for UnsyncedEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            UnsyncedEffect::Create { segment } => write!(f, "create {segment}"),
            UnsyncedEffect::Remove { segment } => write!(f, "remove {segment}"),
            UnsyncedEffect::Write {
                segment,
                offset,
                len,
                ..
            } => write!(f, "write {segment}@{offset}+{len}"),
            UnsyncedEffect::Truncate { segment, len } => write!(f, "truncate {segment} to {len}"),
        }
    }
}

/// An unsynced change to one file's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FileEffect {
    /// `data` lands at `offset` (already redirected if the write was misdirected).
    Write {
        offset: usize,
        data: Vec<u8>,
    },
    Truncate {
        len: usize,
    },
}

/// What a crash needs, besides the fate, to turn an effect into bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Medium {
    pub(crate) sector_size: usize,
    pub(crate) garbage_seed: u64,
    /// Media fault: space that was never written reads as garbage instead of zeros.
    pub(crate) garbage_holes: bool,
}

impl Medium {
    fn garbage(&self, effect_index: usize, stream: u64) -> SimRng {
        SimRng::derived(self.garbage_seed, ((effect_index as u64) << 1) | stream)
    }

    /// Grows `image` to `len`, filling never-written space with zeros or, under the media fault,
    /// garbage.
    fn grow(&self, image: &mut Vec<u8>, len: usize, effect_index: usize) {
        if len <= image.len() {
            return;
        }
        let start = image.len();
        image.resize(len, 0);
        if self.garbage_holes {
            self.garbage(effect_index, 1).fill(&mut image[start..]);
        }
    }
}

/// The sector-aligned pieces `[start, end)` (relative to the write) that a write of `len` bytes
/// at `offset` covers.
pub(crate) fn sector_pieces(offset: usize, len: usize, sector_size: usize) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < len {
        let absolute = offset + start;
        let boundary = (absolute / sector_size + 1) * sector_size;
        let end = (boundary - offset).min(len);
        pieces.push((start, end));
        start = end;
    }
    pieces
}

/// Applies one unsynced file effect to `image` as `fate` says. `effect_index` keys the garbage.
pub(crate) fn resolve_file_effect(
    image: &mut Vec<u8>,
    effect: &FileEffect,
    fate: Fate,
    medium: &Medium,
    effect_index: usize,
) {
    match effect {
        FileEffect::Truncate { len } => {
            if fate.took_effect() {
                image.truncate(*len);
                medium.grow(image, *len, effect_index);
            }
        }
        FileEffect::Write { offset, data } => {
            resolve_write(image, *offset, data, fate, medium, effect_index);
        }
    }
}

fn resolve_write(
    image: &mut Vec<u8>,
    offset: usize,
    data: &[u8],
    fate: Fate,
    medium: &Medium,
    effect_index: usize,
) {
    let (shape, fill) = match fate {
        Fate::Lost => return,
        Fate::Happened => {
            medium.grow(image, offset, effect_index);
            let end = offset + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[offset..end].copy_from_slice(data);
            return;
        }
        Fate::Torn(tear) => (tear.shape, tear.fill),
    };
    let pieces = sector_pieces(offset, data.len(), medium.sector_size);
    let count = pieces.len();
    let persisted = |i: usize| match shape {
        TearShape::Prefix(n) => i < n as usize,
        TearShape::Suffix(n) => i + (n as usize) >= count,
        TearShape::Sectors(mask) => mask & (1 << (i % 64)) != 0,
    };
    let end = match fill {
        TornFill::Zeros | TornFill::Garbage => offset + data.len(),
        TornFill::Old => match (0..count).rev().find(|&i| persisted(i)) {
            Some(last) => offset + pieces[last].1,
            None => return,
        },
    };
    medium.grow(image, end, effect_index);
    let mut garbage = medium.garbage(effect_index, 0);
    let mut hole_garbage = medium.garbage(effect_index, 1);
    for (i, &(start, stop)) in pieces.iter().enumerate() {
        let target = offset + start..offset + stop;
        if persisted(i) {
            image[target].copy_from_slice(&data[start..stop]);
            continue;
        }
        match fill {
            // The extension persisted without its data: never-written space.
            TornFill::Zeros if medium.garbage_holes => hole_garbage.fill(&mut image[target]),
            TornFill::Zeros => image[target].fill(0),
            TornFill::Garbage => garbage.fill(&mut image[target]),
            // Pieces past the last persisted one lie beyond `end` and never existed.
            TornFill::Old => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::plan::Tear;

    const MEDIUM: Medium = Medium {
        sector_size: 4,
        garbage_seed: 1,
        garbage_holes: false,
    };

    fn write(offset: usize, data: &[u8]) -> FileEffect {
        FileEffect::Write {
            offset,
            data: data.to_vec(),
        }
    }

    fn torn(shape: TearShape, fill: TornFill) -> Fate {
        Fate::Torn(Tear { shape, fill })
    }

    #[test]
    fn pieces_split_at_absolute_sector_boundaries() {
        assert_eq!(sector_pieces(2, 7, 4), vec![(0, 2), (2, 6), (6, 7)]);
        assert_eq!(sector_pieces(0, 8, 4), vec![(0, 4), (4, 8)]);
        assert_eq!(sector_pieces(3, 0, 4), vec![]);
    }

    #[test]
    fn whole_and_lost() {
        let mut image = vec![9; 4];
        resolve_file_effect(&mut image, &write(4, b"abcd"), Fate::Lost, &MEDIUM, 0);
        assert_eq!(image, [9; 4]);
        resolve_file_effect(&mut image, &write(2, b"abcd"), Fate::Happened, &MEDIUM, 0);
        assert_eq!(image, b"\x09\x09abcd");
    }

    #[test]
    fn prefix_tear_with_zeros_keeps_full_length() {
        let mut image = vec![];
        let fate = torn(TearShape::Prefix(1), TornFill::Zeros);
        resolve_file_effect(&mut image, &write(0, b"abcdefgh"), fate, &MEDIUM, 0);
        assert_eq!(image, b"abcd\0\0\0\0");
    }

    #[test]
    fn prefix_tear_with_old_contents_stops_at_the_boundary() {
        let mut image = b"xxxxxx".to_vec();
        let fate = torn(TearShape::Prefix(1), TornFill::Old);
        resolve_file_effect(&mut image, &write(0, b"abcdefghij"), fate, &MEDIUM, 0);
        assert_eq!(image, b"abcdxx");
    }

    #[test]
    fn suffix_tear_leaves_a_hole_of_zeros_before_it() {
        let mut image = vec![];
        let fate = torn(TearShape::Suffix(1), TornFill::Old);
        resolve_file_effect(&mut image, &write(0, b"abcdefgh"), fate, &MEDIUM, 0);
        assert_eq!(image, b"\0\0\0\0efgh");
    }

    #[test]
    fn sector_subset_with_garbage_is_deterministic() {
        let fate = torn(TearShape::Sectors(0b101), TornFill::Garbage);
        let mut a = vec![];
        resolve_file_effect(&mut a, &write(0, b"aaaabbbbcccc"), fate, &MEDIUM, 3);
        let mut b = vec![];
        resolve_file_effect(&mut b, &write(0, b"aaaabbbbcccc"), fate, &MEDIUM, 3);
        assert_eq!(a, b);
        assert_eq!(&a[..4], b"aaaa");
        assert_eq!(&a[8..], b"cccc");
        assert_ne!(&a[4..8], b"bbbb");
    }

    #[test]
    fn size_only_reads_zeros() {
        let mut image = b"ab".to_vec();
        resolve_file_effect(
            &mut image,
            &write(2, b"cdef"),
            Fate::size_only(),
            &MEDIUM,
            0,
        );
        assert_eq!(image, b"ab\0\0\0\0");
    }

    #[test]
    fn garbage_holes_fill_space_never_written() {
        let medium = Medium {
            garbage_holes: true,
            ..MEDIUM
        };
        let mut image = vec![];
        resolve_file_effect(
            &mut image,
            &write(0, b"abcdefgh"),
            Fate::size_only(),
            &medium,
            0,
        );
        assert_eq!(image.len(), 8);
        assert_ne!(&image[..], &[0; 8]);
        let mut image = vec![];
        let fate = torn(TearShape::Suffix(1), TornFill::Old);
        resolve_file_effect(&mut image, &write(0, b"abcdefgh"), fate, &medium, 0);
        assert_ne!(&image[..4], &[0; 4]);
        assert_eq!(&image[4..], b"efgh");
    }

    #[test]
    fn truncate_applies_only_when_it_happened() {
        let mut image = b"abcdef".to_vec();
        let cut = FileEffect::Truncate { len: 2 };
        resolve_file_effect(&mut image, &cut, Fate::Lost, &MEDIUM, 0);
        assert_eq!(image, b"abcdef");
        resolve_file_effect(&mut image, &cut, Fate::Happened, &MEDIUM, 0);
        assert_eq!(image, b"ab");
    }
}
