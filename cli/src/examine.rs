//! `walden inspect` and `walden verify`: both run core's read-only inspection (a full
//! checksum scan) and differ in what they print.

use core::fmt::Write as _;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use walden_core::{Config, Inspection, RecoveryPolicy, SegmentReport, Storage};

use crate::render::{self, name};
use crate::survey::{Failure, Survey, open_read_only};
use crate::{Common, EXIT_CLEAN};

/// Scratch memory for scans: large reads are fast.
const SCRATCH: usize = 1 << 20;

/// Runs core's inspection over `storage`, collecting every segment report.
pub(crate) fn run_inspection<S: Storage>(
    storage: &S,
    config: &Config,
    progress: Option<&ProgressBar>,
) -> Result<(Inspection, Vec<SegmentReport>), Failure> {
    let mut scratch = vec![0u8; SCRATCH];
    let mut segs = Vec::new();
    let ins =
        walden_core::inspect::<S, walden_core::Growable>(storage, config, &mut scratch, &mut |s| {
            if let Some(p) = progress {
                p.inc(s.len);
            }
            segs.push(*s);
        })
        .map_err(|e| Failure::new(e.to_string()))?;
    Ok((ins, segs))
}

fn open_and_inspect(
    common: &Common,
    policy: RecoveryPolicy,
    progress: bool,
) -> Result<(Inspection, Vec<SegmentReport>, Survey), Failure> {
    let config = common.config(policy)?;
    let (dir, survey) = open_read_only(&common.dir)?;
    let bar = (progress && !common.json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(survey.total_bytes());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let (ins, segs) = run_inspection(&dir, &config, bar.as_ref())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok((ins, segs, survey))
}

pub(crate) fn inspect(common: &Common, policy: RecoveryPolicy) -> Result<u8, Failure> {
    // Unused here (recovery checks the stored bytes' checksums), but a key file given for
    // uniform scripts must still be one: a malformed one is refused as by every command.
    common.keys()?;
    let (ins, segs, survey) = open_and_inspect(common, policy, false)?;
    let code = render::exit_code(&ins, &survey);
    if common.json {
        let (foreign, unusable, partial, spares) = render::survey_json(&survey);
        let v = json!({
            "dir": render::dir_str(&common.dir),
            "log_id": ins.log_id.map(|id| format!("{id:016x}")),
            "bytes": ins.bytes,
            "records": ins.records,
            "records_in_foreign_segments": render::foreign_records(&segs),
            "valid_through": ins.valid_through.0,
            "segments": segs.iter().map(render::segment_json).collect::<Vec<_>>(),
            "foreign": foreign,
            "unusable": unusable,
            "unfinished_backups": partial,
            "spares": spares,
            "policy": render::policy(policy),
            "reopen": render::reopen_json(&ins, &segs, &survey),
            "status": render::status(code),
            "exit_code": code,
        });
        crate::print_out(&format!("{v}\n"))?;
        return Ok(code);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} segments, {} bytes, {} valid records{}{}",
        common.dir.display(),
        ins.segments,
        ins.bytes,
        ins.records,
        render::foreign_records_text(&segs),
        ins.log_id
            .map(|id| format!(", log id {id:016x}"))
            .unwrap_or_default()
    );
    if !segs.is_empty() {
        let _ = writeln!(
            out,
            "{:<24} {:>3} {:<11} {:<16} {:>10} {:>8} {:<23} {:>12}  case",
            "segment", "ver", "checksum", "salt", "first lsn", "records", "lsn range", "size"
        );
    }
    for s in &segs {
        let (ver, alg, salt, first) = match s.header {
            Ok(h) => (
                h.version.to_string(),
                h.checksum.name().to_owned(),
                format!("{:016x}", h.salt),
                h.first_lsn.to_string(),
            ),
            Err(_) => ("-".into(), "-".into(), "(bad header)".into(), "-".into()),
        };
        let range = if s.records > 0 {
            format!("{}..={}", s.first_lsn, s.last_lsn)
        } else {
            "(none)".into()
        };
        let _ = writeln!(
            out,
            "{:<24} {:>3} {:<11} {:<16} {:>10} {:>8} {:<23} {:>12}  {}",
            name(s.id),
            ver,
            alg,
            salt,
            first,
            s.records,
            range,
            s.len,
            s.case
        );
    }
    let problems: Vec<String> = segs.iter().filter_map(render::problem_text).collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "problems:");
        for p in problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    for s in segs.iter().filter(|s| s.trailing_garbage.is_some()) {
        let _ = writeln!(
            out,
            "note: non-zero bytes after the last record of sealed segment {} at offset {} (ignored)",
            s.id,
            s.trailing_garbage.unwrap_or(0)
        );
    }
    render::survey_text(&survey, &mut out);
    let _ = writeln!(
        out,
        "reopen ({}): {}",
        render::policy(policy),
        render::reopen_text(&ins, &segs, &survey)
    );
    crate::print_out(&out)?;
    Ok(code)
}

