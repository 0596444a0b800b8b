//! Unit tests of the log state machine and recovery over a plain in-memory storage.

// Only where an algorithm is missing: the others cannot make the case.
#[cfg(not(all(feature = "crc32", feature = "crc64")))]
mod checksum_not_built_in;
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
mod lying;
pub(crate) mod mem;
#[cfg(all(feature = "replay", feature = "alloc"))]
mod read_ahead;
mod reads;
mod recovery_cases;
mod recovery_edges;
#[cfg(feature = "replay")]
mod replayed;
mod reports;
mod salts;
mod wal_ops;

use crate::{Config, ConfigError, Fixed, OpenError, RecoveryPolicy, Wal};
pub(crate) use mem::Mem;

pub(crate) type TestWal = Wal<Mem, Fixed<16>>;

/// The recovery policies this build has. `Salvage` needs walden-core's feature `salvage`;
/// without it `Config::validate` refuses that policy, which [`salvage_is_refused`] checks.
/// The builds a device ships (`--no-default-features --features start-slots`) lack it, and
/// this crate's tests run in them too (scripts/check.sh).
pub(crate) fn policies() -> &'static [RecoveryPolicy] {
    if cfg!(feature = "salvage") {
        &[
            RecoveryPolicy::Strict,
            RecoveryPolicy::TolerateTornTail,
            RecoveryPolicy::Salvage,
        ]
    } else {
        &[RecoveryPolicy::Strict, RecoveryPolicy::TolerateTornTail]
    }
}

/// `config` under `RecoveryPolicy::Salvage` where this build has that policy (feature
/// `salvage`), `None` where it does not.
pub(crate) fn salvage(config: Config) -> Option<Config> {
    cfg!(feature = "salvage").then(|| config.with_recovery(RecoveryPolicy::Salvage))
}

/// `mem` opened with `config` under `RecoveryPolicy::Salvage`, where this build has that
/// policy. Where it does not: checks that asking for it is refused and changes nothing
/// ([`salvage_is_refused`]), and gives `None`, so a test skips only what is salvage's own.
pub(crate) fn salvaged(mem: &Mem, config: Config) -> Option<(TestWal, crate::RecoveryReport)> {
    match salvage(config) {
        Some(salvaging) => Some(open(mem.clone(), salvaging)),
        None => {
            salvage_is_refused(mem, config);
            None
        }
    }
}

/// In a build without feature `salvage`: opening `mem` under `RecoveryPolicy::Salvage` fails
/// with `OpenError::Config(ConfigError::SalvageNotBuiltIn)` and leaves the storage exactly as
/// it was (nothing written, truncated, removed or synced). Does nothing in a build with it,
/// where the caller opened under every policy of [`policies`].
pub(crate) fn salvage_is_refused(mem: &Mem, config: Config) {
    if cfg!(feature = "salvage") {
        return;
    }
    let mut opened = mem.clone();
    let got = Wal::<&mut Mem, Fixed<16>>::open(
        &mut opened,
        config.with_recovery(RecoveryPolicy::Salvage),
        &mut [0u8; 4096],
    )
    .map(|(_, report)| report);
    assert_eq!(
        got.err(),
        Some(OpenError::Config(ConfigError::SalvageNotBuiltIn))
    );
    assert_eq!(opened.files, mem.files, "a refused salvage changes nothing");
    assert_eq!(
        (opened.syncs, &opened.synced, &opened.reserved),
        (mem.syncs, &mem.synced, &mem.reserved),
        "a refused salvage syncs nothing"
    );
}

/// What a finding's `detail` says in this build: `text` with walden-core's feature `detail`,
/// empty without it. The tests' own copy of the rule (not the library's `error::detail`), so
/// a change to the library's is caught; under default features it is the text itself, and
/// every comparison is as strict as one with the literal.
pub(crate) fn detail(text: &'static str) -> &'static str {
    if cfg!(feature = "detail") { text } else { "" }
}

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
