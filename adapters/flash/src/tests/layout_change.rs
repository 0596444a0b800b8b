//! A layout changed over an existing log: mount must find the old log's area headers wherever
//! they fall under the new layout, and refuse before anything is erased.

use super::std::format;
use super::std::string::{String, ToString};
use super::std::vec::Vec;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use walden_core::{Config, Fixed, Lsn, Storage, SyncPolicy, Wal};
use walden_sim::NorOp;

use super::Nor;
use super::hostile::{WideReads, refused};
use crate::layout::{AREA_HEADER_LEN, AreaHeader, Geometry};
use crate::{FlashStorage, Layout, MountError};

const BLOCK: u32 = 512;

type Log = Wal<FlashStorage<Nor, 8>, Fixed<4>>;

fn open(nor: Nor, layout: Layout) -> Result<Log, String> {
    let s = FlashStorage::<Nor, 8>::mount(nor, layout).map_err(|e| format!("mount: {e}"))?;
    let config = Config::small_device(s.segment_size()).with_sync_policy(SyncPolicy::Always);
    let mut scratch = [0u8; 512];
    Wal::open(s, config, &mut scratch)
        .map(|(wal, _)| wal)
        .map_err(|e| format!("open: {e}"))
}

/// Appends `records` records, keeping the last two every five (so the log's areas move on).
fn run(wal: &mut Log, records: u8) -> Result<(), String> {
    for i in 0..records {
        wal.append(&[i; 60]).map_err(|e| format!("append: {e}"))?;
        if i % 5 == 4 {
            wal.truncate_front(Lsn(wal.last_lsn().0 - 1))
                .map_err(|e| format!("truncate_front: {e}"))?;
        }
    }
    Ok(())
}

/// The erase blocks of the areas of `layout` that hold a segment or a start slot.
fn held_blocks(nor: &Nor, layout: Layout) -> Vec<u32> {
    let area = layout.blocks_per_area * BLOCK;
    (0..layout.areas)
        .map(|i| layout.base + i * area)
        .filter(|&at| {
            let raw = &nor.contents()[at as usize..at as usize + AREA_HEADER_LEN];
            AreaHeader::decode(raw.try_into().unwrap()).is_some()
        })
        .flat_map(|at| (0..layout.blocks_per_area).map(move |b| at / BLOCK + b))
        .collect()
}

/// Mounts `new` over the log `old` wrote, which must be refused with nothing written. Were it
/// mounted, a log is run there, and the panic says what of the old one it erased.
fn refused_over(nor: Nor, old: Layout, new: Layout) -> Nor {
    let held = held_blocks(&nor, old);
    let ops = nor.op_count();
    let nor = match FlashStorage::<Nor, 8>::try_mount(nor, new) {
        Err((e, nor)) => {
            let MountError::LayoutMismatch { offset, .. } = e else {
                panic!("{new:?}: {e:?}");
            };
            assert!(held.contains(&(offset / BLOCK)), "{new:?}: {e:?}");
            assert!(e.to_string().contains("erase"), "{e}");
            assert_eq!(nor.op_count(), ops, "mount wrote to the flash");
            return nor;
        }
        Ok(s) => s.into_inner(),
    };
    let mut wal = open(nor, new).unwrap();
    let ran = run(&mut wal, 60);
    let nor = wal.into_storage().into_inner();
    let erased: Vec<u32> = nor.trace()[ops as usize..]
        .iter()
        .filter_map(|op| match op {
            NorOp::Erase { from, to } => Some(from / BLOCK..to / BLOCK),
            NorOp::Program { .. } => None,
        })
        .flatten()
        .filter(|b| held.contains(b))
        .collect();
    let old_log = open(nor, old).map(|wal| wal.last_lsn());
    panic!(
        "{new:?} mounted over a log written with {old:?} in blocks {held:?}; a log run there \
         ({ran:?}) erased blocks {erased:?} of them, and the old log now opens as {old_log:?}"
    );
}

