//! Streaming reads from any LSN into caller buffers, across segments.

use crate::error::{Corruption, IoFailure, Op, ReadError};
use crate::format::{RECORD_HEADER_LEN, RecordHeader, RecordKind, SEGMENT_HEADER_LEN};
use crate::lsn::Lsn;
use crate::recovery::Case;
use crate::storage::{Storage, read_full};
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
pub struct Reader<'w, S: Storage, const N: usize> {
    wal: &'w Wal<S, N>,
    segment: usize,
    offset: u64,
    next: Lsn,
}

impl<S: Storage, const N: usize> Wal<S, N> {
    /// A reader positioned at `from`. `from` may be one past the last LSN (nothing to read
    /// yet); anything outside `first_lsn..=last_lsn + 1` is [`ReadError::OutOfRange`].
    pub fn reader(&self, from: Lsn) -> Result<Reader<'_, S, N>, ReadError<S::Error>> {
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
        let offset = if from > last {
            self.segments[segment].end
        } else {
            match self.locate(segment, from) {
                Ok(Located::At { offset, .. }) => offset,
                Ok(Located::InBatch { .. }) => {
                    // Reading may start anywhere, also inside a batch: walk to it.
                    let mut r = Reader {
                        wal: self,
                        segment,
                        offset: SEGMENT_HEADER_LEN as u64,
                        next: self.segments[segment].first_lsn,
                    };
                    while r.next < from {
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
            offset,
            next: from,
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

impl<'w, S: Storage, const N: usize> Reader<'w, S, N> {
    /// The LSN the next call returns.
    pub fn position(&self) -> Lsn {
        self.next
    }

    fn header(&mut self) -> Result<Option<(RecordHeader, u64)>, ReadError<S::Error>> {
        if self.next > self.wal.last_lsn() {
            return Ok(None);
        }
        let segs = &self.wal.segments;
        while self.offset >= segs[self.segment].end && self.segment + 1 < segs.len() {
            self.segment += 1;
            self.offset = SEGMENT_HEADER_LEN as u64;
        }
        let seg = segs[self.segment];
        let mut buf = [0u8; RECORD_HEADER_LEN];
        let n = read_full(&self.wal.storage, seg.id, self.offset, &mut buf)
            .map_err(|error| self.io(error))?;
        let corrupt = |detail| {
            ReadError::Corrupted(Corruption {
                case: Case::MidLogCorruption,
                segment: seg.id,
                offset: self.offset,
                lsn: Some(self.next),
                detail,
            })
        };
        let h = RecordHeader::decode(&buf[..n], seg.checksum, seg.salt)
            .map_err(|_| corrupt("record header does not verify"))?;
        if h.lsn != self.next {
            return Err(corrupt("unexpected LSN"));
        }
        Ok(Some((h, seg.salt)))
    }

    fn io(&self, error: S::Error) -> ReadError<S::Error> {
        ReadError::Storage(IoFailure {
            op: Op::Read,
            segment: Some(self.wal.segments[self.segment].id),
            error,
        })
    }

    fn advance(&mut self, h: &RecordHeader) {
        self.offset += RECORD_HEADER_LEN as u64 + u64::from(h.length);
        self.next = self.next.next();
    }

    /// Skips one record without reading its payload.
    fn skip(&mut self) -> Result<(), ReadError<S::Error>> {
        if let Some((h, _)) = self.header()? {
            self.advance(&h);
        }
        Ok(())
    }

    /// Reads the next record into `buf`, or `None` at the end of the log. If `buf` is too
    /// small, returns [`ReadError::BufferTooSmall`] and stays where it is.
    pub fn next<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<Record<'b>>, ReadError<S::Error>> {
        let Some((h, salt)) = self.header()? else {
            return Ok(None);
        };
        let len = h.length as usize;
        if len > buf.len() {
            return Err(ReadError::BufferTooSmall { needed: len });
        }
        let seg = self.wal.segments[self.segment];
        let at = self.offset + RECORD_HEADER_LEN as u64;
        let n = read_full(&self.wal.storage, seg.id, at, &mut buf[..len])
            .map_err(|error| self.io(error))?;
        if n != len || seg.checksum.of_salted(salt, &buf[..len]) != h.payload_crc {
            return Err(ReadError::Corrupted(Corruption {
                case: Case::MidLogCorruption,
                segment: seg.id,
                offset: self.offset,
                lsn: Some(self.next),
                detail: "payload checksum mismatch",
            }));
        }
        let lsn = h.lsn;
        self.advance(&h);
        Ok(Some(Record {
            lsn,
            kind: h.kind,
            payload: &buf[..len],
        }))
    }
}
