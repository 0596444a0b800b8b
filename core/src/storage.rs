//! The `Storage` trait: the only way core touches a medium.
//!
//! A storage holds numbered *segments* (byte arrays that grow by writes) inside one *directory*.
//! Every method states what it promises after a power loss, because recovery is only as correct
//! as those promises. The contract, in one place:
//!
//! * Bytes written by [`Storage::write`] are **volatile** until [`Storage::sync`] on the same
//!   segment returns `Ok`. Until then any subset of them may be lost, torn at sector granularity,
//!   or replaced by zeros after a crash — even if later writes survived.
//! * A segment created by [`Storage::create`] or removed by [`Storage::remove`] is volatile until
//!   [`Storage::sync_dir`] returns `Ok`: after a crash it may or may not exist.
//! * A [`Storage::truncate`] is volatile until [`Storage::sync`] on that segment returns `Ok`.
//! * A failed `sync` may have dropped the dirty data. Core never retries a failed sync and calls
//!   the data durable: the log is poisoned instead (see `Wal`).

use core::fmt;

/// Identifies one segment within a storage. Segments are numbered in the order the log creates
/// them; the number is also written into the segment's header.
pub type SegmentId = u64;

/// The broad class of a storage failure, so core and callers can react without knowing the
/// adapter's concrete error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StorageErrorKind {
    /// The segment does not exist.
    NotFound,
    /// The segment already exists (from `create`).
    AlreadyExists,
    /// The medium is full.
    NoSpace,
    /// The medium or directory refuses the operation (permissions, read-only mount).
    PermissionDenied,
    /// A write stored fewer bytes than asked for.
    ShortWrite,
    /// Another process holds the directory.
    Locked,
    /// The operation is not supported by this storage.
    Unsupported,
    /// Any other I/O failure.
    Io,
}

impl StorageErrorKind {
    /// A short human description.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::NoSpace => "no space left on the medium",
            Self::PermissionDenied => "permission denied",
            Self::ShortWrite => "short write",
            Self::Locked => "directory is locked by another process",
            Self::Unsupported => "unsupported operation",
            Self::Io => "I/O error",
        }
    }
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of a [`Storage`]. `Copy` so that core's errors, which embed it, stay `Copy`.
pub trait StorageError: fmt::Debug + fmt::Display + Copy {
    /// What kind of failure this is.
    fn kind(&self) -> StorageErrorKind;
}

/// A directory of numbered segments on some medium. See the module documentation for the
/// durability contract shared by all methods.
///
/// Reads (`list`, `len`, `read`) take `&self`, so readers share the log. A driver whose reads
/// need `&mut self` (SPI flash, SD cards, `embedded-storage`'s `ReadNorFlash`) goes in a
/// `RefCell` inside the adapter, borrowed for the length of each call: core never calls the
/// storage from inside a storage call (docs/EMBEDDED.md, "`&self` reads and `RefCell`").
pub trait Storage {
    /// The adapter's error.
    type Error: StorageError;

    /// Calls `each` with the id of every segment in the directory, in any order.
    ///
    /// Files that are not segments (foreign files, temporary files) are not reported here;
    /// adapters report them through their own API. Listing reflects the volatile namespace.
    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), Self::Error>;

    /// Creates an empty segment. Fails with [`StorageErrorKind::AlreadyExists`] if it exists.
    ///
    /// Power loss: the new segment may vanish until [`Storage::sync_dir`] returns `Ok`.
    fn create(&mut self, id: SegmentId) -> Result<(), Self::Error>;

    /// Removes a segment.
    ///
    /// Power loss: the segment may reappear, whole, until [`Storage::sync_dir`] returns `Ok`.
    fn remove(&mut self, id: SegmentId) -> Result<(), Self::Error>;

    /// The current (volatile) length of a segment in bytes.
    fn len(&self, id: SegmentId) -> Result<u64, Self::Error>;

    /// Reads up to `buf.len()` bytes at `offset` and returns how many were read. Returns fewer
    /// only at the end of the segment (zero at or beyond it). Reads see volatile data.
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error>;

    /// Writes all of `data` at `offset`, growing the segment if needed. `offset` is never beyond
    /// the current length. Core writes a byte of a segment at most once between truncations: it
    /// appends at the end of its own data (which may lie inside space the adapter preallocated
    /// and reports in [`Storage::len`]), and rewrites only what it truncated first. So an
    /// adapter for media that cannot overwrite (NOR flash) can erase on `truncate`.
    ///
    /// Power loss: the bytes are volatile until [`Storage::sync`] on this segment returns `Ok`;
    /// before that they may be lost, torn or reordered with other unsynced writes.
    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), Self::Error>;

    /// Writes `first` at `offset` and `second` just after it: exactly two [`Storage::write`]s
    /// (the default), which an adapter may do in one step (core writes a record's header and
    /// its payload this way; walden-std buffers both with one round of bookkeeping).
    fn write_parts(
        &mut self,
        id: SegmentId,
        offset: u64,
        first: &[u8],
        second: &[u8],
    ) -> Result<(), Self::Error> {
        self.write(id, offset, first)?;
        self.write(id, offset + first.len() as u64, second)
    }

    /// Sets the segment's length to `len` (never larger than the current length).
    ///
    /// Power loss: volatile until [`Storage::sync`] on this segment returns `Ok`.
    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), Self::Error>;

    /// Makes every earlier write and truncate of this segment durable (`fdatasync`).
    ///
    /// If it fails, the dirty data may already be gone even though a retry could succeed;
    /// core treats any failure as final for the open log.
    fn sync(&mut self, id: SegmentId) -> Result<(), Self::Error>;

    /// Makes every earlier create and remove durable (`fsync` of the directory).
    fn sync_dir(&mut self) -> Result<(), Self::Error>;

    /// Hint: the segment will grow to about `len` bytes. Adapters may preallocate; the bytes
    /// past the written end must read as zeros or be absent. The default does nothing.
    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), Self::Error> {
        let _ = (id, len);
        Ok(())
    }

    /// The most bytes one segment can ever hold, on media whose segments cannot grow (a raw
    /// flash area); `None` (the default) where a segment grows as far as it is written, as a
    /// file does. With a capacity, `Wal::open` refuses a configuration whose segments or
    /// largest record would not fit one (`ConfigError::LargerThanStorage`), and an append
    /// refuses a batch that would not fit an empty segment (`AppendError::BatchDoesNotFit`)
    /// before writing anything, instead of failing part way and poisoning the log.
    fn segment_capacity(&self) -> Option<u64> {
        None
    }
}

/// Reads exactly `buf.len()` bytes or reports how many were available (fewer only at the
/// end of the segment). Never more than `buf.len()`, whatever count a storage's `read` claims.
pub fn read_full<S: Storage + ?Sized>(
    storage: &S,
    id: SegmentId,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize, S::Error> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let n = storage.read(id, offset + done as u64, rest)?;
        if n == 0 {
            break;
        }
        // A count beyond the slice is a lying adapter's: it cannot have copied more.
        done += n.min(rest.len());
    }
    Ok(done)
}