/// With `--key-file`: reads every record recovery would keep through the keys, so that an
/// encrypted record altered with its checksum recomputed is found. Returns the records read
/// and what failed (a tag that does not authenticate, a key not in the file).
/// What authenticating every record with a key file found.
struct Authenticated {
    /// Encrypted records read and authenticated.
    read: u64,
    /// Records stored in plaintext (a segment written without a key): read and their checksums
    /// verified, but there is no tag to authenticate, so a plaintext record with recomputed
    /// checksums would pass. Counted apart so that they are never called authenticated.
    plaintext: u64,
    /// Damage the checksums could not see (corruption).
    problems: Vec<String>,
    /// Segments whose key is not in the key file (not read: nothing said of them).
    unkeyed: Vec<String>,
}

fn authenticate(
    common: &Common,
    segs: &[SegmentReport],
    keys: &walden_core::Keyring,
) -> Result<Authenticated, Failure> {
    use walden_core::inspect::{Records, RecordsError};
    let (dir, _) = open_read_only(&common.dir)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut read, mut plaintext) = (0u64, 0u64);
    let (mut problems, mut unkeyed) = (Vec::new(), Vec::new());
    for s in segs.iter().filter(|s| s.header_valid()) {
        let Some(mut records) = Records::new(s) else {
            continue;
        };
        loop {
            match records.next_with_keys(&dir, &mut buf, keys) {
                Ok(Some(r)) if r.flags.encrypted() => read += 1,
                Ok(Some(_)) => plaintext += 1,
                Ok(None) => break,
                Err(RecordsError::BufferTooSmall { needed }) => buf.resize(needed, 0),
                Err(RecordsError::Damaged { offset, detail }) => {
                    problems.push(format!("segment {} offset {offset}: {detail}", s.id));
                    break;
                }
                Err(RecordsError::Changed { offset, detail }) => {
                    problems.push(format!(
                        "segment {} offset {offset}: {detail} (changed since it was inspected)",
                        s.id
                    ));
                    break;
                }
                // Not damage (docs/FORMAT.md: a missing or wrong key changes nothing), and not
                // verified either: said apart, with its own exit status.
                Err(RecordsError::KeyMissing { segment, key_id }) => {
                    unkeyed.push(format!(
                        "segment {segment}: encrypted with key {key_id:#010x}, not in the key file"
                    ));
                    break;
                }
                Err(RecordsError::Storage(e)) => return Err(Failure::new(e.to_string())),
                Err(_) => {
                    problems.push(format!("segment {}: a record could not be read", s.id));
                    break;
                }
            }
        }
    }
    Ok(Authenticated {
        read,
        plaintext,
        problems,
        unkeyed,
    })
}

