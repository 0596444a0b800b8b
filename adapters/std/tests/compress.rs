//! Compression through walden-std (format version 3, feature `compress`): what reaches the
//! disk, and that every reader (the owned `Wal`, `SharedWal`'s readers, a reopen) hands back the
//! bytes that were appended.
#![cfg(feature = "compress")]

use walden_std::{Config, Lsn, Options, SharedWal, SyncPolicy, Wal};

/// Compressible text, different for each `i`, of `n` bytes.
fn text(i: u64, n: usize) -> Vec<u8> {
    format!("record {i}: the quick brown fox jumps over the lazy dog. ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(n)
        .collect()
}

/// Incompressible bytes (xorshift).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn records() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for i in 0..60u64 {
        all.push(match i % 4 {
            0 => text(i, 20_000),
            1 => noise(i, 6_000),
            2 => text(i, 100),
            _ => text(i, 4096),
        });
    }
    all
}

fn bytes_on_disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("wal".as_ref()))
        .map(|p| {
            std::fs::read(p)
                .unwrap()
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |i| i + 1) as u64
        })
        .sum()
}

#[test]
fn compressed_logs_are_smaller_and_read_back_exactly() {
    let all = records();
    let total: u64 = all.iter().map(|r| r.len() as u64).sum();
    let mut sizes = Vec::new();
    for threshold in [0u32, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default()
            .with_segment_size(256 * 1024)
            .with_compress_threshold(threshold);
        let options = Options::from(config).with_sync_policy(SyncPolicy::Manual);
        let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
        for pair in all.chunks(2) {
            let batch: Vec<&[u8]> = pair.iter().map(Vec::as_slice).collect();
            wal.append_batch(&batch).unwrap();
        }
        wal.sync().unwrap();
        let got: Vec<Vec<u8>> = wal
            .read_all_from(Lsn(1))
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(got, all, "threshold {threshold}");
        drop(wal);
        sizes.push(bytes_on_disk(dir.path()));

        // Reopened: recovery, then the shared reader, give the same bytes.
        let (shared, report) = SharedWal::open(dir.path(), options).unwrap();
        assert!(report.is_clean(), "{report}");
        let mut r = shared.reader(Lsn(1)).unwrap();
        for (i, expected) in all.iter().enumerate() {
            let rec = r.read_next().unwrap().unwrap();
            assert_eq!(rec.lsn, Lsn(i as u64 + 1));
            assert_eq!(
                rec.payload,
                &expected[..],
                "shared reader, record {}",
                i + 1
            );
        }
        assert!(r.read_next().unwrap().is_none());
        // Reading from the middle (the position index) decodes as well.
        let mut r = shared.reader(Lsn(41)).unwrap();
        assert_eq!(r.read_next().unwrap().unwrap().payload, &all[40][..]);
    }
    // Plain: every payload byte is on disk. Compressed: the text shrinks, the noise does not.
    assert!(sizes[0] > total, "{sizes:?} {total}");
    assert!(sizes[1] < total / 2, "{sizes:?} {total}");
}

#[test]
fn shared_appends_compress_too() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::from(Config::default()).with_sync_policy(SyncPolicy::Manual);
    let (wal, _) = SharedWal::open(dir.path(), options).unwrap();
    for i in 0..20 {
        let _ = wal.append(&text(i, 50_000)).unwrap();
    }
    wal.sync().unwrap();
    assert!(bytes_on_disk(dir.path()) < 20 * 50_000 / 4);
    let mut r = wal.reader(Lsn(7)).unwrap();
    assert_eq!(
        r.read_next().unwrap().unwrap().payload,
        &text(6, 50_000)[..]
    );
}
