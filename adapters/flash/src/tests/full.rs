//! A log whose segment table is larger than its areas allow, appended to until a create finds
//! no area it may take. Recovery cuts a torn tail by copying the segment into a free area, so
//! a create never takes the last one: after a power cut at any point on the way, and again
//! during recovery's own copy, the log opens with every acknowledged record.

use super::std::string::{String, ToString};
use super::std::vec::Vec;

use walden_core::{Config, Fixed, Lsn, Storage, StorageError, StorageErrorKind, SyncPolicy, Wal};

use super::{Nor, mount};
use crate::{FlashStorage, Layout};

/// 8 areas. The log never truncates its front, so it makes no start slots: seven segments and
/// the area kept for a truncate's copy.
const LAYOUT: Layout = Layout::new(8, 1);

/// A table of 16 segments, more than the areas hold.
type Full<'a> = Wal<FlashStorage<&'a mut Nor, 8>, Fixed<16>>;

/// Records acknowledged, with their payloads.
type Acked = Vec<(Lsn, Vec<u8>)>;

fn payload(i: usize) -> Vec<u8> {
    (0..60).map(|k| (i * 31 + k) as u8).collect()
}

fn open(nor: &mut Nor) -> Result<Full<'_>, String> {
    let s = FlashStorage::mount(nor, LAYOUT).map_err(|e| e.to_string())?;
    let config = Config::small_device(s.segment_size()).with_sync_policy(SyncPolicy::Always);
    let mut scratch = [0u8; 512];
    Wal::open(s, config, &mut scratch)
        .map(|(wal, _)| wal)
        .map_err(|e| e.to_string())
}

/// Appends 60-byte records to a new log until an append fails (no area left to take, or the
/// power cut); returns the records acknowledged and why it stopped.
fn fill(nor: &mut Nor) -> (Acked, String) {
    let mut acked = Vec::new();
    let mut wal = match open(nor) {
        Ok(wal) => wal,
        Err(e) => return (acked, e),
    };
    // Bounded: 8 areas of 512 bytes hold far fewer records.
    for i in 0..100 {
        let p = payload(i);
        match wal.append(&p) {
            Ok(lsn) => acked.push((lsn, p)),
            Err(e) => return (acked, e.to_string()),
        }
    }
    (acked, "the flash never filled".into())
}

/// Opens the log and reads it whole.
fn recover(nor: &mut Nor) -> Result<Acked, String> {
    let wal = open(nor)?;
    let mut reader = wal.reader(wal.first_lsn()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    while let Some(r) = reader.next(&mut buf).map_err(|e| e.to_string())? {
        got.push((r.lsn, r.payload.to_vec()));
    }
    Ok(got)
}

/// Every acknowledged record is there, and nothing but them and the one being appended.
fn keeps(acked: &Acked, got: &Acked) -> Result<(), String> {
    let prefix = got.len() >= acked.len() && got[..acked.len()] == acked[..];
    let at_most_one_more = got.len() <= acked.len() + 1
        && got
            .get(acked.len())
            .is_none_or(|(lsn, p)| lsn.0 == acked.len() as u64 + 1 && *p == payload(acked.len()));
    if prefix && at_most_one_more {
        Ok(())
    } else {
        Err(super::std::format!(
            "{} acknowledged, recovered LSN {:?}",
            acked.len(),
            got.iter().map(|r| r.0.0).collect::<Vec<_>>()
        ))
    }
}

#[test]
fn create_keeps_the_last_free_area_for_a_truncate_to_copy_into() {
    let mut s = mount(Nor::new(8, 0));
    for id in 1..8 {
        s.create(id).unwrap();
    }
    assert_eq!(s.free_areas(), 1);
    let e = s.create(8).unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::NoSpace, "{e}");
    assert!(e.to_string().contains("no free flash area"), "{e}");
    // The last segment created gets a torn tail; the kept area takes the copy that cuts it.
    s.write(7, 0, &[3; 100]).unwrap();
    s.sync(7).unwrap();
    s.truncate(7, 40).unwrap();
    assert_eq!(s.free_areas(), 1, "the old area was freed by the copy");
    let mut buf = [0u8; 100];
    s.read(7, 0, &mut buf).unwrap();
    assert_eq!(buf[..40], [3; 40]);
    assert_eq!(buf[40..], [0; 60]);
    // Once a segment is removed its area can be taken.
    s.remove(1).unwrap();
    s.create(8).unwrap();
    assert_eq!(s.free_areas(), 1);
}

#[test]
fn a_log_filled_to_the_last_area_opens_after_a_power_cut_anywhere() {
    let mut nor = Nor::new(8, 0);
    let (acked, why) = fill(&mut nor);
    assert!(why.contains("no free flash area"), "{why}");
    assert!(acked.len() > 20, "{} records", acked.len());
    let total = nor.op_count();
    assert_eq!(recover(&mut nor.clone()), Ok(acked), "clean reopen");

    let mut states = 0;
    let mut repaired = 0;
    let mut failures = Vec::new();
    for op in 0..total {
        let mut nor = Nor::new(8, 0);
        nor.crash_after(op);
        let (acked, _) = fill(&mut nor);
        for fate in nor.crash_states(8) {
            states += 1;
            let crashed = nor.crash(fate);
            let case = |why: String| super::std::format!("op {op} {fate}: {why}");
            let mut first = crashed.clone();
            let recovered = recover(&mut first);
            let got = match recovered.and_then(|got| keeps(&acked, &got).map(|()| got)) {
                Ok(got) => got,
                Err(why) => {
                    failures.push(case(why));
                    continue;
                }
            };
            // The power cut again during each of recovery's own programs and erases (the
            // copy into the kept area, the headers): the same log opens.
            let repairs = first.op_count();
            repaired += usize::from(repairs > 0);
            for k in 0..repairs {
                let mut again = crashed.clone();
                again.crash_after(k);
                let _ = recover(&mut again);
                for fate2 in again.crash_states(4) {
                    let mut twice = again.crash(fate2);
                    match recover(&mut twice) {
                        Ok(got2) if got2 == got => {}
                        Ok(got2) => failures.push(case(super::std::format!(
                            "a cut in recovery's op {k} ({fate2}): {} records, not {}",
                            got2.len(),
                            got.len()
                        ))),
                        Err(why) => failures.push(case(super::std::format!(
                            "a cut in recovery's op {k} ({fate2}): {why}"
                        ))),
                    }
                }
            }
        }
    }
    for f in failures.iter().take(5) {
        super::std::println!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {states} crash states fail",
        failures.len()
    );
    // The sweep reached the states the tail copy is for.
    assert!(repaired > 10, "{repaired} states repaired");
    assert_eq!(mount(nor).free_areas(), 1, "all areas but one used");
}