pub(crate) fn verify(common: &Common) -> Result<u8, Failure> {
    let policy = RecoveryPolicy::TolerateTornTail;
    // Read first: a key file that will not do fails before a scan that may take long.
    let keys = common.keys()?;
    let (ins, segs, survey) = open_and_inspect(common, policy, true)?;
    let mut code = render::exit_code(&ins, &survey);
    let auth = match &keys {
        Some(k) => Some(authenticate(common, &segs, k)?),
        None => None,
    };
    if auth.as_ref().is_some_and(|a| !a.problems.is_empty()) {
        code = code.max(crate::EXIT_CORRUPT);
    }
    // A segment the key file cannot authenticate: the check asked for could not be done
    // (as `dump` without its key), unless damage was found anyway.
    // Plaintext records likewise: a tampering check that passed them would pass a log whose
    // encrypted segments were replaced by plaintext ones with recomputed checksums.
    if auth
        .as_ref()
        .is_some_and(|a| !a.unkeyed.is_empty() || a.plaintext > 0)
        && code != crate::EXIT_CORRUPT
    {
        code = crate::EXIT_FAILURE;
    }
    let problems: Vec<&SegmentReport> = segs.iter().filter(|s| s.problem.is_some()).collect();
    if common.json {
        let list: Vec<_> = problems
            .iter()
            .map(|s| {
                let p = s.problem.unwrap_or(walden_core::inspect::Problem {
                    offset: 0,
                    lsn: None,
                    detail: "",
                    fault: None,
                });
                json!({
                    "segment": s.id, "file": name(s.id), "offset": p.offset,
                    "lsn": p.lsn.map(|l| l.0), "case": s.case.name(),
                    "corruption": s.case.is_corruption(), "detail": p.detail,
                    "action": render::action(s.action), "orphans": s.orphans,
                })
            })
            .collect();
        let (foreign, unusable, partial, spares) = render::survey_json(&survey);
        let v = json!({
            "dir": render::dir_str(&common.dir),
            "segments": ins.segments,
            "records": ins.records,
            "records_in_foreign_segments": render::foreign_records(&segs),
            "bytes": ins.bytes,
            "problems": list,
            "unusable": unusable,
            "foreign": foreign,
            "unfinished_backups": partial,
            "spares": spares,
            "reopen": render::reopen_json(&ins, &segs, &survey),
            "authenticated": auth.as_ref().map(|a| a.read),
            "plaintext_records": auth.as_ref().map(|a| a.plaintext),
            "authentication_problems": auth.as_ref().map(|a| &a.problems),
            "keys_missing": auth.as_ref().map(|a| &a.unkeyed),
            "status": render::status(code),
            "exit_code": code,
        });
        crate::print_out(&format!("{v}\n"))?;
        return Ok(code);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "verified {} records in {} segments ({} bytes){}",
        ins.records,
        ins.segments,
        ins.bytes,
        render::foreign_records_text(&segs)
    );
    if let Some(a) = &auth {
        let _ = writeln!(out, "authenticated {} records with the key file", a.read);
        if a.plaintext > 0 {
            let _ = writeln!(
                out,
                "NOT AUTHENTICATED: {} records are stored in plaintext (written without a key): \
                 their checksums verify, but nothing authenticates them",
                a.plaintext
            );
        }
        for p in &a.problems {
            let _ = writeln!(out, "CORRUPTION: {p}");
        }
        for u in &a.unkeyed {
            let _ = writeln!(out, "NOT AUTHENTICATED: {u}");
        }
    }
    for s in problems {
        if let Some(t) = render::problem_text(s) {
            let kind = if s.case.is_corruption() {
                "CORRUPTION"
            } else if s.case == walden_core::Case::RecordTooLarge {
                "CONFIGURATION"
            } else if matches!(
                s.case,
                walden_core::Case::NewerVersion | walden_core::Case::ChecksumNotBuiltIn
            ) {
                "UNREADABLE BY THIS BUILD"
            } else {
                "torn"
            };
            let _ = writeln!(out, "{kind}: {t}; open would {}", render::action(s.action));
        }
    }
    render::survey_text(&survey, &mut out);
    let _ = writeln!(
        out,
        "{}: {}",
        if code == EXIT_CLEAN {
            "clean"
        } else {
            render::status(code)
        },
        render::reopen_text(&ins, &segs, &survey)
    );
    crate::print_out(&out)?;
    Ok(code)
}
