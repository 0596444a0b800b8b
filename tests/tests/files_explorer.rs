//! The crash explorer over what walden-std ships (`FileStorage` on a simulated file system).
//!
//! ```text
//! cargo test -p walden-tests --test files_explorer -- --nocapture
//! WALDEN_EXPLORE_DEEP=1 cargo test -p walden-tests --test files_explorer -- --nocapture
//! ```

use std::time::Instant;

use walden_tests::explorer::{Explorer, Stats, deep_mode, explore_all};
use walden_tests::files::{FileVariant, deep_workloads, default_workloads};

#[test]
fn every_crash_point_of_every_files_workload() {
    let deep = deep_mode();
    let explorer = Explorer::new(FileVariant::Correct, deep);
    let mut workloads = default_workloads();
    if let Ok(only) = std::env::var("WALDEN_FILES_ONLY") {
        workloads.retain(|w| format!("{:x}", w.seed) == only);
    }
    if deep {
        workloads.extend(deep_workloads());
    }
    let started = Instant::now();
    let results = explore_all(&explorer, &workloads, 2);
    let mut total = Stats::default();
    for (workload, stats) in workloads.iter().zip(results) {
        println!("{}", stats.line(workload.name));
        for violation in stats.violations.iter().take(3) {
            println!("{violation}");
        }
        total.merge(stats);
    }
    let summary = format!(
        "crash states explored over FileStorage: {}, violations: {}",
        total.states,
        total.violations.len()
    );
    println!("{summary}");
    eprintln!("{summary}");
    println!(
        "({} crash points, {} sampled; {} nested states; {} recoveries; {:.1?} wall, {:.0} states/s)",
        total.crash_points,
        total.sampled_points,
        total.nested_states,
        total.recoveries,
        started.elapsed(),
        total.states as f64 / started.elapsed().as_secs_f64()
    );
    assert!(
        total.violations.is_empty(),
        "the files explorer found violations (see above)"
    );
}

/// The workload with a restored copy (0x410) reaches what it is for: the log it leaves holds a
/// stale segment file, which the open leaves out and reports, and which a replay does not
/// hand over. (No crash of walden-std's own protocol leaves one; without this workload the
/// explorer would never check the replay's stale rule.)
#[test]
fn the_restored_copy_leaves_a_stale_file_that_replay_leaves_out() {
    use walden_core::{Lsn, RecoveryPolicy};
    use walden_tests::files::{ROOT, drive, find, open_log};

    let workload = find(0x410).expect("the workload with a restored copy");
    let driven = drive(&workload, FileVariant::Correct, None, None);
    assert!(driven.problems.is_empty(), "{:?}", driven.problems);
    let policy = RecoveryPolicy::TolerateTornTail;
    let mut handed: Vec<(Lsn, Vec<u8>)> = Vec::new();
    let (wal, report) = walden_std::Wal::open_replaying_in(
        driven.fs.clone(),
        ROOT,
        workload.options(policy),
        |lsn, payload| {
            handed.push((lsn, payload.to_vec()));
            Ok::<_, core::convert::Infallible>(())
        },
    )
    .expect("the log opens");
    assert_eq!(report.stale, 1, "the restored copy is stale: {report}");
    let records = wal
        .read_all_from(wal.first_lsn())
        .expect("the log reads back");
    assert!(!records.is_empty());
    assert_eq!(handed, records, "the replay handed over exactly the log");
    drop(wal);
    let (log, report) = open_log(&workload, &driven.fs, policy).expect("the log opens again");
    assert_eq!(report.stale, 1);
    assert_eq!(log.read_all().expect("reads back"), records);
}

fn fault_pass(
    name: &str,
    pass: fn(&Explorer<FileVariant>, &walden_tests::files::FileWorkload) -> Stats,
) {
    let explorer = Explorer::new(FileVariant::Correct, deep_mode());
    let mut total = Stats::default();
    let workloads = default_workloads();
    let started = Instant::now();
    let results: Vec<Stats> = std::thread::scope(|scope| {
        let handles: Vec<_> = workloads
            .chunks(workloads.len().div_ceil(2))
            .map(|chunk| {
                let explorer = &explorer;
                scope.spawn(move || chunk.iter().map(|w| pass(explorer, w)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    for (workload, stats) in workloads.iter().zip(results) {
        println!("{}", stats.line(&format!("{} ({name})", workload.name)));
        for violation in stats.violations.iter().take(3) {
            println!("{violation}");
        }
        total.merge(stats);
    }
    println!(
        "{name}: {} runs, {} states, {} violations, {:.1?}",
        total.crash_points,
        total.states,
        total.violations.len(),
        started.elapsed()
    );
    assert!(
        total.violations.is_empty(),
        "{name}: violations (see above)"
    );
}

#[test]
fn failed_fdatasyncs_poison_and_a_restart_reads_only_the_disk() {
    fault_pass("failed syncs", walden_tests::files::faults::failed_syncs);
}

#[test]
fn an_error_at_any_file_operation_loses_nothing_acknowledged() {
    fault_pass("errors", walden_tests::files::faults::errors_at_each_op);
}

/// The workload with a detached sync in flight across a rotation (0x411) reaches what it is
/// for: a leader's job is handed out (not replaced by a sync under the lock) and the log
/// rotates, sealing its segment, before the job runs. Without it no seal is ever written while
/// a detached sync is in flight, and walden-std's guard against an early seal sync beside one
/// (`FileStorage::before_segment_write`) goes unchecked.
#[test]
fn the_held_detached_sync_is_in_flight_across_a_rotation() {
    use walden_tests::files::{drive, find};

    let workload = find(0x411).expect("the workload with a held detached sync");
    let driven = drive(&workload, FileVariant::Correct, None, None);
    assert!(driven.problems.is_empty(), "{:?}", driven.problems);
    assert_eq!(
        driven.held_across_rotation, 1,
        "the first held job was in flight across a rotation"
    );
}
