//! Every moment of a recorded run, every legal crash state of both directories at it (and a
//! process restart), the store reopened and checked against the model.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use futures::executor::block_on;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{Entry, EntryPayload, RaftLogReader, Vote};
use walden_openraft::kv::Request;
use walden_sim::{CaseId, CrashBounds, PlanPick, SimFs};

use super::fs::{Moment, PairFs};
use super::workload::{
    Event, Model, RaftVariant, RaftWorkload, SimStore, log_id, record, value_of,
};
use crate::explorer::{Explorer, Stats, Violation};

/// How hard to explore.
#[derive(Clone, Copy, Debug)]
pub struct RaftExplorer {
    /// The store as it ships, or broken on purpose.
    pub variant: RaftVariant,
    /// Crash states enumerated in each directory at each moment.
    pub bounds: CrashBounds,
    /// The most crash states (pairs of the two directories' states) checked at one moment;
    /// past it they are sampled evenly.
    pub max_pairs: usize,
    /// Crash states enumerated in each directory after the appends that follow a recovery.
    pub nested_bounds: CrashBounds,
    /// 1: crash and recover; 2: also go on after each recovery from a power loss (two
    /// appends and a vote) and crash again in every state.
    pub depth: u32,
    /// Stop at the first violation (the broken-variant tests use this).
    pub stop_at_first: bool,
    /// Threads.
    pub threads: usize,
}

impl RaftExplorer {
    /// The settings of the default run, or of the deep run.
    pub fn new(variant: RaftVariant, deep: bool) -> Self {
        Self {
            variant,
            bounds: Explorer::bounds(deep),
            max_pairs: if deep { 16_384 } else { 4096 },
            nested_bounds: CrashBounds {
                max_plans: if deep { 64 } else { 16 },
                ..CrashBounds::default()
            },
            depth: 2,
            stop_at_first: variant != RaftVariant::Correct,
            threads: 2,
        }
    }

    /// Runs `workload` once, then explores every moment of it.
    pub fn explore(&self, workload: &RaftWorkload) -> Stats {
        let started = Instant::now();
        let (tape, problems) = record(workload, self.variant);
        let mut stats = Stats::default();
        for problem in problems {
            stats.violations.push(self.violation(
                workload,
                u64::MAX,
                u64::MAX,
                ("workload", problem),
                "while running the workload".into(),
            ));
        }
        if std::env::var_os("WALDEN_RAFT_TRACE").is_some() {
            for (at, moment) in tape.moments.iter().enumerate() {
                println!("{at:>4} events {:>3} after {}", moment.events, moment.after);
            }
            for (at, event) in tape.events.iter().enumerate() {
                println!("event {at:>3}: {event:?}");
            }
        }
        let next = AtomicUsize::new(0);
        let results = Mutex::new(Vec::new());
        let stop = core::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..self.threads.max(1) {
                scope.spawn(|| {
                    let mut mine = Stats::default();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(moment) = tape.moments.get(at) else {
                            break;
                        };
                        let model = Model::of(&tape.events[..moment.events]);
                        self.explore_moment(workload, at as u64, moment, &model, None, &mut mine);
                        if self.stop_at_first && !mine.violations.is_empty() {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    results.lock().expect("no poisoned lock").push(mine);
                });
            }
        });
        for mine in results.into_inner().expect("no poisoned lock") {
            stats.merge(mine);
        }
        stats.violations.sort_by_key(|v| v.case.op_index);
        stats.elapsed = started.elapsed();
        stats
    }

    /// Checks the crash states of one moment (all, or only the case `only` names). Case
    /// numbering: the pairs of distinct states of the two directories, entries-major, then
    /// one more for the process restart (everything unsynced still in the page cache).
    pub fn explore_moment(
        &self,
        workload: &RaftWorkload,
        at: u64,
        moment: &Moment,
        model: &Model,
        only: Option<u64>,
        stats: &mut Stats,
    ) {
        stats.crash_points += 1;
        let entries = distinct(&moment.entries, &self.bounds);
        let meta = distinct(&moment.meta, &self.bounds);
        let pairs = entries.states.len() * meta.states.len();
        let sampled = pairs > self.max_pairs;
        if sampled || !entries.exhaustive || !meta.exhaustive {
            stats.sampled_points += 1;
        }
        let take = pairs.min(self.max_pairs);
        let mut picks: Vec<u64> = (0..take)
            .map(|k| (k as u128 * pairs as u128 / take as u128) as u64)
            .collect();
        picks.push(pairs as u64); // the restart
        if let Some(only) = only {
            picks.retain(|p| *p == only);
        }
        let mut seen_during_open = HashSet::new();
        for pick in picks {
            let (e, m, what) = if pick == pairs as u64 {
                (
                    moment.entries.restart(),
                    moment.meta.restart(),
                    "process restart (the page cache kept)".to_owned(),
                )
            } else {
                let (i, j) = (
                    pick as usize / meta.states.len(),
                    pick as usize % meta.states.len(),
                );
                let (e, eplan) = &entries.states[i];
                let (m, mplan) = &meta.states[j];
                (
                    e.clone(),
                    m.clone(),
                    format!("power loss: entries {eplan}, meta {mplan}"),
                )
            };
            stats.states += 1;
            stats.recoveries += 1;
            let restart = pick == pairs as u64;
            let nested = !restart && self.depth >= 2;
            let outcome = check_recording(workload, self.variant, e, m, model, nested)
                .map_err(|finding| (finding, String::new()))
                .and_then(|opened| {
                    if !nested {
                        return Ok(());
                    }
                    check_during_open(
                        workload,
                        self.variant,
                        &opened.during_open,
                        model,
                        &self.nested_bounds,
                        &mut seen_during_open,
                        stats,
                    )?;
                    check_after_recovery(
                        workload,
                        self.variant,
                        opened,
                        model,
                        &self.nested_bounds,
                        stats,
                    )
                });
            if let Err((finding, path)) = outcome {
                let mut plan = format!("after {}; {what}", moment.after);
                if !path.is_empty() {
                    plan = format!("{plan}\n{path}");
                }
                stats
                    .violations
                    .push(self.violation(workload, at, pick, finding, plan));
                if self.stop_at_first {
                    return;
                }
            }
        }
    }

    fn violation(
        &self,
        workload: &RaftWorkload,
        at: u64,
        pick: u64,
        (invariant, detail): (&'static str, String),
        plan: String,
    ) -> Violation {
        let case = CaseId {
            seed: workload.seed,
            op_index: at,
            plan: PlanPick::Enumerated(pick),
        };
        Violation {
            workload: workload.name,
            variant: format!("{:?}", self.variant),
            replay: format!(
                "walden_tests::raft::replay(RaftVariant::{:?}, \"{case}\")",
                self.variant
            ),
            case,
            invariant,
            detail,
            plan,
        }
    }
}

