//! Storage that lies: a wrapper around [`Mem`] that fails at a chosen call, returns short or
//! over-long reads, reports lengths that change, and lists ids twice, out of order or for
//! segments that are gone. Core must answer with a typed error, never panic or loop, and never
//! cut or remove what was acknowledged.

use core::cell::{Cell, RefCell};
use std::rc::Rc;

use super::mem::MemError;
use super::{Mem, payload, policies, small};
use crate::inspect::inspect;
use crate::raw::{is_start_slot, scan_segment};
use crate::{Config, Fixed, Lsn, OpenError, ReadError, SegmentId, Storage, StorageErrorKind, Wal};

/// How a [`Liar`] lies. Every call (of any method) counts; `fail_from` fails that call and,
/// with `fail_sticky`, every later one.
#[derive(Clone, Copy, Default)]
struct Lies {
    fail_from: Option<u64>,
    fail_sticky: bool,
    /// `read` claims this many bytes more than it copied.
    read_extra: usize,
    /// `read` copies at most this many bytes (0: no limit).
    read_at_most: usize,
    /// `len` of every segment is off by this much, alternating sign between calls.
    len_jitter: u64,
    /// Reads of this segment end at this offset (0 bytes there and beyond) though `len` says more.
    read_ends_at: Option<(SegmentId, u64)>,
    /// `list` reports every id twice, newest first, and this id, which does not exist.
    list_ghost: Option<SegmentId>,
}

#[derive(Clone)]
struct Liar {
    /// Shared, so a test sees the storage after an open that failed.
    mem: Rc<RefCell<Mem>>,
    lies: Lies,
    calls: Cell<u64>,
    /// The segment of the first call failed (`Some(None)`: a call on the directory).
    failed_on: Cell<Option<Option<SegmentId>>>,
}

impl Liar {
    fn new(mem: Mem, lies: Lies) -> Self {
        Self {
            mem: Rc::new(RefCell::new(mem)),
            lies,
            calls: Cell::new(0),
            failed_on: Cell::new(None),
        }
    }

    /// Counts a call; fails it if the lies say so.
    fn call(&self, id: Option<SegmentId>) -> Result<(), MemError> {
        let n = self.calls.get();
        // Core calls the storage a bounded number of times: far fewer than this.
        assert!(n < 100_000, "endless loop: {n} storage calls");
        self.calls.set(n + 1);
        match self.lies.fail_from {
            Some(at) if n == at || (self.lies.fail_sticky && n > at) => {
                self.failed_on.set(Some(id));
                Err(MemError(StorageErrorKind::Io))
            }
            _ => Ok(()),
        }
    }
}

impl Storage for Liar {
    type Error = MemError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), MemError> {
        self.call(None)?;
        if let Some(ghost) = self.lies.list_ghost {
            each(ghost);
            self.mem.borrow().files.keys().rev().for_each(|k| each(*k));
        }
        self.mem.borrow().list(each)
    }
    fn create(&mut self, id: SegmentId) -> Result<(), MemError> {
        self.call(Some(id))?;
        self.mem.borrow_mut().create(id)
    }
    fn remove(&mut self, id: SegmentId) -> Result<(), MemError> {
        self.call(Some(id))?;
        self.mem.borrow_mut().remove(id)
    }
    fn len(&self, id: SegmentId) -> Result<u64, MemError> {
        self.call(Some(id))?;
        let len = self.mem.borrow().len(id)?;
        let j = self.lies.len_jitter;
        Ok(if self.calls.get().is_multiple_of(2) {
            len + j
        } else {
            len.saturating_sub(j)
        })
    }
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        self.call(Some(id))?;
        let at_most = match self.lies.read_at_most {
            0 => buf.len(),
            m => m.min(buf.len()),
        };
        let at_most = match self.lies.read_ends_at {
            Some((seg, end)) if seg == id => {
                at_most.min(usize::try_from(end.saturating_sub(offset)).unwrap_or(usize::MAX))
            }
            _ => at_most,
        };
        let n = self.mem.borrow().read(id, offset, &mut buf[..at_most])?;
        Ok(if n == 0 { 0 } else { n + self.lies.read_extra })
    }
    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), MemError> {
        self.call(Some(id))?;
        self.mem.borrow_mut().write(id, offset, data)
    }
    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        self.call(Some(id))?;
        self.mem.borrow_mut().truncate(id, len)
    }
    fn sync(&mut self, id: SegmentId) -> Result<(), MemError> {
        self.call(Some(id))?;
        self.mem.borrow_mut().sync(id)
    }
    fn sync_dir(&mut self) -> Result<(), MemError> {
        self.call(None)?;
        self.mem.borrow_mut().sync_dir()
    }
    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        self.call(Some(id))?;
        self.mem.borrow_mut().reserve(id, len)
    }
}

