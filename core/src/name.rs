//! Segment file names: `{id:020}.wal`. Every file-based adapter (std, WASI) uses this scheme, so
//! a directory written by one can be opened by the other.

use crate::storage::SegmentId;

/// Number of decimal digits in a segment file name; `u64::MAX` has 20.
const DIGITS: usize = 20;
/// The suffix every segment file carries.
const SUFFIX: &[u8; 4] = b".wal";
/// Length of every segment file name in bytes.
pub const SEGMENT_NAME_LEN: usize = DIGITS + SUFFIX.len();

/// The clean-close marker (docs/FORMAT.md, "The clean-close marker"): walden-std leaves it when
/// it closes a log with every write synced, and every file-based adapter removes it before it
/// changes a segment.
pub const CLEAN_FILE: &str = "walden.clean";

/// The file name of one segment, formatted without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentName([u8; SEGMENT_NAME_LEN]);

impl SegmentName {
    /// Formats `id` as 20 zero-padded decimal digits followed by `.wal`.
    pub fn new(id: SegmentId) -> Self {
        let mut bytes = [b'0'; SEGMENT_NAME_LEN];
        let mut rest = id;
        for slot in bytes[..DIGITS].iter_mut().rev() {
            // `rest % 10` is below 10, so the cast cannot truncate.
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        bytes[DIGITS..].copy_from_slice(SUFFIX);
        Self(bytes)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and ".wal" are ever stored.
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl core::fmt::Debug for SegmentName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a directory entry name. Returns `None` for anything that is not exactly a segment name
/// (wrong length, non-digits, other suffix, or a number that does not fit in a `u64`).
pub fn parse_segment_name(name: &str) -> Option<SegmentId> {
    let bytes = name.as_bytes();
    if bytes.len() != SEGMENT_NAME_LEN || &bytes[DIGITS..] != SUFFIX {
        return None;
    }
    let mut id: u64 = 0;
    for &digit in &bytes[..DIGITS] {
        if !digit.is_ascii_digit() {
            return None;
        }
        id = id.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_twenty_digits_and_suffix() {
        assert_eq!(SegmentName::new(0).as_str(), "00000000000000000000.wal");
        assert_eq!(SegmentName::new(42).as_str(), "00000000000000000042.wal");
        assert_eq!(
            SegmentName::new(u64::MAX).as_str(),
            "18446744073709551615.wal"
        );
    }

    #[test]
    fn round_trips() {
        for id in [0, 1, 9, 10, 12_345, u64::MAX - 1, u64::MAX] {
            assert_eq!(parse_segment_name(SegmentName::new(id).as_str()), Some(id));
        }
    }

    #[test]
    fn rejects_foreign_names() {
        for name in [
            "",
            "1.wal",
            "0000000000000000001.wal",
            "000000000000000000001.wal",
            "00000000000000000001.tmp",
            "0000000000000000000a.wal",
            "99999999999999999999.wal",
            "00000000000000000001.wal~",
            "+0000000000000000001.wal",
        ] {
            assert_eq!(parse_segment_name(name), None, "{name}");
        }
    }
}
