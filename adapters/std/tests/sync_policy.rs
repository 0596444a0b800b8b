//! One durability setting: the configuration's `SyncPolicy`, carried out by `Wal` and
//! `SharedWal` alike, or refused with a typed error — never silently ignored.

use walden_core::{Growable, Wal as CoreWal};
use walden_sim::SimStorage;
use walden_std::{
    Config, Error, GroupWindow, Lsn, Options, SharedWal, SyncPolicy, SyncUnderLock, Wal,
};

fn options(policy: SyncPolicy) -> Options {
    Options::from(Config::default().with_segment_size(64 * 1024)).with_sync_policy(policy)
}

#[test]
fn shared_wal_carries_out_every_records() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = SharedWal::open(dir.path(), options(SyncPolicy::EveryRecords(3))).unwrap();
    assert_eq!(wal.sync_policy(), SyncPolicy::EveryRecords(3));
    let durable: Vec<bool> = (0..7)
        .map(|i| wal.append(format!("r{i}").as_bytes()).unwrap().durable)
        .collect();
    // The third and the sixth append sync (for every record before them as well).
    assert_eq!(
        durable,
        [false, false, true, false, false, true, false],
        "durable after each append"
    );
    assert_eq!(wal.durable_lsn(), Lsn(6));
}

#[test]
fn shared_wal_carries_out_every_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Each record counts 10 bytes of payload and a 32-byte header: the third reaches 126.
    let (wal, _) = SharedWal::open(dir.path(), options(SyncPolicy::EveryBytes(126))).unwrap();
    let durable: Vec<bool> = (0..4)
        .map(|_| wal.append(&[7u8; 10]).unwrap().durable)
        .collect();
    assert_eq!(durable, [false, false, true, false]);
    assert_eq!(wal.durable_lsn(), Lsn(3));
}

#[test]
fn shared_wal_every_bytes_counts_empty_records() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = SharedWal::open(dir.path(), options(SyncPolicy::EveryBytes(64))).unwrap();
    let durable: Vec<bool> = (0..4).map(|_| wal.append(b"").unwrap().durable).collect();
    assert_eq!(
        durable,
        [false, true, false, true],
        "each empty record is its 32-byte header"
    );
    assert_eq!(wal.durable_lsn(), Lsn(4));
}

#[test]
fn an_interval_with_no_time_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = SyncPolicy::Interval(core::time::Duration::MAX);
    assert!(matches!(
        options(policy).validate(),
        Err(walden_std::Error::InvalidOptions { .. })
    ));
    assert!(matches!(
        SharedWal::open(dir.path(), options(policy)),
        Err(walden_std::Error::InvalidOptions { .. })
    ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn shared_wal_manual_syncs_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = SharedWal::open(dir.path(), options(SyncPolicy::Manual)).unwrap();
    for _ in 0..5 {
        assert!(!wal.append(b"x").unwrap().durable);
    }
    assert_eq!(wal.durable_lsn(), Lsn(0));
    assert_eq!(wal.sync().unwrap(), Lsn(5));
}

#[test]
fn wal_carries_out_every_records_and_refuses_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options(SyncPolicy::EveryRecords(2))).unwrap();
    wal.append(b"a").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(0));
    wal.append(b"b").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(2));
    assert_eq!(wal.config().sync_policy, SyncPolicy::EveryRecords(2));
    drop(wal);

    let other = tempfile::tempdir().unwrap();
    let log = other.path().join("log");
    let refused = Wal::open(
        &log,
        options(SyncPolicy::Interval(SyncPolicy::DEFAULT_INTERVAL)),
    );
    assert!(
        matches!(refused, Err(Error::InvalidOptions { .. })),
        "{:?}",
        refused.map(|_| ())
    );
    assert!(!log.exists(), "a refused open created the directory");
}

#[test]
fn from_core_refuses_a_core_log_that_follows_its_own_policy() {
    let mut scratch = vec![0u8; 4096];
    let config = Config::default().with_segment_size(4096);
    for (core_policy, policy, ok) in [
        (SyncPolicy::Always, SyncPolicy::Always, false),
        (SyncPolicy::Manual, SyncPolicy::EveryBytes(0), false),
        (SyncPolicy::Manual, SyncPolicy::EveryRecords(2), true),
    ] {
        let (core, _) = CoreWal::<_, Growable>::open(
            SyncUnderLock(SimStorage::new()),
            config.with_sync_policy(core_policy),
            &mut scratch,
        )
        .unwrap();
        match SharedWal::from_core(core, policy, GroupWindow::default()) {
            Ok(wal) => {
                assert!(ok, "{core_policy:?}/{policy:?} accepted");
                assert_eq!(wal.sync_policy(), policy);
            }
            Err(e) => {
                assert!(!ok, "{core_policy:?}/{policy:?} refused: {e}");
                assert!(matches!(e, Error::InvalidOptions { .. }), "{e}");
            }
        }
    }
}

