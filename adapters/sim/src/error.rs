//! The simulator's error: a `Copy` value that says what failed, why, and at which operation.

use core::fmt;

use walden_core::{StorageError, StorageErrorKind};

use crate::fault::FaultAction;

/// Why a [`SimStorage`](crate::SimStorage) operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimErrorCause {
    /// The caller asked for something the storage cannot do: a missing segment, an existing
    /// one, a write past the end, a truncate that would grow. A real medium fails the same way.
    Refused,
    /// A fault scheduled with [`FaultSchedule`](crate::FaultSchedule) fired.
    Injected,
    /// The operation budget ran out ([`SimStorage::crash_after`](crate::SimStorage::crash_after)):
    /// the power is off and every operation fails until [`SimStorage::crash`](crate::SimStorage::crash)
    /// produces the post-crash storage.
    Crashed,
}

/// The error of [`SimStorage`](crate::SimStorage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimError {
    kind: StorageErrorKind,
    cause: SimErrorCause,
    op_index: u64,
    detail: &'static str,
}

impl SimError {
    pub(crate) const fn new(
        kind: StorageErrorKind,
        cause: SimErrorCause,
        op_index: u64,
        detail: &'static str,
    ) -> Self {
        Self {
            kind,
            cause,
            op_index,
            detail,
        }
    }

    /// Why the operation failed.
    pub const fn cause(&self) -> SimErrorCause {
        self.cause
    }

    /// The index (in the operation trace) of the operation that failed.
    pub const fn op_index(&self) -> u64 {
        self.op_index
    }

    /// `true` if this error only means the simulated power is off.
    pub const fn is_crash(&self) -> bool {
        matches!(self.cause, SimErrorCause::Crashed)
    }

    /// A short description of the particular failure.
    pub const fn detail(&self) -> &'static str {
        self.detail
    }
}

impl StorageError for SimError {
    fn kind(&self) -> StorageErrorKind {
        self.kind
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = match self.cause {
            SimErrorCause::Refused => "refused",
            SimErrorCause::Injected => "injected fault",
            SimErrorCause::Crashed => "simulated power loss",
        };
        write!(
            f,
            "{} at op {} ({cause}: {})",
            self.kind, self.op_index, self.detail
        )
    }
}

/// An operation the simulated medium refuses whatever the schedule says (`kind` names why).
pub(crate) fn refused(kind: StorageErrorKind, index: u64, detail: &'static str) -> SimError {
    SimError::new(kind, SimErrorCause::Refused, index, detail)
}

/// An operation failed by a scheduled fault.
pub(crate) fn injected(kind: StorageErrorKind, index: u64, detail: &'static str) -> SimError {
    SimError::new(kind, SimErrorCause::Injected, index, detail)
}

/// The error a fault that has no special meaning for this operation produces, if any.
pub(crate) fn plain_failure(fault: Option<FaultAction>, index: u64) -> Result<(), SimError> {
    match fault {
        None | Some(FaultAction::Misdirect { .. }) => Ok(()),
        Some(FaultAction::Fail(kind)) => Err(injected(kind, index, "operation failed")),
        Some(FaultAction::ShortWrite { .. }) => Err(injected(
            StorageErrorKind::ShortWrite,
            index,
            "operation failed",
        )),
        Some(FaultAction::SyncLosesData) => {
            Err(injected(StorageErrorKind::Io, index, "operation failed"))
        }
    }
}

/// `value` as an index into memory, or `NoSpace` when it does not fit.
pub(crate) fn to_index(value: u64, index: u64) -> Result<usize, SimError> {
    usize::try_from(value)
        .map_err(|_| refused(StorageErrorKind::NoSpace, index, "offset beyond memory"))
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use alloc::format;

    use super::*;

    #[test]
    fn display_names_kind_op_and_cause() {
        let e = SimError::new(
            StorageErrorKind::Io,
            SimErrorCause::Injected,
            7,
            "sync failed",
        );
        assert_eq!(
            format!("{e}"),
            "I/O error at op 7 (injected fault: sync failed)"
        );
        assert_eq!(e.kind(), StorageErrorKind::Io);
        assert!(!e.is_crash());
    }
}
