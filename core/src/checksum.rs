//! The checksum algorithms a log may use, selected per log and recorded in every segment header.

use crc::{CRC_32_ISCSI, CRC_32_ISO_HDLC, CRC_64_NVME, Crc, Digest, Table};

/// Slice-by-16 tables: the fastest portable implementation in the `crc` crate.
type Fast = Table<16>;

static CRC32C: Crc<u32, Fast> = Crc::<u32, Fast>::new(&CRC_32_ISCSI);
static CRC32: Crc<u32, Fast> = Crc::<u32, Fast>::new(&CRC_32_ISO_HDLC);
static CRC64: Crc<u64, Fast> = Crc::<u64, Fast>::new(&CRC_64_NVME);

/// Which checksum protects the records of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Crc32c),
            2 => Some(Self::Crc32),
            3 => Some(Self::Crc64),
            _ => None,
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

    /// Starts a checksum over `salt ‖ …`.
    pub fn salted(self, salt: u64) -> Checksum {
        let mut c = Checksum::new(self);
        c.update(&salt.to_le_bytes());
        c
    }

    /// The checksum of `salt ‖ data` in one call.
    pub fn of_salted(self, salt: u64, data: &[u8]) -> u64 {
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
    C32(Digest<'static, u32, Fast>),
    C64(Digest<'static, u64, Fast>),
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

impl Checksum {
    /// A fresh checksum of the given algorithm.
    pub fn new(alg: ChecksumAlgorithm) -> Self {
        #[cfg(feature = "hw-crc")]
        return Self {
            state: State::Hw(crc_fast::Digest::new(hw(alg))),
        };
        #[cfg(not(feature = "hw-crc"))]
        Self::portable(alg)
    }

    /// The portable table implementation (slice-by-16), whatever the features. Gives the same
    /// values as [`Checksum::new`].
    pub fn portable(alg: ChecksumAlgorithm) -> Self {
        let state = match alg {
            ChecksumAlgorithm::Crc32c => State::C32(CRC32C.digest()),
            ChecksumAlgorithm::Crc32 => State::C32(CRC32.digest()),
            ChecksumAlgorithm::Crc64 => State::C64(CRC64.digest()),
        };
        Self { state }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::C32(d) => d.update(data),
            State::C64(d) => d.update(data),
            #[cfg(feature = "hw-crc")]
            State::Hw(d) => d.update(data),
        }
    }

    /// The final value, zero-extended to 64 bits.
    pub fn finish(self) -> u64 {
        match self.state {
            State::C32(d) => u64::from(d.finalize()),
            State::C64(d) => d.finalize(),
            #[cfg(feature = "hw-crc")]
            State::Hw(d) => d.finalize(),
        }
    }
}

/// CRC-32C of `data`: the fixed checksum of segment headers.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    #[cfg(feature = "hw-crc")]
    return crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32;
    #[cfg(not(feature = "hw-crc"))]
    CRC32C.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_check_values() {
        // The standard check input "123456789" and its published check values.
        let input = b"123456789";
        for (alg, check) in [
            (ChecksumAlgorithm::Crc32c, 0xe306_9283_u64),
            (ChecksumAlgorithm::Crc32, 0xcbf4_3926),
            (ChecksumAlgorithm::Crc64, 0xae8b_1486_0a79_9888),
        ] {
            let mut c = Checksum::new(alg);
            c.update(input);
            assert_eq!(c.finish(), check, "{}", alg.name());
        }
    }

    #[test]
    fn accelerated_and_portable_agree() {
        let data: std::vec::Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for alg in [
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc64,
        ] {
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
    fn streaming_equals_one_shot_and_salt_matters() {
        let data = [7u8; 1000];
        for alg in [
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc64,
        ] {
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
