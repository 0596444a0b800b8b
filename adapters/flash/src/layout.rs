//! Where the log lives on the flash: a run of equal *areas*, each a few erase blocks, each
//! holding one segment (or one start slot) behind a 32-byte area header.

use core::fmt;

use walden_core::ChecksumAlgorithm;
use walden_core::SegmentId;
use walden_core::raw::Checksum;

/// Bytes of the area header at the start of every area. Segment data follows it.
pub const AREA_HEADER_LEN: usize = 32;

/// The largest `WRITE_SIZE` (and `READ_SIZE`) supported: the area header is one or more whole
/// words, and the adapter keeps at most one unsynced partial word in RAM.
pub const MAX_WORD: usize = AREA_HEADER_LEN;

const MAGIC: [u8; 4] = *b"WFLA";
/// The area format this adapter reads and writes. 2: the first bytes of every erase block past
/// the header hold no data ([`Geometry::gap`]). 3: the layout fingerprint covers the erase size
/// and the gap too (where the data of an area lies), not only where the areas are.
pub(crate) const VERSION: u8 = 3;
/// Salt of the area header's CRC-32C, so that no other structure's bytes validate as one.
const HEADER_SALT: u64 = 0x5746_4c41_5348_4844;

/// How a flash region is divided into areas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Byte offset of the first area in the flash (a multiple of the erase size).
    pub base: u32,
    /// Number of areas. The log needs one per segment it holds at once, two for the start
    /// slots, and one spare that truncation copies into (a create never takes it).
    pub areas: u32,
    /// Erase blocks per area.
    pub blocks_per_area: u32,
}

impl Layout {
    /// `areas` areas of `blocks_per_area` erase blocks each, from the start of the flash.
    pub const fn new(areas: u32, blocks_per_area: u32) -> Self {
        Self {
            base: 0,
            areas,
            blocks_per_area,
        }
    }

    /// The same layout starting `base` bytes into the flash.
    #[must_use]
    pub const fn at(mut self, base: u32) -> Self {
        self.base = base;
        self
    }
}

/// A layout that does not fit the flash or the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// Fewer than 4 areas (two start slots, one segment, one spare), or more than the
    /// adapter's table holds.
    AreaCount {
        /// Areas asked for.
        areas: u32,
        /// The table's capacity (`AREAS`).
        capacity: usize,
    },
    /// `WRITE_SIZE` or `READ_SIZE` is not a power of two up to [`MAX_WORD`], or `ERASE_SIZE`
    /// is not a multiple of both, or not larger than the gap left at the start of each
    /// erase block (4 bytes or a write word, whichever is larger).
    Geometry {
        /// The flash's write size.
        write_size: usize,
        /// The flash's read size.
        read_size: usize,
        /// The flash's erase size.
        erase_size: usize,
    },
    /// An area is too small to hold a segment header, one record of 1 byte (with
    /// `Config::small_device`'s margin) and a seal: less than 148 bytes of data after the
    /// area header and the gaps at its erase blocks (at least 180 bytes).
    AreaTooSmall {
        /// Its size in bytes.
        bytes: u64,
    },
    /// The layout does not fit in the flash, or `base` is not at an erase block.
    OutOfBounds {
        /// One past the layout's last byte.
        end: u64,
        /// The flash's capacity.
        capacity: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AreaCount { areas, capacity } => write!(
                f,
                "{areas} areas: need at least 4 (two start slots, a segment, a spare) and at most {capacity}"
            ),
            Self::Geometry {
                write_size,
                read_size,
                erase_size,
            } => write!(
                f,
                "unsupported geometry: write size {write_size}, read size {read_size}, erase size {erase_size}"
            ),
            Self::AreaTooSmall { bytes } => write!(f, "areas of {bytes} bytes are too small"),
            Self::OutOfBounds { end, capacity } => write!(
                f,
                "layout ends at byte {end} (or does not start at an erase block); the flash holds {capacity}"
            ),
        }
    }
}

impl core::error::Error for LayoutError {}

/// A layout checked against a flash's geometry, with every size worked out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) base: u32,
    pub(crate) areas: usize,
    pub(crate) area_bytes: u32,
    /// The erase size: at most `area_bytes`, so it fits.
    pub(crate) block: u32,
    pub(crate) write: usize,
    pub(crate) read: usize,
}

