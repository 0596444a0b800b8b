//! Hostile input: offsets and lengths at the limits, headers the adapter did not write,
//! geometries it cannot use, and a driver that fails at any call.

use super::std::string::ToString;
use super::std::vec;
use super::std::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashErrorKind, ReadNorFlash,
};
use walden_core::{Config, Fixed, Lsn, Storage, StorageError, StorageErrorKind, SyncPolicy, Wal};
use walden_sim::NorSimError;

use super::{Flash, Nor, mount};
use crate::layout::{AREA_HEADER_LEN, AreaHeader, Geometry};
use crate::{FlashStorage, Layout, LayoutError, MountError};

/// The header the adapter writes under [`mount`]'s layout.
fn header(segment: u64, generation: u64) -> AreaHeader {
    let geo = Geometry::check(Layout::new(8, 1), 8, 8 * 512, 4, 1, 512).unwrap();
    AreaHeader {
        segment,
        generation,
        layout: geo.fingerprint(),
    }
}

/// Mounts `layout` on `nor`, which must fail; returns the error, having checked that mount
/// made no program or erase.
pub(super) fn refused(nor: &mut Nor, layout: Layout) -> MountError {
    let ops = nor.op_count();
    let r = FlashStorage::<&mut Nor, 8>::mount(&mut *nor, layout).map(|_| ());
    assert_eq!(nor.op_count(), ops, "mount wrote to the flash");
    r.expect_err("mount must refuse")
}

fn program_header(nor: &mut Nor, area: u32, bytes: &[u8; AREA_HEADER_LEN]) {
    nor.write(area * 512, bytes).unwrap();
}

#[test]
fn a_truncate_past_the_waiting_word_keeps_the_word() {
    let mut s = mount(Nor::new(8, 0));
    s.create(1).unwrap();
    s.write(1, 0, &[1, 2, 3, 4, 5, 6]).unwrap();
    s.truncate(1, 100).unwrap();
    s.sync(1).unwrap();
    let s = mount(s.into_inner());
    let mut buf = [0u8; 8];
    s.read(1, 0, &mut buf).unwrap();
    assert_eq!(buf, [1, 2, 3, 4, 5, 6, 0, 0]);
}

#[test]
fn offsets_near_u64_max_are_errors_not_overflows() {
    let mut s = mount(Nor::new(8, 0));
    s.create(1).unwrap();
    assert_eq!(
        s.write(1, u64::MAX, b"x").unwrap_err().kind(),
        StorageErrorKind::NoSpace
    );
    assert_eq!(
        s.write(1, u64::MAX - 2, b"xyz").unwrap_err().kind(),
        StorageErrorKind::NoSpace
    );
    let mut buf = [0u8; 4];
    assert_eq!(s.read(1, u64::MAX, &mut buf).unwrap(), 0);
    s.truncate(1, u64::MAX).unwrap();
    assert_eq!(
        s.into_inner().op_count(),
        2,
        "an erase and a header, nothing else"
    );
}

#[test]
fn generations_at_the_limit_are_errors_not_overflows() {
    for top in [u64::MAX, u64::MAX - 1] {
        let mut nor = Nor::new(8, 0);
        let header = header(7, top);
        program_header(&mut nor, 2, &header.encode());
        let mut s = mount(nor);
        // However many headers are programmed, none may take an existing generation.
        let mut created = 0;
        for id in 10..14 {
            match s.create(id) {
                Ok(()) => created += 1,
                Err(e) => assert_eq!(e.kind(), StorageErrorKind::Unsupported, "{e}"),
            }
        }
        assert_eq!(created, usize::from(top == u64::MAX - 1), "top {top}");
        let s = mount(s.into_inner());
        let mut ids = Vec::new();
        s.list(&mut |id| ids.push(id)).unwrap();
        ids.sort_unstable();
        assert_eq!(ids.first(), Some(&7), "the existing segment is kept");
        assert_eq!(ids.len(), 1 + created);
    }
}

