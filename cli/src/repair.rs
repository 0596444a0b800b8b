//! `walden repair`: what an ordinary open would repair, done now, durably, with a `.broken`
//! copy of every file it changes; corruption only with `--salvage`.

use core::fmt::Write as _;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use walden_core::{
    Inspection, Lsn, RecoveryPolicy, SalvageLoss, SegmentId, SegmentReport, Verdict,
};
use walden_std::{CoreWal, FileStorage};

use crate::examine::run_inspection;
use crate::render::{self, name};
use crate::survey::{self, Failure, PARTIAL_SUFFIX, Survey, no_log, open_read_only};
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

/// The name a copy of `path` is written under until it is complete and synced
/// (`<name>.repair-partial`, [`PARTIAL_SUFFIX`]): never taken for a segment, a spare or a
/// backup.
fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PARTIAL_SUFFIX);
    PathBuf::from(name)
}

/// Removes an unfinished copy left by a repair that stopped part of the way (a regular file
/// only: anything else with that name is not ours, and is refused).
fn remove_partial(partial: &Path) -> Result<(), Failure> {
    let fail = |e: io::Error| {
        Failure::new(format!(
            "backup: cannot remove the unfinished copy {}: {e}",
            partial.display()
        ))
    };
    match fs::symlink_metadata(partial) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(e)),
        Ok(m) if m.is_file() => fs::remove_file(partial).map_err(fail),
        Ok(_) => Err(Failure::new(format!(
            "backup: {} is in the way and is not a regular file; move it away",
            partial.display()
        ))),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Copies segment file `file` of `dir` to a new file beside it and makes the copy durable.
fn back_up(dir: &Path, file: &str) -> Result<PathBuf, Failure> {
    back_up_with(dir, file, |src, dst| io::copy(src, dst).map(drop))
}

/// [`back_up`], copying with `copy`. The copy is written under [`partial_name`] with the
/// segment's mode (and owner, as root: [`keep_access`]), synced, and only then placed under its
/// `.broken` name ([`place_backup`]: a hard link, never replacing a file) and the directory
/// synced: a `.broken` file is always a whole copy. On any error the partial copy is removed (a kill or crash can still leave it:
/// the survey reports it as an unfinished copy, and the next repair that writes removes it).
fn back_up_with(
    dir: &Path,
    file: &str,
    copy: impl FnOnce(&mut File, &mut File) -> io::Result<()>,
) -> Result<PathBuf, Failure> {
    let fail = |what: &str, e: io::Error| Failure::new(format!("backup: cannot {what}: {e}"));
    let path = dir.join(file);
    let partial = partial_name(&path);
    remove_partial(&partial)?;
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| fail(&format!("open {}", path.display()), e))?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&partial)
        .map_err(|e| fail(&format!("create {}", partial.display()), e))?;
    let done = keep_access(&src, &dst)
        .map_err(|e| {
            fail(
                &format!("give {} the mode of {}", partial.display(), path.display()),
                e,
            )
        })
        .and_then(|()| {
            copy(&mut src, &mut dst).map_err(|e| {
                fail(
                    &format!("copy {} to {}", path.display(), partial.display()),
                    e,
                )
            })
        })
        .and_then(|()| {
            dst.sync_all()
                .map_err(|e| fail(&format!("sync {}", partial.display()), e))
        })
        .and_then(|()| place_backup(&partial, &path));
    drop(dst);
    if let Err(mut failure) = done {
        if let Err(e) = fs::remove_file(&partial) {
            let _ = write!(
                failure.message,
                " (and the unfinished copy {} could not be removed: {e}; it is not a backup)",
                partial.display()
            );
        }
        return Err(failure);
    }
    let to = done?;
    sync_dir(dir).map_err(|e| fail(&format!("sync {}", dir.display()), e))?;
    Ok(to)
}

/// Gives the copy `dst` the permission bits of `src` (a 0600 segment's backup is 0600, not
/// whatever the umask makes of a new file), and, when running as root, its owner and group
/// (a repair run as root on a service's log leaves backups the service's user owns). A
/// change of owner that is not permitted (`EPERM`: not root after all, or a file system
/// without owners) is not an error: the copy keeps its mode, and the warning of
/// [`warn_if_not_owner`] said who owns what.
fn keep_access(src: &File, dst: &File) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let m = src.metadata()?;
    // Before any byte is copied: the copy is never readable by more users than the segment.
    dst.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))?;
    if rustix::process::geteuid().is_root() {
        match std::os::unix::fs::fchown(dst, Some(m.uid()), Some(m.gid())) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            other => other?,
        }
        // A change of owner clears set-id bits: give them back.
        dst.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    Ok(())
}