/// The distinct crash states of one directory.
struct Distinct {
    states: Vec<(SimFs, String)>,
    exhaustive: bool,
}

fn distinct(sim: &SimFs, bounds: &CrashBounds) -> Distinct {
    let states = sim.crash_states(bounds);
    let exhaustive = states.is_exhaustive();
    let mut seen = HashSet::new();
    let states = states
        .filter_map(|(_, plan)| {
            let crashed = sim.crash(&plan);
            seen.insert(crashed.fingerprint())
                .then(|| (crashed, plan.to_string()))
        })
        .collect();
    Distinct { states, exhaustive }
}

/// What a reopened store holds.
struct Recovered {
    /// index -> (term, value) of the live entries.
    got: BTreeMap<u64, (u64, String)>,
    /// The vote's term.
    vote: Option<u64>,
    /// The purge point.
    purged: Option<u64>,
}

impl Recovered {
    /// The index of the next append.
    fn next(&self) -> u64 {
        self.got
            .last_key_value()
            .map(|(i, _)| *i)
            .or(self.purged)
            .map_or(0, |i| i + 1)
    }
}

type Finding = (&'static str, String);

/// Reopens the store on one crash state and checks what the model promises; returns the open
/// store and what it holds.
fn check(
    workload: &RaftWorkload,
    variant: RaftVariant,
    entries: SimFs,
    meta: SimFs,
    model: &Model,
) -> Result<Opened, Finding> {
    check_recording(workload, variant, entries, meta, model, false)
}

/// The store reopened on a crash state, what it holds, and (when recorded) the moments before
/// each file operation its open made.
struct Opened {
    store: SimStore,
    fs: PairFs,
    recovered: Recovered,
    during_open: Vec<Moment>,
}

/// [`check`], recording the moment before every file operation of the store's open (its
/// recovery's cuts and repairs) when `record` is set.
fn check_recording(
    workload: &RaftWorkload,
    variant: RaftVariant,
    entries: SimFs,
    meta: SimFs,
    model: &Model,
    record: bool,
) -> Result<Opened, Finding> {
    let fs = PairFs::new(entries, meta, record);
    let opened = workload
        .open(fs.clone())
        .inspect(|store| variant.on_reopen(store));
    // Only what the open wrote: the checks below only read. A tape of one moment is the
    // state before the open, unchanged.
    let mut during_open = if record {
        fs.finish().moments
    } else {
        Vec::new()
    };
    if during_open.len() < 2 {
        during_open.clear();
    }
    let mut store = opened.map_err(|e| {
        (
            "reopen",
            format!("the store does not open after a pure crash: {e}"),
        )
    })?;
    let recovered = block_on(async {
        let io = |what: &'static str| {
            move |e: openraft::StorageError<u64>| ("reopen", format!("{what} failed: {e}"))
        };
        let vote = store.read_vote().await.map_err(io("read_vote"))?;
        let term = vote.map(|v| v.leader_id().term);
        if term < model.vote {
            return Err((
                "vote",
                format!("the vote went back: {term:?}, saved {:?}", model.vote),
            ));
        }
        let state = store.get_log_state().await.map_err(io("get_log_state"))?;
        let purged = state.last_purged_log_id.as_ref().map(|l| l.index);
        if purged < model.purged {
            return Err((
                "purge",
                format!(
                    "the purge point went back: {purged:?}, purged {:?}",
                    model.purged
                ),
            ));
        }
        let entries = store
            .try_get_log_entries(0..u64::MAX)
            .await
            .map_err(io("reading the entries"))?;
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        if indexes.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err((
                "purge",
                format!("the live entries are not consecutive: {indexes:?}"),
            ));
        }
        if let Some(first) = indexes.first() {
            let want = purged.map_or(0, |p| p + 1);
            if *first != want {
                return Err((
                    "purge",
                    format!("the first live entry is {first}, the purge point {purged:?}"),
                ));
            }
        }
        if state.last_log_id.as_ref().map(|l| l.index) != indexes.last().copied().or(purged) {
            return Err((
                "reopen",
                format!("the log state {state:?} disagrees with the entries {indexes:?}"),
            ));
        }
        let committed = store.read_committed().await.map_err(io("read_committed"))?;
        if committed.is_some_and(|c| Some(c.index) > state.last_log_id.as_ref().map(|l| l.index)) {
            return Err((
                "reopen",
                format!("the committed log id {committed:?} lies beyond the log {state:?}"),
            ));
        }
        let got: BTreeMap<u64, (u64, String)> = entries
            .iter()
            .map(|e| (e.log_id.index, (e.log_id.leader_id.term, value_of(e))))
            .collect();
        for (index, (term, value)) in &got {
            if !model.ever.contains(&(*index, *term, value.clone())) {
                return Err((
                    "no phantoms",
                    format!("entry {index} (term {term}, {value}) was never appended"),
                ));
            }
            if model.dead.contains(value) {
                return Err((
                    "truncate",
                    format!("entry {index} ({value}) survived a truncate that returned"),
                ));
            }
        }
        for (index, want) in &model.expected {
            if purged.is_some_and(|p| *index <= p) {
                continue; // a purge (perhaps not yet acknowledged) removed it
            }
            match got.get(index) {
                Some(have) if have == want => {}
                Some(have) => {
                    return Err((
                        "durability",
                        format!("entry {index}: flushed {want:?}, found {have:?}"),
                    ));
                }
                None if model.truncating.is_some_and(|t| *index >= t) => {}
                None => {
                    return Err((
                        "durability",
                        format!("entry {index} {want:?} was flushed and is gone"),
                    ));
                }
            }
        }
        for barrier in &model.barriers {
            if !barrier.durable(term, purged) {
                continue;
            }
            for (index, want) in &barrier.entries {
                let removed = purged.is_some_and(|p| *index <= p)
                    || model.truncating.is_some_and(|t| *index >= t)
                    || model.dead.contains(&want.1);
                if !removed && got.get(index) != Some(want) {
                    return Err((
                        "in order",
                        format!(
                            "entry {index} {want:?} was appended before {}, which is durable \
                             (vote {term:?}, purge point {purged:?}), and is {}",
                            barrier.what(),
                            got.get(index)
                                .map_or("gone".to_owned(), |have| format!("{have:?}"))
                        ),
                    ));
                }
            }
        }
        Ok(Recovered {
            got,
            vote: term,
            purged,
        })
    })?;
    Ok(Opened {
        store,
        fs,
        recovered,
        during_open,
    })
}