type LiarWal = Wal<Liar, Fixed<16>>;

const RECORDS: u64 = 30;

/// A log of [`RECORDS`] records over several segments, every one acknowledged.
fn acknowledged() -> Mem {
    let (mut wal, _) = super::open(Mem::default(), small());
    for i in 1..=RECORDS {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
    assert!(wal.segments().len() > 2);
    wal.into_storage()
}

/// Every record of `mem` from `from` to `to`, read back over an honest storage.
fn holds(mem: &Mem, from: u64, to: u64) {
    let (wal, _) = super::open(mem.clone(), small());
    let got = super::all(&wal);
    for i in from..=to {
        assert!(
            got.iter().any(|(lsn, p)| *lsn == i && *p == payload(i)),
            "record {i} lost"
        );
    }
}

fn open_liar(mem: Mem, lies: Lies, cfg: Config) -> Result<LiarWal, OpenError<MemError>> {
    let mut scratch = [0u8; 512];
    Wal::open(Liar::new(mem, lies), cfg, &mut scratch).map(|(wal, _)| wal)
}

/// How many storage calls `run` makes over an honest liar.
fn calls_of(run: impl Fn(&Liar)) -> u64 {
    let liar = Liar::new(acknowledged(), Lies::default());
    run(&liar);
    liar.calls.get()
}

/// Every record from the first, or the first error.
fn read_all(wal: &LiarWal) -> Result<u64, ReadError<MemError>> {
    let mut r = wal.reader(wal.first_lsn())?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while r.next(&mut buf)?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[test]
// Hundreds of opens each: minutes under Miri, for code without `unsafe` (scripts/miri.sh).
#[cfg_attr(miri, ignore)]
fn a_failure_at_any_call_of_recovery_is_an_error_and_cuts_nothing() {
    for &policy in policies() {
        let cfg = small().with_recovery(policy);
        let total = {
            let wal = open_liar(acknowledged(), Lies::default(), cfg).unwrap();
            wal.storage().calls.get()
        };
        for at in 0..total {
            for sticky in [false, true] {
                let lies = Lies {
                    fail_from: Some(at),
                    fail_sticky: sticky,
                    ..Lies::default()
                };
                let mut scratch = [0u8; 512];
                let liar = Liar::new(acknowledged(), lies);
                let mem = liar.mem.clone();
                match Wal::<Liar, Fixed<16>>::open(liar, cfg, &mut scratch) {
                    Ok((wal, _)) => assert_eq!(wal.last_lsn(), Lsn(RECORDS), "call {at}"),
                    Err(OpenError::Storage(_)) => {}
                    Err(e) => panic!("call {at} sticky {sticky}: {e:?}"),
                }
                holds(&mem.borrow(), 1, RECORDS);
            }
        }
    }
}

#[test]
// Hundreds of opens each: minutes under Miri, for code without `unsafe` (scripts/miri.sh).
#[cfg_attr(miri, ignore)]
fn a_failure_at_any_call_of_inspection_or_a_scan_is_an_error() {
    let cfg = small();
    let inspecting = |liar: &Liar| {
        let mut scratch = [0u8; 512];
        inspect::<_, Fixed<16>>(liar, &cfg, &mut scratch, &mut |_| {}).map(|_| ())
    };
    let scanning = |liar: &Liar| {
        let mut scratch = [0u8; 512];
        (0..4)
            .try_for_each(|id| scan_segment(liar, id, &cfg, &mut scratch).map(|_| ()))
            .map_err(|_| ())
    };
    for at in 0..calls_of(|l| inspecting(l).unwrap()) {
        let liar = Liar::new(
            acknowledged(),
            Lies {
                fail_from: Some(at),
                ..Lies::default()
            },
        );
        match inspecting(&liar) {
            Err(crate::inspect::InspectError::Storage(_)) => {}
            // A start slot that cannot be read counts as absent (`plan::read_start`).
            Ok(()) if liar.failed_on.get().flatten().is_some_and(is_start_slot) => {}
            got => panic!("call {at}: {got:?}"),
        }
    }
    for at in 0..calls_of(|l| scanning(l).unwrap()) {
        let liar = Liar::new(
            acknowledged(),
            Lies {
                fail_from: Some(at),
                ..Lies::default()
            },
        );
        assert!(scanning(&liar).is_err(), "call {at}");
    }
}

/// The open log over `acknowledged()`, failing from its `k`-th call after the open.
fn failing_after_open(k: u64, sticky: bool) -> LiarWal {
    let mut wal = open_liar(acknowledged(), Lies::default(), small()).unwrap();
    let base = wal.storage().calls.get();
    wal.storage_for_tests().lies = Lies {
        fail_from: Some(base + k),
        fail_sticky: sticky,
        ..Lies::default()
    };
    wal
}

#[test]
// Hundreds of opens each: minutes under Miri, for code without `unsafe` (scripts/miri.sh).
#[cfg_attr(miri, ignore)]
fn a_failure_at_any_call_of_reads_and_truncations_is_an_error() {
    for k in 0..40 {
        let wal = failing_after_open(k, true);
        let mut buf = [0u8; 64];
        if let Err(e) = read_all(&wal) {
            assert!(matches!(e, ReadError::Storage(_)), "call {k}: {e:?}");
        }
        if let Err(e) = wal.read(Lsn(17), &mut buf) {
            assert!(matches!(e, ReadError::Storage(_)), "call {k}: {e:?}");
        }

        let mut wal = failing_after_open(k, false);
        let _ = wal.truncate_front(Lsn(12));
        holds(&wal.into_storage().mem.borrow(), 12, RECORDS);
        let mut wal = failing_after_open(k, false);
        let _ = wal.truncate_back(Lsn(12));
        holds(&wal.into_storage().mem.borrow(), 1, 12);
    }
}

#[test]
// Hundreds of opens each: minutes under Miri, for code without `unsafe` (scripts/miri.sh).
#[cfg_attr(miri, ignore)]
fn a_failure_at_any_call_of_appends_and_rotation_keeps_what_was_acknowledged() {
    for k in 0..60 {
        let mut wal = failing_after_open(k, false);
        let mut acked = RECORDS;
        for i in RECORDS + 1..RECORDS + 20 {
            let Ok(lsn) = wal.append(&payload(i)) else {
                break;
            };
            if wal.sync().is_err() {
                break;
            }
            acked = lsn.0;
        }
        holds(&wal.into_storage().mem.borrow(), 1, acked);
    }
}

#[test]
fn reads_longer_than_the_buffer_are_not_trusted() {
    // Under Miri (half a minute for the three) the smallest and the largest lie.
    let extras: &[usize] = if cfg!(miri) {
        &[1, 4096]
    } else {
        &[1, 7, 4096]
    };
    for &extra in extras {
        let lies = Lies {
            read_extra: extra,
            ..Lies::default()
        };
        let mut scratch = [0u8; 512];
        let liar = Liar::new(acknowledged(), lies);
        let ins = inspect::<_, Fixed<16>>(&liar, &small(), &mut scratch, &mut |_| {}).unwrap();
        assert_eq!(ins.valid_through, Lsn(RECORDS));
        assert!(
            scan_segment(&liar, 1, &small(), &mut scratch)
                .unwrap()
                .is_some()
        );
        // The bytes the adapter copied are the segment's: everything reads back as written.
        let mut wal = open_liar(acknowledged(), lies, small()).unwrap();
        assert_eq!(read_all(&wal).unwrap(), RECORDS);
        wal.truncate_back(Lsn(20)).unwrap();
        if cfg!(feature = "start-slots") {
            wal.truncate_front(Lsn(5)).unwrap();
        }
        assert!(wal.first_lsn() <= Lsn(5));
        assert_eq!(read_all(&wal).unwrap(), 21 - wal.first_lsn().0);
        for &policy in policies() {
            let liar = Liar::new(acknowledged(), lies);
            let mem = liar.mem.clone();
            let _ = Wal::<Liar, Fixed<16>>::open(liar, small().with_recovery(policy), &mut scratch);
            holds(&mem.borrow(), 1, RECORDS);
        }
    }
}

#[test]
// Hundreds of opens each: minutes under Miri, for code without `unsafe` (scripts/miri.sh).
#[cfg_attr(miri, ignore)]
fn reads_of_one_byte_at_a_time_change_nothing() {
    let lies = Lies {
        read_at_most: 1,
        ..Lies::default()
    };
    for &policy in policies() {
        let mut wal = open_liar(acknowledged(), lies, small().with_recovery(policy)).unwrap();
        assert_eq!(read_all(&wal).unwrap(), RECORDS);
        wal.append(&payload(RECORDS + 1)).unwrap();
        wal.truncate_back(Lsn(20)).unwrap();
        assert_eq!(read_all(&wal).unwrap(), 20);
    }
}

/// Opens `mem` under every policy but `Salvage` (which gives up what it cannot read, by
/// design) with reads of segment `id` ending at `end`: a typed error or the whole log, and
/// every record still there.
fn open_with_reads_ending(mem: &Mem, id: SegmentId, end: u64) {
    for &policy in &policies()[..2] {
        let lies = Lies {
            read_ends_at: Some((id, end)),
            ..Lies::default()
        };
        let liar = Liar::new(mem.clone(), lies);
        let shared = liar.mem.clone();
        let mut scratch = [0u8; 512];
        match Wal::<Liar, Fixed<16>>::open(liar, small().with_recovery(policy), &mut scratch) {
            Ok((wal, report)) => {
                assert_eq!(wal.last_lsn(), Lsn(RECORDS), "{id} {end} {policy:?}");
                assert_eq!(report.cut, None);
            }
            Err(OpenError::Corrupted(_)) => {}
            Err(e) => panic!("{id} {end} {policy:?}: {e:?}"),
        }
        holds(&shared.borrow(), 1, RECORDS);
    }
}

#[test]
// Many reopens at every short length: about a minute under Miri, for code without `unsafe`.
#[cfg_attr(miri, ignore)]
fn reads_that_end_before_a_sealed_segment_s_length_are_refused_not_looped_on() {
    let mem = acknowledged();
    let newest = *mem.files.keys().last().unwrap();
    for id in 0..newest {
        let len = mem.files[&id].len() as u64;
        for end in [0, 1, 63, 64, 65, 100, 101, len - 1] {
            open_with_reads_ending(&mem, id, end);
        }
    }
}

#[test]
fn reads_that_end_inside_the_newest_segment_s_header_are_refused_not_taken_for_a_torn_creation() {
    let mem = acknowledged();
    let newest = *mem.files.keys().last().unwrap();
    for end in [0, 1, 63] {
        open_with_reads_ending(&mem, newest, end);
    }
    // Reads that end after the header end in a torn record: a cut, but a reported one (under
    // `TolerateTornTail`; `Strict` refuses). Pinned here; the reads' contradiction with the
    // listed length is not detected yet.
    for end in [64, 100] {
        let lies = Lies {
            read_ends_at: Some((newest, end)),
            ..Lies::default()
        };
        let mut scratch = [0u8; 512];
        let (wal, report) = Wal::<Liar, Fixed<16>>::open(
            Liar::new(mem.clone(), lies),
            small().with_recovery(crate::RecoveryPolicy::TolerateTornTail),
            &mut scratch,
        )
        .unwrap();
        let cut = report.cut.expect("a cut is reported");
        assert_eq!(cut.first_lsn, wal.last_lsn().next());
    }
}

#[test]
fn lengths_that_change_between_calls_give_an_error_or_the_whole_log() {
    // Under Miri (half a minute for the four) one jitter within a segment and one past any.
    let jitters: &[u64] = if cfg!(miri) {
        &[31, 1 << 40]
    } else {
        &[1, 31, 64, 1 << 40]
    };
    for &jitter in jitters {
        for &policy in &policies()[..2] {
            let lies = Lies {
                len_jitter: jitter,
                ..Lies::default()
            };
            let liar = Liar::new(acknowledged(), lies);
            let shared = liar.mem.clone();
            let mut scratch = [0u8; 512];
            let got =
                Wal::<Liar, Fixed<16>>::open(liar, small().with_recovery(policy), &mut scratch);
            match got {
                // The newest segment listed longer than its reads: a torn tail at the real end.
                Ok((wal, _)) => assert_eq!(wal.last_lsn(), Lsn(RECORDS)),
                Err(OpenError::Corrupted(_)) => {}
                Err(e) => panic!("{jitter} {policy:?}: {e:?}"),
            }
            let _ = inspect::<_, Fixed<16>>(
                &Liar::new(acknowledged(), lies),
                &small(),
                &mut scratch,
                &mut |_| {},
            );
            holds(&shared.borrow(), 1, RECORDS);
        }
    }
}

#[test]
fn ids_listed_twice_out_of_order_or_gone_give_an_error_or_the_whole_log() {
    for ghost in [0, 2, 7, 1 << 20, u64::MAX - 2] {
        for &policy in &policies()[..2] {
            let mut mem = acknowledged();
            if ghost < 5 {
                // A listed segment that is gone by the time its length is asked.
                mem.files.remove(&ghost);
            }
            let lies = Lies {
                list_ghost: Some(ghost),
                ..Lies::default()
            };
            let liar = Liar::new(mem.clone(), lies);
            let mut scratch = [0u8; 512];
            let got =
                Wal::<Liar, Fixed<16>>::open(liar, small().with_recovery(policy), &mut scratch);
            assert!(
                matches!(
                    got.map(|_| ()),
                    Err(OpenError::Storage(crate::IoFailure {
                        op: crate::Op::Len,
                        segment: Some(id),
                        ..
                    })) if id == ghost
                ),
                "{ghost} {policy:?}"
            );
            let _ =
                inspect::<_, Fixed<16>>(&Liar::new(mem, lies), &small(), &mut scratch, &mut |_| {});
        }
    }
}