/// A wait given as `Duration::MAX` ("no time limit") is a wait without a deadline, never a
/// panic: a group window's `max_wait` made every commit's leader panic with "overflow when
/// adding duration to instant" (the append that led it failed, and waiters it should have
/// answered were left waiting), and `SyncPolicy::Interval(Duration::MAX)` and
/// `Spin::Fixed(Duration::MAX)` computed their deadlines the same way.
#[test]
fn a_group_window_without_a_time_limit_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let window = GroupWindow {
        max_wait: core::time::Duration::MAX,
        min_bytes: 1,
        ..GroupWindow::default()
    };
    let options = options(SyncPolicy::Always).with_group_window(window);
    let (wal, _) = SharedWal::open(dir.path(), options).unwrap();
    let appended = wal.append(b"x").unwrap();
    assert!(appended.durable, "the byte waiting ends the window at once");
    assert_eq!(wal.durable_lsn(), appended.last);
}

/// A group window with no time limit that no byte count ends (`min_bytes` 0) is refused
/// before anything on disk is touched: it was accepted, and every leader then waited in it
/// forever, so no append under `SyncPolicy::Always` ever returned.
#[test]
fn a_group_window_that_never_ends_is_refused() {
    let endless = GroupWindow {
        max_wait: core::time::Duration::MAX,
        min_bytes: 0,
        ..GroupWindow::default()
    };
    let other = tempfile::tempdir().unwrap();
    let log = other.path().join("log");
    let refused = SharedWal::open(&log, options(SyncPolicy::Always).with_group_window(endless));
    match refused {
        Err(Error::InvalidOptions { why }) => assert!(why.contains("min_bytes"), "{why}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(!log.exists(), "a refused open created the directory");

    let mut scratch = vec![0u8; 4096];
    let (core, _) = CoreWal::<_, Growable>::open(
        SyncUnderLock(SimStorage::new()),
        Config::default()
            .with_segment_size(4096)
            .with_sync_policy(SyncPolicy::Manual),
        &mut scratch,
    )
    .unwrap();
    assert!(matches!(
        SharedWal::from_core(core, SyncPolicy::Always, endless),
        Err(Error::InvalidOptions { .. })
    ));
}

/// `Options::validate` refuses what every open refuses from the options alone, with the error
/// the open returns: it checked only the configuration, so an endless group window passed it
/// and failed the open. A window with no time limit and a `min_bytes` no load reaches
/// (`u64::MAX`) was accepted by the open too, and no append under `SyncPolicy::Always` ever
/// returned. `SyncPolicy::Interval` is the one refusal left to `Wal::open` (a `SharedWal`
/// carries it out).
#[test]
fn options_validate_refuses_what_the_open_refuses() {
    let unreachable = GroupWindow {
        max_wait: core::time::Duration::MAX,
        min_bytes: u64::MAX,
        ..GroupWindow::default()
    };
    let endless = GroupWindow {
        min_bytes: 0,
        ..unreachable
    };
    let zero_records = options(SyncPolicy::EveryRecords(0));
    let other = tempfile::tempdir().unwrap();
    let log = other.path().join("log");
    for refused in [
        options(SyncPolicy::Always).with_group_window(unreachable),
        options(SyncPolicy::Always).with_group_window(endless),
        zero_records,
    ] {
        let by_validate = refused.validate().unwrap_err().to_string();
        let by_wal = Wal::open(&log, refused)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        let by_shared = SharedWal::open(&log, refused).map(|_| ()).unwrap_err();
        assert_eq!(by_validate, by_wal);
        assert_eq!(by_validate, by_shared.to_string());
        assert!(!log.exists(), "a refused open created the directory");
    }
    assert!(matches!(
        options(SyncPolicy::Always)
            .with_group_window(unreachable)
            .validate(),
        Err(Error::InvalidOptions { .. })
    ));
    assert!(matches!(
        zero_records.validate(),
        Err(Error::Open { file: None, .. })
    ));

    let interval = options(SyncPolicy::Interval(core::time::Duration::from_millis(5)));
    assert!(interval.validate().is_ok(), "a SharedWal opens it");
    assert!(matches!(
        Wal::open(&log, interval),
        Err(Error::InvalidOptions { .. })
    ));
    let reachable = GroupWindow {
        min_bytes: 64 * 1024,
        ..unreachable
    };
    let within = options(SyncPolicy::Always).with_group_window(reachable);
    assert!(
        within.validate().is_ok(),
        "at most a segment's worth is reachable"
    );
}
