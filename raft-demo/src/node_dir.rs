//! A node's directory: created durably, claimed for one node id, and checked for a raft log
//! that was created once and is now missing (see "A node's directory" in `raft-demo/README.md`).

use std::io::{self, Write};
use std::path::Path;

use walden_openraft::kv::{NodeId, TypeConfig};
use walden_openraft::{LogStore, OpenError};

/// The file in a node's directory that names the node its log belongs to.
pub const NODE_ID_FILE: &str = "node-id";

/// The file in a node's directory that records that its raft log was created (durably): from
/// then on a missing raft log is lost, not new, and the node refuses to start without it.
pub const LOG_CREATED_FILE: &str = "raft-created";

/// The raft log's directory inside a node's directory.
pub(crate) const RAFT_DIR: &str = "raft";

/// The two Walden logs of a `walden-openraft` store.
const LOGS: [&str; 2] = ["meta", "entries"];

/// The directory operations creating a node's directory takes, so that a test can record
/// which directories are created and synced, and in which order.
pub(crate) trait Dirs {
    /// Whether `path` is a directory: `None` when nothing is there.
    fn is_dir(&self, path: &Path) -> io::Result<Option<bool>>;
    /// Creates the directory `path` (its parent exists).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Opens the directory `path` and syncs it, making the entries created in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
pub(crate) struct OsDirs;

impl Dirs for OsDirs {
    fn is_dir(&self, path: &Path) -> io::Result<Option<bool>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(m.is_dir())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
}

/// The directory holding `path`'s entry (`.` for a relative path of one component).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` and each missing ancestor, top down, syncing the parent of each right after
/// creating it: a directory's entry is durable only once its parent is synced, and a node's
/// acknowledged entries and votes live in it (`create_dir_all` synced nothing: a power cut
/// could drop the whole node directory). As `walden-std` does for a log's directory, the
/// parent of `dir` is synced even when `dir` exists already (an earlier start may have died
/// before it synced it).
///
/// A parent this process may not open (no read permission, so it cannot be synced) is
/// tolerated only when `dir` existed before this call: it was made by an earlier start, which
/// synced it, or by hand. A directory this call created in such a parent would not be
/// durable: that is an error, and the directories this call created are removed again, so that
/// the next start does not find them and take them for durable ones.
pub(crate) fn create_dir_durably(fs: &impl Dirs, dir: &Path) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        match fs.is_dir(path) {
            Ok(Some(true)) => break,
            Ok(Some(false)) => return Err(format!("{} is not a directory", path.display())),
            Ok(None) => {}
            // A component further up is a file: the walk reaches it and says so.
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {}
            Err(e) => return Err(format!("cannot examine {}: {e}", path.display())),
        }
        missing.push(path);
        at = path.parent();
    }
    if missing.is_empty() {
        let parent = parent_of(dir);
        return match fs.sync_dir(parent) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
            Err(e) => Err(format!("cannot sync {}: {e}", parent.display())),
        };
    }
    let mut created = Vec::new();
    let mut make = || -> Result<(), String> {
        for &path in missing.iter().rev() {
            match fs.create_dir(path) {
                Ok(()) => created.push(path),
                // Another start creating it at the same moment: synced all the same.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if fs.is_dir(path).ok().flatten() != Some(true) {
                        return Err(format!("{} is not a directory", path.display()));
                    }
                }
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
            let parent = parent_of(path);
            fs.sync_dir(parent).map_err(|e| {
                let why = if e.kind() == io::ErrorKind::PermissionDenied {
                    " (a directory that cannot be read cannot be synced: create the node's \
                     directory there yourself, or make it readable)"
                } else {
                    ""
                };
                format!(
                    "cannot sync {} after creating {} in it, so {} would not survive a power \
                     loss: {e}{why}",
                    parent.display(),
                    path.display(),
                    path.display()
                )
            })?;
        }
        Ok(())
    };
    let made = make();
    if made.is_err() {
        for path in created.iter().rev() {
            let _ = fs.remove_dir(path);
        }
    }
    made
}

