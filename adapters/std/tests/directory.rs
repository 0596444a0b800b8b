//! Opening log directories: locking, foreign files, symlinks, paths that are not directories,
//! preallocated spares.

use walden_core::{Config, Lsn, OpenError, StorageError, StorageErrorKind};
use walden_std::{Error, Options, SharedWal, Wal, verify_dir};

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = SharedWal::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        SharedWal::open(dir.path(), Options::default()),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        Wal::open(dir.path(), Options::default()),
        Err(Error::Locked { .. })
    ));
    drop(wal);
    SharedWal::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn foreign_files_are_reported_not_parsed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("0000000000000000000x.wal"), b"WALDENLG").unwrap();
    std::fs::write(dir.path().join("1.wal"), b"garbage").unwrap();
    let (wal, report) = SharedWal::open(dir.path(), Options::default()).unwrap();
    assert!(report.created);
    let names: Vec<_> = wal
        .foreign_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["0000000000000000000x.wal", "1.wal", "notes.txt"]);
    assert!(wal.append(b"x").unwrap().durable);
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"hello"
    );
}

#[test]
fn a_symlinked_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    {
        let (wal, _) = SharedWal::open(elsewhere.path(), Options::default()).unwrap();
        let _ = wal.append(b"x").unwrap();
    }
    let target = elsewhere.path().join("00000000000000000000.wal");
    std::os::unix::fs::symlink(&target, dir.path().join("00000000000000000000.wal")).unwrap();
    match SharedWal::open(dir.path(), Options::default()) {
        Err(Error::Open {
            file: Some(file),
            error: OpenError::Storage(f),
        }) => {
            assert_eq!(f.error.kind(), StorageErrorKind::Unsupported);
            assert!(file.ends_with("00000000000000000000.wal"));
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_directory_that_is_a_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log");
    std::fs::write(&file, b"").unwrap();
    for create in [true, false] {
        let options = Options {
            create_dir: create,
            ..Options::default()
        };
        assert!(matches!(
            SharedWal::open(&file, options),
            Err(Error::NotADirectory { .. })
        ));
    }
}

#[test]
fn rotation_uses_spares_and_leaves_no_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::from(Config::default().with_segment_size(8 * 1024));
    let (wal, _) = SharedWal::open(dir.path(), options).unwrap();
    for i in 0..200u32 {
        let p = [i as u8; 300];
        assert!(wal.append(&p).unwrap().durable);
    }
    let m = wal.metrics();
    assert!(m.rotations >= 5, "{m:?}");
    let last = wal.last_lsn();
    drop(wal);
    // Closing waits for a background preparation and removes an unused spare: once the lock
    // is released nothing of ours is left or still being created.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".wal") || n == "walden.lock" || n == walden_std::CLEAN_FILE),
        "{names:?}"
    );
    // Every segment verifies, whether it started as a spare or not.
    let report = verify_dir(dir.path(), 2).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, last.0);
    let (wal, report) = SharedWal::open(dir.path(), options).unwrap();
    assert_eq!(report.last_lsn, last);
    assert!(wal.foreign_files().is_empty(), "{:?}", wal.foreign_files());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".spare"))
        .collect();
    // Open removes leftovers before anything else, and may prepare one new spare.
    assert!(leftovers.len() <= 1, "{leftovers:?}");
    let mut r = wal.reader(Lsn(1)).unwrap();
    let mut n = 0u64;
    while let Some(rec) = r.read_next().unwrap() {
        assert_eq!(rec.payload, [(n as u32) as u8; 300]);
        n += 1;
    }
    assert_eq!(n, last.0);
}

#[test]
fn parallel_verify_finds_damage_in_a_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::from(Config::default().with_segment_size(4096));
    {
        let (wal, _) = SharedWal::open(dir.path(), options).unwrap();
        for i in 0..100u8 {
            let _ = wal.append(&[i; 100]).unwrap();
        }
    }
    let seg = dir.path().join("00000000000000000001.wal");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[64 + 32 + 5] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    for threads in [1, 2, 4] {
        let report = verify_dir(dir.path(), threads).unwrap();
        let bad: Vec<_> = report
            .segments
            .iter()
            .filter(|s| s.problem.is_some())
            .collect();
        assert_eq!(bad.len(), 1, "{report:?}");
        assert_eq!(bad[0].id, 1);
        assert_eq!(bad[0].problem, Some((64, "payload checksum mismatch")));
    }
}

