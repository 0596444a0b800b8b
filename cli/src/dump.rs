//! `walden dump`: the verified records of the log, one per line.

use std::io::{self, BufWriter, Write};

use serde_json::{Value, json};
use walden_core::inspect::Verdict;
use walden_core::inspect::{Records, RecordsError};
use walden_core::raw::RecordKind;
use walden_core::{Entry, RecoveryPolicy};

use crate::examine::run_inspection;
use crate::render::{self, hex};
use crate::survey::{Failure, open_read_only};
use crate::{Common, Format};

fn kind(k: RecordKind) -> &'static str {
    match k {
        RecordKind::Single => "single",
        RecordKind::First => "batch-first",
        RecordKind::Middle => "batch-middle",
        RecordKind::Last => "batch-last",
        RecordKind::Meta => "meta",
    }
}

fn bytes_json(b: &[u8]) -> Value {
    match core::str::from_utf8(b) {
        Ok(s) => json!({ "utf8": s, "hex": hex(b) }),
        Err(_) => json!({ "hex": hex(b) }),
    }
}

fn entry_json(payload: &[u8]) -> Option<Value> {
    match Entry::decode(payload, &walden_core::EntryLimits::default()).ok()? {
        Entry::Put { key, value } => {
            Some(json!({ "put": { "key": bytes_json(key), "value": bytes_json(value) } }))
        }
        Entry::Delete { key } => Some(json!({ "delete": { "key": bytes_json(key) } })),
    }
}

pub(crate) fn run(
    common: &Common,
    from: Option<u64>,
    to: Option<u64>,
    format: Format,
    entries: bool,
) -> Result<u8, Failure> {
    let format = if common.json { Format::Json } else { format };
    let config = common.config(RecoveryPolicy::TolerateTornTail)?;
    let keys = common.keys()?;
    let (dir, survey) = open_read_only(&common.dir)?;
    let (ins, segs) = run_inspection(&dir, &config, None)?;
    // Non-zero whenever the log is not clean, even if the records asked for were all printed.
    let code = render::exit_code(&ins, &survey);
    if let Some(m) = ins.missing_front {
        note!(
            "walden: segments {}..{} are missing from the front of the log (the newest segment records that the log starts at segment {}); output starts at segment {}",
            m.expected,
            m.found,
            m.expected,
            m.found
        );
    }
    if let (Verdict::Refuse(c), true) = (ins.verdict, segs.is_empty()) {
        // No segment to print from (e.g. only the start slots left): say why nothing follows.
        note!("walden: nothing to print: {c}");
    }
    if ins.stale > 0 {
        note!(
            "walden: not read: {} segment file(s) older than the log's start and not leading up to it (not part of the log)",
            ins.stale
        );
    }
    for u in &survey.unusable {
        note!("walden: not read: {} {}", u.path.display(), u.why);
    }
    let asked = from.is_some() || to.is_some();
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(u64::MAX));
    let mut printed = 0u64;
    let mut damaged = false;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut buf = vec![0u8; 64 * 1024];
    let written: Result<(), io::Error> = (|| {
        for s in &segs {
            // Records of another log, or of a segment recovery would not read, are not this
            // log's records: the output stops there, as an open would.
            if !s.header_valid() {
                stops(s);
                return Ok(());
            }
            if s.last_lsn.0 < from || s.first_lsn.0 > to {
                if s.problem.is_some() {
                    stops(s);
                    return Ok(());
                }
                continue;
            }
            let Some(mut cursor) = Records::new(s) else {
                continue;
            };
            while cursor.position().0 < from {
                if !cursor.skip(&dir).map_err(read_error)? {
                    break;
                }
            }
            loop {
                if cursor.position().0 > to {
                    return Ok(());
                }
                let next = match &keys {
                    Some(k) => cursor.next_with_keys(&dir, &mut buf, k),
                    None => cursor.next(&dir, &mut buf),
                };
                let rec = match next {
                    Ok(Some(rec)) => rec,
                    Ok(None) => break,
                    Err(RecordsError::BufferTooSmall { needed }) => {
                        buf.resize(needed, 0);
                        continue;
                    }
                    // Corruption the checksums could not see: the output stops there, as at
                    // any damage, with the status `verify --key-file` gives it.
                    Err(RecordsError::Damaged { offset, detail }) => {
                        out.flush()?;
                        note!(
                            "walden: output stops at {} (segment {}) offset {offset}: {detail} (corruption: the record's checksums verify but it does not decode or authenticate)",
                            render::name(s.id),
                            s.id
                        );
                        damaged = true;
                        return Ok(());
                    }
                    Err(e) => return Err(read_error(e)),
                };
                printed += 1;
                match format {
                    Format::Json => {
                        let mut v = json!({
                            "lsn": rec.lsn.0, "segment": s.id, "offset": rec.offset,
                            "kind": kind(rec.kind), "len": rec.payload.len(),
                            "payload": bytes_json(rec.payload),
                        });
                        if let Some(e) = entries.then(|| entry_json(rec.payload)).flatten() {
                            v["entry"] = e;
                        }
                        writeln!(out, "{v}")?;
                    }
                    Format::Hex | Format::Utf8 => {
                        write!(
                            out,
                            "{}\t{}\t{}\t{}\t",
                            rec.lsn,
                            kind(rec.kind),
                            rec.payload.len(),
                            match format {
                                Format::Hex => hex(rec.payload),
                                _ => String::from_utf8_lossy(rec.payload)
                                    .escape_debug()
                                    .to_string(),
                            }
                        )?;
                        match entries.then(|| entry_json(rec.payload)).flatten() {
                            Some(e) => writeln!(out, "{e}")?,
                            None => writeln!(out)?,
                        }
                    }
                }
            }
            if s.problem.is_some() {
                out.flush()?;
                stops(s);
                return Ok(());
            }
        }
        Ok(())
    })();
    let flushed = written.and_then(|()| out.flush());
    if asked && printed == 0 && flushed.is_ok() {
        // Said, so that a script can tell "no such records" from a range that holds nothing.
        let held = segs.iter().filter(|s| s.header_valid() && s.records > 0);
        let first = held.clone().map(|s| s.first_lsn).min();
        let last = held.map(|s| s.last_lsn).max();
        let holds = match first.zip(last) {
            Some((a, b)) => format!("the log holds LSNs {a}..={b}"),
            None => "the log holds no records".to_owned(),
        };
        note!("walden: no record printed from LSN {from} to {to}: {holds}");
    }
    let code = if damaged {
        code.max(crate::EXIT_CORRUPT)
    } else {
        code
    };
    match crate::reader_gone(flushed) {
        Ok(()) => Ok(code),
        Err(e) => Err(Failure::new(format!("dump: {e}"))),
    }
}

