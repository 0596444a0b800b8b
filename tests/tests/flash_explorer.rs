//! The flash explorer: `walden-flash` on the NOR model, the power cut during every program and
//! erase of each workload, every outcome of the interrupted operation enumerated, every
//! recovery checked; and the proof that it can fail.
//!
//! ```text
//! cargo test -p walden-tests --test flash_explorer -- --nocapture
//! WALDEN_EXPLORE_DEEP=1 cargo test -p walden-tests --test flash_explorer -- --nocapture
//! ```

use walden_core::{Config, Fixed, Lsn, SyncPolicy, Wal};
use walden_flash::{FlashStorage, Layout};
use walden_sim::NorSim;
use walden_tests::explorer::{Step, deep_mode};
use walden_tests::flash::{
    AREAS, ERASE, FlashExplorer, FlashStats, FlashVariant, FlashWorkload, flash_workloads,
};

fn run(explorer: &FlashExplorer, workload: &FlashWorkload, word: usize) -> FlashStats {
    match word {
        1 => explorer.explore::<1>(workload),
        4 => explorer.explore::<4>(workload),
        8 => explorer.explore::<8>(workload),
        _ => panic!("no explorer instance for {word}-byte words"),
    }
}

/// The explorer's table (`Fixed<6>`) over the fewest areas a layout may have, 4: a create
/// never takes the last free area, so the log fills three with segments (it never truncates
/// its front, so it makes no start slots) and every copy that cuts a torn tail, or the
/// `truncate_back`, goes into the one left free. It ends with room in the last segment for the
/// explorer's two appends after recovery.
fn full_workload() -> (FlashWorkload, usize) {
    let steps = [
        vec![Step::Append(59); 10],
        vec![Step::TruncateBack(9), Step::Append(30)],
    ]
    .concat();
    let workload = FlashWorkload {
        name: "flash: every area but the spare used",
        seed: 0xf5,
        sync: SyncPolicy::Always,
        areas: 4,
        blocks_per_area: 2,
        steps,
    };
    (workload, 4)
}

#[test]
fn the_full_workload_uses_every_area_but_the_spare() {
    let (workload, _) = full_workload();
    let layout = Layout::new(workload.areas, workload.blocks_per_area);
    let blocks = (workload.areas * workload.blocks_per_area) as usize;
    let storage =
        FlashStorage::<_, AREAS>::mount(NorSim::<4, ERASE>::new(blocks, 0), layout).unwrap();
    let config = Config::small_device(storage.segment_size()).with_sync_policy(workload.sync);
    let mut scratch = [0u8; 512];
    let (mut wal, _) = Wal::<_, Fixed<6>>::open(storage, config, &mut scratch).unwrap();
    for step in &workload.steps {
        match *step {
            Step::Append(len) => assert!(wal.append(&vec![7; len]).is_ok()),
            Step::TruncateBack(lsn) => assert!(wal.truncate_back(Lsn(lsn)).is_ok()),
            _ => unreachable!(),
        }
    }
    assert_eq!(wal.segments().len(), 3);
    assert_eq!(wal.storage().free_areas(), 1);
}

#[test]
fn every_flash_operation_of_every_workload() {
    let explorer = FlashExplorer::new(FlashVariant::Correct, deep_mode());
    let mut states = 0;
    let mut violations = Vec::new();
    for (workload, word) in flash_workloads().into_iter().chain([full_workload()]) {
        let stats = run(&explorer, &workload, word);
        println!("{}", stats.line(workload.name));
        states += stats.states;
        violations.extend(stats.violations);
    }
    for v in violations.iter().take(5) {
        println!("VIOLATION {v}");
    }
    let summary = format!(
        "flash crash states explored: {states}, violations: {}",
        violations.len()
    );
    println!("{summary}");
    eprintln!("{summary}");
    assert!(violations.is_empty(), "the flash explorer found violations");
    assert!(states >= 1_000, "explored only {states} states");
}

#[test]
fn a_broken_flash_adapter_is_caught() {
    for variant in [FlashVariant::EraseIsNoop, FlashVariant::RemoveIsNoop] {
        let explorer = FlashExplorer::new(variant, false);
        let caught: Vec<String> = flash_workloads()
            .iter()
            .flat_map(|(w, word)| run(&explorer, w, *word).violations)
            .collect();
        println!(
            "{variant:?}: {}",
            caught.first().map_or("not caught", String::as_str)
        );
        assert!(!caught.is_empty(), "{variant:?} was not caught");
    }
}
