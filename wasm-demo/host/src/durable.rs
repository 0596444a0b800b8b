//! What a simulated power loss must preserve.
//!
//! A trap kills the guest, not the machine: everything it handed to the host is still in the
//! host's page cache. To make a crash a power loss, the host watches every call that decides
//! durability (`hooks.rs`) and keeps a [`DurableImage`] of the preopened directory and the
//! directories below it: per file, the *contents* made durable by its last sync, and per
//! directory the entries (files and subdirectories) made durable by its last sync. An entry is
//! durable only in the directory that holds it: syncing the log directory makes its segments'
//! names durable, not the log directory's own name in the preopen. Contents, not lengths:
//! `walden-wasi` zero-fills a segment ahead of the writer and syncs the zeros, so appends
//! overwrite bytes inside an already durable length.
//! It also remembers, per file, the shortest length a `set-size` gave it since its last sync,
//! so that a crash can undo a truncate (`power_loss.rs` turns the image into one legal
//! post-crash directory).
//!
//! Each file sync reads the synced file back, so keep segments small (the crash loop uses
//! 4 KiB).
//!
//! Entries are named by their path below the preopen: `wal/00000000000000000001.wal` for a
//! file, `wal/` (with the slash) for a directory; the preopen itself is `""`.
//!
//! A name removed and created again between two directory syncs is treated as the new file
//! only (core always syncs the directory between the two). Removing a directory is not
//! modelled: the guest never removes one (and `remove-directory-at` is not shadowed).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Durable contents of the files and durable entries of the directories below one directory.
#[derive(Debug, Default)]
pub(crate) struct DurableImage {
    pub(crate) dir: PathBuf,
    /// Per file path: what the file that path refers to now holds durably.
    contents: HashMap<String, Vec<u8>>,
    /// Entries (file paths, and directory paths ending in `/`) made durable by the last sync
    /// of the directory that holds them.
    names: HashSet<String>,
    /// Per name: the shortest length `set-size` gave the file since its last sync.
    shortest: HashMap<String, u64>,
    /// File syncs seen (to prove the hooks are live).
    pub(crate) file_syncs: u64,
    /// Directory syncs seen.
    pub(crate) dir_syncs: u64,
}

impl DurableImage {
    /// An image of `dir` in which everything now on disk is durable.
    pub(crate) fn of(dir: &Path) -> Result<Self> {
        let mut image = Self {
            dir: dir.to_path_buf(),
            ..Self::default()
        };
        image.settle()?;
        Ok(image)
    }

    /// Declares everything now on disk durable (the state right after a crash, or at start).
    pub(crate) fn settle(&mut self) -> Result<()> {
        self.contents.clear();
        self.names.clear();
        self.shortest.clear();
        for entry in entries(&self.dir, "")? {
            if !entry.ends_with('/') {
                let bytes = self.read(&entry)?;
                self.contents.insert(entry.clone(), bytes);
            }
            self.names.insert(entry);
        }
        Ok(())
    }

    /// The path of `file` (a file or a directory) below the preopen, found by inode: `""` for
    /// the preopen itself, `None` if it is not in the tree.
    pub(crate) fn path_of(&self, file: &File) -> Option<String> {
        let meta = file.metadata().ok()?;
        let same = |m: &fs::Metadata| m.ino() == meta.ino() && m.dev() == meta.dev();
        if fs::metadata(&self.dir).is_ok_and(|m| same(&m)) {
            return Some(String::new());
        }
        entries(&self.dir, "")
            .ok()?
            .into_iter()
            .find(|entry| fs::symlink_metadata(self.dir.join(entry)).is_ok_and(|m| same(&m)))
    }

    /// The name of `file` below the preopen, found by inode ("" if it has none).
    pub(crate) fn name_of(&self, file: &File) -> String {
        self.path_of(file).unwrap_or_default()
    }

    /// `name` was synced: what it holds now is durable.
    pub(crate) fn file_synced(&mut self, name: &str) {
        self.file_syncs += 1;
        if let Ok(bytes) = self.read(name) {
            self.contents.insert(name.to_owned(), bytes);
            self.shortest.remove(name);
        }
    }

    /// `name` was just created: the new file holds nothing durably (its name is not durable
    /// either until the next directory sync).
    pub(crate) fn created(&mut self, name: &str) {
        self.contents.insert(name.to_owned(), Vec::new());
        self.shortest.remove(name);
    }

