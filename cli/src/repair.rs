//! `walden repair`: what an ordinary open would repair, done now, durably, with a `.broken`
//! copy of every file it changes; corruption only with `--salvage`.

use core::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use walden_core::{Lsn, RecoveryPolicy, SalvageLoss, Verdict};
use walden_std::{CoreWal, FileStorage};

use crate::examine::run_inspection;
use crate::render::{self, name};
use crate::survey::{Failure, no_log, open_read_only};
use crate::{Common, EXIT_CLEAN, EXIT_CORRUPT};

/// A name beside `path` that does not exist yet: `<name>.broken`, then `<name>.broken.1`, ...
fn backup_name(path: &Path) -> Result<PathBuf, Failure> {
    let base = path.as_os_str().to_owned();
    for n in 0..1000u32 {
        let mut candidate = base.clone();
        candidate.push(if n == 0 {
            ".broken".to_owned()
        } else {
            format!(".broken.{n}")
        });
        let candidate = PathBuf::from(candidate);
        match fs::symlink_metadata(&candidate) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(candidate),
            _ => {}
        }
    }
    Err(Failure::new(format!(
        "too many earlier backups of {}",
        path.display()
    )))
}

/// Copies `path` to a new file beside it and makes the copy durable.
fn back_up(path: &Path) -> Result<PathBuf, Failure> {
    let fail = |what: &str, e: io::Error| Failure::new(format!("backup: cannot {what}: {e}"));
    let to = backup_name(path)?;
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| fail(&format!("open {}", path.display()), e))?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&to)
        .map_err(|e| fail(&format!("create {}", to.display()), e))?;
    io::copy(&mut src, &mut dst).map_err(|e| fail(&format!("copy to {}", to.display()), e))?;
    dst.sync_all()
        .map_err(|e| fail(&format!("sync {}", to.display()), e))?;
    Ok(to)
}

/// What salvage gave up. Recovery's `last_known` comes from segment headers and later records
/// in the damaged segment; inspection also scanned the dropped segments, so `seen` (the highest
/// valid LSN in them) can only make the range more exact.
fn lost_text(l: &SalvageLoss, seen: Option<Lsn>) -> (Option<Lsn>, String) {
    let last = l.last_known.max(seen).filter(|k| *k >= l.first_lost);
    let text = match last {
        Some(k) if k > l.first_lost => format!("LSNs {}..={} were lost", l.first_lost, k),
        Some(_) => format!("LSN {} was lost", l.first_lost),
        None => format!(
            "LSN {} and any later records were lost (nothing left on disk tells how far the log went)",
            l.first_lost
        ),
    };
    (last, text)
}

