//! Streaming reads from any LSN into caller buffers, across segments.

use crate::case::Case;
use crate::cursor::{Located as CursorLocated, RecordCursor};
use crate::error::{Corruption, IoFailure, Op, ReadError};
use crate::format::{RECORD_HEADER_LEN, RecordFlags, RecordKind, SEGMENT_HEADER_LEN};
use crate::lsn::Lsn;
use crate::storage::{Storage, read_full};
use crate::table::SegmentTable;
#[cfg(any(feature = "compress", feature = "encrypt"))]
use crate::transform::DecodeError;
use crate::wal::{LocateError, Located, Wal};

/// One record read into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'b> {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its place in a batch.
    pub kind: RecordKind,
    /// The payload, borrowed from the caller's buffer.
    pub payload: &'b [u8],
}

/// Reads records in LSN order, verifying each checksum. Created by [`Wal::reader`].
pub struct Reader<'w, S: Storage, Table: SegmentTable> {
    wal: &'w Wal<S, Table>,
    segment: usize,
    cursor: RecordCursor,
}

impl<S: Storage, Table: SegmentTable> Wal<S, Table> {
    /// A reader positioned at `from`. `from` may be one past the last LSN (nothing to read
    /// yet); anything outside `first_lsn..=last_lsn + 1` is [`ReadError::OutOfRange`].
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn reader(&self, from: Lsn) -> Result<Reader<'_, S, Table>, ReadError<S::Error>> {
        let (first, last) = (self.first_lsn(), self.last_lsn());
        if from < first || from > last.next() {
            return Err(ReadError::OutOfRange {
                lsn: from,
                first,
                last,
            });
        }
        let segment = self
            .segments
            .iter()
            .rposition(|s| s.first_lsn <= from)
            .unwrap_or(0);
        let seg = &self.segments[segment];
        let keys = seg.keys(self.config.max_record_size);
        let cursor = if from > last {
            RecordCursor::resume(keys, seg.end, from)
        } else {
            match self.locate(segment, from) {
                Ok(Located::At { offset, .. }) => RecordCursor::resume(keys, offset, from),
                Ok(Located::InBatch { .. }) => {
                    // Reading may start anywhere, also inside a batch: walk to it.
                    let mut r = Reader {
                        wal: self,
                        segment,
                        cursor: RecordCursor::new(keys, seg.first_lsn),
                    };
                    while r.cursor.next_lsn() < from {
                        r.skip()?;
                    }
                    return Ok(r);
                }
                Err(LocateError::Corrupted(c)) => return Err(ReadError::Corrupted(c)),
                Err(LocateError::Storage(s)) => return Err(ReadError::Storage(s)),
            }
        };
        Ok(Reader {
            wal: self,
            segment,
            cursor,
        })
    }

    /// Reads the single record `lsn` into `buf`.
    pub fn read<'b>(&self, lsn: Lsn, buf: &'b mut [u8]) -> Result<Record<'b>, ReadError<S::Error>> {
        let mut r = self.reader(lsn)?;
        match r.next(buf)? {
            Some(rec) => Ok(rec),
            None => Err(ReadError::OutOfRange {
                lsn,
                first: self.first_lsn(),
                last: self.last_lsn(),
            }),
        }
    }
}

impl<'w, S: Storage, Table: SegmentTable> Reader<'w, S, Table> {
    /// The LSN the next call returns.
    pub fn position(&self) -> Lsn {
        self.cursor.next_lsn()
    }

    /// The verified header of the next data record (metadata records are stepped over), or
    /// `None` at the end of the log.
    fn header(&mut self) -> Result<Option<CursorLocated>, ReadError<S::Error>> {
        loop {
            if self.cursor.next_lsn() > self.wal.last_lsn() {
                return Ok(None);
            }
            let segs = &self.wal.segments;
            while self.cursor.at_end() {
                let Some(&seg) = segs.get(self.segment + 1) else {
                    break;
                };
                self.segment += 1;
                self.cursor = RecordCursor::resume(
                    seg.keys(self.wal.config.max_record_size),
                    SEGMENT_HEADER_LEN as u64,
                    self.cursor.next_lsn(),
                );
            }
            let seg = &segs[self.segment];
            let mut buf = [0u8; RECORD_HEADER_LEN];
            let n = read_full(&self.wal.storage, seg.id, self.cursor.offset(), &mut buf)
                .map_err(|error| self.io(error))?;
            let found = self.cursor.data_header(&buf[..n]);
            if let Some(at) = found.map_err(|f| self.corrupt(f.describe()))? {
                return Ok(Some(at));
            }
        }
    }

