//! Hostile directory contents at open and verification: entries named like the lock file or
//! a segment that are not regular files. Each gives a typed error that names what is wrong,
//! and changes nothing.

use std::path::Path;

use walden_std::{Config, Error, Options, SharedWal, Wal, verify_dir};

fn options() -> Options {
    Options::from(Config::default().with_segment_size(4096))
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

/// Every entry of `dir`, by name, with the contents of regular files.
fn snapshot(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes =
                (e.file_type().unwrap().is_file()).then(|| std::fs::read(e.path()).unwrap());
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    all.sort();
    all
}

/// A lock file that is a FIFO or a directory is refused by a writer exactly as by a reader
/// (`Error::LockNotAFile`). A FIFO used to be opened (read-write, non-blocking) and locked:
/// the log ran, while `verify_dir` and the `walden` command refused the directory.
#[test]
fn a_writer_refuses_a_lock_file_that_is_not_a_regular_file() {
    for make in [mkfifo as fn(&Path), |p: &Path| {
        std::fs::create_dir(p).unwrap()
    }] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        drop(Wal::open(dir, options()).unwrap());
        let lock = dir.join(walden_std::LOCK_FILE);
        std::fs::remove_file(&lock).unwrap();
        make(&lock);
        let before = snapshot(dir);
        match Wal::open(dir, options()) {
            Err(Error::LockNotAFile { path }) => assert_eq!(path, lock),
            other => panic!("Wal::open: {:?}", other.map(|_| ())),
        }
        match SharedWal::open(dir, options()) {
            Err(Error::LockNotAFile { path }) => assert_eq!(path, lock),
            other => panic!("SharedWal::open: {:?}", other.map(|_| ())),
        }
        assert!(matches!(
            verify_dir(dir, 1),
            Err(Error::LockNotAFile { .. })
        ));
        assert_eq!(snapshot(dir), before, "nothing changed");
    }
}
