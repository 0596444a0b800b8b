//! [`FlashStorage`]: Walden's [`Storage`] on raw NOR flash.
//!
//! How the [`Storage`] contract maps onto flash (the argument is in the crate documentation):
//!
//! * A segment lives in one *area* (a few erase blocks) behind an [`AreaHeader`] naming it. A
//!   create erases a free area and programs the header; a remove programs the header to zeros;
//!   both are durable when they return (flash has no cache), which the contract allows.
//! * Data is stored inverted, so erased space (`0xFF`) reads as zeros: the end of the log looks
//!   exactly like space a file system preallocated, which recovery treats as a clean end. A
//!   segment's length is always its area's capacity. The first word of every erase block past
//!   the header is left erased (a gap the data skips), so no payload can put an area header on
//!   an erase block.
//! * Programming needs whole words: the last partial word of a write waits in RAM until the next
//!   write completes it or `sync` programs it (padded with `0xFF`, which changes nothing); a later
//!   write programs the rest of that word. So a word may be programmed twice, clearing only bits
//!   that were still set: that is what [`MultiwriteNorFlash`] promises.
//! * A truncate that leaves programmed bytes after the new end copies the kept prefix into a spare
//!   area, programs its header with a higher generation (the commit point), then zeroes the old
//!   header. Mount keeps the newest copy of a segment and zeroes any older one.
//! * A create never takes the last free area: it is the spare. Recovery cuts a torn tail with
//!   such a truncate, so a log that had used every area would never open again after a power
//!   cut during an append.

use core::cell::RefCell;
use core::fmt;

use embedded_storage::nor_flash::MultiwriteNorFlash;
use walden_core::{SegmentId, Storage, StorageErrorKind};

use crate::error::FlashError;
use crate::layout::{
    AREA_HEADER_LEN, AreaHeader, Geometry, Layout, LayoutError, MAX_WORD, VERSION,
};

/// Stack buffer for inverting and copying: a multiple of every supported word size.
const CHUNK: usize = 64;

/// The seal core appends after a segment's last record (a record header and a 16-byte payload):
/// a sealed segment is up to `segment_size` plus this.
const SEAL_LEN: u32 = 48;

// The RAM each area of the table takes is documented as 32 bytes: checked for every target
// the crate is built for (it is 24 where `u64` is 4-byte aligned).
const _: () = assert!(core::mem::size_of::<Option<AreaHeader>>() <= 32);

/// The last partial word of the newest write, not yet programmed.
#[derive(Clone, Copy, Debug)]
struct Tail {
    area: usize,
    /// Offset of the word in the segment's data (a multiple of the write size).
    word: u32,
    /// What to program: the inverted data bytes, `0xFF` where nothing was written.
    bytes: [u8; MAX_WORD],
}

/// A Walden [`Storage`] on a NOR flash: segments in areas of erase blocks, no file system.
///
/// `AREAS` is the most areas the table holds (RAM: 32 bytes each, an `Option` of a header with
/// two `u64`s, on a Cortex-M as on a 64-bit host). Build it with [`FlashStorage::mount`];
/// configure the log with [`FlashStorage::segment_size`].
pub struct FlashStorage<F, const AREAS: usize> {
    /// Core reads through `&self`; flash drivers read through `&mut self`.
    flash: RefCell<F>,
    geo: Geometry,
    areas: [Option<AreaHeader>; AREAS],
    /// `None` once a header holds generation `u64::MAX`: no copy can be newer.
    next_generation: Option<u64>,
    cursor: usize,
    tail: Option<Tail>,
}

/// Mounting failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MountError {
    /// The layout does not fit the flash.
    Layout(LayoutError),
    /// The flash failed while the areas were read (or an outdated copy was cleared).
    Flash(FlashError),
    /// An area holds a valid header of another version of the adapter's format. Nothing was
    /// written: the area is neither free nor readable by this version.
    UnsupportedVersion {
        /// The area's index in the layout.
        area: usize,
        /// The header's version (this adapter reads and writes version 2 only).
        version: u8,
    },
    /// The flash holds a log written with another layout (another base, area count or area
    /// size): an area header of that layout lies at the start of an area of this one, or at an
    /// erase block inside a free one (where the next create would erase it). Mount with the
    /// layout the log was written with, or erase the whole region to start a new log. Nothing
    /// was written.
    LayoutMismatch {
        /// The index, in the layout given, of the area the header lies in.
        area: usize,
        /// The header's flash offset.
        offset: u32,
    },
    /// Two areas hold the same segment with the same generation, which this adapter never
    /// writes (each copy it makes is newer): neither can be told to be the older one, so
    /// nothing was cleared.
    DuplicateSegment {
        /// The segment.
        segment: SegmentId,
        /// The generation both copies hold.
        generation: u64,
    },
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Layout(e) => write!(f, "flash layout: {e}"),
            Self::Flash(e) => write!(f, "mounting the flash: {e}"),
            Self::UnsupportedVersion { area, version } => write!(
                f,
                "flash area {area} holds an area header of version {version}; this adapter reads and writes version {VERSION} only"
            ),
            Self::LayoutMismatch { area, offset } => write!(
                f,
                "flash area {area} holds, at byte {offset:#x}, an area header of a log written with another layout (base, area count or area size): mount with that layout, or erase the whole region to start a new log"
            ),
            Self::DuplicateSegment {
                segment,
                generation,
            } => write!(
                f,
                "two flash areas hold segment {segment} with the same generation {generation}"
            ),
        }
    }
}