impl Geometry {
    pub(crate) fn check(
        layout: Layout,
        table: usize,
        capacity: usize,
        write: usize,
        read: usize,
        erase: usize,
    ) -> Result<Self, LayoutError> {
        let word_ok = |w: usize| w.is_power_of_two() && w <= MAX_WORD;
        // An erase block of whole read words too: reads are word-aligned, so the last word of
        // the last area must not run past the layout.
        // And more than the gap left at the start of each erase block (`Geometry::gap`).
        if !word_ok(write)
            || !word_ok(read)
            || erase <= write.max(4)
            || !erase.is_multiple_of(write)
            || !erase.is_multiple_of(read)
        {
            return Err(LayoutError::Geometry {
                write_size: write,
                read_size: read,
                erase_size: erase,
            });
        }
        if layout.areas < 4 || layout.areas as usize > table {
            return Err(LayoutError::AreaCount {
                areas: layout.areas,
                capacity: table,
            });
        }
        // Sizes past u64 (an erase size near 2^64 on a 64-bit target) are out of bounds too.
        let out_of_bounds = LayoutError::OutOfBounds {
            end: u64::MAX,
            capacity,
        };
        let area_bytes = u64::from(layout.blocks_per_area)
            .checked_mul(erase as u64)
            .ok_or(out_of_bounds)?;
        // A segment header, a record header, 4 bytes of payload and a seal, at least: with less,
        // `Config::small_device(segment_size)` allows a 1-byte record that does not leave room
        // for the seal (a rotation would then fail and poison the log).
        if area_bytes < (AREA_HEADER_LEN + 64 + 32 + 4 + 48) as u64 {
            return Err(LayoutError::AreaTooSmall { bytes: area_bytes });
        }
        let end = area_bytes
            .checked_mul(u64::from(layout.areas))
            .and_then(|bytes| bytes.checked_add(u64::from(layout.base)))
            .ok_or(out_of_bounds)?;
        if end > capacity as u64
            || !(layout.base as usize).is_multiple_of(erase)
            || end > u64::from(u32::MAX)
        {
            return Err(LayoutError::OutOfBounds { end, capacity });
        }
        let geo = Self {
            base: layout.base,
            areas: layout.areas as usize,
            area_bytes: area_bytes as u32,
            block: erase as u32,
            write,
            read,
        };
        if geo.capacity() < (64 + 32 + 4 + 48) as u32 {
            return Err(LayoutError::AreaTooSmall { bytes: area_bytes });
        }
        Ok(geo)
    }

    /// Flash offset of area `i`.
    pub(crate) fn area_start(&self, i: usize) -> u32 {
        self.base + self.area_bytes * i as u32
    }

    /// Bytes left unprogrammed (erased) at the start of every erase block that begins past
    /// the area header: at least the header's magic, in whole write words. So no data can
    /// ever put an area header on an erase block (its magic would have to be there), and
    /// mount can take any header it finds on one for another layout's: a payload crafted to
    /// be an area header cannot make a mount refuse the flash.
    pub(crate) fn gap(&self) -> u32 {
        (self.write as u32).max(4)
    }

    /// The first erase block boundary at or past the area header, from the area's start.
    fn first_gap(&self) -> u32 {
        (AREA_HEADER_LEN as u32).div_ceil(self.block) * self.block
    }

    /// Bytes of segment data an area holds.
    pub(crate) fn capacity(&self) -> u32 {
        let first = self.first_gap().min(self.area_bytes);
        let blocks = (self.area_bytes - first) / self.block;
        first - AREA_HEADER_LEN as u32 + blocks * (self.block - self.gap())
    }

    /// Where byte `pos` of area `i`'s segment data is on the flash, and how many bytes of data
    /// follow it there before the next gap (or the area's end).
    pub(crate) fn data_at(&self, i: usize, pos: u32) -> (u32, u32) {
        let head = self.first_gap().min(self.area_bytes) - AREA_HEADER_LEN as u32;
        if pos < head {
            return (
                self.area_start(i) + AREA_HEADER_LEN as u32 + pos,
                head - pos,
            );
        }
        let per_block = self.block - self.gap();
        let (k, r) = ((pos - head) / per_block, (pos - head) % per_block);
        let at = self.area_start(i) + self.first_gap() + k * self.block + self.gap() + r;
        (at, per_block - r)
    }

    /// A digest of where the areas are (base, count, size) and where data lies inside them
    /// (the erase size, whose blocks each start with a gap, and the gap itself), kept in every
    /// area header: a header found under another layout, or written by a driver with another
    /// erase or write size, names a log this one cannot read. (Write sizes of 1, 2 and 4 bytes
    /// have the same gap, so they lay data out alike and read each other's logs.)
    pub(crate) fn fingerprint(&self) -> u32 {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(b"AREA");
        b[4..8].copy_from_slice(&self.base.to_le_bytes());
        b[8..12].copy_from_slice(&(self.areas as u32).to_le_bytes());
        b[12..16].copy_from_slice(&self.area_bytes.to_le_bytes());
        b[16..20].copy_from_slice(&self.block.to_le_bytes());
        b[20..24].copy_from_slice(&self.gap().to_le_bytes());
        crc(&b)
    }
}

