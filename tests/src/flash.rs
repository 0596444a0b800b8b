//! The flash explorer: `walden-flash` on the [`NorSim`] model, with the power cut during every
//! program and erase of a workload and every enumerated outcome of the interrupted operation
//! (FAULT-MODEL.md, "How exhaustive", on raw flash).
//!
//! For each crash state it mounts the flash, recovers the log under the default policy and
//! checks it against the [`Model`] (durability, prefix, no phantoms, atomicity; a pure crash is
//! never refused as corruption; the flash holds exactly the log's segments). Then, at depth 2,
//! it cuts the power again during each of recovery's own flash operations (the adapter's
//! copies and header updates included) and during two appends after recovery, and checks
//! again. [`FlashVariant`] breaks the adapter's use of the flash on purpose, so a test can prove
//! the explorer notices.

use core::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use embedded_storage::nor_flash::{ErrorType, MultiwriteNorFlash, NorFlash, ReadNorFlash};
use walden_core::{Config, Fixed, Lsn, ReadError, Storage, SyncPolicy, TruncateError, Wal};
use walden_flash::{AREA_HEADER_LEN, FlashError, FlashStorage, Layout};
use walden_sim::{NorFate, NorSim, NorSimError};

use crate::explorer::{Model, Recovered, Step, check_log, payload};

/// Erase block size of the explored flash.
pub const ERASE: usize = 256;
/// Areas the explored layouts hold at most.
pub const AREAS: usize = 8;

/// How the flash under the adapter behaves. Everything but `Correct` is deliberately wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlashVariant {
    /// The NOR model as it is.
    Correct,
    /// `erase` returns `Ok` and erases nothing: reused areas keep their old bits.
    EraseIsNoop,
    /// Programming an area header to zeros (the adapter's remove) does nothing.
    RemoveIsNoop,
}

/// A shared handle on one [`NorSim`], so the explorer keeps the flash after the adapter that
/// owned it is gone (a failed open drops its storage).
#[derive(Clone, Debug)]
pub struct NorHandle<const W: usize> {
    nor: Rc<RefCell<NorSim<W, ERASE>>>,
    variant: FlashVariant,
    area_bytes: u32,
}

impl<const W: usize> NorHandle<W> {
    fn new(nor: NorSim<W, ERASE>, variant: FlashVariant, area_bytes: u32) -> Self {
        Self {
            nor: Rc::new(RefCell::new(nor)),
            variant,
            area_bytes,
        }
    }

    /// A copy of the flash as it is now.
    pub fn snapshot(&self) -> NorSim<W, ERASE> {
        self.nor.borrow().clone()
    }

    fn op_count(&self) -> u64 {
        self.nor.borrow().op_count()
    }
}

impl<const W: usize> ErrorType for NorHandle<W> {
    type Error = NorSimError;
}

impl<const W: usize> ReadNorFlash for NorHandle<W> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorSimError> {
        self.nor.borrow_mut().read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.nor.borrow().capacity()
    }
}

impl<const W: usize> NorFlash for NorHandle<W> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = ERASE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorSimError> {
        if self.variant == FlashVariant::EraseIsNoop {
            return Ok(());
        }
        self.nor.borrow_mut().erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorSimError> {
        let zeroing_header = offset.is_multiple_of(self.area_bytes)
            && bytes.len() == AREA_HEADER_LEN
            && bytes.iter().all(|&b| b == 0);
        if self.variant == FlashVariant::RemoveIsNoop && zeroing_header {
            return Ok(());
        }
        self.nor.borrow_mut().write(offset, bytes)
    }
}

impl<const W: usize> MultiwriteNorFlash for NorHandle<W> {}

/// The storage and log the explorer drives.
pub type FlashWal<const W: usize> = Wal<FlashStorage<NorHandle<W>, AREAS>, Fixed<6>>;

