//! The adapter's error: which operation failed, its [`StorageErrorKind`], and the WASI error code.

use core::fmt;

use walden_core::{StorageError, StorageErrorKind};

/// A failed WASI filesystem call. `Copy` and allocation-free, so core's errors that embed it
/// stay `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasiError {
    op: &'static str,
    kind: StorageErrorKind,
    code: &'static str,
}

impl WasiError {
    /// An error from operation `op` with a WASI error code named `code` (its WIT name, e.g.
    /// `insufficient-space`), or a descriptive word where no WASI code exists.
    pub const fn new(op: &'static str, kind: StorageErrorKind, code: &'static str) -> Self {
        Self { op, kind, code }
    }

    /// An error from operation `op` whose WASI `error-code` has the WIT name `code`; the kind
    /// follows from the code (`insufficient-space` and `quota` are [`StorageErrorKind::NoSpace`],
    /// `access`, `not-permitted` and `read-only` are [`StorageErrorKind::PermissionDenied`],
    /// `no-entry` is `NotFound`, `exist` is `AlreadyExists`, `unsupported` is `Unsupported`, the
    /// rest `Io`).
    pub fn from_code(op: &'static str, code: &'static str) -> Self {
        Self::new(op, kind_of_code(code), code)
    }

    /// The operation that failed (`open-at`, `write`, `sync-data`, ...).
    pub const fn op(&self) -> &'static str {
        self.op
    }

    /// The WASI `error-code` name as the host reported it, or a short reason when the failure
    /// was detected by the adapter itself.
    pub const fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for WasiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.op, self.kind, self.code)
    }
}

impl StorageError for WasiError {
    fn kind(&self) -> StorageErrorKind {
        self.kind
    }
}

impl core::error::Error for WasiError {}

/// Maps a WASI `error-code` name to the kind core reacts to. Kept as a name match so it can be
/// unit-tested on the host, where the `wasi` bindings do not exist.
fn kind_of_code(code: &str) -> StorageErrorKind {
    match code {
        "insufficient-space" | "quota" => StorageErrorKind::NoSpace,
        "access" | "not-permitted" | "read-only" => StorageErrorKind::PermissionDenied,
        "no-entry" => StorageErrorKind::NotFound,
        "exist" => StorageErrorKind::AlreadyExists,
        // `is-directory`: a directory where a segment file should be (walden-std says the same).
        "unsupported" | "is-directory" => StorageErrorKind::Unsupported,
        _ => StorageErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_codes_to_kinds() {
        assert_eq!(
            kind_of_code("insufficient-space"),
            StorageErrorKind::NoSpace
        );
        assert_eq!(kind_of_code("quota"), StorageErrorKind::NoSpace);
        assert_eq!(kind_of_code("access"), StorageErrorKind::PermissionDenied);
        assert_eq!(
            kind_of_code("not-permitted"),
            StorageErrorKind::PermissionDenied
        );
        assert_eq!(
            kind_of_code("read-only"),
            StorageErrorKind::PermissionDenied
        );
        assert_eq!(kind_of_code("no-entry"), StorageErrorKind::NotFound);
        assert_eq!(kind_of_code("exist"), StorageErrorKind::AlreadyExists);
        assert_eq!(kind_of_code("is-directory"), StorageErrorKind::Unsupported);
        assert_eq!(kind_of_code("io"), StorageErrorKind::Io);
        assert_eq!(kind_of_code("bad-descriptor"), StorageErrorKind::Io);
    }

    #[test]
    fn displays_op_kind_and_code() {
        let e = WasiError::new("sync-data", StorageErrorKind::Io, "io");
        assert_eq!(e.to_string(), "sync-data: I/O error (io)");
        assert_eq!(e.kind(), StorageErrorKind::Io);
    }
}
