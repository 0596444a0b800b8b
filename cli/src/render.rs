//! How core's inspection and recovery results look, as text and as JSON.

use core::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use walden_core::inspect::MissingFront;
use walden_core::inspect::Problem;
use walden_core::raw::Action;
use walden_core::raw::HeaderProblem;
use walden_core::{
    Case, Inspection, Lsn, RecoveryPolicy, RecoveryReport, SegmentName, SegmentReport, Verdict,
};

use crate::survey::Survey;
use crate::{EXIT_CLEAN, EXIT_CORRUPT, EXIT_TORN};

pub(crate) fn name(id: u64) -> String {
    SegmentName::new(id).as_str().to_owned()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The exit status an inspection calls for. The policy shown does not change it: a torn tail
/// is 1 even under `Strict`, and corruption is 2 even under `Salvage`.
pub(crate) fn exit_code(ins: &Inspection, survey: &Survey) -> u8 {
    let refused_for_damage = matches!(ins.verdict, Verdict::Refuse(c) if c.case != Case::TornTail)
        || matches!(ins.verdict, Verdict::RecordTooLarge { .. });
    if ins.corruption || !survey.unusable.is_empty() || refused_for_damage {
        EXIT_CORRUPT
    } else if ins.problems > 0 {
        EXIT_TORN
    } else {
        EXIT_CLEAN
    }
}

pub(crate) fn status(code: u8) -> &'static str {
    match code {
        EXIT_CLEAN => "clean",
        EXIT_TORN => "torn",
        crate::EXIT_FAILURE => "incomplete",
        _ => "corrupt",
    }
}

fn header_problem(p: HeaderProblem) -> String {
    match p {
        HeaderProblem::Short => "shorter than a header".into(),
        HeaderProblem::BadMagic => "bad magic".into(),
        HeaderProblem::BadChecksum => "header checksum mismatch".into(),
        HeaderProblem::NewerVersion(v) => format!("newer format version {v}"),
        HeaderProblem::Impossible(why) => format!("impossible field: {why}"),
    }
}

pub(crate) fn action(a: Action) -> &'static str {
    match a {
        Action::Keep => "keep",
        Action::CutTornTail => "cut the torn tail",
        Action::RewriteHeader => "rewrite the header",
        Action::Fail => "refuse to open",
        Action::SalvageCut => "salvage: cut here and drop later segments",
        Action::SalvageDrop => "salvage: drop this and later segments",
    }
}

pub(crate) fn policy(p: RecoveryPolicy) -> &'static str {
    match p {
        RecoveryPolicy::Strict => "Strict",
        RecoveryPolicy::Salvage => "Salvage",
        _ => "TolerateTornTail",
    }
}

fn problem_json(p: &Problem) -> Value {
    json!({ "offset": p.offset, "lsn": p.lsn.map(|l| l.0), "detail": p.detail })
}

pub(crate) fn segment_json(s: &SegmentReport) -> Value {
    let header = match s.header {
        Ok(h) => json!({
            "version": h.version,
            "checksum": h.checksum.name(),
            "log_id": format!("{:016x}", h.log_id),
            "segment_id": h.segment_id,
            "first_lsn": h.first_lsn.0,
            "salt": format!("{:016x}", h.salt),
        }),
        Err(p) => json!({ "invalid": header_problem(p) }),
    };
    json!({
        "id": s.id,
        "file": name(s.id),
        "size": s.len,
        "header": header,
        "records": s.records,
        "first_lsn": s.first_lsn.0,
        "last_lsn": s.last_lsn.0,
        "end": s.end,
        "case": s.case.name(),
        "action": action(s.action),
        "problem": s.problem.as_ref().map(problem_json),
        "orphans": s.orphans,
        "trailing_garbage_at": s.trailing_garbage,
    })
}

