//! The scratch memory compression and encryption need (format version 3, features `compress`
//! and `encrypt`), and key files.

use walden_core::{AppendError, Lsn, SegmentTable, Storage, Wal};

/// Scratch for compressing records, grown to fit the longest record compressed so far
/// ([`walden_core::transform_scratch_len`]) and kept for the next append.
#[derive(Debug, Default)]
pub(crate) struct Scratch(#[allow(dead_code)] Vec<u8>);

impl Scratch {
    /// Appends `payloads` to `wal`, compressing those at least the configured threshold long.
    pub(crate) fn append_batch<S: Storage, T: SegmentTable>(
        &mut self,
        wal: &mut Wal<S, T>,
        payloads: &[&[u8]],
    ) -> Result<Lsn, AppendError<S::Error>> {
        #[cfg(any(feature = "compress", feature = "encrypt"))]
        {
            #[cfg(feature = "compress")]
            let threshold = wal.config().compress_threshold as usize;
            #[cfg(not(feature = "compress"))]
            let threshold = 0;
            #[cfg(feature = "encrypt")]
            let encrypting = wal.keys().current().is_some();
            #[cfg(not(feature = "encrypt"))]
            let encrypting = false;
            let longest = payloads
                .iter()
                .map(|p| p.len())
                .filter(|&n| encrypting || (threshold > 0 && n >= threshold))
                .max();
            // Longer than max_record_size is refused before any compression.
            let limit = wal.config().max_record_size as usize;
            if let Some(n) = longest.filter(|&n| n <= limit) {
                let need = walden_core::transform_scratch_len(n as u32);
                if self.0.len() < need {
                    self.0.resize(need, 0);
                }
            }
            wal.append_batch_in(payloads, &mut self.0)
        }
        #[cfg(not(any(feature = "compress", feature = "encrypt")))]
        wal.append_batch(payloads)
    }
}

impl Scratch {
    /// Whether [`Scratch::append_batch`] stores each of `payloads` as given (no compression,
    /// no encryption), so that its stored length is its length.
    pub(crate) fn stores_plain<S: Storage, T: SegmentTable>(
        &self,
        wal: &Wal<S, T>,
        payloads: &[&[u8]],
    ) -> bool {
        #[cfg(feature = "encrypt")]
        if wal.keys().current().is_some() {
            return false;
        }
        #[cfg(feature = "compress")]
        {
            let threshold = wal.config().compress_threshold as usize;
            if threshold > 0 && payloads.iter().any(|p| p.len() >= threshold) {
                return false;
            }
        }
        let _ = (wal, payloads);
        true
    }
}

/// Why a key file could not be loaded.
#[cfg(feature = "encrypt")]
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The failure.
        error: std::io::Error,
    },
    /// A line is not a key: 64 hexadecimal digits (256 bits).
    BadLine {
        /// The file.
        path: std::path::PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// The file holds no key.
    Empty {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The keyring refused a key (too many keys, or an id taken).
    Keyring {
        /// The file.
        path: std::path::PathBuf,
        /// The line number, from 1.
        line: usize,
        /// Why.
        error: walden_core::KeyringError,
    },
}

#[cfg(feature = "encrypt")]
impl core::fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Io { path, error } => write!(f, "key file {}: {error}", path.display()),
            Self::BadLine { path, line } => write!(
                f,
                "key file {} line {line}: not a key (64 hexadecimal digits)",
                path.display()
            ),
            Self::Empty { path } => write!(f, "key file {} holds no key", path.display()),
            Self::Keyring { path, line, error } => {
                write!(f, "key file {} line {line}: {error}", path.display())
            }
        }
    }
}

#[cfg(feature = "encrypt")]
impl core::error::Error for KeyFileError {}

/// Loads a key file: one 256-bit key per line as 64 hexadecimal digits; blank lines and lines
/// starting with `#` are ignored. Every key is in the ring for reading; the **last** one is the
/// current key, which new segments are encrypted with. Rotating a key is adding a line at the
/// end (keep the old lines while segments encrypted with them exist: see docs/OPERATIONS.md).
/// The key bytes never appear in errors or `Debug` output.
///
/// Only a regular file is read (a symlink to one is followed), and only up to 64 KiB (8 keys
/// with comments fit many times over): a FIFO, a device (`/dev/zero`), a directory or a
/// longer file is refused with [`KeyFileError::Io`] of kind
/// [`std::io::ErrorKind::InvalidData`] before anything is read, and the open never waits
/// (`O_NONBLOCK`: a FIFO with no writer does not block it).
#[cfg(feature = "encrypt")]
pub fn load_key_file(
    path: impl AsRef<std::path::Path>,
) -> Result<walden_core::Keyring, KeyFileError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    /// The longest key file read.
    const MAX_LEN: u64 = 64 * 1024;
    let path = path.as_ref();
    let io_error = |error| KeyFileError::Io {
        path: path.to_path_buf(),
        error,
    };
    let invalid =
        |what: String| io_error(std::io::Error::new(std::io::ErrorKind::InvalidData, what));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(invalid(
            "not a regular file (a key file is a small text file)".into(),
        ));
    }
    if meta.len() > MAX_LEN {
        return Err(invalid(format!(
            "{} bytes, longer than a key file can be ({MAX_LEN} bytes at most)",
            meta.len()
        )));
    }
    // The text and every parsed key are wiped when dropped, on success or error; the ring's
    // ciphers wipe their copies when the ring is dropped. Reserved whole before reading, so
    // that no reallocation leaves a copy of key bytes behind.
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(MAX_LEN as usize + 1));
    // At most one byte more than the limit: a file that grew since its `fstat` is refused too.
    file.take(MAX_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_LEN {
        return Err(invalid(format!(
            "longer than a key file can be ({MAX_LEN} bytes at most)"
        )));
    }
    let text = core::str::from_utf8(&bytes)
        .map_err(|_| invalid("stream did not contain valid UTF-8".into()))?;
    parse_key_file(text, path)
}

