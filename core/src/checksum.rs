//! The checksum algorithms a log may use, selected per log and recorded in every segment header.
//!
//! What is compiled in is chosen by features, so a device pays only for what it uses:
//!
//! * CRC-32C is always there: it protects segment headers and start slots whatever a log uses
//!   for its records.
//! * `crc32` adds CRC-32 (IEEE), `crc64` adds CRC-64/NVME. A log configured with an algorithm
//!   that is not built in is refused by [`Config::validate`](crate::Config::validate); a log
//!   with a segment that uses one is refused by every recovery policy, `Salvage` included
//!   (`Case::ChecksumNotBuiltIn`), and nothing is cut or removed.
//! * Table size: 256-entry tables by default (1 KiB per 32-bit algorithm, 2 KiB for CRC-64);
//!   `crc-tables-16` selects slice-by-16 (16 times larger, several times faster: the server
//!   setting); `crc-no-tables` computes bit by bit with no table at all (the smallest and
//!   slowest).
//!   `crc-small-tables` selects 16-entry tables (64 bytes per 32-bit algorithm, 128 for
//!   CRC-64), four bits at a time: about a kilobyte less flash per algorithm than the default,
//!   a few times faster than bit by bit (a device with short records). `crc-tables-16` wins
//!   over it, and it wins over `crc-no-tables`.
//! * `hw-crc` (needs `std`) uses crc-fast's hardware instructions; the values are the same.
//!
//! Every choice gives the same checksum values, so logs are interchangeable between builds that
//! have the algorithm.

use crc::CRC_32_ISCSI;
#[cfg(feature = "crc32")]
use crc::CRC_32_ISO_HDLC;
#[cfg(feature = "crc64")]
use crc::CRC_64_NVME;
#[cfg(not(all(feature = "crc-small-tables", not(feature = "crc-tables-16"))))]
use crc::{Crc, Digest};
#[cfg(all(feature = "crc-small-tables", not(feature = "crc-tables-16")))]
use nibble::{Crc, Digest};

/// The table implementation chosen by features (see the module documentation).
#[cfg(feature = "crc-tables-16")]
type Tables = crc::Table<16>;
#[cfg(all(feature = "crc-small-tables", not(feature = "crc-tables-16")))]
type Tables = nibble::Nibble;
#[cfg(all(
    feature = "crc-no-tables",
    not(any(feature = "crc-tables-16", feature = "crc-small-tables"))
))]
type Tables = crc::NoTable;
#[cfg(not(any(
    feature = "crc-no-tables",
    feature = "crc-small-tables",
    feature = "crc-tables-16"
)))]
type Tables = crc::Table<1>;

static CRC32C: Crc<u32, Tables> = Crc::<u32, Tables>::new(&CRC_32_ISCSI);
#[cfg(feature = "crc32")]
static CRC32: Crc<u32, Tables> = Crc::<u32, Tables>::new(&CRC_32_ISO_HDLC);
#[cfg(feature = "crc64")]
static CRC64: Crc<u64, Tables> = Crc::<u64, Tables>::new(&CRC_64_NVME);

/// 16-entry tables, four bits at a time (`crc-small-tables`; compiled for the tests in every
/// build, which compare it with the `crc` crate's tables). The same interface as the `crc`
/// crate's `Crc` and `Digest`, for reflected algorithms of the register's full width (all
/// three of the format's).
#[cfg(any(
    test,
    all(feature = "crc-small-tables", not(feature = "crc-tables-16"))
))]
// Which of its items a build uses depends on the algorithms built in (`checksum` is CRC-32C's
// one-call form, the 64-bit register CRC-64's).
#[allow(dead_code)]
mod nibble {
    use core::marker::PhantomData;

    /// The table marker (in the place of the `crc` crate's `Table<N>`).
    pub(super) struct Nibble;