pub(crate) fn verdict_json(v: &Verdict) -> Value {
    match *v {
        Verdict::Empty => json!({ "would": "create a new log" }),
        Verdict::Clean => json!({ "would": "open" }),
        Verdict::Repair {
            case,
            segment,
            first_lsn,
        } => json!({
            "would": "repair", "case": case.name(), "segment": segment, "first_lsn": first_lsn.0,
        }),
        Verdict::Refuse(c) => json!({
            "would": "refuse", "case": c.case.name(), "segment": c.segment, "offset": c.offset,
            "lsn": c.lsn.map(|l| l.0), "detail": c.detail,
        }),
        Verdict::RecordTooLarge {
            segment,
            offset,
            lsn,
            length,
            max,
        } => json!({
            "would": "refuse", "case": Case::RecordTooLarge.name(), "segment": segment,
            "offset": offset, "lsn": lsn.0, "length": length, "max_record_size": max,
            "detail": format!("record is {length} bytes; reopen with max_record_size of at least {length}"),
        }),
        Verdict::Salvage {
            case,
            segment,
            offset,
            first_lost,
            drops_segment,
        } => json!({
            "would": "salvage", "case": case.name(), "segment": segment, "offset": offset,
            "first_lost": first_lost.0, "drops_segment": drops_segment,
        }),
    }
}

pub(crate) fn verdict_text(v: &Verdict) -> String {
    match *v {
        Verdict::Empty => "no segments: an open would create a new log".into(),
        Verdict::Clean => "would open as is".into(),
        Verdict::Repair {
            case: Case::TornTail,
            segment,
            first_lsn,
        } => format!(
            "would cut the torn tail of segment {segment} from LSN {first_lsn} (no record proves it was acknowledged) and open"
        ),
        Verdict::Repair { segment, .. } => {
            format!("would rewrite the torn header of segment {segment} and open")
        }
        Verdict::Refuse(c) => format!("would REFUSE to open: {c}"),
        Verdict::RecordTooLarge {
            segment,
            offset,
            lsn,
            length,
            max,
        } => format!(
            "would REFUSE to open: record {lsn} in segment {segment} at offset {offset} is {length} bytes, more than max_record_size {max} (a configuration error, not damage: nothing was changed; use --max-record-size {length} or more, as the writer must)"
        ),
        Verdict::Salvage {
            case,
            segment,
            offset,
            first_lost,
            drops_segment,
        } => format!(
            "would salvage: {case} in segment {segment} at offset {offset}; {} and give up LSN {first_lost} onward",
            if drops_segment {
                "drop this segment and every later one"
            } else {
                "cut it there, drop every later segment"
            }
        ),
    }
}

/// The later segments a torn-tail cut in `segment` removes with it (a segment with early
/// successors, docs/FORMAT.md "Early successors"): their ids, valid records and LSN range.
fn removed_with_cut(segment: u64, segs: &[SegmentReport]) -> (Vec<u64>, u64, Option<(Lsn, Lsn)>) {
    let later: Vec<&SegmentReport> = segs
        .iter()
        .filter(|s| s.id > segment && !walden_core::raw::is_start_slot(s.id))
        .collect();
    let with_records = later.iter().filter(|s| s.records > 0);
    let range = with_records
        .clone()
        .map(|s| s.first_lsn)
        .min()
        .zip(with_records.map(|s| s.last_lsn).max());
    (
        later.iter().map(|s| s.id).collect(),
        later.iter().map(|s| s.records).sum(),
        range,
    )
}

/// What an open would do, in words, from the inspection: its verdict, the later segments a
/// torn-tail cut removes with it, and under `Salvage` a front recorded as missing.
pub(crate) fn open_text(ins: &Inspection, segs: &[SegmentReport]) -> String {
    let mut text = verdict_words(ins, segs);
    if ins.stale > 0 {
        let count = ins.stale;
        let first = segs.first().map_or(0, |s| s.id);
        text.push_str(&format!(
            "; it would leave out {count} segment file(s) older than segment {first}: older than \
             the log's start and not leading up to it, so not part of the log (a restored copy or \
             a stray file?), left as they are; move them away"
        ));
    }
    text
}

/// The last LSN the segments missing from the front held, as far as the disk tells: the one
/// before the oldest remaining segment's first LSN (`None` when its header cannot say, or the
/// log starts at LSN 1 there). Where they began is recorded nowhere.
pub(crate) fn front_lost_through(m: &MissingFront, segs: &[SegmentReport]) -> Option<Lsn> {
    segs.iter()
        .find(|s| s.id == m.found && s.header.is_ok())
        .map(|s| s.first_lsn)
        .filter(|first| first.0 > 1)
        .map(Lsn::prev)
}

/// "their records" of a front recorded as missing, with the last LSN when it is known.
fn front_records(m: &MissingFront, segs: &[SegmentReport]) -> String {
    match front_lost_through(m, segs) {
        Some(last) => format!("their records, up to LSN {last}"),
        None => "their records".into(),
    }
}