impl core::error::Error for MountError {}

impl From<LayoutError> for MountError {
    fn from(e: LayoutError) -> Self {
        Self::Layout(e)
    }
}

impl From<FlashError> for MountError {
    fn from(e: FlashError) -> Self {
        Self::Flash(e)
    }
}

fn not_found() -> FlashError {
    FlashError::new(StorageErrorKind::NotFound, "no such segment")
}

impl<F: MultiwriteNorFlash, const AREAS: usize> FlashStorage<F, AREAS> {
    /// Reads every area header of `layout` on `flash`. Where a crash during a truncate left two
    /// copies of a segment, the older copy's header is zeroed here (the only write mount makes).
    /// On failure the flash is dropped; [`FlashStorage::try_mount`] hands it back.
    pub fn mount(flash: F, layout: Layout) -> Result<Self, MountError> {
        Self::try_mount(flash, layout).map_err(|(e, _)| e)
    }

    /// [`FlashStorage::mount`], giving the flash back with the error when mounting fails, so
    /// a device can report, mount again with another layout, or use the flash otherwise (a
    /// driver often cannot be made twice).
    pub fn try_mount(flash: F, layout: Layout) -> Result<Self, (MountError, F)> {
        let geo = match Geometry::check(
            layout,
            AREAS,
            flash.capacity(),
            F::WRITE_SIZE,
            F::READ_SIZE,
            F::ERASE_SIZE,
        ) {
            Ok(geo) => geo,
            Err(e) => return Err((e.into(), flash)),
        };
        let mut storage = Self {
            flash: RefCell::new(flash),
            geo,
            areas: [None; AREAS],
            next_generation: Some(1),
            cursor: 0,
            tail: None,
        };
        match storage.read_headers() {
            Ok(()) => Ok(storage),
            Err(e) => Err((e, storage.into_inner())),
        }
    }

