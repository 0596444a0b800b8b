//! How the crash loop chooses each run: its workload, and where its power is cut.
//!
//! Most runs are cut where durability is decided (see `points.rs`): the point's kind is drawn
//! by weight, and which passage of it uniformly among the passages complete runs made. After a
//! crash that left something to repair, half the runs are cut inside recovery instead. 15% of
//! the runs get a fuel budget (random over the whole run, or swept through the workload), so
//! the cut lands at an arbitrary instruction; every `full_run_every`-th run runs to the end to
//! re-measure what a run costs and passes, and the run after it runs recovery only, to measure
//! recovery's cost. A target a run does not reach lets it run to the end. The first run is cut
//! right after it created the log directory, before the preopen's sync made its name durable.

use crate::crash_loop::Plan;
use crate::points::{Events, Phase, Point, Target};
use crate::rng::SplitMix64;

/// Weights of the crash points a workload run is cut at. Before a file sync is where torn and
/// lost writes happen, so it gets most; create, remove and the directory sync are where files
/// vanish or come back.
const WORKLOAD_WEIGHTS: [(Point, u64); 7] = [
    (Point::BeforeSync, 12),
    (Point::AfterSync, 1),
    (Point::AfterCreate, 3),
    (Point::AfterRemove, 6),
    (Point::AfterTruncate, 1),
    (Point::BeforeDirSync, 4),
    (Point::AfterDirSync, 1),
];

/// Weights of the crash points a recovery is cut at: its repairs are truncates (of a torn
/// tail, or of a segment whose header it rewrites) made durable by a sync.
const RECOVERY_WEIGHTS: [(Point, u64); 7] = [
    (Point::BeforeSync, 4),
    (Point::AfterSync, 1),
    (Point::AfterCreate, 1),
    (Point::AfterRemove, 1),
    (Point::AfterTruncate, 8),
    (Point::BeforeDirSync, 2),
    (Point::AfterDirSync, 1),
];

/// Most appends one sync covers in a run.
const MAX_SYNC_EVERY: u64 = 4;

/// Runs whose roll (0..100) is at least this get a fuel budget instead of a crash point.
const FUEL_FROM: u64 = 85;

/// Steps of the fuel sweep through a run's workload.
const SWEEP_STEPS: u64 = 64;

/// How a run is to end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cut {
    /// Runs to the end.
    None,
    /// Out of fuel after this many units.
    Fuel(u64),
    /// At a crash point.
    At(Target),
}

/// What the loop measured and remembers between runs to choose the next cut.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    /// Fuel of the last full run and of the last recovery-only probe (0: not measured yet).
    pub(crate) full_cost: u64,
    pub(crate) recovery_cost: u64,
    /// The crash points the last four complete runs passed, newest last, by how many appends
    /// one sync covered in them (index 0 for 1).
    recent: [Vec<Events>; MAX_SYNC_EVERY as usize],
    /// Most crash points of each kind a recovery after a damaging crash passed.
    pub(crate) repair_events: Events,
    /// The last crash left something for recovery to repair.
    pub(crate) damaged: bool,
    /// Fuel budgets drawn so far (the sweep's position).
    fuel_runs: u64,
}

impl Schedule {
    /// Remembers what a complete run with this `sync_every` passed.
    pub(crate) fn measured(&mut self, sync_every: u64, events: Events) {
        let recent = &mut self.recent[sync_every as usize - 1];
        if recent.len() == 4 {
            recent.remove(0);
        }
        recent.push(events);
    }

    /// What a complete run with this `sync_every` passes: each count the most of the last
    /// four such runs (runs differ: one compacts, another does not), or of any run if none
    /// was measured yet.
    fn full_events(&self, sync_every: u64) -> Events {
        let fold = |runs: &[Events]| runs.iter().fold(Events::default(), |all, e| all.max(e));
        match &self.recent[sync_every as usize - 1] {
            runs if !runs.is_empty() => fold(runs),
            _ => fold(&self.recent.concat()),
        }
    }