/// Open scans the newest segment on a worker thread too; what recovery then does with a torn
/// or damaged tail must not depend on that. Same directory, opened with 1 and with 2 threads.
#[test]
fn a_damaged_newest_segment_recovers_the_same_with_parallel_scans() {
    let template = tempfile::tempdir().unwrap();
    let options = Options::from(Config::default().with_segment_size(4096));
    {
        let (wal, _) = SharedWal::open(template.path(), options).unwrap();
        for i in 0..100u8 {
            let _ = wal.append(&[i; 100]).unwrap();
        }
    }
    let newest = std::fs::read_dir(template.path())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.ends_with(".wal").then_some(name)
        })
        .max()
        .unwrap();
    // Torn last record (unsynced damage) and a damaged record followed by a valid one.
    for damage in [-5isize, 64 + 32 + 5] {
        let mut outcomes = Vec::new();
        for threads in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            for e in std::fs::read_dir(template.path()).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
            }
            let seg = dir.path().join(&newest);
            let mut bytes = std::fs::read(&seg).unwrap();
            let end = bytes.iter().rposition(|&b| b != 0).unwrap() as isize + 1;
            let at = if damage < 0 { end + damage } else { damage };
            bytes[at as usize] ^= 0x40;
            std::fs::write(&seg, bytes).unwrap();
            let opened = Wal::open(
                dir.path(),
                Options {
                    open_threads: threads,
                    ..options
                },
            );
            outcomes.push(match opened {
                Ok((wal, report)) => format!(
                    "{:?} {:?} {:?}",
                    report.cut,
                    report.last_lsn,
                    wal.last_lsn()
                ),
                Err(e) => format!("error {e}").replace(&*dir.path().to_string_lossy(), ""),
            });
        }
        assert_eq!(outcomes[0], outcomes[1], "damage at {damage}");
    }
}

#[test]
fn invalid_options_touch_nothing_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let bad_config = Options::from(Config::default().with_segment_size(1));
    let zero_records =
        Options::from(Config::default().with_sync_policy(walden_core::SyncPolicy::EveryRecords(0)));
    let open_wal = |o: Options| Wal::open(&dir, o).map(|_| ());
    let open_shared = |o: Options| SharedWal::open(&dir, o).map(|_| ());
    for (what, result) in [
        ("Wal, segment size 1", open_wal(bad_config)),
        ("SharedWal, segment size 1", open_shared(bad_config)),
        ("SharedWal, EveryRecords(0)", open_shared(zero_records)),
    ] {
        assert!(
            matches!(
                result,
                Err(Error::Open {
                    error: OpenError::Config(_),
                    ..
                })
            ),
            "{what}: {result:?}"
        );
        assert!(!dir.exists(), "{what}: created the directory");
    }
    // Zero intervals are configuration errors, for both handles alike.
    for policy in [
        walden_std::SyncPolicy::EveryBytes(0),
        walden_std::SyncPolicy::Interval(core::time::Duration::ZERO),
    ] {
        let options = Options::default().with_sync_policy(policy);
        for (what, result) in [
            ("Wal", open_wal(options)),
            ("SharedWal", open_shared(options)),
        ] {
            assert!(
                matches!(
                    result,
                    Err(Error::Open {
                        error: OpenError::Config(walden_core::ConfigError::ZeroSyncInterval),
                        ..
                    })
                ),
                "{what}, {policy:?}: {result:?}"
            );
            assert!(!dir.exists(), "{what}, {policy:?}: created the directory");
        }
    }
    // A `Wal` has no flusher thread: an interval policy is refused, not silently ignored.
    let interval = Options::default().with_sync_policy(walden_std::SyncPolicy::Interval(
        walden_std::SyncPolicy::DEFAULT_INTERVAL,
    ));
    let result = open_wal(interval);
    assert!(
        matches!(result, Err(Error::InvalidOptions { .. })),
        "Wal, Interval: {result:?}"
    );
    assert!(!dir.exists(), "Wal, Interval: created the directory");
    // Scratch memory no allocation can serve is a typed error, not a panic.
    let huge = Options {
        scratch_size: usize::MAX,
        ..Options::default()
    };
    let result = open_wal(huge);
    assert!(
        matches!(result, Err(Error::InvalidOptions { .. })),
        "Wal, scratch_size usize::MAX: {result:?}"
    );
    assert!(
        !dir.exists(),
        "Wal, scratch_size usize::MAX: created the directory"
    );
    // An existing log is left exactly as it is: no lock file appears.
    std::fs::create_dir(&dir).unwrap();
    assert!(open_wal(bad_config).is_err());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn a_clean_close_marker_is_left_by_a_clean_close_and_taken_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join(walden_std::CLEAN_FILE);
    let (mut wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(b"durable").unwrap();
    drop(wal);
    assert!(marker.exists(), "every write was synced");
    let options = Options::default().with_sync_policy(walden_core::SyncPolicy::Manual);
    let (mut wal, report) = Wal::open(dir.path(), options).unwrap();
    assert_eq!(report.last_lsn, Lsn(1));
    assert!(!marker.exists(), "an open log never has the marker");
    wal.append(b"never synced").unwrap();
    drop(wal);
    assert!(!marker.exists(), "a write was never synced");
}

