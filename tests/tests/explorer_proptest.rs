//! Random operation sequences and random crash plans against the model; proptest shrinks a
//! failure to a short sequence. Each case crashes once at a random operation with a random plan
//! (which, unlike the enumerator, also tears suffixes and arbitrary sector subsets), then runs
//! every check of the explorer, nested crashes included.

use proptest::prelude::*;
use walden_core::{Config, SyncPolicy};
use walden_sim::{CaseId, PlanPick, SimStorage};
use walden_tests::explorer::{Explorer, Stats, Step, Variant, Workload, drive, fresh_handle};

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..1200).prop_map(Step::Append),
        2 => prop::collection::vec(0usize..600, 2..5).prop_map(Step::Batch),
        2 => Just(Step::Sync),
        1 => (0u64..30).prop_map(Step::TruncateFront),
        1 => (0u64..30).prop_map(Step::TruncateBack),
        1 => Just(Step::Reopen),
    ]
}

fn policy() -> impl Strategy<Value = SyncPolicy> {
    prop_oneof![
        Just(SyncPolicy::Always),
        Just(SyncPolicy::Manual),
        (1u32..5).prop_map(SyncPolicy::EveryRecords),
    ]
}

fn workload(steps: Vec<Step>, policy: SyncPolicy, segment_size: u64, sector: u32) -> Workload {
    let mut config = Config::default()
        .with_sync_policy(policy)
        .with_segment_size(segment_size)
        .with_max_record_size(64 * 1024);
    config.max_batch_size = 256 * 1024;
    Workload {
        name: "proptest",
        seed: 0x9000,
        config,
        sector_size: sector,
        garbage_holes: false,
        steps,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_workloads_survive_random_crashes(
        steps in prop::collection::vec(step(), 1..24),
        policy in policy(),
        segment_size in prop_oneof![Just(300u64), Just(1000), Just(4000), Just(1 << 20)],
        sector in prop_oneof![Just(512u32), Just(4096)],
        crash_at in 0.0f64..=1.0,
        plan_seed in any::<u64>(),
    ) {
        let workload = workload(steps, policy, segment_size, sector);
        let full = fresh_handle(&workload, Variant::Correct);
        let driven = drive(&workload, &full, false);
        prop_assert!(driven.problems.is_empty(), "{:?}", driven.problems);
        drop(driven.wal);
        let ops = full.with(SimStorage::op_count);
        let budget = (ops as f64 * crash_at) as u64;

        let handle = fresh_handle(&workload, Variant::Correct);
        handle.with_mut(|sim| sim.crash_after(budget));
        let driven = drive(&workload, &handle, false);
        prop_assert!(driven.problems.is_empty(), "{:?}", driven.problems);
        drop(driven.wal);
        let sim = handle.snapshot();
        let case = CaseId { seed: plan_seed, op_index: budget, plan: PlanPick::Random(0) };
        let bounds = Explorer::bounds(false);
        let plan = sim.plan_for(&case, &bounds).expect("a random plan");
        let crashed = sim.crash(&plan);
        let explorer = Explorer::new(Variant::Correct, false);
        let mut stats = Stats::default();
        let checked = explorer.check_state(&workload, &driven.model, crashed, 2, &mut stats);
        if let Err(failure) = checked {
            prop_assert!(
                false,
                "{}: {}\ncase {case}\n{}\n{}",
                failure.finding.0,
                failure.finding.1,
                sim.describe(&plan),
                failure.path
            );
        }
    }
}