#[test]
fn a_header_from_a_newer_version_is_refused_not_taken_for_free() {
    let mut nor = Nor::new(8, 0);
    let mut newer = header(3, 9).encode();
    newer[4] = 4;
    let crc = crate::layout::crc(&newer[..28]);
    newer[28..32].copy_from_slice(&crc.to_le_bytes());
    program_header(&mut nor, 5, &newer);
    assert_eq!(
        refused(&mut nor, Layout::new(8, 1)),
        MountError::UnsupportedVersion {
            area: 5,
            version: 4
        }
    );
    // Version 2 (a fingerprint without the erase and write sizes) is refused too.
    let mut v2 = header(3, 9).encode();
    v2[4] = 2;
    let crc = crate::layout::crc(&v2[..28]);
    v2[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut nor = Nor::new(8, 0);
    program_header(&mut nor, 1, &v2);
    assert_eq!(
        refused(&mut nor, Layout::new(8, 1)),
        MountError::UnsupportedVersion {
            area: 1,
            version: 2
        }
    );
    // Version 1 (segment data with no gaps at erase blocks) is refused too, not misread.
    let mut older = header(3, 9).encode();
    older[4] = 1;
    let crc = crate::layout::crc(&older[..28]);
    older[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut nor = Nor::new(8, 0);
    program_header(&mut nor, 2, &older);
    let e = refused(&mut nor, Layout::new(8, 1));
    assert_eq!(
        e,
        MountError::UnsupportedVersion {
            area: 2,
            version: 1
        }
    );
    // The message names the version found and the one this adapter reads (3), not 1.
    assert_eq!(
        e.to_string(),
        "flash area 2 holds an area header of version 1; this adapter reads and writes version 3 only"
    );
    // A torn program of a version-3 header (bits of the version byte left set) is still a
    // free area, not another version.
    let mut torn = header(3, 9).encode();
    torn[4] = 0x07;
    let mut nor = Nor::new(8, 0);
    program_header(&mut nor, 5, &torn);
    let s = mount(nor);
    assert_eq!(s.free_areas(), 8);
}

#[test]
fn two_copies_with_one_generation_are_refused_not_zeroed() {
    let mut nor = Nor::new(8, 0);
    let header = header(1, 5).encode();
    program_header(&mut nor, 0, &header);
    program_header(&mut nor, 3, &header);
    // Nothing written: no copy is zeroed that cannot be told to be the older.
    assert_eq!(
        refused(&mut nor, Layout::new(8, 1)),
        MountError::DuplicateSegment {
            segment: 1,
            generation: 5
        }
    );
}

#[test]
fn geometry_limits_are_layout_errors_not_overflows() {
    // Sizes whose products overflow u64.
    #[cfg(target_pointer_width = "64")]
    {
        let huge = 1usize << 62;
        let r = Geometry::check(Layout::new(4, 1), 4, usize::MAX, 4, 1, huge);
        assert!(matches!(r, Err(LayoutError::OutOfBounds { .. })), "{r:?}");
        let r = Geometry::check(Layout::new(4, u32::MAX), 4, usize::MAX, 4, 1, huge);
        assert!(matches!(r, Err(LayoutError::OutOfBounds { .. })), "{r:?}");
    }
    // A read word larger than an erase block: reads at the end of the last area would run off
    // the layout.
    let r = Geometry::check(Layout::new(4, 11), 4, 4 * 176, 1, 32, 16);
    assert!(matches!(r, Err(LayoutError::Geometry { .. })), "{r:?}");
    // Odd, zero and oversized words, and an erase size that is not a multiple of the word.
    for (write, read, erase) in [
        (0, 1, 512),
        (3, 1, 512),
        (4, 0, 512),
        (64, 1, 4096),
        (8, 1, 500),
        (4, 1, 0),
    ] {
        let r = Geometry::check(Layout::new(8, 1), 8, 1 << 20, write, read, erase);
        assert!(
            matches!(r, Err(LayoutError::Geometry { .. })),
            "{write} {read} {erase}: {r:?}"
        );
    }
    // A capacity that is not a multiple of the erase size: the layout fits or it does not.
    assert!(Geometry::check(Layout::new(8, 1), 8, 8 * 512 + 100, 4, 1, 512).is_ok());
    assert!(Geometry::check(Layout::new(8, 1), 8, 8 * 512 - 1, 4, 1, 512).is_err());
}

/// A flash whose driver fails at call `fail_at` (reads, programs and erases counted together).
#[derive(Clone)]
struct Failing {
    nor: Nor,
    calls: u64,
    fail_at: u64,
}

impl Failing {
    fn tick(&mut self) -> Result<(), NorSimError> {
        let n = self.calls;
        self.calls += 1;
        if n == self.fail_at {
            return Err(NorSimError {
                kind: NorFlashErrorKind::Other,
                power_off: false,
            });
        }
        Ok(())
    }
}

impl ErrorType for Failing {
    type Error = NorSimError;
}

impl ReadNorFlash for Failing {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorSimError> {
        self.tick()?;
        self.nor.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.nor.capacity()
    }
}

impl NorFlash for Failing {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 512;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorSimError> {
        self.tick()?;
        self.nor.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorSimError> {
        self.tick()?;
        self.nor.write(offset, bytes)
    }
}

impl MultiwriteNorFlash for Failing {}

type FailingWal = Wal<FlashStorage<Failing, 8>, Fixed<5>>;

fn payload(i: usize) -> Vec<u8> {
    (0..(i * 37) % 80 + 1).map(|k| (i * 7 + k) as u8).collect()
}

/// What a run with a failing driver left.
struct Outcome {
    /// Acknowledged records (LSN and payload).
    acked: Vec<(Lsn, Vec<u8>)>,
    /// Records below it may be gone (a truncate_front was asked for).
    front: Lsn,
    /// Records above it may be gone (a truncate_back failed).
    back: Lsn,
    nor: Nor,
    /// Whether a call failed.
    failed: bool,
}

/// Runs a workload that fails at driver call `fail_at`.
fn run_failing(nor: Nor, fail_at: u64) -> Outcome {
    let flash = Failing {
        nor,
        calls: 0,
        fail_at,
    };
    let mut acked = Vec::new();
    let mut front = Lsn(0);
    let mut back = Lsn(u64::MAX);
    let storage = match FlashStorage::<_, 8>::mount(flash, Layout::new(8, 1)) {
        Ok(s) => s,
        Err(MountError::Flash(e)) => {
            assert_eq!(e.flash(), Some(NorFlashErrorKind::Other));
            return Outcome {
                acked,
                front,
                back,
                nor: Nor::new(8, 0),
                failed: true,
            };
        }
        Err(e) => panic!("{e}"),
    };
    let config = Config::small_device(storage.segment_size());
    let mut scratch = [0u8; 256];
    let mut wal: FailingWal = match Wal::open(storage, config, &mut scratch) {
        Ok((wal, _)) => wal,
        Err(_) => {
            return Outcome {
                acked,
                front,
                back,
                nor: Nor::new(8, 0),
                failed: true,
            };
        }
    };
    let mut failed = false;
    for i in 0..40 {
        let p = payload(i);
        let r = match i {
            15 | 25 | 35 => {
                front = Lsn(wal.last_lsn().0 - 3);
                wal.truncate_front(front)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            31 => {
                let cut = Lsn(wal.last_lsn().0 - 2);
                let r = wal.truncate_back(cut).map_err(|e| e.to_string());
                if r.is_ok() {
                    acked.retain(|(lsn, _)| *lsn <= cut);
                } else {
                    back = cut;
                }
                r
            }
            _ => wal
                .append(&p)
                .map(|lsn| acked.push((lsn, p.clone())))
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = r {
            assert!(!e.is_empty());
            // A failed append poisons the log: nothing more is acknowledged. (A truncate_back
            // whose read fails changed nothing, and core does not poison it.)
            if !matches!(i, 15 | 25 | 31 | 35) {
                assert!(wal.append(b"after").is_err(), "step {i}: {e}: not poisoned");
                assert!(wal.sync().is_err(), "step {i}: {e}: a later sync succeeded");
            }
            failed = true;
            break;
        }
    }
    let nor = wal.into_storage().into_inner().nor;
    Outcome {
        acked,
        front,
        back,
        nor,
        failed,
    }
}

#[test]
fn a_driver_error_at_any_call_is_typed_and_loses_nothing_acknowledged() {
    // Count the calls of a run that does not fail.
    assert!(!run_failing(Nor::new(8, 0), u64::MAX).failed);
    let mut total = 0;
    loop {
        let Outcome {
            acked,
            front,
            back,
            nor,
            failed,
        } = run_failing(Nor::new(8, 0), total);
        if !failed {
            break;
        }
        total += 1;
        let storage = FlashStorage::<Nor, 8>::mount(nor, Layout::new(8, 1)).unwrap();
        let config = Config::small_device(storage.segment_size());
        let mut scratch = [0u8; 256];
        let (wal, _) = Wal::<_, Fixed<5>>::open(storage, config, &mut scratch)
            .unwrap_or_else(|e| panic!("call {}: reopen: {e}", total - 1));
        let mut reader = wal.reader(wal.first_lsn()).unwrap();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while let Some(r) = reader.next(&mut buf).unwrap() {
            got.push((r.lsn, r.payload.to_vec()));
        }
        for (lsn, p) in &acked {
            if *lsn >= front && *lsn <= back {
                assert!(
                    got.iter().any(|(l, q)| l == lsn && q == p),
                    "call {}: acknowledged {lsn} lost",
                    total - 1
                );
            }
        }
    }
    assert!(total > 100, "{total} calls");
}

#[test]
fn an_append_that_fits_no_area_is_refused() {
    let s: Flash = mount(Nor::new(8, 0));
    let config = Config::small_device(s.segment_size());
    let mut scratch = [0u8; 512];
    let (mut wal, _) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
    let largest = vec![0x5Au8; config.max_record_size as usize];
    let lsn = wal.append(&largest).unwrap();
    assert!(
        wal.append(&vec![1u8; config.max_record_size as usize + 1])
            .is_err()
    );
    let lsn2 = wal.append(&largest).unwrap();
    assert_eq!(lsn2, Lsn(lsn.0 + 1), "the refusal did not poison the log");
    let s = wal.into_storage();
    let (wal, report) =
        Wal::<_, Fixed<4>>::open(mount(s.into_inner()), config, &mut scratch).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), lsn2);
}

#[test]
fn a_log_written_with_another_layout_is_refused_not_cut() {
    // A log in 4 areas of 2 blocks from byte 1024, every record acknowledged, with its first
    // segment's records running into its area's second block.
    let mut scratch = [0u8; 512];
    let written = Layout::new(4, 2).at(1024);
    let s = FlashStorage::<Nor, 8>::mount(Nor::new(10, 0), written).unwrap();
    let config = Config::small_device(s.segment_size()).with_sync_policy(SyncPolicy::Always);
    let (mut wal, _) = Wal::<_, Fixed<1>>::open(s, config, &mut scratch).unwrap();
    for i in 0..9u8 {
        wal.append(&[i; 60]).unwrap();
    }
    let mut nor = wal.into_storage().into_inner();
    let ops = nor.op_count();
    // Mounted as 8 areas of one block, or one area earlier: the headers found are the
    // other layout's, so mount refuses rather than let recovery cut records 5..9 as a torn tail
    // and a later create erase the rest of the segment.
    for layout in [Layout::new(8, 1).at(1024), Layout::new(4, 2)] {
        let e = refused(&mut nor, layout);
        assert!(
            matches!(e, MountError::LayoutMismatch { .. }),
            "{layout:?}: {e:?}"
        );
    }
    // `try_mount` hands the flash back with the error (a driver may not be made twice), and
    // it mounts with the layout it was written with.
    let (e, nor) = FlashStorage::<Nor, 8>::try_mount(nor, Layout::new(8, 1).at(1024))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, MountError::LayoutMismatch { .. }), "{e:?}");
    let (e, nor) = FlashStorage::<Nor, 8>::try_mount(nor, Layout::new(0, 1))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, MountError::Layout(_)), "{e:?}");
    assert_eq!(nor.op_count(), ops, "mount wrote to the flash");
    let s = FlashStorage::<Nor, 8>::try_mount(nor, written)
        .map_err(|(e, _)| e)
        .unwrap();
    let (wal, report) = Wal::<_, Fixed<1>>::open(s, config, &mut scratch).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), Lsn(9));
}

