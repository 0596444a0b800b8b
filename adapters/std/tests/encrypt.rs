//! Encryption at rest through walden-std (format version 3, feature `encrypt`): key files,
//! `Options::keys`, every reader, and the files on disk.
#![cfg(feature = "encrypt")]

use std::path::Path;

use walden_std::{
    Config, Keyring, Lsn, Options, ReadError, SharedWal, SyncPolicy, Wal, load_key_file,
};

fn secret(i: u64, n: usize) -> Vec<u8> {
    format!("TOP-SECRET record {i} ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(n)
        .collect()
}

fn records() -> Vec<Vec<u8>> {
    (1..=40u64)
        .map(|i| secret(i, if i % 5 == 0 { 9000 } else { 40 + i as usize }))
        .collect()
}

/// Every file of the directory, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn leak(ring: Keyring) -> &'static Keyring {
    Box::leak(Box::new(ring))
}

fn key_file(dir: &Path, keys: &[[u8; 32]]) -> std::path::PathBuf {
    let path = dir.join("walden.keys");
    let mut text = String::from("# test keys\n");
    for k in keys {
        text.extend(k.iter().map(|b| format!("{b:02x}")));
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_encrypted_log_holds_no_plaintext_and_reads_back_through_every_reader() {
    let keys_dir = tempfile::tempdir().unwrap();
    let ring = load_key_file(key_file(keys_dir.path(), &[[1; 32], [2; 32]])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = Options::from(Config::default().with_segment_size(32 * 1024))
        .with_sync_policy(SyncPolicy::Manual)
        .with_keys(leak(ring));
    let all = records();
    let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
    for pair in all.chunks(2) {
        let batch: Vec<&[u8]> = pair.iter().map(Vec::as_slice).collect();
        wal.append_batch(&batch).unwrap();
    }
    // A rewind, re-appending the same LSNs (a fresh segment takes them).
    wal.truncate_back(Lsn(30)).unwrap();
    for r in &all[30..] {
        wal.append(r).unwrap();
    }
    wal.sync().unwrap();
    let got: Vec<Vec<u8>> = wal
        .read_all_from(Lsn(1))
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, all);
    drop(wal);
    for (name, bytes) in files(dir.path()) {
        assert!(
            !bytes.windows(10).any(|w| w == b"TOP-SECRET"),
            "{name} holds plaintext"
        );
    }

    // Reopened as a SharedWal: its readers decrypt too, from the start and from the middle.
    let (shared, report) = SharedWal::open(dir.path(), options).unwrap();
    assert!(report.is_clean(), "{report}");
    let mut r = shared.reader(Lsn(1)).unwrap();
    for (i, expected) in all.iter().enumerate() {
        let rec = r.read_next().unwrap().unwrap();
        assert_eq!(rec.payload, &expected[..], "record {}", i + 1);
    }
    let mut r = shared.reader(Lsn(35)).unwrap();
    assert_eq!(r.read_next().unwrap().unwrap().payload, &all[34][..]);
}

#[test]
fn without_the_key_the_log_opens_reads_fail_typed_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ring = leak({
        let mut k = Keyring::new();
        k.add_current(&[7; 32]).unwrap();
        k
    });
    let options = Options::from(Config::default()).with_keys(ring);
    let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
    for i in 1..=5 {
        wal.append(&secret(i, 100)).unwrap();
    }
    drop(wal);
    let before = files(dir.path());
    let wrong = leak({
        let mut k = Keyring::new();
        k.add_current(&[8; 32]).unwrap();
        k
    });
    for options in [Options::from(Config::default()), options.with_keys(wrong)] {
        let (wal, report) = Wal::open(dir.path(), options).unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!(wal.last_lsn(), Lsn(5));
        match wal.read_all_from(Lsn(1)) {
            Err(ReadError::KeyMissing { segment, key_id }) => {
                assert_eq!(key_id, walden_core::key_id(&[7; 32]));
                assert_eq!(segment, 1);
            }
            other => panic!("{other:?}"),
        }
        drop(wal);
        assert_eq!(
            files(dir.path()),
            before,
            "nothing cut, salvaged or deleted"
        );
    }
}