fn verdict_words(ins: &Inspection, segs: &[SegmentReport]) -> String {
    let text = verdict_words_alone(ins, segs);
    match (ins.verdict, ins.missing_front) {
        // An open under `Salvage` that repairs or salvages also records a missing front.
        (Verdict::Repair { .. } | Verdict::Salvage { .. }, Some(m)) => format!(
            "{text}; segments {}..{} are missing from the front of the log too: it would also \
             record that the log now starts at segment {} (giving up {})",
            m.expected,
            m.found,
            m.found,
            front_records(&m, segs)
        ),
        _ => text,
    }
}

fn verdict_words_alone(ins: &Inspection, segs: &[SegmentReport]) -> String {
    match (ins.verdict, ins.missing_front) {
        (Verdict::Clean, Some(m)) => format!(
            "would salvage: segments {}..{} are missing from the front of the log; record that it \
             now starts at segment {} (giving up {}) and open",
            m.expected,
            m.found,
            m.found,
            front_records(&m, segs)
        ),
        (
            Verdict::Repair {
                case: Case::TornTail,
                segment,
                first_lsn,
            },
            _,
        ) => {
            let (ids, records, range) = removed_with_cut(segment, segs);
            let also = match (ids.first(), ids.last()) {
                (Some(a), Some(b)) => format!(
                    " and remove segments {a}..={b} ({records} valid records{}; no record proves \
                     they were acknowledged either)",
                    range.map_or_else(String::new, |(x, y)| format!(", LSN {x}..={y}"))
                ),
                _ => String::new(),
            };
            format!(
                "would cut the torn tail of segment {segment} from LSN {first_lsn} (no record proves it was acknowledged){also} and open"
            )
        }
        _ => verdict_text(&ins.verdict),
    }
}

/// [`open_text`] as JSON.
pub(crate) fn open_json(ins: &Inspection, segs: &[SegmentReport]) -> Value {
    let mut v = verdict_words_json(ins, segs);
    if ins.stale > 0 {
        v["stale_segments"] = json!(ins.stale);
    }
    v
}

/// A front recorded as missing, as JSON: `lost_through` is [`front_lost_through`].
fn missing_front_json(m: &MissingFront, segs: &[SegmentReport]) -> Value {
    json!({
        "expected": m.expected,
        "found": m.found,
        "lost_through": front_lost_through(m, segs).map(|l| l.0),
    })
}

fn verdict_words_json(ins: &Inspection, segs: &[SegmentReport]) -> Value {
    let mut v = verdict_words_json_alone(ins, segs);
    if let (Verdict::Repair { .. } | Verdict::Salvage { .. }, Some(m)) =
        (ins.verdict, ins.missing_front)
    {
        v["missing_front"] = missing_front_json(&m, segs);
    }
    v
}

fn verdict_words_json_alone(ins: &Inspection, segs: &[SegmentReport]) -> Value {
    match (ins.verdict, ins.missing_front) {
        (Verdict::Clean, Some(m)) => json!({
            "would": "salvage",
            "missing_front": missing_front_json(&m, segs),
        }),
        (
            Verdict::Repair {
                case: Case::TornTail,
                segment,
                ..
            },
            _,
        ) => {
            let mut v = verdict_json(&ins.verdict);
            let (ids, records, range) = removed_with_cut(segment, segs);
            v["removes_segments"] = json!(ids);
            v["removes_records"] = json!(records);
            v["removes_lsns"] = json!(range.map(|(a, b)| [a.0, b.0]));
            v
        }
        _ => verdict_json(&ins.verdict),
    }
}

/// What an open would do, where the survey knows better than the inspection: an entry with a
/// segment's name that is not a regular file (a symlink, a directory) makes every open fail.
pub(crate) fn reopen_text(ins: &Inspection, segs: &[SegmentReport], survey: &Survey) -> String {
    match survey.unusable.first() {
        Some(u) => format!(
            "would FAIL to open: {} {} (walden opens only regular files)",
            u.path.display(),
            u.why
        ),
        None => open_text(ins, segs),
    }
}

/// [`reopen_text`] as JSON.
pub(crate) fn reopen_json(ins: &Inspection, segs: &[SegmentReport], survey: &Survey) -> Value {
    match survey.unusable.first() {
        Some(u) => json!({
            "would": "fail", "path": u.path.display().to_string(), "detail": u.why,
        }),
        None => open_json(ins, segs),
    }
}