/// The area header: which segment an area holds, and how new that copy is.
///
/// ```text
///  0 magic "WFLA"   4 version (3)   5..8 zero   8 segment id (u64)   16 generation (u64)
/// 24 layout fingerprint (u32)      28 CRC-32C (salted) of bytes 0..28
/// ```
///
/// Written raw (data is stored inverted, headers are not): erased (all `0xFF`) and zeroed (all
/// `0x00`) headers both fail the magic, so an erased area and a removed one are both free.
/// Later versions keep the magic, the version byte and the CRC where they are, so that this
/// version refuses their areas instead of taking them for free ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AreaHeader {
    pub(crate) segment: SegmentId,
    pub(crate) generation: u64,
    /// The [`Geometry::fingerprint`] of the layout that wrote it.
    pub(crate) layout: u32,
}

impl AreaHeader {
    pub(crate) fn encode(&self) -> [u8; AREA_HEADER_LEN] {
        let mut b = [0u8; AREA_HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[8..16].copy_from_slice(&self.segment.to_le_bytes());
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        b[24..28].copy_from_slice(&self.layout.to_le_bytes());
        let crc = crc(&b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; AREA_HEADER_LEN]) -> Option<Self> {
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let long = |at: usize| u64::from(word(at)) | (u64::from(word(at + 4)) << 32);
        let valid =
            b[0..4] == MAGIC && b[4] == VERSION && b[5..8] == [0; 3] && word(28) == crc(&b[..28]);
        valid.then(|| Self {
            segment: long(8),
            generation: long(16),
            layout: word(24),
        })
    }

    /// The version of a header another version of the adapter wrote: the magic, a version
    /// other than this one, and the salted CRC-32C of bytes 0..28 at 28 (every version keeps
    /// those three where they are). A torn program of this version's header fails the CRC, so
    /// it is a free area, not this.
    pub(crate) fn other_version(b: &[u8; AREA_HEADER_LEN]) -> Option<u8> {
        let stored = u32::from_le_bytes([b[28], b[29], b[30], b[31]]);
        (b[0..4] == MAGIC && b[4] != VERSION && stored == crc(&b[..28])).then_some(b[4])
    }
}

pub(crate) fn crc(bytes: &[u8]) -> u32 {
    let mut c = Checksum::new(ChecksumAlgorithm::Crc32c);
    c.update(&HEADER_SALT.to_le_bytes());
    c.update(bytes);
    c.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_erased_or_zeroed_is_free() {
        let h = AreaHeader {
            segment: u64::MAX - 1,
            generation: 77,
            layout: 0x1234_5678,
        };
        assert_eq!(AreaHeader::decode(&h.encode()), Some(h));
        assert_eq!(AreaHeader::decode(&[0xff; AREA_HEADER_LEN]), None);
        assert_eq!(AreaHeader::decode(&[0; AREA_HEADER_LEN]), None);
        // Any one bit cleared (a program interrupted part way) is not a header.
        let good = h.encode();
        for bit in 0..AREA_HEADER_LEN * 8 {
            let mut b = good;
            b[bit / 8] &= !(1 << (bit % 8));
            if b != good {
                assert_eq!(AreaHeader::decode(&b), None, "bit {bit}");
            }
        }
    }

    #[test]
    fn layouts_are_checked() {
        let ok = Geometry::check(Layout::new(6, 1), 8, 6 * 1024, 4, 1, 1024);
        assert!(ok.is_ok());
        let g = ok.unwrap();
        assert_eq!(g.capacity(), 1024 - 32);
        assert_eq!(g.data_at(2, 0), (2048 + 32, 1024 - 32));
        assert!(matches!(
            Geometry::check(Layout::new(3, 1), 8, 6 * 1024, 4, 1, 1024),
            Err(LayoutError::AreaCount { .. })
        ));
        assert!(matches!(
            Geometry::check(Layout::new(9, 1), 8, 16 * 1024, 4, 1, 1024),
            Err(LayoutError::AreaCount { .. })
        ));
        assert!(matches!(
            Geometry::check(Layout::new(6, 1), 8, 5 * 1024, 4, 1, 1024),
            Err(LayoutError::OutOfBounds { .. })
        ));
        assert!(matches!(
            Geometry::check(Layout::new(6, 1).at(100), 8, 16 * 1024, 4, 1, 1024),
            Err(LayoutError::OutOfBounds { .. })
        ));
        assert!(matches!(
            Geometry::check(Layout::new(6, 1), 8, 6 * 1024, 64, 1, 1024),
            Err(LayoutError::Geometry { .. })
        ));
        assert!(matches!(
            Geometry::check(Layout::new(6, 1), 8, 6 * 128, 4, 1, 128),
            Err(LayoutError::AreaTooSmall { .. })
        ));
    }
}
