//! Recovering a crashed storage and checking the result against the [`Model`]
//! (FAULT-MODEL.md, "What must hold after every recovery").

use core::panic::AssertUnwindSafe;
use std::panic::catch_unwind;

use walden_core::{Config, Lsn, OpenError, ReadError, RecoveryPolicy, RecoveryReport, Storage};
use walden_sim::SimError;

use super::model::Model;
use super::naive::naive_scan;
use super::storage::{SimHandle, Variant};
use super::workload::{TestWal, open_log};

/// A recovered log, read back whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The first LSN of the log (the next LSN when it is empty).
    pub first: Lsn,
    /// Every record, in order.
    pub records: Vec<(Lsn, Vec<u8>)>,
    /// What recovery reported (none for the naive reader).
    pub report: Option<RecoveryReport>,
}

impl Recovered {
    /// The last LSN (`first − 1` when empty).
    pub fn last(&self) -> Lsn {
        self.records.last().map_or(self.first.prev(), |r| r.0)
    }
}

/// What opening a crashed storage gave. `E` is the storage error, `L` the open log.
pub enum Outcome<E = SimError, L = Box<TestWal>> {
    /// The log opened; here is what it holds, and the log itself (none for the naive reader).
    Opened(Recovered, Option<L>),
    /// Recovery refused.
    Refused(OpenError<E>),
    /// A broken invariant found while opening or reading: a panic, a read error, a segment
    /// set that does not match the log.
    Broken(&'static str, String),
}

/// A violated invariant: which, and what exactly was seen.
pub type Finding = (&'static str, String);

/// Opens the log in `handle` under `policy` (or scans it naively for
/// [`Variant::NaiveReader`]) and reads every record back. Never panics: a panic in core becomes
/// [`Outcome::Broken`].
pub fn recover(handle: &SimHandle, config: Config, policy: RecoveryPolicy) -> Outcome {
    if handle.variant() == Variant::NaiveReader {
        return Outcome::Opened(handle.with(naive_scan), None);
    }
    let config = config.with_recovery(policy);
    match catch_unwind(AssertUnwindSafe(|| open_and_read(handle, config))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Outcome::Broken("arbitrary images: recovery panicked", what)
        }
    }
}

fn open_and_read(handle: &SimHandle, config: Config) -> Outcome {
    let (wal, report) = match open_log(handle, config) {
        Ok(opened) => opened,
        Err(e) => return Outcome::Refused(e),
    };
    match read_all(&wal) {
        Ok(records) => {
            if let Err(why) = segment_set(&wal) {
                return Outcome::Broken("segment set", why);
            }
            let recovered = Recovered {
                first: wal.first_lsn(),
                records,
                report: Some(report),
            };
            if recovered.last() != wal.last_lsn() || report.last_lsn != wal.last_lsn() {
                return Outcome::Broken(
                    "prefix",
                    format!(
                        "read {} records up to {}, but the log says it ends at {} (report {})",
                        recovered.records.len(),
                        recovered.last(),
                        wal.last_lsn(),
                        report.last_lsn
                    ),
                );
            }
            Outcome::Opened(recovered, Some(Box::new(wal)))
        }
        Err(e) => Outcome::Broken(
            "prefix",
            format!("a record of the recovered log does not read back: {e}"),
        ),
    }
}

/// Reads every record of an open log.
pub fn read_all(wal: &TestWal) -> Result<Vec<(Lsn, Vec<u8>)>, ReadError<SimError>> {
    let mut reader = wal.reader(wal.first_lsn())?;
    let mut buf = vec![0u8; 4096];
    let mut records = Vec::new();
    loop {
        match reader.next(&mut buf) {
            Ok(Some(record)) => records.push((record.lsn, record.payload.to_vec())),
            Ok(None) => return Ok(records),
            Err(ReadError::BufferTooSmall { needed }) => buf.resize(needed, 0),
            Err(e) => return Err(e),
        }
    }
}

/// Segment ids on the medium are exactly the log's segments, consecutive (the start slots,
/// which hold where the log starts, are not segments).
fn segment_set(wal: &TestWal) -> Result<(), String> {
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
            "the medium holds segments {listed:?}, the log {held:?}"
        ));
    }
    if held.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(format!("segment ids are not consecutive: {held:?}"));
    }
    Ok(())
}