#[test]
fn the_smallest_area_holds_the_largest_record_small_device_allows() {
    // 8-byte erase blocks: every one past the header holds 4 bytes of data (a 4-byte gap).
    type Tiny = walden_sim::NorSim<4, 8>;
    let too_small = FlashStorage::<Tiny, 8>::mount(Tiny::new(4 * 40, 0), Layout::new(4, 40));
    assert!(matches!(
        too_small.map(|_| ()),
        Err(MountError::Layout(LayoutError::AreaTooSmall { bytes: 320 }))
    ));
    let s = FlashStorage::<Tiny, 8>::mount(Tiny::new(5 * 41, 0), Layout::new(5, 41)).unwrap();
    assert_eq!(s.segment_capacity(), 148);
    let config = Config::small_device(s.segment_size());
    let mut scratch = [0u8; 256];
    let (mut wal, _) = Wal::<_, Fixed<2>>::open(s, config, &mut scratch).unwrap();
    let largest = vec![0xA5u8; config.max_record_size as usize];
    for _ in 0..6 {
        let lsn = wal.append(&largest).unwrap();
        wal.truncate_front(lsn).unwrap();
    }
    assert_eq!(wal.last_lsn(), Lsn(6));
}

#[test]
fn a_table_larger_than_the_areas_fails_typed_and_keeps_every_record() {
    // 8 areas hold 5 segments, two start slots and a spare; the table asks for 16.
    let s = mount(Nor::new(8, 0));
    let config = Config::small_device(s.segment_size());
    let mut scratch = [0u8; 512];
    let (mut wal, _) = Wal::<_, Fixed<16>>::open(s, config, &mut scratch).unwrap();
    let mut acked = Lsn(0);
    let error = loop {
        match wal.append(&[acked.0 as u8; 60]) {
            Ok(lsn) => acked = lsn,
            Err(e) => break e,
        }
    };
    assert!(error.to_string().contains("no free flash area"), "{error}");
    assert!(wal.append(b"x").is_err(), "poisoned");
    let s = mount(wal.into_storage().into_inner());
    let (wal, report) = Wal::<_, Fixed<16>>::open(s, config, &mut scratch).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), acked);
}

