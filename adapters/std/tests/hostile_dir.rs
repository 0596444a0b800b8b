//! Hostile directory contents at open and verification: entries named like the lock file or
//! a segment that are not regular files. Each gives a typed error that names what is wrong,
//! and changes nothing.

use std::path::{Path, PathBuf};

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

fn segment(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// A log of several segments (4 KiB each), closed.
fn make_log(dir: &Path) -> u64 {
    let (mut wal, _) = Wal::open(dir, options()).unwrap();
    for i in 0..100u8 {
        wal.append(&[i; 100]).unwrap();
    }
    let newest = wal.segments().last().unwrap().id;
    assert!(newest >= 2);
    newest
}

/// Entries named like a segment that are not regular files (a FIFO, a socket, a symlink):
/// `verify_dir`, `Wal::open` and `Wal::open_replaying` all refuse with an error that names the
/// file and says it is not a regular file, and nothing changes. `verify_dir` said only
/// "cannot verify DIR: unsupported operation" (`Error::Directory`, no file), and the opens
/// "...: len of segment N failed: unsupported operation".
#[test]
fn a_segment_name_that_is_not_a_regular_file_is_named_and_refused() {
    type Make = fn(&Path, &Path);
    let makers: [(&str, Make); 3] = [
        ("fifo", |_, p| mkfifo(p)),
        ("socket", |_, p| {
            // Bound and closed at once: the socket file stays.
            drop(std::os::unix::net::UnixListener::bind(p).unwrap());
        }),
        ("symlink", |dir, p| {
            std::os::unix::fs::symlink(segment(dir, 0), p).unwrap();
        }),
    ];
    for (what, make) in makers {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let newest = make_log(dir);
        // In the newest segment's place (kept aside, outside the directory), and as a later one.
        let aside = tmp.path().with_extension("aside");
        std::fs::rename(segment(dir, newest), &aside).unwrap();
        for id in [newest, newest + 5] {
            let bad = segment(dir, id);
            make(dir, &bad);
            let before = snapshot(dir);
            let expect = |e: &Error, call: &str| {
                let text = e.to_string();
                assert!(
                    text.contains("not a regular file") && text.contains(&*bad.to_string_lossy()),
                    "{what} as segment {id}, {call}: {text}"
                );
            };
            match verify_dir(dir, 2) {
                Err(e @ Error::Open { .. }) => {
                    let Error::Open { file, error } = &e else {
                        unreachable!()
                    };
                    assert_eq!(file.as_deref(), Some(&*bad), "{what}");
                    assert!(
                        matches!(error, walden_std::OpenError::Storage(s) if s.segment == Some(id)),
                        "{what}: {error:?}"
                    );
                    expect(&e, "verify_dir");
                }
                other => panic!(
                    "{what} as segment {id}, verify_dir: {:?}",
                    other.map(|_| ())
                ),
            }
            match Wal::open(dir, options()) {
                Err(e) => expect(&e, "Wal::open"),
                Ok(_) => panic!("{what} as segment {id}: Wal::open opened"),
            }
            match Wal::open_replaying(dir, options(), |_, _| Ok::<(), ()>(())) {
                Err(walden_std::ReplayError::Log(e)) => expect(&e, "Wal::open_replaying"),
                other => panic!(
                    "{what} as segment {id}, open_replaying: {:?}",
                    other.map(|_| ())
                ),
            }
            assert_eq!(
                snapshot(dir),
                before,
                "{what} as segment {id}: nothing changed"
            );
            std::fs::remove_file(&bad).unwrap();
            if id == newest {
                std::fs::rename(&aside, segment(dir, newest)).unwrap();
            }
        }
    }
}

/// Whatever is named `walden.clean` when a log closes was put there while it was open (the
/// open took the marker): the close leaves it as it is. A hard link to a segment had the
/// marker's text written over the segment's header (`O_NOFOLLOW` stops only symlinks), and
/// the next open refused the log (`DamagedHeader`); a user's own file had its first bytes
/// overwritten.
#[test]
fn a_close_writes_through_nothing_named_like_the_clean_close_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let marker = dir.join(walden_std::CLEAN_FILE);
    let (mut wal, _) = Wal::open(dir, options()).unwrap();
    let lsn = wal.append(b"durable").unwrap();
    let newest = segment(dir, wal.segments().last().unwrap().id);
    std::fs::hard_link(&newest, &marker).unwrap();
    let before = std::fs::read(&newest).unwrap();
    drop(wal);
    assert_eq!(
        std::fs::read(&newest).unwrap(),
        before,
        "the segment is untouched"
    );
    std::fs::remove_file(&marker).unwrap();
    let (wal, report) = Wal::open(dir, options()).unwrap();
    assert_eq!(report.last_lsn, lsn);
    assert_eq!(wal.read_all_from(lsn).unwrap()[0].1, b"durable");

    let theirs = b"the user's own bytes, longer than nothing at all".repeat(4);
    std::fs::write(&marker, &theirs).unwrap();
    drop(wal);
    assert_eq!(std::fs::read(&marker).unwrap(), theirs);
}
