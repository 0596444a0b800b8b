use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;

use walden_core::Storage;

use super::*;
use crate::error::SimError;
use crate::sim::SimConfig;

/// Segment 1 durable and empty; then unsynced: create 2, a two-sector write to 1, a one-sector
/// write to 1.
fn three_effects() -> SimStorage {
    let mut sim = SimStorage::with_config(SimConfig {
        sector_size: 512,
        seed: 3,
        ..SimConfig::default()
    });
    sim.create(1).unwrap();
    sim.sync_dir().unwrap();
    sim.create(2).unwrap();
    sim.write(1, 0, &[7; 600]).unwrap();
    sim.write(1, 600, &[8; 10]).unwrap();
    sim
}

#[test]
fn count_matches_the_hand_computation() {
    let sim = three_effects();
    let effects = sim.unsynced_effects();
    assert_eq!(effects.len(), 3);
    assert!(matches!(
        effects[1],
        UnsyncedEffect::Write { pieces: 2, .. }
    ));
    assert!(matches!(
        effects[2],
        UnsyncedEffect::Write { pieces: 1, .. }
    ));
    // create: 2 fates; 2-piece write: -, +, p1o, p0z, p1z, p0g, p1g = 7; 1-piece write:
    // -, +, p0z, p0g = 4.
    let states = sim.crash_states(&CrashBounds::default());
    assert_eq!(states.total(), 2 * 7 * 4);
    assert!(states.is_exhaustive());
    let plans: Vec<_> = states.collect();
    assert_eq!(plans.len(), 56);
    let distinct: BTreeSet<_> = plans.iter().map(|(_, plan)| plan.clone()).collect();
    assert_eq!(distinct.len(), 56);
    let images: BTreeSet<u64> = plans
        .iter()
        .map(|(_, p)| sim.crash(p).fingerprint())
        .collect();
    // Images collide where a hole and a zero fill look alike: once the later write has
    // extended the file, "first write lost" = "first write p0z" and "p1o" = "p1z" (3 fates of
    // the second write each). 28 - 6 = 22 images of segment 1, times segment 2 there or not.
    assert_eq!(images.len(), 44);

    let coarse = sim.crash_states(&CrashBounds::whole_or_lost());
    assert_eq!(coarse.total(), 8);
}

#[test]
fn index_zero_loses_everything_and_indices_decode_digit_by_digit() {
    let states = three_effects().crash_states(&CrashBounds::default());
    let zero = states.plan(0).unwrap();
    assert!(zero.fates.iter().all(|fate| *fate == Fate::Lost));
    // Digit 0 (create) has radix 2, digit 1 (first write) radix 7.
    let plan = states.plan(1 + 2 * 2).unwrap();
    assert_eq!(format!("{plan}"), "[+ p1o -]");
    assert_eq!(states.plan(56), None);
}

#[test]
fn cap_samples_evenly_and_says_so() {
    let sim = three_effects();
    let bounds = CrashBounds {
        max_plans: 10,
        ..CrashBounds::default()
    };
    let states = sim.crash_states(&bounds);
    assert!(!states.is_exhaustive());
    assert_eq!(states.len(), 10);
    let indices: Vec<u64> = states.map(|(index, _)| index).collect();
    assert_eq!(indices.len(), 10);
    assert_eq!(indices[0], 0);
    assert!(indices.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(*indices.last().unwrap() >= 50);
}

#[test]
fn random_plans_are_deterministic() {
    let sim = three_effects();
    assert_eq!(sim.random_plan(1), sim.random_plan(1));
    let plans: BTreeSet<_> = (0..20).map(|seed| sim.random_plan(seed)).collect();
    assert!(plans.len() > 5);
    for plan in plans {
        let after = sim.crash(&plan);
        assert!(after.contents(1).unwrap().len() <= 610);
    }
}

#[test]
fn case_id_round_trips_and_rebuilds_the_same_plan() {
    let case = CaseId {
        seed: 0x2a,
        op_index: 17,
        plan: PlanPick::Enumerated(5),
    };
    assert_eq!(format!("{case}"), "seed=2a op=17 plan=e5");
    assert_eq!("seed=2a op=17 plan=e5".parse(), Ok(case));
    let random: CaseId = "seed=ff op=3 plan=r9".parse().unwrap();
    assert_eq!(random.plan, PlanPick::Random(9));
    assert!("seed=2a op=17".parse::<CaseId>().is_err());
    assert!("seed=2a op=17 plan=x1".parse::<CaseId>().is_err());

    let bounds = CrashBounds::default();
    let sim = three_effects();
    let again = three_effects();
    assert_eq!(sim.plan_for(&case, &bounds), again.plan_for(&case, &bounds));
    assert_eq!(
        sim.plan_for(&case, &bounds),
        sim.crash_states(&bounds).plan(5)
    );
    assert_eq!(
        sim.plan_for(&random, &bounds),
        again.plan_for(&random, &bounds)
    );
}

#[test]
fn description_pairs_effects_with_fates() {
    let sim = three_effects();
    let plan = sim.crash_states(&CrashBounds::default()).plan(1).unwrap();
    assert_eq!(
        format!("{}", sim.describe(&plan)),
        "crash plan [+ - -]\n  0: create 2: +\n  1: write 1@0+600: -\n  2: write 1@600+10: -"
    );
}

#[test]
fn crash_after_each_op_finds_each_state() {
    // The explorer's loop in miniature: replay the workload with a growing budget.
    let workload = |sim: &mut SimStorage| -> Result<(), SimError> {
        sim.create(1)?;
        sim.write(1, 0, b"ab")?;
        sim.sync(1)?;
        sim.sync_dir()?;
        Ok(())
    };
    let mut distinct = BTreeSet::new();
    for budget in 0..=4 {
        let mut sim = SimStorage::new();
        sim.crash_after(budget);
        let _ = workload(&mut sim);
        for (_, plan) in sim.crash_states(&CrashBounds::default()) {
            distinct.insert(sim.crash(&plan).fingerprint());
        }
    }
    // Nothing; an empty segment 1; segment 1 with "ab", "\0\0" or garbage.
    assert_eq!(distinct.len(), 5);
}
