//! What a simulated power loss must preserve.
//!
//! A trap kills the guest, not the machine: everything it handed to the host is still in the
//! host's page cache. To make a crash a power loss, the host watches every call that decides
//! durability (`hooks.rs`) and keeps a [`DurableImage`] of one directory: per file, the
//! *contents* made durable by its last sync, and the set of names made durable by the last
//! directory sync. Contents, not lengths: `walden-wasi` zero-fills a segment ahead of the
//! writer and syncs the zeros, so appends overwrite bytes inside an already durable length.
//! It also remembers, per file, the shortest length a `set-size` gave it since its last sync,
//! so that a crash can undo a truncate (`power_loss.rs` turns the image into one legal
//! post-crash directory).
//!
//! Each file sync reads the synced file back, so keep segments small (the crash loop uses
//! 4 KiB).
//!
//! A name removed and created again between two directory syncs is treated as the new file
//! only (core always syncs the directory between the two).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Durable contents and names of the files in one directory.
#[derive(Debug, Default)]
pub(crate) struct DurableImage {
    pub(crate) dir: PathBuf,
    /// Per name: what the file that name refers to now holds durably.
    contents: HashMap<String, Vec<u8>>,
    /// Names made durable by the last directory sync.
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
        for name in files(&self.dir)? {
            let bytes = self.read(&name)?;
            self.contents.insert(name.clone(), bytes);
            self.names.insert(name);
        }
        Ok(())
    }

    /// The name of `file` in the directory, found by inode ("" if it has none).
    pub(crate) fn name_of(&self, file: &File) -> String {
        let Ok(meta) = file.metadata() else {
            return String::new();
        };
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return String::new();
        };
        entries
            .flatten()
            .find(|entry| {
                entry
                    .metadata()
                    .is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
            })
            .and_then(|entry| entry.file_name().into_string().ok())
            .unwrap_or_default()
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

    /// The directory was synced: the names on disk now are the durable ones.
    pub(crate) fn dir_synced(&mut self) {
        self.dir_syncs += 1;
        if let Ok(now) = files(&self.dir) {
            self.names = now.into_iter().collect();
            let names = &self.names;
            self.contents.retain(|name, _| names.contains(name));
        }
    }

    /// Whether `name` is durably in the directory.
    pub(crate) fn is_durable_name(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The durable names, sorted.
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

    /// The files now in the directory, sorted.
    pub(crate) fn files_now(&self) -> Result<Vec<String>> {
        files(&self.dir)
    }

    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(name);
        fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Regular files in `dir`, sorted by name.
fn files(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.metadata()?.is_file()
            && let Ok(name) = entry.file_name().into_string()
        {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}