#[cfg(feature = "encrypt")]
fn parse_key_file(
    text: &str,
    path: &std::path::Path,
) -> Result<walden_core::Keyring, KeyFileError> {
    let mut ring = walden_core::Keyring::new();
    let mut last = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || KeyFileError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
        };
        // Hex digits only: `from_str_radix` alone would take a `+` sign ("+a" as 0x0a).
        if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut key = zeroize::Zeroizing::new([0u8; walden_core::KEY_LEN]);
        for (k, pair) in key.iter_mut().zip(line.as_bytes().chunks(2)) {
            let hex = core::str::from_utf8(pair).map_err(|_| bad())?;
            *k = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
        }
        ring.add(&key).map_err(|error| KeyFileError::Keyring {
            path: path.to_path_buf(),
            line: i + 1,
            error,
        })?;
        last = Some(key);
    }
    let Some(current) = last.as_deref() else {
        return Err(KeyFileError::Empty {
            path: path.to_path_buf(),
        });
    };
    // Cannot fail: the key is in the ring already.
    let _ = ring.add_current(current);
    Ok(ring)
}

#[cfg(all(test, feature = "encrypt"))]
mod tests {
    use super::*;

    #[test]
    fn key_files_name_bad_lines_and_make_the_last_key_current() {
        let p = std::path::Path::new("k");
        let a = "a5".repeat(32);
        let b = "3C".repeat(32);
        let ring = parse_key_file(&format!("# keys\n{a}\n\n{b}\n"), p).unwrap();
        assert_eq!(ring.ids().len(), 2);
        assert_eq!(ring.current(), Some(walden_core::key_id(&[0x3c; 32])));
        for (text, line) in [
            (format!("{a}\nzz{}\n", &b[2..]), 2),
            (format!("{}\n", &a[1..]), 1),
            // 64 characters, but signs are not hex digits (`from_str_radix` takes "+a").
            (format!("{a}\n{b}\n{}\n", "+a".repeat(32)), 3),
        ] {
            match parse_key_file(&text, p) {
                Err(KeyFileError::BadLine { line: l, .. }) => assert_eq!(l, line),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            parse_key_file("# nothing\n", p),
            Err(KeyFileError::Empty { .. })
        ));
        // Errors never show key bytes.
        let e = parse_key_file(&format!("{a}\n{}x\n", &b[1..]), p).unwrap_err();
        assert!(!e.to_string().contains("3C3C"), "{e}");
    }

    /// Only a regular file of at most 64 KiB is read: a device that never ends (`/dev/zero`
    /// grew memory without bound), a FIFO (which blocked the open until a writer came), a
    /// directory or a longer file is refused as not a key file, at once.
    #[test]
    fn key_files_that_are_not_small_regular_files_are_refused_without_reading_them() {
        let is_invalid = |r: Result<walden_core::Keyring, KeyFileError>| match r {
            Err(KeyFileError::Io { error, .. }) => error.kind() == std::io::ErrorKind::InvalidData,
            other => panic!("{other:?}"),
        };
        let tmp = tempfile::tempdir().unwrap();
        assert!(is_invalid(load_key_file("/dev/zero")));
        assert!(is_invalid(load_key_file(tmp.path())));
        let fifo = tmp.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(is_invalid(load_key_file(&fifo)));

        let key = format!("{}\n", "a5".repeat(32));
        let file = tmp.path().join("keys");
        // Exactly the limit: read (comments and a key).
        let mut text = "#".repeat(64 * 1024 - key.len() - 1);
        text.push('\n');
        text.push_str(&key);
        assert_eq!(text.len(), 64 * 1024);
        std::fs::write(&file, &text).unwrap();
        assert_eq!(load_key_file(&file).unwrap().ids().len(), 1);
        // One byte more: refused, and the error says why.
        text.insert(0, '#');
        std::fs::write(&file, &text).unwrap();
        let e = load_key_file(&file).unwrap_err();
        assert!(e.to_string().contains("65536 bytes at most"), "{e}");
        // A symlink to a key file is followed.
        std::fs::write(&file, &key).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(load_key_file(&link).unwrap().ids().len(), 1);
    }
}