#[test]
fn a_log_whose_headers_fall_inside_the_new_areas_is_refused_not_erased() {
    // Old area starts that are not new area starts: 1-block areas under 4-block ones, and
    // 2-block areas under 2-block ones one block later. Retention has moved each log away
    // from the first areas, so no header sits at a new area start (blocks 5, 6, 7 under
    // 0, 4, 8, 12; blocks 4, 6, 8 under 1, 3, 5, 7, 9).
    for (blocks, old, new) in [
        (16, Layout::new(8, 1), Layout::new(4, 4)),
        (12, Layout::new(6, 2), Layout::new(5, 2).at(BLOCK)),
    ] {
        let mut wal = open(Nor::new(blocks, 0), old).unwrap();
        run(&mut wal, 20).unwrap();
        let last = wal.last_lsn();
        let nor = wal.into_storage().into_inner();
        let nor = refused_over(nor, old, new);
        // With its own layout the old log is all there.
        let wal = open(nor, old).unwrap();
        assert_eq!(wal.last_lsn(), last, "{old:?}");
    }
}

#[test]
fn a_log_beside_the_region_is_neither_refused_nor_touched() {
    // Two logs on one flash, each in its own region: only the region mounted is looked at.
    let old = Layout::new(8, 1);
    let mut wal = open(Nor::new(16, 0), old).unwrap();
    run(&mut wal, 20).unwrap();
    let last = wal.last_lsn();
    let beside = Layout::new(8, 1).at(8 * BLOCK);
    let mut other = open(wal.into_storage().into_inner(), beside).unwrap();
    run(&mut other, 60).unwrap();
    let other_last = other.last_lsn();
    let nor = other.into_storage().into_inner();
    let wal = open(nor, old).unwrap();
    assert_eq!(wal.last_lsn(), last);
    let other = open(wal.into_storage().into_inner(), beside).unwrap();
    assert_eq!(other.last_lsn(), other_last);
}

#[test]
fn a_header_inside_a_free_area_is_refused_and_a_payload_never_lands_on_one() {
    let layout = Layout::new(8, 2);
    let geo = Geometry::check(layout, 8, 16 * BLOCK as usize, 4, 1, BLOCK as usize).unwrap();
    let header = AreaHeader {
        segment: 3,
        generation: 1,
        layout: geo.fingerprint() ^ 1,
    }
    .encode();
    let inverted = header.map(|b| !b);
    // A payload that is a header inverted, written so that it would start on the segment's
    // second erase block: the data skips the gap there, so the flash holds it 4 bytes on.
    let mut s = FlashStorage::<Nor, 8>::mount(Nor::new(16, 0), layout).unwrap();
    s.create(1).unwrap();
    let at = u64::from(BLOCK) - AREA_HEADER_LEN as u64;
    s.write(1, at, &inverted).unwrap();
    s.sync(1).unwrap();
    let mut raw = [0u8; AREA_HEADER_LEN];
    s.flash_mut().read(BLOCK, &mut raw).unwrap();
    assert_eq!(raw[..4], [0xFF; 4], "the gap is never programmed");
    let mut s = FlashStorage::<Nor, 8>::mount(s.into_inner(), layout).unwrap();
    let mut back = [0u8; AREA_HEADER_LEN];
    assert_eq!(s.read(1, at, &mut back).unwrap(), AREA_HEADER_LEN);
    assert_eq!(back, inverted);
    // Removed, the area is free: no payload is on an erase block, so the mount that used to
    // refuse here (a payload crafted as an area header) finds nothing.
    s.remove(1).unwrap();
    let nor = s.into_inner();
    let s = FlashStorage::<Nor, 8>::mount(nor.clone(), layout).unwrap();
    assert_eq!(s.free_areas(), 8);
    let s = FlashStorage::<_, 8>::mount(WideReads(nor), layout).unwrap();
    assert_eq!(s.free_areas(), 8);
    // Another layout's header on an erase block inside a free area is still refused, in
    // aligned 8-byte reads too.
    let mut nor = Nor::new(16, 0);
    nor.write(BLOCK, &header).unwrap();
    let e = refused(&mut nor, layout);
    assert_eq!(
        e,
        MountError::LayoutMismatch {
            area: 0,
            offset: BLOCK
        }
    );
    let r = FlashStorage::<_, 8>::mount(WideReads(nor.clone()), layout).map(|_| ());
    assert_eq!(r.err(), Some(e));
    // A header of another version at an erase block inside a free area is another layout's
    // too.
    let mut nor = Nor::new(16, 0);
    let mut newer = header;
    newer[4] = 2;
    let crc = crate::layout::crc(&newer[..28]);
    newer[28..32].copy_from_slice(&crc.to_le_bytes());
    nor.write(5 * BLOCK, &newer).unwrap();
    assert_eq!(
        refused(&mut nor, layout),
        MountError::LayoutMismatch {
            area: 2,
            offset: 5 * BLOCK
        }
    );
}