#[test]
fn flash_that_holds_zeros_or_noise_mounts_as_free() {
    let mut scratch = [0u8; 512];
    for noise in [false, true] {
        let mut nor = Nor::new(8, 0);
        let bytes: Vec<u8> = (0..8 * 512)
            .map(|k| if noise { (k * 7919 % 251) as u8 } else { 0 })
            .collect();
        nor.write(0, &bytes).unwrap();
        let s = mount(nor);
        assert_eq!(s.free_areas(), 8);
        let config = Config::small_device(s.segment_size());
        let (mut wal, _) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
        assert_eq!(wal.append(b"hello").unwrap(), Lsn(1));
    }
}

/// A flash that reads only aligned 8-byte words.
pub(super) struct WideReads(pub(super) Nor);

impl ErrorType for WideReads {
    type Error = NorSimError;
}

impl ReadNorFlash for WideReads {
    const READ_SIZE: usize = 8;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorSimError> {
        embedded_storage::nor_flash::check_read(self, offset, bytes.len()).map_err(|kind| {
            NorSimError {
                kind,
                power_off: false,
            }
        })?;
        self.0.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl NorFlash for WideReads {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 512;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorSimError> {
        self.0.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorSimError> {
        self.0.write(offset, bytes)
    }
}

impl MultiwriteNorFlash for WideReads {}

#[test]
fn a_flash_with_wide_read_words_reads_back_everything() {
    let s = FlashStorage::<_, 8>::mount(WideReads(Nor::new(8, 0)), Layout::new(8, 1)).unwrap();
    let config = Config::small_device(s.segment_size());
    let mut scratch = [0u8; 512];
    let (mut wal, _) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
    for i in 0..30 {
        wal.append(&payload(i)).unwrap();
        if i % 7 == 6 {
            wal.truncate_front(Lsn(wal.last_lsn().0 - 2)).unwrap();
        }
    }
    wal.truncate_back(Lsn(wal.last_lsn().0 - 1)).unwrap();
    let nor = wal.into_storage().into_inner();
    let s = FlashStorage::<_, 8>::mount(nor, Layout::new(8, 1)).unwrap();
    let (wal, report) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), Lsn(29));
    let mut reader = wal.reader(wal.first_lsn()).unwrap();
    let mut buf = [0u8; 256];
    while let Some(r) = reader.next(&mut buf).unwrap() {
        assert_eq!(r.payload, payload(r.lsn.0 as usize - 1));
    }
}

#[test]
fn a_batch_or_configuration_no_area_can_hold_is_refused_before_anything_is_written() {
    // `Config::small_device` limits a batch's payload to half an area's data space, but each
    // record also takes a 32-byte header: a batch of many 1-byte records within that limit
    // does not fit an area. The adapter reports an area's capacity
    // (`Storage::segment_capacity`), so core refuses such a batch before writing anything
    // and the log goes on; before, the batch failed part way with `NoSpace` and poisoned it.
    let s = mount(Nor::new(8, 0));
    let config = Config::small_device(s.segment_size());
    let mut scratch = [0u8; 512];
    let (mut wal, _) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
    wal.append(b"first").unwrap();
    let one = [1u8];
    let batch = vec![&one[..]; config.max_batch_size as usize];
    let e = wal.append_batch(&batch).unwrap_err();
    assert!(
        matches!(e, walden_core::AppendError::BatchDoesNotFit { .. }),
        "{e:?}"
    );
    assert_eq!(wal.poisoned(), None);
    assert_eq!(wal.append(b"second").unwrap(), Lsn(2));
    // The largest batch of 1-byte records that fits an empty area is taken.
    let fits = (config.segment_size as usize - 64) / 33;
    assert_eq!(wal.append_batch(&batch[..fits]).unwrap(), Lsn(3));
    let s = mount(wal.into_storage().into_inner());
    let (wal, report) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), Lsn(2 + fits as u64));

    // Segments larger than an area are refused at open, with nothing written.
    let s = mount(wal.into_storage().into_inner());
    let big = Config::small_device(s.segment_size() + 1);
    let e = Wal::<_, Fixed<4>>::open(s, big, &mut scratch).err();
    assert!(
        matches!(
            e,
            Some(walden_core::OpenError::Config(
                walden_core::ConfigError::LargerThanStorage { .. }
            ))
        ),
        "{e:?}"
    );
}