    /// An algorithm and its 16-entry table.
    pub(super) struct Crc<W: 'static, T> {
        table: [W; 16],
        init: W,
        xorout: W,
        table_kind: PhantomData<T>,
    }

    /// A checksum being computed.
    pub(super) struct Digest<'a, W: 'static, T> {
        crc: &'a Crc<W, T>,
        value: W,
    }

    macro_rules! nibble_crc {
        ($w:ty) => {
            impl<T> Crc<$w, T> {
                /// The table of `alg`, built at compile time. `alg` must be reflected (in
                /// and out) and as wide as the register: anything else fails to compile.
                pub(super) const fn new(alg: &'static crc::Algorithm<$w>) -> Self {
                    assert!(alg.refin && alg.refout && alg.width as u32 == <$w>::BITS);
                    let poly = alg.poly.reverse_bits();
                    let mut table = [0; 16];
                    let mut i = 0;
                    while i < 16 {
                        let mut c = i as $w;
                        let mut bit = 0;
                        while bit < 4 {
                            c = if c & 1 == 1 { (c >> 1) ^ poly } else { c >> 1 };
                            bit += 1;
                        }
                        table[i] = c;
                        i += 1;
                    }
                    Self {
                        table,
                        init: alg.init.reverse_bits(),
                        xorout: alg.xorout,
                        table_kind: PhantomData,
                    }
                }

                /// A fresh digest.
                pub(super) const fn digest(&self) -> Digest<'_, $w, T> {
                    Digest {
                        crc: self,
                        value: self.init,
                    }
                }

                /// The checksum of `data` in one call.
                pub(super) fn checksum(&self, data: &[u8]) -> $w {
                    let mut d = self.digest();
                    d.update(data);
                    d.finalize()
                }
            }

            impl<T> Digest<'_, $w, T> {
                /// Feeds more bytes.
                pub(super) fn update(&mut self, data: &[u8]) {
                    let t = &self.crc.table;
                    let mut c = self.value;
                    for &b in data {
                        c ^= <$w>::from(b);
                        c = (c >> 4) ^ t[(c & 0xf) as usize];
                        c = (c >> 4) ^ t[(c & 0xf) as usize];
                    }
                    self.value = c;
                }

                /// The final value.
                pub(super) fn finalize(self) -> $w {
                    self.value ^ self.crc.xorout
                }
            }
        };
    }
    nibble_crc!(u32);
    nibble_crc!(u64);
}

/// Which checksum protects the records of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChecksumAlgorithm {
    /// CRC-32C (Castagnoli). The default.
    #[default]
    Crc32c,
    /// CRC-32 (IEEE 802.3, as in zlib).
    Crc32,
    /// CRC-64/NVME, for very large records.
    Crc64,
}

impl ChecksumAlgorithm {
    /// The id stored in the segment header.
    pub const fn id(self) -> u8 {
        match self {
            Self::Crc32c => 1,
            Self::Crc32 => 2,
            Self::Crc64 => 3,
        }
    }

    /// The algorithm with the given header id, if known.
    pub(crate) const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Crc32c),
            2 => Some(Self::Crc32),
            3 => Some(Self::Crc64),
            _ => None,
        }
    }

    /// Whether this build can compute it (CRC-32C always; the others with the `crc32` and
    /// `crc64` features).
    pub const fn is_available(self) -> bool {
        match self {
            Self::Crc32c => true,
            Self::Crc32 => cfg!(feature = "crc32"),
            Self::Crc64 => cfg!(feature = "crc64"),
        }
    }

    /// Its conventional name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Crc32c => "CRC-32C",
            Self::Crc32 => "CRC-32",
            Self::Crc64 => "CRC-64/NVME",
        }
    }

    /// Starts a checksum over `salt ‖ …`. See [`Checksum::new`] for an algorithm that is not
    /// built in.
    pub(crate) fn salted(self, salt: u64) -> Checksum {
        let mut c = Checksum::new(self);
        c.update(&salt.to_le_bytes());
        c
    }

    /// The checksum of `salt ‖ data` in one call.
    // Always inlined: on a Cortex-M its frame under the record header decode of recovery's
    // start-slot read was at the bottom of `Wal::open`'s deepest call chain (16 bytes of
    // stack for about 80 bytes of flash). Not with `hw-crc` (servers): no such limit there.
    #[cfg_attr(not(feature = "hw-crc"), inline(always))]
    pub fn of_salted(self, salt: u64, data: &[u8]) -> u64 {
        // CRC-32C (the default) of short data: the `crc32` instruction in a plain loop, from
        // the salt's value (`crc32c_append` continues a finished CRC-32C).
        #[cfg(feature = "hw-crc")]
        if matches!(self, ChecksumAlgorithm::Crc32c) && crc32c_direct(data.len()) {
            return u64::from(walden_crc32c::append(crc32c_of_salt(salt), data));
        }
        // Record headers of the other algorithms: one call over a copy on the stack (10 ns for
        // a header's 24 bytes, against 13.6 started from the salt's state).
        #[cfg(feature = "hw-crc")]
        if data.len() <= SMALL {
            let mut buf = [0u8; SMALL_BUF];
            buf[..8].copy_from_slice(&salt.to_le_bytes());
            buf[8..8 + data.len()].copy_from_slice(data);
            return hw_once(self, &buf[..8 + data.len()]);
        }
        #[cfg(feature = "hw-crc")]
        return hw_of_salted(self, salt, data);
        #[allow(unreachable_code)]
        let mut c = self.salted(salt);
        c.update(data);
        c.finish()
    }
}

