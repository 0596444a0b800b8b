//! Unit tests of the log state machine and recovery over a plain in-memory storage.

#[cfg(feature = "compress")]
mod compress;
mod durability;
#[cfg(feature = "early-rotation")]
mod early;
mod early_flag;
#[cfg(feature = "encrypt")]
mod encrypt;
mod growable;
mod limits;
pub(crate) mod mem;
mod reads;
mod recovery_cases;
mod recovery_edges;
mod reports;
mod salts;
mod wal_ops;

use crate::{Config, Fixed, Wal};
pub(crate) use mem::Mem;

pub(crate) type TestWal = Wal<Mem, Fixed<16>>;

pub(crate) fn open(mem: Mem, config: Config) -> (TestWal, crate::RecoveryReport) {
    let mut scratch = [0u8; 4096];
    Wal::open(mem, config, &mut scratch).expect("open")
}

pub(crate) fn try_open(
    mem: Mem,
    config: Config,
) -> Result<(TestWal, crate::RecoveryReport), crate::OpenError<mem::MemError>> {
    let mut scratch = [0u8; 300];
    Wal::open(mem, config, &mut scratch)
}

/// Cuts segment `id` just after its `k`-th record (records of `payload` length).
pub(crate) fn cut_after(mem: &mut Mem, id: u64, k: usize) {
    let f = mem.files.get_mut(&id).unwrap();
    let mut at = 64;
    for _ in 0..k {
        let len = u32::from_le_bytes(f[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 32 + len;
    }
    f.truncate(at);
}

pub(crate) fn small() -> Config {
    Config::default().with_segment_size(400)
}

pub(crate) fn payload(i: u64) -> std::vec::Vec<u8> {
    std::format!("record number {i}").into_bytes()
}

/// All records from the start, as (lsn, payload).
pub(crate) fn all(wal: &TestWal) -> std::vec::Vec<(u64, std::vec::Vec<u8>)> {
    let mut out = std::vec::Vec::new();
    let mut r = wal.reader(wal.first_lsn()).expect("reader");
    let mut buf = [0u8; 1024];
    while let Some(rec) = r.next(&mut buf).expect("next") {
        out.push((rec.lsn.0, rec.payload.to_vec()));
    }
    out
}