    pub(crate) fn choose(
        &mut self,
        plan: &Plan,
        run: u64,
        probe: bool,
        sync_every: u64,
        rng: &mut SplitMix64,
    ) -> Cut {
        if run == 0 {
            // The loop's one passage through the window in which the log directory exists but
            // its name is not durable (walden-wasi's `open_dir` creates it, then syncs the
            // preopen): the first create of the first run is the directory's.
            return Cut::At(Target {
                phase: Phase::Recovery,
                point: Some(Point::AfterCreate),
                index: 0,
            });
        }
        let phase = run % plan.full_run_every;
        if self.full_cost == 0 || phase == 0 || probe {
            return Cut::None;
        }
        let roll = rng.between(0, 99);
        if self.damaged && roll < 50 {
            if let Some(target) = pick(Phase::Recovery, &RECOVERY_WEIGHTS, &self.repair_events, rng)
            {
                return Cut::At(target);
            }
            // Not measured yet: any of the first few points.
            return Cut::At(Target {
                phase: Phase::Recovery,
                point: None,
                index: rng.between(0, 3),
            });
        }
        if roll >= FUEL_FROM {
            self.fuel_runs += 1;
            return Cut::Fuel(if self.fuel_runs.is_multiple_of(2) {
                // Random: anywhere in a run, recovery included.
                rng.between(1, self.full_cost)
            } else {
                // Swept: walk the budget through the workload part of a run in small steps,
                // with jitter, so over the loop the trap lands on every phase of a run. The
                // steps do not depend on `--runs`, so a shorter loop replays a longer one.
                let work = self.full_cost.saturating_sub(self.recovery_cost).max(1);
                let step = (work / SWEEP_STEPS).max(1);
                let at = (self.fuel_runs / 2) % SWEEP_STEPS;
                self.recovery_cost + at * step + rng.between(0, step)
            });
        }
        let full = self.full_events(sync_every);
        match pick(Phase::Workload, &WORKLOAD_WEIGHTS, &full, rng) {
            Some(target) => Cut::At(target),
            None => Cut::Fuel(rng.between(1, self.full_cost)),
        }
    }
}

/// Draws a crash point of `phase` by `weights` among those `seen` passed, and its index
/// uniformly among their passages.
fn pick(
    phase: Phase,
    weights: &[(Point, u64)],
    seen: &Events,
    rng: &mut SplitMix64,
) -> Option<Target> {
    let weighted: Vec<(Point, u64, u64)> = weights
        .iter()
        .map(|&(p, w)| (p, w, seen.get(phase, p)))
        .filter(|&(_, _, n)| n > 0)
        .collect();
    let total: u64 = weighted.iter().map(|(_, w, _)| w).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.between(0, total - 1);
    for (point, weight, passed) in weighted {
        if roll < weight {
            return Some(Target {
                phase,
                point: Some(point),
                index: rng.between(0, passed - 1),
            });
        }
        roll -= weight;
    }
    None
}

/// What one run of the guest does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Workload {
    seed: u64,
    ops: u64,
    /// Appends one sync covers (1 to [`MAX_SYNC_EVERY`]).
    pub(crate) sync_every: u64,
    /// Write-through (0) leaves unsynced bytes on the host between a write and its sync, for
    /// a fuel trap to find; a buffer hands them over at the sync.
    pub(crate) write_buffer: u64,
}

impl Workload {
    /// A run's workload, drawn by the seed; a probe runs recovery only.
    pub(crate) fn draw(plan: &Plan, seed: u64, probe: bool, rng: &mut SplitMix64) -> Self {
        Self {
            seed,
            ops: if probe { 0 } else { plan.ops },
            sync_every: rng.between(1, MAX_SYNC_EVERY),
            write_buffer: if rng.chance(1, 2) { 0 } else { 1 << 20 },
        }
    }

    /// The guest's command line.
    pub(crate) fn args(&self, plan: &Plan) -> Vec<String> {
        let mut args: Vec<String> = [
            ("--ops", self.ops),
            ("--seed", self.seed),
            ("--keys", plan.keys),
            ("--min-value", plan.min_value),
            ("--max-value", plan.max_value),
            ("--segment-size", plan.segment_size),
            ("--retain-segments", plan.retain_segments),
            ("--sync-every", self.sync_every),
            ("--write-buffer", self.write_buffer),
        ]
        .iter()
        .flat_map(|(flag, value)| [(*flag).to_owned(), value.to_string()])
        .collect();
        if let Some(broken) = plan.broken {
            args.push(broken.flag().to_owned());
        }
        args
    }
}