/// A streaming checksum, so payloads larger than any buffer can be verified in pieces.
pub struct Checksum {
    state: State,
}

// The accelerated digest is larger than the table ones; it lives on the stack for one checksum
// and core cannot box, so the size difference is accepted.
#[allow(clippy::large_enum_variant)]
enum State {
    C32(Digest<'static, u32, Tables>),
    #[cfg(feature = "crc64")]
    C64(Digest<'static, u64, Tables>),
    #[cfg(feature = "hw-crc")]
    Hw(crc_fast::Digest),
}

#[cfg(feature = "hw-crc")]
fn hw(alg: ChecksumAlgorithm) -> crc_fast::CrcAlgorithm {
    match alg {
        ChecksumAlgorithm::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
        ChecksumAlgorithm::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        ChecksumAlgorithm::Crc64 => crc_fast::CrcAlgorithm::Crc64Nvme,
    }
}

/// The accelerated checksum of `data` in one call, straight to the algorithm's own entry
/// point (`crc_fast::checksum` matches the algorithm among dozens first: 1.7% of a replay,
/// where every record header is checksummed twice).
#[cfg(feature = "hw-crc")]
fn hw_once(alg: ChecksumAlgorithm, data: &[u8]) -> u64 {
    match alg {
        ChecksumAlgorithm::Crc32c => u64::from(crc_fast::crc32_iscsi(data)),
        ChecksumAlgorithm::Crc32 => u64::from(crc_fast::crc32_iso_hdlc(data)),
        ChecksumAlgorithm::Crc64 => crc_fast::crc64_nvme(data),
    }
}

/// CRC-32C of data up to this long is computed by walden-crc32c: a plain loop of the `crc32`
/// instruction (SSE 4.2; elsewhere the `crc32c` crate's, ARMv8's CRC extension included),
/// where crc-fast's dispatch and digest set-up cost more than the loop itself. Measured on
/// this project's VM with the `crc32c` crate's loop (AVX-512, one thread, salted, unaligned
/// starts): 24 bytes 8.6 ns against 11.3, 128 bytes 11.4 against 17.6, 256 bytes 16.9 against
/// 18.0; at 512 bytes crc-fast's carry-less multiplication wins (30 against 50 ns).
/// walden-crc32c's loop is shorter still (2026-12-07, against crc-fast's digest started from
/// a salt, independent calls): 128 bytes 9.8-10.0 ns against 26.1, 256 bytes 19.0-19.3
/// against 30.3-30.4, 384 bytes 27.4-28.1 against 38.8-39.0, 512 bytes 40.0-40.1 against
/// 28.7-29.4, so on x86_64 the limit moved from 256 to 384 bytes; elsewhere (the `crc32c`
/// crate's loop, not measured on those CPUs) it stays at 256. A record header is 28 bytes;
/// most small records are a few hundred.
#[cfg(feature = "hw-crc")]
const CRC32C_DIRECT: usize = if cfg!(target_arch = "x86_64") {
    384
} else {
    256
};

/// Whether CRC-32C of `len` bytes takes [`CRC32C_DIRECT`]'s path. Only speed depends on it:
/// both paths compute the same CRC (its own function so mutation testing can name it, see
/// .cargo/mutants.toml).
#[cfg(feature = "hw-crc")]
#[inline(always)]
fn crc32c_direct(len: usize) -> bool {
    len <= CRC32C_DIRECT
}

/// The CRC-32C of `salt`'s little-endian bytes, which every record of a segment starts from:
/// kept per thread for the last salt seen, since a segment's records are checksummed one
/// after another.
#[cfg(feature = "hw-crc")]
fn crc32c_of_salt(salt: u64) -> u32 {
    use core::cell::Cell;
    std::thread_local! {
        static LAST: Cell<Option<(u64, u32)>> = const { Cell::new(None) };
    }
    LAST.with(|last| match last.get() {
        Some((s, crc)) if s == salt => crc,
        _ => {
            let crc = walden_crc32c::checksum(&salt.to_le_bytes());
            last.set(Some((salt, crc)));
            crc
        }
    })
}

/// Data up to this long is checksummed in one call by [`ChecksumAlgorithm::of_salted`] (a
/// record header's checked part is 28 bytes), for the algorithms other than CRC-32C, whose
/// short data takes [`CRC32C_DIRECT`]'s path first.
#[cfg(feature = "hw-crc")]
const SMALL: usize = 56;

/// The salt and at most [`SMALL`] bytes of data (a literal checked at compile time: a sum here
/// would be mutated into a larger buffer that only wastes stack).
#[cfg(feature = "hw-crc")]
const SMALL_BUF: usize = 64;
#[cfg(feature = "hw-crc")]
const _: () = assert!(SMALL_BUF == 8 + SMALL);

/// A fresh accelerated digest, copied from one made once per algorithm: `Digest::new` looks
/// its parameters up and moves them several times, which showed in profiles of recovery.
#[cfg(feature = "hw-crc")]
fn hw_digest(alg: ChecksumAlgorithm) -> crc_fast::Digest {
    use std::sync::OnceLock;
    static MADE: [OnceLock<crc_fast::Digest>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match alg {
        ChecksumAlgorithm::Crc32c => 0,
        ChecksumAlgorithm::Crc32 => 1,
        ChecksumAlgorithm::Crc64 => 2,
    };
    *MADE[slot].get_or_init(|| crc_fast::Digest::new(hw(alg)))
}

/// The accelerated checksum of `salt ‖ data`: `data` fed to a digest started from the state
/// the salt leaves, which this thread keeps for the last algorithm and salt it saw. Every
/// record of a segment is checksummed after the segment's salt, and scans and readers go
/// through a segment at a time, so the salt's state is nearly always the one kept. Only that
/// state is kept (8 bytes): a digest is started from it with the algorithm named as a
/// constant, so crc-fast's parameters fold away, where copying a kept digest (its parameter
/// block, a few hundred bytes) cost 5-6 ns a record (1 KiB payloads 52 → 46 ns, 128 B
/// 21 → 16 ns; record headers keep their one call over a copy, see `SMALL`).
#[cfg(feature = "hw-crc")]
fn hw_of_salted(alg: ChecksumAlgorithm, salt: u64, data: &[u8]) -> u64 {
    use core::cell::Cell;
    use crc_fast::{CrcAlgorithm, Digest};
    std::thread_local! {
        static LAST: Cell<Option<(ChecksumAlgorithm, u64, u64)>> = const { Cell::new(None) };
    }
    let state = LAST.with(|last| match last.get() {
        Some((a, s, state)) if a == alg && s == salt => state,
        _ => {
            let mut d = hw_digest(alg);
            d.update(&salt.to_le_bytes());
            last.set(Some((alg, salt, d.get_state())));
            d.get_state()
        }
    });
    let mut d = match alg {
        ChecksumAlgorithm::Crc32c => Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, state),
        ChecksumAlgorithm::Crc32 => Digest::new_with_init_state(CrcAlgorithm::Crc32IsoHdlc, state),
        ChecksumAlgorithm::Crc64 => Digest::new_with_init_state(CrcAlgorithm::Crc64Nvme, state),
    };
    d.update(data);
    d.finalize()
}

impl Checksum {
    /// A fresh checksum of the given algorithm.
    ///
    /// An algorithm that is not built in ([`ChecksumAlgorithm::is_available`]) computes CRC-32C
    /// instead, so its values match nothing written with the real one. Core never asks for
    /// one: [`Config::validate`](crate::Config::validate) refuses it for writing and segment
    /// headers naming it are refused before any record is read.
    pub fn new(alg: ChecksumAlgorithm) -> Self {
        #[cfg(feature = "hw-crc")]
        return Self {
            state: State::Hw(hw_digest(alg)),
        };
        #[cfg(not(feature = "hw-crc"))]
        Self::portable(alg)
    }

    /// The portable table implementation (the table size the features chose), whatever
    /// `hw-crc` says. Gives the same values as [`Checksum::new`].
    pub fn portable(alg: ChecksumAlgorithm) -> Self {
        let state = match alg {
            #[cfg(feature = "crc32")]
            ChecksumAlgorithm::Crc32 => State::C32(CRC32.digest()),
            #[cfg(feature = "crc64")]
            ChecksumAlgorithm::Crc64 => State::C64(CRC64.digest()),
            _ => State::C32(CRC32C.digest()),
        };
        Self { state }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::C32(d) => d.update(data),
            #[cfg(feature = "crc64")]
            State::C64(d) => d.update(data),
            #[cfg(feature = "hw-crc")]
            State::Hw(d) => d.update(data),
        }
    }

    /// The final value, zero-extended to 64 bits.
    pub fn finish(self) -> u64 {
        match self.state {
            State::C32(d) => u64::from(d.finalize()),
            #[cfg(feature = "crc64")]
            State::C64(d) => d.finalize(),
            #[cfg(feature = "hw-crc")]
            State::Hw(d) => d.finalize(),
        }
    }
}

/// CRC-32C of `data`: the fixed checksum of segment headers.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    #[cfg(feature = "hw-crc")]
    return crc_fast::crc32_iscsi(data);
    #[cfg(not(feature = "hw-crc"))]
    CRC32C.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The algorithms built into this test build.
    fn available() -> impl Iterator<Item = ChecksumAlgorithm> {
        [
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc64,
        ]
        .into_iter()
        .filter(|alg| alg.is_available())
    }