/// A directory where the marker should be is not the marker: the open does not trust it (a
/// full recovery, always safe), leaves it alone (it refused the open, as a marker it could not
/// remove, though the open needs no marker), and no close leaves a marker while it is there.
#[test]
fn a_directory_named_like_the_marker_is_not_trusted_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(b"durable").unwrap();
    drop(wal);
    let marker = dir.path().join(walden_std::CLEAN_FILE);
    std::fs::remove_file(&marker).unwrap();
    std::fs::create_dir(&marker).unwrap();
    std::fs::write(marker.join("inside"), b"the user's own bytes").unwrap();
    let (wal, report) = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(report.last_lsn, Lsn(1));
    drop(wal);
    assert!(marker.is_dir());
    assert_eq!(
        std::fs::read(marker.join("inside")).unwrap(),
        b"the user's own bytes"
    );
}

/// Symlinks named `walden.lock` or `walden.clean` are never followed: the lock file and the
/// clean-close marker were opened through them (create, read-write), so a dangling
/// `walden.lock` created a file outside the log directory, and a `walden.clean` symlink placed
/// while the log was open had the close write its text over the first bytes of its target.
#[test]
fn symlinked_lock_and_marker_files_are_not_followed() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    let outside = tmp.path().join("elsewhere");
    symlink(&outside, dir.join("walden.lock")).unwrap();
    let opened = Wal::open(&dir, Options::default());
    assert!(
        matches!(opened, Err(Error::LockNotAFile { .. })),
        "{:?}",
        opened.as_ref().err()
    );
    assert!(!outside.exists(), "nothing created outside the directory");
    std::fs::remove_file(dir.join("walden.lock")).unwrap();

    let precious = tmp.path().join("precious");
    std::fs::write(&precious, b"the user's own bytes").unwrap();
    let (mut wal, _) = Wal::open(&dir, Options::default()).unwrap();
    wal.append(b"x").unwrap();
    symlink(&precious, dir.join("walden.clean")).unwrap();
    drop(wal);
    assert_eq!(std::fs::read(&precious).unwrap(), b"the user's own bytes");
}

/// Every entry of `dir`: name, and the contents of regular files.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = e
                .file_type()
                .unwrap()
                .is_file()
                .then(|| std::fs::read(e.path()).unwrap());
            (name, bytes)
        })
        .collect();
    all.sort();
    all
}

/// `verify_dir` changes nothing: not the clean-close marker (the next open still trusts the
/// cache), not a spare a crash left, not a missing lock file (none is created). It refuses a
/// directory a log holds, and two verifications may run at once.
#[test]
fn verify_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::from(Config::default().with_segment_size(4096));
    {
        let (wal, _) = SharedWal::open(dir.path(), options).unwrap();
        for i in 0..50u8 {
            let _ = wal.append(&[i; 100]).unwrap();
        }
        wal.sync().unwrap();
    }
    assert!(dir.path().join(walden_std::CLEAN_FILE).exists());
    // What a crash during a rotation leaves: a spare that no segment name points at.
    std::fs::write(
        dir.path().join("00000000000000000099.spare"),
        vec![0u8; 4096],
    )
    .unwrap();
    let before = snapshot(dir.path());
    let report = verify_dir(dir.path(), 2).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 50);
    assert_eq!(snapshot(dir.path()), before);

    // Two at once: both take the shared lock.
    let first = walden_std::ReadOnlyDir::open(dir.path()).unwrap();
    assert_eq!(verify_dir(dir.path(), 1).unwrap().records, 50);
    // A log cannot open the directory while it is being looked at...
    assert!(matches!(
        SharedWal::open(dir.path(), options),
        Err(Error::Locked { .. })
    ));
    drop(first);
    // ...and verification is refused while a log holds it.
    let (wal, _) = SharedWal::open(dir.path(), options).unwrap();
    assert!(matches!(
        verify_dir(dir.path(), 1),
        Err(Error::Locked { .. })
    ));
    drop(wal);

    // Without a lock file (a copy of the segments alone), nothing is created.
    std::fs::remove_file(dir.path().join(walden_std::LOCK_FILE)).unwrap();
    let before = snapshot(dir.path());
    assert_eq!(verify_dir(dir.path(), 2).unwrap().records, 50);
    assert_eq!(snapshot(dir.path()), before);
}