pub(crate) fn run(common: &Common, salvage: bool) -> Result<u8, Failure> {
    let policy = if salvage {
        RecoveryPolicy::Salvage
    } else {
        RecoveryPolicy::TolerateTornTail
    };
    // Unused (recovery checks the stored bytes' checksums), but refused when it is not a key
    // file, before anything is changed, as by every command.
    common.keys()?;
    let config = common.config(policy)?;
    // Look first, read-only: a clean or refused log gets no lock file, no write, nothing.
    let (ro, survey) = open_read_only(&common.dir)?;
    let (ins, segs) = run_inspection(&ro, &config, None)?;
    drop(ro);
    let say = |code: u8, message: String, extra: serde_json::Value| {
        if common.json {
            let mut v = json!({ "dir": render::dir_str(&common.dir), "repaired": false,
                "message": message, "exit_code": code });
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            crate::print_out(&format!("{v}\n"))?;
        } else if code == EXIT_CLEAN {
            crate::print_out(&format!("{message}\n"))?;
        } else {
            note!("walden: {message}");
        }
        Ok(code)
    };
    if let Some(u) = survey.unusable.first() {
        return say(
            EXIT_CORRUPT,
            format!(
                "refusing to repair: {} {}; move it away by hand first",
                u.path.display(),
                u.why
            ),
            json!({}),
        );
    }
    let to_change: Vec<u64> = match ins.verdict {
        // Segments removed since the survey found some.
        Verdict::Empty => return Err(no_log(&common.dir)),
        // Under `Salvage` only (any other policy refuses it): the front recorded as missing.
        // The open below records where the log now starts, in a start slot; an existing slot
        // is rewritten, so it is copied first.
        Verdict::Clean if ins.missing_front.is_some() => survey
            .segments
            .keys()
            .copied()
            .filter(|id| walden_core::raw::is_start_slot(*id))
            .collect(),
        Verdict::Clean => {
            return say(
                EXIT_CLEAN,
                "the log is clean: nothing to repair".into(),
                json!({}),
            );
        }
        Verdict::Refuse(c) => {
            let mut message = format!("refusing to repair {}: {c}", common.dir.display());
            let hint = run_inspection(
                &open_read_only(&common.dir)?.0,
                &config.with_recovery(RecoveryPolicy::Salvage),
                None,
            )
            .ok()
            .map(|(i, _)| (i.verdict, i.missing_front));
            match hint {
                Some((Verdict::Salvage { first_lost, .. }, _)) => message.push_str(&format!(
                    "; `walden repair --salvage` would keep LSNs up to {} and give up LSN {first_lost} onward",
                    first_lost.0.saturating_sub(1)
                )),
                Some((Verdict::Clean, Some(m))) => message.push_str(&format!(
                    "; `walden repair --salvage` would record that the log now starts at segment {} \
                     and give up the records of segments {}..{}",
                    m.found, m.expected, m.found
                )),
                _ => {}
            }
            return say(
                EXIT_CORRUPT,
                message,
                json!({ "reopen": render::verdict_json(&ins.verdict) }),
            );
        }
        Verdict::RecordTooLarge { .. } => {
            return say(
                EXIT_CORRUPT,
                format!(
                    "refusing to repair {}: {}",
                    common.dir.display(),
                    render::verdict_text(&ins.verdict)
                ),
                json!({ "reopen": render::verdict_json(&ins.verdict) }),
            );
        }
        // A torn tail cut in a segment with early successors removes them too: every segment
        // from the repaired one on is copied (a torn newest segment has none after it).
        Verdict::Repair { segment, .. } | Verdict::Salvage { segment, .. } => survey
            .segments
            .keys()
            .copied()
            .filter(|id| *id >= segment && !walden_core::raw::is_start_slot(*id))
            .collect(),
    };

    // Now exclusively: re-check under the writer's lock, back up, then let recovery repair.
    let storage = FileStorage::open(&common.dir, false)?;
    let (again, _) = run_inspection(&storage, &config, None)?;
    if again.verdict != ins.verdict {
        return Err(Failure::new(
            "the log changed while being inspected; run repair again".into(),
        ));
    }
    let mut backups = Vec::new();
    for id in &to_change {
        let path = common.dir.join(name(*id));
        let to = back_up(&path)?;
        backups.push((path, to));
    }
    File::open(&common.dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Failure::new(format!("backup: cannot sync the directory: {e}")))?;
    let mut scratch = vec![0u8; 1 << 20];
    let (wal, report) = CoreWal::open(
        storage,
        config.with_salt_seed(walden_std::random_seed()),
        &mut scratch,
    )
    .map_err(|e| Failure::new(format!("repair failed (backups kept): {e}")))?;
    drop(wal);

    let seen = report.salvage.and_then(|l| {
        segs.iter()
            .filter(|s| s.id >= l.segment && s.records > 0)
            .filter(|s| s.header.is_ok_and(|h| Some(h.log_id) == ins.log_id))
            .map(|s| s.last_lsn)
            .max()
    });
    let lost = report.salvage.as_ref().map(|l| lost_text(l, seen));
    // The repair is done and durable: what follows only reports it, and cannot change the
    // exit status.
    let mut out = String::new();
    if common.json {
        let v = json!({
            "dir": render::dir_str(&common.dir),
            "repaired": true,
            "policy": render::policy(policy),
            "backups": backups.iter().map(|(f, b)| json!({
                "file": f.display().to_string(), "backup": b.display().to_string(),
            })).collect::<Vec<_>>(),
            "report": render::report_json(&report),
            "lost": report.salvage.zip(lost.as_ref()).map(|(l, (last, message))| json!({
                "first": l.first_lost.0, "last_known": last.map(|k| k.0), "message": message,
            })),
            "exit_code": EXIT_CLEAN,
        });
        let _ = writeln!(out, "{v}");
    } else {
        for (f, b) in &backups {
            let _ = writeln!(out, "saved {} as {}", f.display(), b.display());
        }
        let _ = writeln!(out, "repaired: {report}");
        if let Some((_, lost)) = lost {
            let _ = writeln!(out, "LOST: {lost}");
        }
        if let Some(m) = report.missing_front {
            let _ = writeln!(
                out,
                "LOST: the records of segments {}..{}, missing from the front (the log now starts at LSN {})",
                m.expected, m.found, report.first_lsn
            );
        }
    }
    if let Err(e) = crate::print_out(&out) {
        note!(
            "walden: {} is repaired (each changed file copied to <name>.broken beside it), but its report was not written: {e}",
            common.dir.display()
        );
    }
    Ok(EXIT_CLEAN)
}