/// Gives the whole copy `partial` of `path` its backup name ([`backup_name`]), never replacing
/// a file: a name taken since it was chosen (by another program, or another repair) makes it
/// try the next one.
fn place_backup(partial: &Path, path: &Path) -> Result<PathBuf, Failure> {
    for _ in 0..1000 {
        let to = backup_name(path)?;
        match rename_noreplace(partial, &to) {
            Ok(()) => return Ok(to),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Failure::new(format!(
                    "backup: cannot rename {} to {}: {e}",
                    partial.display(),
                    to.display()
                )));
            }
        }
    }
    Err(Failure::new(format!(
        "backup: every backup name of {} was taken while a copy was placed",
        path.display()
    )))
}

/// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists: a hard link, which
/// never replaces a name, then the unlink of `from` (an interruption between them leaves the
/// copy under both names, and the next repair removes the partial one). Only on a file system
/// without hard links is it a check followed by a plain rename, which a file created between
/// the two would lose to.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => return fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            return Err(e);
        }
        Err(_) => {}
    }
    match fs::symlink_metadata(to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(from, to),
        Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        Err(e) => Err(e),
    }
}

/// Every existing file of the log that the open under the inspected policy may change or
/// remove, so that repair copies each first (what recovery writes: `cut_tail` truncates,
/// `drop_from` removes, `add_segment` rewrites a header, `record_start` writes a start slot).
fn files_recovery_changes(ins: &Inspection, survey: &Survey) -> BTreeSet<SegmentId> {
    let is_slot = walden_core::raw::is_start_slot;
    let data = || survey.segments.keys().copied().filter(|id| !is_slot(*id));
    let mut ids = BTreeSet::new();
    if let Verdict::Repair { segment, .. } | Verdict::Salvage { segment, .. } = ins.verdict {
        // The repaired segment (cut, header rewritten, or dropped by salvage) and every later
        // one: a torn tail cut in a segment with early successors removes them too, salvage
        // removes them all (a torn newest segment has none after it).
        ids.extend(data().filter(|id| *id >= segment));
    }
    if let Verdict::Salvage {
        segment,
        drops_segment: true,
        ..
    } = ins.verdict
    {
        // The segment before a dropped one becomes the newest and is cut at its last record:
        // its seal (which the inspection counts in its `end`) and any bytes after it go.
        ids.extend(data().filter(|id| *id < segment).max());
    }
    if ins.missing_front.is_some() {
        // The open records where the log now starts in a start slot, rewriting an existing one
        // (which of the two depends on their generations: both are copied).
        ids.extend(survey.segments.keys().copied().filter(|id| is_slot(*id)));
    }
    ids
}

/// What `repair --salvage` would give up, for a refusal: everything the inspection under
/// `Salvage` predicts, a front recorded as missing included.
fn salvage_hint(ins: &Inspection, segs: &[SegmentReport]) -> Option<String> {
    let front = ins.missing_front.map(|m| {
        let through = render::front_lost_through(&m, segs);
        let records = format!(
            "the records of segments {}..{}, missing from the front of the log{}",
            m.expected,
            m.found,
            through.map_or_else(String::new, |l| format!(" (up to LSN {l})"))
        );
        (m, through, records)
    });
    let text = match (ins.verdict, front) {
        (Verdict::Salvage { first_lost, .. }, None) => format!(
            "keep LSNs up to {} and give up LSN {first_lost} onward",
            first_lost.0.saturating_sub(1)
        ),
        (Verdict::Salvage { first_lost, .. }, Some((m, through, records))) => {
            let kept = match through.map(Lsn::next) {
                Some(first) if first < first_lost => {
                    format!("keeping LSNs {first}..={}", first_lost.prev())
                }
                Some(_) => "keeping no record".into(),
                None => format!("keeping LSNs up to {}", first_lost.0.saturating_sub(1)),
            };
            format!(
                "give up records at both ends of the log: {records}, recording that it now \
                 starts at segment {}; and LSN {first_lost} onward, {kept}",
                m.found
            )
        }
        (Verdict::Clean, Some((m, _, records))) => format!(
            "record that the log now starts at segment {} and give up {records}",
            m.found
        ),
        (Verdict::Repair { .. }, Some((m, _, records))) => format!(
            "record that the log now starts at segment {} and give up {records}; and it {}",
            m.found,
            render::verdict_text(&ins.verdict)
        ),
        _ => return None,
    };
    Some(format!("`walden repair --salvage` would {text}"))
}

