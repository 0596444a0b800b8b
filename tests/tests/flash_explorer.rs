//! The flash explorer: `walden-flash` on the NOR model, the power cut during every program and
//! erase of each workload, every outcome of the interrupted operation enumerated, every
//! recovery checked; and the proof that it can fail.
//!
//! ```text
//! cargo test -p walden-tests --test flash_explorer -- --nocapture
//! WALDEN_EXPLORE_DEEP=1 cargo test -p walden-tests --test flash_explorer -- --nocapture
//! ```

use walden_tests::explorer::deep_mode;
use walden_tests::flash::{
    FlashExplorer, FlashStats, FlashVariant, FlashWorkload, flash_workloads,
};

fn run(explorer: &FlashExplorer, workload: &FlashWorkload, word: usize) -> FlashStats {
    match word {
        1 => explorer.explore::<1>(workload),
        4 => explorer.explore::<4>(workload),
        8 => explorer.explore::<8>(workload),
        _ => panic!("no explorer instance for {word}-byte words"),
    }
}

#[test]
fn every_flash_operation_of_every_workload() {
    let explorer = FlashExplorer::new(FlashVariant::Correct, deep_mode());
    let mut states = 0;
    let mut violations = Vec::new();
    for (workload, word) in flash_workloads() {
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
