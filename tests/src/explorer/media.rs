//! Media faults (FAULT-MODEL.md 7): bit flips in durable acknowledged data and misdirected
//! writes. Damaged acknowledged data must never come back as valid data, and must never vanish
//! without a trace: a corruption error where the medium proves the record was complete, a
//! reported cut where nothing can tell it from a torn write.

use std::time::Instant;

use walden_core::RecoveryPolicy;
use walden_sim::{CaseId, CrashPlan, FaultAction, FaultSchedule, OpKind, PlanPick, SimStorage};

use super::check::{check_media, recover};
use super::explore::{Stats, Violation};
use super::model::Model;
use super::naive::{RecordSpan, record_spans};
use super::storage::{SimHandle, Variant};
use super::workload::{Workload, drive, fresh_handle};

/// Header fields worth hitting: checksum, length, LSN, payload checksum, kind, ack gap.
const HEADER_OFFSETS: [u64; 6] = [0, 4, 8, 16, 24, 28];

/// Whether the medium proves the record at `span` was complete: it sits in a sealed segment,
/// or a later record of its segment carries an `ack_gap` that vouches for it.
pub fn proven_complete(model: &Model, spans: &[RecordSpan], span: &RecordSpan) -> bool {
    span.sealed
        || spans.iter().any(|later| {
            later.segment == span.segment
                && later.lsn > span.lsn
                && model
                    .get(later.lsn)
                    .is_some_and(|r| r.proves_durable >= span.lsn)
        })
}

/// Flips one bit at a time in every record header field and a few payload bytes of every
/// acknowledged record, recovers under the default policy and under `Salvage`, and checks.
pub fn bit_flips(workload: &Workload, variant: Variant) -> Stats {
    let started = Instant::now();
    let mut stats = Stats::default();
    let handle = fresh_handle(workload, variant);
    let driven = drive(workload, &handle, false);
    drop(driven.wal);
    let model = driven.model;
    let clean = handle.with(|sim| sim.crash(&CrashPlan::lose_everything()));
    let spans = record_spans(&clean);
    let mut index = 0u64;
    for span in spans.iter().filter(|s| s.lsn <= model.acked) {
        let len = u64::from(span.payload_len);
        let payload_offsets = [0, len / 2, len.saturating_sub(1)];
        let targets = HEADER_OFFSETS
            .iter()
            .copied()
            .chain(payload_offsets.iter().filter(|_| len > 0).map(|o| 32 + o));
        for relative in targets {
            index += 1;
            let mut damaged = clean.clone();
            let bit = (span.lsn.0 + relative) as u8;
            if !damaged.flip_durable_bit(span.segment, span.offset + relative, bit) {
                continue;
            }
            // Reads see the cached byte until the power goes out.
            let damaged = damaged.crash(&CrashPlan::lose_everything());
            stats.states += 1;
            let must_refuse = proven_complete(&model, &spans, span);
            for (policy, refuse) in [
                (RecoveryPolicy::TolerateTornTail, must_refuse),
                (RecoveryPolicy::Salvage, false),
            ] {
                let outcome = recover(
                    &SimHandle::new(damaged.clone(), variant),
                    workload.config,
                    policy,
                );
                stats.recoveries += 1;
                if let Err(finding) = check_media(&model, &outcome, refuse) {
                    stats.violations.push(Violation::new(
                        &variant,
                        workload,
                        CaseId {
                            seed: workload.seed,
                            op_index: u64::MAX,
                            plan: PlanPick::Enumerated(index),
                        },
                        finding,
                        format!(
                            "bit {} flipped at segment {} offset {} (LSN {} + {relative}), policy {policy:?}, {}",
                            bit % 8,
                            span.segment,
                            span.offset + relative,
                            span.lsn,
                            if must_refuse { "proven complete" } else { "indistinguishable from a torn write" }
                        ),
                    ));
                }
            }
        }
    }
    stats.crash_points = 1;
    stats.elapsed = started.elapsed();
    stats
}

/// Misdirects one write at a time by each of a few shifts, runs the workload to the end,
/// crashes losing nothing acknowledged-but-unsynced, and checks the weak media invariant.
pub fn misdirected_writes(workload: &Workload) -> Stats {
    let started = Instant::now();
    let mut stats = Stats::default();
    let full = fresh_handle(workload, Variant::Correct);
    drop(drive(workload, &full, false).wal);
    let writes = full
        .with(SimStorage::trace)
        .iter()
        .filter(|entry| entry.op.kind() == OpKind::Write)
        .count() as u64;
    for n in 0..writes {
        for shift in [-1i64, 1, -32, 64, -512, 512] {
            let handle = fresh_handle(workload, Variant::Correct);
            handle.with_mut(|sim| {
                sim.set_faults(FaultSchedule::new().nth(
                    OpKind::Write,
                    n,
                    FaultAction::Misdirect { shift },
                ));
            });
            let driven = drive(workload, &handle, true);
            drop(driven.wal);
            let crashed = handle.with(|sim| sim.crash(&CrashPlan::lose_everything()));
            stats.states += 1;
            let outcome = recover(
                &SimHandle::new(crashed, Variant::Correct),
                workload.config,
                RecoveryPolicy::TolerateTornTail,
            );
            stats.recoveries += 1;
            if let Err(finding) = check_media(&driven.model, &outcome, false) {
                stats.violations.push(Violation::new(
                    &Variant::Correct,
                    workload,
                    CaseId {
                        seed: workload.seed,
                        op_index: u64::MAX,
                        plan: PlanPick::Enumerated(n),
                    },
                    finding,
                    format!("write #{n} misdirected by {shift} bytes"),
                ));
            }
        }
    }
    stats.crash_points = writes;
    stats.elapsed = started.elapsed();
    stats
}
