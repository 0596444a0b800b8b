//! What survives a simulated power loss.
//!
//! A fuel trap kills the guest, not the machine: everything it wrote is still in the host's page
//! cache. To make the crash a power loss, the host shadows the guest's `sync-data` and `sync`
//! imports and keeps a [`DurableImage`]: per file, the length made durable by the last sync of
//! that file, and the set of names made durable by the last directory sync. After a trap,
//! [`DurableImage::crash`] rewrites the directory into one legal post-crash state of the
//! Storage contract (`walden_core::storage`): unsynced appended bytes are kept, dropped, cut at
//! an arbitrary byte, or left as zeros under the file's length; files created since the last
//! directory sync may vanish. Reordering of writes *inside* the unsynced tail is not modelled;
//! the sim adapter explores that exhaustively.
//!
//! Only append-shaped effects are modelled (core writes at or past the durable end and only
//! truncates its own tail), and a truncate is treated as having happened; both are legal outcomes.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;

use crate::rng::SplitMix64;
use crate::runner::HostState;

/// The interface whose sync functions are shadowed; wasmtime's linker serves older 0.2.x imports
/// from it by semver.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Replaces the guest's `descriptor.sync-data` and `descriptor.sync` with versions that sync for
/// real and then record what became durable in the store's [`DurableImage`].
pub(crate) fn install_sync_hooks(linker: &mut Linker<HostState>) -> Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap(
        "[method]descriptor.sync-data",
        |mut store: StoreContextMut<'_, HostState>, (fd,): (Resource<Descriptor>,)| {
            Ok((sync_descriptor(store.data_mut(), &fd),))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.sync",
        |mut store: StoreContextMut<'_, HostState>, (fd,): (Resource<Descriptor>,)| {
            Ok((sync_descriptor(store.data_mut(), &fd),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn sync_descriptor(state: &mut HostState, fd: &Resource<Descriptor>) -> Result<(), ErrorCode> {
    let descriptor = state
        .table()
        .get(fd)
        .map_err(|_| ErrorCode::BadDescriptor)?;
    match descriptor {
        Descriptor::File(file) => {
            let file = file.file.clone();
            file.sync_data().map_err(|_| ErrorCode::Io)?;
            state.image.file_synced(&file);
        }
        Descriptor::Dir(_) => {
            // The descriptor's own handle may be an `O_PATH` one, which cannot be synced (wasmtime
            // reopens it for the same reason). The guest has one directory, the image's.
            File::open(&state.image.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|_| ErrorCode::Io)?;
            state.image.dir_synced();
        }
    }
    Ok(())
}

/// What one simulated power loss did to the directory.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CrashEffects {
    /// Files created since the last directory sync that the crash removed.
    pub(crate) files_dropped: u64,
    /// Files whose unsynced tail was cut off (wholly or in part).
    pub(crate) tails_cut: u64,
    /// Files whose unsynced tail was left as zeros.
    pub(crate) tails_zeroed: u64,
    /// Unsynced bytes lost in all.
    pub(crate) bytes_lost: u64,
}

/// Durable lengths and names of the files in one directory.
#[derive(Debug, Default)]
pub(crate) struct DurableImage {
    dir: PathBuf,
    lens: HashMap<String, u64>,
    names: HashSet<String>,
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
        self.lens.clear();
        self.names.clear();
        for (name, len) in files(&self.dir)? {
            self.lens.insert(name.clone(), len);
            self.names.insert(name);
        }
        Ok(())
    }

    fn file_synced(&mut self, file: &File) {
        self.file_syncs += 1;
        let Ok(meta) = file.metadata() else { return };
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let same = entry
                .metadata()
                .is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev());
            if same {
                if let Ok(name) = entry.file_name().into_string() {
                    self.lens.insert(name, meta.len());
                }
                return;
            }
        }
    }

    fn dir_synced(&mut self) {
        self.dir_syncs += 1;
        if let Ok(now) = files(&self.dir) {
            self.names = now.into_iter().map(|(name, _)| name).collect();
        }
    }

    /// Turns the directory into one legal post-power-loss state, chosen by `rng`, then settles.
    pub(crate) fn crash(&mut self, rng: &mut SplitMix64) -> Result<CrashEffects> {
        let mut effects = CrashEffects::default();
        for (name, len) in files(&self.dir)? {
            let path = self.dir.join(&name);
            if !self.names.contains(&name) && rng.chance(1, 2) {
                fs::remove_file(&path).with_context(|| format!("dropping {}", path.display()))?;
                effects.files_dropped += 1;
                effects.bytes_lost += len;
                continue;
            }
            let durable = self.lens.get(&name).copied().unwrap_or(0).min(len);
            if durable == len {
                continue;
            }
            match rng.between(0, 3) {
                // The whole unsynced tail made it.
                0 => {}
                // None of it did.
                1 => {
                    set_len(&path, durable)?;
                    effects.tails_cut += 1;
                    effects.bytes_lost += len - durable;
                }
                // A prefix of it did.
                2 => {
                    let keep = rng.between(durable, len - 1);
                    set_len(&path, keep)?;
                    effects.tails_cut += 1;
                    effects.bytes_lost += len - keep;
                }
                // The length did, the data did not.
                _ => {
                    let from = rng.between(durable, len - 1);
                    zero_range(&path, from, len)?;
                    effects.tails_zeroed += 1;
                    effects.bytes_lost += len - from;
                }
            }
        }
        self.settle()?;
        Ok(effects)
    }
}

/// Regular files in `dir` with their lengths.
fn files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file()
            && let Ok(name) = entry.file_name().into_string()
        {
            out.push((name, meta.len()));
        }
    }
    Ok(out)
}

fn set_len(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    Ok(())
}

fn zero_range(path: &Path, from: u64, to: u64) -> Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let zeros = vec![0u8; usize::try_from(to - from)?];
    file.write_all(&zeros)?;
    Ok(())
}