/// A named workload on a flash of `areas` areas of `blocks_per_area` blocks, `W`-byte words.
#[derive(Clone, Debug)]
pub struct FlashWorkload {
    /// Shown in reports.
    pub name: &'static str,
    /// Seeds payloads, salts and torn bits.
    pub seed: u64,
    /// When records are made durable.
    pub sync: SyncPolicy,
    /// Areas in the layout.
    pub areas: u32,
    /// Erase blocks per area.
    pub blocks_per_area: u32,
    /// The operations.
    pub steps: Vec<Step>,
}

impl FlashWorkload {
    fn layout(&self) -> Layout {
        Layout::new(self.areas, self.blocks_per_area)
    }

    fn area_bytes(&self) -> u32 {
        self.blocks_per_area * ERASE as u32
    }

    /// The log's configuration: segments as large as the mounted storage's areas hold
    /// ([`FlashStorage::segment_size`]).
    fn config(&self, segment_size: u64) -> Config {
        Config::small_device(segment_size)
            .with_sync_policy(self.sync)
            .with_salt_seed(self.seed)
    }

    fn fresh<const W: usize>(&self, variant: FlashVariant) -> NorHandle<W> {
        let blocks = (self.areas * self.blocks_per_area) as usize;
        NorHandle::new(NorSim::new(blocks, self.seed), variant, self.area_bytes())
    }
}

/// The default workloads: 4-byte words (RAM tail words, second programs) and 1-byte words.
pub fn flash_workloads() -> Vec<(FlashWorkload, usize)> {
    use Step::*;
    vec![
        (
            FlashWorkload {
                name: "flash: records and rotation, sync each",
                seed: 0xf1,
                sync: SyncPolicy::Always,
                areas: 6,
                blocks_per_area: 2,
                steps: vec![
                    Append(5),
                    Append(30),
                    Append(0),
                    Append(61),
                    Append(17),
                    Append(44),
                    Append(3),
                    Reopen,
                    Append(9),
                ],
            },
            4,
        ),
        (
            FlashWorkload {
                name: "flash: batches, retention, rewind",
                seed: 0xf2,
                sync: SyncPolicy::Always,
                areas: 6,
                blocks_per_area: 2,
                steps: vec![
                    Batch(vec![7, 21, 2]),
                    Append(60),
                    Append(60),
                    Append(60),
                    Append(13),
                    TruncateFront(6),
                    TruncateBack(6),
                    Append(6),
                    Batch(vec![40, 40]),
                ],
            },
            4,
        ),
        (
            FlashWorkload {
                // Segments are removed and their areas taken again (round robin over 5).
                name: "flash: retention reuses areas",
                seed: 0xf4,
                sync: SyncPolicy::Always,
                areas: 5,
                blocks_per_area: 2,
                steps: [
                    vec![Append(59); 5],
                    vec![TruncateFront(5)],
                    vec![Append(59); 4],
                    vec![TruncateFront(9)],
                    vec![Append(59); 4],
                    vec![TruncateFront(13), Append(1)],
                ]
                .concat(),
            },
            4,
        ),
        (
            FlashWorkload {
                name: "flash: byte words, manual syncs",
                seed: 0xf3,
                sync: SyncPolicy::Manual,
                areas: 6,
                blocks_per_area: 2,
                steps: vec![
                    Append(11),
                    Append(3),
                    Sync,
                    Append(40),
                    Append(40),
                    Append(2),
                    Sync,
                    Append(60),
                    TruncateFront(3),
                    Sync,
                ],
            },
            1,
        ),
    ]
}

/// What exploring found.
#[derive(Clone, Debug, Default)]
pub struct FlashStats {
    /// Crash points (flash operations the power was cut during, plus the end).
    pub points: u64,
    /// Distinct crash states checked.
    pub states: u64,
    /// States checked after a second power cut (during recovery, after appends).
    pub nested: u64,
    /// Recoveries run.
    pub recoveries: u64,
    /// What broke, one line each with its case.
    pub violations: Vec<String>,
}

impl FlashStats {
    /// One summary line.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<40} points {:>4}  states {:>6}  nested {:>7}  recoveries {:>7}  violations {}",
            self.points,
            self.states,
            self.nested,
            self.recoveries,
            self.violations.len()
        )
    }
}