/// A lock file that is not a regular file is refused with a typed error, not followed and not
/// waited on (a FIFO opened for reading waits for a writer).
#[test]
fn verify_refuses_a_lock_that_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    drop(SharedWal::open(dir.path(), Options::default()).unwrap());
    let lock = dir.path().join(walden_std::LOCK_FILE);
    std::fs::remove_file(&lock).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &lock,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    match verify_dir(dir.path(), 1) {
        Err(Error::LockNotAFile { path }) => assert_eq!(path, lock),
        other => panic!("{other:?}"),
    }
}

#[test]
fn create_log_false_opens_only_an_existing_log_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    let only_existing = Options::default().with_create_log(false);
    // A directory without a log: refused, nothing created (no segment, no lock, no marker).
    assert!(matches!(
        Wal::open(dir.path(), only_existing),
        Err(Error::NoLog { .. })
    ));
    assert!(matches!(
        SharedWal::open(dir.path(), only_existing),
        Err(Error::NoLog { .. })
    ));
    let names = |d: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(dir.path()), ["notes.txt"]);
    // A missing directory: refused, not created.
    let missing = dir.path().join("not-mounted");
    assert!(matches!(
        Wal::open(&missing, only_existing),
        Err(Error::NoLog { .. })
    ));
    assert!(!missing.exists());
    // The default creates the log; after that, `create_log: false` opens it.
    let (mut wal, report) = Wal::open(dir.path(), Options::default()).unwrap();
    assert!(report.created);
    wal.append(b"kept").unwrap();
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), only_existing).unwrap();
    assert!(!report.created);
    assert_eq!(
        wal.read_all_from(Lsn(1)).unwrap(),
        [(Lsn(1), b"kept".to_vec())]
    );
}

#[test]
fn a_file_named_like_a_spare_in_a_directory_that_held_no_log_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let spare = dir.path().join("00000000000000000007.spare");
    std::fs::write(&spare, b"my own backup data").unwrap();
    let (wal, report) = Wal::open(dir.path(), Options::default()).unwrap();
    assert!(report.created);
    drop(wal);
    assert_eq!(std::fs::read(&spare).unwrap(), b"my own backup data");
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_as_the_directory_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
    assert!(matches!(
        Wal::open(&link, Options::default()),
        Err(Error::NotADirectory { .. })
    ));
    assert!(!dir.path().join("nowhere").exists(), "nothing created");
}

/// A log whose directory this process may not write to does not open: after a crash (no
/// clean-close marker to remove) nothing in the open itself writes to the directory, so such
/// a log (files owned by the service's user in a directory restored as root, say) used to open,
/// take appends into its newest segment, and fail at its first rotation. It is refused at the
/// open now, with the OS's reason, and nothing changes. The open runs in a child process
/// without root's privileges (`setpriv`, as `nobody`); where this test does not run as root,
/// or `setpriv` is missing, it says so and checks nothing.
#[test]
fn a_log_in_a_directory_without_write_permission_is_refused_at_the_open() {
    const CHILD: &str = "WALDEN_TEST_OPEN_AS_NOBODY";
    if let Some(dir) = std::env::var_os(CHILD) {
        match Wal::open(&dir, Options::default()) {
            Err(Error::Directory { action, error, .. }) => {
                assert!(action.starts_with("write to"), "{action}");
                assert_eq!(error.os_code(), Some(libc::EACCES));
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a directory it cannot write to was opened for writing"),
        }
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root, to run the open as another user");
        return;
    }
    use std::os::unix::fs::{PermissionsExt, chown};
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("log");
    let (mut wal, _) = Wal::open(&dir, Options::default()).unwrap();
    wal.append(b"durable").unwrap();
    drop(wal);
    // As after a crash: no marker for the open to remove.
    std::fs::remove_file(dir.join(walden_std::CLEAN_FILE)).unwrap();
    let nobody = 65534;
    for entry in std::fs::read_dir(&dir).unwrap() {
        chown(entry.unwrap().path(), Some(nobody), Some(nobody)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = snapshot(&dir);
    let status = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_log_in_a_directory_without_write_permission_is_refused_at_the_open",
            "--nocapture",
        ])
        .env(CHILD, &dir)
        .status();
    let Ok(status) = status else {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    };
    assert!(status.success(), "the open as nobody: see its output above");
    assert_eq!(snapshot(&dir), before, "nothing changed");
    let (_, report) = Wal::open(&dir, Options::default()).unwrap();
    assert_eq!(report.last_lsn, Lsn(1));
}