/// What salvage gave up. Recovery's `last_known` comes from segment headers and later records
/// in the damaged segment, and is a lower bound (its report says "at least up to"); inspection
/// also scanned the dropped segments, so `seen` (the highest valid LSN in them) can only make
/// the range more exact. The range is stated as definite only when `end_known`
/// ([`log_end_on_disk`]): otherwise records after the last one known may have existed (a
/// segment removed by an earlier salvage that was killed part of the way, whose predecessor's
/// seal names it), and the text says "at least", as the recovery report does.
fn lost_text(l: &SalvageLoss, seen: Option<Lsn>, end_known: bool) -> (Option<Lsn>, String) {
    let last = l.last_known.max(seen).filter(|k| *k >= l.first_lost);
    let text = match last {
        Some(k) if !end_known => format!(
            "LSN {} onward was lost (at least up to {k}; nothing left on disk tells how far the log went)",
            l.first_lost
        ),
        Some(k) if k > l.first_lost => format!("LSNs {}..={} were lost", l.first_lost, k),
        Some(_) => format!("LSN {} was lost", l.first_lost),
        None => format!(
            "LSN {} and any later records were lost (nothing left on disk tells how far the log went)",
            l.first_lost
        ),
    };
    (last, text)
}

/// Whether the log's end is on disk: its newest data segment has a valid header and no seal.
/// A sealed newest segment names a successor that is gone (removed by an earlier salvage
/// killed part of the way, or by hand), so the records known are only a lower bound.
fn log_end_on_disk(segs: &[SegmentReport]) -> bool {
    segs.iter()
        .filter(|s| !walden_core::raw::is_start_slot(s.id))
        .max_by_key(|s| s.id)
        .is_some_and(|s| s.header.is_ok() && s.seal.is_none())
}

/// The checksum algorithm of the log's newest segment with a valid header of this log: what
/// its writer configured, and what a segment that repair creates or whose header it rewrites
/// gets (not `Config::default()`'s, which would give a CRC-64 log a CRC-32C segment).
fn log_checksum(
    segs: &[SegmentReport],
    log_id: Option<u64>,
) -> Option<walden_core::ChecksumAlgorithm> {
    segs.iter()
        .filter(|s| !walden_core::raw::is_start_slot(s.id))
        .filter_map(|s| s.header.ok().map(|h| (s.id, h)))
        .filter(|(_, h)| log_id.is_none_or(|id| h.log_id == id))
        .max_by_key(|(id, _)| *id)
        .map(|(_, h)| h.checksum)
}

/// Backs up every file of `ids` with `back_up`. When one fails (a full disk, an I/O error),
/// nothing of the log has changed yet, so the backups this run already made are copies of
/// unchanged files: they are removed (and the directory synced), so that a failed repair
/// leaves no space taken behind; the failure says so, and names any it could not remove.
fn back_up_all(
    dir: &Path,
    ids: &BTreeSet<SegmentId>,
    mut back_up: impl FnMut(&Path, &str) -> Result<PathBuf, Failure>,
) -> Result<Vec<(PathBuf, PathBuf)>, Failure> {
    let mut backups = Vec::new();
    for id in ids {
        let file = name(*id);
        match back_up(dir, &file) {
            Ok(to) => backups.push((dir.join(file), to)),
            Err(mut failure) => {
                if backups.is_empty() {
                    return Err(failure);
                }
                let mut kept = Vec::new();
                for (_, b) in &backups {
                    if let Err(e) = fs::remove_file(b) {
                        kept.push(format!("{} ({e})", b.display()));
                    }
                }
                let _ = sync_dir(dir);
                let _ = write!(
                    failure.message,
                    "; nothing of the log was changed, and the {} backup(s) this run made were removed",
                    backups.len() - kept.len()
                );
                if !kept.is_empty() {
                    let _ = write!(
                        failure.message,
                        "; these copies of unchanged files could not be removed (delete them): {}",
                        kept.join(", ")
                    );
                }
                return Err(failure);
            }
        }
    }
    Ok(backups)
}

