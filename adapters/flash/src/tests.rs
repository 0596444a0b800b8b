pub(crate) extern crate std;

use std::vec::Vec;

use walden_core::{Config, Fixed, Lsn, Storage, StorageError, SyncPolicy, Wal};
use walden_sim::NorSim;

use crate::{FlashStorage, Layout};

type Nor = NorSim<4, 512>;
type Flash = FlashStorage<Nor, 8>;

fn mount(nor: Nor) -> Flash {
    FlashStorage::mount(nor, Layout::new(8, 1)).expect("mount")
}

#[test]
fn erased_space_reads_as_zeros_and_partial_words_wait_for_sync() {
    let mut s = mount(Nor::new(8, 1));
    s.create(5).unwrap();
    let mut buf = [0xAAu8; 16];
    assert_eq!(s.read(5, 0, &mut buf).unwrap(), 16);
    assert_eq!(buf, [0; 16], "erased flash is zeros to core");
    assert_eq!(s.len(5).unwrap(), 512 - 32);
    s.write(5, 0, &[1, 2, 3, 4, 5, 6]).unwrap();
    s.write(5, 6, &[0xFF, 0, 9]).unwrap();
    s.read(5, 0, &mut buf).unwrap();
    assert_eq!(
        buf[..10],
        [1, 2, 3, 4, 5, 6, 0xFF, 0, 9, 0],
        "RAM tail visible to reads"
    );
    // Without a sync the last partial word is lost, as a power cut would lose it.
    let unsynced = mount(s.into_inner());
    unsynced.read(5, 0, &mut buf).unwrap();
    assert_eq!(buf[..10], [1, 2, 3, 4, 5, 6, 0xFF, 0, 0, 0]);
    let mut s = unsynced;
    s.write(5, 8, &[9]).unwrap();
    s.sync(5).unwrap();
    s.write(5, 9, &[10, 11, 12, 13]).unwrap();
    s.sync(5).unwrap();
    let nor = s.into_inner();
    assert_eq!(nor.misuse(), 0, "only bits still set were programmed");
    let s = mount(nor);
    s.read(5, 0, &mut buf).unwrap();
    assert_eq!(buf[..14], [1, 2, 3, 4, 5, 6, 0xFF, 0, 9, 10, 11, 12, 13, 0]);
}

#[test]
fn a_clean_reopen_writes_nothing_and_reports_nothing() {
    let mut s = mount(Nor::new(8, 2));
    let config = Config::small_device(s.segment_size()).with_sync_policy(SyncPolicy::Always);
    let mut scratch = [0u8; 256];
    let (mut wal, _) =
        Wal::<_, Fixed<4>>::open(mount(s.into_inner()), config, &mut scratch).unwrap();
    for i in 0..15u8 {
        wal.append(&[i; 37]).unwrap();
    }
    s = wal.into_storage();
    let nor = s.into_inner();
    let before = nor.op_count();
    let (wal, report) = Wal::<_, Fixed<4>>::open(mount(nor), config, &mut scratch).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.last_lsn, Lsn(15));
    let nor = wal.into_storage().into_inner();
    assert_eq!(
        nor.op_count(),
        before,
        "recovery programmed or erased something"
    );
}

#[test]
fn truncate_copies_into_a_spare_area_and_mount_keeps_the_newest_copy() {
    let mut s = mount(Nor::new(8, 3));
    s.create(1).unwrap();
    s.write(1, 0, &[7; 100]).unwrap();
    s.sync(1).unwrap();
    s.truncate(1, 50).unwrap();
    let mut buf = [0u8; 100];
    s.read(1, 0, &mut buf).unwrap();
    assert_eq!(buf[..50], [7; 50]);
    assert_eq!(buf[50..], [0; 50]);
    s.write(1, 50, &[8; 10]).unwrap();
    s.sync(1).unwrap();
    let nor = s.into_inner();
    assert_eq!(nor.misuse(), 0);
    // Power cut between the copy's header and the old header's zeroing: two copies.
    let mut half = nor.clone();
    let ops = half.op_count();
    half.crash_after(ops + 3); // erase, program the copy, program its header; not the zeroing
    let mut s = mount(half);
    assert!(s.truncate(1, 20).is_err());
    let nor = s.into_inner().crash(walden_sim::NorFate::Untouched);
    let s = mount(nor);
    let mut ids = Vec::new();
    s.list(&mut |id| ids.push(id)).unwrap();
    assert_eq!(ids, [1], "one copy after mount");
    s.read(1, 0, &mut buf).unwrap();
    assert_eq!(buf[..20], [7; 20]);
    assert_eq!(buf[20..], [0; 80], "the newer, truncated copy won");
}

#[test]
fn bad_layouts_and_missing_segments_are_typed_errors() {
    assert!(matches!(
        FlashStorage::<Nor, 4>::mount(Nor::new(8, 0), Layout::new(8, 1)),
        Err(crate::MountError::Layout(_))
    ));
    let mut s = mount(Nor::new(8, 0));
    assert_eq!(
        s.write(3, 0, b"x").unwrap_err().kind(),
        walden_core::StorageErrorKind::NotFound
    );
    s.create(3).unwrap();
    assert_eq!(
        s.create(3).unwrap_err().kind(),
        walden_core::StorageErrorKind::AlreadyExists
    );
    assert_eq!(
        s.write(3, 470, &[0; 20]).unwrap_err().kind(),
        walden_core::StorageErrorKind::NoSpace
    );
    // Seven areas of eight: the last is kept for a truncate's copy.
    for id in 10..16 {
        s.create(id).unwrap();
    }
    assert_eq!(
        s.create(99).unwrap_err().kind(),
        walden_core::StorageErrorKind::NoSpace
    );
}

#[test]
fn each_area_takes_the_ram_the_documentation_says() {
    // README and `FlashStorage`: 32 bytes per area of the table, an `Option<AreaHeader>` (two
    // u64s and a u32, 8-byte aligned as on a Cortex-M; the library checks "at most 32" for
    // every target it is built for).
    use core::mem::{align_of, size_of};
    if align_of::<u64>() == 8 {
        assert_eq!(size_of::<Option<crate::layout::AreaHeader>>(), 32);
        assert_eq!(size_of::<FlashStorage<Nor, 9>>() - size_of::<Flash>(), 32);
    }
}

mod full;
mod geometry_change;
mod hostile;
mod layout_change;
