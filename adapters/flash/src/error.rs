//! The adapter's error: a storage error kind for core, the flash driver's error kind where the
//! driver failed, and what the adapter was doing.

use core::fmt;

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};
use walden_core::{StorageError, StorageErrorKind};

/// Why a flash storage operation failed. `Copy`, as core requires, so a driver's own error is
/// kept as its [`NorFlashErrorKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashError {
    kind: StorageErrorKind,
    flash: Option<NorFlashErrorKind>,
    detail: &'static str,
}

impl FlashError {
    pub(crate) const fn new(kind: StorageErrorKind, detail: &'static str) -> Self {
        Self {
            kind,
            flash: None,
            detail,
        }
    }

    pub(crate) fn driver<E: NorFlashError>(error: &E, detail: &'static str) -> Self {
        Self {
            kind: StorageErrorKind::Io,
            flash: Some(error.kind()),
            detail,
        }
    }

    /// The flash driver's error kind, when the driver failed.
    pub const fn flash(&self) -> Option<NorFlashErrorKind> {
        self.flash
    }

    /// What the adapter was doing.
    pub const fn detail(&self) -> &'static str {
        self.detail
    }
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.detail, self.kind)?;
        if let Some(flash) = self.flash {
            write!(f, " ({flash})")?;
        }
        Ok(())
    }
}

impl StorageError for FlashError {
    fn kind(&self) -> StorageErrorKind {
        self.kind
    }
}

impl core::error::Error for FlashError {}