/// Warns (on stderr, before anything changes) when `repair` runs as another user than the one
/// who owns the log directory: the files the open creates (`walden.lock` when there is none,
/// a new segment) belong to the user running it, and a service running as the owner may then
/// fail to open its own log. Not refused: running as root is often the only way to reach a
/// service's log, and the backups keep their segments' owner. The warning names the `chown`
/// that gives everything back.
fn warn_if_not_owner(dir: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(m) = fs::metadata(dir) else {
        return;
    };
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != me {
        note!(
            "walden: warning: repairing as user {me}, but {} belongs to user {}: files the repair              creates (walden.lock if missing, a new segment) will belong to user {me}, and a              service running as user {} may then fail to open the log; give them back with              `chown -R {}:{} {}` (or run repair as that user)",
            dir.display(),
            m.uid(),
            m.uid(),
            m.uid(),
            m.gid(),
            dir.display()
        );
    }
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
    match ins.verdict {
        // Segments removed since the survey found some.
        Verdict::Empty => return Err(no_log(&common.dir)),
        // Under `Salvage` only (any other policy refuses it): the front recorded as missing,
        // which the open below records in a start slot.
        Verdict::Clean if ins.missing_front.is_some() => {}
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
            .and_then(|(i, s)| salvage_hint(&i, &s));
            if let Some(hint) = hint {
                message.push_str("; ");
                message.push_str(&hint);
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
        Verdict::Repair { .. } | Verdict::Salvage { .. } => {}
    }

    warn_if_not_owner(&common.dir);
    // Now exclusively: re-check under the writer's lock, back up, then let recovery repair.
    let storage = FileStorage::open(&common.dir, false)?;
    let (again, _) = run_inspection(&storage, &config, None)?;
    if again.verdict != ins.verdict || again.missing_front != ins.missing_front {
        return Err(Failure::new(
            "the log changed while being inspected; run repair again".into(),
        ));
    }
    // What is there now, under the lock, is what recovery will change.
    let now = survey::survey(&common.dir)?;
    let to_change = files_recovery_changes(&again, &now);
    // Unfinished copies of a repair that stopped part of the way are not backups: gone before
    // anything is copied (each copy made below replaces its own anyway).
    for partial in &now.partial_backups {
        if let Err(e) = fs::remove_file(partial) {
            note!(
                "walden: cannot remove {}, an unfinished copy of an interrupted repair (not a backup): {e}",
                partial.display()
            );
        }
    }
    let backups = back_up_all(&common.dir, &to_change, back_up)?;
    let mut scratch = vec![0u8; 1 << 20];
    let (wal, report) = CoreWal::open(
        storage,
        config
            .with_checksum(log_checksum(&segs, ins.log_id).unwrap_or(config.checksum))
            .with_salt_seed(walden_std::random_seed()),
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
    let end_known = log_end_on_disk(&segs);
    let lost = report
        .salvage
        .as_ref()
        .map(|l| lost_text(l, seen, end_known));
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

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A copy that fails part of the way (here: no space left after half the file) leaves no
    /// file behind, neither under the backup's name nor under the partial one; a leftover
    /// partial copy of an earlier run is replaced, and a whole copy lands as `<name>.broken`.
    #[test]
    fn a_copy_that_fails_leaves_neither_a_backup_nor_a_partial_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let file = "00000000000000000000.wal";
        let bytes: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        fs::write(dir.join(file), &bytes).unwrap();
        let failure = back_up_with(dir, file, |src, dst| {
            let mut half = vec![0u8; bytes.len() / 2];
            src.read_exact(&mut half)?;
            dst.write_all(&half)?;
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        })
        .unwrap_err();
        assert!(
            failure.message.contains("backup: cannot copy"),
            "{}",
            failure.message
        );
        assert_eq!(names(dir), [file]);

        let partial = format!("{file}{PARTIAL_SUFFIX}");
        fs::write(dir.join(&partial), b"left by a killed repair").unwrap();
        let to = back_up(dir, file).unwrap();
        assert_eq!(to, dir.join(format!("{file}.broken")));
        assert_eq!(fs::read(&to).unwrap(), bytes);
        assert_eq!(names(dir), [file.to_owned(), format!("{file}.broken")]);

        // A second backup of the same file gets the next name, whole.
        let to = back_up(dir, file).unwrap();
        assert_eq!(to, dir.join(format!("{file}.broken.1")));
        assert_eq!(fs::read(&to).unwrap(), bytes);
    }

    /// A file created under the backup's name while the copy is written is not replaced: the
    /// copy takes the next free name.
    #[test]
    fn a_backup_name_taken_during_the_copy_is_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let file = "00000000000000000000.wal";
        fs::write(dir.join(file), b"segment").unwrap();
        let theirs = dir.join(format!("{file}.broken"));
        let to = back_up_with(dir, file, |src, dst| {
            fs::write(&theirs, b"someone else's").unwrap();
            io::copy(src, dst).map(drop)
        })
        .unwrap();
        assert_eq!(to, dir.join(format!("{file}.broken.1")));
        assert_eq!(fs::read(&to).unwrap(), b"segment");
        assert_eq!(fs::read(&theirs).unwrap(), b"someone else's");
    }

    /// A backup has its segment's permission bits (a 0600 segment's copy was 0644 by the
    /// umask) and, when repair runs as root, its owner and group.
    #[test]
    fn a_backup_keeps_the_mode_and_owner_of_its_segment() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let file = "00000000000000000000.wal";
        let path = dir.join(file);
        fs::write(&path, b"segment").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let root = rustix::process::geteuid().is_root();
        if root {
            // nobody:nogroup, as a service's user would own its log.
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        } else {
            eprintln!("not root: the owner of a backup is not checked");
        }
        let to = back_up(dir, file).unwrap();
        let m = fs::metadata(&to).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
        if root {
            assert_eq!((m.uid(), m.gid()), (65534, 65534));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let to = back_up(dir, file).unwrap();
        assert_eq!(fs::metadata(&to).unwrap().mode() & 0o7777, 0o640);
    }

    /// A backup that fails after others were made (a full disk on the second file) leaves
    /// none behind: nothing of the log changed, so they were copies of unchanged files
    /// taking space. The failure says they were removed.
    #[test]
    fn a_failed_backup_removes_the_backups_this_run_made() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let ids: BTreeSet<SegmentId> = [1, 2, 3].into_iter().collect();
        for id in &ids {
            fs::write(dir.join(name(*id)), b"segment").unwrap();
        }
        let before = names(dir);
        let mut n = 0;
        let failure = back_up_all(dir, &ids, |dir, file| {
            n += 1;
            if n == 3 {
                return back_up_with(dir, file, |_, _| {
                    Err(io::Error::from_raw_os_error(libc::ENOSPC))
                });
            }
            back_up(dir, file)
        })
        .unwrap_err();
        assert_eq!(n, 3);
        assert_eq!(names(dir), before, "no backup left behind");
        assert!(
            failure
                .message
                .contains("the 2 backup(s) this run made were removed"),
            "{}",
            failure.message
        );
        // All made: all kept.
        let backups = back_up_all(dir, &ids, back_up).unwrap();
        assert_eq!(backups.len(), 3);
        assert!(backups.iter().all(|(_, b)| b.exists()));
    }

    /// The range of a salvage's loss is definite only when the log's end is on disk; after
    /// a salvage killed part of the way (a removed segment that the seal before it names),
    /// it is "at least", as the recovery report says.
    #[test]
    fn a_loss_whose_end_is_not_known_says_at_least() {
        let loss = SalvageLoss {
            case: walden_core::Case::SealedSegmentDamaged,
            segment: 0,
            offset: 106,
            first_lost: Lsn(5),
            last_known: Some(Lsn(20)),
            segments_dropped: 2,
            detail: "",
        };
        let (last, text) = lost_text(&loss, Some(Lsn(36)), false);
        assert_eq!(last, Some(Lsn(36)));
        assert_eq!(
            text,
            "LSN 5 onward was lost (at least up to 36; nothing left on disk tells how far the log went)"
        );
        let (_, text) = lost_text(&loss, Some(Lsn(36)), true);
        assert_eq!(text, "LSNs 5..=36 were lost");
    }

    #[test]
    fn rename_noreplace_refuses_an_existing_name() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"b");
        fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"a");
        assert!(!a.exists());
    }
}