/// Cuts the power again before each file operation the store's open made (in every state,
/// within `bounds`, deduplicated across the crash states of one moment by `seen`) and checks
/// the store once more: a recovery interrupted by a crash must leave a log that recovers to
/// the same promises.
fn check_during_open(
    workload: &RaftWorkload,
    variant: RaftVariant,
    during_open: &[Moment],
    model: &Model,
    bounds: &CrashBounds,
    seen: &mut HashSet<(u64, u64)>,
    stats: &mut Stats,
) -> Result<(), (Finding, String)> {
    for (k, moment) in during_open.iter().enumerate() {
        let entries = distinct(&moment.entries, bounds);
        let meta = distinct(&moment.meta, bounds);
        for (e, eplan) in &entries.states {
            for (m, mplan) in &meta.states {
                if !seen.insert((e.fingerprint(), m.fingerprint())) {
                    continue;
                }
                stats.nested_states += 1;
                stats.recoveries += 1;
                if let Err(finding) = check(workload, variant, e.clone(), m.clone(), model) {
                    let after = if moment.after.is_empty() {
                        "before its first file operation".to_owned()
                    } else {
                        format!("after {}", moment.after)
                    };
                    return Err((
                        finding,
                        format!(
                            "then power loss during the store's open (operation {k}, {after}): \
                             entries {eplan}, meta {mplan}"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Goes on after a recovery from a power loss: appends two entries (waiting for the flush)
/// and saves a newer vote, then cuts the power in every state of that moment (within
/// `bounds`) and checks the store again: what the first recovery read back (all of it durable
/// after a power loss) and what was acknowledged since must be there.
fn check_after_recovery(
    workload: &RaftWorkload,
    variant: RaftVariant,
    Opened {
        mut store,
        fs,
        recovered,
        ..
    }: Opened,
    model: &Model,
    bounds: &CrashBounds,
    stats: &mut Stats,
) -> Result<(), (Finding, String)> {
    let mut next = model.after_recovery(&recovered.got, recovered.vote, recovered.purged);
    let start = recovered.next();
    let last_term = recovered.got.values().map(|(t, _)| *t).max();
    let term = recovered.vote.max(last_term).unwrap_or(1);
    let appended: Vec<_> = (start..start + 2)
        .map(|index| Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Request::Set {
                key: format!("k{index}"),
                value: format!("{:x}-after-recovery-{index}", workload.seed),
            }),
        })
        .collect();
    for entry in &appended {
        next.apply(&Event::Appending {
            index: entry.log_id.index,
            term,
            value: value_of(entry),
        });
    }
    let went_on = block_on(async {
        store.blocking_append(appended).await?;
        next.apply(&Event::Flushed(start + 1));
        store.save_vote(&Vote::new(term + 1, 1)).await?;
        next.apply(&Event::Voted(term + 1));
        Ok::<_, openraft::StorageError<u64>>(())
    });
    if let Err(e) = went_on {
        return Err((
            ("appends after recovery", format!("{e}")),
            "going on after the recovery".into(),
        ));
    }
    let entries = distinct(&fs.entries_sim(), bounds);
    let meta = distinct(&fs.meta_sim(), bounds);
    drop(store);
    for (e, eplan) in &entries.states {
        for (m, mplan) in &meta.states {
            stats.nested_states += 1;
            stats.recoveries += 1;
            if let Err(finding) = check(workload, variant, e.clone(), m.clone(), &next) {
                return Err((
                    finding,
                    format!(
                        "then, after recovery, 2 entries appended from {start} and a vote saved, \
                         power loss: entries {eplan}, meta {mplan}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Replays one case printed by a failure (`seed=.. op=.. plan=e..`): runs its workload again
/// and checks that one crash state. Prints and returns what it found.
pub fn replay(variant: RaftVariant, case: &str) -> Vec<Violation> {
    let id: CaseId = case.parse().expect("a case: seed=<hex> op=<n> plan=e<n>");
    let workload = super::find(id.seed).expect("a raft workload with this seed");
    let explorer = RaftExplorer {
        stop_at_first: false,
        ..RaftExplorer::new(variant, crate::explorer::deep_mode())
    };
    let (tape, _) = record(&workload, variant);
    let mut stats = Stats::default();
    let PlanPick::Enumerated(pick) = id.plan else {
        panic!("raft cases are enumerated");
    };
    let moment = &tape.moments[id.op_index as usize];
    let model = Model::of(&tape.events[..moment.events]);
    explorer.explore_moment(
        &workload,
        id.op_index,
        moment,
        &model,
        Some(pick),
        &mut stats,
    );
    for violation in &stats.violations {
        eprintln!("{violation}");
    }
    stats.violations
}