    /// Mount's work once the layout is checked: every area header read, another layout's log
    /// and duplicates refused, superseded copies zeroed, where the next segment goes.
    ///
    /// Each free area is read at every erase block, not only at its start: another layout's
    /// area may start there, and the next create or truncate copy into the area would erase
    /// it. Any header that verifies, of any layout or version, is refused. An area holding a
    /// segment is not read past its header: this layout erased it whole when it claimed it,
    /// so the rest is this log's own data (inverted), where a header could only be a payload.
    /// A free area may still hold a removed segment's data, but never on an erase block: the
    /// data skips a gap there ([`Geometry::gap`]), so a header found on one is another
    /// layout's, whatever the payloads were. A header missed would be a log erased. Cost: one 32-byte
    /// read per erase block of each free area past its first (none with areas of one block).
    fn read_headers(&mut self) -> Result<(), MountError> {
        let geo = self.geo;
        let storage = self;
        // Nothing past the region is read: with erase blocks under 32 bytes, the last few cannot
        // hold a whole header.
        let end = geo.area_start(geo.areas);
        for i in 0..geo.areas {
            // Erase blocks and the header are whole read words, so these reads are aligned.
            for at in (0..geo.area_bytes).step_by(geo.block as usize) {
                let offset = geo.area_start(i) + at;
                if end - offset < AREA_HEADER_LEN as u32 {
                    break;
                }
                let mut raw = [0u8; AREA_HEADER_LEN];
                storage.read_raw(offset, &mut raw)?;
                let header = AreaHeader::decode(&raw);
                let version = AreaHeader::other_version(&raw);
                let mismatch = MountError::LayoutMismatch { area: i, offset };
                if at > 0 {
                    if header.is_some() || version.is_some() {
                        return Err(mismatch);
                    }
                    continue;
                }
                if let Some(version) = version {
                    return Err(MountError::UnsupportedVersion { area: i, version });
                }
                storage.areas[i] = header;
                match header {
                    Some(a) if a.layout != geo.fingerprint() => return Err(mismatch),
                    Some(_) => break,
                    None => {}
                }
            }
        }
        // Checked before any header is zeroed: mount writes nothing it cannot justify.
        for (i, a) in storage.areas[..geo.areas].iter().enumerate() {
            let Some(a) = a else { continue };
            if storage.areas[i + 1..geo.areas].contains(&Some(*a)) {
                return Err(MountError::DuplicateSegment {
                    segment: a.segment,
                    generation: a.generation,
                });
            }
        }
        for i in 0..geo.areas {
            let Some(a) = storage.areas[i] else { continue };
            let superseded = storage.areas[..geo.areas].iter().enumerate().any(|(j, b)| {
                b.is_some_and(|b| {
                    j != i && b.segment == a.segment && (b.generation, j) > (a.generation, i)
                })
            });
            if superseded {
                storage.invalidate(i)?;
            }
        }
        let newest = storage.areas[..geo.areas]
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.map(|a| (a.generation, i)))
            .max();
        if let Some((generation, i)) = newest {
            storage.next_generation = generation.checked_add(1);
            storage.cursor = (i + 1) % geo.areas;
        }
        Ok(())
    }

    /// Bytes of segment data an area holds (every segment's [`Storage::len`]).
    pub fn segment_capacity(&self) -> u64 {
        u64::from(self.geo.capacity())
    }

    /// The `segment_size` to configure the log with: an area's capacity less room for the seal
    /// a rotation appends (`Config::small_device(storage.segment_size())`).
    pub fn segment_size(&self) -> u64 {
        u64::from(self.geo.capacity() - SEAL_LEN)
    }

    /// Areas holding no segment: room to create segments, and the spare a truncate copies into
    /// (a create never takes the last one).
    pub fn free_areas(&self) -> usize {
        self.areas[..self.geo.areas]
            .iter()
            .filter(|a| a.is_none())
            .count()
    }

    /// The flash driver, for what the log does not do (another partition, a power-cut
    /// test). Programming or erasing the log's areas through it voids every promise above.
    pub fn flash_mut(&mut self) -> &mut F {
        self.flash.get_mut()
    }

    /// Gives the flash back. Unsynced bytes still waiting in RAM are dropped, as a power loss
    /// would drop them.
    pub fn into_inner(self) -> F {
        self.flash.into_inner()
    }

    fn find(&self, id: SegmentId) -> Result<usize, FlashError> {
        self.areas[..self.geo.areas]
            .iter()
            .position(|a| a.is_some_and(|a| a.segment == id))
            .ok_or_else(not_found)
    }

    /// The next free area at or after the cursor (round robin spreads the erases), other than
    /// `except`.
    fn free_area(&self, except: Option<usize>) -> Result<usize, FlashError> {
        (0..self.geo.areas)
            .map(|k| (self.cursor + k) % self.geo.areas)
            .find(|&i| self.areas[i].is_none() && Some(i) != except)
            .ok_or(FlashError::new(
                StorageErrorKind::NoSpace,
                "no free flash area (the layout needs one per segment, two start slots and a spare)",
            ))
    }

    fn read_raw(&self, at: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let mut flash = self.flash.try_borrow_mut().map_err(|_| {
            FlashError::new(
                StorageErrorKind::Io,
                "flash already borrowed (re-entrant call)",
            )
        })?;
        let read = |flash: &mut F, at: u32, buf: &mut [u8]| {
            flash
                .read(at, buf)
                .map_err(|e| FlashError::driver(&e, "flash read"))
        };
        if self.geo.read == 1 {
            return read(&mut flash, at, buf);
        }
        // Word by word through a buffer, for flashes that only read aligned words.
        let r = self.geo.read as u32;
        let mut done = 0;
        while done < buf.len() {
            let pos = at + done as u32;
            let start = pos - pos % r;
            let mut word = [0u8; MAX_WORD];
            read(&mut flash, start, &mut word[..r as usize])?;
            let skip = (pos - start) as usize;
            let n = (r as usize - skip).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&word[skip..skip + n]);
            done += n;
        }
        Ok(())
    }

    fn program(&mut self, at: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.flash
            .get_mut()
            .write(at, bytes)
            .map_err(|e| FlashError::driver(&e, "flash program"))
    }

    /// Reads area `i`'s segment data from `pos`, around the gaps at its erase blocks.
    fn read_data(&self, i: usize, pos: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let mut done = 0;
        while done < buf.len() {
            let (at, run) = self.geo.data_at(i, pos + done as u32);
            let n = (run as usize).min(buf.len() - done);
            self.read_raw(at, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Programs `bytes` (whole words) as area `i`'s segment data from `pos` (at a word), around
    /// the gaps: a gap and the data between gaps are whole words, so every piece is too.
    fn program_data(&mut self, i: usize, pos: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let mut done = 0;
        while done < bytes.len() {
            let (at, run) = self.geo.data_at(i, pos + done as u32);
            let n = (run as usize).min(bytes.len() - done);
            self.program(at, &bytes[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn erase_area(&mut self, i: usize) -> Result<(), FlashError> {
        let from = self.geo.area_start(i);
        self.flash
            .get_mut()
            .erase(from, from + self.geo.area_bytes)
            .map_err(|e| FlashError::driver(&e, "flash erase"))
    }

    /// Zeroes an area's header: whatever the area held is gone, and no partial erase of it
    /// later can bring a valid header back (erasing sets bits; a header needs its magic and
    /// CRC).
    fn invalidate(&mut self, i: usize) -> Result<(), FlashError> {
        self.areas[i] = None;
        self.program(self.geo.area_start(i), &[0; AREA_HEADER_LEN])
    }

    /// The generation the next claimed area gets. Only a header the adapter did not write can
    /// hold `u64::MAX`; after it, no area can be claimed (the log can still be read).
    fn generation(&self) -> Result<u64, FlashError> {
        self.next_generation.ok_or(FlashError::new(
            StorageErrorKind::Unsupported,
            "an area header holds the last generation (u64::MAX): no area can be claimed",
        ))
    }

    fn claim(&mut self, i: usize, segment: SegmentId) -> Result<(), FlashError> {
        let generation = self.generation()?;
        let header = AreaHeader {
            segment,
            generation,
            layout: self.geo.fingerprint(),
        };
        self.next_generation = generation.checked_add(1);
        self.program(self.geo.area_start(i), &header.encode())?;
        self.areas[i] = Some(header);
        self.cursor = (i + 1) % self.geo.areas;
        Ok(())
    }

    /// Programs the partial word waiting in RAM, if any.
    fn flush(&mut self) -> Result<(), FlashError> {
        if let Some(t) = self.tail.take() {
            self.program_data(t.area, t.word, &t.bytes[..self.geo.write])?;
        }
        Ok(())
    }

    /// Whether every byte of area `i`'s data from `from` on is erased.
    fn erased_from(&self, i: usize, from: u32) -> Result<bool, FlashError> {
        let end = self.geo.capacity();
        let mut pos = from;
        let mut chunk = [0u8; CHUNK];
        while pos < end {
            let n = (end - pos).min(CHUNK as u32) as usize;
            self.read_data(i, pos, &mut chunk[..n])?;
            if chunk[..n].iter().any(|&b| b != 0xFF) {
                return Ok(false);
            }
            pos += n as u32;
        }
        Ok(true)
    }

    /// Copies the first `len` bytes of area `i`'s segment into a spare area, commits the copy
    /// with a newer header, and clears the old area.
    fn relocate(&mut self, i: usize, len: u32) -> Result<(), FlashError> {
        let segment = self.areas[i].ok_or_else(not_found)?.segment;
        self.generation()?;
        let j = self.free_area(Some(i))?;
        self.erase_area(j)?;
        let w = self.geo.write as u32;
        let mut pos = 0;
        while pos < len {
            let n = (len - pos).min(CHUNK as u32);
            let words = n.div_ceil(w) * w;
            let mut chunk = [0xFFu8; CHUNK];
            self.read_data(i, pos, &mut chunk[..n as usize])?;
            if chunk[..words as usize].iter().any(|&b| b != 0xFF) {
                self.program_data(j, pos, &chunk[..words as usize])?;
            }
            pos += n;
        }
        // The commit point: from here on the copy is the segment (mount prefers it).
        self.claim(j, segment)?;
        self.invalidate(i)
    }
}

impl<F: MultiwriteNorFlash, const AREAS: usize> Storage for FlashStorage<F, AREAS> {
    type Error = FlashError;

    /// An area's capacity: core then refuses a configuration or a batch that no area could
    /// hold, before anything is written.
    fn segment_capacity(&self) -> Option<u64> {
        Some(FlashStorage::segment_capacity(self))
    }

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), FlashError> {
        for a in self.areas[..self.geo.areas].iter().flatten() {
            each(a.segment);
        }
        Ok(())
    }

    fn create(&mut self, id: SegmentId) -> Result<(), FlashError> {
        if self.find(id).is_ok() {
            return Err(FlashError::new(
                StorageErrorKind::AlreadyExists,
                "segment exists",
            ));
        }
        let i = self.free_area(None)?;
        // The last free area is never taken: a truncate that drops programmed bytes copies the
        // segment into a free area, and recovery needs one to cut a torn tail (of this very
        // segment, if the power goes while it is written). Without it the log would not open.
        // A truncate's copy frees the area it leaves, so one kept back is always enough.
        self.free_area(Some(i))?;
        self.generation()?;
        self.flush()?;
        self.erase_area(i)?;
        self.claim(i, id)
    }

    fn remove(&mut self, id: SegmentId) -> Result<(), FlashError> {
        let i = self.find(id)?;
        if self.tail.is_some_and(|t| t.area == i) {
            self.tail = None;
        }
        self.invalidate(i)
    }

    fn len(&self, id: SegmentId) -> Result<u64, FlashError> {
        self.find(id)?;
        Ok(self.segment_capacity())
    }

    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, FlashError> {
        let i = self.find(id)?;
        let cap = u64::from(self.geo.capacity());
        if offset >= cap {
            return Ok(0);
        }
        let n = (cap - offset).min(buf.len() as u64) as usize;
        let offset = offset as u32;
        self.read_data(i, offset, &mut buf[..n])?;
        if let Some(t) = self.tail.filter(|t| t.area == i) {
            // What the flash will hold once the word is programmed.
            for (k, b) in t.bytes[..self.geo.write].iter().enumerate() {
                let pos = t.word + k as u32;
                if pos >= offset && ((pos - offset) as usize) < n {
                    buf[(pos - offset) as usize] &= b;
                }
            }
        }
        for b in &mut buf[..n] {
            *b = !*b;
        }
        Ok(n)
    }

    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        let i = self.find(id)?;
        let cap = u64::from(self.geo.capacity());
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > cap)
        {
            return Err(FlashError::new(
                StorageErrorKind::NoSpace,
                "write past the end of the area",
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        let w = self.geo.write as u32;
        let mut pos = offset as u32;
        let word = pos - pos % w;
        if self.tail.is_some_and(|t| t.area != i || t.word != word) {
            self.flush()?;
        }
        let mut rest = data;
        if !pos.is_multiple_of(w) {
            // Into a word begun earlier: waiting in RAM, or programmed in part by a sync (its
            // other bytes are 0xFF in the pattern, so programming them again changes nothing).
            let mut bytes = self.tail.take().map_or([0xFF; MAX_WORD], |t| t.bytes);
            let from = (pos - word) as usize;
            let k = (w as usize - from).min(rest.len());
            for (slot, b) in bytes[from..from + k].iter_mut().zip(rest) {
                *slot &= !b;
            }
            pos += k as u32;
            rest = &rest[k..];
            if pos == word + w {
                self.program_data(i, word, &bytes[..w as usize])?;
            } else {
                self.tail = Some(Tail {
                    area: i,
                    word,
                    bytes,
                });
                return Ok(());
            }
        }
        while rest.len() >= w as usize {
            let n = (rest.len() - rest.len() % w as usize).min(CHUNK);
            let mut chunk = [0u8; CHUNK];
            for (slot, b) in chunk[..n].iter_mut().zip(rest) {
                *slot = !b;
            }
            self.program_data(i, pos, &chunk[..n])?;
            pos += n as u32;
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            let mut bytes = [0xFF; MAX_WORD];
            for (slot, b) in bytes.iter_mut().zip(rest) {
                *slot = !b;
            }
            self.tail = Some(Tail {
                area: i,
                word: pos,
                bytes,
            });
        }
        Ok(())
    }

    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), FlashError> {
        let i = self.find(id)?;
        if len >= u64::from(self.geo.capacity()) {
            return Ok(());
        }
        let len = len as u32;
        if let Some(t) = self.tail.as_mut().filter(|t| t.area == i) {
            if t.word >= len {
                self.tail = None;
            } else {
                // `len` may lie past the word (a truncate that keeps everything written).
                let keep = (len - t.word).min(MAX_WORD as u32) as usize;
                t.bytes[keep..].fill(0xFF);
            }
        }
        if self.erased_from(i, len)? {
            return Ok(());
        }
        // Programmed bytes after the new end cannot be erased alone: copy what stays.
        self.flush()?;
        self.relocate(i, len)
    }

    fn sync(&mut self, id: SegmentId) -> Result<(), FlashError> {
        self.find(id)?;
        self.flush()
    }

    fn sync_dir(&mut self) -> Result<(), FlashError> {
        Ok(())
    }
}