/// Says where and why the output stops (on stderr, after the records printed so far).
fn stops(s: &walden_core::SegmentReport) {
    let p = s.problem;
    let lsn = p
        .and_then(|p| p.lsn)
        .map(|l| format!(", LSN {l}"))
        .unwrap_or_default();
    note!(
        "walden: output stops at {} (segment {}) offset {}{lsn}: {}: {}{}",
        render::name(s.id),
        s.id,
        p.map_or(0, |p| p.offset),
        s.case,
        p.map_or("", |p| p.detail),
        if s.case.is_corruption() {
            " (corruption: run `walden verify` for details)"
        } else if s.case == walden_core::Case::RecordTooLarge {
            " (a record longer than --max-record-size: give the limit the writer used)"
        } else if matches!(
            s.case,
            walden_core::Case::NewerVersion | walden_core::Case::ChecksumNotBuiltIn
        ) {
            " (written by a newer version or with a checksum this build lacks: use a build that reads it)"
        } else {
            " (an ordinary crash: no record proves what follows was acknowledged)"
        }
    );
}

fn read_error(e: RecordsError<walden_std::FileError>) -> io::Error {
    let msg = match e {
        RecordsError::Changed { offset, detail } => {
            format!("the log changed while being read (offset {offset}: {detail})")
        }
        RecordsError::Storage(s) => s.to_string(),
        RecordsError::BufferTooSmall { needed } => format!("record of {needed} bytes"),
        RecordsError::KeyMissing { segment, key_id } => format!(
            "segment {segment} is encrypted with key {key_id:#010x}, which no --key-file gave"
        ),
        RecordsError::NotBuiltIn { offset, what } => {
            format!("the record at offset {offset} is a {what}, which this build cannot decode")
        }
        _ => "read failed".to_owned(),
    };
    io::Error::other(msg)
}