    // Always inlined on 32-bit targets: without walden-core's `detail` the words are dropped
    // and each caller's `describe` with them (docs/EMBEDDED.md).
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    fn corrupt(&self, detail: &'static str) -> ReadError<S::Error> {
        ReadError::Corrupted(Corruption {
            case: Case::MidLogCorruption,
            segment: self.wal.segments[self.segment].id,
            offset: self.cursor.offset(),
            lsn: Some(self.cursor.next_lsn()),
            detail: crate::error::detail(detail),
        })
    }

    #[cfg_attr(target_pointer_width = "32", inline(always))]
    fn io(&self, error: S::Error) -> ReadError<S::Error> {
        ReadError::Storage(IoFailure {
            op: Op::Read,
            segment: Some(self.wal.segments[self.segment].id),
            error,
        })
    }

    /// Skips one record without reading its payload.
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    fn skip(&mut self) -> Result<(), ReadError<S::Error>> {
        if let Some(at) = self.header()? {
            self.cursor
                .accept(&at, None)
                .map_err(|f| self.corrupt(f.describe()))?;
        }
        Ok(())
    }

    /// Reads the next record into `buf`, or `None` at the end of the log. If `buf` is too
    /// small, returns [`ReadError::BufferTooSmall`] and stays where it is.
    ///
    /// Allocates nothing: a compressed record (format version 3) is read into the end of
    /// `buf` and decoded into its start, so it needs its original length plus its stored
    /// length (at most `2 × max_record_size + 20` bytes in all, an encrypted record's frame
    /// included; `docs/FORMAT.md`).
    pub fn next<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<Record<'b>>, ReadError<S::Error>> {
        let Some(at) = self.header()? else {
            return Ok(None);
        };
        let len = at.header.length as usize;
        if len > buf.len() {
            return Err(ReadError::BufferTooSmall { needed: len });
        }
        let wal = self.wal;
        let seg = &wal.segments[self.segment];
        // Without the transforms built in, a transformed record is refused before it is read
        // (and the embedded build carries no decoding path).
        #[cfg(not(any(feature = "compress", feature = "encrypt")))]
        if at.header.flags != RecordFlags::PLAIN {
            return Err(ReadError::NotBuiltIn {
                segment: seg.id,
                lsn: at.header.lsn,
                what: "compressed or encrypted record",
            });
        }
        // The stored bytes at the end of the buffer, room for the decoded ones before them.
        let split = if at.header.flags == RecordFlags::PLAIN {
            0
        } else {
            buf.len() - len
        };
        let (out, stored) = buf.split_at_mut(split);
        let stored = &mut stored[..len];
        let n = read_full(&self.wal.storage, seg.id, at.payload_offset(), stored)
            .map_err(|error| self.io(error))?;
        self.cursor
            .verify_payload(&at, &stored[..n])
            .map_err(|f| self.corrupt(f.describe()))?;
        #[cfg(not(any(feature = "compress", feature = "encrypt")))]
        let payload: &[u8] = {
            let _ = out;
            stored
        };
        #[cfg(any(feature = "compress", feature = "encrypt"))]
        let payload = {
            let decode_err = |e| match e {
                DecodeError::Corrupt(f) => self.corrupt(f.describe()),
                DecodeError::KeyMissing => ReadError::KeyMissing {
                    segment: seg.id,
                    key_id: seg.key_id().unwrap_or(0),
                },
                DecodeError::BufferTooSmall { needed } => ReadError::BufferTooSmall { needed },
                DecodeError::NotBuiltIn(what) => ReadError::NotBuiltIn {
                    segment: seg.id,
                    lsn: at.header.lsn,
                    what,
                },
                DecodeError::TooLarge { length, max } => ReadError::RecordTooLarge {
                    segment: seg.id,
                    lsn: at.header.lsn,
                    length,
                    max,
                },
            };
            #[cfg(feature = "encrypt")]
            let key = seg.key_id().map(|k| crate::transform::Unseal {
                cipher: self.wal.keys.get(k),
                log_id: self.wal.log_id,
                segment: seg.id,
                salt: seg.salt,
            });
            #[cfg(not(feature = "encrypt"))]
            let key = None;
            self.cursor
                .decode_in_buffer(&at, stored, out, key)
                .map_err(decode_err)?
        };
        self.cursor
            .accept(&at, None)
            .map_err(|f| self.corrupt(f.describe()))?;
        Ok(Some(Record {
            lsn: at.header.lsn,
            kind: at.header.kind,
            payload,
        }))
    }
}
