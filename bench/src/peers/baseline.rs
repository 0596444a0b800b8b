//! The plain baseline: one file, `[len u32 LE][crc32 u32 LE][payload]` through a `BufWriter`,
//! `sync_data` for durability, an in-memory offset table for reads by LSN.
//!
//! This is what a careful programmer writes in an afternoon. It has no group commit: concurrent
//! writers queue on a mutex and each pays its own `fdatasync`. A WAL library that does not beat
//! it has no performance reason to exist.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Write},
    os::unix::fs::FileExt,
    path::Path,
    sync::Mutex,
};

use crate::subject::{Capability, Durability, Lsn, Peer, Replayed, Subject, fold_bytes};

const FILE_NAME: &str = "baseline.log";
const HEADER_LEN: u64 = 8;

/// The `BufWriter` + `sync_data` baseline.
pub(crate) struct Baseline;

struct Inner {
    writer: BufWriter<File>,
    /// Byte offset of each record's header, indexed by LSN.
    offsets: Vec<u64>,
    end: u64,
}

struct BaselineLog {
    inner: Mutex<Inner>,
    reader: File,
}

impl Peer for Baseline {
    fn name(&self) -> &'static str {
        "baseline"
    }

    fn durability(&self) -> Durability {
        Durability::Fsync
    }

    fn supports(&self, _capability: Capability) -> Result<(), &'static str> {
        Ok(())
    }

    fn create(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // A created file is only durable once its directory entry is.
        File::open(dir)?.sync_all()?;
        Self::wrap(file, File::open(&path)?, Vec::new(), 0)
    }

    fn open(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        let path = dir.join(FILE_NAME);
        let mut offsets = Vec::new();
        let end = scan(&path, |offset, _| {
            offsets.push(offset);
        })?;
        let file = OpenOptions::new().write(true).open(&path)?;
        // Cut a torn tail so appends continue from the last valid record.
        file.set_len(end)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Self::wrap(file, File::open(&path)?, offsets, end)
    }

    fn replay(&self, dir: &Path) -> io::Result<Replayed> {
        let mut seen = Replayed::default();
        let mut fold = 0;
        scan(&dir.join(FILE_NAME), |_, payload| {
            seen.records += 1;
            seen.bytes += payload.len() as u64;
            fold = fold_bytes(fold, payload);
        })?;
        core::hint::black_box(fold);
        Ok(seen)
    }
}

impl Baseline {
    fn wrap(file: File, reader: File, offsets: Vec<u64>, end: u64) -> io::Result<Box<dyn Subject>> {
        Ok(Box::new(BaselineLog {
            inner: Mutex::new(Inner {
                writer: BufWriter::with_capacity(1 << 20, file),
                offsets,
                end,
            }),
            reader,
        }))
    }
}

/// Reads records from the start, checking each checksum; stops at the first record that is
/// short or fails its checksum (a torn tail) and returns the offset just past the last good one.
fn scan(path: &Path, mut visit: impl FnMut(u64, &[u8])) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut header = [0u8; HEADER_LEN as usize];
    let mut payload = Vec::new();
    let mut offset = 0u64;
    loop {
        if read_full(&mut reader, &mut header)? < header.len() {
            return Ok(offset);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        payload.resize(len, 0);
        if read_full(&mut reader, &mut payload)? < len || crc32fast::hash(&payload) != crc {
            return Ok(offset);
        }
        visit(offset, &payload);
        offset += HEADER_LEN + len as u64;
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Subject for BaselineLog {
    fn append(&self, records: &[&[u8]], durable: bool) -> io::Result<Lsn> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let first = inner.offsets.len() as Lsn;
        for record in records {
            let len = u32::try_from(record.len()).map_err(|_| io::Error::other("too long"))?;
            let mut header = [0u8; HEADER_LEN as usize];
            header[..4].copy_from_slice(&len.to_le_bytes());
            header[4..].copy_from_slice(&crc32fast::hash(record).to_le_bytes());
            inner.writer.write_all(&header)?;
            inner.writer.write_all(record)?;
            let at = inner.end;
            inner.offsets.push(at);
            inner.end += HEADER_LEN + u64::from(len);
        }
        if durable {
            inner.writer.flush()?;
            inner.writer.get_ref().sync_data()?;
        }
        Ok(first)
    }

    fn read(&self, lsn: Lsn, buf: &mut Vec<u8>) -> io::Result<()> {
        let offset = {
            let inner = self
                .inner
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            usize::try_from(lsn)
                .ok()
                .and_then(|i| inner.offsets.get(i).copied())
                .ok_or_else(|| io::Error::other("lsn out of range"))?
        };
        let mut header = [0u8; HEADER_LEN as usize];
        self.reader.read_exact_at(&mut header, offset)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        buf.clear();
        buf.resize(len, 0);
        self.reader.read_exact_at(buf, offset + HEADER_LEN)?;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if crc32fast::hash(buf) != crc {
            return Err(io::Error::other("checksum mismatch"));
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        inner.writer.flush()?;
        inner.writer.get_ref().sync_data()
    }
}
