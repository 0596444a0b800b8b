//! Arbitrary images (FAULT-MODEL.md 7): whatever the medium holds, opening gives an error or a
//! valid log, never a panic, an endless loop or unbounded allocation.

use walden_core::{RecoveryPolicy, Storage};
use walden_sim::{CrashPlan, SimConfig, SimRng, SimStorage};

use super::check::{Outcome, recover};
use super::storage::{SimHandle, Variant};
use super::workload::{Workload, drive, fresh_handle};

/// A storage holding exactly these segments, all durable.
pub fn storage_with(segments: &[(u64, Vec<u8>)]) -> SimStorage {
    let mut sim = SimStorage::with_config(SimConfig::default());
    for (id, bytes) in segments {
        sim.create(*id).expect("create");
        if !bytes.is_empty() {
            sim.write(*id, 0, bytes).expect("write");
        }
        sim.sync(*id).expect("sync");
    }
    sim.sync_dir().expect("sync_dir");
    sim.crash(&CrashPlan::lose_everything())
}

/// The segments of a clean crash of `workload` run to the end.
pub fn segments_of(workload: &Workload) -> Vec<(u64, Vec<u8>)> {
    let handle = fresh_handle(workload, Variant::Correct);
    drop(drive(workload, &handle, false).wal);
    let sim = handle.with(|sim| sim.crash(&CrashPlan::lose_everything()));
    sim.durable_segments()
        .into_iter()
        .map(|id| (id, sim.contents(id).unwrap_or_default().to_vec()))
        .collect()
}

/// Damages `segments` in one of several ways chosen by `rng`: random bytes splattered, a
/// random cut, a segment dropped, duplicated under another id, or replaced by garbage.
pub fn mutate(segments: &mut Vec<(u64, Vec<u8>)>, rng: &mut SimRng) {
    if segments.is_empty() {
        segments.push((rng.below(4), Vec::new()));
    }
    for _ in 0..=rng.below(3) {
        let pick = rng.below(segments.len() as u64) as usize;
        match rng.below(7) {
            0 | 1 => {
                let bytes = &mut segments[pick].1;
                if !bytes.is_empty() {
                    let at = rng.below(bytes.len() as u64) as usize;
                    let n = (1 + rng.below(40) as usize).min(bytes.len() - at);
                    rng.fill(&mut bytes[at..at + n]);
                }
            }
            2 => {
                let bytes = &mut segments[pick].1;
                let cut = rng.below(bytes.len() as u64 + 1) as usize;
                bytes.truncate(cut);
            }
            3 if segments.len() > 1 => {
                segments.remove(pick);
            }
            4 => {
                let copy = segments[pick].1.clone();
                let id = segments
                    .iter()
                    .map(|s| s.0)
                    .filter(|id| !walden_core::raw::is_start_slot(*id))
                    .max()
                    .unwrap_or(0)
                    + 1
                    + rng.below(2);
                segments.push((id, copy));
            }
            5 => {
                let mut garbage = vec![0u8; rng.below(600) as usize];
                rng.fill(&mut garbage);
                segments[pick].1 = garbage;
            }
            _ => {
                let bytes = &mut segments[pick].1;
                if !bytes.is_empty() {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
        }
    }
}

/// Opens `sim` under every policy; returns what went wrong, if anything. A refusal is fine;
/// a panic, or a log that opens but does not read back or does not match the medium, is not.
pub fn open_anything(sim: &SimStorage, workload: &Workload) -> Result<(), String> {
    for policy in [
        RecoveryPolicy::Strict,
        RecoveryPolicy::TolerateTornTail,
        RecoveryPolicy::Salvage,
    ] {
        let handle = SimHandle::new(sim.clone(), Variant::Correct);
        if let Outcome::Broken(which, why) = recover(&handle, workload.config, policy) {
            let mut listed = Vec::new();
            let _ = sim.list(&mut |id| listed.push(id));
            return Err(format!(
                "{which} under {policy:?}: {why} (segments {listed:?})"
            ));
        }
    }
    Ok(())
}
