//! `embedded-io` integration: append a record by writing it piecewise through
//! [`embedded_io::Write`] into a caller-owned buffer, then commit it in one append.

use crate::error::AppendError;
use crate::lsn::Lsn;
use crate::storage::Storage;
use crate::table::SegmentTable;
use crate::wal::Wal;

/// Collects one record's bytes in a caller buffer through `embedded_io::Write`; nothing reaches
/// the log until [`RecordWriter::commit`].
pub struct RecordWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

/// The record did not fit in the writer's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFull;

impl core::fmt::Display for RecordFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("record does not fit in the writer's buffer")
    }
}

impl core::error::Error for RecordFull {}

impl embedded_io::Error for RecordFull {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::OutOfMemory
    }
}

impl<'b> RecordWriter<'b> {
    /// A writer over `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends the collected bytes as one record.
    pub fn commit<S: Storage, Table: SegmentTable>(
        self,
        wal: &mut Wal<S, Table>,
    ) -> Result<Lsn, AppendError<S::Error>> {
        wal.append(&self.buf[..self.len])
    }
}

impl embedded_io::ErrorType for RecordWriter<'_> {
    type Error = RecordFull;
}

impl embedded_io::Write for RecordWriter<'_> {
    fn write(&mut self, data: &[u8]) -> Result<usize, RecordFull> {
        if data.is_empty() {
            return Ok(0);
        }
        let n = data.len().min(self.buf.len() - self.len);
        if n == 0 {
            return Err(RecordFull);
        }
        self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), RecordFull> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{Mem, open, small};
    use embedded_io::Write as _;

    #[test]
    fn written_pieces_become_one_record() {
        let (mut wal, _) = open(Mem::default(), small());
        let mut buf = [0u8; 16];
        let mut w = RecordWriter::new(&mut buf);
        w.write_all(b"hello, ").unwrap();
        w.write_all(b"log").unwrap();
        assert_eq!(w.write_all(&[0u8; 10]), Err(RecordFull));
        let mut w = RecordWriter::new(&mut buf);
        write!(w, "n={}", 42).unwrap();
        let lsn = w.commit(&mut wal).unwrap();
        assert_eq!(wal.read(lsn, &mut [0u8; 16]).unwrap().payload, b"n=42");
        let e = embedded_io::Error::kind(
            &crate::AppendError::<crate::tests::mem::MemError>::RecordTooLarge { len: 1, max: 0 },
        );
        assert_eq!(e, embedded_io::ErrorKind::InvalidInput);
    }
}
