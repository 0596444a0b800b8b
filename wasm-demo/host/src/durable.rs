//! What survives a simulated power loss.
//!
//! A fuel trap kills the guest, not the machine: everything it handed to the host is still in the
//! host's page cache. To make the crash a power loss, the host shadows the guest's `sync-data`
//! and `sync` imports and keeps a [`DurableImage`]: per file, the *contents* made durable by the
//! last sync of that file, and the set of names made durable by the last directory sync.
//! Contents, not lengths: `walden-wasi` zero-fills a segment ahead of the writer and syncs the
//! zeros, so appends overwrite bytes inside an already durable length.
//!
//! After a trap, [`DurableImage::crash`] rewrites the directory into one legal post-crash state of
//! the Storage contract (`walden_core::storage`). The unsynced change of a file is everything from
//! the first byte where it differs from its durable contents; that change is kept whole, reverted
//! whole, kept up to an arbitrary byte and reverted after it, or kept in length with zeros from an
//! arbitrary byte on. Files created since the last directory sync may vanish. Reordering of writes
//! *inside* the unsynced change is not modelled; the sim adapter explores that exhaustively. A
//! file that only shrank is treated as truncated (both are legal outcomes).
//!
//! Each file sync reads the synced file back, so keep segments small (the crash loop uses 16 KiB).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
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

/// Durable contents and names of the files in one directory.
#[derive(Debug, Default)]
pub(crate) struct DurableImage {
    dir: PathBuf,
    contents: HashMap<String, Vec<u8>>,
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
        self.contents.clear();
        self.names.clear();
        for (name, _) in files(&self.dir)? {
            let path = self.dir.join(&name);
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            self.contents.insert(name.clone(), bytes);
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
                if let (Ok(name), Ok(bytes)) =
                    (entry.file_name().into_string(), fs::read(entry.path()))
                {
                    self.contents.insert(name, bytes);
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
            let now = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let durable = self.contents.get(&name).map_or(&[][..], Vec::as_slice);
            let from = now.iter().zip(durable).take_while(|(a, b)| a == b).count() as u64;
            let len = now.len() as u64;
            if from >= len {
                // Unchanged, or only shrunk: the truncate is kept.
                continue;
            }
            let after = match rng.between(0, 3) {
                // The whole change made it.
                0 => continue,
                // None of it did.
                1 => {
                    effects.tails_cut += 1;
                    from
                }
                // A prefix of it did.
                2 => {
                    effects.tails_cut += 1;
                    rng.between(from, len - 1)
                }
                // The length did, the data did not.
                _ => {
                    let at = rng.between(from, len - 1);
                    let mut bytes = now[..at as usize].to_vec();
                    bytes.resize(now.len(), 0);
                    fs::write(&path, &bytes)
                        .with_context(|| format!("zeroing {}", path.display()))?;
                    effects.tails_zeroed += 1;
                    effects.bytes_lost += len - at;
                    continue;
                }
            };
            // Keep the change up to `after`; past it the file is what was durable.
            let mut bytes = now[..after as usize].to_vec();
            bytes.extend_from_slice(durable.get(after as usize..).unwrap_or_default());
            fs::write(&path, &bytes).with_context(|| format!("reverting {}", path.display()))?;
            effects.bytes_lost += len - after;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A write inside an already durable length (the zero-filled part of a segment) is unsynced
    /// and can be lost: the model works on contents, not lengths.
    #[test]
    fn overwrites_inside_the_durable_length_can_be_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let durable = vec![0u8; 64];
        let mut written = durable.clone();
        written[10..20].copy_from_slice(&[7; 10]);
        let mut lost = 0;
        for seed in 0..40 {
            fs::write(&path, &durable).unwrap();
            let mut image = DurableImage::of(dir.path()).unwrap();
            fs::write(&path, &written).unwrap();
            let effects = image.crash(&mut SplitMix64::new(seed)).unwrap();
            let after = fs::read(&path).unwrap();
            assert_eq!(after.len(), 64);
            // Legal: the write survived up to some byte, and the durable zeros are there after it.
            let kept = after[10..20].iter().take_while(|&&b| b == 7).count();
            assert!(after[10 + kept..].iter().all(|&b| b == 0), "{after:?}");
            lost += u64::from(effects.bytes_lost > 0);
        }
        assert!(lost > 0, "no crash lost the unsynced overwrite");
    }
}