/// Bounds of one exploration.
#[derive(Clone, Copy, Debug)]
pub struct FlashExplorer {
    /// Outcomes enumerated for the interrupted operation at each crash point.
    pub max_fates: usize,
    /// Outcomes enumerated at each nested crash point.
    pub nested_fates: usize,
    /// 1: crash and recover; 2: also crash during recovery and after the next appends.
    pub depth: u32,
    /// The flash's behaviour.
    pub variant: FlashVariant,
    /// Stop at the first violation.
    pub stop_at_first: bool,
}

impl FlashExplorer {
    /// The default run, or the deep one (`WALDEN_EXPLORE_DEEP=1`).
    pub fn new(variant: FlashVariant, deep: bool) -> Self {
        Self {
            max_fates: if deep { 100_000 } else { 48 },
            nested_fates: if deep { 64 } else { 6 },
            depth: 2,
            variant,
            stop_at_first: variant != FlashVariant::Correct,
        }
    }

    /// Explores every crash point of `workload` on a flash of `W`-byte words.
    pub fn explore<const W: usize>(&self, workload: &FlashWorkload) -> FlashStats {
        let mut stats = FlashStats::default();
        let full = workload.fresh::<W>(self.variant);
        let (_, problems) = drive(workload, &full);
        for p in problems {
            stats
                .violations
                .push(format!("{}: without a crash: {p}", workload.name));
        }
        let ops = full.op_count();
        for budget in 0..=ops {
            self.explore_point::<W>(workload, budget, &mut stats);
            if self.stop_at_first && !stats.violations.is_empty() {
                break;
            }
        }
        stats
    }

    /// The crash states of one crash point: the power cut during flash operation `budget`.
    pub fn explore_point<const W: usize>(
        &self,
        workload: &FlashWorkload,
        budget: u64,
        stats: &mut FlashStats,
    ) {
        let handle = workload.fresh::<W>(self.variant);
        handle.nor.borrow_mut().crash_after(budget);
        let (model, problems) = drive(workload, &handle);
        let nor = handle.snapshot();
        let case = |fate: &NorFate| {
            format!(
                "{} (W={W}, {:?}) op={budget} [{}] fate={fate}",
                workload.name,
                self.variant,
                nor.interrupted()
                    .map_or("after the last operation".into(), ToString::to_string)
            )
        };
        for p in problems {
            stats
                .violations
                .push(format!("{}: {p}", case(&NorFate::Untouched)));
        }
        stats.points += 1;
        let mut seen = HashSet::new();
        for fate in nor.crash_states(self.max_fates) {
            let crashed = nor.crash(fate);
            if !seen.insert(crashed.fingerprint()) {
                continue;
            }
            stats.states += 1;
            if let Err(why) = self.check_state(workload, &model, crashed, self.depth, stats) {
                stats.violations.push(format!("{}: {why}", case(&fate)));
                if self.stop_at_first {
                    return;
                }
            }
        }
    }