/// Whether `name` is a temporary file [`claim_dir`] writes `node-id` through (a start that
/// died between creating and removing it leaves it behind).
fn is_node_id_tmp(name: &str) -> bool {
    name.strip_prefix(NODE_ID_FILE)
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(".tmp"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Creates `dir` durably and makes sure the log in it belongs to node `id`: a raft log started
/// under another id would vote and lead as that node (two nodes with one id break raft's
/// safety). The first start writes `<dir>/node-id` (durably, before the log exists, and only if
/// absent: a hard link of a complete temporary file, so two starts racing cannot both win);
/// later starts compare. A directory holding a log but no `node-id` is refused, and so is a
/// directory that is neither empty nor a node's (no `node-id`, other files in it).
pub(crate) fn claim_dir(dir: &Path, id: NodeId) -> Result<(), String> {
    create_dir_durably(&OsDirs, dir)?;
    let fail = |what: &str, e: io::Error| format!("{what} {}: {e}", dir.display());
    let path = dir.join(NODE_ID_FILE);
    let tmp = dir.join(format!("{NODE_ID_FILE}.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        // Never through a symlink or into an existing file (`create_new` follows neither): a
        // name a start cut short left behind is unlinked first (a symlink's target untouched).
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, &path)
    };
    if !path.exists() {
        // A log without the file (its `node-id` deleted, or a directory from before the file
        // existed) cannot say whose it is: claimed by whichever id came next, it could vote as
        // two nodes. The file is always made durable before the log, so no crash leaves this
        // state.
        if dir.join(RAFT_DIR).exists() {
            return Err(format!(
                "{} holds a raft log but no {NODE_ID_FILE} file, so which node it belongs to is \
                 unknown: if it is node N's, write N into {}",
                dir.display(),
                path.display()
            ));
        }
        // Any other directory is claimed only when empty (but for what a first start cut
        // short leaves): a node writes its log among files it knows nothing of, and a typo
        // in --dir would take someone's directory for a node's.
        let mut foreign = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| fail("cannot list", e))? {
            let name = entry.map_err(|e| fail("cannot list", e))?.file_name();
            let name = name.to_string_lossy();
            // `node-id` itself: another start claiming the directory at this moment.
            if name != NODE_ID_FILE && !is_node_id_tmp(&name) {
                foreign.push(name.into_owned());
            }
        }
        if !foreign.is_empty() {
            foreign.sort();
            let more = foreign.len().saturating_sub(3);
            foreign.truncate(3);
            let mut held = foreign.join(", ");
            if more > 0 {
                held.push_str(&format!(" and {more} more"));
            }
            return Err(format!(
                "{} is not empty ({held}) and has no {NODE_ID_FILE} file, so it is not a \
                 raft-demo node directory: a node takes only an empty or new directory, so as \
                 not to write its log among other files; give node {id} another --dir",
                dir.display()
            ));
        }
    }
    // Written only by the first start: later ones compare (below) and touch no file.
    let written = if path.exists() {
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    } else {
        let w = write();
        let _ = std::fs::remove_file(&tmp);
        w
    };
    match written {
        Ok(()) => {
            return OsDirs.sync_dir(dir).map_err(|e| fail("cannot sync", e));
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail("cannot write the node id into", e)),
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match text.trim().parse::<NodeId>() {
        Ok(owner) if owner == id => Ok(()),
        Ok(owner) => Err(format!(
            "{} holds the raft log of node {owner}, not node {id}: start node {owner} on it, \
             or give node {id} its own directory",
            dir.display()
        )),
        Err(_) => Err(format!(
            "{} does not name a node id ({text:?}): it is not a raft-demo node directory",
            path.display()
        )),
    }
}

/// Whether `dir` holds a Walden log: a segment file, named as docs/FORMAT.md ("Layout of a
/// log") says, 20 decimal digits and `.wal` (what `walden-openraft` looks for too). Something
/// there that is not a directory counts: opening the store says what is wrong with it.
fn holds_log(dir: &Path) -> Result<bool, String> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot examine {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => return Ok(true),
        Ok(_) => {}
    }
    let is_segment = |name: &str| {
        name.strip_suffix(".wal")
            .is_some_and(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
    };
    for entry in
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?
    {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        if entry.file_name().to_str().is_some_and(is_segment) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Why a node whose raft log is lost must not start: `what` is missing, `proof` says why it
/// existed.
fn lost(id: NodeId, what: &str, proof: &str) -> String {
    format!(
        "{what} is missing, but {proof}: this node's raft log is lost, not new. Started on an \
         empty log, node {id} would forget its vote and the entries it acknowledged, and could \
         vote twice in one term (two leaders) or lose committed writes, which breaks raft's \
         safety. Restore the raft log from a backup; without one, this node cannot rejoin its \
         cluster under id {id} (the demo cannot add a node as a new member)"
    )
}

/// Opens (or creates) the raft log in `<dir>/raft` for node `id`, whose [`claim_dir`] has
/// succeeded, and records its creation in `<dir>/raft-created` before the node serves
/// anything.
///
/// With `raft-created` there, a raft log missing in whole or in part (`raft/`, `raft/meta`,
/// `raft/entries`, or no segment file in one of them) is refused: the store would be created
/// again, empty. Without it, the log may be missing or partly created (a first start cut short
/// after writing `node-id`): it is opened or created, and `raft-created` written.
pub(crate) fn open_log(dir: &Path, id: NodeId) -> Result<LogStore<TypeConfig>, String> {
    let raft = dir.join(RAFT_DIR);
    let marker = dir.join(LOG_CREATED_FILE);
    let created = match std::fs::symlink_metadata(&marker) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("cannot examine {}: {e}", marker.display())),
    };
    if created {
        let mut missing = Vec::new();
        for log in LOGS {
            if !holds_log(&raft.join(log))? {
                missing.push(raft.join(log).display().to_string());
            }
        }
        if !missing.is_empty() {
            let what = if !raft.exists() {
                format!("the raft log {}", raft.display())
            } else {
                format!("the raft log's {}", missing.join(" and "))
            };
            return Err(lost(
                id,
                &what,
                &format!(
                    "{} records that it was created (written once the log was durable)",
                    marker.display()
                ),
            ));
        }
    }
    let store = LogStore::<TypeConfig>::open(&raft).map_err(|e| match e {
        OpenError::Missing { log, dir, evidence } => lost(
            id,
            &format!("the raft log's {log} log ({})", dir.display()),
            &evidence,
        ),
        e => format!("cannot open the raft log in {}: {e}", raft.display()),
    })?;
    if !created {
        // `open` has made the store durable (each log, its directory and `raft/` itself).
        let write = || -> io::Result<()> {
            let mut f = std::fs::File::create(&marker)?;
            f.write_all(
                b"The raft log in raft/ was created. If it goes missing, this node refuses to \
                  start: on an empty log it could vote twice in one term.\n",
            )?;
            f.sync_all()?;
            OsDirs.sync_dir(dir)
        };
        write().map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// A file system of directories that records each creation, removal and sync.
    #[derive(Default)]
    struct Recorder {
        /// Each directory, and whether it may be opened (read) to sync it.
        dirs: RefCell<BTreeMap<PathBuf, bool>>,
        /// Regular files.
        files: Vec<PathBuf>,
        ops: RefCell<Vec<String>>,
    }

    impl Recorder {
        fn with(dirs: &[(&str, bool)]) -> Self {
            let r = Self::default();
            for (d, readable) in dirs {
                r.dirs.borrow_mut().insert(PathBuf::from(d), *readable);
            }
            r
        }

        fn ops(&self) -> Vec<String> {
            self.ops.borrow().clone()
        }
    }

    impl Dirs for Recorder {
        fn is_dir(&self, path: &Path) -> io::Result<Option<bool>> {
            if self.dirs.borrow().contains_key(path) {
                Ok(Some(true))
            } else if self.files.iter().any(|f| f == path) {
                Ok(Some(false))
            } else if path
                .ancestors()
                .skip(1)
                .any(|a| self.files.iter().any(|f| f == a))
            {
                Err(io::ErrorKind::NotADirectory.into())
            } else {
                Ok(None)
            }
        }

        fn create_dir(&self, path: &Path) -> io::Result<()> {
            assert!(
                self.dirs.borrow().contains_key(parent_of(path)),
                "{path:?} created before its parent"
            );
            self.ops
                .borrow_mut()
                .push(format!("mkdir {}", path.display()));
            self.dirs.borrow_mut().insert(path.to_path_buf(), true);
            Ok(())
        }

        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            self.ops
                .borrow_mut()
                .push(format!("rmdir {}", path.display()));
            self.dirs.borrow_mut().remove(path);
            Ok(())
        }

        fn sync_dir(&self, path: &Path) -> io::Result<()> {
            match self.dirs.borrow().get(path) {
                Some(true) => {}
                Some(false) => return Err(io::ErrorKind::PermissionDenied.into()),
                None => return Err(io::ErrorKind::NotFound.into()),
            }
            self.ops
                .borrow_mut()
                .push(format!("sync {}", path.display()));
            Ok(())
        }
    }

    /// `create_dir_all("rd/a/n1")` made three directories and synced none of their parents
    /// (only `rd/a/n1` itself, later): a power cut could drop the node's directory with its
    /// log. Each directory created must be followed by a sync of its parent, top down.
    #[test]
    fn each_directory_created_is_followed_by_a_sync_of_its_parent() {
        let fs = Recorder::with(&[(".", true)]);
        create_dir_durably(&fs, Path::new("rd/a/n1")).unwrap();
        assert_eq!(
            fs.ops(),
            [
                "mkdir rd",
                "sync .",
                "mkdir rd/a",
                "sync rd",
                "mkdir rd/a/n1",
                "sync rd/a"
            ]
        );
        // Under an existing directory, absolute: only what is missing is created.
        let fs = Recorder::with(&[("/", true), ("/srv", true)]);
        create_dir_durably(&fs, Path::new("/srv/nodes/n1")).unwrap();
        assert_eq!(
            fs.ops(),
            [
                "mkdir /srv/nodes",
                "sync /srv",
                "mkdir /srv/nodes/n1",
                "sync /srv/nodes"
            ]
        );
    }

    /// A directory that exists already has its parent synced all the same (an earlier start
    /// may have died before it did); a parent that cannot be read is tolerated then.
    #[test]
    fn an_existing_directory_has_its_parent_synced() {
        let fs = Recorder::with(&[(".", true), ("rd", true), ("rd/n1", true)]);
        create_dir_durably(&fs, Path::new("rd/n1")).unwrap();
        assert_eq!(fs.ops(), ["sync rd"]);
        let fs = Recorder::with(&[(".", true), ("rd", false), ("rd/n1", true)]);
        create_dir_durably(&fs, Path::new("rd/n1")).unwrap();
        assert_eq!(fs.ops(), Vec::<String>::new());
    }

    /// A directory created in a parent that cannot be read (so not synced) is not durable: an
    /// error, and what was created is removed, so that the next start does not take it for a
    /// durable directory.
    #[test]
    fn a_directory_created_in_a_parent_that_cannot_be_synced_is_refused_and_removed() {
        let fs = Recorder::with(&[(".", true), ("rd", true), ("rd/locked", false)]);
        let err = create_dir_durably(&fs, Path::new("rd/locked/a/n1")).unwrap_err();
        assert!(err.contains("cannot sync rd/locked"), "{err}");
        assert!(err.contains("would not survive a power loss"), "{err}");
        assert_eq!(fs.ops(), ["mkdir rd/locked/a", "rmdir rd/locked/a"]);
        assert!(!fs.dirs.borrow().contains_key(Path::new("rd/locked/a")));
    }

    /// `--dir` at a regular file, or under one, says which path is not a directory.
    #[test]
    fn a_file_in_the_way_is_not_a_directory() {
        let mut fs = Recorder::with(&[(".", true)]);
        fs.files.push(PathBuf::from("f"));
        let err = create_dir_durably(&fs, Path::new("f")).unwrap_err();
        assert_eq!(err, "f is not a directory");
        let err = create_dir_durably(&fs, Path::new("f/n1")).unwrap_err();
        assert_eq!(err, "f is not a directory");
        assert_eq!(fs.ops(), Vec::<String>::new());
    }

    /// A symlink under this process's temporary name never has its target written: not by a
    /// first start, and a later start writes no file at all.
    #[cfg(unix)]
    #[test]
    fn a_symlink_under_the_temporary_name_is_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let victim = base.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let dir = base.path().join("n1");
        std::fs::create_dir(&dir).unwrap();
        let tmp = dir.join(format!("{NODE_ID_FILE}.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        claim_dir(&dir, 1).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(
            std::fs::read_to_string(dir.join(NODE_ID_FILE)).unwrap(),
            "1\n"
        );
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        claim_dir(&dir, 1).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            std::fs::symlink_metadata(&tmp).is_ok(),
            "a later start touches no file"
        );
    }

    #[test]
    fn only_node_id_temporary_files_are_taken_for_a_cut_short_claim() {
        assert!(is_node_id_tmp("node-id.1234.tmp"));
        for name in [
            "node-id",
            "node-id..tmp",
            "node-id.x.tmp",
            "node-id.1.tm",
            "a.1.tmp",
        ] {
            assert!(!is_node_id_tmp(name), "{name}");
        }
    }
}