/// Valid records in segments whose header does not fit this log (`ForeignSegment`: another
/// log's id, another segment's id, or a first LSN that does not continue the segment before).
/// They verify against their own header, so inspection counts them among the valid records;
/// the summaries say how many of those are not this log's.
pub(crate) fn foreign_records(segs: &[SegmentReport]) -> u64 {
    segs.iter()
        .filter(|s| s.case == walden_core::Case::ForeignSegment)
        .map(|s| s.records)
        .sum()
}

/// `" (N of them in segments that do not belong to this log)"`, or nothing when there are none.
pub(crate) fn foreign_records_text(segs: &[SegmentReport]) -> String {
    match foreign_records(segs) {
        0 => String::new(),
        n => format!(" ({n} of them in segments that do not belong to this log)"),
    }
}

pub(crate) fn problem_text(s: &SegmentReport) -> Option<String> {
    let p = s.problem?;
    let mut t = format!(
        "{} (segment {}) at offset {}: {} — {}",
        name(s.id),
        s.id,
        p.offset,
        s.case,
        p.detail
    );
    if let Some(l) = p.lsn {
        let _ = write!(t, " (LSN {l})");
    }
    if s.orphans > 0 {
        let _ = write!(t, "; {} valid records after it", s.orphans);
    }
    Some(t)
}

/// The survey's foreign files, unusable entries, unfinished backup copies and walden-std's
/// spare files, as JSON. Paths are strings: a name that is not UTF-8 is shown with U+FFFD in
/// place of its invalid bytes (docs/OPERATIONS.md, "JSON output").
pub(crate) fn survey_json(survey: &Survey) -> (Value, Value, Value, Value) {
    let paths = |v: &[PathBuf]| {
        json!(
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        )
    };
    let unusable: Vec<Value> = survey
        .unusable
        .iter()
        .map(|u| json!({ "path": u.path.display().to_string(), "why": u.why }))
        .collect();
    (
        paths(&survey.foreign),
        json!(unusable),
        paths(&survey.partial_backups),
        paths(&survey.spares),
    )
}

pub(crate) fn survey_text(survey: &Survey, out: &mut String) {
    for u in &survey.unusable {
        let _ = writeln!(
            out,
            "UNUSABLE: {} {} (an open fails on it)",
            u.path.display(),
            u.why
        );
    }
    if !survey.spares.is_empty() {
        let _ = writeln!(
            out,
            "{} spare segment file(s) prepared by walden-std (its next open removes them)",
            survey.spares.len()
        );
    }
    if !survey.partial_backups.is_empty() {
        let _ = writeln!(
            out,
            "unfinished backup copies left by an interrupted `walden repair` (not backups; the \
             next repair that changes the log removes them, and deleting them is safe):"
        );
        for f in &survey.partial_backups {
            let _ = writeln!(out, "  {}", f.display());
        }
    }
    if !survey.foreign.is_empty() {
        let _ = writeln!(out, "foreign files (not segments; left alone):");
        for f in &survey.foreign {
            let _ = writeln!(out, "  {}", f.display());
        }
    }
}

pub(crate) fn report_json(r: &RecoveryReport) -> Value {
    json!({
        "segments": r.segments,
        "records": r.records,
        "first_lsn": r.first_lsn.0,
        "last_lsn": r.last_lsn.0,
        "cut": r.cut.map(|c| json!({
            "case": c.case.name(), "segment": c.segment, "offset": c.offset, "bytes": c.bytes,
            "first_lsn": c.first_lsn.0, "orphans": c.orphans, "detail": c.detail,
        })),
        "rewritten_header": r.rewritten_header,
        "missing_front": r.missing_front.map(|m| json!({
            "expected_first_segment": m.expected, "first_segment": m.found,
        })),
        "trailing_garbage": r.trailing_garbage.map(|(s, o)| json!({ "segment": s, "offset": o })),
        "stale_segments": r.stale,
        "salvage": r.salvage.map(|l| json!({
            "case": l.case.name(), "segment": l.segment, "offset": l.offset,
            "first_lost": l.first_lost.0, "last_known": l.last_known.map(|k| k.0),
            "segments_dropped": l.segments_dropped, "detail": l.detail,
        })),
    })
}

pub(crate) fn dir_str(dir: &Path) -> String {
    dir.display().to_string()
}