    fn check_state<const W: usize>(
        &self,
        workload: &FlashWorkload,
        model: &Model,
        crashed: NorSim<W, ERASE>,
        depth: u32,
        stats: &mut FlashStats,
    ) -> Result<(), String> {
        let handle = NorHandle::new(crashed.clone(), self.variant, workload.area_bytes());
        stats.recoveries += 1;
        let (wal, got) = recover(workload, &handle)?;
        check_log(model, &got).map_err(|(which, why)| format!("{which}: {why}"))?;
        if depth < 2 {
            return Ok(());
        }
        // A second power cut during each of recovery's own flash operations: the same log.
        let repairs = handle.op_count();
        drop(wal);
        for k in 0..repairs {
            let again = NorHandle::new(crashed.clone(), self.variant, workload.area_bytes());
            again.nor.borrow_mut().crash_after(k);
            let _ = recover(workload, &again);
            let nor = again.snapshot();
            for fate in nor.crash_states(self.nested_fates) {
                stats.nested += 1;
                stats.recoveries += 1;
                let h = NorHandle::new(nor.crash(fate), self.variant, workload.area_bytes());
                let (_, got2) = recover(workload, &h)
                    .map_err(|why| format!("after a cut in recovery's op {k} ({fate}): {why}"))?;
                if got2.records != got.records || got2.first != got.first {
                    return Err(format!(
                        "idempotent recovery: a cut in recovery's op {k} ({fate}) gave a different log ({} records, not {})",
                        got2.records.len(),
                        got.records.len()
                    ));
                }
            }
        }
        // Two appends after recovery, the power cut during each of their operations.
        let base = handle.snapshot();
        let appends = [
            payload(workload.seed, 900, 0, 24),
            payload(workload.seed, 901, 0, 9),
        ];
        let mut after = Model::recovered(got.first, &got.records);
        after.begin_append(&appends[..1], got.last());
        after.begin_append(&appends[1..], got.last());
        let probe = NorHandle::new(base.clone(), self.variant, workload.area_bytes());
        let (mut wal, _) = recover(workload, &probe)?;
        let start = probe.op_count();
        for p in &appends {
            wal.append(p)
                .map_err(|e| format!("append after recovery: {e}"))?;
        }
        wal.sync()
            .map_err(|e| format!("sync after recovery: {e}"))?;
        let end = probe.op_count();
        drop(wal);
        for k in start..=end {
            let h = NorHandle::new(base.clone(), self.variant, workload.area_bytes());
            h.nor.borrow_mut().crash_after(k);
            let mut acked = got.last();
            if let Ok((mut wal, _)) = recover(workload, &h) {
                for p in &appends {
                    if wal.append(p).is_err() {
                        break;
                    }
                    if workload.sync == SyncPolicy::Always {
                        acked = wal.durable_lsn();
                    }
                }
                if let Ok(durable) = wal.sync() {
                    acked = durable;
                }
            }
            let mut model = after.clone();
            model.acknowledge(acked);
            let nor = h.snapshot();
            for fate in nor.crash_states(self.nested_fates) {
                stats.nested += 1;
                stats.recoveries += 1;
                let h2 = NorHandle::new(nor.crash(fate), self.variant, workload.area_bytes());
                let (_, got3) = recover(workload, &h2)
                    .map_err(|why| format!("after appends, a cut in op {k} ({fate}): {why}"))?;
                check_log(&model, &got3).map_err(|(which, why)| {
                    format!("{which} after appends, a cut in op {k} ({fate}): {why}")
                })?;
            }
        }
        Ok(())
    }
}

/// Mounts the flash, opens the log under the default policy and reads it back whole, checking
/// that the flash holds exactly the log's segments.
pub fn recover<const W: usize>(
    workload: &FlashWorkload,
    handle: &NorHandle<W>,
) -> Result<(FlashWal<W>, Recovered), String> {
    let storage = FlashStorage::mount(handle.clone(), workload.layout())
        .map_err(|e| format!("mount failed: {e}"))?;
    let mut scratch = vec![0u8; 512];
    let config = workload.config(storage.segment_size());
    let (wal, report) = FlashWal::<W>::open(storage, config, &mut scratch)
        .map_err(|e| format!("classification: recovery refused a pure crash: {e}"))?;
    let records =
        read_all(&wal).map_err(|e| format!("prefix: a record does not read back: {e}"))?;
    let mut listed = Vec::new();
    wal.storage()
        .list(&mut |id| {
            if !walden_core::raw::is_start_slot(id) {
                listed.push(id);
            }
        })
        .map_err(|e| e.to_string())?;
    listed.sort_unstable();
    let held: Vec<u64> = wal.segments().iter().map(|s| s.id).collect();
    if listed != held {
        return Err(format!(
            "segment set: flash holds {listed:?}, the log {held:?}"
        ));
    }
    let got = Recovered {
        first: wal.first_lsn(),
        records,
        report: Some(report),
    };
    Ok((wal, got))
}

fn read_all<const W: usize>(
    wal: &FlashWal<W>,
) -> Result<Vec<(Lsn, Vec<u8>)>, ReadError<FlashError>> {
    let mut reader = wal.reader(wal.first_lsn())?;
    let mut buf = vec![0u8; 512];
    let mut out = Vec::new();
    while let Some(r) = reader.next(&mut buf)? {
        out.push((r.lsn, r.payload.to_vec()));
    }
    Ok(out)
}