    /// The portable streaming checksum of `salt ‖ data`: what every accelerated path must give.
    fn portable_salted(alg: ChecksumAlgorithm, salt: u64, data: &[u8]) -> u64 {
        let mut c = Checksum::portable(alg);
        c.update(&salt.to_le_bytes());
        c.update(data);
        c.finish()
    }

    #[test]
    fn catalogue_check_values() {
        // The standard check input "123456789" and its published check values.
        let input = b"123456789";
        for (alg, check) in [
            (ChecksumAlgorithm::Crc32c, 0xe306_9283_u64),
            (ChecksumAlgorithm::Crc32, 0xcbf4_3926),
            (ChecksumAlgorithm::Crc64, 0xae8b_1486_0a79_9888),
        ] {
            if !alg.is_available() {
                continue;
            }
            let mut c = Checksum::new(alg);
            c.update(input);
            assert_eq!(c.finish(), check, "{}", alg.name());
        }
    }

    #[test]
    fn accelerated_and_portable_agree() {
        let data: std::vec::Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for alg in available() {
            for len in [0, 1, 7, 36, 128, 4096, 5000] {
                let mut a = Checksum::new(alg);
                let mut b = Checksum::portable(alg);
                a.update(&data[..len]);
                b.update(&data[..len]);
                assert_eq!(a.finish(), b.finish(), "{} len {len}", alg.name());
            }
        }
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn salted_one_call_agrees_with_streaming_across_lengths() {
        // With `hw-crc`, short data takes a one-call path over a copy (up to `SMALL` bytes),
        // longer data starts from the salt's state; every length around that limit must give
        // the portable streaming result.
        // CRC-32C up to `CRC32C_DIRECT` bytes takes a third (walden-crc32c), which reads 8, 4
        // and 1 bytes at a time from wherever the data starts: every start within a word too.
        let data: std::vec::Vec<u8> = (0..400u32).map(|i| (i * 37 % 253) as u8).collect();
        let salt = 0x0123_4567_89ab_cdef_u64;
        // Miri (which looks for undefined behaviour, not wrong answers, and took a minute
        // over every length) takes the lengths around each limit and a few between.
        let sampled = |len: usize| {
            !cfg!(miri)
                || len < 10
                || len.is_multiple_of(61)
                // `SMALL` and `CRC32C_DIRECT`, which exist only with `hw-crc`.
                || [56, CRC32C_LIMIT].iter().any(|&l| len.abs_diff(l) <= 1)
        };
        const CRC32C_LIMIT: usize = if cfg!(target_arch = "x86_64") {
            384
        } else {
            256
        };
        #[cfg(feature = "hw-crc")]
        const _: () = assert!(SMALL == 56 && CRC32C_DIRECT == CRC32C_LIMIT);
        for alg in available() {
            for start in 0..8 {
                for len in (0..=data.len() - start).filter(|&len| sampled(len)) {
                    let d = &data[start..start + len];
                    assert_eq!(
                        alg.of_salted(salt, d),
                        portable_salted(alg, salt, d),
                        "{} start {start} len {len}",
                        alg.name()
                    );
                }
            }
        }
    }

    #[test]
    fn small_tables_agree_with_the_crc_crate() {
        // `crc-small-tables`' 16-entry tables against the `crc` crate's 256-entry ones, for
        // the format's three algorithms, in one call and in pieces.
        use crc::{CRC_32_ISCSI, CRC_32_ISO_HDLC, CRC_64_NVME};
        let data: std::vec::Vec<u8> = (0..300u32).map(|i| (i * 89 % 256) as u8).collect();
        let c32 = [&CRC_32_ISCSI, &CRC_32_ISO_HDLC];
        for alg in c32 {
            let small = nibble::Crc::<u32, nibble::Nibble>::new(alg);
            let table = crc::Crc::<u32, crc::Table<1>>::new(alg);
            for len in [0, 1, 2, 7, 8, 9, 36, 128, 300] {
                assert_eq!(small.checksum(&data[..len]), table.checksum(&data[..len]));
            }
            let mut d = small.digest();
            d.update(&data[..100]);
            d.update(&data[100..]);
            assert_eq!(d.finalize(), table.checksum(&data));
        }
        let small = nibble::Crc::<u64, nibble::Nibble>::new(&CRC_64_NVME);
        let table = crc::Crc::<u64, crc::Table<1>>::new(&CRC_64_NVME);
        for len in [0, 1, 9, 128, 300] {
            assert_eq!(small.checksum(&data[..len]), table.checksum(&data[..len]));
        }
        // The published check value of CRC-32C.
        let c = nibble::Crc::<u32, nibble::Nibble>::new(&CRC_32_ISCSI);
        assert_eq!(c.checksum(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn streaming_equals_one_shot_and_salt_matters() {
        let data = [7u8; 1000];
        for alg in available() {
            let mut c = alg.salted(42);
            c.update(&data[..123]);
            c.update(&data[123..]);
            assert_eq!(c.finish(), alg.of_salted(42, &data));
            assert_ne!(alg.of_salted(42, &data), alg.of_salted(43, &data));
            assert_eq!(ChecksumAlgorithm::from_id(alg.id()), Some(alg));
        }
        assert_eq!(ChecksumAlgorithm::from_id(0), None);
    }

    #[test]
    fn salted_digests_do_not_leak_between_salts_or_algorithms() {
        // The accelerated build keeps the last salt's state per thread (`hw_of_salted`):
        // alternating salts and algorithms must give what a fresh portable checksum gives.
        let data = [9u8; 300];
        for round in 0..3u64 {
            for alg in available() {
                for salt in [round, round + 1, round] {
                    let want = portable_salted(alg, salt, &data);
                    assert_eq!(
                        alg.of_salted(salt, &data),
                        want,
                        "{} salt {salt}",
                        alg.name()
                    );
                    let mut c = alg.salted(salt);
                    c.update(&data);
                    assert_eq!(c.finish(), want, "{} salt {salt}", alg.name());
                }
            }
        }
    }

    #[test]
    fn ids_and_names_are_the_documented_ones() {
        // FORMAT.md: checksum_alg 1 CRC-32C, 2 CRC-32 (IEEE), 3 CRC-64 (NVME). The names are
        // what inspection and the CLI print.
        for (alg, id, name) in [
            (ChecksumAlgorithm::Crc32c, 1, "CRC-32C"),
            (ChecksumAlgorithm::Crc32, 2, "CRC-32"),
            (ChecksumAlgorithm::Crc64, 3, "CRC-64/NVME"),
        ] {
            assert_eq!((alg.id(), alg.name()), (id, name));
        }
        assert_eq!(ChecksumAlgorithm::default(), ChecksumAlgorithm::Crc32c);
        for id in 4..=255 {
            assert_eq!(ChecksumAlgorithm::from_id(id), None);
        }
    }
}