    /// `name` was set to `len` bytes.
    pub(crate) fn resized(&mut self, name: &str, len: u64) {
        let shortest = self.shortest.entry(name.to_owned()).or_insert(len);
        *shortest = (*shortest).min(len);
    }

    /// The directory `dir` (a path ending in `/`, or `""` for the preopen) was synced: the
    /// entries in it now are its durable ones.
    pub(crate) fn dir_synced(&mut self, dir: &str) {
        self.dir_syncs += 1;
        let Ok(now) = fs::read_dir(self.dir.join(dir)) else {
            return;
        };
        let now: HashSet<String> = now
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let kind = entry.file_type().ok()?;
                (kind.is_file() || kind.is_dir())
                    .then(|| format!("{dir}{name}{}", if kind.is_dir() { "/" } else { "" }))
            })
            .collect();
        self.names.retain(|name| parent(name) != dir);
        self.names.extend(now);
        let names = &self.names;
        self.contents
            .retain(|name, _| parent(name) != dir || names.contains(name));
    }

    /// Whether `name` is durably in the directory.
    pub(crate) fn is_durable_name(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The durable entries, sorted (directories end in `/`).
    pub(crate) fn durable_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.iter().cloned().collect();
        names.sort();
        names
    }

    /// What `name` holds durably (nothing if it was never synced).
    pub(crate) fn durable_contents(&self, name: &str) -> &[u8] {
        self.contents.get(name).map_or(&[][..], Vec::as_slice)
    }

    /// The shortest length a `set-size` gave `name` since its last sync, if any did.
    pub(crate) fn shortest_since_sync(&self, name: &str) -> Option<u64> {
        self.shortest.get(name).copied()
    }

    /// The files now in the tree, sorted.
    pub(crate) fn files_now(&self) -> Result<Vec<String>> {
        let mut all = entries(&self.dir, "")?;
        all.retain(|entry| !entry.ends_with('/'));
        Ok(all)
    }

    /// The directories now in the tree (each ending in `/`), sorted, parents first.
    pub(crate) fn dirs_now(&self) -> Result<Vec<String>> {
        let mut all = entries(&self.dir, "")?;
        all.retain(|entry| entry.ends_with('/'));
        Ok(all)
    }

    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(name);
        fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The directory holding the entry `path` (`"wal/"` for `"wal/x"`, `""` for `"wal/"`).
pub(crate) fn parent(path: &str) -> &str {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    trimmed.rfind('/').map_or("", |i| &path[..=i])
}

/// The regular files and directories below `root/prefix`, as paths below `root` (directories
/// ending in `/`, each followed by what it holds), sorted.
fn entries(root: &Path, prefix: &str) -> Result<Vec<String>> {
    let dir = root.join(prefix);
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if kind.is_file() {
            out.push(format!("{prefix}{name}"));
        } else if kind.is_dir() {
            let sub = format!("{prefix}{name}/");
            let below = entries(root, &sub)?;
            out.push(sub);
            out.extend(below);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_belongs_to_the_directory_that_holds_it() {
        assert_eq!(parent("a"), "");
        assert_eq!(parent("wal/"), "");
        assert_eq!(parent("wal/x.wal"), "wal/");
        assert_eq!(parent("a/b/"), "a/");
    }

    /// Syncing the log directory makes its files' names durable, not its own name in the
    /// preopen; syncing the preopen does that.
    #[test]
    fn a_directory_name_is_durable_only_after_its_parent_is_synced() {
        let tmp = tempfile::tempdir().unwrap();
        let mut image = DurableImage::of(tmp.path()).unwrap();
        fs::create_dir(tmp.path().join("wal")).unwrap();
        fs::write(tmp.path().join("wal/a"), b"x").unwrap();
        image.created("wal/a");
        image.dir_synced("wal/");
        assert!(image.is_durable_name("wal/a"));
        assert!(!image.is_durable_name("wal/"));
        image.dir_synced("");
        assert!(image.is_durable_name("wal/"));
        assert_eq!(image.dirs_now().unwrap(), ["wal/"]);
        assert_eq!(image.files_now().unwrap(), ["wal/a"]);
        let file = File::open(tmp.path().join("wal/a")).unwrap();
        assert_eq!(image.name_of(&file), "wal/a");
        let dir = File::open(tmp.path().join("wal")).unwrap();
        assert_eq!(image.path_of(&dir).as_deref(), Some("wal/"));
        let root = File::open(tmp.path()).unwrap();
        assert_eq!(image.path_of(&root).as_deref(), Some(""));
    }
}