/// Runs the workload until it ends or the power goes out; returns the model and any false
/// claim the log made on the way.
pub fn drive<const W: usize>(
    workload: &FlashWorkload,
    handle: &NorHandle<W>,
) -> (Model, Vec<String>) {
    let mut model = Model::default();
    let mut problems = Vec::new();
    let crashed = || handle.nor.borrow().has_crashed();
    let open = || -> Result<FlashWal<W>, String> {
        let storage =
            FlashStorage::mount(handle.clone(), workload.layout()).map_err(|e| e.to_string())?;
        let mut scratch = vec![0u8; 512];
        let config = workload.config(storage.segment_size());
        FlashWal::<W>::open(storage, config, &mut scratch)
            .map(|(wal, _)| wal)
            .map_err(|e| e.to_string())
    };
    let mut wal = match open() {
        Ok(wal) => wal,
        Err(e) => {
            if !crashed() {
                problems.push(format!("opening a new log failed: {e}"));
            }
            return (model, problems);
        }
    };
    let config = *wal.config();
    for (i, step) in workload.steps.iter().enumerate() {
        let result: Result<(), String> = match step {
            Step::Append(len) => append(
                &mut wal,
                &mut model,
                &[payload(workload.seed, i, 0, *len)],
                config,
            ),
            Step::Batch(lens) => {
                let ps: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(k, len)| payload(workload.seed, i, k, *len))
                    .collect();
                append(&mut wal, &mut model, &ps, config)
            }
            Step::Sync => wal
                .sync()
                .map(|d| model.acknowledge(d))
                .map_err(|e| e.to_string()),
            Step::TruncateFront(lsn) => {
                model.begin_truncate_front(Lsn(*lsn));
                wal.truncate_front(Lsn(*lsn))
                    .map(|_| model.finish_truncate_front(wal.first_lsn()))
                    .map_err(|e| e.to_string())
            }
            Step::TruncateBack(lsn) => {
                let saved = model.acked;
                model.begin_truncate_back(Lsn(*lsn));
                match wal.truncate_back(Lsn(*lsn)) {
                    Ok(()) if Lsn(*lsn) >= model.last() => {
                        model.acked = saved;
                        Ok(())
                    }
                    Ok(()) => {
                        model.finish_truncate_back(Lsn(*lsn));
                        Ok(())
                    }
                    Err(TruncateError::InsideBatch { .. } | TruncateError::OutOfRange { .. }) => {
                        model.acked = saved;
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Step::Reopen => {
                // The process restarts: bytes waiting in the adapter's RAM are lost, as in a
                // power cut, so sync first like any orderly shutdown.
                let _ = wal.sync().map(|d| model.acknowledge(d));
                drop(wal);
                match open() {
                    Ok(w) => {
                        wal = w;
                        if wal.last_lsn() != model.last() {
                            problems.push(format!(
                                "reopen lost data: model ends at {}, log at {}",
                                model.last(),
                                wal.last_lsn()
                            ));
                        }
                        Ok(())
                    }
                    Err(e) => {
                        if !crashed() {
                            problems.push(format!("reopen failed: {e}"));
                        }
                        return (model, problems);
                    }
                }
            }
        };
        match result {
            Ok(()) => model.acknowledge(wal.durable_lsn()),
            Err(e) => {
                if !crashed() {
                    problems.push(format!("step {i} {step:?} failed: {e}"));
                }
                return (model, problems);
            }
        }
    }
    (model, problems)
}

fn append<const W: usize>(
    wal: &mut FlashWal<W>,
    model: &mut Model,
    payloads: &[Vec<u8>],
    config: Config,
) -> Result<(), String> {
    model.begin_append(payloads, wal.durable_lsn());
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    wal.append_batch(&slices).map_err(|e| e.to_string())?;
    if config.sync_policy == SyncPolicy::Always {
        model.acknowledge(model.last());
    }
    Ok(())
}
