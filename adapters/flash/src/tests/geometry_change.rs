//! A log mounted by a driver with another erase or write size than the one that wrote it: the
//! data inside each area lies elsewhere (a gap at every erase block, as wide as a write word
//! above 4 bytes), so mount must refuse it, not let recovery read it at the wrong offsets and
//! cut acknowledged records as a torn tail.

use super::std::format;
use super::std::string::String;

use embedded_storage::nor_flash::NorFlash;
use walden_core::{Config, Fixed, Lsn, SyncPolicy, Wal};
use walden_sim::NorSim;

use crate::{FlashStorage, Layout, MountError};

/// The same bytes on a flash of another geometry.
fn transplant<const W1: usize, const E1: usize, const W2: usize, const E2: usize>(
    from: &NorSim<W1, E1>,
) -> NorSim<W2, E2> {
    let bytes = from.contents();
    let mut to = NorSim::<W2, E2>::new(bytes.len() / E2, 0);
    to.write(0, bytes).unwrap();
    to
}

/// A log of `records` acknowledged 40-byte records; the flash and the last LSN.
fn write_log<const W: usize, const E: usize>(
    layout: Layout,
    blocks: usize,
    records: u8,
) -> (NorSim<W, E>, Lsn) {
    let s: FlashStorage<NorSim<W, E>, 8> =
        FlashStorage::mount(NorSim::<W, E>::new(blocks, 0), layout).unwrap();
    let config = Config::small_device(s.segment_size()).with_sync_policy(SyncPolicy::Always);
    let mut scratch = [0u8; 512];
    let (mut wal, _) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
    for i in 0..records {
        wal.append(&[i; 40]).unwrap();
    }
    let last = wal.durable_lsn();
    (wal.into_storage().into_inner(), last)
}

/// Mounts (must be refused, with nothing written) and says why.
fn refused<const W: usize, const E: usize>(mut nor: NorSim<W, E>, layout: Layout) -> MountError {
    let before = nor.op_count();
    match FlashStorage::<&mut NorSim<W, E>, 8>::try_mount(&mut nor, layout) {
        Ok(_) => panic!("mounted a log written with another geometry"),
        Err((e, _)) => {
            assert_eq!(nor.op_count(), before, "mount wrote to the flash");
            e
        }
    }
}

fn mismatch(e: &MountError) -> String {
    format!("{e:?}")
}

#[test]
fn another_write_size_above_four_bytes_is_refused() {
    let layout = Layout::new(6, 2);
    // LSN 3 lies past the first erase block of its area.
    let (nor, acked) = write_log::<4, 256>(layout, 12, 3);
    assert_eq!(acked, Lsn(3));
    let e = refused(transplant::<4, 256, 16, 256>(&nor), layout);
    assert!(
        matches!(e, MountError::LayoutMismatch { .. }),
        "{}",
        mismatch(&e)
    );
}

#[test]
fn another_erase_size_with_the_same_area_size_is_refused() {
    let (nor, _) = write_log::<4, 256>(Layout::new(6, 2), 12, 3);
    let e = refused(transplant::<4, 256, 4, 512>(&nor), Layout::new(6, 1));
    assert!(
        matches!(e, MountError::LayoutMismatch { .. }),
        "{}",
        mismatch(&e)
    );
}

#[test]
fn write_sizes_with_the_same_gap_read_each_others_logs() {
    let layout = Layout::new(6, 2);
    let (nor, acked) = write_log::<4, 256>(layout, 12, 5);
    let s: FlashStorage<NorSim<1, 256>, 8> =
        FlashStorage::mount(transplant::<4, 256, 1, 256>(&nor), layout).unwrap();
    let config = Config::small_device(s.segment_size());
    let mut scratch = [0u8; 512];
    let (wal, report) = Wal::<_, Fixed<4>>::open(s, config, &mut scratch).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), acked);
}
