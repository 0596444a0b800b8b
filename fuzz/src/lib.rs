//! Shared pieces of Walden's fuzz targets: an in-memory storage, the directory-image byte
//! format of `recover_image` (so the corpus generator and the target agree), and the check
//! that inspection and recovery agree.

use std::collections::BTreeMap;

use walden_core::{
    Config, OpenError, RecoveryPolicy, SegmentId, Storage, StorageError, StorageErrorKind, Verdict,
    Wal,
};

/// Segments in a fuzzed image are capped at this many bytes, so one input is bounded work.
pub const MAX_SEGMENT_BYTES: usize = 1 << 16;

/// Every write is immediately durable; nothing fails.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mem {
    /// The segments.
    pub files: BTreeMap<SegmentId, Vec<u8>>,
}

/// `Mem`'s only error: a missing segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemError(StorageErrorKind);

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl StorageError for MemError {
    fn kind(&self) -> StorageErrorKind {
        self.0
    }
}

const NOT_FOUND: MemError = MemError(StorageErrorKind::NotFound);

impl Storage for Mem {
    type Error = MemError;
    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), MemError> {
        self.files.keys().for_each(|k| each(*k));
        Ok(())
    }
    fn create(&mut self, id: SegmentId) -> Result<(), MemError> {
        match self.files.insert(id, Vec::new()) {
            Some(_) => Err(MemError(StorageErrorKind::AlreadyExists)),
            None => Ok(()),
        }
    }
    fn remove(&mut self, id: SegmentId) -> Result<(), MemError> {
        self.files.remove(&id).map(|_| ()).ok_or(NOT_FOUND)
    }
    fn len(&self, id: SegmentId) -> Result<u64, MemError> {
        Ok(self.files.get(&id).ok_or(NOT_FOUND)?.len() as u64)
    }
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        let f = self.files.get(&id).ok_or(NOT_FOUND)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(f.len());
        let n = buf.len().min(f.len() - start);
        buf[..n].copy_from_slice(&f[start..start + n]);
        Ok(n)
    }
    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), MemError> {
        let f = self.files.get_mut(&id).ok_or(NOT_FOUND)?;
        let at = offset as usize;
        if f.len() < at + data.len() {
            f.resize(at + data.len(), 0);
        }
        f[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        self.files
            .get_mut(&id)
            .ok_or(NOT_FOUND)?
            .truncate(len as usize);
        Ok(())
    }
    fn sync(&mut self, _: SegmentId) -> Result<(), MemError> {
        Ok(())
    }
    fn sync_dir(&mut self) -> Result<(), MemError> {
        Ok(())
    }
}

/// A fuzzed directory image: `[policy][max_record lo][max_record hi]` then segments, each
/// `[id][len lo][len hi][len bytes]`, until the input ends.
pub fn decode_image(data: &[u8]) -> (Mem, Config) {
    let mut mem = Mem::default();
    let (head, mut rest) = data.split_at(data.len().min(3));
    let policy = match head.first().copied().unwrap_or(1) % 3 {
        0 => RecoveryPolicy::Strict,
        1 => RecoveryPolicy::TolerateTornTail,
        _ => RecoveryPolicy::Salvage,
    };
    let max = head
        .get(1..3)
        .map_or(4096, |b| u16::from_le_bytes([b[0], b[1]]));
    let config = Config::default()
        .with_segment_size(1024)
        .with_max_record_size(u32::from(max).max(1))
        .with_recovery(policy);
    while rest.len() >= 3 {
        let id = SegmentId::from(rest[0]);
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(MAX_SEGMENT_BYTES);
        let body = &rest[3..];
        let take = len.min(body.len());
        mem.files.insert(id, body[..take].to_vec());
        rest = &body[take..];
    }
    (mem, config)
}

/// The inverse of [`decode_image`], for the seed corpus.
pub fn encode_image(mem: &Mem, policy: u8, max_record: u16) -> Vec<u8> {
    let mut out = vec![policy];
    out.extend_from_slice(&max_record.to_le_bytes());
    for (id, bytes) in &mem.files {
        let bytes = &bytes[..bytes.len().min(usize::from(u16::MAX))];
        out.push(*id as u8);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Opens the image, checks that read-only inspection predicted what open did, and reads every
/// recovered record back. Panics (a finding) on any disagreement.
pub fn recover_and_check(mem: &Mem, config: Config) {
    let mut scratch = vec![0u8; 512];
    let before = mem.clone();
    let verdict = walden_core::inspect::<Mem, walden_core::Fixed<32>>(
        mem,
        &config,
        &mut scratch,
        &mut |_| {},
    )
    .map(|i| i.verdict);
    assert_eq!(mem, &before, "inspection wrote");
    let opened = Wal::<Mem, walden_core::Fixed<32>>::open(mem.clone(), config, &mut scratch);
    match (verdict, opened) {
        (Ok(Verdict::Refuse(c)), Err(OpenError::Corrupted(e))) => assert_eq!(c, e),
        (Ok(Verdict::Refuse(c)), Ok(_)) => panic!("inspection said refuse ({c}), open opened"),
        (
            Ok(Verdict::RecordTooLarge {
                segment,
                offset,
                lsn,
                length,
                max,
            }),
            Err(OpenError::RecordTooLarge {
                segment: s,
                offset: o,
                lsn: l,
                length: n,
                max: m,
            }),
        ) => assert_eq!((segment, offset, lsn, length, max), (s, o, l, n, m)),
        (Ok(v), Err(e)) if !matches!(v, Verdict::Refuse(_)) => {
            panic!("inspection said {v:?}, open failed: {e}")
        }
        (_, Ok((wal, report))) => {
            let mut buf = vec![0u8; config.max_record_size as usize];
            let mut reader = wal.reader(wal.first_lsn()).expect("reader at first_lsn");
            let mut n = 0u64;
            while let Some(rec) = reader
                .next(&mut buf)
                .expect("a recovered record reads back")
            {
                assert_eq!(rec.lsn, walden_core::Lsn(wal.first_lsn().0 + n));
                n += 1;
            }
            assert_eq!(n, report.records, "{report}");
            // Recovery is idempotent: reopening the recovered storage finds nothing to do.
            let again =
                Wal::<Mem, walden_core::Fixed<32>>::open(wal.into_storage(), config, &mut scratch);
            let (_, r2) = again.expect("a recovered log reopens");
            assert!(r2.cut.is_none() && r2.salvage.is_none(), "{r2}");
            assert_eq!(r2.records, report.records);
        }
        (_, Err(_)) => {}
    }
}