/// Durability, prefix, no phantoms and atomicity of one recovered log against the model.
pub fn check_log(model: &Model, got: &Recovered) -> Result<(), Finding> {
    let mut expect = got.first;
    for (lsn, payload) in &got.records {
        if *lsn != expect {
            return Err((
                "prefix",
                format!("LSNs not dense: expected {expect}, found {lsn}"),
            ));
        }
        expect = expect.next();
        match model.get(*lsn) {
            None => {
                return Err((
                    "no phantoms",
                    format!(
                        "recovered LSN {lsn} ({} bytes) was never appended (model holds {}..={})",
                        payload.len(),
                        model.first_min,
                        model.last()
                    ),
                ));
            }
            Some(record) if record.payload != *payload => {
                let which = if *lsn <= model.acked {
                    "durability"
                } else {
                    "no phantoms"
                };
                return Err((
                    which,
                    format!(
                        "LSN {lsn} recovered with different bytes ({} bytes, expected {}{})",
                        payload.len(),
                        record.payload.len(),
                        if *lsn <= model.acked {
                            ", acknowledged"
                        } else {
                            ", in flight"
                        }
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let first = got.first;
    let last = got.last();
    if first < model.first_min || first > model.first_max {
        return Err((
            "durability",
            format!(
                "the log starts at {first}, expected between {} and {}",
                model.first_min, model.first_max
            ),
        ));
    }
    if last < model.acked {
        return Err((
            "durability",
            format!(
                "acknowledged LSN {} lost: the log ends at {last} (acknowledged up to {})",
                last.next(),
                model.acked
            ),
        ));
    }
    if last >= first {
        if model.get(last).is_some_and(|r| !r.batch_end) {
            return Err((
                "atomicity",
                format!("the log ends at {last}, inside a batch"),
            ));
        }
        if model.get(first).is_some_and(|r| !r.batch_start) {
            return Err((
                "atomicity",
                format!("the log starts at {first}, inside a batch"),
            ));
        }
    }
    Ok(())
}

/// The full check of one pure-crash state under the default policy: the log opens, with no
/// corruption and no salvage, and passes [`check_log`].
pub fn check_pure_crash<E: walden_core::StorageError, L>(
    model: &Model,
    outcome: &Outcome<E, L>,
) -> Result<(), Finding> {
    match outcome {
        Outcome::Broken(which, why) => Err((which, why.clone())),
        Outcome::Refused(e) => Err((
            "classification",
            format!("a pure crash made recovery refuse: {e}"),
        )),
        Outcome::Opened(got, _) => {
            if let Some(loss) = got.report.and_then(|r| r.salvage) {
                return Err((
                    "classification",
                    format!("a pure crash was salvaged: {loss:?}"),
                ));
            }
            check_log(model, got)
        }
    }
}

/// Media faults (FAULT-MODEL.md 5): damaged acknowledged data is never returned as valid and
/// never disappears without a trace. `must_refuse` says whether something on the medium proves
/// the damaged record complete, so that only a corruption error is acceptable.
pub fn check_media<E: walden_core::StorageError, L>(
    model: &Model,
    outcome: &Outcome<E, L>,
    must_refuse: bool,
) -> Result<(), Finding> {
    let got = match outcome {
        Outcome::Broken(which, why) => return Err((which, why.clone())),
        Outcome::Refused(OpenError::Corrupted(_)) => return Ok(()),
        Outcome::Refused(e) => {
            return Err((
                "classification",
                format!("media fault gave a non-corruption error: {e}"),
            ));
        }
        Outcome::Opened(got, _) => got,
    };
    // Nothing returned may differ from what was appended.
    for (lsn, payload) in &got.records {
        if model.get(*lsn).is_some_and(|r| r.payload != *payload) && *lsn <= model.acked {
            return Err((
                "durability",
                format!("acknowledged LSN {lsn} returned as valid with damaged bytes"),
            ));
        }
    }
    let mut relaxed = model.clone();
    relaxed.acked = Lsn::ZERO;
    relaxed.first_min = Lsn(1);
    check_log(&relaxed, got)?;
    if got.last() >= model.acked {
        return Ok(());
    }
    let lost = got.last().next();
    if must_refuse {
        return Err((
            "classification",
            format!(
                "acknowledged LSN {lost} was damaged where the medium proves it complete, but recovery opened the log ({})",
                describe_report(got.report)
            ),
        ));
    }
    let reported = got.report.is_some_and(|r| {
        r.cut.is_some_and(|c| c.first_lsn <= lost)
            || r.salvage.is_some_and(|s| s.first_lost <= lost)
    });
    if reported {
        Ok(())
    } else {
        Err((
            "classification",
            format!(
                "acknowledged LSN {lost} vanished without a trace ({})",
                describe_report(got.report)
            ),
        ))
    }
}

fn describe_report(report: Option<RecoveryReport>) -> String {
    report.map_or_else(|| "no report".to_owned(), |r| r.to_string())
}
